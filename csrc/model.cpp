// Loading a TorchScript model through the model contract and evaluating energy, forces and
// virial with one autograd pass with respect to the edge vectors.
#include "symprobe/symprobe.hpp"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <cmath>
#include <fstream>
#include <sstream>

namespace symprobe {
namespace {

constexpr const char* METADATA_FILE = "metadata.json";

// First line of a torch error: the rest is a C++ stack trace users do not need.
std::string short_message(const std::exception& e) {
    std::string what = e.what();
    auto nl = what.find('\n');
    return nl == std::string::npos ? what : what.substr(0, nl);
}

// ModelFailure message of an exception raised inside the TorchScript code.
std::string model_error(const std::string& path, const std::exception& e) {
    std::string what = e.what();
    // TorchScript interpreter errors carry the Python-level message after the traceback
    auto pos = what.rfind("RuntimeError: ");
    std::string core = pos == std::string::npos ? short_message(e) : what.substr(pos);
    while (!core.empty() && (core.back() == '\n' || core.back() == ' ')) core.pop_back();
    return path + ": the model raised an error during evaluation: " + core;
}

}  // namespace

struct Model::Impl {
    std::string path;
    ModelOptions options;
    ModelMetadata metadata;
    torch::jit::Module module;
    torch::Device device{torch::kCPU};
    torch::Dtype dtype = torch::kFloat64;
    VerletList verlet;
    std::vector<bool> allowed;  // allowed[Z]
    uint64_t rotation_step = 0;  // evaluations done in a random rotation mode
    std::mutex mutex;            // a Model has state (Verlet list, random stream, tuner)

    Impl(const std::string& path_, const ModelOptions& options_)
        : path(resolve_model_path(path_)), options(options_), verlet(1.0, 0.0, 1) {
        if (!std::ifstream(path).good()) {
            std::string names;
            for (const auto& name : bundled_models()) names += (names.empty() ? "" : ", ") + name;
            throw Error(Error::FileNotFound, "model file '" + path + "' does not exist or cannot be read" +
                                                 (names.empty() ? std::string(" (and no bundled models were found beside the core library)")
                                                                : " (bundled models: " + names + ")"));
        }
        if (options.device == "cpu") {
            device = torch::Device(torch::kCPU);
        } else if (options.device.rfind("cuda", 0) == 0) {
            if (!at::hasCUDA()) {
                throw Error(Error::InvalidInput, "device '" + options.device +
                                                     "' requested but this symprobe build or "
                                                     "machine has no CUDA; use device 'cpu'");
            }
            try {
                device = torch::Device(options.device);
            } catch (const std::exception& e) {
                throw Error(Error::InvalidInput, "invalid device '" + options.device + "'");
            }
        } else {
            throw Error(Error::InvalidInput,
                        "invalid device '" + options.device + "': expected 'cpu' or 'cuda[:N]'");
        }
        if (options.threads < 0) {
            throw Error(Error::InvalidInput, "threads must be >= 0 (0 keeps torch's default)");
        }
        if (options.threads > 0) at::set_num_threads(options.threads);
        options.rotations.validate();

        torch::jit::ExtraFilesMap extra{{METADATA_FILE, ""}};
        try {
            module = torch::jit::load(path, device, extra);
        } catch (const std::exception& e) {
            throw Error(Error::InvalidModel, "model file '" + path +
                                                 "' is not a readable TorchScript archive (" +
                                                 short_message(e) + ")");
        }
        if (extra[METADATA_FILE].empty()) {
            throw Error(Error::InvalidModel,
                        "model file '" + path +
                            "' has no symprobe metadata (extra file metadata.json); export it "
                            "with symprobe.export_model");
        }
        metadata = parse_metadata(extra[METADATA_FILE], "model file '" + path + "'");
        if (!module.find_method("forward")) {
            throw Error(Error::InvalidModel, "model file '" + path + "' has no forward method");
        }
        module.eval();
        // the core differentiates with respect to positions only: no weight gradients, and
        // energy-only calls record no graph
        for (auto parameter : module.parameters()) parameter.requires_grad_(false);
        dtype = metadata.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
        allowed.assign(119, false);
        for (int z : metadata.elements) allowed[z] = true;
        verlet = VerletList(metadata.cutoff, options.skin, std::max(1, options.threads));
    }

