"""Neighbour list: cell list vs brute force vs ASE, for random triclinic and partly periodic
systems, tiny and large cells and atoms outside the cell."""
import itertools

import numpy as np
import torch
import pytest
from ase.neighborlist import primitive_neighbor_list
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symprobe
from symprobe import _runtime


def brute_force(positions, cell, pbc, cutoff):
    """Every (i, j, shift) with |x_j - x_i + shift.cell| < cutoff, by enumeration."""
    cell = np.asarray(cell, float)
    pbc = np.broadcast_to(pbc, 3)
    ranges = []
    if np.any(pbc):
        volume_rows = cell[pbc]
    for k in range(3):
        if pbc[k]:
            others = cell[[(k + 1) % 3, (k + 2) % 3]]
            normal = np.cross(others[0], others[1])
            spacing = abs(np.dot(cell[k], normal)) / np.linalg.norm(normal)
            # atoms may sit outside the cell: widen by the spread of fractional coordinates
            frac = positions @ normal / np.dot(cell[k], normal)
            reach = int(np.ceil(cutoff / spacing + frac.max() - frac.min())) + 1
            ranges.append(range(-reach, reach + 1))
        else:
            ranges.append(range(0, 1))
    pairs = set()
    for shift in itertools.product(*ranges):
        s = np.array(shift, float)
        d = positions[None, :, :] - positions[:, None, :] + s @ cell
        r = np.linalg.norm(d, axis=2)
        for i, j in zip(*np.nonzero(r < cutoff)):
            if i == j and not any(shift):
                continue
            pairs.add((int(i), int(j), shift))
    return pairs


def as_set(nl):
    return {(int(i), int(j), tuple(int(x) for x in s))
            for i, j, s in zip(nl.centers, nl.neighbors, nl.shifts)}


def check_vectors(nl, positions, cell):
    expected = positions[nl.neighbors] - positions[nl.centers] + nl.shifts @ np.asarray(cell)
    np.testing.assert_allclose(nl.vectors, expected, atol=1e-12)


def random_cell(rng, scale, skew):
    return np.diag(rng.uniform(0.6, 1.4, 3) * scale) + rng.uniform(-skew, skew, (3, 3)) * scale


@pytest.mark.parametrize("seed", range(12))
def test_against_brute_force_and_ase(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    scale = rng.choice([1.5, 4.0, 9.0])  # cells smaller and larger than 2 x cutoff
    cell = random_cell(rng, scale, 0.3)
    pbc = rng.random(3) < 0.6
    cutoff = rng.uniform(1.0, 4.0)
    # fractional coordinates partly outside [0, 1)
    positions = rng.uniform(-0.5, 1.5, (n, 3)) @ cell
    nl = symprobe.neighbor_list(positions, cell, pbc, cutoff)
    check_vectors(nl, positions, cell)
    assert np.all(np.diff(nl.centers) >= 0), "pairs are grouped by centre"
    expected = brute_force(positions, cell, pbc, cutoff)
    assert as_set(nl) == expected
    assert len(nl.centers) == len(expected), "no pair listed twice"
    i, j, S = primitive_neighbor_list("ijS", pbc, cell, positions, cutoff, self_interaction=False)
    ase_pairs = {(int(a), int(b), tuple(int(x) for x in s)) for a, b, s in zip(i, j, S)}
    assert as_set(nl) == ase_pairs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n=st.integers(1, 25),
       pbc=st.tuples(st.booleans(), st.booleans(), st.booleans()),
       scale=st.floats(0.7, 12.0), cutoff=st.floats(0.5, 5.0), threads=st.integers(1, 3))
def test_property_sweep(seed, n, pbc, scale, cutoff, threads):
    rng = np.random.default_rng(seed)
    cell = random_cell(rng, scale, 0.4)
    positions = rng.uniform(-1.0, 2.0, (n, 3)) @ cell
    nl = symprobe.neighbor_list(positions, cell, pbc, cutoff, threads=threads)
    check_vectors(nl, positions, cell)
    assert as_set(nl) == brute_force(positions, cell, pbc, cutoff)


def test_non_periodic_axes_ignore_cell_rows():
    rng = np.random.default_rng(3)
    positions = rng.uniform(0, 10, (60, 3))
    cell = np.diag([8.0, 8.0, 8.0])
    zero_row = cell.copy()
    zero_row[2] = 0.0
    pbc = [True, True, False]
    a = as_set(symprobe.neighbor_list(positions, cell, pbc, 3.0))
    b = as_set(symprobe.neighbor_list(positions, zero_row, pbc, 3.0))
    assert a == b == brute_force(positions, cell, pbc, 3.0)
    # fully open system with no cell at all
    c = as_set(symprobe.neighbor_list(positions, None, False, 3.0))
    assert c == brute_force(positions, np.zeros((3, 3)), False, 3.0)


def test_self_images_in_tiny_cell():
    # one atom in a 1 A cubic cell: its images within 2.5 A are its neighbours
    nl = symprobe.neighbor_list([[0.2, 0.3, 0.4]], np.eye(3), True, 2.5)
    shifts = {tuple(s) for s in nl.shifts}
    expected = {s for s in itertools.product(range(-2, 3), repeat=3)
                if 0 < np.linalg.norm(s) < 2.5}
    assert shifts == expected
    assert np.all(nl.centers == 0) and np.all(nl.neighbors == 0)


