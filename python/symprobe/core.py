"""Python face of the compiled core: models and neighbour lists."""
from __future__ import annotations

import json
import os
from typing import NamedTuple

import numpy as np

from . import _core
from .models import bundled_path


class NeighborList(NamedTuple):
    """Full neighbour list; vectors[e] = x[neighbors[e]] - x[centers[e]] + shifts[e] @ cell (A)."""

    centers: np.ndarray  # int64 [E]
    neighbors: np.ndarray  # int64 [E]
    shifts: np.ndarray  # int32 [E, 3]
    vectors: np.ndarray  # float64 [E, 3], Angstrom


def neighbor_list(positions, cell, pbc, cutoff: float, threads: int = 1) -> NeighborList:
    """All pairs closer than `cutoff` (Angstrom), in both directions, periodic images included.

    positions: [N, 3] Angstrom; cell: [3, 3] Angstrom (rows are lattice vectors; rows of
    non-periodic axes are ignored and may be zero) or None; pbc: bool or 3 bools.
    """
    return NeighborList(*_core.neighbor_list(positions, cell, pbc, cutoff, threads))


class Model(_core.Model):
    """A TorchScript model loaded through the model contract, evaluated by the C++ core.

    compute(positions [N,3] A, numbers [N], cell [3,3] A or None, pbc, forces=True,
    virial=True, energies=False, atomic_virials=False) returns a dict with energy (eV),
    energies [N] (eV), forces [N,3] (eV/A), virial [3,3] (eV, W = -sum_e r_e (x) dE/dr_e),
    atomic_virials [N,3,3] (eV).
    """

    @property
    def metadata(self) -> dict:
        return json.loads(self.metadata_json)

    def __repr__(self) -> str:
        return (f"symprobe.Model('{self.path}', cutoff={self.cutoff} A, elements={self.elements}, "
                f"dtype={self.dtype}, device={self.device})")


def load_model(path: str | os.PathLike, device: str = "cpu", threads: int = 0,
               skin: float = 0.0) -> Model:
    """Load a model file, or a bundled model by name (see symprobe.models.BUNDLED).

    device: "cpu" or "cuda[:N]"; threads: torch and neighbour-search threads (0 keeps torch's
    default); skin: Verlet skin in Angstrom (0 rebuilds the neighbour list at every call).
    A file that exists always wins over a bundled name.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        path = bundled_path(path) or path
    return Model(path, device=device, threads=threads, skin=skin)
