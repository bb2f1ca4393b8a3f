// Chemical symbols <-> atomic numbers, for model metadata and front ends (pair_coeff, xyz).
#include "symprobe/symprobe.hpp"

namespace symprobe {
namespace {
const char* const SYMBOLS[] = {
    "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",
    "S",  "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh",
    "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd",
    "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re",
    "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th",
    "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db",
    "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};
constexpr int N_ELEMENTS = sizeof(SYMBOLS) / sizeof(SYMBOLS[0]);
}  // namespace

int atomic_number(const std::string& symbol) {
    for (int z = 1; z <= N_ELEMENTS; ++z) {
        if (symbol == SYMBOLS[z - 1]) return z;
    }
    throw Error(Error::InvalidInput, "unknown chemical element symbol '" + symbol + "'");
}

std::string element_symbol(int z) {
    if (z < 1 || z > N_ELEMENTS) {
        throw Error(Error::InvalidInput,
                    "atomic number " + std::to_string(z) + " is not a chemical element (1-118)");
    }
    return SYMBOLS[z - 1];
}

}  // namespace symprobe
