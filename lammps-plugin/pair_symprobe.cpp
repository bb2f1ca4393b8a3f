// pair_style symprobe MODEL [key value ...]   (the core's options: symprobe::option_table())
// pair_coeff * * ELEMENT_OF_TYPE_1 ELEMENT_OF_TYPE_2 ...   (NULL: a type left to other styles)
// MODEL: a TorchScript file or a bundled model name (symprobe::resolve_model_path)
#include "pair_symprobe.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "universe.h"
#include "update.h"
#include "utils.h"

#include "symprobe/symprobe.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace LAMMPS_NS;

namespace {
constexpr double KCAL_PER_MOL_PER_EV = 23.060547830619026;  // CODATA 2018
constexpr int NULL_TYPE = 0;   // pair_coeff NULL: neither centre nor neighbour of this style
constexpr int UNSET_TYPE = -1;
constexpr int RESTART_FORMAT = -2;  // first int of the restart settings (older files: the arg count)
}  // namespace

PairSymprobe::PairSymprobe(LAMMPS* lmp) : Pair(lmp) {
    single_enable = 0;
    restartinfo = 1;
    one_coeff = 1;
    manybody_flag = 1;
    ghostneigh = 0;  // set in init_style: ghost neighbourhoods for deep models on several ranks
    // a full list with forces on ghosts: the f.r virial would be wrong, tally it explicitly
    no_virial_fdotr_compute = 1;
    centroidstressflag = CENTROID_NOTAVAIL;
    nextra = 5;
    pvector = new double[nextra];
}

PairSymprobe::~PairSymprobe() {
    delete[] pvector;
    if (allocated) {
        memory->destroy(setflag);
        memory->destroy(cutsq);
        memory->destroy(cutghost);
    }
}

void PairSymprobe::allocate() {
    allocated = 1;
    const int n = atom->ntypes + 1;
    memory->create(setflag, n, n, "pair:setflag");
    memory->create(cutsq, n, n, "pair:cutsq");
    memory->create(cutghost, n, n, "pair:cutghost");
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) setflag[i][j] = 0;
    type_numbers_.assign(n, UNSET_TYPE);
}

void PairSymprobe::load() {
    // args_: the model, then the core's `key value` options
    symprobe::ModelOptions options;
    try {
        options = symprobe::ModelOptions::parse({args_.begin() + 1, args_.end()});
    } catch (const symprobe::Error& e) {
        error->all(FLERR, "pair_style symprobe: {}", e.what());
    }
    // options of the vocabulary that LAMMPS sets itself or never uses
    if (options.skin != 0.0) {
        error->all(FLERR, "pair_style symprobe: skin is not a pair_style option: LAMMPS's "
                          "`neighbor` command sets the skin of the neighbour list");
    }
    if (options.batch != 0) {
        error->all(FLERR, "pair_style symprobe: batch is not a pair_style option: it sets the "
                          "structures per model call of a batch (i-PI beads); LAMMPS evaluates "
                          "one structure per rank");
    }
    if (options.device == "cuda") {  // each rank takes the GPU of its node-local rank
        // among all of LAMMPS's ranks (every partition of -partition, e.g. the beads of PIMD)
        MPI_Comm node;
        MPI_Comm_split_type(universe->uworld, MPI_COMM_TYPE_SHARED, universe->me, MPI_INFO_NULL, &node);
        int local_rank = 0, local_ranks = 1;
        MPI_Comm_rank(node, &local_rank);
        MPI_Comm_size(node, &local_ranks);
        MPI_Comm_free(&node);
        const int gpus = symprobe::cuda_device_count();
        options.device = symprobe::device_for_local_rank(options.device, local_rank, gpus);
        if (comm->me == 0 && gpus > 0) {
            utils::logmesg(lmp, "symprobe: device cuda: {} rank(s) on this node share {} GPU(s), "
                                "node-local rank r uses cuda:(r mod {})\n", local_ranks, gpus, gpus);
        }
    }
    try {
        model_ = std::make_unique<symprobe::Model>(args_[0], options);
    } catch (const symprobe::Error& e) {
        error->all(FLERR, "pair_style symprobe: {}", e.what());
    }
    model_cutoff_ = model_->metadata().cutoff;
    range_ = model_->metadata().interaction_range;
    positions_model_ = model_->metadata().kind == "metatomic";
    // Doubles per atom of one feature exchange (init_style decides whether there is one): the
    // features of the rotated copies of one model call, the user's chunk or one copy per call.
    // Set here, not in init_style: pair_style hybrid reads its sub-styles' sizes after settings.
    const int64_t copies = std::min<int64_t>(std::max(1, model_->options().rotations.chunk),
                                             static_cast<int64_t>(model_->rotation_weights().size()));
    const int64_t width = static_cast<int64_t>(model_->metadata().features) * copies;
    if (width > (1 << 24)) {
        error->all(FLERR, "pair_style symprobe: chunk {}: {} features per atom and rotated copy make {} values "
                          "per atom for each exchange between ranks; use a smaller chunk",
                   model_->options().rotations.chunk, model_->metadata().features, width);
    }
    comm_forward = comm_reverse = static_cast<int>(width);
    if (comm->me == 0) {
        utils::logmesg(lmp, "symprobe: model {} (cutoff {} A, interaction range {} A), rotations {}\n",
                       model_->path(), model_cutoff_, range_, model_->options().rotations.describe());
    }
}

