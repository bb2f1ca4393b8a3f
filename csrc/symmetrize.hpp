// The symmetrisation stage of the core (private to csrc/): evaluates a graph over a set of
// rotations, batching rotated copies into few model calls, and returns lab-frame results.
#pragma once

#include "symprobe/symprobe.hpp"

#include <torch/torch.h>

#include <functional>

namespace symprobe {
namespace detail {

// One structure inside a batched graph: its nodes, the first n_energy of which carry energy,
// and its edges (indices are global to the graph; a metatomic model's rows are not edges).
struct Part {
    int64_t node_begin, n_nodes, n_energy, edge_begin, n_edges;
};

// What the stage rotates and differentiates: row vectors in the lab frame (float64, Angstrom,
// on the model's device) that a backend turns into the model's input. For the symprobe contract
// they are the edge vectors; for a metatomic model, every structure's positions and then its
// three cell rows. Both rotate as r' = r R^T, and W = -sum_rows r (x) dE/dr is the virial.
struct RotatingInput {
    torch::Tensor rows;   // [m, 3]
    int64_t n_nodes = 0;  // atoms whose energies the model returns
    int64_t edges = 0;    // edges of one copy: the work that bounds the copies per model call
    // Per-atom energies [c, n_nodes] of c rotated copies, rows [c, m, 3] in the model's dtype.
    // Throws Error(ModelFailure) if the model breaks its contract.
    std::function<torch::Tensor(const torch::Tensor& rows, int64_t copies)> energies;
    // Forces [c, n_nodes, 3] (eV/A) from the gradient dE/d(rows) [c, m, 3] in the lab frame.
    std::function<torch::Tensor(const torch::Tensor& gradient)> forces;
    // Optional: called after each model call with that chunk's rotations R [c, 3, 3] and
    // normalised weights w [c], for outputs other than the energy that must be rotated back.
    std::function<void(const torch::Tensor& R, const torch::Tensor& w)> rotated_outputs;
    // Optional: d total / d rows [c, m, 3] for the copies of the last `energies` call, in place
    // of one autograd pass (a layered evaluation chains its layers' gradients).
    std::function<torch::Tensor(const torch::Tensor& total, const torch::Tensor& rows)> gradient;
    // The calls exchange data with other processes, which must make the same calls: the same
    // copies per call everywhere (the user's chunk, else 1), not a per-process tuning.
    bool collective = false;
    // The forward pass keeps what the backward pass needs (what the memory budget measures);
    // not so where the backward pass evaluates again (a layered model in pieces).
    bool keeps_activations = true;
};

// A layered model's evaluation, layer by layer: across processes (between layers the features
// of the nodes [n_energy, n) come from their owners through the exchange, and their gradients
// go back), in pieces (option atoms or the memory budget), or both.
struct Layered {
    FeatureExchange* exchange = nullptr;  // may be null: one process
    int64_t n_nodes = 0;                  // of one copy
    int64_t n_edges = 0;                  // of one copy
    bool record = true;                   // forces or virials: the features record gradients
    // Pieces of one copy's nodes, evaluated one at a time in every layer (the option atoms, or
    // a memory budget the whole graph exceeds): every node (but those an exchange brings) is a
    // centre of one piece; a piece's graph holds its centres, then the other nodes its edges
    // reach. Empty: the whole graph in each layer call.
    struct Piece {
        torch::Tensor nodes;               // [m] graph nodes, the centres first
        torch::Tensor edges;               // [e] graph edges of the centres
        torch::Tensor centers, neighbors;  // [e] in the piece's node numbering
        int64_t n_centres = 0;
    };
    std::vector<Piece> pieces;
    torch::Tensor species;               // [c * n] of the evaluation under way
    torch::Tensor vectors;               // [c * E, 3] in the model's dtype, detached
    std::vector<torch::Tensor> inputs;   // features entering each layer (leaves from layer 1 on)
    std::vector<torch::Tensor> outputs;  // features each layer returned
    std::vector<torch::Tensor> layer_energies;  // [c * n] float64 of each layer
    torch::Tensor energies;                     // [c * n] float64, their sum and embed's
    void clear() {
        inputs.clear();
        outputs.clear();
        layer_energies.clear();
        energies = torch::Tensor();
        species = torch::Tensor();
        vectors = torch::Tensor();
    }
    // features [c * n, F] of c copies -> the same with the others' rows exchanged: a new leaf
    // that records gradients (without an exchange: the features, as a leaf)
    torch::Tensor forward(const torch::Tensor& features, int64_t copies) const;
    // gradients [c * n, F] -> the owners' sums in the own rows, zero in the others' (without an
    // exchange: unchanged)
    torch::Tensor reverse(const torch::Tensor& gradients, int64_t copies) const;
};

// How many items (rotated copies, structures) go into one model call. Batching amortises
// per-call overhead but large batches can be slower per item (32 water-pet structures in one
// call took 2.4x the time of one per call, docs/performance.md), so the best size depends on
// model, system and machine: the first call is a warm-up and not timed, then 1, 2, 4, ... items
// per call are tried and the fastest per item is kept; re-tuned when the workload (edges per
// item) changes by more than 2x.
class BatchTuner {
public:
    // The size for the next call: at most `cap` items.
    int64_t choose(int64_t edges_per_item, int64_t cap);
    // The wall time of the call made with the last choice, for `items` items in all.
    void record(int64_t items, double seconds);
    // The tuned size, 0 while tuning.
    int64_t tuned() const { return best_ > 0 ? last_ : 0; }

private:
    int64_t edges_ = -1;      // workload the tuning is for
    int64_t best_ = 0;        // 0 while tuning
    double best_time_ = INFINITY;
    int64_t best_size_ = 1;   // fastest size measured so far
    int64_t trying_ = 1;
    bool warm_ = false;
    int64_t last_ = 0;        // size of the last call
    int64_t cap_ = 1;         // cap of the last call
};

// The memory budget of one model call, and what one edge of one copy costs: the bytes a
// forward pass leaves alive for the backward pass (saved activations; the peak of a call is
// about this), measured around every forward: on the CPU's heap, or by the device's caching
// allocator. Shared by the chunk of rotated copies and the batch of structures, which both
// multiply edges per call.
class MemoryBudget {
public:
    explicit MemoryBudget(double budget_bytes) : budget_(budget_bytes) {}
    // Bytes in use now on `device` (glibc's heap on the CPU, the accelerator's allocator
    // otherwise); -1 where unknown.
    static int64_t in_use(const torch::Device& device);
    // Half of the memory available now on `device` (bytes); 0 where unknown.
    static double half_available(const torch::Device& device);
    // One forward pass over `edges` edges (all copies) kept `bytes` alive.
    void observe(int64_t edges, int64_t bytes);
    // Items of `edges_per_item` edges each that fit into one call: at most `cap`, at least 1;
    // `cap` before the first measurement.
    int64_t items(int64_t edges_per_item, int64_t cap) const;
    double budget() const { return budget_; }
    double per_edge() const { return per_edge_; }

private:
    double budget_;
    double per_edge_ = 0.0;  // the largest measured, bytes
};

// What the stage returns, on the CPU, in float64.
struct Symmetrized {
    torch::Tensor copy_energies;      // [G, parts] eV, energy of every rotated copy
    torch::Tensor atom_energies;      // [n] eV, rotation-averaged (if requested)
    torch::Tensor gradient;           // [m, 3] eV/A, dE/d(rows) averaged, in the lab frame
    std::vector<double> forces_rms_spread;  // [parts] eV/A (if requested and G > 1)
};

class Symmetrizer {
public:
    // `origin` names the model in messages.
    Symmetrizer(const RotationOptions& options, torch::Device device, torch::Dtype dtype,
                std::string origin, MemoryBudget* memory = nullptr);

    Symmetrized evaluate(const RotatingInput& input, const std::vector<Part>& parts,
                         const Request& request, uint64_t step);

    // normalised to sum 1
    const std::vector<double>& weights() const { return weights_; }
    // the user's chunk, or the tuned one (0 while tuning)
    int64_t chunk() const;

private:
    // The rotation matrices of `step` on the device: cached unless they depend on the step.
    const torch::Tensor& matrices(uint64_t step);
    torch::Tensor gradient_of(const torch::Tensor& total, const torch::Tensor& input) const;

    RotationOptions options_;
    torch::Device device_;
    torch::Dtype dtype_;
    std::string origin_;
    std::vector<double> weights_;
    torch::Tensor weights_device_;  // [G] float64
    torch::Tensor matrices_;        // [G, 3, 3] float64 on the device
    uint64_t matrices_step_ = 0;    // step of matrices_ in random modes

    // rotations per model call when the user left chunk = 0
    BatchTuner tuner_;
    MemoryBudget* memory_;  // the model's, measured here; may be null
};

}  // namespace detail
}  // namespace symprobe