    void check_numbers(const int32_t* numbers, int64_t n) const {
        for (int64_t i = 0; i < n; ++i) {
            int z = numbers[i];
            if (z < 1 || z > 118 || !allowed[z]) {
                std::ostringstream msg;
                msg << "atom " << i << " is ";
                if (z >= 1 && z <= 118) {
                    msg << "element " << element_symbol(z) << " (Z=" << z << ")";
                } else {
                    msg << "atomic number " << z;
                }
                msg << ", which the model '" << path << "' does not support (elements:";
                for (int e : metadata.elements) msg << " " << element_symbol(e);
                msg << ")";
                throw Error(Error::InvalidInput, msg.str());
            }
        }
    }

    // Runs the model on one (possibly batched) graph and checks the contract's output.
    torch::Tensor run_model(const torch::Tensor& species, const torch::Tensor& centers,
                            const torch::Tensor& neighbors, const torch::Tensor& vectors) {
        torch::Tensor energies;
        try {
            // Run the TorchScript graph op by op, recording autograd as eager PyTorch does. The
            // optimising executor wraps it in differentiable graphs whose backward also computes
            // every weight gradient: 1.5x slower for the PET (docs/performance.md).
            // CPU only: on CUDA the optimiser also fuses kernels, and that trade is not measured,
            // so the caller's setting stays.
            std::optional<torch::jit::GraphOptimizerEnabledGuard> unoptimised;
            if (device.is_cpu()) unoptimised.emplace(false);
            auto out = module.forward({species, centers, neighbors, vectors});
            if (!out.isTensor()) {
                throw Error(Error::ModelFailure, path + ": forward must return a tensor of per-atom energies");
            }
            energies = out.toTensor();
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw Error(Error::ModelFailure, model_error(path, e));
        }
        const int64_t n = species.size(0);
        if (energies.dim() != 1 || energies.size(0) != n || !energies.is_floating_point()) {
            std::ostringstream msg;
            msg << path << ": forward returned a tensor of shape " << energies.sizes() << " and type "
                << energies.dtype() << "; the contract requires per-atom energies of shape [" << n
                << "]";
            throw Error(Error::ModelFailure, msg.str());
        }
        return energies;
    }

    torch::Tensor gradient(const torch::Tensor& total, const torch::Tensor& input) {
        if (input.size(0) == 0 || !total.requires_grad()) return torch::Tensor();
        try {
            return torch::autograd::grad({total}, {input}, {}, false, false, true)[0];
        } catch (const std::exception& e) {
            throw Error(Error::ModelFailure, model_error(path, e));
        }
    }

    // Rotations per batched model call when the user left chunk = 0. Batching amortises the
    // per-call overhead but large batches fall out of cache (a PET-size model was 2x slower
    // with 36 copies than with one), so the best size depends on model, system and machine:
    // the first evaluations try 1, 2, 4, ... rotations per call and keep the fastest per
    // rotation. Re-tuned when the number of edges changes by more than 2x.
    struct ChunkTuner {
        int64_t edges = -1;       // system size the tuning is for
        int64_t best = 0;         // 0 while tuning
        double best_time = INFINITY;
        int64_t best_chunk = 1;   // fastest size measured so far
        int64_t trying = 1;
        bool warm = false;        // the first evaluation (TorchScript warm-up) is not timed
    } tuner;
    int64_t last_chunk = 0;       // chunk size of the last evaluation
    static constexpr int64_t MAX_BATCH_EDGES = 1 << 23;  // memory bound of the automatic choice

    int64_t chunk_cap(int64_t n_edges, int64_t n_rot) const {
        return std::max<int64_t>(1, std::min<int64_t>(n_rot, MAX_BATCH_EDGES / std::max<int64_t>(1, n_edges)));
    }

