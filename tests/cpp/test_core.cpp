// Unit tests of the core through its public header only (no Python, no torch headers):
// neighbour lists against brute force, rotation sets, the option parser and its messages.
// Run by tests/test_cpp.py; prints one line per failed check and exits non-zero on failure.
#include "symprobe/symprobe.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

int failures = 0;
int checks = 0;

#define CHECK(condition)                                                                   \
    do {                                                                                   \
        ++checks;                                                                          \
        if (!(condition)) {                                                                \
            ++failures;                                                                    \
            std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #condition);            \
        }                                                                                  \
    } while (0)

#define CHECK_CLOSE(a, b, tol) CHECK(std::abs((a) - (b)) <= (tol))

// Runs `f` and checks that it throws symprobe::Error whose message contains `part`.
void check_error(const std::function<void()>& f, const std::string& part, int line) {
    ++checks;
    try {
        f();
    } catch (const symprobe::Error& e) {
        if (std::string(e.what()).find(part) != std::string::npos) return;
        ++failures;
        std::printf("FAILED line %d: message '%s' lacks '%s'\n", line, e.what(), part.c_str());
        return;
    }
    ++failures;
    std::printf("FAILED line %d: no error (expected '%s')\n", line, part.c_str());
}
#define CHECK_ERROR(expr, part) check_error([&]() { expr; }, part, __LINE__)

using Pair = std::tuple<int64_t, int64_t, int32_t, int32_t, int32_t>;

// All (i, j, shift) with |x_j - x_i + S.cell| < rc, by brute force over a range of shifts.
std::set<Pair> brute_force(const std::vector<double>& x, const double* cell, const bool* pbc, double rc, int reach) {
    std::set<Pair> out;
    const int64_t n = static_cast<int64_t>(x.size() / 3);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            for (int a = -reach; a <= reach; ++a)
                for (int b = -reach; b <= reach; ++b)
                    for (int c = -reach; c <= reach; ++c) {
                        if ((!pbc[0] && a) || (!pbc[1] && b) || (!pbc[2] && c)) continue;
                        if (i == j && a == 0 && b == 0 && c == 0) continue;
                        double d2 = 0.0;
                        for (int k = 0; k < 3; ++k) {
                            double d = x[3 * j + k] - x[3 * i + k] + a * cell[k] + b * cell[3 + k] + c * cell[6 + k];
                            d2 += d * d;
                        }
                        if (d2 < rc * rc) out.insert({i, j, a, b, c});
                    }
    return out;
}

std::set<Pair> as_set(const symprobe::NeighborList& nl) {
    std::set<Pair> out;
    for (size_t e = 0; e < nl.size(); ++e) {
        out.insert({nl.centers[e], nl.neighbors[e], nl.shifts[3 * e], nl.shifts[3 * e + 1], nl.shifts[3 * e + 2]});
    }
    return out;
}

void test_neighbor_list_equals_brute_force() {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(-0.3, 1.3);  // atoms also outside the cell
    // a triclinic cell smaller than the cutoff along one axis, and mixed periodicity
    const double cell[9] = {4.0, 0.0, 0.0, 1.1, 3.5, 0.0, -0.7, 0.9, 5.0};
    const bool periodicities[3][3] = {{true, true, true}, {true, false, true}, {false, false, false}};
    for (const auto& pbc : periodicities) {
        for (int threads : {1, 3}) {
            std::vector<double> x(3 * 20);
            for (int i = 0; i < 20; ++i) {
                double s[3] = {u(rng), u(rng), u(rng)};
                for (int k = 0; k < 3; ++k) x[3 * i + k] = s[0] * cell[k] + s[1] * cell[3 + k] + s[2] * cell[6 + k];
            }
            symprobe::NeighborOptions options;
            options.cutoff = 4.2;
            options.threads = threads;
            symprobe::NeighborList nl;
            symprobe::compute_neighbors(x.data(), 20, cell, pbc, options, nl);
            std::set<Pair> got = as_set(nl);
            CHECK(got.size() == nl.size());  // no duplicates
            CHECK(got == brute_force(x, cell, pbc, options.cutoff, 4));
            for (size_t e = 0; e < nl.size(); ++e) {
                for (int k = 0; k < 3; ++k) {
                    double expected = x[3 * nl.neighbors[e] + k] - x[3 * nl.centers[e] + k];
                    for (int a = 0; a < 3; ++a) expected += nl.shifts[3 * e + a] * cell[3 * a + k];
                    CHECK_CLOSE(nl.vectors[3 * e + k], expected, 1e-12);
                }
            }
            for (size_t e = 1; e < nl.size(); ++e) CHECK(nl.centers[e - 1] <= nl.centers[e]);
        }
    }
}