void PairSymprobe::settings(int narg, char** arg) {
    if (narg < 1) error->all(FLERR, "Illegal pair_style symprobe command: expected a model file or bundled model name");
    args_.assign(arg, arg + narg);
    load();
}

void PairSymprobe::coeff(int narg, char** arg) {
    if (!allocated) allocate();
    const int ntypes = atom->ntypes;
    if (narg != 2 + ntypes || std::strcmp(arg[0], "*") != 0 || std::strcmp(arg[1], "*") != 0) {
        error->all(FLERR, "pair_coeff for symprobe must be '* * E1 ... E{}' with one element per atom type",
                   ntypes);
    }
    const auto& allowed = model_->metadata().elements;
    for (int t = 1; t <= ntypes; ++t) {
        if (std::strcmp(arg[1 + t], "NULL") == 0) {
            type_numbers_[t] = NULL_TYPE;
            continue;
        }
        int z = 0;
        try {
            z = symprobe::atomic_number(arg[1 + t]);
        } catch (const symprobe::Error& e) {
            error->all(FLERR, "pair_coeff symprobe: atom type {}: {} (NULL leaves a type to other "
                              "styles of pair_style hybrid)", t, e.what());
        }
        bool ok = false;
        for (int e : allowed) ok = ok || e == z;
        if (!ok) {
            std::string list;
            for (int e : allowed) list += " " + symprobe::element_symbol(e);
            error->all(FLERR, "pair_coeff symprobe: atom type {} is {}, which the model does not support "
                              "(elements:{})", t, arg[1 + t], list);
        }
        type_numbers_[t] = z;
    }
    for (int i = 1; i <= ntypes; ++i)
        for (int j = i; j <= ntypes; ++j)
            setflag[i][j] = type_numbers_[i] != NULL_TYPE && type_numbers_[j] != NULL_TYPE ? 1 : 0;
}

