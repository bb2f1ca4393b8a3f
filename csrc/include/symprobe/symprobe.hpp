// symprobe: the public C++ interface of the core.
//
// One header is the whole contract shared by the Python module, the LAMMPS pair style and the
// i-PI driver. It has no torch types, so front ends compile without torch headers.
//
// Units everywhere in this header: lengths in Angstrom, energies in eV, forces in eV/Angstrom,
// virials in eV. Arrays are row-major; a cell holds the three lattice vectors as ROWS.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace symprobe {

// Every error the core raises. `kind` lets bindings map it to a native exception type.
class Error : public std::runtime_error {
public:
    enum Kind {
        InvalidInput,  // bad user input: shapes, NaN, singular cell, unknown element, ...
        FileNotFound,  // model path does not exist
        InvalidModel,  // file exists but is not a valid symprobe model (corrupt, bad metadata)
        ModelFailure,  // the model raised or returned something outside the contract
    };
    Error(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    Kind kind() const { return kind_; }

private:
    Kind kind_;
};

// ---------------------------------------------------------------------------------------------
// Elements
// ---------------------------------------------------------------------------------------------

// Atomic number of a chemical symbol ("O" -> 8); throws Error(InvalidInput) for unknown symbols.
int atomic_number(const std::string& symbol);
// Chemical symbol of an atomic number (8 -> "O"); throws for numbers outside 1..118.
std::string element_symbol(int atomic_number);

// ---------------------------------------------------------------------------------------------
// Neighbour list
// ---------------------------------------------------------------------------------------------

// A full neighbour list: every pair appears twice (i->j and j->i), periodic self-images
// included, the zero-shift self pair excluded. Pairs are grouped by centre in increasing order.
//   vectors[e] = x[neighbors[e]] - x[centers[e]] + shifts[e] . cell   (Angstrom)
// where x are the positions exactly as given (not wrapped) and shifts are integer cell offsets,
// non-zero only along periodic axes.
struct NeighborList {
    std::vector<int64_t> centers;
    std::vector<int64_t> neighbors;
    std::vector<int32_t> shifts;   // [E, 3]
    std::vector<double> vectors;   // [E, 3], Angstrom
    size_t size() const { return centers.size(); }
};

struct NeighborOptions {
    double cutoff = 0.0;  // Angstrom; pairs with |r| < cutoff
    int threads = 1;      // worker threads for the search (1 = serial)
};

// Cell-list search, O(N). `cell` is 3x3 row-major (lattice vectors as rows); rows of
// non-periodic axes are ignored (they may be zero). Atoms may lie outside the cell.
// Throws Error(InvalidInput) for NaN/inf positions, a singular periodic cell, a bad cutoff,
// or two atoms closer than 1e-6 Angstrom.
void compute_neighbors(const double* positions, int64_t n_atoms, const double* cell,
                       const bool* pbc, const NeighborOptions& options, NeighborList& out);

// Verlet list: a neighbour list built with cutoff + skin and re-used while no atom has moved
// more than skin/2 since the build and the cell and periodicity are unchanged. With skin = 0
// it rebuilds at every call. The returned list only holds pairs within the cutoff.
class VerletList {
public:
    VerletList(double cutoff, double skin, int threads);
    // Returns the current list; `rebuilt` tells whether a full search was done.
    const NeighborList& update(const double* positions, int64_t n_atoms, const double* cell,
                               const bool* pbc, bool* rebuilt = nullptr);
    int64_t n_builds() const { return n_builds_; }

private:
    double cutoff_, skin_;
    int threads_;
    int64_t n_builds_ = 0;
    NeighborList wide_;      // pairs within cutoff + skin at the last build
    NeighborList current_;   // pairs within cutoff now
    std::vector<double> built_positions_;
    std::array<double, 9> built_cell_{};
    std::array<bool, 3> built_pbc_{};
};

// ---------------------------------------------------------------------------------------------
// Options: one vocabulary for every front end
// ---------------------------------------------------------------------------------------------
//
// `key value` tokens, as in `pair_style symprobe MODEL rotations grid 2 inversion yes seed 42`.
// The LAMMPS arguments, the i-PI driver's and `symprobe md`'s flags and the keywords of Python's
// load_model all become such tokens and are parsed here, with one set of messages.

struct RotationOptions {
    enum Mode { None, Random, Grid, Lebedev };
    Mode mode = None;
    int order = 0;           // L of "grid L" / "lebedev L"
    bool inversion = false;  // grid: add -R for every R; random: improper with probability 1/2
    bool randomize = false;  // grid: a fresh random orientation of the whole grid per step
    uint64_t seed = 0;       // random rotations of step k depend only on (seed, k)
    int chunk = 0;           // rotations per batched model call; 0 = automatic

