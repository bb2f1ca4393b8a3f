// pair_style symprobe MODEL [rotations none|random|grid L|lebedev L] [inversion yes|no]
//                           [randomize yes|no] [seed S] [chunk N] [device cpu|cuda] [threads N]
// pair_coeff * * ELEMENT_OF_TYPE_1 ELEMENT_OF_TYPE_2 ...
// MODEL: a TorchScript file or a bundled model name (symprobe::resolve_model_path)
#include "pair_symprobe.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include "symprobe/symprobe.hpp"

#include <cmath>
#include <cstring>

using namespace LAMMPS_NS;

namespace {
constexpr double KCAL_PER_MOL_PER_EV = 23.060547830619026;  // CODATA 2018

bool yes_no(const std::string& value, const char* keyword, Error* error) {
    if (value == "yes") return true;
    if (value == "no") return false;
    error->all(FLERR, "pair_style symprobe: {} must be yes or no, got '{}'", keyword, value);
    return false;
}
}  // namespace

PairSymprobe::PairSymprobe(LAMMPS* lmp) : Pair(lmp) {
    single_enable = 0;
    restartinfo = 1;
    one_coeff = 1;
    manybody_flag = 1;
    ghostneigh = 1;  // set per model in load()
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
    type_numbers_.assign(n, 0);
}

void PairSymprobe::load() {
    // args_: model path, then keyword/value pairs (rotations takes one or two words)
    symprobe::ModelOptions options;
    std::string rotations = "none";
    for (size_t k = 1; k < args_.size(); ++k) {
        const std::string& key = args_[k];
        auto value = [&](const char* what) -> std::string {
            if (k + 1 >= args_.size()) error->all(FLERR, "pair_style symprobe: {} needs a value ({})", key, what);
            return args_[++k];
        };
        if (key == "rotations") {
            rotations = value("none, random, grid L or lebedev L");
            if ((rotations == "grid" || rotations == "lebedev") && k + 1 < args_.size()) {
                rotations += " " + args_[++k];
            }
        } else if (key == "inversion") {
            options.rotations.inversion = yes_no(value("yes or no"), "inversion", error);
        } else if (key == "randomize") {
            options.rotations.randomize = yes_no(value("yes or no"), "randomize", error);
        } else if (key == "seed") {
            options.rotations.seed = utils::bnumeric(FLERR, value("an integer"), false, lmp);
        } else if (key == "chunk") {
            options.rotations.chunk = utils::inumeric(FLERR, value("an integer"), false, lmp);
        } else if (key == "device") {
            options.device = value("cpu or cuda");
        } else if (key == "threads") {
            options.threads = utils::inumeric(FLERR, value("an integer"), false, lmp);
        } else {
            error->all(FLERR, "pair_style symprobe: unknown keyword '{}' (expected rotations, inversion, "
                              "randomize, seed, chunk, device, threads)", key);
        }
    }
    try {
        symprobe::RotationOptions parsed = symprobe::RotationOptions::parse(rotations);
        parsed.inversion = options.rotations.inversion;
        parsed.randomize = options.rotations.randomize;
        parsed.seed = options.rotations.seed;
        parsed.chunk = options.rotations.chunk;
        options.rotations = parsed;
        model_ = std::make_unique<symprobe::Model>(args_[0], options);
    } catch (const symprobe::Error& e) {
        error->all(FLERR, "pair_style symprobe: {}", e.what());
    }
    // quadrature weights do not change between evaluations (random re-orientations keep them)
    rotation_weights_ = symprobe::rotation_set(model_->options().rotations, 0).weights;
    model_cutoff_ = model_->metadata().cutoff;
    range_ = model_->metadata().interaction_range;
    // a single message-passing step needs only the edges of local atoms; deeper models also
    // need the neighbourhoods of ghost atoms out to the interaction range
    ghostneigh = range_ > model_cutoff_ ? 1 : 0;
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
        int z = 0;
        try {
            z = symprobe::atomic_number(arg[1 + t]);
        } catch (const symprobe::Error& e) {
            error->all(FLERR, "pair_coeff symprobe: atom type {}: {}", t, e.what());
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
        for (int j = i; j <= ntypes; ++j) setflag[i][j] = 1;
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
        if (type_numbers_[t] == 0) error->all(FLERR, "pair_style symprobe: atom type {} has no element", t);
    }
    neighbor->add_request(this, ghostneigh ? NeighConst::REQ_FULL | NeighConst::REQ_GHOST
                                           : NeighConst::REQ_FULL);
}

double PairSymprobe::init_one(int i, int j) {
    // ghost atoms out to the interaction range make every local energy exact
    if (ghostneigh) cutghost[i][j] = cutghost[j][i] = range_;
    return range_;
}