void PairSymprobe::init_style() {
    if (force->newton_pair == 0) error->all(FLERR, "pair_style symprobe requires newton pair on");
    if (std::strcmp(update->unit_style, "metal") == 0) {
        energy_factor_ = 1.0;
    } else if (std::strcmp(update->unit_style, "real") == 0) {
        energy_factor_ = KCAL_PER_MOL_PER_EV;
    } else {
        error->all(FLERR, "pair_style symprobe supports units metal and real, not '{}'", update->unit_style);
    }
    for (int t = 1; t <= atom->ntypes; ++t) {
        if (type_numbers_[t] == UNSET_TYPE) error->all(FLERR, "pair_style symprobe: atom type {} has no element", t);
    }
    if (model_->options().direct_forces && comm->nprocs > 1) {
        error->all(FLERR, "pair_style symprobe: forces direct runs on one rank only: a rank's direct "
                          "forces on its ghosts are not forces on their owners, and a cluster has no stress");
    }
    const bool finite = !domain->xperiodic && !domain->yperiodic && !domain->zperiodic;
    if (model_->options().torque_free && finite && comm->nprocs > 1) {
        error->all(FLERR, "pair_style symprobe: correction torque-free of a non-periodic system runs on one "
                          "rank only: the net force and torque are those of all atoms together");
    }
    if (model_->options().torque_free && positions_model_ && comm->nprocs > 1) {
        error->all(FLERR, "pair_style symprobe: correction torque-free with the metatomic model {} runs on one "
                          "rank only: each rank evaluates a finite cluster of its atoms and ghosts",
                   model_->path());
    }
    if (positions_model_) {
        // A model that takes positions: on one rank the local atoms in LAMMPS's periodic box
        // (the core builds the periodic neighbour lists with cell shifts, as for any structure);
        // on several ranks a rank's atoms with its ghosts out to the interaction range as one
        // finite cluster whose energy is that of the local atoms, forces on ghosts going back
        // to their owners. LAMMPS's own neighbour list is not read.
        merge_by_id_ = false;
        remote_hops_ = 0;
        ghostneigh = 0;
        report_graph_ = true;
        neighbor->add_request(this, NeighConst::REQ_FULL);
        if (comm->me == 0) {
            utils::logmesg(lmp, comm->nprocs == 1
                                    ? "symprobe: metatomic model on one rank: the local atoms in the periodic box\n"
                                    : "symprobe: metatomic model on {} ranks: each rank evaluates its atoms with its "
                                      "ghosts out to the interaction range ({} A) as one cluster\n",
                           comm->nprocs, range_);
        }
        return;
    }
    // Ghost atoms are merged by atom ID into one graph node per atom, so the model sees each
    // atom once (on one rank the local atoms with the ghosts' image vectors are the exact
    // periodic graph). On several ranks a model of depth L needs the neighbourhoods of remote
    // atoms up to L-1 hops from the local ones: ghosts out to the interaction range, with
    // neighbour lists of their own.
    merge_by_id_ = atom->tag_enable != 0;
    const int depth = model_->metadata().depth();
    // a layered model on several ranks: each rank evaluates its own atoms layer by layer, the
    // ghosts' features exchanged between layers (ghosts out to one cutoff)
    exchange_ = comm->nprocs > 1 && merge_by_id_ && depth > 1 && model_->metadata().layers > 0;
    remote_hops_ = (comm->nprocs == 1 && merge_by_id_) || exchange_ ? 0 : depth - 1;
    ghostneigh = remote_hops_ > 0 ? 1 : 0;

    report_graph_ = true;
    neighbor->add_request(this, ghostneigh ? NeighConst::REQ_FULL | NeighConst::REQ_GHOST
                                           : NeighConst::REQ_FULL);
    if (comm->me == 0) {
        if (exchange_) {
            utils::logmesg(lmp, "symprobe: {} ranks: each rank evaluates its own atoms, layer by layer; the "
                                "features of ghost atoms ({} per atom and rotated copy) come from their "
                                "owners between layers (ghosts out to one cutoff, {} A)\n",
                           comm->nprocs, model_->metadata().features, model_cutoff_);
        } else if (remote_hops_ == 0 && merge_by_id_ && depth > 1) {
            utils::logmesg(lmp, "symprobe: one rank: ghost atoms are mapped to the local atoms they image\n");
        } else if (remote_hops_ > 0) {
            utils::logmesg(lmp, "symprobe: {} ranks: each rank evaluates the neighbourhoods of remote "
                                "atoms up to {} hop(s) from its own{} (ghosts out to the interaction "
                                "range, {} A)\n", comm->nprocs, remote_hops_,
                           merge_by_id_ ? ", ghost images merged by atom ID" : "", range_);
        }
    }
}

