"""The core's metatomic backend against metatomic's own ASE calculator (metatomic-ase): metatrain's
PET and a hand-written pair model, periodic, triclinic, small cells and clusters, full and half
neighbour lists, declared units, rotations, batches, and the errors of the backend."""
import zipfile

import numpy as np
import pytest

import symprobe
from symprobe.water import water_box

pytest.importorskip("metatomic.torch")
pytest.importorskip("metatomic_ase")
from conftest import strain_derivative  # noqa: E402
from metatomic_models import metatrain_pet, pair_model  # noqa: E402


@pytest.fixture(scope="module")
def pet64(tmp_path_factory):
    pytest.importorskip("metatrain")
    return metatrain_pet(tmp_path_factory.mktemp("pet") / "pet64.pt")


@pytest.fixture(scope="module")
def pet32(tmp_path_factory):
    pytest.importorskip("metatrain")
    import torch
    return metatrain_pet(tmp_path_factory.mktemp("pet") / "pet32.pt", dtype=torch.float32)


def metatomic_ase(path, atoms):
    """Energy (eV), forces (eV/A) and stress (eV/A^3, if periodic) from metatomic's calculator."""
    from metatomic_ase import MetatomicCalculator
    atoms = atoms.copy()
    atoms.calc = MetatomicCalculator(path)
    stress = atoms.get_stress(voigt=False) if atoms.pbc.all() else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress


def structure(kind):
    if kind == "cubic":
        return water_box(16, seed=1)
    if kind == "triclinic":
        atoms = water_box(16, seed=2)
        atoms.set_cell(atoms.cell.array @ np.array([[1, 0, 0], [0.15, 1, 0], [-0.1, 0.2, 1]]),
                       scale_atoms=True)
        return atoms
    if kind == "small":  # 2 molecules in a 3.9 A box: cutoff 3.5 A > half the box
        return water_box(2, seed=3)
    atoms = water_box(8, seed=4)  # a cluster: no cell at all
    atoms.pbc = False
    atoms.cell = None
    return atoms


def core(model, atoms, **kwargs):
    cell = atoms.cell.array if atoms.cell.rank else None
    return model.compute(atoms.positions, atoms.numbers, cell, atoms.pbc, **kwargs)


def test_recognised_from_the_file(pet64):
    model = symprobe.load_model(pet64)
    assert model.kind == "metatomic" and symprobe.load_model("water-reference").kind == "symprobe"
    assert (model.cutoff, model.interaction_range, model.elements, model.dtype) == (3.5, 7.0, ["H", "O"], "float64")
    assert "arxiv.org/abs/2305.19302" in model.metadata_json


@pytest.mark.parametrize("kind", ["cubic", "triclinic", "small", "cluster"])
def test_pet_equals_metatomic_ase(pet64, kind):
    atoms = structure(kind)
    result = core(symprobe.load_model(pet64), atoms)
    energy, forces, stress = metatomic_ase(pet64, atoms)
    assert abs(energy) > 0.1 and np.abs(forces).max() > 0.05  # a non-trivial function
    assert result["energy"] == pytest.approx(energy, abs=1e-12 * len(atoms))
    np.testing.assert_allclose(result["forces"], forces, atol=1e-12)
    if stress is not None:
        sigma = -result["virial"] / atoms.get_volume()
        np.testing.assert_allclose(0.5 * (sigma + sigma.T), stress, atol=1e-13)
        # all nine components: the model is not rotation-invariant, and neither is its virial
        assert np.abs(sigma - sigma.T).max() > 1e-6


def test_float32_pet_within_float32_rounding(pet32):
    """metatomic-ase sums the energy in float32; the core sums per-atom energies in float64, so
    the energies differ by float32 rounding of the total (~1e-7 relative), forces by less."""
    atoms = water_box(64, seed=5)
    result = core(symprobe.load_model(pet32), atoms)
    energy, forces, stress = metatomic_ase(pet32, atoms)
    assert result["energy"] == pytest.approx(energy, rel=5e-6)
    np.testing.assert_allclose(result["forces"], forces, atol=2e-5)
    sigma = -result["virial"] / atoms.get_volume()
    np.testing.assert_allclose(0.5 * (sigma + sigma.T), stress, atol=1e-7)