    // "none", "random", "grid 2, inversion, seed 42", ...
    std::string describe() const;
    // Throws Error(InvalidInput) for an unsupported order, chunk or combination.
    void validate() const;
    // Random draws depend on the step (random mode, or a randomized grid).
    bool random() const { return mode == Random || randomize; }
};

struct ModelOptions {
    std::string device = "cpu";  // "cpu" or "cuda[:N]"
    int threads = 0;             // torch intra-op threads and neighbour-search threads; 0 = keep
    double skin = 0.0;           // Verlet skin, Angstrom (0 = rebuild the list every call)
    int batch = 0;               // structures per model call in compute_batch; 0 = automatic
    // Atoms whose energies one model call evaluates (0 = all). A larger system is split into
    // pieces of about this many atoms: the same results to float rounding, memory bounded by
    // the piece. A layered model runs each layer piece by piece and evaluates a piece's layer
    // again in the backward pass (one more forward pass); any other model evaluates each piece
    // with the atoms its energies depend on (interaction range / cutoff - 1 hops of full
    // neighbourhoods: more model work for the pieces' halos).
    int64_t atoms = 0;
    // Memory budget of one model call in MB (0 = half the memory available when the model is
    // loaded). The automatic chunk and batch never put more rotated copies or structures into
    // one call than the measured memory per edge allows; one item per call at least. Without
    // the option atoms, a layered model whose whole system would not fit runs its layers in
    // pieces that do (at most 4096 atoms).
    double memory_mb = 0.0;
    RotationOptions rotations;   // symmetrisation of every evaluation
    // forces direct: the forces (and stress) a metatomic model predicts as outputs of their own
    // (non_conservative_force, non_conservative_stress) instead of derivatives of its energy;
    // rotated back and averaged like the energy, net force removed. They do not conserve energy.
    bool direct_forces = false;
    // correction torque-free: for a non-periodic system the forces are projected onto zero net
    // force and zero net torque about the centre of mass (the rigid-body part m_i (a + alpha x
    // r_i) of the mass-weighted accelerations is removed); for a periodic system the virial
    // loses its antisymmetric part. The energy stays that of the model; the diagnostics still
    // measure the model (before the correction).
    bool torque_free = false;

