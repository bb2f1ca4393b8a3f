"""Unit constants (CODATA 2018, as used by ASE and i-PI). Internal units: Angstrom, eV."""

HARTREE_EV = 27.211386245988  # eV per Hartree
BOHR_A = 0.529177210903  # Angstrom per Bohr
