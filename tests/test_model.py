"""Evaluator physics: forces by finite differences, virial by finite strain, invariances,
float32 models, graphs evaluated together."""
import os

import numpy as np
import pytest
import torch

import symprobe
from symprobe.water import water_box

from conftest import contract_graph, fd_force, random_rotation, strain_derivative


def compute(model, atoms_or_pos, numbers=None, cell=None, pbc=True, **kw):
    if numbers is None:
        a = atoms_or_pos
        return model.compute(a.positions, a.numbers, a.cell.array, a.pbc, **kw)
    return model.compute(atoms_or_pos, numbers, cell, pbc, **kw)


def energy_of(model, atoms):
    return lambda pos, cell: compute(model, pos, atoms.numbers, cell, atoms.pbc, forces=False)["energy"]


def fd_force_of(model, atoms, i, c):
    return fd_force(energy_of(model, atoms), atoms.positions, atoms.cell.array, i, c)


def strain_derivative_of(model, atoms):
    return strain_derivative(energy_of(model, atoms), atoms.positions, atoms.cell.array)


def test_forces_and_virial_on_dft_frames(water_190, invariant_model, orientation_model):
    """All 190 revPBE0-D3 frames: 6 random force components by central differences and the
    full 3x3 virial by finite strain, for the invariant and the non-invariant model."""
    rng = np.random.default_rng(0)
    worst_f = worst_w = 0.0
    for k, atoms in enumerate(water_190):
        model = invariant_model if k % 2 == 0 else orientation_model
        res = compute(model, atoms)
        for i in rng.choice(len(atoms), 2, replace=False):
            for c in range(3):
                err = abs(fd_force_of(model, atoms, i, c) - res["forces"][i, c])
                worst_f = max(worst_f, err)
        # dE/d eps_ab = -W_ba (all nine components, also for the non-symmetric virial)
        worst_w = max(worst_w, np.abs(strain_derivative_of(model, atoms) + res["virial"].T).max())
    print(f"max |F - F_fd| = {worst_f:.2e} eV/A, max |dE/deps + W^T| = {worst_w:.2e} eV")
    assert worst_f < 1e-6
    assert worst_w < 1e-5


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
def test_forces_and_virial_on_generated_triclinic_boxes(orientation_model, pbc):
    atoms = water_box(27, seed=2)
    shear = np.array([[1.0, 0.0, 0.0], [0.25, 1.0, 0.0], [-0.15, 0.2, 1.0]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    atoms.pbc = pbc
    atoms.positions += 3.0  # partly outside the cell
    res = compute(orientation_model, atoms)
    for i in range(0, len(atoms), 9):
        for c in range(3):
            assert fd_force_of(orientation_model, atoms, i, c) == pytest.approx(res["forces"][i, c], abs=1e-6)
    if all(pbc):
        np.testing.assert_allclose(strain_derivative_of(orientation_model, atoms), -res["virial"].T, atol=1e-5)
    # net force vanishes (translation invariance), for any periodicity
    np.testing.assert_allclose(res["forces"].sum(axis=0), 0.0, atol=1e-9)


def test_translation_and_permutation_invariance(invariant_model, orientation_model):
    atoms = water_box(64, seed=5)
    for model in (invariant_model, orientation_model):
        ref = compute(model, atoms, energies=True)
        moved = compute(model, atoms.positions + [1.3, -7.2, 25.1], atoms.numbers,
                        atoms.cell.array, True, energies=True)
        assert moved["energy"] == pytest.approx(ref["energy"], rel=1e-12)
        np.testing.assert_allclose(moved["forces"], ref["forces"], atol=1e-10)
        perm = np.random.default_rng(1).permutation(len(atoms))
        shuffled = compute(model, atoms.positions[perm], atoms.numbers[perm], atoms.cell.array,
                           True, energies=True)
        assert shuffled["energy"] == pytest.approx(ref["energy"], rel=1e-12)
        np.testing.assert_allclose(shuffled["forces"], ref["forces"][perm], atol=1e-10)
        np.testing.assert_allclose(shuffled["energies"], ref["energies"][perm], atol=1e-12)
        assert ref["energies"].sum() == pytest.approx(ref["energy"], rel=1e-12)


def test_rotation_invariance_of_reference_and_breaking_of_orientation_model(
        invariant_model, orientation_model):
    atoms = water_box(64, seed=6)
    rng = np.random.default_rng(7)
    spreads = []
    for _ in range(5):
        R = random_rotation(rng)
        pos, cell = atoms.positions @ R.T, atoms.cell.array @ R.T
        ref = compute(invariant_model, atoms)
        rot = compute(invariant_model, pos, atoms.numbers, cell, True)
        assert abs(rot["energy"] - ref["energy"]) < 1e-10 * abs(ref["energy"]) + 1e-12
        np.testing.assert_allclose(rot["forces"], ref["forces"] @ R.T, atol=1e-10)
        np.testing.assert_allclose(rot["virial"], R @ ref["virial"] @ R.T, atol=1e-10)
        e0 = compute(orientation_model, atoms)["energy"]
        spreads.append(abs(compute(orientation_model, pos, atoms.numbers, cell, True)["energy"] - e0))
    # 64 molecules x O(1 eV) orientation term: rotating the box changes the energy by ~eV
    assert min(spreads) > 1e-2


def test_orientation_term_matches_its_formula(invariant_model, orientation_model):
    """Model 2 - model 1 = 0.02 Ha sum_molecules [exp(u_x) + exp(u_y / 2) + exp(2 u_z)]."""
    from symprobe.units import HARTREE_EV
    atoms = water_box(8, seed=3)
    diff = compute(orientation_model, atoms)["energy"] - compute(invariant_model, atoms)["energy"]
    x = atoms.positions.reshape(-1, 3, 3)
    u = 0.5 * (x[:, 1] + x[:, 2]) - x[:, 0]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    expected = 0.02 * HARTREE_EV * np.sum(np.exp(u[:, 0]) + np.exp(0.5 * u[:, 1]) + np.exp(2 * u[:, 2]))
    assert diff == pytest.approx(expected, rel=1e-12)


def test_float32_model_agrees_with_float64(reference_path):
    m64 = symprobe.load_model(reference_path("water-orientation", torch.float64))
    m32 = symprobe.load_model(reference_path("water-orientation", torch.float32))
    assert m32.dtype == "float32" and m64.dtype == "float64"
    atoms = water_box(64, seed=8)
    a, b = compute(m64, atoms), compute(m32, atoms)
    # float32 rounding (eps 6e-8) accumulated over ~50 edges per atom: a few tens of eps of the
    # largest force and virial component (observed 6.5e-7 and 5.3e-7); per-atom energies are
    # summed in float64, so the total keeps ~1e-10 (observed 1.5e-10)
    assert b["energy"] == pytest.approx(a["energy"], rel=1e-8)
    np.testing.assert_allclose(b["forces"], a["forces"], rtol=0, atol=5e-6 * np.abs(a["forces"]).max())
    np.testing.assert_allclose(b["virial"], a["virial"], rtol=0, atol=5e-6 * np.abs(a["virial"]).max())
    assert not np.array_equal(b["forces"], a["forces"]), "float32 path really ran in float32"


def test_several_graphs_in_one_call(orientation_model):
    """The contract: disjoint graphs concatenated in one call give the separate results."""
    systems = [water_box(8, seed=s) for s in (1, 2, 3)]
    numbers, centers, neighbors, vectors = [], [], [], []
    offset, separate = 0, []
    for atoms in systems:
        nl = symprobe.neighbor_list(atoms.positions, atoms.cell.array, True,
                                    orientation_model.cutoff)
        numbers.append(atoms.numbers)
        centers.append(nl.centers + offset)
        neighbors.append(nl.neighbors + offset)
        vectors.append(nl.vectors)
        offset += len(atoms)
        separate.append(orientation_model.compute_graph(atoms.numbers, nl.centers, nl.neighbors,
                                                        nl.vectors))
        direct = compute(orientation_model, atoms)
        assert separate[-1]["energy"] == pytest.approx(direct["energy"], rel=1e-13)
    batch = orientation_model.compute_graph(np.concatenate(numbers), np.concatenate(centers),
                                            np.concatenate(neighbors), np.concatenate(vectors))
    assert batch["energy"] == pytest.approx(sum(s["energy"] for s in separate), rel=1e-13)
    np.testing.assert_allclose(batch["forces"], np.concatenate([s["forces"] for s in separate]),
                               atol=1e-12)


def test_energy_subset_and_atomic_virials(orientation_model):
    """n_energy_nodes restricts the energy sum (LAMMPS ghosts); atomic virials sum to the
    virial."""
    atoms = water_box(27, seed=9)
    res = compute(orientation_model, atoms, energies=True, atomic_virials=True)
    np.testing.assert_allclose(res["atomic_virials"].sum(axis=0), res["virial"], atol=1e-10)
    nl = symprobe.neighbor_list(atoms.positions, atoms.cell.array, True, orientation_model.cutoff)
    half = len(atoms) // 2
    part = orientation_model.compute_graph(atoms.numbers, nl.centers, nl.neighbors, nl.vectors,
                                           n_energy_nodes=half, energies=True)
    assert part["energy"] == pytest.approx(res["energies"][:half].sum(), rel=1e-12)


def test_polynomial_orientation_variant(reference_path, orientation_model, invariant_model):
    """The degree-d Taylor variant converges to the exponential model; degree 0 is a constant
    per molecule, so it is exactly rotation-invariant."""
    atoms = water_box(8, seed=12)
    e_exp = compute(orientation_model, atoms)["energy"]
    e_inv = compute(invariant_model, atoms)["energy"]
    errors = []
    for d in (0, 2, 4, 16):
        model = symprobe.load_model(reference_path(f"water-orientation-poly{d}"))
        errors.append(abs(compute(model, atoms)["energy"] - e_exp))
        if d == 0:
            from symprobe.water.reference import ORIENTATION_STRENGTH
            assert compute(model, atoms)["energy"] - e_inv == pytest.approx(
                8 * 3 * ORIENTATION_STRENGTH, rel=1e-12)
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 1e-9


def test_core_evaluates_like_eager_and_restores_the_torchscript_setting(orientation_model):
    """The core runs models with TorchScript's graph optimiser off (docs/performance.md): the
    caller's setting is restored after every call, and forces equal plain autograd of the same
    TorchScript module."""
    atoms = water_box(8, seed=3)
    module = torch.jit.load(orientation_model.path)
    species, centers, neighbors, vectors = contract_graph(atoms, orientation_model.cutoff)
    vectors.requires_grad_(True)
    energy = module(species, centers, neighbors, vectors).sum()
    grad, = torch.autograd.grad(energy, vectors)
    # the contract's force formula (docs/model-contract.md)
    forces = torch.zeros(len(atoms), 3, dtype=grad.dtype).index_add(0, centers, grad)
    forces = forces.index_add(0, neighbors, -grad).numpy()
    for flag in (True, False):
        with torch.jit.optimized_execution(flag):
            out = orientation_model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
            assert torch._C._get_graph_executor_optimize() == flag
        assert out["energy"] == pytest.approx(float(energy), rel=1e-12)
        np.testing.assert_allclose(out["forces"], forces, rtol=1e-10, atol=1e-10)


def deep_pet_file(path, layered):
    """An untrained 3-layer PET in float64 (interaction range 3 x cutoff), non-zero heads;
    `layered`: exported with its layers (methods embed and layer)."""
    from symprobe.training.pet import PET
    torch.manual_seed(3)
    module = PET([1, 8], cutoff=3.0, cutoff_width=0.5, d_model=16, n_heads=2, d_ff=32, n_layers=3)
    with torch.no_grad():
        for layer in module.layers:
            for head in (layer.atom_energy, layer.bond_energy):
                head[-1].weight.normal_(0, 0.3)
    return symprobe.export_model(module, path, cutoff=3.0, interaction_range=module.interaction_range,
                                 elements=["H", "O"], dtype=torch.float64,
                                 **(dict(layers=3, features=16) if layered else {}))


@pytest.fixture(scope="module")
def deep_pet(tmp_path_factory):
    return deep_pet_file(tmp_path_factory.mktemp("deep") / "pet3.pt", layered=False)


@pytest.fixture(scope="module")
def layered_pet(tmp_path_factory):
    return deep_pet_file(tmp_path_factory.mktemp("deep") / "pet3-layers.pt", layered=True)


@pytest.mark.parametrize("layered", [False, True])
@pytest.mark.parametrize("options,triclinic", [({}, False), ({}, True),
                                               (dict(rotations="grid 1", inversion=True), False),
                                               (dict(rotations="random", seed=5), True)])
def test_pieces_give_the_whole_system(request, layered, options, triclinic):
    """The option `atoms`: a system larger than N is evaluated in pieces of at most N atoms. A
    model without layers evaluates each piece with the atoms its energies depend on (2 hops of
    full neighbourhoods for 3 layers); a layered model runs each layer piece by piece and
    evaluates a piece's layer again in the backward pass. Energies, forces, virial, per-atom
    quantities and rotation energies equal one call on the whole system, by positions (boxes)
    and by the graph alone; the random stream advances once per evaluation, not once per piece."""
    deep_pet = request.getfixturevalue("layered_pet" if layered else "deep_pet")
    atoms = water_box(64, seed=12)
    if triclinic:
        shear = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [-0.2, 0.25, 1.0]])
        atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    atoms.positions += 7.0  # unwrapped positions: pieces are boxes of the wrapped ones
    whole_model = symprobe.load_model(deep_pet, **options)
    whole = compute(whole_model, atoms, energies=True, atomic_virials=True)
    model = symprobe.load_model(deep_pet, atoms=50, **options)
    pieces = compute(model, atoms, energies=True, atomic_virials=True)
    nl = symprobe.neighbor_list(atoms.positions, atoms.cell.array, True, model.cutoff)
    graph_model = symprobe.load_model(deep_pet, atoms=50, **options)
    graph = graph_model.compute_graph(atoms.numbers, nl.centers, nl.neighbors, nl.vectors,
                                      energies=True, atomic_virials=True)
    assert model.rotation_step == graph_model.rotation_step == whole_model.rotation_step
    for result in (pieces, graph):
        assert result["energy"] == pytest.approx(whole["energy"], rel=1e-13)
        for key in ("forces", "virial", "energies", "atomic_virials", "rotation_energies"):
            np.testing.assert_allclose(result[key], whole[key], rtol=1e-10, atol=1e-11, err_msg=key)
        assert result["energy_spread"] == pytest.approx(whole["energy_spread"], abs=1e-10)
    np.testing.assert_allclose(pieces["net_torque"], whole["net_torque"], atol=1e-10)


