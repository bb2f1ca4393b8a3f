// The option vocabulary shared by every front end: one table, one parser, one set of messages.
#include "symprobe/symprobe.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <locale>
#include <set>
#include <sstream>

namespace symprobe {
namespace {

constexpr int MAX_GRID_ORDER = 12;  // (2L-1)^2 L = 6348 rotations

[[noreturn]] void invalid(const std::string& message) { throw Error(Error::InvalidInput, message); }

bool parse_flag(const std::string& key, const std::string& value) {
    if (value == "yes" || value == "true" || value == "on" || value == "1") return true;
    if (value == "no" || value == "false" || value == "off" || value == "0") return false;
    invalid(key + " must be yes or no, got '" + value + "'");
}

// A whole token as a non-negative integer no larger than `max`; false if it is not one.
bool parse_count(const std::string& value, unsigned long long max, unsigned long long& out) {
    if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) return false;
    errno = 0;
    out = std::strtoull(value.c_str(), nullptr, 10);
    return errno == 0 && out <= max;
}

unsigned long long count(const std::string& key, const std::string& value, unsigned long long max,
                         const std::string& what) {
    unsigned long long out = 0;
    if (!parse_count(value, max, out)) invalid(key + " must be " + what + ", got '" + value + "'");
    return out;
}

double length(const std::string& key, const std::string& value) {
    std::istringstream in(value);
    in.imbue(std::locale::classic());
    double out = 0.0;
    if (!(in >> out) || !in.eof() || !(out >= 0.0) || !std::isfinite(out)) {
        invalid(key + " must be a non-negative length in Angstrom, got '" + value + "'");
    }
    return out;
}

std::string option_names() {
    std::string names;
    for (const OptionInfo& o : option_table()) names += (names.empty() ? "" : ", ") + o.name;
    return names;
}

}  // namespace

std::string device_for_local_rank(const std::string& device, int local_rank, int n_devices) {
    if (device != "cuda" || n_devices <= 0 || local_rank < 0) return device;
    return "cuda:" + std::to_string(local_rank % n_devices);
}

const std::vector<OptionInfo>& option_table() {
    static const std::vector<OptionInfo> table{
        {"rotations", "none|random|grid L|lebedev L", "none", false,
         "symmetrisation: none, one random rotation per step, or a rotation grid of order L"},
        {"inversion", "yes|no", "no", true,
         "grids: add -R for every rotation R; random: improper with probability 1/2"},
        {"randomize", "yes|no", "no", true, "grids: a random orientation of the whole grid per step"},
        {"seed", "S", "0", false, "random rotations of step k depend only on (seed, k); S >= 0"},
        {"chunk", "N", "0", false, "rotated copies per batched model call (0 = automatic)"},
        {"batch", "N", "0", false,
         "structures per model call in a batch (i-PI beads; 0 = automatic)"},
        {"atoms", "N", "0", false,
         "atoms whose energies one model call evaluates: a larger system is evaluated in pieces "
         "of about N atoms, layer by layer for a layered model, else each with the neighbourhood "
         "its energies depend on (0 = whole system)"},
        {"memory", "MB", "0", false,
         "memory budget of one model call in MB: the automatic chunk and batch put no more rotated "
         "copies or structures into one call than fit, as measured, and a layered model runs its "
         "layers in pieces where the whole system does not fit (0 = half the memory available at load)"},
        {"skin", "D", "0", false, "Verlet skin in Angstrom (0 = rebuild the neighbour list every call)"},
        {"threads", "N", "0", false, "torch and neighbour-search threads (0 = keep torch's setting)"},
        {"device", "cpu|cuda[:N]", "cpu", false, "where the model runs"},
        {"forces", "conservative|direct", "conservative", false,
         "conservative: -dE/dx and the strain derivative; direct: the model's own force and stress "
         "outputs (metatomic models that offer them), faster, but they do not conserve energy"},
        {"correction", "none|torque-free", "none", false,
         "torque-free: no net force and no net torque on a non-periodic system (mass-weighted "
         "projection), a symmetric virial for a periodic one; O(N), no extra model calls"},
    };
    return table;
}

