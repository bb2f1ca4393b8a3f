"""Structural checks used by the MD stability benchmark: intact molecules and g(r)."""
import numpy as np
import pytest
from ase import Atoms

from symprobe.water.analysis import broken_water_molecules, first_peak, radial_distribution
from symprobe.water import water_box


def test_intact_box_has_no_problems():
    assert broken_water_molecules(water_box(27, seed=3)) == []


def test_a_detached_hydrogen_is_named():
    atoms = water_box(27, seed=3)
    # atoms are ordered O, H, H: pull H 4 out of its molecule (O 3) by 1 A along the bond
    bond = atoms.positions[4] - atoms.positions[3]
    atoms.positions[4] += bond / np.linalg.norm(bond)
    problems = broken_water_molecules(atoms)
    assert any(p.startswith("O 3 has 1 H") for p in problems), problems
    assert any(p.startswith("H 4 has 0 O") for p in problems), problems


def test_only_water_elements():
    with pytest.raises(ValueError, match="Z=\\[6\\]"):
        broken_water_molecules(Atoms("CH4", positions=np.eye(5, 3), cell=np.eye(3) * 10, pbc=True))


def test_ideal_gas_gives_g_equal_one():
    rng = np.random.default_rng(0)
    frames = [Atoms(f"O{1000}", positions=rng.uniform(0, 20, (1000, 3)), cell=np.eye(3) * 20,
                    pbc=True) for _ in range(5)]
    r, g = radial_distribution(frames, 8, 8, 8.0, n_bins=16)
    # 5000 centres x ~ (4 pi r^2 dr rho) pairs per bin: statistical error ~1 % beyond 3 A
    assert np.allclose(g[r > 3], 1.0, atol=0.05), g


def test_radial_distribution_rejects_too_long_range():
    with pytest.raises(ValueError, match="half the smallest box width"):
        radial_distribution([water_box(8)], 8, 8, 5.0)


def test_first_peak_of_a_gaussian():
    r = np.arange(0.0, 6.0, 0.05) + 0.025
    g = 1 + 2 * np.exp(-0.5 * ((r - 2.83) / 0.12) ** 2)
    position, height = first_peak(r, g)
    assert abs(position - 2.83) < 0.01 and abs(height - 3.0) < 0.05


def test_dft_water_first_peak(water_190):
    r, g = radial_distribution(water_190, 8, 8, 4.5, n_bins=90)
    position, _ = first_peak(r, g)
    assert 2.7 < position < 2.9  # liquid water, O-O first shell
