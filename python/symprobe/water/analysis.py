"""Structural checks for water simulations: intact molecules and radial distribution functions.

Lengths in Angstrom. Pair distances come from the core's neighbour list, so periodic and
triclinic cells are handled exactly as in the model.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..runtime import neighbor_list


def broken_water_molecules(atoms, oh_max: float = 1.3) -> list[str]:
    """Problems with the water molecules of `atoms` (empty when every O has exactly two H within
    oh_max Angstrom and every H exactly one O). Each entry names the atom, e.g. 'O 12 has 3 H'."""
    numbers = atoms.numbers
    other = set(np.unique(numbers).tolist()) - {1, 8}
    if other:
        raise ValueError(f"broken_water_molecules: only H and O expected, found Z={sorted(other)}")
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, oh_max)
    oh = (numbers[nl.centers] == 8) & (numbers[nl.neighbors] == 1)
    h_per_o = np.bincount(nl.centers[oh], minlength=len(atoms))
    o_per_h = np.bincount(nl.neighbors[oh], minlength=len(atoms))
    problems = [f"O {i} has {h_per_o[i]} H within {oh_max} A"
                for i in np.flatnonzero((numbers == 8) & (h_per_o != 2))]
    problems += [f"H {i} has {o_per_h[i]} O within {oh_max} A"
                 for i in np.flatnonzero((numbers == 1) & (o_per_h != 1))]
    return problems


def max_rdf_range(cell) -> float:
    """Half the smallest perpendicular width of a periodic cell (Angstrom): the longest r at
    which g(r) counts each pair once, without periodic images."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    return 0.5 * float((volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]),
                                               axis=1)).min())


def pair_histogram(atoms, z_a: int, z_b: int, edges: np.ndarray) -> tuple[np.ndarray, float]:
    """Counts of a-b distances (Angstrom) in the bins `edges` for one periodic frame, and the
    ideal-gas normalisation n_a n_b / V of that frame: sums of both over frames give g(r) via
    `radial_distribution_from_histogram` (so long runs can accumulate it on the fly)."""
    if not all(atoms.pbc):
        raise ValueError("pair_histogram needs a fully periodic frame")
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    r_max, limit = float(edges[-1]), max_rdf_range(cell)
    if r_max > limit + 1e-12:
        raise ValueError(f"r_max {r_max} A exceeds half the smallest box width {limit:.3f} A")
    numbers = atoms.numbers
    nl = neighbor_list(atoms.positions, cell, atoms.pbc, r_max)
    pair = (numbers[nl.centers] == z_a) & (numbers[nl.neighbors] == z_b)
    counts = np.histogram(np.linalg.norm(nl.vectors[pair], axis=1), bins=edges)[0]
    n_a, n_b = int((numbers == z_a).sum()), int((numbers == z_b).sum())
    return counts.astype(float), n_a * (n_b - 1 if z_a == z_b else n_b) / volume


def radial_distribution_from_histogram(edges: np.ndarray, counts: np.ndarray, norm: float
                                       ) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (Angstrom) and g(r) from summed `pair_histogram` results."""
    if norm <= 0:
        raise ValueError("radial distribution: no frames accumulated")
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (norm * shell)


def radial_distribution(frames: Iterable, z_a: int, z_b: int, r_max: float,
                        n_bins: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """g_ab(r) averaged over periodic frames: bin centres (Angstrom) and g, normalised so that an
    ideal gas at the same density gives 1. r_max must not exceed half the smallest box width."""
    edges = np.linspace(0.0, r_max, n_bins + 1)
    counts, norm = np.zeros(n_bins), 0.0
    for atoms in frames:
        c, n = pair_histogram(atoms, z_a, z_b, edges)
        counts += c
        norm += n
    return radial_distribution_from_histogram(edges, counts, norm)


def first_peak(r: np.ndarray, g: np.ndarray, r_range: tuple[float, float] = (2.0, 3.3)
               ) -> tuple[float, float]:
    """Position (Angstrom) and height of the maximum of g within r_range (the O-O first shell by
    default), refined by a parabola through the highest bin and its neighbours."""
    inside = np.flatnonzero((r >= r_range[0]) & (r <= r_range[1]))
    if len(inside) == 0:
        raise ValueError(f"first_peak: no bins in {r_range} A")
    k = int(inside[np.argmax(g[inside])])
    if 0 < k < len(g) - 1:
        a, b, c = g[k - 1], g[k], g[k + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
        return float(r[k] + shift * (r[1] - r[0])), float(b - 0.25 * (a - c) * shift)
    return float(r[k]), float(g[k])