    int64_t choose_chunk(int64_t n_edges, int64_t n_rot) {
        if (options.rotations.chunk > 0) return options.rotations.chunk;
        if (tuner.edges < 0 || n_edges > 2 * tuner.edges || 2 * n_edges < tuner.edges) {
            tuner = ChunkTuner();
            tuner.edges = n_edges;
        }
        return std::min(chunk_cap(n_edges, n_rot), tuner.best > 0 ? tuner.best : tuner.trying);
    }

    void record_chunk_time(int64_t chunk, int64_t n_edges, int64_t n_rot, double seconds) {
        if (options.rotations.chunk > 0 || tuner.best > 0) return;
        if (!tuner.warm) {
            tuner.warm = true;
            return;
        }
        double per_rotation = seconds / static_cast<double>(n_rot);
        if (per_rotation < tuner.best_time) {
            tuner.best_time = per_rotation;
            tuner.best_chunk = chunk;
            if (chunk >= chunk_cap(n_edges, n_rot)) {
                tuner.best = chunk;
            } else {
                tuner.trying = std::min(2 * chunk, chunk_cap(n_edges, n_rot));
            }
        } else {
            tuner.best = tuner.best_chunk;  // the last size measured faster
        }
    }

    // One structure inside a batched graph: its nodes, the first n_energy of which carry
    // energy, and its edges (indices are global to the graph).
    struct Part {
        int64_t node_begin, n_nodes, n_energy, edge_begin, n_edges;
    };