void test_verlet_list_rebuilds_when_needed() {
    // two atoms just outside the cutoff; moving one by more than skin/2 must bring the pair in
    const double cell[9] = {10, 0, 0, 0, 10, 0, 0, 0, 10};
    const bool pbc[3] = {true, true, true};
    std::vector<double> x = {1.0, 1.0, 1.0, 4.2, 1.0, 1.0, 7.0, 7.0, 7.0};
    symprobe::VerletList verlet(3.0, 0.5, 1);
    bool rebuilt = false;
    CHECK(verlet.update(x.data(), 3, cell, pbc, &rebuilt).size() == 0 && rebuilt);
    x[3] -= 0.2;  // within skin/2: the list is reused, and the pair is still outside
    CHECK(verlet.update(x.data(), 3, cell, pbc, &rebuilt).size() == 0 && !rebuilt);
    x[3] -= 0.1;  // 0.3 > skin/2 from the build: rebuild, and the pair (2.9 A) is in
    const symprobe::NeighborList& nl = verlet.update(x.data(), 3, cell, pbc, &rebuilt);
    CHECK(rebuilt && nl.size() == 2);
    // a changed cell rebuilds even if no atom moved
    const double bigger[9] = {10.5, 0, 0, 0, 10, 0, 0, 0, 10};
    verlet.update(x.data(), 3, bigger, pbc, &rebuilt);
    CHECK(rebuilt);
    CHECK(verlet.n_builds() == 3);
}

void test_wrapping_far_positions_is_an_error() {
    const double cell[9] = {5, 0, 0, 0, 5, 0, 0, 0, 5};
    const bool pbc[3] = {true, true, true};
    std::vector<double> x = {0.0, 0.0, 0.0, 1e300, 0.0, 0.0};
    symprobe::NeighborOptions options;
    options.cutoff = 3.0;
    symprobe::NeighborList nl;
    CHECK_ERROR(symprobe::compute_neighbors(x.data(), 2, cell, pbc, options, nl),
                "atom 1 at (1e+300, 0, 0) Angstrom lies");
    x[3] = 1.0 + 5.0 * 1000;  // 1000 cells away: fine, one pair at 1 A
    symprobe::compute_neighbors(x.data(), 2, cell, pbc, options, nl);
    CHECK(nl.size() == 2);
    CHECK_CLOSE(std::abs(nl.vectors[0]), 1.0, 1e-9);
}

std::array<double, 9> matrix(const symprobe::RotationSet& set, size_t k) {
    std::array<double, 9> r;
    std::copy(set.matrices.begin() + 9 * k, set.matrices.begin() + 9 * k + 9, r.begin());
    return r;
}

double det(const std::array<double, 9>& r) {
    return r[0] * (r[4] * r[8] - r[5] * r[7]) - r[1] * (r[3] * r[8] - r[5] * r[6]) + r[2] * (r[3] * r[7] - r[4] * r[6]);
}

bool orthogonal(const std::array<double, 9>& r) {
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            double dot = 0.0;
            for (int k = 0; k < 3; ++k) dot += r[3 * i + k] * r[3 * j + k];
            if (std::abs(dot - (i == j ? 1.0 : 0.0)) > 1e-12) return false;
        }
    return true;
}

