// Loading a TorchScript model through the model contract and evaluating energy, forces and
// virial with one autograd pass with respect to the edge vectors.
#include "symprobe/symprobe.hpp"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <algorithm>
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

    Impl(const std::string& path_, const ModelOptions& options_)
        : path(path_), options(options_), verlet(1.0, 0.0, 1) {
        if (!std::ifstream(path).good()) {
            throw Error(Error::FileNotFound, "model file '" + path + "' does not exist or cannot be read");
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

    Results evaluate(const Graph& g, const Request& request) {
        torch::AutoGradMode grad_mode(true);
        const int64_t n = g.n_nodes, n_edges = g.n_edges;
        auto i64 = torch::TensorOptions().dtype(torch::kInt64);
        torch::Tensor species = torch::empty({n}, i64);
        auto sp = species.accessor<int64_t, 1>();
        for (int64_t i = 0; i < n; ++i) sp[i] = g.numbers[i];
        // from_blob does not own the memory: copy to the model's device and dtype
        torch::Tensor centers = torch::from_blob(const_cast<int64_t*>(g.centers), {n_edges}, i64)
                                    .to(device, torch::kInt64, false, true);
        torch::Tensor neighbors =
            torch::from_blob(const_cast<int64_t*>(g.neighbors), {n_edges}, i64)
                .to(device, torch::kInt64, false, true);
        torch::Tensor vectors =
            torch::from_blob(const_cast<double*>(g.vectors), {n_edges, 3},
                             torch::TensorOptions().dtype(torch::kFloat64))
                .to(device, dtype, false, true)
                .requires_grad_(request.forces || request.virial || request.atomic_virials);
        species = species.to(device);

        torch::Tensor energies;
        try {
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
        if (energies.dim() != 1 || energies.size(0) != n || !energies.is_floating_point()) {
            std::ostringstream msg;
            msg << path << ": forward returned a tensor of shape " << energies.sizes() << " and type "
                << energies.dtype() << "; the contract requires per-atom energies of shape [" << n
                << "]";
            throw Error(Error::ModelFailure, msg.str());
        }
        // summed in float64: per-atom energies of float32 models carry large element baselines
        torch::Tensor total = energies.narrow(0, 0, g.n_energy_nodes).to(torch::kFloat64).sum();

        Results res;
        res.energy = total.item<double>();
        if (!std::isfinite(res.energy)) {
            throw Error(Error::ModelFailure, path + ": the model returned a non-finite energy");
        }
        if (request.energies) {
            torch::Tensor e = energies.detach().to(torch::kCPU, torch::kFloat64).contiguous();
            res.energies.assign(e.data_ptr<double>(), e.data_ptr<double>() + n);
        }
        if (!(request.forces || request.virial || request.atomic_virials)) return res;

        torch::Tensor grad;
        if (n_edges > 0 && total.requires_grad()) {
            try {
                grad = torch::autograd::grad({total}, {vectors}, {}, false, false, true)[0];
            } catch (const std::exception& e) {
                throw Error(Error::ModelFailure, model_error(path, e));
            }
        }
        std::vector<double> gbuf(3 * n_edges, 0.0);
        if (grad.defined()) {
            torch::Tensor gc = grad.to(torch::kCPU, torch::kFloat64).contiguous();
            std::copy(gc.data_ptr<double>(), gc.data_ptr<double>() + 3 * n_edges, gbuf.begin());
        }
        // r_e = x_j - x_i + S.cell: dE/dx_i = -sum g_e (i centre) + sum g_e (i neighbour)
        if (request.forces) {
            res.forces.assign(3 * n, 0.0);
            for (int64_t e = 0; e < n_edges; ++e) {
                for (int c = 0; c < 3; ++c) {
                    res.forces[3 * g.centers[e] + c] += gbuf[3 * e + c];
                    res.forces[3 * g.neighbors[e] + c] -= gbuf[3 * e + c];
                }
            }
        }
        if (request.virial || request.atomic_virials) {
            if (request.atomic_virials) res.atomic_virials.assign(9 * n, 0.0);
            for (int64_t e = 0; e < n_edges; ++e) {
                for (int a = 0; a < 3; ++a) {
                    for (int b = 0; b < 3; ++b) {
                        double w = -g.vectors[3 * e + a] * gbuf[3 * e + b];
                        res.virial[3 * a + b] += w;
                        if (request.atomic_virials) {
                            res.atomic_virials[9 * g.centers[e] + 3 * a + b] += 0.5 * w;
                            res.atomic_virials[9 * g.neighbors[e] + 3 * a + b] += 0.5 * w;
                        }
                    }
                }
            }
        }
        for (double f : res.forces) {
            if (!std::isfinite(f)) {
                throw Error(Error::ModelFailure, path + ": the model produced non-finite forces");
            }
        }
        return res;
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
const NeighborList& Model::last_neighbors() const {
    return impl_->verlet.current();
}

Results Model::compute(const double* positions, const int32_t* numbers, int64_t n_atoms,
                       const double* cell, const bool* pbc, const Request& request) {
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
    return impl_->evaluate(g, request);
}

Results Model::compute_graph(const Graph& g, const Request& request) {
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
    return impl_->evaluate(g, request);
}

}  // namespace symprobe
