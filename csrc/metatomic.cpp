// The metatomic backend: a metatomic AtomisticModel evaluated on rotated copies of structures
// (several Systems per forward call), with the core's neighbour lists as the model requests them.
#include "metatomic.hpp"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <metatensor/torch.hpp>
#include <metatomic/torch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <sstream>

namespace symprobe {
namespace detail {

std::string model_error(const std::string& path, const std::exception& e);

namespace {

namespace mta = metatomic_torch;
namespace mts = metatensor_torch;

std::string first_line(const std::exception& e) {
    std::string what = e.what();
    auto nl = what.find('\n');
    return nl == std::string::npos ? what : what.substr(0, nl);
}

// One requested neighbour list, in the engine's units.
struct ListRequest {
    mta::NeighborListOptions options;
    double cutoff;  // Angstrom
    bool full;
};

// A requested list of one structure on the device.
struct StagedList {
    mts::Labels samples;   // first_atom, second_atom, cell_shift_a/b/c
    torch::Tensor first, second;  // [E] int64
    torch::Tensor shifts;         // [E, 3] model dtype
};

struct StagedStructures : MetatomicModel::Staged {
    std::vector<torch::Tensor> types;  // [n] int32
    std::vector<torch::Tensor> pbc;    // [3] bool
    std::vector<int64_t> n_atoms;
    std::vector<std::vector<StagedList>> lists;  // [structure][request]
    int64_t total_atoms = 0;
};

// major.minor.patch of a version string (missing parts are 0)
std::array<int, 3> version_numbers(const std::string& text) {
    std::array<int, 3> out{0, 0, 0};
    std::istringstream in(text);
    for (int k = 0; k < 3 && in; ++k) {
        in >> out[k];
        if (in.peek() == '.') in.get();
    }
    return out;
}

// metatomic loads an archive of an incompatible version (another minor version before 1.0,
// another major after) with a warning; one written by a newer metatomic-torch than this one may
// use classes and methods this one lacks, so it is refused before anything runs.
void check_archive_version(const std::string& path) {
    std::string written;
    try {
        caffe2::serialize::PyTorchStreamReader reader(path);
        auto record = reader.getRecord("extra/metatomic-version");
        written.assign(static_cast<const char*>(std::get<0>(record).get()), std::get<1>(record));
    } catch (const std::exception&) {
        return;  // loading names the problem
    }
    const std::string installed = mta::version();
    const auto w = version_numbers(written), i = version_numbers(installed);
    const bool compatible = w[0] == i[0] && (w[0] > 0 || w[1] == i[1]);
    if (!compatible && w > i) {
        throw Error(Error::InvalidModel,
                    "metatomic model file '" + path + "' was written by metatomic-torch " + written +
                        ", newer than the installed " + installed + ", which cannot read it reliably: "
                        "install a metatomic-torch compatible with " + written + " and rebuild symprobe "
                        "(bash setup.sh, or pip install --no-build-isolation -e .)");
    }
}

class Metatomic final : public MetatomicModel {
public:
    Metatomic(const std::string& path, torch::Device device) : path_(path), device_(device) {
        check_archive_version(path);
        try {
            module_ = std::make_unique<mts::Module>(mta::load_atomistic_model(path));
        } catch (const std::exception& e) {
            throw Error(Error::InvalidModel, "metatomic model file '" + path + "' cannot be loaded: " + first_line(e));
        }
        std::vector<mta::NeighborListOptions> requested;
        try {
            capabilities_ = module_->run_method("capabilities").toCustomClass<mta::ModelCapabilitiesHolder>();
            for (const auto& option : module_->run_method("requested_neighbor_lists").toList()) {
                requested.push_back(option.get().toCustomClass<mta::NeighborListOptionsHolder>());
            }
            const mta::ModelMetadata metadata = mta::read_model_metadata(path);
            metadata_.name = metadata->name;
            metadata_.json = metadata->to_json();
        } catch (const std::exception& e) {
            throw Error(Error::InvalidModel, "metatomic model file '" + path + "': " + first_line(e));
        }
        const std::string origin = "metatomic model file '" + path + "'";
        const mta::ModelCapabilities& capabilities = capabilities_;
        if (!capabilities->outputs().contains("energy")) {
            std::string names;
            for (const auto& item : capabilities->outputs()) names += (names.empty() ? "" : ", ") + item.key();
            throw Error(Error::InvalidModel, origin + " has no 'energy' output (outputs: " + names + ")");
        }
        const std::string energy_unit = capabilities->outputs().at("energy")->unit();
        // the model converts its outputs to the unit the evaluation asks for (eV); check it can
        try {
            if (energy_unit.empty()) throw std::runtime_error("no unit declared");
            mta::unit_conversion_factor(energy_unit, "eV");
        } catch (const std::exception& e) {
            throw Error(Error::InvalidModel, origin + ": its energy unit '" + energy_unit +
                                                 "' cannot be converted to eV (" + first_line(e) + ")");
        }
        try {
            mta::unit_conversion_factor(capabilities->length_unit(), "angstrom");
        } catch (const std::exception& e) {
            throw Error(Error::InvalidModel, origin + ": its length unit '" + capabilities->length_unit() +
                                                 "' cannot be converted to Angstrom (" + first_line(e) + ")");
        }
        const std::string kind = device.is_cuda() ? "cuda" : "cpu";
        const auto& devices = capabilities->supported_devices;
        if (std::find(devices.begin(), devices.end(), kind) == devices.end()) {
            std::string names;
            for (const auto& d : devices) names += (names.empty() ? "" : ", ") + d;
            throw Error(Error::InvalidInput, origin + " does not support device '" + kind +
                                                 "' (supported: " + names + ")");
        }
        metadata_.dtype = capabilities->dtype();
        if (metadata_.dtype != "float32" && metadata_.dtype != "float64") {
            throw Error(Error::InvalidModel, origin + ": dtype '" + metadata_.dtype + "' is not supported (float32, float64)");
        }
        dtype_ = metadata_.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
        for (int64_t t : capabilities->atomic_types) {
            if (t < 1 || t > 118) {
                throw Error(Error::InvalidModel, origin + ": atomic type " + std::to_string(t) +
                                                     " is not an atomic number; symprobe maps atoms to types by atomic number");
            }
            metadata_.elements.push_back(static_cast<int>(t));
        }
        if (metadata_.elements.empty()) throw Error(Error::InvalidModel, origin + " declares no atomic types");
        double cutoff = 0.0;
        for (const auto& option : requested) {
            const double rc = option->engine_cutoff("angstrom");
            requests_.push_back({option, rc, option->full_list()});
            cutoff = std::max(cutoff, rc);
        }
        // a model without neighbour lists still gets a (short) list that nothing reads
        metadata_.cutoff = cutoff > 0.0 ? cutoff : 1.0;
        metadata_.interaction_range = std::max(metadata_.cutoff, capabilities->engine_interaction_range("angstrom"));
        metadata_.contract_version = 0;
        metadata_.energy_unit = "eV";
        metadata_.length_unit = "A";
        metadata_.kind = "metatomic";

        if (!device_.is_cpu()) module_->to(device_);  // loaded on the CPU
        module_->eval();
        for (auto parameter : module_->parameters()) parameter.requires_grad_(false);
        torch::Dict<std::string, mta::ModelOutput> outputs;
        outputs.insert("energy", torch::make_intrusive<mta::ModelOutputHolder>(
                                     "", "eV", "atom", std::vector<std::string>{}, ""));
        evaluation_ = torch::make_intrusive<mta::ModelEvaluationOptionsHolder>("angstrom", outputs, torch::nullopt);
    }