    // Parses `key value` tokens over the defaults; `rotations` takes one word (none, random) or
    // two (grid L, lebedev L). Throws Error(InvalidInput) naming the key and the value.
    static ModelOptions parse(const std::vector<std::string>& tokens);
};

// The device of one of several processes on a node: "cuda" without an index becomes
// "cuda:<local_rank mod n_devices>" so that MPI ranks spread over the node's GPUs (as other
// ML pair styles do); any other device, or no GPU at all, is returned unchanged.
std::string device_for_local_rank(const std::string& device, int local_rank, int n_devices);
// GPUs visible to torch (0 without a CUDA build or device).
int cuda_device_count();

// One option of the vocabulary, for front ends that build their own flags from it.
struct OptionInfo {
    std::string name;           // "rotations"
    std::string values;         // "none|random|grid L|lebedev L"
    std::string default_value;  // as a token: "none", "no", "0", "cpu"
    bool flag;                  // yes|no option: a command-line switch
    std::string help;           // one line, with the unit
};
const std::vector<OptionInfo>& option_table();

// ---------------------------------------------------------------------------------------------
// Rotation sets (symmetrisation)
// ---------------------------------------------------------------------------------------------

// A set of rotations with weights: matrices [G, 3, 3] row-major, proper or improper.
struct RotationSet {
    std::vector<double> matrices;
    std::vector<double> weights;
    size_t size() const { return weights.size(); }
};

// The rotations used at MD step `step` (only random modes depend on it).
RotationSet rotation_set(const RotationOptions& options, uint64_t step);
// Haar-random proper rotation for (seed, step, stream); deterministic and platform independent.
std::array<double, 9> random_rotation(uint64_t seed, uint64_t step, uint64_t stream);
// Lebedev degrees available for "lebedev L".
std::vector<int> lebedev_orders();

// Weighted statistics of the energies of the rotated copies (eV); the weights need not be
// normalised. Front ends that sum per-rotation energies over MPI ranks reduce them here.
struct RotationStatistics {
    double mean = 0.0;    // eV, the symmetrised energy
    double std = 0.0;     // eV, weighted standard deviation
    double spread = 0.0;  // eV, max - min
};
RotationStatistics rotation_statistics(const std::vector<double>& weights, const double* energies);

// ---------------------------------------------------------------------------------------------
// The torque-free correction
// ---------------------------------------------------------------------------------------------

// Standard atomic weight of element z (amu).
double atomic_mass(int z);
// Forces [N,3] (eV/A) of a finite system at positions [N,3] (A) minus m_i (a + alpha x r_i),
// with a the net force over the total mass, alpha = I^+ tau the angular acceleration of the net
// torque tau about the centre of mass, r_i = x_i - centre: afterwards the net force and the net
// torque vanish. masses [N] amu (null: atomic_mass of numbers). virial [9] (eV, W = sum_i x_i
// (x) F_i), if not null, follows the forces.
void remove_net_force_and_torque(double* forces, const double* positions, const double* masses,
                                 const int32_t* numbers, int64_t n_atoms, double* virial);
// W <- (W + W^T) / 2, in place (row-major 3x3).
void symmetrize_virial(double* virial);

// ---------------------------------------------------------------------------------------------
// Models and evaluation
// ---------------------------------------------------------------------------------------------

// What the core knows of a model: for the symprobe contract, the extra file "metadata.json" of the
// model file (docs/model-contract.md); for a metatomic model, its capabilities (docs/metatomic.md).
struct ModelMetadata {
    // "symprobe" (this contract, docs/model-contract.md) or "metatomic" (a metatomic-torch
    // AtomisticModel: the fields below come from its capabilities and neighbour-list requests)
    std::string kind = "symprobe";
    int contract_version = 0;
    double cutoff = 0.0;             // Angstrom
    double interaction_range = 0.0;  // Angstrom, cutoff x message-passing depth
    std::vector<int> elements;       // atomic numbers the model accepts
    std::string dtype;               // "float32" or "float64"
    std::string energy_unit;         // "eV"
    std::string length_unit;         // "A"
    std::string name;
    std::string json;                // the metadata as stored (metatomic: its ModelMetadata)
    // A layered model (methods embed and layer, docs/model-contract.md): its message-passing
    // layers and the width of its node features; 0 for a model with forward only.
    int layers = 0;
    int features = 0;