def test_large_water_box_matches_ase(water_190):
    atoms = water_190[0].repeat((2, 2, 2))  # 1536 atoms, ~25 A box
    nl = symprobe.neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 5.0, threads=2)
    i, j, S = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell.array, atoms.positions, 5.0,
                                      self_interaction=False)
    assert len(nl.centers) == len(i)
    assert as_set(nl) == {(int(a), int(b), tuple(int(x) for x in s)) for a, b, s in zip(i, j, S)}
    check_vectors(nl, atoms.positions, atoms.cell.array)


def test_threads_give_identical_lists():
    rng = np.random.default_rng(1)
    cell = random_cell(rng, 20.0, 0.2)
    positions = rng.uniform(0, 1, (3000, 3)) @ cell
    one = symprobe.neighbor_list(positions, cell, True, 3.0, threads=1)
    two = symprobe.neighbor_list(positions, cell, True, 3.0, threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


class _TaperedPair(torch.nn.Module):
    """Pair energy 0.5 (rc - r)^2 (eV, a quarter on each directed edge): every pair inside the
    cutoff counts."""

    def forward(self, species, centers, neighbors, vectors):
        r = torch.linalg.norm(vectors, dim=1)
        energies = torch.zeros(species.shape[0], dtype=vectors.dtype)
        return energies.index_add(0, centers, 0.25 * (3.0 - r) ** 2)


@pytest.fixture(scope="module")
def tapered_pair(tmp_path_factory):
    return symprobe.export_model(_TaperedPair(), tmp_path_factory.mktemp("taper") / "pair.pt",
                                 cutoff=3.0, elements=["H", "O"], dtype=torch.float64)


def _two_atoms(distance, box=12.0):
    """Two H atoms on x at `distance` (A) in a cubic box, far from their images."""
    import ase
    return ase.Atoms("H2", positions=[[2.0, 5.0, 5.0], [2.0 + distance, 5.0, 5.0]],
                     cell=[box] * 3, pbc=True)


def _compare(skinned, fresh, atoms):
    got = skinned.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    ref = fresh.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    assert got["energy"] == pytest.approx(ref["energy"], rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(got["forces"], ref["forces"], atol=1e-12)
    return ref["energy"]


def test_verlet_list_keeps_the_skin_shell_and_rebuilds_past_half_the_skin(tapered_pair):
    """skin 0.6 A, cutoff 3 A. A pair 3.51 A apart (inside cutoff + skin) that approaches by
    0.54 A (each atom 0.27 A, below skin/2: no rebuild) must come from the skin shell; a pair
    3.66 A apart (beyond cutoff + skin) that approaches by 0.72 A (each atom 0.36 A, past
    skin/2) must trigger a rebuild. Both end inside the cutoff with non-zero energy."""
    fresh = symprobe.load_model(tapered_pair)
    for start, step in ((3.51, 0.27), (3.66, 0.36)):
        skinned = symprobe.load_model(tapered_pair, skin=0.6)
        atoms = _two_atoms(start)
        assert _compare(skinned, fresh, atoms) == 0.0
        atoms.positions[0, 0] += step
        atoms.positions[1, 0] -= step
        assert _compare(skinned, fresh, atoms) > 1e-4  # the pair is inside the cutoff


def test_verlet_list_rebuilds_when_the_cell_changes(tapered_pair):
    """Atoms that do not move, a box that shrinks: the periodic image of the pair comes from
    3.72 A (beyond cutoff + skin) to 2.92 A, inside the cutoff; only the cell change can
    trigger the rebuild that finds it."""
    skinned = symprobe.load_model(tapered_pair, skin=0.6)
    fresh = symprobe.load_model(tapered_pair)
    atoms = _two_atoms(8.28, box=12.0)  # image distance 12 - 8.28 = 3.72 A
    assert _compare(skinned, fresh, atoms) == 0.0
    atoms.set_cell([11.2] * 3, scale_atoms=False)  # image distance 2.92 A
    assert _compare(skinned, fresh, atoms) > 1e-4


def test_bad_neighbor_inputs():
    with pytest.raises(ValueError, match="cutoff"):
        symprobe.neighbor_list(np.zeros((2, 3)), np.eye(3), True, -1.0)
    with pytest.raises(ValueError, match="positions must have shape"):
        symprobe.neighbor_list(np.zeros((2, 2)), np.eye(3), True, 1.0)
    with pytest.raises(ValueError, match="singular"):
        symprobe.neighbor_list(np.zeros((2, 3)), [[1, 0, 0], [2, 0, 0], [0, 0, 1]], True, 1.0)
    with pytest.raises(ValueError, match="not finite"):
        symprobe.neighbor_list([[0, 0, np.nan]], np.eye(3), True, 1.0)
    assert _runtime.atomic_number("O") == 8 and _runtime.element_symbol(1) == "H"
