// The metatomic backend of the core (private to csrc/): models exported by metatomic-torch
// (metatrain's PET and others), which take positions, a cell and neighbour lists with integer
// cell shifts instead of the symprobe contract's edge vectors. Built when CMake finds the
// metatomic_torch package; otherwise loading such a file says how to get it.
#pragma once

#include "symprobe/symprobe.hpp"

#include <torch/torch.h>

#include <memory>

namespace symprobe {
namespace detail {

// A structure as a metatomic model sees it, with the core's neighbour list of it (pairs within
// ModelMetadata::cutoff, integer shifts consistent with the positions as given).
struct Structure {
    const double* positions = nullptr;  // [n_atoms, 3] Angstrom
    const int32_t* numbers = nullptr;   // [n_atoms]
    int64_t n_atoms = 0;
    int64_t n_energy = 0;               // atoms [0, n_energy) carry energy
    const double* cell = nullptr;       // [3, 3] Angstrom, rows
    const bool* pbc = nullptr;          // [3]
    const NeighborList* list = nullptr;
};

// True if the file is a TorchScript archive written by metatomic-torch (it holds the extra file
// `metatomic-version`); reads only the archive's index, so it works without the backend.
bool is_metatomic_archive(const std::string& path);

class MetatomicModel {
public:
    virtual ~MetatomicModel() = default;
    // cutoff = the largest neighbour list the model requests, interaction_range and elements
    // from its capabilities, all in Angstrom and atomic numbers
    virtual const ModelMetadata& metadata() const = 0;

    // Structures of one evaluation staged on the device: types, periodicity and each requested
    // neighbour list (pairs and shifts), re-used by every rotated copy.
    struct Staged {
        virtual ~Staged() = default;
    };
    virtual std::unique_ptr<Staged> stage(const std::vector<Structure>& structures) = 0;
    // Per-atom energies [c, total atoms] (eV) of c rotated copies. rows [c, m, 3] in the model's
    // dtype: each structure's positions, then its three cell rows (zero along non-periodic
    // axes); every requested neighbour list's vectors are computed from them, so that the
    // energy is differentiable through positions, cell and vectors alike.
    virtual torch::Tensor energies(const Staged& staged, const torch::Tensor& rows, int64_t copies) = 0;

    // forces direct: from now on every energies() call also asks for the model's own forces and
    // stress; throws Error(InvalidInput) naming the outputs the model has if it has no forces.
    virtual void use_direct_forces() = 0;
    // Whether the model predicts a stress of its own (non_conservative_stress).
    virtual bool has_direct_stress() const = 0;
    // Of the last energies() call: forces [c, total atoms, 3] (eV/A) and, with a stress output,
    // stresses [c, structures, 3, 3] (eV/A^3), in the copies' (rotated) frames.
    virtual const torch::Tensor& direct_forces() const = 0;
    virtual const torch::Tensor& direct_stress() const = 0;
};

// Loads and checks a metatomic model: its version, extensions, an `energy` output in a unit
// convertible to eV, a length unit convertible to Angstrom, atomic numbers as types, and the
// device. Throws Error(InvalidModel / InvalidInput) naming the file and what is wrong.
std::unique_ptr<MetatomicModel> load_metatomic_model(const std::string& path, torch::Device device);

}  // namespace detail
}  // namespace symprobe