ModelOptions ModelOptions::parse(const std::vector<std::string>& tokens) {
    ModelOptions out;
    RotationOptions& rot = out.rotations;
    std::set<std::string> seen;
    for (size_t k = 0; k < tokens.size(); ++k) {
        const std::string& key = tokens[k];
        bool known = false;
        std::string values;
        for (const OptionInfo& o : option_table()) {
            if (o.name == key) {
                known = true;
                values = o.values;
            }
        }
        if (!known) invalid("unknown option '" + key + "' (options: " + option_names() + ")");
        if (!seen.insert(key).second) invalid("option '" + key + "' is given twice");
        if (k + 1 >= tokens.size()) invalid(key + " needs a value (" + values + ")");
        const std::string& value = tokens[++k];
        if (key == "rotations") {
            if (value == "none" || value == "random") {
                rot.mode = value == "none" ? RotationOptions::None : RotationOptions::Random;
            } else if (value == "grid" || value == "lebedev") {
                const std::string needs = "rotations " + value + " needs an order L (a positive integer)";
                if (k + 1 >= tokens.size()) invalid(needs);
                unsigned long long order = 0;
                if (!parse_count(tokens[k + 1], 100000, order) || order == 0) {
                    invalid(needs + ", got '" + tokens[k + 1] + "'");
                }
                ++k;
                rot.mode = value == "grid" ? RotationOptions::Grid : RotationOptions::Lebedev;
                rot.order = static_cast<int>(order);
            } else {
                invalid("unknown rotations '" + value + "' (expected none, random, grid L or lebedev L)");
            }
        } else if (key == "inversion") {
            rot.inversion = parse_flag(key, value);
        } else if (key == "randomize") {
            rot.randomize = parse_flag(key, value);
        } else if (key == "seed") {
            rot.seed = count(key, value, ~0ULL, "a non-negative integer (0 to 2^64-1)");
        } else if (key == "chunk") {
            rot.chunk = static_cast<int>(count(key, value, 1u << 30, "a non-negative integer (0 = automatic)"));
        } else if (key == "batch") {
            out.batch = static_cast<int>(count(key, value, 1u << 30, "a non-negative integer (0 = automatic)"));
        } else if (key == "atoms") {
            out.atoms = static_cast<int64_t>(count(key, value, 1ULL << 40, "a non-negative integer (0 = whole system)"));
        } else if (key == "skin") {
            out.skin = length(key, value);
        } else if (key == "memory") {
            out.memory_mb = static_cast<double>(count(key, value, 1ULL << 40, "a non-negative integer in MB (0 = automatic)"));
        } else if (key == "threads") {
            out.threads = static_cast<int>(count(key, value, 4096, "a non-negative integer (0 = keep torch's setting)"));
        } else if (key == "forces") {
            if (value != "conservative" && value != "direct") {
                invalid("forces must be conservative or direct, got '" + value + "'");
            }
            out.direct_forces = value == "direct";
        } else if (key == "correction") {
            if (value != "none" && value != "torque-free") {
                invalid("correction must be none or torque-free, got '" + value + "'");
            }
            out.torque_free = value == "torque-free";
        } else if (key == "device") {
            unsigned long long index = 0;
            bool ok = value == "cpu" || value == "cuda" ||
                      (value.rfind("cuda:", 0) == 0 && parse_count(value.substr(5), 1024, index));
            if (!ok) invalid("device must be cpu, cuda or cuda:N, got '" + value + "'");
            out.device = value;
        }
    }
    rot.validate();
    return out;
}

void RotationOptions::validate() const {
    if (chunk < 0) invalid("chunk must be a non-negative integer (0 = automatic)");
    if (inversion && mode == None) {
        invalid("inversion needs rotations random, grid L or lebedev L");
    }
    if (randomize && mode != Grid && mode != Lebedev) {
        invalid("randomize applies to rotations grid L and lebedev L only");
    }
    if (mode == Grid && (order < 1 || order > MAX_GRID_ORDER)) {
        invalid("grid order must lie in 1.." + std::to_string(MAX_GRID_ORDER) + ", got " +
                std::to_string(order));
    }
    if (mode == Lebedev) {
        for (int l : lebedev_orders()) {
            if (l == order) return;
        }
        std::ostringstream msg;
        msg << "no Lebedev rule of order " << order << "; available:";
        for (int l : lebedev_orders()) msg << " " << l;
        invalid(msg.str());
    }
}

std::string RotationOptions::describe() const {
    std::ostringstream out;
    switch (mode) {
        case None: out << "none"; break;
        case Random: out << "random"; break;
        case Grid: out << "grid " << order; break;
        case Lebedev: out << "lebedev " << order; break;
    }
    if (mode != None && inversion) out << ", inversion";
    if (randomize) out << ", randomized";
    if (random()) out << ", seed " << seed;
    return out.str();
}

}  // namespace symprobe