    const ModelMetadata& metadata() const override { return metadata_; }

    std::unique_ptr<Staged> stage(const std::vector<Structure>& structures) override {
        auto out = std::make_unique<StagedStructures>();
        auto i32 = torch::TensorOptions().dtype(torch::kInt32);
        for (const Structure& s : structures) {
            out->types.push_back(torch::from_blob(const_cast<int32_t*>(s.numbers), {s.n_atoms}, i32).to(device_, true, true));
            out->pbc.push_back(torch::tensor({s.pbc[0], s.pbc[1], s.pbc[2]}).to(device_));
            out->n_atoms.push_back(s.n_atoms);
            out->total_atoms += s.n_atoms;
            const NeighborList& nl = *s.list;
            std::vector<StagedList> lists;
            for (const ListRequest& request : requests_) {
                // the core's list holds every pair within the largest cutoff, both directions
                std::vector<int32_t> samples;
                const double rc2 = request.cutoff * request.cutoff;
                for (size_t e = 0; e < nl.size(); ++e) {
                    const double* v = &nl.vectors[3 * e];
                    if (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] >= rc2) continue;
                    const int32_t* shift = &nl.shifts[3 * e];
                    if (!request.full) {
                        // each pair once: i < j, or a self-image with its first non-zero shift > 0
                        const int64_t i = nl.centers[e], j = nl.neighbors[e];
                        if (i > j) continue;
                        if (i == j) {
                            const int32_t lead = shift[0] != 0 ? shift[0] : shift[1] != 0 ? shift[1] : shift[2];
                            if (lead < 0) continue;
                        }
                    }
                    samples.insert(samples.end(), {static_cast<int32_t>(nl.centers[e]), static_cast<int32_t>(nl.neighbors[e]),
                                                   shift[0], shift[1], shift[2]});
                }
                const int64_t n_pairs = static_cast<int64_t>(samples.size() / 5);
                torch::Tensor values = torch::from_blob(samples.data(), {n_pairs, 5}, i32).clone();
                StagedList list;
                list.first = values.select(1, 0).to(torch::kInt64).to(device_);
                list.second = values.select(1, 1).to(torch::kInt64).to(device_);
                list.shifts = values.narrow(1, 2, 3).to(dtype_).to(device_);
                list.samples = torch::make_intrusive<mts::LabelsHolder>(
                    std::vector<std::string>{"first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"},
                    values.to(device_), metatensor::assume_unique{});
                lists.push_back(std::move(list));
            }
            out->lists.push_back(std::move(lists));
        }
        return out;
    }