    // Evaluates a graph made of independent parts (structures) with the rotation set of this
    // evaluation: per part, energy, forces, virial and diagnostics.
    std::vector<Results> evaluate(const Graph& g, const std::vector<Part>& parts, const Request& request) {
        c10::InferenceMode no_inference(false);  // forces need autograd, even if the caller is in inference mode
        torch::AutoGradMode grad_mode(true);
        const int64_t n = g.n_nodes, n_edges = g.n_edges;
        const int64_t n_parts = static_cast<int64_t>(parts.size());
        const bool need_grad = request.forces || request.virial || request.atomic_virials;
        auto i64 = torch::TensorOptions().dtype(torch::kInt64);
        auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
        torch::Tensor species = torch::empty({n}, i64);
        auto sp = species.accessor<int64_t, 1>();
        for (int64_t i = 0; i < n; ++i) sp[i] = g.numbers[i];
        species = species.to(device);
        // from_blob does not own the memory: the device copies below do
        torch::Tensor cpu_centers = torch::from_blob(const_cast<int64_t*>(g.centers), {n_edges}, i64);
        torch::Tensor cpu_neighbors = torch::from_blob(const_cast<int64_t*>(g.neighbors), {n_edges}, i64);
        torch::Tensor centers = cpu_centers.to(device, torch::kInt64, false, true);
        torch::Tensor neighbors = cpu_neighbors.to(device, torch::kInt64, false, true);
        torch::Tensor lab = torch::from_blob(const_cast<double*>(g.vectors), {n_edges, 3}, f64);

        const RotationOptions& ro = options.rotations;
        const bool random = ro.mode == RotationOptions::Random || ro.randomize;
        RotationSet rotations = rotation_set(ro, rotation_step);
        const int64_t n_rot = static_cast<int64_t>(rotations.size());
        double weight_sum = 0.0;
        for (double w : rotations.weights) weight_sum += w;
        torch::Tensor matrices = torch::from_blob(rotations.matrices.data(), {n_rot, 3, 3}, f64).clone();
        torch::Tensor weights = torch::from_blob(rotations.weights.data(), {n_rot}, f64).clone() / weight_sum;
        const bool plain = ro.mode == RotationOptions::None;

        std::vector<Results> results(n_parts);
        torch::Tensor copy_energies = torch::zeros({n_rot, n_parts}, f64);  // E of copy k, part p
        std::vector<double> lab_grad(3 * n_edges, 0.0);  // dE_sym/dr_e in the lab frame
        torch::Tensor atom_energies = torch::zeros({n}, f64);
        torch::Tensor mean_forces = torch::zeros({n, 3}, f64);
        torch::Tensor force_square = torch::zeros({n}, f64);  // sum_k w_k |F_k - F_ref|^2 per atom
        torch::Tensor reference_forces;
        const int64_t chunk = n_rot > 1 ? choose_chunk(n_edges, n_rot) : 1;
        last_chunk = chunk;
        const auto started = std::chrono::steady_clock::now();
        for (int64_t k0 = 0; k0 < n_rot; k0 += chunk) {
            const int64_t c = std::min(chunk, n_rot - k0);
            torch::Tensor R = matrices.narrow(0, k0, c);
            torch::Tensor w = weights.narrow(0, k0, c);
            // c rotated copies as one graph: row vectors r' = r R^T, nodes offset by copy
            torch::Tensor input = plain ? lab.unsqueeze(0) : torch::matmul(lab.unsqueeze(0), R.transpose(1, 2));
            input = input.reshape({c * n_edges, 3}).to(device, dtype, false, true).requires_grad_(need_grad);
            torch::Tensor batch_species = c == 1 ? species : species.repeat({c});
            torch::Tensor offsets = torch::arange(c, i64.device(device)).mul_(n).unsqueeze(1);
            torch::Tensor batch_centers = c == 1 ? centers : (centers.unsqueeze(0) + offsets).reshape({-1});
            torch::Tensor batch_neighbors =
                c == 1 ? neighbors : (neighbors.unsqueeze(0) + offsets).reshape({-1});
            torch::Tensor energies = run_model(batch_species, batch_centers, batch_neighbors, input);
            // per-copy energies summed in float64: float32 models carry large element baselines
            torch::Tensor per_atom = energies.view({c, n}).to(torch::kFloat64);
            std::vector<torch::Tensor> per_part;
            for (const Part& p : parts) per_part.push_back(per_atom.narrow(1, p.node_begin, p.n_energy).sum(1));
            torch::Tensor per_copy = torch::stack(per_part, 1);  // [c, parts]
            torch::Tensor total = (per_copy * w.to(device).unsqueeze(1)).sum();
            copy_energies.narrow(0, k0, c).copy_(per_copy.detach().cpu());
            if (request.energies) {
                atom_energies += (per_atom.detach().cpu() * w.unsqueeze(1)).sum(0);
            }
            if (!need_grad) continue;
            torch::Tensor grad = gradient(total, input);
            if (!grad.defined()) grad = torch::zeros_like(input);  // no edges, or E independent of them
            // back to the lab frame (row form: g_lab = g_rot R), still weighted by w_k
            torch::Tensor back = grad.to(torch::kCPU, torch::kFloat64).view({c, n_edges, 3});
            if (!plain) back = torch::matmul(back, R);
            torch::Tensor summed = back.sum(0).contiguous();
            const double* gs = summed.data_ptr<double>();
            for (int64_t e = 0; e < 3 * n_edges; ++e) lab_grad[e] += gs[e];
            if (n_rot > 1) {
                // per-rotation forces for the spread diagnostic
                torch::Tensor forces = torch::zeros({c, n, 3}, f64);
                forces.index_add_(1, cpu_centers, back).index_add_(1, cpu_neighbors, -back);
                mean_forces += forces.sum(0);
                // deviations from the first rotation's forces: no cancellation when the spread
                // is tiny compared with the forces
                torch::Tensor unweighted = forces / w.view({c, 1, 1});
                if (k0 == 0) reference_forces = unweighted[0].clone();
                force_square += ((unweighted - reference_forces).pow(2).sum(2) * w.unsqueeze(1)).sum(0);
            }
        }

        torch::Tensor energy = (copy_energies * weights.unsqueeze(1)).sum(0);  // [parts]
        for (int64_t p = 0; p < n_parts; ++p) {
            Results& res = results[p];
            const Part& part = parts[p];
            res.energy = energy[p].item<double>();
            if (!std::isfinite(res.energy)) {
                throw Error(Error::ModelFailure, path + ": the model returned a non-finite energy");
            }
            torch::Tensor e_rot = copy_energies.select(1, p).contiguous();
            res.diagnostics.rotation_energies.assign(e_rot.data_ptr<double>(), e_rot.data_ptr<double>() + n_rot);
            if (request.energies) {
                const double* ae = atom_energies.data_ptr<double>() + part.node_begin;
                res.energies.assign(ae, ae + part.n_nodes);
            }
            if (n_rot > 1) {
                res.diagnostics.energy_spread = (e_rot.max() - e_rot.min()).item<double>();
                res.diagnostics.energy_std =
                    std::sqrt((weights * (e_rot - res.energy).pow(2)).sum().item<double>());
                if (need_grad) {
                    // over the energy nodes: LAMMPS ghosts carry partial forces
                    const int64_t m = std::max<int64_t>(1, part.n_energy);
                    torch::Tensor dev = (mean_forces - reference_forces).narrow(0, part.node_begin, part.n_energy);
                    double spread = force_square.narrow(0, part.node_begin, part.n_energy).sum().item<double>() -
                                    dev.pow(2).sum().item<double>();
                    res.diagnostics.forces_rms_spread = std::sqrt(std::max(0.0, spread) / (3.0 * m));
                }
            }
            if (need_grad) forces_and_virials(g, part, lab_grad, request, res);
        }
        if (n_rot > 1) {
            std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
            record_chunk_time(chunk, n_edges, n_rot, took.count());
        }
        if (random) rotation_step++;  // only successful evaluations advance the stream
        return results;
    }

