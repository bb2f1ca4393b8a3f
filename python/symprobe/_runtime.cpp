// Thin pybind11 binding of the C++ core (csrc/): array checks and conversions only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "symprobe/symprobe.hpp"

#include <optional>
#include <sstream>

namespace py = pybind11;
using symprobe::Error;

namespace {

using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Ints = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// A Python object with forward(features) and reverse(gradients), each given a writable float64
// array [n_nodes, width] to change in place, as the core's feature exchange.
class PythonExchange : public symprobe::FeatureExchange {
public:
    PythonExchange(py::object exchange, int64_t n_nodes) : exchange_(std::move(exchange)), n_(n_nodes) {}
    void forward(double* features, int64_t width) override { call("forward", features, width); }
    void reverse(double* gradients, int64_t width) override { call("reverse", gradients, width); }

private:
    void call(const char* name, double* rows, int64_t width) {
        py::gil_scoped_acquire gil;
        py::capsule owner(rows, [](void*) {});  // a view: the core owns the rows
        py::array_t<double> view({n_, width}, {width * 8, int64_t{8}}, rows, owner);
        try {
            exchange_.attr(name)(view);
        } catch (py::error_already_set& e) {
            throw Error(Error::InvalidInput, std::string("feature exchange ") + name + ": " + e.what());
        }
    }
    py::object exchange_;
    int64_t n_;
};

std::string shape_of(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t k = 0; k < a.ndim(); ++k) s << (k ? ", " : "") << a.shape(k);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

void check_shape(const py::array& a, const char* name, py::ssize_t rows, py::ssize_t cols) {
    bool ok = cols < 0 ? (a.ndim() == 1 && (rows < 0 || a.shape(0) == rows))
                       : (a.ndim() == 2 && (rows < 0 || a.shape(0) == rows) && a.shape(1) == cols);
    if (!ok) {
        std::ostringstream msg;
        msg << name << " must have shape (" << (rows < 0 ? std::string("N") : std::to_string(rows));
        if (cols >= 0) msg << ", " << cols;
        msg << (cols < 0 ? ",)" : ")") << ", got " << shape_of(a);
        throw py::value_error(msg.str());
    }
}

struct Geometry {
    Doubles positions, cell;
    std::array<bool, 3> pbc{};
};

Geometry geometry(const py::object& positions, const py::object& cell, const py::object& pbc) {
    Geometry g;
    g.positions = Doubles::ensure(positions);
    if (!g.positions) throw py::value_error("positions must be an array of numbers (Angstrom)");
    check_shape(g.positions, "positions", -1, 3);
    g.cell = cell.is_none() ? Doubles(std::vector<py::ssize_t>{3, 3}) : Doubles::ensure(cell);
    if (cell.is_none()) std::fill(g.cell.mutable_data(), g.cell.mutable_data() + 9, 0.0);
    if (!g.cell) throw py::value_error("cell must be a 3x3 array of numbers (Angstrom)");
    check_shape(g.cell, "cell", 3, 3);
    if (py::isinstance<py::bool_>(pbc)) {
        g.pbc.fill(pbc.cast<bool>());
    } else {
        auto flags = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(pbc);
        if (!flags || flags.ndim() != 1 || flags.shape(0) != 3) {
            throw py::value_error("pbc must be a bool or 3 bools");
        }
        for (int k = 0; k < 3; ++k) g.pbc[k] = flags.at(k);
    }
    return g;
}

// Hands the vector's buffer to numpy without a copy (large neighbour lists).
template <typename T>
py::array_t<T> to_array(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
    auto* owner = new std::vector<T>(std::move(v));
    py::capsule release(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(shape, owner->data(), release);
}

template <typename T>
py::array_t<T> to_array(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
    return to_array(std::vector<T>(v), std::move(shape));
}

symprobe::Request request(bool forces, bool virial, bool energies, bool atomic_virials,
                          bool forces_rms_spread, int64_t step, bool symmetrize = true) {
    if (step < -1) throw py::value_error("step must be >= 0 (or -1 for the model's own counter)");
    symprobe::Request q;
    q.forces = forces;
    q.virial = virial;
    q.energies = energies;
    q.atomic_virials = atomic_virials;
    q.forces_rms_spread = forces_rms_spread;
    q.step = step;
    q.symmetrize = symmetrize;
    return q;
}

py::dict results_dict(const symprobe::Results& r, int64_t n, const symprobe::Request& q) {
    py::dict d;
    d["energy"] = r.energy;
    if (q.energies) d["energies"] = to_array(r.energies, {n});
    if (q.forces) d["forces"] = to_array(r.forces, {n, 3});
    if (q.virial) {
        std::vector<double> w(r.virial.begin(), r.virial.end());
        d["virial"] = to_array(w, {3, 3});
    }
    if (q.atomic_virials) d["atomic_virials"] = to_array(r.atomic_virials, {n, 3, 3});
    const symprobe::Diagnostics& diag = r.diagnostics;
    d["rotation_energies"] = to_array(diag.rotation_energies,
                                      {static_cast<py::ssize_t>(diag.rotation_energies.size())});
    d["energy_std"] = diag.energy_std;
    d["energy_spread"] = diag.energy_spread;
    if (q.forces_rms_spread) d["forces_rms_spread"] = diag.forces_rms_spread;
    d["net_force"] = to_array(std::vector<double>(diag.net_force.begin(), diag.net_force.end()), {3});
    d["net_torque"] = to_array(std::vector<double>(diag.net_torque.begin(), diag.net_torque.end()), {3});
    return d;
}

std::vector<int32_t> atomic_numbers(const py::object& numbers, py::ssize_t n) {
    auto z = Ints::ensure(numbers);
    if (!z) throw py::value_error("numbers must be an array of atomic numbers");
    check_shape(z, "numbers", n, -1);
    std::vector<int32_t> out(z.size());
    for (py::ssize_t i = 0; i < z.size(); ++i) {
        int64_t v = z.data()[i];
        // out-of-range values are reported by the core as "atomic number ..." (never wrapped)
        out[i] = (v < 0 || v > 1000) ? -1 : static_cast<int32_t>(v);
    }
    return out;
}

// Optional per-atom masses (amu) for the torque-free correction.
Doubles masses_array(const py::object& masses, py::ssize_t n) {
    if (masses.is_none()) return Doubles();
    Doubles m = Doubles::ensure(masses);
    if (!m) throw py::value_error("masses must be an array of numbers (amu)");
    check_shape(m, "masses", n, -1);
    return m;
}

}  // namespace

PYBIND11_MODULE(_runtime, m) {
    m.doc() = "symprobe compiled core (units: Angstrom, eV)";

    // Error kinds -> Python exceptions; InvalidModelError and ModelError live in this module.
    static py::exception<Error> invalid_model(m, "InvalidModelError", PyExc_ValueError);
    static py::exception<Error> model_error(m, "ModelError", PyExc_RuntimeError);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const Error& e) {
            switch (e.kind()) {
                case Error::InvalidInput: PyErr_SetString(PyExc_ValueError, e.what()); break;
                case Error::FileNotFound: PyErr_SetString(PyExc_FileNotFoundError, e.what()); break;
                case Error::InvalidModel: PyErr_SetString(invalid_model.ptr(), e.what()); break;
                case Error::ModelFailure: PyErr_SetString(model_error.ptr(), e.what()); break;
            }
        }
    });

    m.def("atomic_number", &symprobe::atomic_number, py::arg("symbol"));
    m.def("element_symbol", &symprobe::element_symbol, py::arg("atomic_number"));

    m.def(
        "neighbor_list",
        [](const py::object& positions, const py::object& cell, const py::object& pbc,
           double cutoff, int threads) {
            Geometry g = geometry(positions, cell, pbc);
            symprobe::NeighborOptions options;
            options.cutoff = cutoff;
            options.threads = threads;
            symprobe::NeighborList nl;
            {
                py::gil_scoped_release release;
                symprobe::compute_neighbors(g.positions.data(), g.positions.shape(0),
                                            g.cell.data(), g.pbc.data(), options, nl);
            }
            py::ssize_t e = static_cast<py::ssize_t>(nl.size());
            return py::make_tuple(
                to_array(std::move(nl.centers), {e}), to_array(std::move(nl.neighbors), {e}),
                to_array(std::move(nl.shifts), {e, 3}), to_array(std::move(nl.vectors), {e, 3}));
        },
        py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("cutoff"),
        py::arg("threads") = 1);

    m.def(
        "rotation_set",
        [](const std::vector<std::string>& options, uint64_t step) {
            symprobe::RotationSet set = symprobe::rotation_set(symprobe::ModelOptions::parse(options).rotations, step);
            py::ssize_t g = static_cast<py::ssize_t>(set.size());
            return py::make_tuple(to_array(std::move(set.matrices), {g, 3, 3}),
                                  to_array(std::move(set.weights), {g}));
        },
        py::arg("options"), py::arg("step") = 0);
    m.def("option_table", []() {
        py::list out;
        for (const symprobe::OptionInfo& o : symprobe::option_table()) {
            py::dict d;
            d["name"] = o.name;
            d["values"] = o.values;
            d["default"] = o.default_value;
            d["flag"] = o.flag;
            d["help"] = o.help;
            out.append(d);
        }
        return out;
    });
    m.def("cpu_cache_stats", []() {
        const symprobe::CpuCacheStats stats = symprobe::cpu_cache_stats();
        py::dict d;
        d["free_bytes"] = stats.free_bytes;
        d["reused"] = stats.reused;
        return d;
    });
    m.def("bundled_models", &symprobe::bundled_models);
    m.def("bundled_model_path", &symprobe::bundled_model_path, py::arg("name"));
    m.def("resolve_model_path", &symprobe::resolve_model_path, py::arg("model"));

    py::class_<symprobe::Model>(m, "Model")
        .def(py::init([](const std::string& path, const std::vector<std::string>& options) {
                 return std::make_unique<symprobe::Model>(path, symprobe::ModelOptions::parse(options));
             }),
             py::arg("path"), py::arg("options") = std::vector<std::string>())
        .def_property("rotation_step", &symprobe::Model::rotation_step,
                      &symprobe::Model::set_rotation_step)
        .def_property_readonly("chunk", &symprobe::Model::rotation_chunk)
        .def_property_readonly("batch", &symprobe::Model::structure_batch)
        .def_property_readonly("memory_budget_bytes", &symprobe::Model::memory_budget_bytes)
        .def_property_readonly("memory_per_edge_bytes", &symprobe::Model::memory_per_edge_bytes)
        .def_property_readonly("rotation_weights", [](const symprobe::Model& m) {
            const auto& w = m.rotation_weights();
            return to_array(w, {static_cast<py::ssize_t>(w.size())});
        })
        .def(
            "check_numbers",
            [](const symprobe::Model& model, const py::object& numbers) {
                std::vector<int32_t> z = atomic_numbers(numbers, -1);
                model.check_numbers(z.data(), static_cast<int64_t>(z.size()));
            },
            py::arg("numbers"))
        .def_property_readonly("rotations", [](const symprobe::Model& m) {
            return m.options().rotations.describe();
        })
        .def_property_readonly("path", &symprobe::Model::path)
        .def_property_readonly("metadata_json",
                               [](const symprobe::Model& m) { return m.metadata().json; })
        .def_property_readonly("kind", [](const symprobe::Model& m) { return m.metadata().kind; })
        .def_property_readonly("cutoff", [](const symprobe::Model& m) { return m.metadata().cutoff; })
        .def_property_readonly("interaction_range",
                               [](const symprobe::Model& m) { return m.metadata().interaction_range; })
        .def_property_readonly("elements",
                               [](const symprobe::Model& m) {
                                   std::vector<std::string> out;
                                   for (int z : m.metadata().elements) {
                                       out.push_back(symprobe::element_symbol(z));
                                   }
                                   return out;
                               })
        .def_property_readonly("dtype", [](const symprobe::Model& m) { return m.metadata().dtype; })
        .def_property_readonly("device", [](const symprobe::Model& m) { return m.options().device; })
        .def_property_readonly("skin", [](const symprobe::Model& m) { return m.options().skin; })
        .def_property_readonly("seed", [](const symprobe::Model& m) { return m.options().rotations.seed; })
        .def_property_readonly("correction", [](const symprobe::Model& m) {
            return std::string(m.options().torque_free ? "torque-free" : "none");
        })
        .def(
            "compute",
            [](symprobe::Model& model, const py::object& positions, const py::object& numbers,
               const py::object& cell, const py::object& pbc, bool forces, bool virial,
               bool energies, bool atomic_virials, bool forces_rms_spread, int64_t step,
               const py::object& masses, bool symmetrize) {
                Geometry g = geometry(positions, cell, pbc);
                py::ssize_t n = g.positions.shape(0);
                std::vector<int32_t> z = atomic_numbers(numbers, n);
                symprobe::Request q = request(forces, virial, energies, atomic_virials, forces_rms_spread, step,
                                              symmetrize);
                Doubles m = masses_array(masses, n);
                if (!masses.is_none()) q.masses = m.data();
                symprobe::Results r;
                {
                    py::gil_scoped_release release;
                    r = model.compute(g.positions.data(), z.data(), n, g.cell.data(),
                                      g.pbc.data(), q);
                }
                return results_dict(r, n, q);
            },
            py::arg("positions"), py::arg("numbers"), py::arg("cell") = py::none(),
            py::arg("pbc") = false, py::arg("forces") = true, py::arg("virial") = true,
            py::arg("energies") = false, py::arg("atomic_virials") = false,
            py::arg("forces_rms_spread") = false, py::arg("step") = -1, py::arg("masses") = py::none(),
            py::arg("symmetrize") = true)
        .def(
            "compute_batch",
            [](symprobe::Model& model, const py::list& positions, const py::object& numbers,
               const py::list& cells, const py::object& pbc, bool forces, bool virial,
               bool energies, bool atomic_virials, bool forces_rms_spread, int64_t step, bool symmetrize) {
                const size_t b = positions.size();
                if (cells.size() != b) {
                    throw py::value_error("compute_batch: " + std::to_string(b) + " positions but " +
                                          std::to_string(cells.size()) + " cells");
                }
                bool per_structure_numbers = py::isinstance<py::list>(numbers);
                std::vector<Geometry> geometries;
                std::vector<std::vector<int32_t>> zs;
                std::vector<symprobe::System> systems(b);
                for (size_t s = 0; s < b; ++s) {
                    geometries.push_back(geometry(positions[s], cells[s], pbc));
                    py::ssize_t n = geometries.back().positions.shape(0);
                    zs.push_back(atomic_numbers(per_structure_numbers ? py::object(numbers.cast<py::list>()[s])
                                                                      : numbers, n));
                }
                for (size_t s = 0; s < b; ++s) {
                    systems[s].positions = geometries[s].positions.data();
                    systems[s].numbers = zs[s].data();
                    systems[s].n_atoms = geometries[s].positions.shape(0);
                    systems[s].cell = geometries[s].cell.data();
                    systems[s].pbc = geometries[s].pbc.data();
                }
                symprobe::Request q = request(forces, virial, energies, atomic_virials, forces_rms_spread, step,
                                              symmetrize);
                std::vector<symprobe::Results> r;
                {
                    py::gil_scoped_release release;
                    r = model.compute_batch(systems, q);
                }
                py::list out;
                for (size_t s = 0; s < b; ++s) out.append(results_dict(r[s], systems[s].n_atoms, q));
                return out;
            },
            py::arg("positions"), py::arg("numbers"), py::arg("cells"), py::arg("pbc") = true,
            py::arg("forces") = true, py::arg("virial") = true, py::arg("energies") = false,
            py::arg("atomic_virials") = false, py::arg("forces_rms_spread") = false, py::arg("step") = -1,
            py::arg("symmetrize") = true)
        .def(
            "compute_graph",
            [](symprobe::Model& model, const py::object& numbers, const py::object& centers,
               const py::object& neighbors, const py::object& vectors, int64_t n_energy_nodes,
               bool forces, bool virial, bool energies, bool atomic_virials, bool forces_rms_spread,
               int64_t step, const py::object& positions, const py::object& pbc, const py::object& masses,
               const py::object& exchange) {
                auto c = Ints::ensure(centers), nb = Ints::ensure(neighbors);
                auto v = Doubles::ensure(vectors);
                if (!c || !nb || !v) throw py::value_error("graph arrays must be numeric");
                check_shape(c, "centers", -1, -1);
                check_shape(nb, "neighbors", c.shape(0), -1);
                check_shape(v, "vectors", c.shape(0), 3);
                auto zarr = Ints::ensure(numbers);
                if (!zarr) throw py::value_error("numbers must be an array of atomic numbers");
                py::ssize_t n = zarr.ndim() == 1 ? zarr.shape(0) : -1;
                std::vector<int32_t> z = atomic_numbers(numbers, n);
                symprobe::Graph g;
                g.numbers = z.data();
                g.n_nodes = n;
                g.n_energy_nodes = n_energy_nodes < 0 ? n : n_energy_nodes;
                g.centers = c.data();
                g.neighbors = nb.data();
                g.vectors = v.data();
                g.n_edges = c.shape(0);
                symprobe::Request q = request(forces, virial, energies, atomic_virials, forces_rms_spread, step);
                Doubles m = masses_array(masses, n);
                if (!masses.is_none()) q.masses = m.data();
                Geometry where;  // optional positions and periodicity (correction torque-free)
                if (!positions.is_none()) {
                    where = geometry(positions, py::none(), pbc);
                    check_shape(where.positions, "positions", n, 3);
                    g.positions = where.positions.data();
                    g.pbc = where.pbc.data();
                }
                std::optional<PythonExchange> shared;
                if (!exchange.is_none()) {
                    shared.emplace(exchange, n);
                    g.exchange = &*shared;
                }
                symprobe::Results r;
                {
                    py::gil_scoped_release release;
                    r = model.compute_graph(g, q);
                }
                return results_dict(r, n, q);
            },
            py::arg("numbers"), py::arg("centers"), py::arg("neighbors"), py::arg("vectors"),
            py::arg("n_energy_nodes") = -1, py::arg("forces") = true, py::arg("virial") = true,
            py::arg("energies") = false, py::arg("atomic_virials") = false,
            py::arg("forces_rms_spread") = false, py::arg("step") = -1, py::arg("positions") = py::none(),
            py::arg("pbc") = false, py::arg("masses") = py::none(), py::arg("exchange") = py::none());
}
