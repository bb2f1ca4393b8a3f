"""Reference water models, exported through the model contract.

1. ``water-reference``: an exactly rotation-invariant flexible water model (no electrostatics):
   harmonic O-H bonds and a cosine-harmonic H-O-H angle (both switched off smoothly between
   1.25 and 1.45 A, which also walls off foreign H atoms), an O-O Lennard-Jones term and an H-H
   exponential repulsion, both switched off smoothly between 4.0 and 5.0 A. Enough for stable MD.
2. ``water-orientation``: the same plus the lab-frame orientation term of the paper
   (../shared/notes/paper.md): per molecule, with u the unit vector from O to the midpoint of its
   H atoms, ``strength * [g(u_x, 1) + g(u_y, 0.5) + g(u_z, 2)]`` with g(t, a) = exp(a t), or its
   Taylor polynomial of degree d (``water-orientation-poly<d>``). Their exact orientational
   averages are known (:func:`orientation_average`), which makes them the ground truth for every
   symmetrisation test.

All energies in eV, lengths in Angstrom.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import torch

from ..export import export_model
from ..units import HARTREE_EV

CUTOFF = 5.0  # A

# (parameter, value) in eV and Angstrom
BOND_K = 45.93  # eV/A^2, harmonic O-H bond
BOND_R0 = 0.9572  # A
ANGLE_K = 3.5  # eV, k/2 (cos theta - cos theta0)^2
ANGLE_THETA0 = 104.52  # degrees
BOND_SWITCH = (1.25, 1.45)  # A, intramolecular terms switched off over this range
LJ_EPSILON = 0.00674  # eV, O-O
LJ_SIGMA = 3.1656  # A
HH_A = 20.0  # eV, H-H repulsion A exp(-r / rho)
HH_RHO = 0.25  # A
PAIR_SWITCH = (4.0, CUTOFF)  # A

ORIENTATION_STRENGTH = 0.02 * HARTREE_EV  # eV per molecule (0.02 Hartree, as in the paper)
ORIENTATION_COEFFICIENTS = (1.0, 0.5, 2.0)  # a_x, a_y, a_z


def switch(r: torch.Tensor, r_on: float, r_off: float) -> torch.Tensor:
    """C2-smooth step: 1 below r_on, 0 above r_off (quintic in between)."""
    x = torch.clamp((r - r_on) / (r_off - r_on), 0.0, 1.0)
    return 1.0 - x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


class WaterReference(torch.nn.Module):
    """Flexible water reference model; orientation: 0 none, 1 exponential, 2 polynomial."""

    def __init__(self, orientation: int = 0, degree: int = 0, strength: float = ORIENTATION_STRENGTH):
        super().__init__()
        if orientation not in (0, 1, 2):
            raise ValueError("orientation must be 0 (none), 1 (exponential) or 2 (polynomial)")
        if orientation == 2 and degree < 0:
            raise ValueError("polynomial degree must be >= 0")
        self.orientation = orientation
        self.degree = degree
        self.strength = strength
        self.cos0 = math.cos(math.radians(ANGLE_THETA0))
        # TorchScript reads module attributes, not module-level globals
        self.bond_k, self.bond_r0, self.angle_k = BOND_K, BOND_R0, ANGLE_K
        self.bond_on, self.bond_off = BOND_SWITCH
        self.lj_epsilon, self.lj_sigma = LJ_EPSILON, LJ_SIGMA
        self.hh_a, self.hh_rho = HH_A, HH_RHO
        self.pair_on, self.pair_off = PAIR_SWITCH
        self.a_x, self.a_y, self.a_z = ORIENTATION_COEFFICIENTS

    def _g(self, t: torch.Tensor, a: float) -> torch.Tensor:
        if self.orientation == 1:
            return torch.exp(a * t)
        out = torch.zeros_like(t)
        term = torch.ones_like(t)
        for n in range(self.degree + 1):
            if n > 0:
                term = term * (a * t) / n
            out = out + term
        return out

    def forward(
        self,
        species: torch.Tensor,
        centers: torch.Tensor,
        neighbors: torch.Tensor,
        vectors: torch.Tensor,
    ) -> torch.Tensor:
        n_atoms = species.shape[0]
        energies = torch.zeros(n_atoms, dtype=vectors.dtype, device=vectors.device)
        r = torch.sqrt((vectors * vectors).sum(dim=1))
        zi = species[centers]
        zj = species[neighbors]

        # pair terms: every pair is listed in both directions, half to each centre
        oo = torch.nonzero((zi == 8) & (zj == 8)).flatten()
        r_oo = r[oo]
        sr6 = (self.lj_sigma / r_oo) ** 6
        v_oo = 4.0 * self.lj_epsilon * (sr6 * sr6 - sr6) * switch(r_oo, self.pair_on, self.pair_off)
        energies.index_add_(0, centers[oo], 0.5 * v_oo)

        hh = torch.nonzero((zi == 1) & (zj == 1)).flatten()
        r_hh = r[hh]
        v_hh = self.hh_a * torch.exp(-r_hh / self.hh_rho) * switch(r_hh, self.pair_on, self.pair_off)
        energies.index_add_(0, centers[hh], 0.5 * v_hh)

        # O-H bonds, counted once (from the O side)
        oh = torch.nonzero((zi == 8) & (zj == 1) & (r < self.bond_off)).flatten()
        r_oh = r[oh]
        f_oh = switch(r_oh, self.bond_on, self.bond_off)
        energies.index_add_(0, centers[oh], 0.5 * self.bond_k * (r_oh - self.bond_r0) ** 2 * f_oh)

        # H-O-H angles: pairs of bonded edges with the same O centre
        c_oh = centers[oh]
        if oh.numel() > 1:
            c_sorted, order = torch.sort(c_oh, stable=True)
            e_sorted = oh[order]
            f_sorted = f_oh[order]
            k_max = int(torch.bincount(c_sorted).max().item())
            for k in range(1, k_max):
                same = torch.nonzero(c_sorted[:-k] == c_sorted[k:]).flatten()
                e1 = e_sorted[same]
                e2 = e_sorted[same + k]
                cos = (vectors[e1] * vectors[e2]).sum(dim=1) / (r[e1] * r[e2])
                v = 0.5 * self.angle_k * (cos - self.cos0) ** 2 * f_sorted[same] * f_sorted[same + k]
                energies.index_add_(0, c_sorted[same], v)

        if self.orientation != 0:
            # u: unit vector from O to the midpoint of its (switch-weighted) H atoms
            m = torch.zeros(n_atoms, 3, dtype=vectors.dtype, device=vectors.device)
            m.index_add_(0, c_oh, f_oh.unsqueeze(1) * vectors[oh])
            has_h = torch.nonzero((species == 8) & ((m * m).sum(dim=1) > 0)).flatten()
            mo = m[has_h]
            u = mo / torch.sqrt((mo * mo).sum(dim=1)).unsqueeze(1)
            v_or = self.strength * (
                self._g(u[:, 0], self.a_x) + self._g(u[:, 1], self.a_y) + self._g(u[:, 2], self.a_z)
            )
            energies.index_add_(0, has_h, v_or)
        return energies


def orientation_average(orientation: str, degree: Optional[int] = None,
                        strength: float = ORIENTATION_STRENGTH) -> float:
    """Exact average over all orientations of one molecule's orientation energy (eV).

    The sphere average of exp(a t) with t = u.e is sinh(a)/a; of t^n it is 1/(n+1) for even n, 0
    for odd n.
    """
    total = 0.0
    for a in ORIENTATION_COEFFICIENTS:
        if orientation == "exp":
            total += math.sinh(a) / a
        elif orientation == "poly":
            total += sum(a**n / ((n + 1) * math.factorial(n)) for n in range(0, degree + 1, 2))
        else:
            raise ValueError("orientation must be 'exp' or 'poly'")
    return strength * total


def reference_model(name: str) -> WaterReference:
    """The module of a reference model by name: water-reference, water-orientation,
    water-orientation-poly<d>."""
    if name == "water-reference":
        return WaterReference(0)
    if name == "water-orientation":
        return WaterReference(1)
    prefix = "water-orientation-poly"
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return WaterReference(2, int(name[len(prefix):]))
    raise ValueError(f"unknown reference model '{name}'")


def export_reference(name: str, path: str | os.PathLike, dtype: torch.dtype = torch.float64,
                     overwrite: bool = False) -> str:
    """Export the reference model `name` to `path` (float64 by default)."""
    descriptions = {
        "water-reference": "invariant flexible water reference model (no electrostatics)",
        "water-orientation": "water reference + lab-frame orientation term (exponential)",
    }
    return export_model(
        reference_model(name),
        path,
        cutoff=CUTOFF,
        elements=["H", "O"],
        dtype=dtype,
        name=name,
        description=descriptions.get(name, "water reference + polynomial orientation term"),
        overwrite=overwrite,
    )
