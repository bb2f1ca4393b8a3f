// Reuse of large CPU blocks between and within evaluations (internal to the core).
//
// torch takes every CPU tensor from malloc, and glibc serves blocks above its mmap threshold
// (at most 32 MB) with fresh pages that the kernel zeroes on first touch: at 12288 atoms of a
// PET a fifth of an evaluation went to those page faults. While a CpuCacheScope lives, torch's
// CPU allocator keeps the large blocks it frees and hands them out again for allocations of the
// same size class. Blocks kept from before an evaluation that it did not reuse are returned to
// the system when it ends, or as soon as it needs a size no kept block has (the shapes changed),
// so the cache holds about one evaluation's large blocks. SYMPROBE_NO_CPU_CACHE=1 in the
// environment turns it off.
#pragma once

#include <cstdint>

namespace symprobe::detail {

// Installs the caching allocator for torch's CPU tensors while at least one scope lives (any
// thread); the first scope installs it, the last one restores the allocator before it.
class CpuCacheScope {
public:
    CpuCacheScope();
    ~CpuCacheScope();
    CpuCacheScope(const CpuCacheScope&) = delete;
    CpuCacheScope& operator=(const CpuCacheScope&) = delete;

private:
    bool active_;
};

}  // namespace symprobe::detail