void PairSymprobe::compute(int eflag, int vflag) {
    ev_init(eflag, vflag);
    double** x = atom->x;
    double** f = atom->f;
    const int* type = atom->type;
    const int nlocal = atom->nlocal, nall = nlocal + atom->nghost;
    const int n_centers = list->inum + (ghostneigh ? list->gnum : 0);

    std::vector<int32_t> numbers(nall);
    for (int i = 0; i < nall; ++i) numbers[i] = type_numbers_[type[i]];
    std::vector<int64_t> centers, neighbors;
    std::vector<double> vectors;
    const double rc2 = model_cutoff_ * model_cutoff_;
    for (int ii = 0; ii < n_centers; ++ii) {
        const int i = list->ilist[ii];
        const int* jlist = list->firstneigh[i];
        for (int jj = 0; jj < list->numneigh[i]; ++jj) {
            const int j = jlist[jj] & NEIGHMASK;
            const double d[3] = {x[j][0] - x[i][0], x[j][1] - x[i][1], x[j][2] - x[i][2]};
            if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] >= rc2) continue;
            centers.push_back(i);
            neighbors.push_back(j);
            vectors.insert(vectors.end(), d, d + 3);
        }
    }
    symprobe::Graph g;
    g.numbers = numbers.data();
    g.n_nodes = nall;
    g.n_energy_nodes = nlocal;
    g.centers = centers.data();
    g.neighbors = neighbors.data();
    g.vectors = vectors.data();
    g.n_edges = static_cast<int64_t>(centers.size());
    symprobe::Request request;
    request.forces = true;
    request.virial = vflag_global != 0;
    request.energies = eflag_atom != 0;
    request.atomic_virials = vflag_atom != 0;
    symprobe::Results r;
    try {
        r = model_->compute_graph(g, request);
    } catch (const symprobe::Error& e) {
        error->one(FLERR, "pair_style symprobe: {}", e.what());
    }

    const double ef = energy_factor_;
    for (int i = 0; i < nall; ++i)
        for (int c = 0; c < 3; ++c) f[i][c] += ef * r.forces[3 * i + c];
    if (eflag_global) eng_vdwl += ef * r.energy;
    if (eflag_atom)
        for (int i = 0; i < nlocal; ++i) eatom[i] += ef * r.energies[i];
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
        for (int i = 0; i < nall; ++i) sym(&r.atomic_virials[9 * i], vatom[i], ef);

    // diagnostics of the whole system: rotation energies and torque summed over ranks
    std::vector<double> local(r.diagnostics.rotation_energies);
    local.insert(local.end(), r.diagnostics.net_torque.begin(), r.diagnostics.net_torque.end());
    std::vector<double> total(local.size());
    MPI_Allreduce(local.data(), total.data(), static_cast<int>(local.size()), MPI_DOUBLE, MPI_SUM, world);
    const size_t n_rot = r.diagnostics.rotation_energies.size();
    const std::vector<double>& weights = rotation_weights_;
    double wsum = 0, mean = 0, var = 0, lo = total[0], hi = total[0];
    for (size_t k = 0; k < n_rot; ++k) {
        wsum += weights[k];
        mean += weights[k] * total[k];
        lo = std::min(lo, total[k]);
        hi = std::max(hi, total[k]);
    }
    mean /= wsum;
    for (size_t k = 0; k < n_rot; ++k) var += weights[k] * (total[k] - mean) * (total[k] - mean) / wsum;
    diagnostics_[0] = ef * (hi - lo);
    diagnostics_[1] = ef * std::sqrt(var);
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

// Restart files keep the pair_style arguments and the position of the random rotation stream.
void PairSymprobe::write_restart_settings(FILE* fp) {
    if (comm->me != 0) return;
    int n = static_cast<int>(args_.size());
    std::fwrite(&n, sizeof(int), 1, fp);
    for (const std::string& a : args_) {
        int len = static_cast<int>(a.size());
        std::fwrite(&len, sizeof(int), 1, fp);
        std::fwrite(a.data(), 1, len, fp);
    }
    uint64_t step = model_->rotation_step();
    std::fwrite(&step, sizeof(step), 1, fp);
}

void PairSymprobe::read_restart_settings(FILE* fp) {
    int n = 0;
    if (comm->me == 0) utils::sfread(FLERR, &n, sizeof(int), 1, fp, nullptr, error);
    MPI_Bcast(&n, 1, MPI_INT, 0, world);
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
    uint64_t step = 0;
    if (comm->me == 0) utils::sfread(FLERR, &step, sizeof(step), 1, fp, nullptr, error);
    MPI_Bcast(&step, 1, MPI_UINT64_T, 0, world);
    load();
    model_->set_rotation_step(step);
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
        for (int j = i; j <= atom->ntypes; ++j) setflag[i][j] = 1;
}