    // Message-passing depth: how many cutoffs the interaction range spans (>= 1). An atom's
    // energy depends on full neighbourhoods up to depth - 1 hops away.
    int depth() const;
};

ModelMetadata parse_metadata(const std::string& json, const std::string& origin);

// What to compute; energy is always computed.
struct Request {
    bool forces = true;
    bool virial = true;
    bool energies = false;           // per-atom energies
    bool atomic_virials = false;     // per-atom virials (half of each edge's virial to each end)
    bool forces_rms_spread = false;  // the force diagnostic (a scatter of every copy's forces)
    // MD step of this evaluation: random rotations are drawn from (seed, step), so evaluating
    // the same step again gives the same rotation. -1: the model's own counter, which advances
    // after every successful evaluation (see Model::rotation_step).
    int64_t step = -1;
    // compute(): the energy is that of atoms [0, energy_atoms) only, the others being their
    // surroundings (a domain's ghost atoms out to the interaction range); forces and the virial
    // are still those of all atoms. -1: every atom.
    int64_t energy_atoms = -1;
    // [N] amu, optional: the masses that weight the torque-free correction (the integrator's;
    // default: standard atomic weights of the elements). compute() and compute_graph() only.
    const double* masses = nullptr;
    // false: the plain model, whatever the option rotations (the fast level of multiple time
    // stepping, docs/probing.md); its diagnostics are those of one copy
    bool symmetrize = true;
};

// Symmetry-breaking diagnostics; all but forces_rms_spread cost nothing extra.
struct Diagnostics {
    std::vector<double> rotation_energies;   // [G] eV, energy of every rotated copy
    double energy_std = 0.0;                 // eV, weighted standard deviation over rotations
    double energy_spread = 0.0;              // eV, max - min over rotations
    double forces_rms_spread = 0.0;          // eV/A, weighted RMS deviation (per component) of
                                             // the back-rotated forces from their mean (if
                                             // requested)
    std::array<double, 3> net_force{};       // eV/A, sum of forces (zero for a contract model)
    std::array<double, 3> net_torque{};      // eV, sum_i x_i x F_i = eps_abc W_bc; about any
                                             // point for non-periodic systems
};

struct Results {
    double energy = 0.0;                     // eV
    std::vector<double> energies;            // [N] eV, if requested
    std::vector<double> forces;              // [N, 3] eV/A, if requested
    std::array<double, 9> virial{};          // eV, W = -sum_e r_e (x) dE/dr_e, row-major
    std::vector<double> atomic_virials;      // [N, 9] eV, if requested
    Diagnostics diagnostics;
};

// Node features of a graph shared between processes that each own part of a system (LAMMPS's MPI
// ranks): a layered model's features of the nodes a process does not own come, between layers,
// from the process that owns them, and their gradients go back to it. Rows are [n_nodes, width]
// of the graph, in its node order; every process of the system makes the same calls in the
// same order (they are collective).
class FeatureExchange {
public:
    virtual ~FeatureExchange() = default;
    // The rows of the nodes this process does not own [n_energy_nodes, n_nodes) replaced by
    // their owners' rows.
    virtual void forward(double* features, int64_t width) = 0;
    // Gradients: the rows of nodes owned elsewhere added to their owners' rows (here or on the
    // process that owns them), and set to zero.
    virtual void reverse(double* gradients, int64_t width) = 0;
};

// A graph as the model contract sees it; lets front ends that own their neighbour lists (LAMMPS
// ghosts) use the same evaluation path.
struct Graph {
    const int32_t* numbers = nullptr;   // [n_nodes] atomic numbers
    int64_t n_nodes = 0;
    int64_t n_energy_nodes = 0;         // energy summed over nodes [0, n_energy_nodes)
    const int64_t* centers = nullptr;   // [n_edges]
    const int64_t* neighbors = nullptr; // [n_edges]
    const double* vectors = nullptr;    // [n_edges, 3] Angstrom
    int64_t n_edges = 0;
    // [n_nodes, 3] Angstrom, optional: where the option `atoms` splits a large system, pieces
    // are boxes of these positions (compact, small halos); without them, grown over the graph
    const double* positions = nullptr;
    // [3], optional: periodicity of the system; needed by correction torque-free (with the
    // positions when the system is not periodic)
    const bool* pbc = nullptr;
    // Optional, for a layered model: the nodes [n_energy_nodes, n_nodes) are images of atoms
    // that other processes own and evaluate, and only the nodes [0, n_energy_nodes) may be edge
    // centres. The model runs layer by layer; between layers the exchange brings the features of
    // those nodes from their owners, so each process evaluates its own atoms only and the graph
    // needs neighbours out to one cutoff, not the interaction range.
    FeatureExchange* exchange = nullptr;
};

// One structure of a batch (views into the caller's arrays).
struct System {
    const double* positions = nullptr;  // [n_atoms, 3] Angstrom
    const int32_t* numbers = nullptr;   // [n_atoms]
    int64_t n_atoms = 0;
    const double* cell = nullptr;       // [3, 3] Angstrom, rows
    const bool* pbc = nullptr;          // [3]
};

// Bundled models: files <name>.pt in bundled_models_directory() (empty if none is found).
std::string bundled_models_directory();
std::vector<std::string> bundled_models();
// The file of bundled model `name`, or "" if there is none.
std::string bundled_model_path(const std::string& name);
// A file that exists is used (its absolute path if it shadows a bundled name); otherwise a
// bundled model name (no '/') gives its file; anything else is returned unchanged (loading it
// then names it as missing).
std::string resolve_model_path(const std::string& model);

// CPU evaluations keep the large blocks (>= 1 MB) that they free for the next evaluation, instead
// of taking fresh pages from the system every time (docs/performance.md): the bytes of free
// blocks the cache holds now, and the allocations it has served from kept blocks so far.
struct CpuCacheStats {
    int64_t free_bytes = 0;
    int64_t reused = 0;
};
CpuCacheStats cpu_cache_stats();

class Model {
public:
    // Loads the TorchScript file (or bundled model by name, see resolve_model_path) and its
    // metadata once. Throws Error(FileNotFound / InvalidModel) with the path in the message.
    Model(const std::string& path, const ModelOptions& options = {});
    ~Model();
    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    const ModelMetadata& metadata() const;
    const ModelOptions& options() const;
    const std::string& path() const;