double PairSymprobe::init_one(int i, int j) {
    // merged images need ghosts within one cutoff; remote neighbourhoods need them out to the
    // interaction range
    if (ghostneigh) cutghost[i][j] = cutghost[j][i] = range_;
    if (positions_model_) return comm->nprocs > 1 ? range_ : model_cutoff_;
    return remote_hops_ > 0 || !merge_by_id_ ? range_ : model_cutoff_;
}

int PairSymprobe::evaluate_positions(symprobe::Results& r, const symprobe::Request& request_in) {
    double** x = atom->x;
    const int* type = atom->type;
    const bool cluster = comm->nprocs > 1;
    const int nlocal = atom->nlocal, nall = cluster ? nlocal + atom->nghost : nlocal;
    atom_of_.clear();
    numbers_.clear();
    positions_.clear();
    int64_t n_local_nodes = 0;
    for (int i = 0; i < nall; ++i) {
        if (type_numbers_[type[i]] <= 0) continue;
        if (i < nlocal) n_local_nodes++;
        atom_of_.push_back(i);
        numbers_.push_back(type_numbers_[type[i]]);
        positions_.insert(positions_.end(), x[i], x[i] + 3);
    }
    const int64_t n_nodes = static_cast<int64_t>(atom_of_.size());
    if (report_graph_ && cluster) {
        report_graph_ = false;
        int64_t mine[2] = {n_local_nodes, n_nodes - n_local_nodes}, most[2];
        MPI_Allreduce(mine, most, 2, MPI_INT64_T, MPI_MAX, world);
        if (comm->me == 0) {
            utils::logmesg(lmp, "symprobe: largest cluster of a rank: {} local atoms, {} ghost atoms\n", most[0], most[1]);
        }
    }
    if (n_nodes == 0) return 0;
    // LAMMPS's box: a = (xprd, 0, 0), b = (xy, yprd, 0), c = (xz, yz, zprd)
    const double* h = domain->h;
    const double cell[9] = {h[0], 0.0, 0.0, h[5], h[1], 0.0, h[4], h[3], h[2]};
    const bool pbc[3] = {!cluster && domain->xperiodic != 0, !cluster && domain->yperiodic != 0,
                         !cluster && domain->zperiodic != 0};
    symprobe::Request request = request_in;
    request.energy_atoms = n_local_nodes;
    if (model_->options().torque_free && !(pbc[0] || pbc[1] || pbc[2])) request.masses = node_masses();
    try {
        r = model_->compute(positions_.data(), numbers_.data(), n_nodes, cell, pbc, request);
    } catch (const symprobe::Error& e) {
        error->one(FLERR, "pair_style symprobe: {}", e.what());
    }
    return static_cast<int>(n_local_nodes);
}

