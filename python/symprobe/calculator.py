"""ASE calculator over the compiled core."""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from .core import Model, load_model


class Calculator(_AseCalculator):
    """symprobe model as an ASE calculator (eV, Angstrom).

    model: a path, a bundled model name or a loaded :class:`symprobe.Model`.
    Results: energy, free_energy (= energy), energies, forces, stress (periodic systems only,
    eV/A^3, ASE's sign convention), and virial (eV, 3x3).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model="water-reference", device: str = "cpu", threads: int = 0,
                 skin: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.model = model if isinstance(model, Model) else load_model(
            model, device=device, threads=threads, skin=skin)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if "stress" in properties and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a system periodic along all axes")
        out = self.model.compute(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc,
                                 forces=True, virial=True, energies="energies" in properties)
        self.results["energy"] = out["energy"]
        self.results["free_energy"] = out["energy"]
        self.results["forces"] = out["forces"]
        self.results["virial"] = out["virial"]
        if "energies" in out:
            self.results["energies"] = out["energies"]
        if atoms.pbc.all():
            # dE/d(strain)_ab = -W_ba; ASE stress is its symmetric part over the volume
            sigma = -out["virial"].T / atoms.get_volume()
            sigma = 0.5 * (sigma + sigma.T)
            self.results["stress"] = sigma.flat[[0, 4, 8, 5, 2, 1]].copy()