    // Energy, forces and virial of a system: positions [N,3] (A), atomic numbers [N], cell [3,3]
    // (A, rows), periodicity along each axis. Builds (or re-uses) the neighbour list.
    Results compute(const double* positions, const int32_t* numbers, int64_t n_atoms,
                    const double* cell, const bool* pbc, const Request& request = {});

    // Evaluates a graph the caller built; forces are returned for all n_nodes.
    Results compute_graph(const Graph& graph, const Request& request = {});

    // Several independent structures (e.g. path-integral beads), `batch` of them per model call
    // (per rotation chunk); one result per structure. All structures share this evaluation's
    // rotations, and the counter of requests without a step advances once per batch.
    std::vector<Results> compute_batch(const std::vector<System>& systems, const Request& request = {});

    // Throws Error(InvalidInput) naming the first atom whose element the model lacks; front ends
    // call it to validate a structure before any evaluation.
    void check_numbers(const int32_t* numbers, int64_t n_atoms) const;

    // The step counter used by requests with step = -1; front ends without an MD step (ASE, the
    // i-PI driver) save it in restarts and set it after reading one.
    uint64_t rotation_step() const;
    void set_rotation_step(uint64_t step);
    // Weights of the rotation set (the same at every step), for rotation_statistics.
    const std::vector<double>& rotation_weights() const;
    // Rotations per batched model call: the user's chunk, else the automatic choice once its
    // first evaluations have tuned it (0 before).
    int64_t rotation_chunk() const;
    // The memory budget of one model call (bytes) and the memory one edge of one copy kept
    // alive from forward to backward pass in the calls so far, the largest seen (bytes; 0
    // before the first call): the CPU's heap, or the device's caching allocator.
    double memory_budget_bytes() const;
    double memory_per_edge_bytes() const;
    // Structures per model call in compute_batch: the user's batch, else the automatic choice
    // once tuned (0 before).
    int64_t structure_batch() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace symprobe
