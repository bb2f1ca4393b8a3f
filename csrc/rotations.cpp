// Rotation sets for symmetrisation: the paper's Legendre/Euler product grid, Lebedev x in-plane
// grids (both as in i-PI's <ffrotations>), and a counter-based Haar-random stream.
#include "symprobe/symprobe.hpp"
#include "symprobe_lebedev.hpp"

#include <algorithm>
#include <cmath>

namespace symprobe {
namespace {

constexpr double PI = 3.14159265358979323846;
using Mat = std::array<double, 9>;

Mat multiply(const Mat& a, const Mat& b) {
    Mat c{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 3; ++k) c[3 * i + j] += a[3 * i + k] * b[3 * k + j];
    return c;
}

Mat rot_z(double t) { return {std::cos(t), -std::sin(t), 0, std::sin(t), std::cos(t), 0, 0, 0, 1}; }
Mat rot_x(double t) { return {1, 0, 0, 0, std::cos(t), -std::sin(t), 0, std::sin(t), std::cos(t)}; }

// ZXZ Euler angles with i-PI's convention: R = Rz(w) Rx(v) Rz(theta)
Mat euler_zxz(double theta, double v, double w) { return multiply(multiply(rot_z(w), rot_x(v)), rot_z(theta)); }

// Gauss-Legendre nodes and weights on [-1, 1] (Newton iteration on P_n)
void gauss_legendre(int n, std::vector<double>& x, std::vector<double>& w) {
    x.assign(n, 0.0);
    w.assign(n, 0.0);
    for (int i = 0; i < n; ++i) {
        double z = std::cos(PI * (i + 0.75) / (n + 0.5));
        double dp = 1.0;
        for (int iter = 0; iter < 100; ++iter) {
            double p0 = 1.0, p1 = z;
            for (int k = 2; k <= n; ++k) {
                double p2 = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            dp = n * (z * p1 - p0) / (z * z - 1.0);
            double dz = p1 / dp;
            z -= dz;
            if (std::abs(dz) < 1e-16) break;
        }
        x[i] = z;
        w[i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
}

uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// uniform in [0, 1) from the counter (seed, step, stream, index)
double uniform(uint64_t seed, uint64_t step, uint64_t stream, uint64_t index) {
    uint64_t x = splitmix64(seed);
    x = splitmix64(x ^ step);
    x = splitmix64(x ^ (stream * 16 + index));
    return static_cast<double>(x >> 11) * 0x1.0p-53;
}

void append(RotationSet& set, const Mat& r, double weight) {
    set.matrices.insert(set.matrices.end(), r.begin(), r.end());
    set.weights.push_back(weight);
}

}  // namespace

std::array<double, 9> random_rotation(uint64_t seed, uint64_t step, uint64_t stream) {
    // Shoemake's uniform unit quaternion -> Haar-distributed rotation
    double u1 = uniform(seed, step, stream, 0), u2 = uniform(seed, step, stream, 1),
           u3 = uniform(seed, step, stream, 2);
    double a = std::sqrt(1.0 - u1), b = std::sqrt(u1);
    double qx = a * std::sin(2 * PI * u2), qy = a * std::cos(2 * PI * u2);
    double qz = b * std::sin(2 * PI * u3), qw = b * std::cos(2 * PI * u3);
    return {1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw),     2 * (qx * qz + qy * qw),
            2 * (qx * qy + qz * qw),     1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw),
            2 * (qx * qz - qy * qw),     2 * (qy * qz + qx * qw),     1 - 2 * (qx * qx + qy * qy)};
}

std::vector<int> lebedev_orders() {
    std::vector<int> out{1};
    for (int i = 0; i < lebedev::N_RULES; ++i) out.push_back(lebedev::RULES[i].degree);
    return out;
}

RotationStatistics rotation_statistics(const std::vector<double>& weights, const double* energies) {
    RotationStatistics out;
    if (weights.empty()) return out;
    double total = 0.0, lo = energies[0], hi = energies[0];
    for (size_t k = 0; k < weights.size(); ++k) {
        total += weights[k];
        out.mean += weights[k] * energies[k];
        lo = std::min(lo, energies[k]);
        hi = std::max(hi, energies[k]);
    }
    out.mean /= total;
    if (weights.size() < 2) return out;  // one copy: no spread, and no rounding noise
    double variance = 0.0;
    for (size_t k = 0; k < weights.size(); ++k) {
        variance += weights[k] * (energies[k] - out.mean) * (energies[k] - out.mean);
    }
    out.std = std::sqrt(variance / total);
    out.spread = hi - lo;
    return out;
}

RotationSet rotation_set(const RotationOptions& options, uint64_t step) {
    options.validate();
    RotationSet set;
    const Mat identity{1, 0, 0, 0, 1, 0, 0, 0, 1};
    switch (options.mode) {
        case RotationOptions::None: append(set, identity, 1.0); return set;
        case RotationOptions::Random: {
            Mat r = random_rotation(options.seed, step, 0);
            if (options.inversion && uniform(options.seed, step, 1, 0) < 0.5) {
                for (double& v : r) v = -v;
            }
            append(set, r, 1.0);
            return set;
        }
        case RotationOptions::Grid: {
            const int L = options.order;
            if (L == 1) {
                append(set, identity, 2.0);  // i-PI's convention for the trivial grid
                break;
            }
            std::vector<double> x, w;
            gauss_legendre(L, x, w);
            for (int ti = 0; ti < 2 * L - 1; ++ti) {
                for (int wi = 0; wi < 2 * L - 1; ++wi) {
                    double theta = 2 * PI * ti / (2 * L - 1), psi = 2 * PI * wi / (2 * L - 1);
                    for (int j = 0; j < L; ++j) append(set, euler_zxz(theta, std::acos(x[j]), psi), w[j]);
                }
            }
            break;
        }
        case RotationOptions::Lebedev: {
            const int L = options.order;
            const lebedev::Rule* rule = nullptr;
            for (int i = 0; i < lebedev::N_RULES; ++i) {
                if (lebedev::RULES[i].degree == L) rule = &lebedev::RULES[i];
            }
            for (int ti = 0; ti < L; ++ti) {
                double theta = 2 * PI * ti / L;
                if (rule == nullptr) {  // L = 1: the single point +z
                    append(set, euler_zxz(0.0, 0.0, theta), 1.0);
                    continue;
                }
                for (int p = 0; p < rule->size; ++p) {
                    const double* d = rule->data + 4 * p;
                    // azimuth of the poles: pi/2, as in i-PI's Lebedev tables
                    bool pole = std::abs(d[0]) < 1e-14 && std::abs(d[1]) < 1e-14;
                    double phi = pole ? PI / 2 : std::atan2(d[1], d[0]);
                    double polar = std::acos(std::max(-1.0, std::min(1.0, d[2])));
                    append(set, euler_zxz(phi, polar, theta), d[3]);
                }
            }
            break;
        }
    }
    if (options.randomize) {
        // the whole grid re-oriented: R_grid R_random, as i-PI's <ffrotations random="true">
        Mat r = random_rotation(options.seed, step, 0);
        for (size_t k = 0; k < set.size(); ++k) {
            Mat g;
            std::copy(set.matrices.begin() + 9 * k, set.matrices.begin() + 9 * k + 9, g.begin());
            Mat gr = multiply(g, r);
            std::copy(gr.begin(), gr.end(), set.matrices.begin() + 9 * k);
        }
    }
    if (options.inversion) {
        const size_t n = set.size();
        for (size_t k = 0; k < n; ++k) {
            Mat g;
            for (int c = 0; c < 9; ++c) g[c] = -set.matrices[9 * k + c];
            append(set, g, set.weights[k]);
        }
    }
    return set;
}

}  // namespace symprobe