symprobe::RotationOptions rotations(const std::vector<std::string>& tokens) {
    return symprobe::ModelOptions::parse(tokens).rotations;
}

void test_rotation_sets() {
    for (int L = 1; L <= 5; ++L) {
        symprobe::RotationSet set = symprobe::rotation_set(rotations({"rotations", "grid", std::to_string(L)}), 0);
        const size_t size = L == 1 ? 1 : static_cast<size_t>((2 * L - 1) * (2 * L - 1) * L);
        CHECK(set.size() == size);
        double total = 0.0;
        std::array<double, 9> mean{};  // the average of R (l = 1 Wigner D) vanishes for L >= 2
        for (size_t k = 0; k < set.size(); ++k) {
            auto r = matrix(set, k);
            CHECK(orthogonal(r));
            CHECK_CLOSE(det(r), 1.0, 1e-12);
            total += set.weights[k];
            for (int c = 0; c < 9; ++c) mean[c] += set.weights[k] * r[c];
        }
        if (L >= 2) {
            for (double m : mean) CHECK_CLOSE(m / total, 0.0, 1e-12);
        }
        symprobe::RotationSet inverted =
            symprobe::rotation_set(rotations({"rotations", "grid", std::to_string(L), "inversion", "yes"}), 0);
        CHECK(inverted.size() == 2 * size);
        CHECK_CLOSE(det(matrix(inverted, inverted.size() - 1)), -1.0, 1e-12);
    }
    // the random stream: a function of (seed, step), Haar-uniform enough that the mean of R vanishes
    auto random = rotations({"rotations", "random", "seed", "42"});
    auto a = matrix(symprobe::rotation_set(random, 17), 0), b = matrix(symprobe::rotation_set(random, 17), 0);
    auto c = matrix(symprobe::rotation_set(random, 18), 0);
    CHECK(a == b && a != c && orthogonal(a) && std::abs(det(a) - 1.0) < 1e-12);
    std::array<double, 9> mean{};
    const int n = 20000;
    for (int k = 0; k < n; ++k) {
        auto r = matrix(symprobe::rotation_set(random, static_cast<uint64_t>(k)), 0);
        for (int i = 0; i < 9; ++i) mean[i] += r[i] / n;
    }
    for (double m : mean) CHECK(std::abs(m) < 0.02);  // ~4 standard errors (1/sqrt(3 n))
    // a randomized grid keeps its weights and re-orients every step
    auto grid = rotations({"rotations", "grid", "2", "randomize", "yes", "seed", "3"});
    auto g0 = symprobe::rotation_set(grid, 0), g1 = symprobe::rotation_set(grid, 1);
    CHECK(g0.weights == g1.weights && g0.matrices != g1.matrices);
}

void test_rotation_statistics() {
    const std::vector<double> weights = {1.0, 3.0};
    const double energies[2] = {1.0, 2.0};
    symprobe::RotationStatistics s = symprobe::rotation_statistics(weights, energies);
    CHECK_CLOSE(s.mean, 1.75, 1e-15);
    CHECK_CLOSE(s.std, std::sqrt(0.25 * 0.75 * 0.75 + 0.75 * 0.25 * 0.25), 1e-15);
    CHECK_CLOSE(s.spread, 1.0, 1e-15);
    const double one = -5.0;
    s = symprobe::rotation_statistics({1.0}, &one);
    CHECK(s.mean == -5.0 && s.std == 0.0 && s.spread == 0.0);
}

