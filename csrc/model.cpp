// The model evaluation stage: loads a TorchScript model through the model contract (or hands a
// metatomic archive to metatomic.cpp), checks its outputs and runs it; Model hands the rows of
// an evaluation (edge vectors, or positions and cell rows) to the symmetrisation stage
// (symmetrize.cpp) and turns their lab-frame gradient into forces and virials.
#include "symprobe/symprobe.hpp"
#include "cpu_cache.hpp"
#include "metatomic.hpp"
#include "symmetrize.hpp"

#include <caffe2/serialize/inline_container.h>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <fstream>
#include <sstream>

namespace symprobe {
namespace {

constexpr const char* METADATA_FILE = "metadata.json";

// Net torque sum_i x_i x F_i from the virial W = -sum_e r_e (x) dE/dr_e: eps_abc W_bc.
std::array<double, 3> net_torque(const std::array<double, 9>& W) {
    return {W[5] - W[7], W[6] - W[2], W[1] - W[3]};
}

// First line of a torch error: the rest is a C++ stack trace users do not need.
std::string short_message(const std::exception& e) {
    std::string what = e.what();
    auto nl = what.find('\n');
    return nl == std::string::npos ? what : what.substr(0, nl);
}

}  // namespace

namespace detail {
// Positions wrapped into the cell along periodic axes, in Angstrom (neighbors.cpp).
std::vector<double> wrapped_positions(const double* positions, int64_t n_atoms, const double* cell,
                                      const bool* pbc);
}  // namespace detail

namespace detail {
// ModelFailure message of an exception raised inside the TorchScript code.
std::string model_error(const std::string& path, const std::exception& e) {
    std::string what = e.what();
    // TorchScript interpreter errors carry the Python-level message after the traceback
    auto pos = what.rfind("RuntimeError: ");
    std::string core = pos == std::string::npos ? short_message(e) : what.substr(pos);
    while (!core.empty() && (core.back() == '\n' || core.back() == ' ')) core.pop_back();
    return path + ": the model raised an error during evaluation: " + core;
}
}  // namespace detail
using detail::model_error;

namespace detail {
bool is_metatomic_archive(const std::string& path) {
    try {
        caffe2::serialize::PyTorchStreamReader reader(path);
        return reader.hasRecord("extra/metatomic-version");
    } catch (const std::exception&) {
        return false;  // not a zip archive: torch::jit::load names the problem
    }
}

#ifndef SYMPROBE_METATOMIC
std::unique_ptr<MetatomicModel> load_metatomic_model(const std::string& path, torch::Device) {
    throw Error(Error::InvalidModel,
                "model file '" + path + "' is a metatomic model, and this symprobe was built without "
                "the metatomic backend: install it with pip install 'symprobe[metatomic]' (or pip install "
                "metatomic-torch), then rebuild symprobe (bash setup.sh, or pip install "
                "--no-build-isolation -e .) so that CMake finds the metatomic_torch package");
}
#endif
}  // namespace detail

struct Model::Impl {
    std::string path;
    ModelOptions options;
    ModelMetadata metadata;
    torch::jit::Module module;                        // a symprobe-contract model
    std::unique_ptr<detail::MetatomicModel> metatomic;  // or a metatomic one
    torch::Device device{torch::kCPU};
    torch::Dtype dtype = torch::kFloat64;
    VerletList verlet;
    std::vector<bool> allowed;  // allowed[Z]
    std::optional<detail::Symmetrizer> symmetrizer;
    std::optional<detail::Symmetrizer> plain_stage;  // requests with symmetrize = false
    detail::BatchTuner batch_tuner;  // structures per model call when options.batch = 0
    detail::MemoryBudget memory{0.0};  // of one model call, shared by chunk and batch
    uint64_t rotation_step = 0;  // the step of requests without one (random modes)
    std::mutex mutex;            // a Model has state (Verlet list, step counter, chunk tuner)

    // The symmetrisation stage of a request: the options' rotations, or the plain model.
    detail::Symmetrizer& stage(const Request& request) {
        if (request.symmetrize || options.rotations.mode == RotationOptions::None) return *symmetrizer;
        if (!plain_stage) plain_stage.emplace(RotationOptions{}, device, dtype, path, &memory);
        return *plain_stage;
    }

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

        if (detail::is_metatomic_archive(path)) {
            metatomic = detail::load_metatomic_model(path, device);
            metadata = metatomic->metadata();
            dtype = metadata.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
            if (options.atoms > 0) {
                throw Error(Error::InvalidInput, "option atoms: evaluating in pieces is available for "
                                                 "symprobe-contract models only, not for the metatomic model '" + path + "'");
            }
            if (options.direct_forces) metatomic->use_direct_forces();
        } else {
            load_contract_model();
            if (options.direct_forces) {
                throw Error(Error::InvalidInput, "forces direct: the symprobe-contract model '" + path +
                                                     "' predicts only an energy; direct forces are outputs of "
                                                     "metatomic models that offer non_conservative_force");
            }
        }
        allowed.assign(119, false);
        for (int z : metadata.elements) allowed[z] = true;
        verlet = VerletList(metadata.cutoff, options.skin, std::max(1, options.threads));
        memory = detail::MemoryBudget(options.memory_mb > 0 ? options.memory_mb * 1048576.0
                                                            : detail::MemoryBudget::half_available(device));
        symmetrizer.emplace(options.rotations, device, dtype, path, &memory);
    }

    // The option correction torque-free on the results of one whole structure.
    void correct(Results& r, const double* positions, const int32_t* numbers, int64_t n_atoms,
                 const bool* pbc, const Request& request) const {
        if (!options.torque_free) return;
        if (!(pbc[0] || pbc[1] || pbc[2])) {
            if (request.energy_atoms >= 0 && request.energy_atoms < n_atoms) {
                throw Error(Error::InvalidInput, "correction torque-free: a non-periodic system needs all its "
                                                 "atoms in one evaluation (not a domain with ghost atoms)");
            }
            if (request.atomic_virials) {
                throw Error(Error::InvalidInput, "correction torque-free: per-atom virials of a non-periodic "
                                                 "system are not available");
            }
            if (!request.forces) {
                if (request.virial) {
                    throw Error(Error::InvalidInput, "correction torque-free: the virial of a non-periodic "
                                                     "system follows the corrected forces; request forces too");
                }
                return;
            }
            remove_net_force_and_torque(r.forces.data(), positions, request.masses, numbers, n_atoms,
                                        request.virial ? r.virial.data() : nullptr);
            return;
        }
        symmetrize_virial(r.virial.data());
        if (request.atomic_virials)
            for (int64_t i = 0; i < n_atoms; ++i) symmetrize_virial(&r.atomic_virials[9 * i]);
    }

