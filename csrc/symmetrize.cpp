// The symmetrisation stage: rotated copies of a graph batched into few model calls, gradients
// rotated back to the lab frame, per-rotation energies and the force-spread diagnostic. All
// work stays on the model's device; results cross to the host once per evaluation.
#include "symmetrize.hpp"

#include <ATen/DeviceAccelerator.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/autograd.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <string>

namespace symprobe {
namespace detail {

std::string model_error(const std::string& origin, const std::exception& e);

namespace {
// Upper bound of rotated edges per model call in the automatic choice (memory).
constexpr int64_t MAX_BATCH_EDGES = 1 << 23;

int64_t chunk_cap(int64_t n_edges, int64_t n_rot) {
    return std::max<int64_t>(1, std::min<int64_t>(n_rot, MAX_BATCH_EDGES / std::max<int64_t>(1, n_edges)));
}

torch::Tensor matrices_tensor(const RotationSet& set, torch::Device device) {
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    const int64_t g = static_cast<int64_t>(set.size());
    return torch::from_blob(const_cast<double*>(set.matrices.data()), {g, 3, 3}, f64).to(device, false, true);
}
}  // namespace

namespace {
c10::DeviceIndex device_index(const torch::Device& device) {
    return device.has_index() ? device.index() : at::accelerator::getDeviceIndex();
}
}  // namespace

int64_t MemoryBudget::in_use(const torch::Device& device) {
    if (!device.is_cpu()) {
        try {  // the caching allocator's bytes in tensors (aggregate over its pools)
            return at::accelerator::getDeviceStats(device_index(device)).allocated_bytes[0].current;
        } catch (const std::exception&) {
            return -1;
        }
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    // the cache's free blocks are allocated for malloc and in no tensor
    const struct mallinfo2 info = mallinfo2();
    return static_cast<int64_t>(info.uordblks + info.hblkhd) - cpu_cache_stats().free_bytes;
#else
    return -1;
#endif
}

double MemoryBudget::half_available(const torch::Device& device) {
    if (!device.is_cpu()) {
        try {
            return 0.5 * static_cast<double>(at::accelerator::getMemoryInfo(device_index(device)).first);
        } catch (const std::exception&) {
            return 0.0;
        }
    }
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    double kb = 0.0;
    std::string unit;
    while (meminfo >> key >> kb >> unit) {
        if (key == "MemAvailable:") return 0.5 * kb * 1024.0;
    }
    return 0.0;
}

void MemoryBudget::observe(int64_t edges, int64_t bytes) {
    if (edges > 0 && bytes > 0) per_edge_ = std::max(per_edge_, static_cast<double>(bytes) / static_cast<double>(edges));
}

int64_t MemoryBudget::items(int64_t edges_per_item, int64_t cap) const {
    if (per_edge_ <= 0.0 || budget_ <= 0.0) return cap;
    const double fit = budget_ / (per_edge_ * static_cast<double>(std::max<int64_t>(1, edges_per_item)));
    return std::max<int64_t>(1, std::min<int64_t>(cap, static_cast<int64_t>(std::min(fit, 1e15))));
}

Symmetrizer::Symmetrizer(const RotationOptions& options, torch::Device device, torch::Dtype dtype,
                         std::string origin, MemoryBudget* memory)
    : options_(options), device_(device), dtype_(dtype), origin_(std::move(origin)), memory_(memory) {
    RotationSet set = rotation_set(options_, 0);
    double total = 0.0;
    for (double w : set.weights) total += w;
    for (double w : set.weights) weights_.push_back(w / total);
    weights_device_ = torch::tensor(weights_, torch::TensorOptions().dtype(torch::kFloat64)).to(device_);
    matrices_ = matrices_tensor(set, device_);
    matrices_step_ = 0;
}

const torch::Tensor& Symmetrizer::matrices(uint64_t step) {
    if (options_.random() && step != matrices_step_) {
        matrices_ = matrices_tensor(rotation_set(options_, step), device_);
        matrices_step_ = step;
    }
    return matrices_;
}

int64_t Symmetrizer::chunk() const {
    return options_.chunk > 0 ? options_.chunk : tuner_.tuned();
}

torch::Tensor Symmetrizer::gradient_of(const torch::Tensor& total, const torch::Tensor& input) const {
    if (input.numel() == 0 || !total.requires_grad()) return torch::Tensor();
    try {
        return torch::autograd::grad({total}, {input}, {}, false, false, true)[0];
    } catch (const std::exception& e) {
        throw Error(Error::ModelFailure, model_error(origin_, e));
    }
}

// Rows [c * n, F] as [n, c * F] (one row per node, all copies) in float64 on the CPU, as the
// exchange reads them, and back.
namespace {
torch::Tensor node_rows(const torch::Tensor& t, int64_t copies, int64_t n) {
    // always a copy: the exchange writes into it, and `t` may be saved for a backward pass
    return t.detach().to(torch::kCPU, torch::kFloat64, false, true).view({copies, n, -1}).permute({1, 0, 2}).contiguous();
}
torch::Tensor copy_rows(const torch::Tensor& rows, int64_t copies, int64_t n, const torch::Tensor& like) {
    return rows.view({n, copies, -1}).permute({1, 0, 2}).reshape({copies * n, -1}).to(like.device(), like.scalar_type());
}
}  // namespace

torch::Tensor Layered::forward(const torch::Tensor& features, int64_t copies) const {
    if (!exchange) return features.detach().requires_grad_(record);
    torch::Tensor rows = node_rows(features, copies, n_nodes);
    exchange->forward(rows.data_ptr<double>(), rows.size(1) * rows.size(2));
    return copy_rows(rows, copies, n_nodes, features).requires_grad_(record);
}

torch::Tensor Layered::reverse(const torch::Tensor& gradients, int64_t copies) const {
    if (!exchange) return gradients;
    torch::Tensor rows = node_rows(gradients, copies, n_nodes);
    exchange->reverse(rows.data_ptr<double>(), rows.size(1) * rows.size(2));
    return copy_rows(rows, copies, n_nodes, gradients);
}

int64_t BatchTuner::choose(int64_t edges_per_item, int64_t cap) {
    if (edges_ < 0 || edges_per_item > 2 * edges_ || 2 * edges_per_item < edges_) {
        *this = BatchTuner();
        edges_ = edges_per_item;
    }
    cap_ = cap;
    last_ = std::min(cap, best_ > 0 ? best_ : trying_);
    return last_;
}

void BatchTuner::record(int64_t items, double seconds) {
    if (best_ > 0) return;
    if (!warm_) {
        warm_ = true;
        return;
    }
    const double per_item = seconds / static_cast<double>(items);
    if (per_item < best_time_) {
        best_time_ = per_item;
        best_size_ = last_;
        if (last_ >= cap_) {
            best_ = last_;
        } else {
            trying_ = std::min(2 * last_, cap_);
        }
    } else {
        best_ = best_size_;  // the last size measured faster
    }
}

Symmetrized Symmetrizer::evaluate(const RotatingInput& in, const std::vector<Part>& parts,
                                  const Request& request, uint64_t step) {
    torch::AutoGradMode grad_mode(true);  // forces need autograd (the caller may be in no_grad)
    const int64_t n = in.n_nodes, m = in.rows.size(0);
    const int64_t n_parts = static_cast<int64_t>(parts.size());
    const bool need_grad = request.forces || request.virial || request.atomic_virials;
    const bool plain = options_.mode == RotationOptions::None;
    const torch::Tensor& all = matrices(step);
    const int64_t n_rot = all.size(0);
    const bool spread = request.forces_rms_spread && need_grad && n_rot > 1;
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device_);

    // part of every node; nodes that carry no energy go to an extra column that is dropped
    std::vector<int64_t> owner(n, n_parts);
    for (int64_t p = 0; p < n_parts; ++p) {
        std::fill(owner.begin() + parts[p].node_begin, owner.begin() + parts[p].node_begin + parts[p].n_energy, p);
    }
    torch::Tensor node_part = torch::tensor(owner, torch::TensorOptions().dtype(torch::kInt64)).to(device_);

    torch::Tensor copy_energies = torch::zeros({n_rot, n_parts}, f64);
    torch::Tensor gradient = need_grad ? torch::zeros({m, 3}, f64) : torch::Tensor();
    torch::Tensor atom_energies = request.energies ? torch::zeros({n}, f64) : torch::Tensor();
    torch::Tensor mean_forces, force_square, reference_forces;
    if (spread) {
        mean_forces = torch::zeros({n, 3}, f64);
        force_square = torch::zeros({n}, f64);  // sum_k w_k |F_k - F_ref|^2 per atom
    }
    const bool tuning = n_rot > 1 && options_.chunk == 0 && !in.collective;
    const int64_t cap = memory_ ? memory_->items(in.edges, chunk_cap(in.edges, n_rot)) : chunk_cap(in.edges, n_rot);
    const int64_t chunk = n_rot == 1                            ? 1
                          : tuning                               ? tuner_.choose(in.edges, cap)
                          : in.collective && options_.chunk == 0 ? 1
                                                                 : options_.chunk;
    const bool measure = memory_ != nullptr && need_grad && in.keeps_activations;
    const auto started = std::chrono::steady_clock::now();
    for (int64_t k0 = 0; k0 < n_rot; k0 += chunk) {
        const int64_t c = std::min(chunk, n_rot - k0);
        torch::Tensor R = all.narrow(0, k0, c);
        torch::Tensor w = weights_device_.narrow(0, k0, c);
        // the named scopes are the stages that benchmarks/grid_profile.py times
        // c rotated copies of the rows: r' = r R^T
        torch::Tensor input;
        const int64_t in_use_before = measure ? MemoryBudget::in_use(device_) : -1;
        {
            RECORD_USER_SCOPE("symprobe::rotate");
            input = plain ? in.rows.unsqueeze(0) : torch::matmul(in.rows.unsqueeze(0), R.transpose(1, 2));
            input = input.to(dtype_).detach().requires_grad_(need_grad);
        }
        // per-copy energies summed in float64: float32 models carry large element baselines
        torch::Tensor per_atom, per_copy;
        {
            RECORD_USER_SCOPE("symprobe::model_forward");
            per_atom = in.energies(input, c);
            if (in.rotated_outputs) in.rotated_outputs(R, w);
        }
        if (in_use_before >= 0) memory_->observe(c * in.edges, MemoryBudget::in_use(device_) - in_use_before);
        {
            RECORD_USER_SCOPE("symprobe::energies");
            per_atom = per_atom.to(torch::kFloat64);
            per_copy = torch::zeros({c, n_parts + 1}, f64).index_add(1, node_part, per_atom).narrow(1, 0, n_parts);
            copy_energies.narrow(0, k0, c).copy_(per_copy.detach());
            if (request.energies) atom_energies += (per_atom.detach() * w.unsqueeze(1)).sum(0);
        }
        if (!need_grad) continue;
        torch::Tensor grad;
        {
            RECORD_USER_SCOPE("symprobe::model_backward");
            torch::Tensor total = (per_copy * w.unsqueeze(1)).sum();
            grad = in.gradient ? in.gradient(total, input) : gradient_of(total, input);
        }
        torch::Tensor back;
        {
            RECORD_USER_SCOPE("symprobe::rotate_back");
            if (!grad.defined()) grad = torch::zeros_like(input);  // no rows, or E independent of them
            // back to the lab frame (row form: g_lab = g_rot R), still weighted by w_k
            back = grad.to(torch::kFloat64).view({c, m, 3});
            if (!plain) back = torch::matmul(back, R);
            gradient += back.sum(0);
        }
        if (spread) {
            torch::Tensor forces = in.forces(back);
            mean_forces += forces.sum(0);
            // deviations from the first rotation's forces: no cancellation when the spread is
            // tiny compared with the forces
            torch::Tensor unweighted = forces / w.view({c, 1, 1});
            if (k0 == 0) reference_forces = unweighted[0].clone();
            force_square += ((unweighted - reference_forces).pow(2).sum(2) * w.unsqueeze(1)).sum(0);
        }
    }

    Symmetrized out;
    out.copy_energies = copy_energies.cpu();
    if (request.energies) out.atom_energies = atom_energies.cpu();
    if (need_grad) out.gradient = gradient.cpu().contiguous();
    if (spread) {
        torch::Tensor deviation = (mean_forces - reference_forces).cpu();
        torch::Tensor square = force_square.cpu();
        for (const Part& p : parts) {
            const int64_t m = std::max<int64_t>(1, p.n_energy);  // LAMMPS ghosts carry partial forces
            double s = square.narrow(0, p.node_begin, p.n_energy).sum().item<double>() -
                       deviation.narrow(0, p.node_begin, p.n_energy).pow(2).sum().item<double>();
            out.forces_rms_spread.push_back(std::sqrt(std::max(0.0, s) / (3.0 * m)));
        }
    }
    if (tuning) {  // timed after the copies above, which wait for the device
        std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
        tuner_.record(n_rot, took.count());
    }
    return out;
}

}  // namespace detail
}  // namespace symprobe
