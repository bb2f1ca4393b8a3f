// pair_style symprobe: a thin LAMMPS front end of the symprobe core (csrc/). Geometry in,
// forces out; neighbour handling of the model graph, rotations and evaluation live in the core.
#pragma once

#include "pair.h"

#include <memory>
#include <string>
#include <vector>

namespace symprobe {
class Model;
}

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

private:
    void load();
    std::unique_ptr<symprobe::Model> model_;
    std::vector<std::string> args_;      // pair_style arguments, kept for restart files
    std::vector<int> type_numbers_;      // atomic number of each atom type (1-based); 0: NULL
    double energy_factor_ = 1.0;         // LAMMPS energy units per eV
    double model_cutoff_ = 0.0;          // Angstrom
    double range_ = 0.0;                 // interaction range, Angstrom
    bool owner_mapping_ = false;         // one rank: ghosts mapped to the local atoms they image
    std::vector<int> local_of_tag_;      // local index of each atom ID (owner mapping)
    // the graph handed to the core, kept between steps to reuse the memory
    std::vector<int64_t> node_of_, atom_of_, centers_, neighbors_;
    std::vector<int32_t> numbers_;
    std::vector<double> vectors_;
    double diagnostics_[6] = {0, 0, 0, 0, 0, 0};  // for `pair extract` / compute pair
    void allocate();
};

}  // namespace LAMMPS_NS