@pytest.mark.parametrize("options", [
    dict(full_list=True), dict(full_list=False),
    dict(full_list=False, length_unit="nm", energy_unit="kcal/mol")])
def test_pair_model_lists_and_units(tmp_path, options):
    """A model reading the vectors of the list it asked for: a half list holds each pair once,
    in the direction metatomic's engines give it (its energy is odd in the pair vector), and
    declared units are converted (the model works in nm and kcal/mol inside)."""
    path = pair_model(tmp_path / "pair.pt", **options)
    for kind in ("triclinic", "small", "cluster"):
        atoms = structure(kind)
        result = core(symprobe.load_model(path), atoms)
        energy, forces, stress = metatomic_ase(path, atoms)
        assert result["energy"] == pytest.approx(energy, abs=1e-11)
        np.testing.assert_allclose(result["forces"], forces, atol=1e-11)
        if stress is not None:
            sigma = -result["virial"] / atoms.get_volume()
            np.testing.assert_allclose(0.5 * (sigma + sigma.T), stress, atol=1e-12)


def test_forces_and_virial_are_derivatives(tmp_path, pet64):
    """Forces by finite differences of the energy, the virial by finite strain, all nine
    components, through the positions, the cell and the vectors of the list alike."""
    for path in (pet64, pair_model(tmp_path / "pair.pt", full_list=False)):
        model = symprobe.load_model(path)
        atoms = structure("triclinic")
        result = core(model, atoms)
        h = 1e-5
        for i, c in ((0, 0), (5, 2), (17, 1)):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            fd = -(core(model, plus)["energy"] - core(model, minus)["energy"]) / (2 * h)
            assert result["forces"][i, c] == pytest.approx(fd, abs=1e-7)
        # strain_derivative strains x -> x (1 + eps)^T: W = -(its result)^T
        w_fd = -strain_derivative(lambda x, cell: core(model, structure_at(atoms, x, cell))["energy"],
                                  atoms.positions, atoms.cell.array, h=h).T
        np.testing.assert_allclose(result["virial"], w_fd, atol=1e-7)


def structure_at(atoms, positions, cell):
    out = atoms.copy()
    out.set_cell(cell, scale_atoms=False)
    out.positions = positions
    return out


def test_grid_average_equals_metatomic_ase_on_rotated_copies(pet64):
    """Grid 2 + inversion, rotated copies as several systems per forward call, equals the
    weighted average of metatomic-ase on each rotated structure (forces rotated back); the
    rotation energies are those of the copies, and the plain model breaks the symmetry."""
    atoms = structure("triclinic")
    model = symprobe.load_model(pet64, rotations="grid 2", inversion=True)
    result = core(model, atoms)
    matrices, weights = symprobe.rotation_set("grid 2", inversion=True)
    weights = weights / weights.sum()
    energies, forces = [], np.zeros_like(atoms.positions)
    for R, w in zip(matrices, weights):
        rotated = atoms.copy()
        rotated.set_cell(atoms.cell.array @ R.T, scale_atoms=False)
        rotated.positions = atoms.positions @ R.T
        e, f, _ = metatomic_ase(pet64, rotated)
        energies.append(e)
        forces += w * f @ R
    np.testing.assert_allclose(result["rotation_energies"], energies, atol=1e-11)
    assert result["energy"] == pytest.approx(np.dot(weights, energies), abs=1e-11)
    np.testing.assert_allclose(result["forces"], forces, atol=1e-11)
    assert result["energy_spread"] == pytest.approx(np.ptp(energies), abs=1e-11)
    assert result["energy_spread"] > 1e-3
    plain = core(symprobe.load_model(pet64), atoms)
    assert np.linalg.norm(plain["net_torque"]) > 1e-4


def test_batch_equals_separate_evaluations(pet64):
    structures = [structure("cubic"), structure("triclinic"), water_box(16, seed=9)]
    model = symprobe.load_model(pet64, rotations="random", seed=3, batch=3)
    batch = model.compute_batch([a.positions for a in structures], structures[0].numbers,
                                [a.cell.array for a in structures], True, step=4)
    for atoms, result in zip(structures, batch):
        alone = core(model, atoms, step=4)
        assert result["energy"] == pytest.approx(alone["energy"], abs=1e-11)
        np.testing.assert_allclose(result["forces"], alone["forces"], atol=1e-11)
        np.testing.assert_allclose(result["virial"], alone["virial"], atol=1e-10)


