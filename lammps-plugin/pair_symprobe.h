// pair_style symprobe: a thin LAMMPS front end of the symprobe core (csrc/). Geometry in,
// forces out; neighbour handling of the model graph, rotations and evaluation live in the core.
#pragma once

#include "pair.h"

#include "symprobe/symprobe.hpp"

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace LAMMPS_NS {

class PairSymprobe : public Pair {
public:
    explicit PairSymprobe(class LAMMPS *);
    ~PairSymprobe() override;
    void compute(int, int) override;
    void settings(int, char **) override;
    void coeff(int, char **) override;
    void init_style() override;
    double init_one(int, int) override;
    void write_restart_settings(FILE *) override;
    void read_restart_settings(FILE *) override;
    void write_restart(FILE *) override;
    void read_restart(FILE *) override;
    void *extract(const char *, int &) override;
    int pack_forward_comm(int, int *, double *, int, int *) override;
    void unpack_forward_comm(int, int, double *) override;
    int pack_reverse_comm(int, int, double *) override;
    void unpack_reverse_comm(int, int *, double *) override;

private:
    void load();
    // models that take positions (metatomic): the periodic box on one rank, else a rank's atoms
    // and its ghosts as one finite cluster
    int evaluate_positions(symprobe::Results& r, const symprobe::Request& request);
    void tally(const symprobe::Results& r, int64_t n_nodes, int64_t n_local_nodes);
    const double* node_masses();
    std::unique_ptr<symprobe::Model> model_;
    std::vector<std::string> args_;      // pair_style arguments, kept for restart files
    std::vector<int> type_numbers_;      // atomic number of each atom type (1-based); 0: NULL
    double energy_factor_ = 1.0;         // LAMMPS energy units per eV
    double model_cutoff_ = 0.0;          // Angstrom
    double range_ = 0.0;                 // interaction range, Angstrom
    bool positions_model_ = false;       // the model takes positions (metatomic), not a graph
    bool merge_by_id_ = false;           // one graph node per atom ID, whatever its images
    int remote_hops_ = 0;                // hops from the local atoms whose neighbourhoods count
    bool exchange_ = false;              // a layered model on several ranks: features exchanged
    int64_t n_local_nodes_ = 0;          // graph nodes of local atoms (the first ones)
    int exchange_width_ = 0;             // doubles per atom of the exchange under way
    std::vector<double> exchange_rows_;  // [nall, exchange_width_] in LAMMPS's atom order
    void idle_exchanges();
    void forward_features(double *features, int64_t width);
    void reverse_gradients(double *gradients, int64_t width);
    // The core's feature exchange: between the layers of a layered model the features of ghost
    // atoms come from their owners (forward_comm), their gradients go back (reverse_comm).
    struct Exchange : symprobe::FeatureExchange {
        explicit Exchange(PairSymprobe *pair) : pair(pair) {}
        void forward(double *features, int64_t width) override;
        void reverse(double *gradients, int64_t width) override;
        PairSymprobe *pair;
    };
    Exchange feature_exchange_{this};
    bool report_graph_ = false;          // log the graph sizes at the first step of a run
    // the graph handed to the core, kept between steps to reuse the memory
    std::vector<int64_t> node_of_, atom_of_, centers_, neighbors_;
    std::unordered_map<tagint, int64_t> node_of_id_;
    std::vector<int> frontier_, next_frontier_;
    std::vector<int32_t> numbers_;
    std::vector<double> vectors_, positions_, masses_;
    double diagnostics_[6] = {0, 0, 0, 0, 0, 0};  // for `pair extract` / compute pair
    void allocate();
};

}  // namespace LAMMPS_NS