def test_layered_pieces_keep_the_force_spread(layered_pet):
    """A layered model in pieces still has every copy's forces: the force spread is that of the
    whole system."""
    atoms = water_box(27, seed=1)
    whole = compute(symprobe.load_model(layered_pet, rotations="grid 1", inversion=True), atoms, forces_rms_spread=True)
    pieces = compute(symprobe.load_model(layered_pet, atoms=20, rotations="grid 1", inversion=True), atoms,
                     forces_rms_spread=True)
    assert whole["forces_rms_spread"] > 1e-3
    assert pieces["forces_rms_spread"] == pytest.approx(whole["forces_rms_spread"], rel=1e-10)


def test_pieces_refuse_the_force_spread(deep_pet):
    atoms = water_box(27, seed=1)
    model = symprobe.load_model(deep_pet, atoms=20, rotations="grid 1")
    with pytest.raises(ValueError, match="forces_rms_spread needs the whole system in one model call; "
                                         "it is not available with the option atoms 20 below the "
                                         "system's 81 atoms"):
        compute(model, atoms, forces_rms_spread=True)


no_cpu_cache = pytest.mark.skipif(os.environ.get("SYMPROBE_NO_CPU_CACHE", "0") not in ("", "0"),
                                  reason="SYMPROBE_NO_CPU_CACHE turns the cache off")


