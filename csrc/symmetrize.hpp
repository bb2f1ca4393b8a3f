// The symmetrisation stage of the core (private to csrc/): evaluates a graph over a set of
// rotations, batching rotated copies into few model calls, and returns lab-frame results.
#pragma once

#include "symprobe/symprobe.hpp"

#include <torch/torch.h>

#include <functional>

namespace symprobe {
namespace detail {

// One structure inside a batched graph: its nodes, the first n_energy of which carry energy,
// and its edges (indices are global to the graph).
struct Part {
    int64_t node_begin, n_nodes, n_energy, edge_begin, n_edges;
};

// A graph on the model's device; vectors in the lab frame, float64, Angstrom.
struct DeviceGraph {
    torch::Tensor species;    // [n] int64
    torch::Tensor centers;    // [E] int64
    torch::Tensor neighbors;  // [E] int64
    torch::Tensor vectors;    // [E, 3] float64
};

// The model evaluation stage: per-atom energies [n] of a (batched) graph whose edge vectors are
// in the model's dtype. Throws Error(ModelFailure) if the model breaks the contract.
using ModelCall = std::function<torch::Tensor(const torch::Tensor& species, const torch::Tensor& centers,
                                              const torch::Tensor& neighbors, const torch::Tensor& vectors)>;

// What the stage returns, on the CPU, in float64.
struct Symmetrized {
    torch::Tensor copy_energies;      // [G, parts] eV, energy of every rotated copy
    torch::Tensor atom_energies;      // [n] eV, rotation-averaged (if requested)
    torch::Tensor gradient;           // [E, 3] eV/A, dE/dr_e averaged and back in the lab frame
    std::vector<double> forces_rms_spread;  // [parts] eV/A (if requested and G > 1)
};

class Symmetrizer {
public:
    // `origin` names the model in messages.
    Symmetrizer(const RotationOptions& options, torch::Device device, torch::Dtype dtype,
                std::string origin);

    Symmetrized evaluate(const DeviceGraph& graph, const std::vector<Part>& parts,
                         const Request& request, uint64_t step, const ModelCall& model);

    const RotationOptions& options() const { return options_; }
    // normalised to sum 1
    const std::vector<double>& weights() const { return weights_; }
    // the user's chunk, or the tuned one (0 while tuning)
    int64_t chunk() const;

private:
    // The rotation matrices of `step` on the device: cached unless they depend on the step.
    const torch::Tensor& matrices(uint64_t step);
    torch::Tensor gradient_of(const torch::Tensor& total, const torch::Tensor& input) const;
    int64_t choose_chunk(int64_t n_edges, int64_t n_rot);
    void record_chunk_time(int64_t chunk, int64_t n_edges, int64_t n_rot, double seconds);

    RotationOptions options_;
    torch::Device device_;
    torch::Dtype dtype_;
    std::string origin_;
    std::vector<double> weights_;
    torch::Tensor weights_device_;  // [G] float64
    torch::Tensor matrices_;        // [G, 3, 3] float64 on the device
    uint64_t matrices_step_ = 0;    // step of matrices_ in random modes

    // Rotations per model call when the user left chunk = 0. Batching amortises per-call
    // overhead but large batches fall out of cache (a PET-size model was 2x slower with 36
    // copies than with one), so the first evaluations try 1, 2, 4, ... rotations per call and
    // keep the fastest per rotation; re-tuned when the number of edges changes by over 2x.
    struct Tuner {
        int64_t edges = -1;       // system size the tuning is for
        int64_t best = 0;         // 0 while tuning
        double best_time = INFINITY;
        int64_t best_chunk = 1;   // fastest size measured so far
        int64_t trying = 1;
        bool warm = false;        // the first evaluation (TorchScript warm-up) is not timed
    } tuner_;
    int64_t last_chunk_ = 0;
};

}  // namespace detail
}  // namespace symprobe