void PairSymprobe::compute(int eflag, int vflag) {
    ev_init(eflag, vflag);
    if (positions_model_) {
        if (vflag_atom) {
            error->all(FLERR, "pair_style symprobe: per-atom virials (compute stress/atom) are not "
                              "available for the metatomic model {}", model_->path());
        }
        symprobe::Results r;
        symprobe::Request request;
        request.forces = true;
        request.virial = vflag_global != 0;
        request.energies = eflag_atom != 0;
        request.step = static_cast<int64_t>(update->ntimestep);
        const int n_local_nodes = evaluate_positions(r, request);
        if (atom_of_.empty()) r.diagnostics.rotation_energies.assign(model_->rotation_weights().size(), 0.0);
        tally(r, static_cast<int64_t>(atom_of_.size()), n_local_nodes);
        return;
    }
    double** x = atom->x;
    const int* type = atom->type;
    const int nlocal = atom->nlocal, nall = nlocal + atom->nghost;
    const tagint* tag = atom->tag;

    // graph nodes: atoms of this style's types, local ones first (they carry the energy), then
    // remote atoms in the order the hops reach them; one node per atom ID when merging
    node_of_.assign(nall, -1);
    node_of_id_.clear();
    atom_of_.clear();
    numbers_.clear();
    frontier_.clear();
    const auto new_node = [&](int j) {
        node_of_[j] = static_cast<int64_t>(atom_of_.size());
        atom_of_.push_back(j);
        numbers_.push_back(type_numbers_[type[j]]);
        if (merge_by_id_) node_of_id_.emplace(tag[j], node_of_[j]);
    };
    for (int i = 0; i < nlocal; ++i) {
        if (type_numbers_[type[i]] <= 0) continue;
        new_node(i);
        frontier_.push_back(i);
    }
    const int64_t n_local_nodes = static_cast<int64_t>(atom_of_.size());
    n_local_nodes_ = n_local_nodes;
    // the node of atom j, made on first sight: `fresh` says whether it is new
    const auto node_of = [&](int j, bool& fresh) -> int64_t {
        fresh = false;
        if (node_of_[j] >= 0) return node_of_[j];
        if (merge_by_id_) {
            const auto known = node_of_id_.find(tag[j]);
            if (known != node_of_id_.end()) return node_of_[j] = known->second;
        }
        if (merge_by_id_ && comm->nprocs == 1) {
            error->one(FLERR, "pair_style symprobe: ghost atom with ID {} images no local atom", tag[j]);
        }
        fresh = true;
        new_node(j);
        return node_of_[j];
    };

    // edges of every centre: the local atoms, then the remote atoms within remote_hops_ hops,
    // each read from an image whose neighbour list is complete (within hop x cutoff of this
    // rank's atoms, so its neighbours lie inside the ghost shell)
    centers_.clear();
    neighbors_.clear();
    vectors_.clear();
    const double rc2 = model_cutoff_ * model_cutoff_;
    int64_t n_centers = 0;
    for (int hop = 0; hop <= remote_hops_ && !frontier_.empty(); ++hop) {
        next_frontier_.clear();
        n_centers += static_cast<int64_t>(frontier_.size());
        for (const int i : frontier_) {
            const int64_t centre = node_of_[i];
            const int* jlist = list->firstneigh[i];
            for (int jj = 0; jj < list->numneigh[i]; ++jj) {
                const int j = jlist[jj] & NEIGHMASK;
                if (type_numbers_[type[j]] <= 0) continue;
                const double d[3] = {x[j][0] - x[i][0], x[j][1] - x[i][1], x[j][2] - x[i][2]};
                if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] >= rc2) continue;
                bool fresh = false;
                const int64_t node = node_of(j, fresh);
                if (fresh && hop < remote_hops_) next_frontier_.push_back(j);
                centers_.push_back(centre);
                neighbors_.push_back(node);
                vectors_.insert(vectors_.end(), d, d + 3);
            }
        }
        frontier_.swap(next_frontier_);
    }
    const int64_t n_nodes = static_cast<int64_t>(atom_of_.size());
    if (report_graph_) {  // once per run: what the halo costs on each rank
        report_graph_ = false;
        int64_t mine[4] = {n_local_nodes, n_centers - n_local_nodes, n_nodes - n_centers,
                           static_cast<int64_t>(centers_.size())};
        int64_t most[4];
        MPI_Allreduce(mine, most, 4, MPI_INT64_T, MPI_MAX, world);
        if (comm->me == 0 && comm->nprocs > 1) {
            if (exchange_) {
                utils::logmesg(lmp, "symprobe: largest graph of a rank: {} local atoms, {} ghost atoms "
                                    "(features exchanged), {} edges\n", most[0], most[2], most[3]);
            } else {
                utils::logmesg(lmp, "symprobe: largest graph of a rank: {} local atoms, {} remote centres, "
                                    "{} remote neighbours, {} edges\n", most[0], most[1], most[2], most[3]);
            }
        }
    }
    symprobe::Results r;
    symprobe::Request request;
    request.forces = true;
    request.virial = vflag_global != 0;
    request.energies = eflag_atom != 0;
    request.atomic_virials = vflag_atom != 0;
    // the rotation is a function of the step: a run that starts again at step k (run N + run N,
    // read_restart) draws the rotation of step k, as one long run does
    request.step = static_cast<int64_t>(update->ntimestep);
    if (n_nodes > 0) {
        symprobe::Graph g;
        g.numbers = numbers_.data();
        g.n_nodes = n_nodes;
        g.n_energy_nodes = n_local_nodes;
        g.centers = centers_.data();
        g.neighbors = neighbors_.data();
        g.vectors = vectors_.data();
        g.n_edges = static_cast<int64_t>(centers_.size());
        // positions: the boxes of the option `atoms`, and the torque-free correction of a
        // non-periodic box (which alone changes forces, weighted by the masses)
        const bool pbc[3] = {domain->xperiodic != 0, domain->yperiodic != 0, domain->zperiodic != 0};
        const bool finite_correction = model_->options().torque_free && !(pbc[0] || pbc[1] || pbc[2]);
        if (model_->options().atoms > 0 || finite_correction) {
            positions_.resize(3 * n_nodes);
            for (int64_t k = 0; k < n_nodes; ++k)
                for (int c = 0; c < 3; ++c) positions_[3 * k + c] = x[atom_of_[k]][c];
            g.positions = positions_.data();
        }
        g.pbc = pbc;
        if (exchange_) g.exchange = &feature_exchange_;
        if (finite_correction) request.masses = node_masses();
        try {
            r = model_->compute_graph(g, request);
        } catch (const symprobe::Error& e) {
            error->one(FLERR, "pair_style symprobe: {}", e.what());
        }
    } else {  // a rank without atoms of this style still joins the exchanges and the reduction below
        if (exchange_) idle_exchanges();
        r.diagnostics.rotation_energies.assign(model_->rotation_weights().size(), 0.0);
    }
    tally(r, n_nodes, n_local_nodes);
}