void test_option_parser() {
    symprobe::ModelOptions o = symprobe::ModelOptions::parse(
        {"rotations", "grid", "3", "inversion", "yes", "seed", "18446744073709551615", "chunk", "4",
         "skin", "0.25", "threads", "2", "device", "cpu"});
    CHECK(o.rotations.mode == symprobe::RotationOptions::Grid && o.rotations.order == 3);
    CHECK(o.rotations.inversion && o.rotations.seed == 18446744073709551615ULL && o.rotations.chunk == 4);
    CHECK(o.skin == 0.25 && o.threads == 2 && o.device == "cpu");
    CHECK(o.rotations.describe() == "grid 3, inversion");
    symprobe::ModelOptions defaults = symprobe::ModelOptions::parse({});
    CHECK(defaults.rotations.mode == symprobe::RotationOptions::None && defaults.skin == 0.0 &&
          defaults.threads == 0 && defaults.device == "cpu" && defaults.rotations.seed == 0);
    CHECK(symprobe::ModelOptions::parse({"rotations", "random", "seed", "5"}).rotations.describe() == "random, seed 5");
    // every option of the table parses with its default
    for (const symprobe::OptionInfo& info : symprobe::option_table()) {
        std::vector<std::string> tokens = {info.name};
        for (size_t p = 0, q; p <= info.default_value.size(); p = q + 1) {
            q = info.default_value.find(' ', p);
            if (q == std::string::npos) q = info.default_value.size();
            tokens.push_back(info.default_value.substr(p, q - p));
        }
        symprobe::ModelOptions::parse(tokens);
        ++checks;
    }
    using V = std::vector<std::string>;
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"rotations", "grid", "inversion", "yes"}),
                "rotations grid needs an order L (a positive integer), got 'inversion'");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"rotations", "lebedev"}), "rotations lebedev needs an order L");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"rotations", "grid", "0"}), "got '0'");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"rotations", "grid", "13"}), "grid order must lie in 1..12, got 13");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"rotations", "lebedev", "4"}), "no Lebedev rule of order 4");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"rotations", "spin"}), "unknown rotations 'spin'");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"seed", "-1"}), "seed must be a non-negative integer (0 to 2^64-1), got '-1'");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"seed", "18446744073709551616"}), "seed must be a non-negative integer");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"seed"}), "seed needs a value (S)");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"chunk", "-2"}), "chunk must be a non-negative integer");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"atoms", "-5"}), "atoms must be a non-negative integer (0 = whole system), got '-5'");
    CHECK(symprobe::ModelOptions::parse({"atoms", "4096"}).atoms == 4096);
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"skin", "nan"}), "skin must be a non-negative length in Angstrom");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"threads", "1.5"}), "threads must be a non-negative integer");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"device", "gpu"}), "device must be cpu, cuda or cuda:N, got 'gpu'");
    // MPI ranks spread over a node's GPUs; an explicit index or the CPU stays as given
    CHECK(symprobe::device_for_local_rank("cuda", 0, 2) == "cuda:0");
    CHECK(symprobe::device_for_local_rank("cuda", 3, 2) == "cuda:1");
    CHECK(symprobe::device_for_local_rank("cuda", 5, 4) == "cuda:1");
    CHECK(symprobe::device_for_local_rank("cuda:0", 3, 2) == "cuda:0");
    CHECK(symprobe::device_for_local_rank("cpu", 3, 2) == "cpu");
    CHECK(symprobe::device_for_local_rank("cuda", 1, 0) == "cuda");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"inversion", "maybe"}), "inversion must be yes or no, got 'maybe'");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"inversion", "yes"}), "inversion needs rotations random, grid L or lebedev L");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"rotations", "random", "randomize", "yes"}), "randomize applies to");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"spin", "1"}), "unknown option 'spin' (options: rotations, inversion");
    CHECK_ERROR(symprobe::ModelOptions::parse(V{"seed", "1", "seed", "2"}), "option 'seed' is given twice");
}

void test_elements() {
    CHECK(symprobe::atomic_number("O") == 8 && symprobe::element_symbol(1) == "H");
    CHECK_ERROR(symprobe::atomic_number("NULL"), "unknown chemical element symbol 'NULL'");
}

}  // namespace

int main() {
    test_neighbor_list_equals_brute_force();
    test_verlet_list_rebuilds_when_needed();
    test_wrapping_far_positions_is_an_error();
    test_rotation_sets();
    test_rotation_statistics();
    test_option_parser();
    test_elements();
    std::printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
