"""Water: structures (generated lattice boxes, the equilibrated start box of `symprobe md`),
analysis (`symprobe.water.analysis`) and the analytic reference models
(`symprobe.water.reference`)."""
from __future__ import annotations

import math
import os

import numpy as np
from ase import Atoms
from scipy.spatial.transform import Rotation

WATER_MASS_AMU = 18.01528
AVOGADRO = 6.02214076e23
# 64 molecules equilibrated at 300 K by the bundled water-pet (tools/equilibrate_water_box.py)
EQUILIBRATED_BOX = "symprobe/water/water-64-300K.xyz"


def equilibrated_box() -> Atoms:
    """The start structure of `symprobe md`: 64 water molecules equilibrated at 300 K by the
    bundled model (positions and cell; how it was made is in its info)."""
    import ase.io
    return ase.io.read(os.path.join(os.path.dirname(__file__), os.path.basename(EQUILIBRATED_BOX)))


def water_box(n_molecules: int = 64, density: float = 0.997, seed: int = 0,
              bond: float = 0.9572, angle: float = 104.52) -> Atoms:
    """A cubic periodic box of randomly oriented water molecules on a simple cubic lattice.

    density in g/cm^3, bond in Angstrom, angle in degrees. Atoms are ordered O, H, H per
    molecule.
    """
    if n_molecules < 1:
        raise ValueError(f"n_molecules must be >= 1, got {n_molecules}")
    if not density > 0:
        raise ValueError(f"density must be positive (g/cm^3), got {density}")
    volume = n_molecules * WATER_MASS_AMU / (density * AVOGADRO) * 1e24  # A^3
    length = volume ** (1.0 / 3.0)
    per_side = math.ceil(n_molecules ** (1.0 / 3.0) - 1e-9)
    spacing = length / per_side
    half = math.radians(angle) / 2
    # molecule frame: O at the origin, H atoms in the xz plane, bisector along +z
    template = np.array([[0.0, 0.0, 0.0],
                         [bond * math.sin(half), 0.0, bond * math.cos(half)],
                         [-bond * math.sin(half), 0.0, bond * math.cos(half)]])
    rng = np.random.default_rng(seed)
    sites = np.array([(i, j, k) for i in range(per_side) for j in range(per_side)
                      for k in range(per_side)], dtype=float)
    sites = sites[rng.permutation(len(sites))[:n_molecules]]
    rotations = Rotation.random(n_molecules, random_state=rng)
    positions = []
    for site, rot in zip(sites, rotations):
        centre = (site + 0.5) * spacing
        positions.extend(centre + rot.apply(template))
    return Atoms("OH2" * n_molecules, positions=positions, cell=np.eye(3) * length, pbc=True)