    torch::Tensor energies(const Staged& staged_base, const torch::Tensor& rows, int64_t copies) override {
        const auto& staged = static_cast<const StagedStructures&>(staged_base);
        auto i32 = torch::TensorOptions().dtype(torch::kInt32).device(device_);
        if (!xyz_.defined()) {
            xyz_ = torch::make_intrusive<mts::LabelsHolder>(std::vector<std::string>{"xyz"},
                                                            torch::arange(3, i32).reshape({3, 1}));
            distance_ = torch::make_intrusive<mts::LabelsHolder>(std::vector<std::string>{"distance"},
                                                                 torch::zeros({1, 1}, i32));
        }
        const size_t n_structures = staged.n_atoms.size();
        c10::List<mta::System> systems;
        std::vector<int64_t> first_atom;  // of every system in the output
        for (int64_t k = 0; k < copies; ++k) {
            int64_t row = 0, atom = k * staged.total_atoms;
            for (size_t s = 0; s < n_structures; ++s) {
                const int64_t n = staged.n_atoms[s];
                torch::Tensor positions = rows[k].narrow(0, row, n);
                torch::Tensor cell = rows[k].narrow(0, row + n, 3);
                auto system = torch::make_intrusive<mta::SystemHolder>(staged.types[s], positions, cell, staged.pbc[s]);
                for (size_t r = 0; r < requests_.size(); ++r) {
                    const StagedList& list = staged.lists[s][r];
                    torch::Tensor vectors = positions.index_select(0, list.second) - positions.index_select(0, list.first) +
                                            torch::matmul(list.shifts, cell);
                    auto block = torch::make_intrusive<mts::TensorBlockHolder>(
                        vectors.unsqueeze(-1), list.samples, std::vector<mts::Labels>{xyz_}, distance_);
                    system->add_neighbor_list(requests_[r].options, block);
                }
                systems.push_back(system);
                first_atom.push_back(atom);
                row += n + 3;
                atom += n;
            }
        }
        mts::TensorBlock block;
        c10::impl::GenericDict outputs(c10::StringType::get(), c10::AnyType::get());
        try {
            // op by op, as for the contract's models (model.cpp): the optimising executor's
            // differentiable graphs also compute every weight gradient
            std::optional<torch::jit::GraphOptimizerEnabledGuard> unoptimised;
            if (device_.is_cpu()) unoptimised.emplace(false);
            outputs = module_->forward({systems, evaluation_, /*check_consistency=*/false}).toGenericDict();
            auto energy = outputs.at("energy").toCustomClass<mts::TensorMapHolder>();
            block = mts::TensorMapHolder::block_by_id(energy, 0);
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw Error(Error::ModelFailure, model_error(path_, e));
        }
        // samples (system, atom): placed by label, whatever order the model returns them in
        torch::Tensor samples = block->samples()->values().to(torch::kInt64);
        torch::Tensor values = block->values();
        const int64_t total = copies * staged.total_atoms;
        if (values.dim() != 2 || values.size(1) != 1 || samples.size(1) != 2 || samples.size(0) != total) {
            std::ostringstream msg;
            msg << path_ << ": the 'energy' output per atom has " << samples.size(0) << " samples of shape "
                << values.sizes() << "; expected " << total << " atoms with one value each";
            throw Error(Error::ModelFailure, msg.str());
        }
        torch::Tensor offsets = torch::tensor(first_atom, torch::TensorOptions().dtype(torch::kInt64)).to(device_);
        torch::Tensor index = offsets.index_select(0, samples.select(1, 0)) + samples.select(1, 1);
        torch::Tensor per_atom = torch::zeros({total}, values.options()).index_put({index}, values.select(1, 0));
        if (direct_) {
            torch::NoGradGuard no_grad;
            auto block_of = [&](const std::string& key) {
                return mts::TensorMapHolder::block_by_id(outputs.at(key).toCustomClass<mts::TensorMapHolder>(), 0);
            };
            mts::TensorBlock forces = block_of(force_key_);
            torch::Tensor fs = forces->samples()->values().to(torch::kInt64);
            torch::Tensor at = offsets.index_select(0, fs.select(1, 0)) + fs.select(1, 1);
            last_forces_ = torch::zeros({total, 3}, forces->values().options())
                               .index_put({at}, forces->values().reshape({-1, 3}).detach())
                               .view({copies, staged.total_atoms, 3});
            if (!stress_key_.empty()) {
                mts::TensorBlock stress = block_of(stress_key_);
                torch::Tensor system = stress->samples()->values().to(torch::kInt64).select(1, 0);
                const int64_t n_systems = copies * static_cast<int64_t>(n_structures);
                last_stress_ = torch::zeros({n_systems, 3, 3}, stress->values().options())
                                   .index_put({system}, stress->values().reshape({-1, 3, 3}).detach())
                                   .view({copies, static_cast<int64_t>(n_structures), 3, 3});
            }
        }
        return per_atom.view({copies, staged.total_atoms});
    }

