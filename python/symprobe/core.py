"""Python face of the compiled core: models and neighbour lists."""
from __future__ import annotations

import json
import os
from typing import NamedTuple

import numpy as np

from . import _core


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
    atomic_virials [N,3,3] (eV), and the symmetry diagnostics: rotation_energies [G] (eV),
    energy_std, energy_spread (eV), forces_rms_spread (eV/A), net_force [3] (eV/A),
    net_torque [3] (eV). With rotations, every quantity is the weighted rotational average.
    """

    @property
    def metadata(self) -> dict:
        return json.loads(self.metadata_json)

    def __repr__(self) -> str:
        return (f"symprobe.Model('{self.path}', cutoff={self.cutoff} A, elements={self.elements}, "
                f"dtype={self.dtype}, device={self.device})")


def load_model(path: str | os.PathLike, device: str = "cpu", threads: int = 0,
               skin: float = 0.0, rotations: str = "none", inversion: bool = False,
               randomize: bool = False, seed: int = 0, chunk: int = 0) -> Model:
    """Load a model file, or a bundled model by name (see symprobe.models.BUNDLED).

    device: "cpu" or "cuda[:N]"; threads: neighbour-search threads and torch's intra-op threads
    (set at load for the whole process, as torch.set_num_threads does; 0 keeps torch's setting);
    skin: Verlet skin in Angstrom (0 rebuilds the neighbour list at every call).
    rotations: "none", "random", "grid L" or "lebedev L" (docs/symmetrization.md); inversion:
    add -R for every grid rotation (random: improper with probability 1/2); randomize: re-orient
    the whole grid randomly at every evaluation; seed: of the random stream (evaluation k uses
    (seed, k); `model.rotation_step` is k); chunk: rotations per batched model call (0 = auto).
    A file that exists always wins over a bundled name (the core resolves names).
    """
    return Model(os.fspath(path), device=device, threads=threads, skin=skin, rotations=rotations,
                 inversion=inversion, randomize=randomize, seed=seed, chunk=chunk)


def rotation_set(rotations: str, inversion: bool = False, randomize: bool = False, seed: int = 0,
                 step: int = 0):
    """The rotation matrices [G, 3, 3] and weights [G] the core uses for these options at
    evaluation `step`."""
    return _core.rotation_set(rotations, inversion, randomize, seed, step)