// The exchanges of one evaluation, as the core makes them (per model call of `copies` rotated
// copies: a forward exchange before every layer but the first, then, for the forces, a reverse
// exchange after every such layer's backward pass), for a rank without atoms of this style.
void PairSymprobe::idle_exchanges() {
    const int64_t rotations = static_cast<int64_t>(model_->rotation_weights().size());
    const int64_t chunk = std::max<int64_t>(1, model_->options().rotations.chunk);
    const int64_t features = model_->metadata().features, layers = model_->metadata().layers;
    for (int64_t first = 0; first < rotations; first += chunk) {
        const int64_t width = features * std::min(chunk, rotations - first);
        for (int64_t k = 1; k < layers; ++k) feature_exchange_.forward(nullptr, width);
        for (int64_t k = 1; k < layers; ++k) feature_exchange_.reverse(nullptr, width);
    }
}

// FeatureExchange: rows [nodes, width] of the graph; LAMMPS's communication works on atoms.
void PairSymprobe::Exchange::forward(double* features, int64_t width) {
    pair->forward_features(features, width);
}

void PairSymprobe::Exchange::reverse(double* gradients, int64_t width) {
    pair->reverse_gradients(gradients, width);
}

void PairSymprobe::forward_features(double* features, int64_t width) {
    const int nall = atom->nlocal + atom->nghost;
    exchange_width_ = static_cast<int>(width);
    // local rows are written below (or unused), ghost rows by the communication: no zeroing
    exchange_rows_.resize(static_cast<size_t>(nall) * width);
    const int64_t n_nodes = features ? static_cast<int64_t>(atom_of_.size()) : 0;
    for (int64_t k = 0; k < std::min(n_nodes, n_local_nodes_); ++k)
        std::copy_n(features + k * width, width, &exchange_rows_[static_cast<size_t>(atom_of_[k]) * width]);
    comm->forward_comm(this, exchange_width_);
    for (int64_t k = n_local_nodes_; k < n_nodes; ++k)
        std::copy_n(&exchange_rows_[static_cast<size_t>(atom_of_[k]) * width], width, features + k * width);
}