@no_cpu_cache
def test_cpu_evaluations_reuse_large_blocks_and_return_unused_ones():
    """The core's cache of large CPU blocks: a second evaluation of the same system takes the
    blocks the first freed (fresh ones come zeroed from the system, reused ones hold the last
    evaluation's values: the results must not differ by a bit), and an evaluation that needs
    none of them returns them."""
    from symprobe.runtime import cpu_cache_stats
    small = symprobe.load_model("water-reference", threads=1)
    compute(small, water_box(4, seed=3))
    assert cpu_cache_stats()["free_bytes"] == 0  # the first evaluation below takes fresh blocks
    pet = symprobe.load_model("water-pet", threads=1)
    box = water_box(64, seed=3)
    first = compute(pet, box)
    before = cpu_cache_stats()
    assert before["free_bytes"] > 2 ** 20  # water-pet's edge tensors at 192 atoms: > 1 MB
    second = compute(pet, box)
    after = cpu_cache_stats()
    assert after["reused"] > before["reused"]
    for key in ("energy", "forces", "virial"):
        np.testing.assert_array_equal(first[key], second[key])
    compute(small, water_box(4, seed=3))
    assert cpu_cache_stats()["free_bytes"] == 0


@no_cpu_cache
def test_memory_measurement_counts_blocks_taken_from_the_cache():
    """The memory budget's bytes per edge are what a forward pass keeps alive, whether its
    blocks come from the system or from blocks an earlier evaluation left in the cache."""
    from symprobe.runtime import cpu_cache_stats
    box = water_box(64, seed=4)
    compute(symprobe.load_model("water-reference", threads=1), water_box(4, seed=3))
    assert cpu_cache_stats()["free_bytes"] == 0  # the evaluation below takes fresh blocks
    cold = symprobe.load_model("water-pet", threads=1)
    compute(cold, box)
    assert cpu_cache_stats()["free_bytes"] > 2 ** 20
    warm = symprobe.load_model("water-pet", threads=1)
    compute(warm, box)
    # 3 % apart here; without the cache's free blocks subtracted from the heap's, 25 %
    assert warm.memory_per_edge_bytes == pytest.approx(cold.memory_per_edge_bytes, rel=0.1)