def test_ase_calculator_and_energy_conservation(pet64):
    """symprobe's ASE calculator with the metatomic model: NVE conserves the total energy."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    atoms = structure("cubic")
    atoms.calc = symprobe.Calculator(pet64)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    total = []
    dyn = VelocityVerlet(atoms, 0.25 * units.fs)
    dyn.attach(lambda: total.append(atoms.get_total_energy()), interval=10)
    dyn.run(200)
    kinetic = 1.5 * len(atoms) * units.kB * 300
    assert np.ptp(total) < 2e-3 * kinetic, np.ptp(total)


def test_ipi_pes_with_a_metatomic_model(tmp_path, pet64):
    """The i-PI driver's evaluator takes the metatomic model like any other (atomic units)."""
    import ase.io
    from symprobe import ipi_pes
    from symprobe.units import BOHR_A, HARTREE_EV
    atoms = structure("triclinic")
    ase.io.write(tmp_path / "init.xyz", atoms, format="extxyz")
    pes = ipi_pes.Symprobe_driver(structure=str(tmp_path / "init.xyz"), model=pet64)
    energy, forces, virial, _ = pes(atoms.cell.array.T / BOHR_A, atoms.positions / BOHR_A)
    direct = core(symprobe.load_model(pet64), atoms)
    assert energy * HARTREE_EV == pytest.approx(direct["energy"], abs=1e-10)
    np.testing.assert_allclose(virial * HARTREE_EV, direct["virial"], atol=1e-10)


@pytest.fixture(scope="module")
def pet_direct(tmp_path_factory):
    pytest.importorskip("metatrain")
    return metatrain_pet(tmp_path_factory.mktemp("pet") / "direct.pt", direct=True)


def test_direct_forces_equal_metatomic_ase_and_rotate_back(pet_direct):
    """forces direct: the model's own forces and stress, as metatomic-ase's non_conservative=True
    gives them (net force removed); under grid 2 + inversion each copy's forces (F R) and stress
    (R^T sigma R) rotated back and averaged with the weights."""
    from metatomic_ase import MetatomicCalculator
    atoms = structure("triclinic")
    result = core(symprobe.load_model(pet_direct, forces="direct"), atoms)
    reference = atoms.copy()
    reference.calc = MetatomicCalculator(pet_direct, non_conservative=True)
    assert result["energy"] == pytest.approx(reference.get_potential_energy(), abs=1e-11)
    np.testing.assert_allclose(result["forces"], reference.get_forces(), atol=1e-12)
    np.testing.assert_allclose(-result["virial"] / atoms.get_volume(),
                               reference.get_stress(voigt=False), atol=1e-13)
    assert np.abs(result["net_force"]).max() > 1e-3  # the raw outputs' net force, removed
    np.testing.assert_allclose(result["forces"].sum(axis=0), 0.0, atol=1e-10)
    # the conservative forces of the same model are another thing
    assert np.abs(core(symprobe.load_model(pet_direct), atoms)["forces"] - result["forces"]).max() > 1e-3

    averaged = core(symprobe.load_model(pet_direct, forces="direct", rotations="grid 2", inversion=True), atoms)
    matrices, weights = symprobe.rotation_set("grid 2", inversion=True)
    weights = weights / weights.sum()
    energy, forces, stress = 0.0, np.zeros_like(atoms.positions), np.zeros((3, 3))
    for R, w in zip(matrices, weights):
        rotated = atoms.copy()
        rotated.set_cell(atoms.cell.array @ R.T, scale_atoms=False)
        rotated.positions = atoms.positions @ R.T
        rotated.calc = MetatomicCalculator(pet_direct, non_conservative=True)
        energy += w * rotated.get_potential_energy()
        forces += w * rotated.get_forces() @ R
        stress += w * R.T @ rotated.get_stress(voigt=False) @ R
    assert averaged["energy"] == pytest.approx(energy, abs=1e-11)
    np.testing.assert_allclose(averaged["forces"], forces - forces.mean(axis=0), atol=1e-11)
    np.testing.assert_allclose(-averaged["virial"] / atoms.get_volume(), stress, atol=1e-12)