void PairSymprobe::reverse_gradients(double* gradients, int64_t width) {
    const int nall = atom->nlocal + atom->nghost;
    exchange_width_ = static_cast<int>(width);
    exchange_rows_.assign(static_cast<size_t>(nall) * width, 0.0);
    const int64_t n_nodes = gradients ? static_cast<int64_t>(atom_of_.size()) : 0;
    for (int64_t k = 0; k < n_nodes; ++k)  // a node's row goes to one of its images
        std::copy_n(gradients + k * width, width, &exchange_rows_[static_cast<size_t>(atom_of_[k]) * width]);
    comm->reverse_comm(this, exchange_width_);
    for (int64_t k = 0; k < n_nodes; ++k) {
        double* row = gradients + k * width;
        if (k < n_local_nodes_) {
            std::copy_n(&exchange_rows_[static_cast<size_t>(atom_of_[k]) * width], width, row);
        } else {
            std::fill_n(row, width, 0.0);
        }
    }
}

int PairSymprobe::pack_forward_comm(int n, int* list, double* buf, int, int*) {
    const int w = exchange_width_;
    for (int i = 0; i < n; ++i) std::copy_n(&exchange_rows_[static_cast<size_t>(list[i]) * w], w, buf + i * w);
    return n * w;
}

void PairSymprobe::unpack_forward_comm(int n, int first, double* buf) {
    const int w = exchange_width_;
    std::copy_n(buf, static_cast<size_t>(n) * w, &exchange_rows_[static_cast<size_t>(first) * w]);
}

int PairSymprobe::pack_reverse_comm(int n, int first, double* buf) {
    const int w = exchange_width_;
    std::copy_n(&exchange_rows_[static_cast<size_t>(first) * w], static_cast<size_t>(n) * w, buf);
    return n * w;
}

void PairSymprobe::unpack_reverse_comm(int n, int* list, double* buf) {
    const int w = exchange_width_;
    for (int i = 0; i < n; ++i) {
        double* row = &exchange_rows_[static_cast<size_t>(list[i]) * w];
        for (int c = 0; c < w; ++c) row[c] += buf[i * w + c];
    }
}

// The masses of the graph's nodes (LAMMPS's per-atom or per-type masses, amu in units metal and
// real), for the torque-free correction.
const double* PairSymprobe::node_masses() {
    masses_.resize(atom_of_.size());
    for (size_t k = 0; k < atom_of_.size(); ++k) {
        const int i = atom_of_[k];
        masses_[k] = atom->rmass ? atom->rmass[i] : atom->mass[atom->type[i]];
    }
    return masses_.data();
}

// Forces, energies and virials of the evaluated nodes into LAMMPS's arrays, and the diagnostics
// of the whole system reduced over ranks.
void PairSymprobe::tally(const symprobe::Results& r, int64_t n_nodes, int64_t n_local_nodes) {
    double** f = atom->f;
    const double ef = energy_factor_;
    for (int64_t k = 0; k < n_nodes; ++k)
        for (int c = 0; c < 3; ++c) f[atom_of_[k]][c] += ef * r.forces[3 * k + c];
    if (eflag_global) eng_vdwl += ef * r.energy;
    if (eflag_atom)
        for (int64_t k = 0; k < n_local_nodes; ++k) eatom[atom_of_[k]] += ef * r.energies[k];
    const auto sym = [](const double* w, double* v6, double factor) {
        v6[0] += factor * w[0];
        v6[1] += factor * w[4];
        v6[2] += factor * w[8];
        v6[3] += factor * 0.5 * (w[1] + w[3]);
        v6[4] += factor * 0.5 * (w[2] + w[6]);
        v6[5] += factor * 0.5 * (w[5] + w[7]);
    };
    if (vflag_global) sym(r.virial.data(), virial, ef);
    if (vflag_atom)
        for (int64_t k = 0; k < n_nodes; ++k) sym(&r.atomic_virials[9 * k], vatom[atom_of_[k]], ef);

    // diagnostics of the whole system: per-rotation energies and the torque summed over ranks,
    // reduced by the core
    std::vector<double> local(r.diagnostics.rotation_energies);
    local.insert(local.end(), r.diagnostics.net_torque.begin(), r.diagnostics.net_torque.end());
    std::vector<double> total(local.size());
    MPI_Allreduce(local.data(), total.data(), static_cast<int>(local.size()), MPI_DOUBLE, MPI_SUM, world);
    const size_t n_rot = r.diagnostics.rotation_energies.size();
    symprobe::RotationStatistics stats = symprobe::rotation_statistics(model_->rotation_weights(), total.data());
    diagnostics_[0] = ef * stats.spread;
    diagnostics_[1] = ef * stats.std;
    for (int c = 0; c < 3; ++c) diagnostics_[2 + c] = ef * total[n_rot + c];
    // compute pair sums pvector over ranks
    for (int k = 0; k < nextra; ++k) pvector[k] = diagnostics_[k] / comm->nprocs;
}

