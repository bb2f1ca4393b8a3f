// Cell-list neighbour search for general triclinic cells with any subset of periodic axes.
//
// Atoms are binned in fractional coordinates of a "binning frame": the lattice vectors along
// periodic axes, completed by orthonormal vectors along non-periodic ones (so a zero or
// arbitrary cell row on a non-periodic axis is harmless). A pair within the cutoff differs by at
// most cutoff / d_k in fractional coordinate k, where d_k is the spacing of lattice planes, so
// only ceil(cutoff / bin width) neighbouring bins are visited along each axis; along periodic
// axes those bins wrap with an image shift, which also covers cells smaller than the cutoff.
#include "symprobe/symprobe.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <thread>

namespace symprobe {
namespace {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;

Vec3 cross(const Vec3& a, const Vec3& b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
double norm(const Vec3& a) { return std::sqrt(dot(a, a)); }

// periodic images an atom may lie away from the cell before its wrapping loses precision
constexpr double MAX_WRAP_IMAGES = 1.0e6;

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Completes the periodic rows of `cell` into a non-singular frame with orthonormal rows on the
// non-periodic axes. Throws when the periodic rows are degenerate.
Mat3 binning_frame(const double* cell, const bool* pbc) {
    Mat3 frame{};
    std::vector<int> periodic, open;
    for (int k = 0; k < 3; ++k) {
        for (int c = 0; c < 3; ++c) frame[k][c] = cell[3 * k + c];
        (pbc[k] ? periodic : open).push_back(k);
        if (pbc[k]) {
            for (int c = 0; c < 3; ++c) {
                if (!std::isfinite(frame[k][c])) {
                    throw Error(Error::InvalidInput, "cell contains NaN or inf");
                }
            }
        }
    }
    // Orthonormal basis of the span of the periodic rows (Gram-Schmidt), to test degeneracy and
    // to build the completion.
    std::vector<Vec3> basis;
    for (int k : periodic) {
        Vec3 v = frame[k];
        double scale = norm(v);
        if (scale == 0.0) {
            std::ostringstream msg;
            msg << "cell vector " << k << " is zero but the system is periodic along axis " << k;
            throw Error(Error::InvalidInput, msg.str());
        }
        for (const Vec3& b : basis) {
            double p = dot(v, b);
            for (int c = 0; c < 3; ++c) v[c] -= p * b[c];
        }
        double n = norm(v);
        if (n < 1e-8 * scale) {
            throw Error(Error::InvalidInput,
                        "cell is singular (zero volume) along its periodic axes; the periodic "
                        "cell vectors must be linearly independent");
        }
        for (int c = 0; c < 3; ++c) v[c] /= n;
        basis.push_back(v);
    }
    for (int k : open) {
        // the Cartesian axis least aligned with the current basis, orthogonalised
        Vec3 best{};
        double best_norm = -1.0;
        for (int axis = 0; axis < 3; ++axis) {
            Vec3 v{0.0, 0.0, 0.0};
            v[axis] = 1.0;
            for (const Vec3& b : basis) {
                double p = dot(v, b);
                for (int c = 0; c < 3; ++c) v[c] -= p * b[c];
            }
            double n = norm(v);
            if (n > best_norm) {
                best_norm = n;
                best = v;
            }
        }
        for (int c = 0; c < 3; ++c) best[c] /= best_norm;
        basis.push_back(best);
        frame[k] = best;
    }
    return frame;
}

Mat3 inverse(const Mat3& m, double* det_out) {
    Vec3 c0 = cross(m[1], m[2]), c1 = cross(m[2], m[0]), c2 = cross(m[0], m[1]);
    double det = dot(m[0], c0);
    *det_out = det;
    // inverse columns are the reciprocal vectors: inv[c][k] = ck[c] / det
    Mat3 inv{};
    for (int c = 0; c < 3; ++c) {
        inv[c][0] = c0[c] / det;
        inv[c][1] = c1[c] / det;
        inv[c][2] = c2[c] / det;
    }
    return inv;
}

// Fractional coordinates s = x . inv of every atom; periodic axes wrapped into [0, 1), with
// the whole cell vectors removed in `wrap`. Positions must be finite.
void fractional_coordinates(const double* positions, int64_t n_atoms, const Mat3& inv, const bool* pbc,
                            std::vector<double>& frac, std::vector<int64_t>& wrap) {
    frac.assign(3 * n_atoms, 0.0);
    wrap.assign(3 * n_atoms, 0);
    for (int64_t i = 0; i < n_atoms; ++i) {
        for (int k = 0; k < 3; ++k) {
            double s = 0.0;
            for (int c = 0; c < 3; ++c) s += positions[3 * i + c] * inv[c][k];
            if (pbc[k]) {
                // beyond ~1e6 images the wrapped position keeps fewer than ~10 significant
                // digits of its place in the cell (and the shift overflows int32 later)
                if (std::abs(s) > MAX_WRAP_IMAGES) {
                    std::ostringstream msg;
                    msg << "atom " << i << " at (" << positions[3 * i] << ", " << positions[3 * i + 1]
                        << ", " << positions[3 * i + 2] << ") Angstrom lies " << std::abs(s)
                        << " cell lengths from the cell along periodic axis " << k
                        << "; wrapping it would lose precision (limit " << MAX_WRAP_IMAGES
                        << "): wrap the positions into the cell first";
                    throw Error(Error::InvalidInput, msg.str());
                }
                double f = std::floor(s);
                s -= f;
                if (s >= 1.0) {  // rounding of s - floor(s) for tiny negative s
                    s = 0.0;
                    f += 1.0;
                }
                wrap[3 * i + k] = static_cast<int64_t>(f);
            }
            frac[3 * i + k] = s;
        }
    }
}

// Cartesian positions with the wrapped cell vectors removed (exact: no round trip through
// fractional coordinates).
std::vector<double> unwrap_removed(const double* positions, int64_t n_atoms, const Mat3& frame,
                                   const std::vector<int64_t>& wrap) {
    std::vector<double> out(3 * n_atoms);
    for (int64_t i = 0; i < n_atoms; ++i) {
        for (int c = 0; c < 3; ++c) {
            double x = positions[3 * i + c];
            for (int k = 0; k < 3; ++k) x -= static_cast<double>(wrap[3 * i + k]) * frame[k][c];
            out[3 * i + c] = x;
        }
    }
    return out;
}

}  // namespace

namespace detail {

std::vector<double> wrapped_positions(const double* positions, int64_t n_atoms, const double* cell,
                                      const bool* pbc) {
    if (!(pbc[0] || pbc[1] || pbc[2])) return std::vector<double>(positions, positions + 3 * n_atoms);
    const Mat3 frame = binning_frame(cell, pbc);
    double det = 0.0;
    const Mat3 inv = inverse(frame, &det);
    std::vector<double> frac;
    std::vector<int64_t> wrap;
    fractional_coordinates(positions, n_atoms, inv, pbc, frac, wrap);
    return unwrap_removed(positions, n_atoms, frame, wrap);
}

}  // namespace detail

void compute_neighbors(const double* positions, int64_t n_atoms, const double* cell,
                       const bool* pbc, const NeighborOptions& options, NeighborList& out) {
    out.centers.clear();
    out.neighbors.clear();
    out.shifts.clear();
    out.vectors.clear();
    const double rc = options.cutoff;
    if (!(rc > 0.0) || !std::isfinite(rc)) {
        std::ostringstream msg;
        msg << "neighbour-list cutoff must be a positive finite number of Angstrom, got " << rc;
        throw Error(Error::InvalidInput, msg.str());
    }
    if (n_atoms < 0) throw Error(Error::InvalidInput, "negative number of atoms");
    for (int64_t i = 0; i < n_atoms; ++i) {
        for (int c = 0; c < 3; ++c) {
            if (!std::isfinite(positions[3 * i + c])) {
                std::ostringstream msg;
                msg << "position of atom " << i << " is not finite (NaN or inf)";
                throw Error(Error::InvalidInput, msg.str());
            }
        }
    }
    if (n_atoms == 0) return;

    const Mat3 frame = binning_frame(cell, pbc);
    double det = 0.0;
    const Mat3 inv = inverse(frame, &det);
    const double volume = std::abs(det);
    Vec3 spacing{};  // distance between lattice planes of each axis
    for (int k = 0; k < 3; ++k) {
        spacing[k] = volume / norm(cross(frame[(k + 1) % 3], frame[(k + 2) % 3]));
    }

    // fractional coordinates; periodic axes wrapped into [0, 1), the wrap remembered
    std::vector<double> frac;
    std::vector<int64_t> wrap;
    fractional_coordinates(positions, n_atoms, inv, pbc, frac, wrap);
    Vec3 lo{0.0, 0.0, 0.0}, hi{1.0, 1.0, 1.0};
    for (int k = 0; k < 3; ++k) {
        if (pbc[k]) continue;
        lo[k] = INFINITY;
        hi[k] = -INFINITY;
        for (int64_t i = 0; i < n_atoms; ++i) {
            lo[k] = std::min(lo[k], frac[3 * i + k]);
            hi[k] = std::max(hi[k], frac[3 * i + k]);
        }
    }

    // number of bins per axis: bins at least rc/2 wide (visiting 5^3 half-width bins scans
    // 15.6 rc^3 instead of 27 rc^3 with full-width ones), and not many more bins than atoms
    std::array<int64_t, 3> n_bins{};
    Vec3 extent{};
    for (int k = 0; k < 3; ++k) {
        extent[k] = (hi[k] - lo[k]) * spacing[k];
        double n = std::floor(2.0 * extent[k] / rc);
        n_bins[k] = static_cast<int64_t>(std::clamp(n, 1.0, 1.0e6));
    }
    const double max_bins = std::max<double>(8.0, 2.0 * static_cast<double>(n_atoms));
    while (static_cast<double>(n_bins[0]) * n_bins[1] * n_bins[2] > max_bins) {
        double total = static_cast<double>(n_bins[0]) * n_bins[1] * n_bins[2];
        double factor = std::cbrt(total / max_bins);
        for (int k = 0; k < 3; ++k) {
            n_bins[k] = std::max<int64_t>(1, static_cast<int64_t>(n_bins[k] / factor));
        }
    }
    // bins to visit on each side along each axis
    std::array<int64_t, 3> reach{};
    for (int k = 0; k < 3; ++k) {
        double width = extent[k] / static_cast<double>(n_bins[k]);
        int64_t m = width > 0.0 ? static_cast<int64_t>(std::ceil(rc / width * (1.0 + 1e-12)))
                                : n_bins[k];
        if (!pbc[k]) m = std::min<int64_t>(m, n_bins[k] - 1);
        if (pbc[k] && m > 100000) {
            throw Error(Error::InvalidInput,
                        "periodic cell is too thin for this cutoff (more than 1e5 images)");
        }
        reach[k] = m;
    }

    // counting sort of atoms into bins
    const int64_t total_bins = n_bins[0] * n_bins[1] * n_bins[2];
    std::vector<int64_t> bin_of(n_atoms);
    std::vector<int64_t> bin_start(total_bins + 1, 0);
    for (int64_t i = 0; i < n_atoms; ++i) {
        int64_t b[3];
        for (int k = 0; k < 3; ++k) {
            double range = hi[k] - lo[k];
            double t = range > 0.0 ? (frac[3 * i + k] - lo[k]) / range : 0.0;
            b[k] = std::clamp<int64_t>(static_cast<int64_t>(t * n_bins[k]), 0, n_bins[k] - 1);
        }
        bin_of[i] = (b[0] * n_bins[1] + b[1]) * n_bins[2] + b[2];
        bin_start[bin_of[i] + 1]++;
    }
    for (int64_t b = 0; b < total_bins; ++b) bin_start[b + 1] += bin_start[b];
    std::vector<int64_t> sorted(n_atoms);
    {
        std::vector<int64_t> fill(bin_start.begin(), bin_start.end() - 1);
        for (int64_t i = 0; i < n_atoms; ++i) sorted[fill[bin_of[i]]++] = i;
    }
    // wrapped Cartesian positions (indexed by atom) and the same in bin order, so that the inner
    // loop over a bin reads contiguous memory
    const std::vector<double> wrapped = unwrap_removed(positions, n_atoms, frame, wrap);
    std::vector<double> binned(3 * n_atoms);
    std::vector<int32_t> binned_wrap(3 * n_atoms);
    for (int64_t p = 0; p < n_atoms; ++p) {
        for (int c = 0; c < 3; ++c) {
            binned[3 * p + c] = wrapped[3 * sorted[p] + c];
            binned_wrap[3 * p + c] = static_cast<int32_t>(wrap[3 * sorted[p] + c]);
        }
    }
    // expected pairs per atom, to reserve the output once
    double binned_volume = volume;
    for (int k = 0; k < 3; ++k) binned_volume *= std::max(hi[k] - lo[k], rc / spacing[k]);
    const double pairs_per_atom =
        std::min<double>(n_atoms, 1.15 * 4.18879 * rc * rc * rc * n_atoms / binned_volume + 1.0);

    const double rc2 = rc * rc;
    const int n_threads = std::max(1, std::min<int>(options.threads, static_cast<int>(n_atoms / 256 + 1)));
    std::vector<NeighborList> partial(n_threads);
    auto search = [&](int t) {
        NeighborList& local = partial[t];
        int64_t begin = n_atoms * t / n_threads, end = n_atoms * (t + 1) / n_threads;
        const size_t guess = static_cast<size_t>(pairs_per_atom * (end - begin));
        local.centers.reserve(guess);
        local.neighbors.reserve(guess);
        local.shifts.reserve(3 * guess);
        local.vectors.reserve(3 * guess);
        for (int64_t i = begin; i < end; ++i) {
            int64_t bi = bin_of[i];
            int64_t b[3] = {bi / (n_bins[1] * n_bins[2]), (bi / n_bins[2]) % n_bins[1],
                            bi % n_bins[2]};
            const double* xi = &wrapped[3 * i];
            const int32_t wi[3] = {static_cast<int32_t>(wrap[3 * i]),
                                   static_cast<int32_t>(wrap[3 * i + 1]),
                                   static_cast<int32_t>(wrap[3 * i + 2])};
            for (int64_t ox = -reach[0]; ox <= reach[0]; ++ox) {
                int64_t tx = b[0] + ox;
                if (!pbc[0] && (tx < 0 || tx >= n_bins[0])) continue;
                int64_t sx = pbc[0] ? floor_div(tx, n_bins[0]) : 0;
                tx -= sx * n_bins[0];
                for (int64_t oy = -reach[1]; oy <= reach[1]; ++oy) {
                    int64_t ty = b[1] + oy;
                    if (!pbc[1] && (ty < 0 || ty >= n_bins[1])) continue;
                    int64_t sy = pbc[1] ? floor_div(ty, n_bins[1]) : 0;
                    ty -= sy * n_bins[1];
                    for (int64_t oz = -reach[2]; oz <= reach[2]; ++oz) {
                        int64_t tz = b[2] + oz;
                        if (!pbc[2] && (tz < 0 || tz >= n_bins[2])) continue;
                        int64_t sz = pbc[2] ? floor_div(tz, n_bins[2]) : 0;
                        tz -= sz * n_bins[2];
                        double shift_vec[3];
                        for (int c = 0; c < 3; ++c) {
                            shift_vec[c] = sx * frame[0][c] + sy * frame[1][c] + sz * frame[2][c];
                        }
                        int64_t target = (tx * n_bins[1] + ty) * n_bins[2] + tz;
                        for (int64_t p = bin_start[target]; p < bin_start[target + 1]; ++p) {
                            int64_t j = sorted[p];
                            if (j == i && sx == 0 && sy == 0 && sz == 0) continue;
                            const double* xj = &binned[3 * p];
                            double v[3] = {xj[0] + shift_vec[0] - xi[0], xj[1] + shift_vec[1] - xi[1],
                                           xj[2] + shift_vec[2] - xi[2]};
                            double r2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
                            if (r2 >= rc2) continue;
                            if (r2 < 1e-12) {
                                std::ostringstream msg;
                                msg << "atoms " << i << " and " << j
                                    << " overlap (closer than 1e-6 Angstrom)";
                                throw Error(Error::InvalidInput, msg.str());
                            }
                            // shift relative to the positions as given; v equals
                            // x_j - x_i + s.cell up to rounding
                            const int32_t* wj = &binned_wrap[3 * p];
                            int32_t s[3] = {static_cast<int32_t>(sx) - wj[0] + wi[0],
                                            static_cast<int32_t>(sy) - wj[1] + wi[1],
                                            static_cast<int32_t>(sz) - wj[2] + wi[2]};
                            local.centers.push_back(i);
                            local.neighbors.push_back(j);
                            local.shifts.insert(local.shifts.end(), s, s + 3);
                            local.vectors.insert(local.vectors.end(), v, v + 3);
                        }
                    }
                }
            }
        }
    };

    if (n_threads == 1) {
        search(0);
        out = std::move(partial[0]);
        return;
    }
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(n_threads);
    for (int t = 0; t < n_threads; ++t) {
        workers.emplace_back([&, t] {
            try {
                search(t);
            } catch (...) {
                errors[t] = std::current_exception();
            }
        });
    }
    for (auto& w : workers) w.join();
    for (auto& e : errors) {
        if (e) std::rethrow_exception(e);
    }
    // merge in parallel: each worker copies its part to its offset
    std::vector<size_t> offset(n_threads + 1, 0);
    for (int t = 0; t < n_threads; ++t) offset[t + 1] = offset[t] + partial[t].size();
    const size_t total = offset[n_threads];
    out.centers.resize(total);
    out.neighbors.resize(total);
    out.shifts.resize(3 * total);
    out.vectors.resize(3 * total);
    workers.clear();
    for (int t = 0; t < n_threads; ++t) {
        workers.emplace_back([&, t] {
            const NeighborList& p = partial[t];
            std::copy(p.centers.begin(), p.centers.end(), out.centers.begin() + offset[t]);
            std::copy(p.neighbors.begin(), p.neighbors.end(), out.neighbors.begin() + offset[t]);
            std::copy(p.shifts.begin(), p.shifts.end(), out.shifts.begin() + 3 * offset[t]);
            std::copy(p.vectors.begin(), p.vectors.end(), out.vectors.begin() + 3 * offset[t]);
            partial[t] = NeighborList();
        });
    }
    for (auto& w : workers) w.join();
}

VerletList::VerletList(double cutoff, double skin, int threads)
    : cutoff_(cutoff), skin_(skin), threads_(std::max(1, threads)) {
    if (!(skin >= 0.0) || !std::isfinite(skin)) {
        std::ostringstream msg;
        msg << "Verlet skin must be a non-negative number of Angstrom, got " << skin;
        throw Error(Error::InvalidInput, msg.str());
    }
}

const NeighborList& VerletList::update(const double* positions, int64_t n_atoms,
                                       const double* cell, const bool* pbc, bool* rebuilt) {
    bool reuse = skin_ > 0.0 && n_builds_ > 0 &&
                 static_cast<int64_t>(built_positions_.size()) == 3 * n_atoms;
    if (reuse) {
        for (int k = 0; k < 3; ++k) reuse = reuse && built_pbc_[k] == pbc[k];
        for (int k = 0; k < 9 && reuse; ++k) {
            // non-periodic rows do not enter the list
            reuse = !pbc[k / 3] || built_cell_[k] == cell[k];
        }
    }
    if (reuse) {
        // NaN positions make the comparison false and force a rebuild, which reports them
        const double limit2 = 0.25 * skin_ * skin_;
        for (int64_t i = 0; i < 3 * n_atoms && reuse; i += 3) {
            double d0 = positions[i] - built_positions_[i];
            double d1 = positions[i + 1] - built_positions_[i + 1];
            double d2 = positions[i + 2] - built_positions_[i + 2];
            reuse = d0 * d0 + d1 * d1 + d2 * d2 < limit2;
        }
    }
    if (rebuilt) *rebuilt = !reuse;
    if (!reuse) {
        built_positions_.clear();  // a failed build must not leave a list to re-use
        NeighborOptions options;
        options.cutoff = cutoff_ + skin_;
        options.threads = threads_;
        compute_neighbors(positions, n_atoms, cell, pbc, options, skin_ > 0.0 ? wide_ : current_);
        n_builds_++;
        if (skin_ == 0.0) return current_;
        built_positions_.assign(positions, positions + 3 * n_atoms);
        std::copy(cell, cell + 9, built_cell_.begin());
        std::copy(pbc, pbc + 3, built_pbc_.begin());
    }
    // refresh the vectors of the stored pairs and keep those within the cutoff
    current_.centers.clear();
    current_.neighbors.clear();
    current_.shifts.clear();
    current_.vectors.clear();
    const double rc2 = cutoff_ * cutoff_;
    for (size_t e = 0; e < wide_.size(); ++e) {
        int64_t i = wide_.centers[e], j = wide_.neighbors[e];
        const int32_t* s = &wide_.shifts[3 * e];
        double v[3];
        for (int c = 0; c < 3; ++c) {
            v[c] = positions[3 * j + c] - positions[3 * i + c];
            for (int k = 0; k < 3; ++k) {
                if (pbc[k]) v[c] += s[k] * cell[3 * k + c];
            }
        }
        if (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] >= rc2) continue;
        current_.centers.push_back(i);
        current_.neighbors.push_back(j);
        current_.shifts.insert(current_.shifts.end(), s, s + 3);
        current_.vectors.insert(current_.vectors.end(), v, v + 3);
    }
    return current_;
}

}  // namespace symprobe