    // Forces, virial and per-atom virials of one part from the lab-frame edge gradient:
    // r_e = x_j - x_i + S.cell, so dE/dx_i = -sum g_e (i centre) + sum g_e (i neighbour).
    void forces_and_virials(const Graph& g, const Part& part, const std::vector<double>& grad,
                            const Request& request, Results& res) {
        const int64_t n = part.n_nodes, first = part.node_begin;
        std::vector<double> forces(3 * n, 0.0);
        for (int64_t e = part.edge_begin; e < part.edge_begin + part.n_edges; ++e) {
            for (int c = 0; c < 3; ++c) {
                forces[3 * (g.centers[e] - first) + c] += grad[3 * e + c];
                forces[3 * (g.neighbors[e] - first) + c] -= grad[3 * e + c];
            }
        }
        for (int64_t i = 0; i < 3 * n; ++i) {
            if (!std::isfinite(forces[i])) {
                throw Error(Error::ModelFailure, path + ": the model produced non-finite forces");
            }
            res.diagnostics.net_force[i % 3] += forces[i];
        }
        if (request.atomic_virials) res.atomic_virials.assign(9 * n, 0.0);
        for (int64_t e = part.edge_begin; e < part.edge_begin + part.n_edges; ++e) {
            for (int a = 0; a < 3; ++a) {
                for (int b = 0; b < 3; ++b) {
                    double w = -g.vectors[3 * e + a] * grad[3 * e + b];
                    res.virial[3 * a + b] += w;
                    if (request.atomic_virials) {
                        res.atomic_virials[9 * (g.centers[e] - first) + 3 * a + b] += 0.5 * w;
                        res.atomic_virials[9 * (g.neighbors[e] - first) + 3 * a + b] += 0.5 * w;
                    }
                }
            }
        }
        const auto& W = res.virial;
        res.diagnostics.net_torque = {W[5] - W[7], W[6] - W[2], W[1] - W[3]};
        if (request.forces) res.forces = std::move(forces);
    }

    Results evaluate_one(const Graph& g, const Request& request) {
        return std::move(evaluate(g, {Part{0, g.n_nodes, g.n_energy_nodes, 0, g.n_edges}}, request)[0]);
    }
};

Model::Model(const std::string& path, const ModelOptions& options)
    : impl_(std::make_unique<Impl>(path, options)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const ModelMetadata& Model::metadata() const { return impl_->metadata; }
const ModelOptions& Model::options() const { return impl_->options; }
const std::string& Model::path() const { return impl_->path; }
uint64_t Model::rotation_step() const { return impl_->rotation_step; }
void Model::set_rotation_step(uint64_t step) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->rotation_step = step;
}
int64_t Model::rotation_chunk() const {
    if (impl_->options.rotations.chunk > 0) return impl_->options.rotations.chunk;
    return impl_->tuner.best > 0 ? impl_->last_chunk : 0;
}
const NeighborList& Model::last_neighbors() const {
    return impl_->verlet.current();
}

Results Model::compute(const double* positions, const int32_t* numbers, int64_t n_atoms,
                       const double* cell, const bool* pbc, const Request& request) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (n_atoms <= 0) throw Error(Error::InvalidInput, "empty system: no atoms to evaluate");
    impl_->check_numbers(numbers, n_atoms);
    const NeighborList& nl = impl_->verlet.update(positions, n_atoms, cell, pbc);
    Graph g;
    g.numbers = numbers;
    g.n_nodes = n_atoms;
    g.n_energy_nodes = n_atoms;
    g.centers = nl.centers.data();
    g.neighbors = nl.neighbors.data();
    g.vectors = nl.vectors.data();
    g.n_edges = static_cast<int64_t>(nl.size());
    return impl_->evaluate_one(g, request);
}

