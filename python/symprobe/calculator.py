"""ASE calculator over the compiled core."""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from .runtime import Model, load_model, take_options
from .models import DEFAULT


class Calculator(_AseCalculator):
    """symprobe model as an ASE calculator (eV, Angstrom).

    model: a path, a bundled model name or a loaded :class:`symprobe.Model`.
    Results: energy, free_energy (= energy), energies, forces, stress (periodic systems only,
    eV/A^3, ASE's sign convention), virial (eV, 3x3), and the symmetry diagnostics of
    :class:`symprobe.Model` (rotation_energies, energy_std, energy_spread, forces_rms_spread,
    net_force, net_torque).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    DIAGNOSTICS = ("rotation_energies", "energy_std", "energy_spread", "net_force", "net_torque")

    def __init__(self, model=None, forces_rms_spread: bool = False, **options):
        """model: a loaded Model, a .pt path or a bundled name (default: the bundled default,
        symprobe.models.DEFAULT). options: those of :func:`symprobe.load_model` (rotations,
        inversion, randomize, seed, chunk, skin, threads, device) when `model` is not loaded
        yet; the rest go to ASE's Calculator. forces_rms_spread: also compute that diagnostic
        (a scatter of every rotated copy's forces).

        Random rotations: each new geometry is one step of the model's counter
        (`calc.model.rotation_step`); asking for another property of the same geometry re-uses
        the results, so it never draws a second rotation."""
        model_options = take_options(options)
        self.forces_rms_spread = forces_rms_spread
        super().__init__(**options)
        if isinstance(model, Model):
            if model_options:
                raise ValueError("model options apply when the Calculator loads the model itself")
            self.model = model
        else:
            self.model = load_model(DEFAULT if model is None else model, **model_options)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if "stress" in properties and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a system periodic along all axes")
        # everything in one evaluation: a later request must not re-evaluate (in random mode a
        # second call would draw another rotation)
        # the torque-free correction is weighted by the masses the integrator uses
        masses = atoms.get_masses() if self.model.correction != "none" else None
        out = self.model.compute(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc,
                                 forces=True, virial=True, energies=True,
                                 forces_rms_spread=self.forces_rms_spread, masses=masses)
        self.results["energy"] = out["energy"]
        self.results["free_energy"] = out["energy"]
        self.results["forces"] = out["forces"]
        self.results["virial"] = out["virial"]
        self.results["energies"] = out["energies"]
        for key in self.DIAGNOSTICS + (("forces_rms_spread",) if self.forces_rms_spread else ()):
            self.results[key] = out[key]
        if atoms.pbc.all():
            # dE/d(strain)_ab = -W_ba; ASE stress is its symmetric part over the volume
            sigma = -out["virial"].T / atoms.get_volume()
            sigma = 0.5 * (sigma + sigma.T)
            self.results["stress"] = sigma.flat[[0, 4, 8, 5, 2, 1]].copy()