void* PairSymprobe::extract(const char* name, int& dim) {
    dim = 0;
    if (std::strcmp(name, "energy_spread") == 0) return &diagnostics_[0];
    if (std::strcmp(name, "energy_std") == 0) return &diagnostics_[1];
    if (std::strcmp(name, "net_torque") == 0) {
        dim = 1;
        return &diagnostics_[2];
    }
    return nullptr;
}

// Restart files keep the pair_style arguments and the element of each type. Random rotations
// need nothing more: they are a function of the step, which LAMMPS restores.
void PairSymprobe::write_restart_settings(FILE* fp) {
    if (comm->me != 0) return;
    int format = RESTART_FORMAT;
    std::fwrite(&format, sizeof(int), 1, fp);
    int n = static_cast<int>(args_.size());
    std::fwrite(&n, sizeof(int), 1, fp);
    for (const std::string& a : args_) {
        int len = static_cast<int>(a.size());
        std::fwrite(&len, sizeof(int), 1, fp);
        std::fwrite(a.data(), 1, len, fp);
    }
}

void PairSymprobe::read_restart_settings(FILE* fp) {
    int first = 0;
    if (comm->me == 0) utils::sfread(FLERR, &first, sizeof(int), 1, fp, nullptr, error);
    MPI_Bcast(&first, 1, MPI_INT, 0, world);
    const bool legacy = first >= 0;  // argument count first, an evaluation counter after them
    int n = first;
    if (!legacy) {
        if (first != RESTART_FORMAT) {
            error->all(FLERR, "pair_style symprobe: restart file written by an unknown version (format {})", -first);
        }
        if (comm->me == 0) utils::sfread(FLERR, &n, sizeof(int), 1, fp, nullptr, error);
        MPI_Bcast(&n, 1, MPI_INT, 0, world);
    }
    args_.assign(n, "");
    for (int k = 0; k < n; ++k) {
        int len = 0;
        std::string text;
        if (comm->me == 0) {
            utils::sfread(FLERR, &len, sizeof(int), 1, fp, nullptr, error);
            text.resize(len);
            utils::sfread(FLERR, text.data(), 1, len, fp, nullptr, error);
        }
        MPI_Bcast(&len, 1, MPI_INT, 0, world);
        text.resize(len);
        MPI_Bcast(text.data(), len, MPI_CHAR, 0, world);
        args_[k] = text;
    }
    if (legacy) {
        uint64_t counter = 0;
        if (comm->me == 0) utils::sfread(FLERR, &counter, sizeof(counter), 1, fp, nullptr, error);
    }
    load();
}

void PairSymprobe::write_restart(FILE* fp) {
    write_restart_settings(fp);
    if (comm->me == 0) std::fwrite(type_numbers_.data() + 1, sizeof(int), atom->ntypes, fp);
}

void PairSymprobe::read_restart(FILE* fp) {
    read_restart_settings(fp);
    allocate();
    if (comm->me == 0) utils::sfread(FLERR, type_numbers_.data() + 1, sizeof(int), atom->ntypes, fp, nullptr, error);
    MPI_Bcast(type_numbers_.data() + 1, atom->ntypes, MPI_INT, 0, world);
    for (int i = 1; i <= atom->ntypes; ++i)
        for (int j = i; j <= atom->ntypes; ++j)
            setflag[i][j] = type_numbers_[i] != NULL_TYPE && type_numbers_[j] != NULL_TYPE ? 1 : 0;
}
