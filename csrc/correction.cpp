// The torque-free correction (option `correction torque-free`): forces and virial of a model
// whose energy is not rotation-invariant, made to exert no net force and no net torque.
#include "symprobe/symprobe.hpp"

#include <algorithm>
#include <cmath>

namespace symprobe {
namespace {

// Standard atomic weights (IUPAC; the mass number of the longest-lived isotope for elements
// without one), amu, Z = 1..118.
const double MASSES[] = {
    1.008, 4.0026, 6.94, 9.01218, 10.81, 12.011, 14.007, 15.999, 18.9984, 20.1797,
    22.9898, 24.305, 26.9815, 28.085, 30.9738, 32.06, 35.45, 39.948, 39.0983, 40.078,
    44.9559, 47.867, 50.9415, 51.9961, 54.938, 55.845, 58.9332, 58.6934, 63.546, 65.38,
    69.723, 72.63, 74.9216, 78.971, 79.904, 83.798, 85.4678, 87.62, 88.9058, 91.224,
    92.9064, 95.95, 97.9072, 101.07, 102.906, 106.42, 107.868, 112.414, 114.818, 118.71,
    121.76, 127.6, 126.904, 131.293, 132.905, 137.327, 138.905, 140.116, 140.908, 144.242,
    144.913, 150.36, 151.964, 157.25, 158.925, 162.5, 164.93, 167.259, 168.934, 173.054,
    174.967, 178.49, 180.948, 183.84, 186.207, 190.23, 192.217, 195.084, 196.967, 200.592,
    204.38, 207.2, 208.98, 208.982, 209.987, 222.018, 223.02, 226.025, 227.028, 232.038,
    231.036, 238.029, 237.048, 244.064, 243.061, 247.07, 247.07, 251.08, 252.083, 257.095,
    258.098, 259.101, 262.11, 267.122, 268.126, 271.134, 270.133, 269.134, 278.156, 281.165,
    281.166, 285.177, 286.182, 289.19, 289.194, 293.204, 293.208, 294.214};
constexpr int N_MASSES = sizeof(MASSES) / sizeof(MASSES[0]);

// Eigen-decomposition of a symmetric 3x3 matrix by Jacobi rotations: a <- diag(values),
// columns of v the eigenvectors.
void symmetric_eigen(double a[3][3], double v[3][3]) {
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) v[i][j] = i == j ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 50; ++sweep) {
        const double off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        const double scale = a[0][0] * a[0][0] + a[1][1] * a[1][1] + a[2][2] * a[2][2];
        if (off <= 1e-30 * scale || off == 0.0) return;
        for (int p = 0; p < 2; ++p) {
            for (int q = p + 1; q < 3; ++q) {
                if (a[p][q] == 0.0) continue;
                const double theta = 0.5 * (a[q][q] - a[p][p]) / a[p][q];
                const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
                const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < 3; ++k) {  // a <- a J (columns p, q)
                    const double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 3; ++k) {  // a <- J^T a (rows p, q)
                    const double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 3; ++k) {
                    const double vkp = v[k][p], vkq = v[k][q];
                    v[k][p] = c * vkp - s * vkq;
                    v[k][q] = s * vkp + c * vkq;
                }
            }
        }
    }
}

}  // namespace

double atomic_mass(int z) {
    if (z < 1 || z > N_MASSES) {
        throw Error(Error::InvalidInput, "atomic number " + std::to_string(z) + " has no atomic mass (1-118)");
    }
    return MASSES[z - 1];
}

void remove_net_force_and_torque(double* forces, const double* positions, const double* masses,
                                 const int32_t* numbers, int64_t n_atoms, double* virial) {
    std::vector<double> m(n_atoms);
    double total = 0.0, centre[3] = {0, 0, 0};
    for (int64_t i = 0; i < n_atoms; ++i) {
        m[i] = masses ? masses[i] : atomic_mass(numbers[i]);
        if (!(m[i] > 0.0) || !std::isfinite(m[i])) {
            throw Error(Error::InvalidInput, "correction torque-free: atom " + std::to_string(i) +
                                                 " has mass " + std::to_string(m[i]) + " amu; masses must be positive");
        }
        total += m[i];
        for (int c = 0; c < 3; ++c) centre[c] += m[i] * positions[3 * i + c];
    }
    for (double& c : centre) c /= total;
    // net force, torque about the centre of mass and inertia tensor
    double net[3] = {0, 0, 0}, torque[3] = {0, 0, 0}, inertia[3][3] = {};
    for (int64_t i = 0; i < n_atoms; ++i) {
        const double* f = forces + 3 * i;
        const double r[3] = {positions[3 * i] - centre[0], positions[3 * i + 1] - centre[1],
                             positions[3 * i + 2] - centre[2]};
        const double r2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
        for (int a = 0; a < 3; ++a) {
            net[a] += f[a];
            for (int b = 0; b < 3; ++b) inertia[a][b] += m[i] * ((a == b ? r2 : 0.0) - r[a] * r[b]);
        }
        torque[0] += r[1] * f[2] - r[2] * f[1];
        torque[1] += r[2] * f[0] - r[0] * f[2];
        torque[2] += r[0] * f[1] - r[1] * f[0];
    }
    // angular acceleration alpha = I^+ torque; the pseudo-inverse drops the axis of a linear
    // molecule (no torque about it) and gives zero for one atom
    double v[3][3];
    symmetric_eigen(inertia, v);
    const double largest = std::max({std::abs(inertia[0][0]), std::abs(inertia[1][1]), std::abs(inertia[2][2])});
    double alpha[3] = {0, 0, 0};
    for (int k = 0; k < 3; ++k) {
        const double lambda = inertia[k][k];
        if (!(lambda > 1e-12 * largest)) continue;
        const double projection = (v[0][k] * torque[0] + v[1][k] * torque[1] + v[2][k] * torque[2]) / lambda;
        for (int a = 0; a < 3; ++a) alpha[a] += projection * v[a][k];
    }
    // F_i -= m_i (a + alpha x r_i): the rigid-body part of the acceleration
    for (int64_t i = 0; i < n_atoms; ++i) {
        const double r[3] = {positions[3 * i] - centre[0], positions[3 * i + 1] - centre[1],
                             positions[3 * i + 2] - centre[2]};
        const double rigid[3] = {net[0] / total + alpha[1] * r[2] - alpha[2] * r[1],
                                 net[1] / total + alpha[2] * r[0] - alpha[0] * r[2],
                                 net[2] / total + alpha[0] * r[1] - alpha[1] * r[0]};
        for (int a = 0; a < 3; ++a) {
            const double delta = m[i] * rigid[a];
            forces[3 * i + a] -= delta;
            // W = sum_i x_i (x) F_i for a finite system
            if (virial)
                for (int b = 0; b < 3; ++b) virial[3 * b + a] -= positions[3 * i + b] * delta;
        }
    }
}

void symmetrize_virial(double* virial) {
    for (int a = 0; a < 3; ++a) {
        for (int b = a + 1; b < 3; ++b) {
            const double mean = 0.5 * (virial[3 * a + b] + virial[3 * b + a]);
            virial[3 * a + b] = virial[3 * b + a] = mean;
        }
    }
}

}  // namespace symprobe