    void load_contract_model() {
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
        if (metadata.layers > 0 && !(module.find_method("embed") && module.find_method("layer"))) {
            throw Error(Error::InvalidModel, "model file '" + path + "': metadata gives layers but the model lacks "
                                             "the methods embed and layer (docs/model-contract.md)");
        }
        module.eval();
        // the core differentiates with respect to positions only: no weight gradients, and
        // energy-only calls record no graph
        for (auto parameter : module.parameters()) parameter.requires_grad_(false);
        dtype = metadata.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
        check_weight_dtype();
    }

    // Weights in another dtype than the metadata's would make the model compute in a precision
    // nobody asked for (or fail inside its first matmul).
    void check_weight_dtype() const {
        auto check = [&](const std::string& kind, const std::string& name, const torch::Tensor& t) {
            if (t.is_floating_point() && t.scalar_type() != dtype) {
                throw Error(Error::InvalidModel,
                            "model file '" + path + "': metadata says dtype " + metadata.dtype + " but " +
                                kind + " '" + name + "' is " + std::string(c10::toString(t.scalar_type())) +
                                "; export the model in one dtype (symprobe.export_model(..., dtype=...) "
                                "converts the weights and writes the matching metadata)");
            }
        };
        for (const auto& p : module.named_parameters()) check("parameter", p.name, p.value);
        for (const auto& b : module.named_buffers()) check("buffer", b.name, b.value);
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

    // The model evaluation stage: runs the model on one (possibly batched) graph and checks the
    // contract's output.
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

    // (features [n, F], energies [n] in float64) of what `embed` or `layer` (named by `what`)
    // returned for n nodes; a contract error otherwise.
    std::pair<torch::Tensor, torch::Tensor> layer_outputs(const torch::IValue& out, const std::string& what, int64_t n) const {
        const bool pair = out.isTuple() && out.toTupleRef().elements().size() == 2 &&
                          out.toTupleRef().elements()[0].isTensor() && out.toTupleRef().elements()[1].isTensor();
        if (!pair) {
            throw Error(Error::ModelFailure, path + ": " + what + " must return a tuple (features, energies) of two "
                                                                  "tensors (docs/model-contract.md)");
        }
        torch::Tensor features = out.toTupleRef().elements()[0].toTensor(), energies = out.toTupleRef().elements()[1].toTensor();
        if (features.dim() != 2 || features.size(0) != n || features.size(1) != metadata.features || energies.dim() != 1 ||
            energies.size(0) != n) {
            std::ostringstream msg;
            msg << path << ": " << what << " returned features of shape " << features.sizes() << " and energies of shape "
                << energies.sizes() << "; the contract requires [" << n << ", " << metadata.features << "] and [" << n << "]";
            throw Error(Error::ModelFailure, msg.str());
        }
        // a copy of the energies: the pieces add to them in place
        return {features, energies.to(torch::kFloat64, false, true)};
    }

    // One layer of a layered model: (features after it, its per-atom energies in float64).
    std::pair<torch::Tensor, torch::Tensor> call_layer(int64_t k, const torch::Tensor& species, const torch::Tensor& features,
                                                       const torch::Tensor& centers, const torch::Tensor& neighbors,
                                                       const torch::Tensor& vectors) {
        std::optional<torch::jit::GraphOptimizerEnabledGuard> unoptimised;  // as in run_model
        if (device.is_cpu()) unoptimised.emplace(false);
        return layer_outputs(module.get_method("layer")({k, species, features, centers, neighbors, vectors}),
                             "layer " + std::to_string(k), species.size(0));
    }

    // A layered model, layer by layer: energies [c * n] of c copies. With an exchange, the
    // features of other processes' nodes are replaced between layers. With pieces, each layer
    // runs piece by piece without recording autograd (layered_gradient recomputes a piece's
    // layer when it needs it), so that memory holds one piece's activations and every node's
    // features per layer. The tensors the backward pass needs are kept in `state`.
    torch::Tensor run_layers(detail::Layered& state, const torch::Tensor& species, const torch::Tensor& centers,
                             const torch::Tensor& neighbors, const torch::Tensor& vectors) {
        state.clear();
        const int64_t copies = species.size(0) / state.n_nodes;
        const bool pieces = !state.pieces.empty();
        torch::Tensor energies;
        try {
            std::optional<torch::NoGradGuard> no_grad;
            if (pieces) no_grad.emplace();
            std::optional<torch::jit::GraphOptimizerEnabledGuard> unoptimised;
            if (device.is_cpu()) unoptimised.emplace(false);
            auto [features, embedded] = layer_outputs(module.get_method("embed")({species}), "embed", species.size(0));
            energies = embedded;
            state.species = species;
            state.vectors = vectors.detach();
            for (int64_t k = 0; k < metadata.layers; ++k) {
                if (k > 0) features = state.forward(features, copies);
                state.inputs.push_back(features);
                if (!pieces) {
                    auto [next, layer_energies] = call_layer(k, species, features, centers, neighbors, vectors);
                    features = next;
                    state.outputs.push_back(next);
                    state.layer_energies.push_back(layer_energies);
                    energies = energies + layer_energies;
                    continue;
                }
                torch::Tensor next = torch::zeros_like(features);  // rows of nodes in no piece: exchanged
                for (int64_t copy = 0; copy < copies; ++copy) {
                    for (const detail::Layered::Piece& p : state.pieces) {
                        const torch::Tensor nodes = p.nodes + copy * state.n_nodes, edges = p.edges + copy * state.n_edges;
                        auto [out, layer_energies] = call_layer(k, species.index_select(0, nodes), features.index_select(0, nodes),
                                                                p.centers, p.neighbors, vectors.index_select(0, edges));
                        const torch::Tensor own = nodes.narrow(0, 0, p.n_centres);
                        next.index_copy_(0, own, out.narrow(0, 0, p.n_centres));
                        energies.index_add_(0, own, layer_energies.narrow(0, 0, p.n_centres));
                    }
                }
                features = next;
            }
            // with pieces, the energies are where layered_gradient starts: a leaf
            state.energies = pieces ? energies.detach().requires_grad_(true) : energies;
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw Error(Error::ModelFailure, model_error(path, e));
        }
        return state.energies;
    }

    // d total / d input through the layers, each layer's backward pass once: from the top, a
    // layer's energies and output features (their gradient carried down from the layer above,
    // the other processes' shares added by the exchange) back to its input features and the
    // vectors. With pieces, a piece's layer is evaluated again, recording autograd, and its
    // backward pass follows at once.
    torch::Tensor layered_gradient(detail::Layered& state, const torch::Tensor& total, const torch::Tensor& input) {
        const int64_t layers = static_cast<int64_t>(state.inputs.size());
        const int64_t copies = input.size(0);
        const bool pieces = !state.pieces.empty();
        try {
            // every process makes the exchanges, also one whose energy depends on nothing
            torch::Tensor per_atom;  // d total / d (per-atom energies), shared by every layer
            if (total.requires_grad()) per_atom = torch::autograd::grad({total}, {state.energies}, {}, true, false, true)[0];
            if (!per_atom.defined()) per_atom = torch::zeros_like(state.energies);
            torch::Tensor gradient = torch::zeros_like(input);
            torch::Tensor rows = pieces ? gradient.view({-1, 3}) : torch::Tensor();  // [c * E, 3]
            torch::Tensor carried;  // d total / d (features after layer k), own rows complete
            // one layer's backward pass: outputs weighted by the energies' and features' gradients
            const auto backward = [&](const torch::Tensor& layer_energies, const torch::Tensor& features_out,
                                      const torch::Tensor& energy_weights, const torch::Tensor& feature_weights,
                                      const std::vector<torch::Tensor>& wrt) {
                std::vector<torch::Tensor> outputs, weights;
                if (layer_energies.requires_grad()) {
                    outputs.push_back(layer_energies);
                    weights.push_back(energy_weights);
                }
                if (feature_weights.defined() && features_out.requires_grad()) {
                    outputs.push_back(features_out);
                    weights.push_back(feature_weights);
                }
                if (outputs.empty()) return std::vector<torch::Tensor>(wrt.size());
                return torch::autograd::grad(outputs, wrt, weights, false, false, true);
            };
            for (int64_t k = layers - 1; k >= 0; --k) {
                torch::Tensor below;  // d total / d (features entering layer k)
                if (!pieces) {
                    std::vector<torch::Tensor> wrt{input};
                    if (k >= 1) wrt.push_back(state.inputs[k]);
                    auto grads = backward(state.layer_energies[k], state.outputs[k], per_atom, carried, wrt);
                    if (grads[0].defined()) gradient = gradient + grads[0];
                    if (k >= 1) below = grads[1].defined() ? grads[1] : torch::zeros_like(state.inputs[k]);
                } else {
                    if (k >= 1) below = torch::zeros_like(state.inputs[k]);
                    for (int64_t copy = 0; copy < copies; ++copy) {
                        for (const detail::Layered::Piece& p : state.pieces) {
                            const torch::Tensor nodes = p.nodes + copy * state.n_nodes, edges = p.edges + copy * state.n_edges;
                            const torch::Tensor own = nodes.narrow(0, 0, p.n_centres);
                            torch::Tensor features = state.inputs[k].index_select(0, nodes).detach().requires_grad_(k >= 1);
                            torch::Tensor vectors = state.vectors.index_select(0, edges).requires_grad_(true);
                            auto [out, layer_energies] = call_layer(k, state.species.index_select(0, nodes), features,
                                                                    p.centers, p.neighbors, vectors);
                            std::vector<torch::Tensor> wrt{vectors};
                            if (k >= 1) wrt.push_back(features);
                            auto grads = backward(layer_energies.narrow(0, 0, p.n_centres), out.narrow(0, 0, p.n_centres),
                                                  per_atom.index_select(0, own),
                                                  carried.defined() ? carried.index_select(0, own) : torch::Tensor(), wrt);
                            if (grads[0].defined()) rows.index_add_(0, edges, grads[0]);
                            if (k >= 1 && grads[1].defined()) below.index_add_(0, nodes, grads[1]);
                        }
                    }
                }
                if (k >= 1) carried = state.reverse(below, copies);
            }
            state.clear();
            return gradient;
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw Error(Error::ModelFailure, model_error(path, e));
        }
    }

    // Evaluates a graph made of independent parts (structures): per part, energy, forces,
    // virial and diagnostics. The graph crosses to the model's device once.
    std::vector<Results> evaluate(const Graph& g, const std::vector<detail::Part>& parts, const Request& request) {
        if (metatomic) {
            throw Error(Error::InvalidInput, "the metatomic model '" + path + "' takes positions, a cell and "
                                             "neighbour lists with integer cell shifts; a graph of edge vectors "
                                             "(compute_graph) serves symprobe-contract models only");
        }
        // forces need autograd even if the caller is in inference mode: no tensor of this
        // evaluation may be an inference tensor
        c10::InferenceMode no_inference(false);
        std::optional<detail::CpuCacheScope> cache;  // large CPU blocks reused (cpu_cache.hpp)
        if (device.is_cpu()) cache.emplace();
        const int64_t n = g.n_nodes, n_edges = g.n_edges;
        auto i32 = torch::TensorOptions().dtype(torch::kInt32);
        auto i64 = torch::TensorOptions().dtype(torch::kInt64);
        auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
        // from_blob does not own the caller's memory; it is only read
        torch::Tensor species, centers, neighbors;
        detail::RotatingInput in;
        {
            RECORD_USER_SCOPE("symprobe::stage_graph");
            species = torch::from_blob(const_cast<int32_t*>(g.numbers), {n}, i32).to(device, torch::kInt64);
            centers = torch::from_blob(const_cast<int64_t*>(g.centers), {n_edges}, i64).to(device);
            neighbors = torch::from_blob(const_cast<int64_t*>(g.neighbors), {n_edges}, i64).to(device);
            in.rows = torch::from_blob(const_cast<double*>(g.vectors), {n_edges, 3}, f64).to(device);
        }
        in.n_nodes = n;
        in.edges = n_edges;
        // c rotated copies as one graph, nodes offset by copy; a graph with a feature exchange
        // runs layer by layer, and a layered model runs its layers in pieces (without halos)
        // where the option atoms or the memory budget asks for them
        const int64_t piece = metadata.layers > 0 && parts.size() == 1 ? piece_atoms(g.n_energy_nodes, n_edges) : 0;
        const bool layers = g.exchange != nullptr || piece > 0;
        detail::Layered layered;
        layered.exchange = g.exchange;
        layered.n_nodes = n;
        layered.n_edges = n_edges;
        layered.record = request.forces || request.virial || request.atomic_virials;
        if (piece > 0) layered.pieces = layer_pieces(g, piece);
        in.collective = g.exchange != nullptr;
        in.keeps_activations = piece == 0;
        in.energies = [&](const torch::Tensor& rows, int64_t c) {
            torch::Tensor s = species, ce = centers, nb = neighbors;
            if (c > 1) {
                torch::Tensor offsets = torch::arange(c, i64.device(device)).mul_(n).unsqueeze(1);
                s = species.repeat({c});
                ce = (centers.unsqueeze(0) + offsets).reshape({-1});
                nb = (neighbors.unsqueeze(0) + offsets).reshape({-1});
            }
            torch::Tensor vectors = rows.reshape({c * n_edges, 3});
            return (layers ? run_layers(layered, s, ce, nb, vectors) : run_model(s, ce, nb, vectors)).view({c, n});
        };
        if (layers) {
            in.gradient = [&](const torch::Tensor& total, const torch::Tensor& input) {
                return layered_gradient(layered, total, input);
            };
        }
        // r_e = x_j - x_i + S.cell: dE/dx_i = -sum g_e (i centre) + sum g_e (i neighbour)
        in.forces = [&](const torch::Tensor& gradient) {
            torch::Tensor forces = torch::zeros({gradient.size(0), n, 3}, gradient.options());
            return forces.index_add_(1, centers, gradient).index_add_(1, neighbors, -gradient);
        };
        const uint64_t step = request.step >= 0 ? static_cast<uint64_t>(request.step) : rotation_step;
        detail::Symmetrized sym = stage(request).evaluate(in, parts, request, step);
        RECORD_USER_SCOPE("symprobe::forces_and_virial");
        return collect(sym, parts, request, [&](size_t p, const double* grad, Results& res) {
            forces_and_virials(g, parts[p], grad, request, res);
        });
    }

    // Evaluates structures with a metatomic model, all in one forward call per rotation chunk.
    // The rows it differentiates are every structure's positions and cell rows, so forces are
    // -dE/dx and the virial -sum_rows r (x) dE/dr (the strain derivative).
    std::vector<Results> evaluate_structures(const std::vector<detail::Structure>& structures, const Request& request) {
        if (request.atomic_virials) {
            throw Error(Error::InvalidInput, "per-atom virials are not available for the metatomic model '" + path +
                                                 "' (the model gives no per-edge gradient to split)");
        }
        c10::InferenceMode no_inference(false);
        std::optional<detail::CpuCacheScope> cache;
        if (device.is_cpu()) cache.emplace();
        std::vector<double> rows;
        std::vector<detail::Part> parts;
        int64_t n_atoms = 0, n_edges = 0;
        for (const detail::Structure& s : structures) {
            parts.push_back({n_atoms, s.n_atoms, s.n_energy, static_cast<int64_t>(rows.size() / 3), s.n_atoms + 3});
            rows.insert(rows.end(), s.positions, s.positions + 3 * s.n_atoms);
            for (int a = 0; a < 3; ++a)
                for (int c = 0; c < 3; ++c) rows.push_back(s.pbc[a] ? s.cell[3 * a + c] : 0.0);
            n_atoms += s.n_atoms;
            n_edges += static_cast<int64_t>(s.list->size());
        }
        const int64_t m = static_cast<int64_t>(rows.size() / 3);
        detail::RotatingInput in;
        std::unique_ptr<detail::MetatomicModel::Staged> staged;
        {
            RECORD_USER_SCOPE("symprobe::stage_graph");
            in.rows = torch::from_blob(rows.data(), {m, 3}, torch::TensorOptions().dtype(torch::kFloat64)).to(device);
            staged = metatomic->stage(structures);
        }
        in.n_nodes = n_atoms;
        in.edges = n_edges;
        in.energies = [&](const torch::Tensor& r, int64_t c) { return metatomic->energies(*staged, r, c); };
        std::vector<int64_t> position_rows;
        for (const detail::Part& p : parts)
            for (int64_t i = 0; i < p.n_nodes; ++i) position_rows.push_back(p.edge_begin + i);
        torch::Tensor atom_rows = torch::tensor(position_rows, torch::TensorOptions().dtype(torch::kInt64)).to(device);
        in.forces = [&](const torch::Tensor& gradient) { return -gradient.index_select(1, atom_rows); };
        const uint64_t step = request.step >= 0 ? static_cast<uint64_t>(request.step) : rotation_step;
        if (options.direct_forces) return evaluate_direct(structures, parts, in, request, step);
        detail::Symmetrized sym = stage(request).evaluate(in, parts, request, step);
        RECORD_USER_SCOPE("symprobe::forces_and_virial");
        return collect(sym, parts, request, [&](size_t p, const double* grad, Results& res) {
            const detail::Part& part = parts[p];
            std::vector<double> forces(3 * part.n_nodes);
            for (int64_t i = 0; i < 3 * part.n_nodes; ++i) {
                forces[i] = -grad[3 * part.edge_begin + i];
                if (!std::isfinite(forces[i])) {
                    throw Error(Error::ModelFailure, path + ": the model produced non-finite forces");
                }
                res.diagnostics.net_force[i % 3] += forces[i];
            }
            for (int64_t r = part.edge_begin; r < part.edge_begin + part.n_edges; ++r)
                for (int a = 0; a < 3; ++a)
                    for (int b = 0; b < 3; ++b) res.virial[3 * a + b] -= rows[3 * r + a] * grad[3 * r + b];
            res.diagnostics.net_torque = net_torque(res.virial);
            if (request.forces) res.forces = std::move(forces);
        });
    }

    // forces direct: the energy through the symmetrisation stage without derivatives, and the
    // model's own forces and stresses, each copy's rotated back (F R, R^T sigma R) and averaged
    // with the rotation weights. The net force of each structure is removed (reported in the
    // diagnostics); the virial is -sigma V for a periodic structure and sum_i x_i (x) F_i for a
    // finite one.
    std::vector<Results> evaluate_direct(const std::vector<detail::Structure>& structures,
                                         const std::vector<detail::Part>& parts, detail::RotatingInput& in,
                                         const Request& request, uint64_t step) {
        if (request.forces_rms_spread) {
            throw Error(Error::InvalidInput, "forces_rms_spread is a spread of energy gradients; it is not "
                                             "available with forces direct");
        }
        const int64_t n_structures = static_cast<int64_t>(structures.size());
        auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
        torch::Tensor forces = torch::zeros({in.n_nodes, 3}, f64);
        torch::Tensor stress = torch::zeros({n_structures, 3, 3}, f64);
        in.rotated_outputs = [&](const torch::Tensor& R, const torch::Tensor& w) {
            torch::Tensor f = metatomic->direct_forces().to(torch::kFloat64);  // [c, n, 3]
            forces += (torch::matmul(f, R) * w.view({-1, 1, 1})).sum(0);
            if (metatomic->has_direct_stress()) {
                torch::Tensor sigma = metatomic->direct_stress().to(torch::kFloat64);  // [c, S, 3, 3]
                torch::Tensor Rs = R.unsqueeze(1);
                stress += (torch::matmul(Rs.transpose(2, 3), torch::matmul(sigma, Rs)) * w.view({-1, 1, 1, 1})).sum(0);
            }
        };
        Request energy_only = request;
        energy_only.forces = energy_only.virial = false;
        detail::Symmetrized sym = stage(energy_only).evaluate(in, parts, energy_only, step);
        std::vector<Results> results = collect(sym, parts, energy_only, nullptr);
        torch::Tensor f_host = forces.cpu().contiguous(), s_host = stress.cpu().contiguous();
        for (size_t p = 0; p < parts.size(); ++p) {
            const detail::Part& part = parts[p];
            const detail::Structure& st = structures[p];
            Results& res = results[p];
            const double* f = f_host.data_ptr<double>() + 3 * part.node_begin;
            std::vector<double> out(f, f + 3 * part.n_nodes);
            for (int64_t i = 0; i < 3 * part.n_nodes; ++i) res.diagnostics.net_force[i % 3] += out[i];
            for (int64_t i = 0; i < 3 * part.n_nodes; ++i) {
                out[i] -= res.diagnostics.net_force[i % 3] / static_cast<double>(part.n_nodes);
                if (!std::isfinite(out[i])) throw Error(Error::ModelFailure, path + ": the model produced non-finite forces");
            }
            const bool periodic = st.pbc[0] && st.pbc[1] && st.pbc[2];
            if (request.virial && periodic) {
                if (!metatomic->has_direct_stress()) {
                    throw Error(Error::InvalidInput, "forces direct: the metatomic model '" + path + "' has no "
                                                     "non_conservative_stress output, so the virial of a periodic "
                                                     "structure is not available");
                }
                const double* c = st.cell;
                const double volume = std::abs(c[0] * (c[4] * c[8] - c[5] * c[7]) - c[1] * (c[3] * c[8] - c[5] * c[6]) +
                                               c[2] * (c[3] * c[7] - c[4] * c[6]));
                for (int k = 0; k < 9; ++k) res.virial[k] = -volume * s_host.data_ptr<double>()[9 * p + k];
            } else if (request.virial) {
                for (int64_t i = 0; i < part.n_nodes; ++i)
                    for (int a = 0; a < 3; ++a)
                        for (int b = 0; b < 3; ++b) res.virial[3 * a + b] += st.positions[3 * i + a] * out[3 * i + b];
            }
            res.diagnostics.net_torque = net_torque(res.virial);
            if (request.forces) res.forces = std::move(out);
        }
        return results;
    }

    // Per part: energy and diagnostics from the stage's output, then forces and virial from the
    // lab-frame gradient of the part's rows.
    std::vector<Results> collect(const detail::Symmetrized& sym, const std::vector<detail::Part>& parts,
                                 const Request& request,
                                 const std::function<void(size_t, const double*, Results&)>& forces_and_virial) {
        const bool need_grad = request.forces || request.virial || request.atomic_virials;
        std::vector<Results> results(parts.size());
        const std::vector<double>& weights = stage(request).weights();
        const int64_t n_rot = sym.copy_energies.size(0);
        torch::Tensor by_part = sym.copy_energies.t().contiguous();  // [parts, G]
        for (size_t p = 0; p < parts.size(); ++p) {
            Results& res = results[p];
            const detail::Part& part = parts[p];
            const double* e_rot = by_part.data_ptr<double>() + p * n_rot;
            RotationStatistics stats = rotation_statistics(weights, e_rot);
            res.energy = stats.mean;
            if (!std::isfinite(res.energy)) {
                throw Error(Error::ModelFailure, path + ": the model returned a non-finite energy");
            }
            res.diagnostics.rotation_energies.assign(e_rot, e_rot + n_rot);
            res.diagnostics.energy_std = stats.std;
            res.diagnostics.energy_spread = stats.spread;
            if (request.energies) {
                const double* ae = sym.atom_energies.data_ptr<double>() + part.node_begin;
                res.energies.assign(ae, ae + part.n_nodes);
            }
            if (!sym.forces_rms_spread.empty()) res.diagnostics.forces_rms_spread = sym.forces_rms_spread[p];
            if (need_grad && forces_and_virial) forces_and_virial(p, sym.gradient.data_ptr<double>(), res);
        }
        // only successful evaluations advance the stream
        if (request.step < 0 && request.symmetrize && options.rotations.random()) rotation_step++;
        return results;
    }

    // Forces, virial and per-atom virials of one part from the lab-frame edge gradient:
    // r_e = x_j - x_i + S.cell, so dE/dx_i = -sum g_e (i centre) + sum g_e (i neighbour).
    void forces_and_virials(const Graph& g, const detail::Part& part, const double* grad,
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
        res.diagnostics.net_torque = net_torque(res.virial);
        if (request.forces) res.forces = std::move(forces);
    }

    Results evaluate_one(const Graph& g, const Request& request) {
        // a layered model evaluates its layers in pieces inside evaluate()
        if (metadata.layers == 0 && piece_atoms(g.n_energy_nodes, g.n_edges) > 0) return evaluate_in_pieces(g, request);
        return std::move(evaluate(g, {detail::Part{0, g.n_nodes, g.n_energy_nodes, 0, g.n_edges}}, request)[0]);
    }

    // Atoms per piece of a system with these energy atoms and edges, 0 for the whole system at
    // once: the option atoms; without it, for a layered model whose evaluation would not fit
    // into the memory budget, pieces that do (by the measured bytes per edge, or, before any
    // measurement, 16 x features x layers values of the model's dtype per edge), of at most
    // 4096 atoms: larger pieces are slower per atom (water-pet: 98304 atoms in 2 pieces took 3x
    // the time per atom of pieces of 4096, docs/scaling.md).
    int64_t piece_atoms(int64_t n_energy, int64_t n_edges) const {
        if (options.atoms > 0) return n_energy > options.atoms ? options.atoms : 0;
        if (metadata.layers == 0 || memory.budget() <= 0.0 || n_energy <= 0) return 0;
        const double value_bytes = dtype == torch::kFloat32 ? 4.0 : 8.0;
        const double per_edge = memory.per_edge() > 0.0 ? memory.per_edge()
                                                        : 16.0 * metadata.features * metadata.layers * value_bytes;
        if (per_edge * static_cast<double>(n_edges) <= memory.budget()) return 0;
        const double edges_per_atom = std::max(1.0, static_cast<double>(n_edges) / static_cast<double>(n_energy));
        const double fit = memory.budget() / (per_edge * edges_per_atom);
        return std::max<int64_t>(64, static_cast<int64_t>(std::min(fit, 4096.0)));
    }

    // The energy nodes in pieces of at most `size`. With positions: boxes, by bisecting
    // the widest extent until a box holds few enough atoms (a piece's halo grows with its
    // surface). Without: grown breadth-first over the graph, small leftovers sharing a piece.
    std::vector<std::vector<int64_t>> pieces(const Graph& g, const std::vector<int64_t>& first,
                                             const std::vector<int64_t>& by_centre, int64_t size) const {
        const int64_t n_energy = g.n_energy_nodes;
        std::vector<std::vector<int64_t>> out;
        if (g.positions != nullptr) {
            std::vector<int64_t> all(n_energy);
            for (int64_t i = 0; i < n_energy; ++i) all[i] = i;
            std::vector<std::pair<int64_t, int64_t>> todo{{0, n_energy}};  // ranges of `all`
            while (!todo.empty()) {
                const auto [begin, end] = todo.back();
                todo.pop_back();
                if (end - begin <= size) {
                    out.emplace_back(all.begin() + begin, all.begin() + end);
                    continue;
                }
                int axis = 0;
                double widest = -1.0;
                for (int c = 0; c < 3; ++c) {
                    double lo = INFINITY, hi = -INFINITY;
                    for (int64_t k = begin; k < end; ++k) {
                        lo = std::min(lo, g.positions[3 * all[k] + c]);
                        hi = std::max(hi, g.positions[3 * all[k] + c]);
                    }
                    if (hi - lo > widest) widest = hi - lo, axis = c;
                }
                // split so that both halves hold whole numbers of full pieces where possible
                const int64_t n_pieces = (end - begin + size - 1) / size;
                const int64_t middle = begin + (end - begin) * (n_pieces / 2) / n_pieces;
                std::nth_element(all.begin() + begin, all.begin() + middle, all.begin() + end,
                                 [&](int64_t a, int64_t b) { return g.positions[3 * a + axis] < g.positions[3 * b + axis]; });
                todo.push_back({begin, middle});
                todo.push_back({middle, end});
            }
            return out;
        }
        std::vector<int64_t> piece_of(n_energy, -1);
        std::vector<int64_t> grown;
        for (int64_t seed = 0; seed < n_energy; ++seed) {
            if (piece_of[seed] >= 0) continue;
            grown.assign(1, seed);
            piece_of[seed] = 1;
            for (size_t head = 0; head < grown.size() && static_cast<int64_t>(grown.size()) < size; ++head) {
                const int64_t u = grown[head];
                for (int64_t k = first[u]; k < first[u + 1]; ++k) {
                    const int64_t v = g.neighbors[by_centre[k]];
                    if (v >= n_energy || piece_of[v] >= 0 || static_cast<int64_t>(grown.size()) >= size) continue;
                    piece_of[v] = 1;
                    grown.push_back(v);
                }
            }
            if (!out.empty() && static_cast<int64_t>(out.back().size() + grown.size()) <= size) {
                out.back().insert(out.back().end(), grown.begin(), grown.end());
            } else {
                out.push_back(grown);
            }
        }
        return out;
    }

    // Edges grouped by centre (the model contract allows any order): those of node i are
    // by_centre[first[i] .. first[i + 1]).
    static void edges_by_centre(const Graph& g, std::vector<int64_t>& first, std::vector<int64_t>& by_centre) {
        first.assign(g.n_nodes + 1, 0);
        by_centre.resize(g.n_edges);
        for (int64_t e = 0; e < g.n_edges; ++e) first[g.centers[e] + 1]++;
        for (int64_t i = 0; i < g.n_nodes; ++i) first[i + 1] += first[i];
        std::vector<int64_t> fill(first.begin(), first.end() - 1);
        for (int64_t e = 0; e < g.n_edges; ++e) by_centre[fill[g.centers[e]]++] = e;
    }

    // The pieces of a layered evaluation: the energy nodes in pieces(), the other nodes (unless
    // an exchange brings theirs) in runs of at most `size`; each piece's graph is its centres
    // and the nodes their edges reach.
    std::vector<detail::Layered::Piece> layer_pieces(const Graph& g, int64_t size) const {
        std::vector<int64_t> first, by_centre;
        edges_by_centre(g, first, by_centre);
        std::vector<std::vector<int64_t>> partition = pieces(g, first, by_centre, size);
        // with an exchange the other nodes have no edges and their features come from their
        // owners: nothing to evaluate
        for (int64_t a = g.n_energy_nodes; a < g.n_nodes && !g.exchange; a += size) {
            partition.emplace_back();
            for (int64_t v = a; v < std::min(g.n_nodes, a + size); ++v) partition.back().push_back(v);
        }
        std::vector<int64_t> local(g.n_nodes, -1);
        std::vector<detail::Layered::Piece> out;
        const auto tensor = [&](const std::vector<int64_t>& v) {
            return torch::tensor(v, torch::TensorOptions().dtype(torch::kInt64)).to(device);
        };
        for (const std::vector<int64_t>& centres : partition) {
            std::vector<int64_t> nodes(centres), edges, centers, neighbors;
            for (size_t c = 0; c < centres.size(); ++c) local[centres[c]] = static_cast<int64_t>(c);
            for (size_t c = 0; c < centres.size(); ++c) {
                for (int64_t k = first[centres[c]]; k < first[centres[c] + 1]; ++k) {
                    const int64_t e = by_centre[k], v = g.neighbors[e];
                    if (local[v] < 0) {
                        local[v] = static_cast<int64_t>(nodes.size());
                        nodes.push_back(v);
                    }
                    edges.push_back(e);
                    centers.push_back(static_cast<int64_t>(c));
                    neighbors.push_back(local[v]);
                }
            }
            for (int64_t v : nodes) local[v] = -1;
            out.push_back({tensor(nodes), tensor(edges), tensor(centers), tensor(neighbors),
                           static_cast<int64_t>(centres.size())});
        }
        return out;
    }

    // One evaluation of a graph too large for one model call: every piece of energy nodes with
    // the nodes its energies depend on (full neighbourhoods within depth - 1 hops, then their
    // neighbours), summed. Same step, so the same rotations, for every piece.
    Results evaluate_in_pieces(const Graph& g, const Request& request) {
        if (request.forces_rms_spread) {
            throw Error(Error::InvalidInput, "forces_rms_spread needs the whole system in one model call; "
                                             "it is not available with the option atoms " +
                                                 std::to_string(options.atoms) + " below the system's " +
                                                 std::to_string(g.n_energy_nodes) + " atoms");
        }
        const int64_t n = g.n_nodes, n_edges = g.n_edges;
        const int depth = metadata.depth();
        std::vector<int64_t> first, by_centre;
        edges_by_centre(g, first, by_centre);
        Request sub_request = request;
        sub_request.step = request.step >= 0 ? request.step : static_cast<int64_t>(rotation_step);

        Results total;
        if (request.forces) total.forces.assign(3 * n, 0.0);
        if (request.energies) total.energies.assign(n, 0.0);
        if (request.atomic_virials) total.atomic_virials.assign(9 * n, 0.0);
        std::vector<double> rotation_energies;
        std::vector<int64_t> sub_of(n, -1), nodes, centres;
        std::vector<int32_t> numbers;
        std::vector<int64_t> centers, neighbors;
        std::vector<double> vectors;
        for (const std::vector<int64_t>& piece : pieces(g, first, by_centre, options.atoms)) {
            nodes.clear();
            numbers.clear();
            const auto add = [&](int64_t v) {
                sub_of[v] = static_cast<int64_t>(nodes.size());
                nodes.push_back(v);
                numbers.push_back(g.numbers[v]);
            };
            for (int64_t v : piece) add(v);
            // centres: the piece, then depth - 1 hops of neighbours
            centres.assign(piece.begin(), piece.end());
            size_t hop_begin = 0;
            for (int hop = 1; hop < depth; ++hop) {
                const size_t hop_end = centres.size();
                for (size_t c = hop_begin; c < hop_end; ++c) {
                    const int64_t u = centres[c];
                    for (int64_t k = first[u]; k < first[u + 1]; ++k) {
                        const int64_t v = g.neighbors[by_centre[k]];
                        if (sub_of[v] < 0) {
                            add(v);
                            centres.push_back(v);
                        }
                    }
                }
                hop_begin = hop_end;
            }
            centers.clear();
            neighbors.clear();
            vectors.clear();
            for (const int64_t u : centres) {
                for (int64_t k = first[u]; k < first[u + 1]; ++k) {
                    const int64_t e = by_centre[k];
                    if (sub_of[g.neighbors[e]] < 0) add(g.neighbors[e]);
                    centers.push_back(sub_of[u]);
                    neighbors.push_back(sub_of[g.neighbors[e]]);
                    vectors.insert(vectors.end(), g.vectors + 3 * e, g.vectors + 3 * e + 3);
                }
            }
            Graph sub;
            sub.numbers = numbers.data();
            sub.n_nodes = static_cast<int64_t>(nodes.size());
            sub.n_energy_nodes = static_cast<int64_t>(piece.size());
            sub.centers = centers.data();
            sub.neighbors = neighbors.data();
            sub.vectors = vectors.data();
            sub.n_edges = static_cast<int64_t>(centers.size());
            Results r = std::move(evaluate(sub, {detail::Part{0, sub.n_nodes, sub.n_energy_nodes, 0, sub.n_edges}},
                                           sub_request)[0]);
            const auto& re = r.diagnostics.rotation_energies;
            if (rotation_energies.empty()) rotation_energies.assign(re.size(), 0.0);
            for (size_t k = 0; k < re.size(); ++k) rotation_energies[k] += re[k];
            for (int c = 0; c < 9; ++c) total.virial[c] += r.virial[c];
            for (size_t k = 0; k < nodes.size(); ++k) {
                const int64_t v = nodes[k];
                if (request.forces)
                    for (int c = 0; c < 3; ++c) total.forces[3 * v + c] += r.forces[3 * k + c];
                if (request.atomic_virials)
                    for (int c = 0; c < 9; ++c) total.atomic_virials[9 * v + c] += r.atomic_virials[9 * k + c];
                if (request.energies && static_cast<int64_t>(k) < sub.n_energy_nodes) total.energies[v] = r.energies[k];
            }
            for (const int64_t v : nodes) sub_of[v] = -1;
        }
        RotationStatistics stats = rotation_statistics(stage(request).weights(), rotation_energies.data());
        total.energy = stats.mean;
        total.diagnostics.rotation_energies = rotation_energies;
        total.diagnostics.energy_std = stats.std;
        total.diagnostics.energy_spread = stats.spread;
        for (int64_t i = 0; i < 3 * n && request.forces; ++i) total.diagnostics.net_force[i % 3] += total.forces[i];
        total.diagnostics.net_torque = net_torque(total.virial);
        if (request.step < 0 && request.symmetrize && options.rotations.random()) rotation_step++;
        return total;
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
void Model::check_numbers(const int32_t* numbers, int64_t n_atoms) const {
    impl_->check_numbers(numbers, n_atoms);
}
uint64_t Model::rotation_step() const { return impl_->rotation_step; }
void Model::set_rotation_step(uint64_t step) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->rotation_step = step;
}
const std::vector<double>& Model::rotation_weights() const { return impl_->symmetrizer->weights(); }
int64_t Model::rotation_chunk() const { return impl_->symmetrizer->chunk(); }
double Model::memory_budget_bytes() const { return impl_->memory.budget(); }
double Model::memory_per_edge_bytes() const { return impl_->memory.per_edge(); }
int64_t Model::structure_batch() const {
    return impl_->options.batch > 0 ? impl_->options.batch : impl_->batch_tuner.tuned();
}

Results Model::compute(const double* positions, const int32_t* numbers, int64_t n_atoms,
                       const double* cell, const bool* pbc, const Request& request) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (n_atoms <= 0) throw Error(Error::InvalidInput, "empty system: no atoms to evaluate");
    impl_->check_numbers(numbers, n_atoms);
    if (request.energy_atoms > n_atoms) {
        throw Error(Error::InvalidInput, "energy_atoms " + std::to_string(request.energy_atoms) +
                                             " exceeds the system's " + std::to_string(n_atoms) + " atoms");
    }
    const int64_t n_energy = request.energy_atoms >= 0 ? request.energy_atoms : n_atoms;
    const NeighborList& nl = impl_->verlet.update(positions, n_atoms, cell, pbc);
    if (impl_->metatomic) {
        Results r = std::move(impl_->evaluate_structures({{positions, numbers, n_atoms, n_energy, cell, pbc, &nl}}, request)[0]);
        impl_->correct(r, positions, numbers, n_atoms, pbc, request);
        return r;
    }
    Graph g;
    g.numbers = numbers;
    g.n_nodes = n_atoms;
    g.n_energy_nodes = n_energy;
    g.centers = nl.centers.data();
    g.neighbors = nl.neighbors.data();
    g.vectors = nl.vectors.data();
    g.n_edges = static_cast<int64_t>(nl.size());
    std::vector<double> wrapped;
    if (impl_->piece_atoms(n_energy, g.n_edges) > 0) {
        // pieces are boxes of positions: wrapped into the cell along periodic directions, so
        // that a box is one region of space and not parts of several images
        wrapped = detail::wrapped_positions(positions, n_atoms, cell, pbc);
        g.positions = wrapped.data();
    }
    Results r = impl_->evaluate_one(g, request);
    impl_->correct(r, positions, numbers, n_atoms, pbc, request);
    return r;
}

std::vector<Results> Model::compute_batch(const std::vector<System>& systems, const Request& request) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (systems.empty()) throw Error(Error::InvalidInput, "empty batch: no structures to evaluate");
    if (request.masses) {
        throw Error(Error::InvalidInput, "compute_batch: masses are per structure; the torque-free "
                                         "correction of a batch uses standard atomic weights");
    }
    NeighborOptions options;
    options.cutoff = impl_->metadata.cutoff;
    options.threads = std::max(1, impl_->options.threads);
    std::vector<NeighborList> lists(systems.size());
    int64_t total_edges = 0;
    for (size_t s = 0; s < systems.size(); ++s) {
        const System& sys = systems[s];
        if (sys.n_atoms <= 0) {
            throw Error(Error::InvalidInput, "structure " + std::to_string(s) + " of the batch is empty");
        }
        impl_->check_numbers(sys.numbers, sys.n_atoms);
        compute_neighbors(sys.positions, sys.n_atoms, sys.cell, sys.pbc, options, lists[s]);
        total_edges += static_cast<int64_t>(lists[s].size());
    }
    // one step for the whole batch: every structure gets this evaluation's rotations
    Request step_request = request;
    if (step_request.step < 0) step_request.step = static_cast<int64_t>(impl_->rotation_step);
    const int64_t n = static_cast<int64_t>(systems.size());
    const bool tuning = n > 1 && impl_->options.batch == 0;
    const int64_t group = tuning ? impl_->batch_tuner.choose(total_edges / n, impl_->memory.items(total_edges / n, n))
                                 : std::min<int64_t>(n, std::max(1, impl_->options.batch));
    const auto started = std::chrono::steady_clock::now();
    std::vector<Results> results;
    for (int64_t first = 0; first < n; first += group) {
        if (impl_->metatomic) {
            // the structures of this group as one list of systems: one forward per rotation chunk
            std::vector<detail::Structure> structures;
            for (int64_t s = first; s < std::min(n, first + group); ++s) {
                const System& sys = systems[s];
                structures.push_back({sys.positions, sys.numbers, sys.n_atoms, sys.n_atoms, sys.cell, sys.pbc, &lists[s]});
            }
            for (Results& r : impl_->evaluate_structures(structures, step_request)) results.push_back(std::move(r));
            continue;
        }
        // the structures of this group as one graph: one model call per rotation chunk
        std::vector<int32_t> numbers;
        std::vector<int64_t> centers, neighbors;
        std::vector<double> vectors;
        std::vector<detail::Part> parts;
        for (int64_t s = first; s < std::min(n, first + group); ++s) {
            const System& sys = systems[s];
            const NeighborList& nl = lists[s];
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
        for (Results& r : impl_->evaluate(g, parts, step_request)) results.push_back(std::move(r));
    }
    if (tuning) {
        std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
        impl_->batch_tuner.record(n, took.count());
    }
    for (int64_t s = 0; s < n; ++s) {
        const System& sys = systems[s];
        impl_->correct(results[s], sys.positions, sys.numbers, sys.n_atoms, sys.pbc, request);
    }
    if (request.step < 0 && request.symmetrize && impl_->options.rotations.random()) impl_->rotation_step++;
    return results;
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
    if (g.exchange) {
        if (impl_->metadata.layers == 0) {
            throw Error(Error::InvalidInput, "a graph with a feature exchange needs a layered model (methods embed "
                                             "and layer, docs/model-contract.md); '" + impl_->path + "' has forward only");
        }
        for (int64_t e = 0; e < g.n_edges; ++e) {
            if (g.centers[e] >= g.n_energy_nodes) {
                std::ostringstream msg;
                msg << "edge " << e << " is centred on atom " << g.centers[e] << ", which another process owns "
                    << "(a graph with a feature exchange has edges of its own atoms [0, " << g.n_energy_nodes << ") only)";
                throw Error(Error::InvalidInput, msg.str());
            }
        }
        if (impl_->options.torque_free && g.pbc && !(g.pbc[0] || g.pbc[1] || g.pbc[2])) {
            throw Error(Error::InvalidInput, "correction torque-free: a non-periodic system needs all its atoms in "
                                             "one evaluation, not parts exchanging features");
        }
    }
    if (impl_->options.torque_free &&
        (!g.pbc || (!(g.pbc[0] || g.pbc[1] || g.pbc[2]) && !g.positions))) {
        throw Error(Error::InvalidInput, "correction torque-free: the graph needs its periodicity, and "
                                         "the positions of its atoms when it is not periodic");
    }
    Results r = impl_->evaluate_one(g, request);
    if (impl_->options.torque_free) {
        Request whole = request;
        whole.energy_atoms = g.n_energy_nodes;
        impl_->correct(r, g.positions, g.numbers, g.n_nodes, g.pbc, whole);
    }
    return r;
}

int cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

}  // namespace symprobe