def test_direct_forces_refusals(tmp_path, pet64, pet_direct):
    with pytest.raises(ValueError, match="forces direct: the symprobe-contract model .* predicts only an energy"):
        symprobe.load_model("water-reference", forces="direct")
    with pytest.raises(ValueError, match="forces direct: the metatomic model .* has no non_conservative_force output"):
        symprobe.load_model(pet64, forces="direct")
    with pytest.raises(ValueError, match="forces must be conservative or direct, got 'exact'"):
        symprobe.load_model(pet_direct, forces="exact")
    atoms = structure("cubic")
    with pytest.raises(ValueError, match="forces_rms_spread .* not available with forces direct"):
        core(symprobe.load_model(pet_direct, forces="direct", rotations="grid 2"), atoms,
             forces_rms_spread=True)


# --- errors ---------------------------------------------------------------------------------

def test_unsupported_element_names_the_atom(pet64):
    atoms = structure("cubic")
    numbers = atoms.numbers.copy()
    numbers[5] = 6
    with pytest.raises(ValueError, match=r"atom 5 is element C \(Z=6\), which the model .* does not support \(elements: H O\)"):
        symprobe.load_model(pet64).compute(atoms.positions, numbers, atoms.cell.array, True)


def test_model_without_energy_output(tmp_path):
    path = pair_model(tmp_path / "features.pt", output="features")
    with pytest.raises(symprobe.InvalidModelError, match="has no 'energy' output \\(outputs: .*features\\)"):
        symprobe.load_model(path)


def test_types_that_are_not_atomic_numbers(tmp_path):
    path = pair_model(tmp_path / "types.pt", types=(1, 200))
    with pytest.raises(symprobe.InvalidModelError, match="atomic type 200 is not an atomic number"):
        symprobe.load_model(path)


def test_atoms_without_neighbours(pet64):
    """Two atoms beyond the cutoff (no pair in any list) and one lone molecule: energies of
    isolated atoms, zero forces on them, under rotations as well."""
    positions = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.96, 9.0, 0.0],
                          [-0.24, 9.93, 0.0]])
    numbers = np.array([8, 1, 8, 1, 1])
    for options in ({}, {"rotations": "grid 2", "inversion": True}):
        result = symprobe.load_model(pet64, **options).compute(positions, numbers, None, False,
                                                               energies=True)
        np.testing.assert_allclose(result["forces"][:2], 0.0, atol=1e-12)
        assert np.abs(result["forces"][2:]).max() > 1e-3
        assert result["energy"] == pytest.approx(result["energies"].sum(), abs=1e-10)
    import ase
    energy, _, _ = metatomic_ase(pet64, ase.Atoms(numbers=numbers, positions=positions))
    plain = symprobe.load_model(pet64).compute(positions, numbers, None, False)
    assert plain["energy"] == pytest.approx(energy, abs=1e-12)


def test_device_the_model_does_not_support(tmp_path):
    path = pair_model(tmp_path / "cuda-only.pt", devices=("cuda",))
    with pytest.raises(ValueError, match="does not support device 'cpu' \\(supported: cuda\\)"):
        symprobe.load_model(path)


def test_archive_of_a_newer_metatomic(tmp_path, pet64):
    """A file written by a newer metatomic-torch than the installed one is named, with the
    versions, before anything runs."""
    newer = tmp_path / "newer.pt"
    with zipfile.ZipFile(pet64) as source, zipfile.ZipFile(newer, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("extra/metatomic-version"):
                data = b"0.9.0"
            target.writestr(item, data)
    import metatomic.torch
    with pytest.raises(symprobe.InvalidModelError, match="newer.pt' was written by metatomic-torch 0.9.0, "
                       f"newer than the installed {metatomic.torch.__version__}"):
        symprobe.load_model(newer)


def test_options_and_requests_the_backend_refuses(pet64):
    with pytest.raises(ValueError, match="option atoms: evaluating in pieces is available for symprobe-contract models only"):
        symprobe.load_model(pet64, atoms=100)
    model = symprobe.load_model(pet64)
    atoms = structure("cubic")
    with pytest.raises(ValueError, match="per-atom virials are not available for the metatomic model"):
        core(model, atoms, atomic_virials=True)
    nl = symprobe.neighbor_list(atoms.positions, atoms.cell.array, True, model.cutoff)
    with pytest.raises(ValueError, match="takes positions, a cell and neighbour lists with integer cell shifts"):
        model.compute_graph(atoms.numbers, nl.centers, nl.neighbors, nl.vectors)