    void use_direct_forces() override {
        const auto outputs = capabilities_->outputs();
        for (const char* key : {"non_conservative_force", "non_conservative_forces"}) {
            if (force_key_.empty() && outputs.contains(key)) force_key_ = key;
        }
        if (force_key_.empty()) {
            std::string names;
            for (const auto& item : outputs) names += (names.empty() ? "" : ", ") + item.key();
            throw Error(Error::InvalidInput, "forces direct: the metatomic model '" + path_ +
                                                 "' has no non_conservative_force output (outputs: " + names + ")");
        }
        if (outputs.contains("non_conservative_stress")) stress_key_ = "non_conservative_stress";
        evaluation_->outputs.insert(force_key_, torch::make_intrusive<mta::ModelOutputHolder>(
                                                    "", "eV/Angstrom", "atom", std::vector<std::string>{}, ""));
        if (!stress_key_.empty()) {
            evaluation_->outputs.insert(stress_key_, torch::make_intrusive<mta::ModelOutputHolder>(
                                                         "", "eV/Angstrom^3", "system", std::vector<std::string>{}, ""));
        }
        direct_ = true;
    }
    bool has_direct_stress() const override { return !stress_key_.empty(); }
    const torch::Tensor& direct_forces() const override { return last_forces_; }
    const torch::Tensor& direct_stress() const override { return last_stress_; }

private:
    std::string path_;
    torch::Device device_;
    std::unique_ptr<mts::Module> module_;
    ModelMetadata metadata_;
    torch::Dtype dtype_ = torch::kFloat64;
    std::vector<ListRequest> requests_;
    mta::ModelCapabilities capabilities_;
    mta::ModelEvaluationOptions evaluation_;
    bool direct_ = false;
    std::string force_key_, stress_key_;
    torch::Tensor last_forces_, last_stress_;
    mts::Labels xyz_, distance_;
};

}  // namespace

std::unique_ptr<MetatomicModel> load_metatomic_model(const std::string& path, torch::Device device) {
    return std::make_unique<Metatomic>(path, device);
}

}  // namespace detail
}  // namespace symprobe