std::vector<Results> Model::compute_batch(const std::vector<System>& systems, const Request& request) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (systems.empty()) throw Error(Error::InvalidInput, "empty batch: no structures to evaluate");
    // one graph made of every structure's neighbour list: one model call per rotation chunk
    std::vector<int32_t> numbers;
    std::vector<int64_t> centers, neighbors;
    std::vector<double> vectors;
    std::vector<Impl::Part> parts;
    NeighborOptions options;
    options.cutoff = impl_->metadata.cutoff;
    options.threads = std::max(1, impl_->options.threads);
    NeighborList nl;
    for (size_t s = 0; s < systems.size(); ++s) {
        const System& sys = systems[s];
        if (sys.n_atoms <= 0) {
            throw Error(Error::InvalidInput, "structure " + std::to_string(s) + " of the batch is empty");
        }
        impl_->check_numbers(sys.numbers, sys.n_atoms);
        compute_neighbors(sys.positions, sys.n_atoms, sys.cell, sys.pbc, options, nl);
        const int64_t offset = static_cast<int64_t>(numbers.size());
        parts.push_back({offset, sys.n_atoms, sys.n_atoms, static_cast<int64_t>(centers.size()),
                         static_cast<int64_t>(nl.size())});
        numbers.insert(numbers.end(), sys.numbers, sys.numbers + sys.n_atoms);
        for (size_t e = 0; e < nl.size(); ++e) {
            centers.push_back(nl.centers[e] + offset);
            neighbors.push_back(nl.neighbors[e] + offset);
        }
        vectors.insert(vectors.end(), nl.vectors.begin(), nl.vectors.end());
    }
    Graph g;
    g.numbers = numbers.data();
    g.n_nodes = static_cast<int64_t>(numbers.size());
    g.n_energy_nodes = g.n_nodes;
    g.centers = centers.data();
    g.neighbors = neighbors.data();
    g.vectors = vectors.data();
    g.n_edges = static_cast<int64_t>(centers.size());
    return impl_->evaluate(g, parts, request);
}

Results Model::compute_graph(const Graph& g, const Request& request) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (g.n_nodes <= 0) throw Error(Error::InvalidInput, "empty graph: no atoms to evaluate");
    if (g.n_energy_nodes < 0 || g.n_energy_nodes > g.n_nodes) {
        throw Error(Error::InvalidInput, "n_energy_nodes must lie in [0, n_nodes]");
    }
    if (g.n_edges < 0) throw Error(Error::InvalidInput, "negative number of edges");
    impl_->check_numbers(g.numbers, g.n_nodes);
    for (int64_t e = 0; e < g.n_edges; ++e) {
        if (g.centers[e] < 0 || g.centers[e] >= g.n_nodes || g.neighbors[e] < 0 ||
            g.neighbors[e] >= g.n_nodes) {
            std::ostringstream msg;
            msg << "edge " << e << " refers to atom " << g.centers[e] << " -> " << g.neighbors[e]
                << ", outside [0, " << g.n_nodes << ")";
            throw Error(Error::InvalidInput, msg.str());
        }
        for (int c = 0; c < 3; ++c) {
            if (!std::isfinite(g.vectors[3 * e + c])) {
                std::ostringstream msg;
                msg << "edge vector " << e << " is not finite";
                throw Error(Error::InvalidInput, msg.str());
            }
        }
    }
    return impl_->evaluate_one(g, request);
}

}  // namespace symprobe
