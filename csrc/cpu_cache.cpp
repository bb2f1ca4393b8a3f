#include "cpu_cache.hpp"

#include "symprobe/symprobe.hpp"

#include <c10/core/Allocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace symprobe::detail {
namespace {

// smaller blocks are left to malloc, which recycles them within its arena
constexpr size_t kLargeBytes = size_t(1) << 20;
// and blocks this large (beyond any machine) are not rounded to a size class
constexpr size_t kHugeBytes = size_t(1) << 60;

// sizes rounded up to 8 classes per power of two (at most 12.5 % more): a neighbour-list
// rebuild changes the edge count a little, and the next step's tensors still find their blocks
size_t size_class(size_t n) {
    size_t power = 1;
    while (power <= n / 2) power <<= 1;
    const size_t step = power / 8;
    return (n + step - 1) / step * step;
}

class CachingCpuAllocator final : public c10::Allocator {
public:
    // every block from c10::alloc_cpu (what torch's default CPU allocator uses): small ones go
    // straight back to the system (no lock on that path), large ones into the cache; `release`
    // (the raw deleter) takes either
    c10::DataPtr allocate(size_t n) override {
        if (n < kLargeBytes || n >= kHugeBytes) {
            void* data = c10::alloc_cpu(n);
            return {data, data, &c10::free_cpu, c10::Device(c10::DeviceType::CPU)};
        }
        const size_t bytes = size_class(n);
        void* data = nullptr;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto& free = free_[bytes];
            if (!free.empty()) {
                data = free.back().first;
                free.pop_back();
                free_bytes_ -= static_cast<int64_t>(bytes);
                ++reused_;
            }
        }
        if (data == nullptr) {
            // a size no kept block has: the shapes changed (another system, chunk or piece);
            // blocks kept from before this evaluation go back first, so that they and the new
            // blocks are not resident together
            release_free(/*stale_only=*/true);
            data = fresh(bytes);
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            live_[data] = bytes;
        }
        return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
    }

    c10::DeleterFnPtr raw_deleter() const override { return &release; }

    void copy_data(void* dest, const void* src, std::size_t count) const override {
        default_copy_data(dest, src, count);
    }

    void enter() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (scopes_++ == 0) {
            previous_ = c10::GetAllocator(c10::DeviceType::CPU);
            c10::SetAllocator(c10::DeviceType::CPU, this, kPriority);
        }
    }

    void leave() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            // restored by the last scope, unless someone else replaced this allocator meanwhile
            if (--scopes_ == 0 && c10::GetAllocator(c10::DeviceType::CPU) == this) {
                c10::SetAllocator(c10::DeviceType::CPU, previous_, kPriority);
            }
        }
        // every evaluation's end (of any thread) returns the blocks kept from before it that it
        // did not reuse
        release_free(/*stale_only=*/true);
        std::lock_guard<std::mutex> lock(mutex_);
        ++epoch_;
    }

    CpuCacheStats stats() {
        std::lock_guard<std::mutex> lock(mutex_);
        return {free_bytes_, reused_};
    }

private:
    // Returns free blocks to the system: those kept from before the current evaluation
    // (freed in an earlier epoch), or all.
    void release_free(bool stale_only) {
        std::vector<void*> blocks;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (auto& [bytes, free] : free_) {
                size_t kept = 0;
                for (auto& block : free) {
                    if (!stale_only || block.second < epoch_) {
                        blocks.push_back(block.first);
                        free_bytes_ -= static_cast<int64_t>(bytes);
                    } else {
                        free[kept++] = block;
                    }
                }
                free.resize(kept);
            }
        }
        for (void* data : blocks) c10::free_cpu(data);
    }

    // a new block; where the system has none left, the cache's free blocks go back to it first
    void* fresh(size_t bytes) {
        try {
            return c10::alloc_cpu(bytes);
        } catch (const c10::Error&) {
            release_free(/*stale_only=*/false);
            return c10::alloc_cpu(bytes);
        }
    }

    // the priority of torch's own CPU allocator: the cache replaces it, and it alone (an
    // allocator installed with a higher priority stays, and the cache is then unused)
    static constexpr uint8_t kPriority = 0;

    static void release(void* data) { instance().give_back(data); }

    void give_back(void* data) {
        std::unique_lock<std::mutex> lock(mutex_);
        auto it = live_.find(data);
        if (it == live_.end()) {
            lock.unlock();
            c10::free_cpu(data);
            return;
        }
        const size_t bytes = it->second;
        live_.erase(it);
        free_[bytes].emplace_back(data, epoch_);
        free_bytes_ += static_cast<int64_t>(bytes);
    }

public:
    static CachingCpuAllocator& instance() {
        // never destroyed: tensors from it may be freed during the program's exit
        static CachingCpuAllocator* allocator = new CachingCpuAllocator();
        return *allocator;
    }

private:
    std::mutex mutex_;
    c10::Allocator* previous_ = nullptr;  // restored when the last scope ends
    int64_t scopes_ = 0;
    uint64_t epoch_ = 0;
    int64_t free_bytes_ = 0;
    int64_t reused_ = 0;
    std::unordered_map<void*, size_t> live_;
    std::map<size_t, std::vector<std::pair<void*, uint64_t>>> free_;  // by size class: (block, epoch freed)
};

// SYMPROBE_NO_CPU_CACHE=1 leaves torch's allocator alone (as PYTORCH_NO_CUDA_MEMORY_CACHING does
// for CUDA): every block back to the system when freed
bool cache_enabled() {
    static const bool enabled = [] {
        const char* value = std::getenv("SYMPROBE_NO_CPU_CACHE");
        return value == nullptr || value[0] == '\0' || std::string(value) == "0";
    }();
    return enabled;
}
}  // namespace

CpuCacheScope::CpuCacheScope() : active_(cache_enabled()) {
    if (active_) CachingCpuAllocator::instance().enter();
}

CpuCacheScope::~CpuCacheScope() {
    if (active_) CachingCpuAllocator::instance().leave();
}

}  // namespace symprobe::detail

symprobe::CpuCacheStats symprobe::cpu_cache_stats() { return detail::CachingCpuAllocator::instance().stats(); }
