"""Rotational symmetrisation and symmetry-breaking diagnostics of the core."""
import numpy as np
import pytest
from scipy import stats

import symprobe
from symprobe.water.reference import orientation_average
from symprobe.water import water_box

from conftest import fd_force, strain_derivative

GRIDS = ["grid 1", "grid 2", "grid 3", "grid 4"]


def compute(model, atoms, **kw):
    return model.compute(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc, **kw)


@pytest.fixture(scope="module")
def box():
    atoms = water_box(8, seed=21)
    shear = np.array([[1.0, 0.0, 0.0], [0.2, 1.0, 0.0], [-0.1, 0.15, 1.0]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    return atoms


@pytest.fixture(scope="module")
def plain_energy(reference_path, box):
    return compute(symprobe.load_model(reference_path("water-reference")), box)["energy"]


@pytest.mark.parametrize("degree", [2, 4, 6])
@pytest.mark.parametrize("inversion", [False, True])
def test_polynomial_model_is_averaged_exactly_by_large_enough_grids(
        reference_path, box, plain_energy, degree, inversion):
    """A polynomial of degree d in u is averaged exactly by every grid with 2L - 2 >= d."""
    path = reference_path(f"water-orientation-poly{degree}")
    exact = plain_energy + 8 * orientation_average("poly", degree)
    for spec in GRIDS:
        L = int(spec.split()[1])
        energy = compute(symprobe.load_model(path, rotations=spec, inversion=inversion), box)["energy"]
        error = abs(energy - exact)
        if 2 * L - 2 >= degree:
            assert error < 1e-10, (spec, error)
        else:
            assert error > 1e-6, (spec, error)


def test_exponential_model_converges_to_closed_form(reference_path, box, plain_energy):
    """sphere average of exp(a u_x) = sinh(a) / a; the table is printed with -s."""
    exact = plain_energy + 8 * orientation_average("exp")
    rows = []
    for inversion in (False, True):
        errors = []
        for spec in ["grid 1", "grid 2", "grid 3", "grid 4", "grid 5"]:
            model = symprobe.load_model(reference_path("water-orientation"), rotations=spec,
                                        inversion=inversion)
            res = compute(model, box)
            errors.append(abs(res["energy"] - exact))
            rows.append(f"{spec}{'i' if inversion else ''}: G={len(res['rotation_energies'])}, "
                        f"|E - exact| = {errors[-1]:.3e} eV")
        assert all(b < a for a, b in zip(errors[1:], errors[2:])), errors
        assert errors[-1] < 1e-4
    lebedev = []
    for order in (3, 5, 7, 9, 11, 13):
        model = symprobe.load_model(reference_path("water-orientation"), rotations=f"lebedev {order}")
        lebedev.append(abs(compute(model, box)["energy"] - exact))
        rows.append(f"lebedev {order}: |E - exact| = {lebedev[-1]:.3e} eV")
    assert lebedev[-1] < 1e-3 * lebedev[0]
    print("\n" + "\n".join(rows))


@pytest.mark.parametrize("options", [
    dict(rotations="random", seed=3), dict(rotations="random", inversion=True, seed=4),
    dict(rotations="grid 2"), dict(rotations="grid 2", inversion=True),
    dict(rotations="grid 3", randomize=True, seed=5), dict(rotations="lebedev 5", inversion=True),
    dict(rotations="grid 2", inversion=True, chunk=5),
])
def test_invariant_model_is_unchanged_by_every_mode(reference_path, box, options):
    plain = compute(symprobe.load_model(reference_path("water-reference")), box, energies=True)
    model = symprobe.load_model(reference_path("water-reference"), **options)
    res = compute(model, box, energies=True, forces_rms_spread=True)
    assert res["energy"] == pytest.approx(plain["energy"], rel=1e-12, abs=1e-10)
    np.testing.assert_allclose(res["forces"], plain["forces"], atol=1e-10)
    np.testing.assert_allclose(res["virial"], plain["virial"], atol=1e-10)
    np.testing.assert_allclose(res["energies"], plain["energies"], atol=1e-10)
    assert res["energy_spread"] < 1e-10 and res["forces_rms_spread"] < 1e-9


@pytest.mark.parametrize("options", [dict(rotations="grid 2", inversion=True),
                                     dict(rotations="random", inversion=True, seed=9),
                                     dict(rotations="lebedev 3", randomize=True, seed=2)])
def test_symmetrized_forces_and_virial_are_derivatives(reference_path, options):
    atoms = water_box(4, seed=13)
    model = symprobe.load_model(reference_path("water-orientation"), **options)

    def energy(pos, cell):
        model.rotation_step = 7  # the same rotations for every displaced evaluation
        return model.compute(pos, atoms.numbers, cell, True, forces=False)["energy"]

    model.rotation_step = 7
    res = compute(model, atoms)
    for i in (0, 4, 9):
        for c in range(3):
            assert fd_force(energy, atoms.positions, atoms.cell.array, i, c) == pytest.approx(
                res["forces"][i, c], abs=1e-6)
    np.testing.assert_allclose(strain_derivative(energy, atoms.positions, atoms.cell.array),
                               -res["virial"].T, atol=1e-5)


def rotation_angle_axis(R):
    angle = np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return angle, axis / np.linalg.norm(axis)


def test_random_rotations_are_haar_and_reproducible():
    n = 4000
    samples = [symprobe.rotation_set("random", inversion=True, seed=11, step=k)[0][0]
               for k in range(n)]
    improper = np.array([np.linalg.det(R) < 0 for R in samples])
    # improper with probability 1/2 (two-sided binomial test at 1 %)
    assert stats.binomtest(int(improper.sum()), n, 0.5).pvalue > 0.01
    proper = [R if np.linalg.det(R) > 0 else -R for R in samples]
    for R in proper[:50]:
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    angles, axes = zip(*(rotation_angle_axis(R) for R in proper))
    # Haar: the rotation angle has CDF (w - sin w) / pi, the axis is uniform on the sphere;
    # Kolmogorov-Smirnov tests at 1 % significance
    assert stats.kstest(angles, lambda w: (w - np.sin(w)) / np.pi).pvalue > 0.01
    axes = np.array(axes)
    assert stats.kstest(axes[:, 2], stats.uniform(-1, 2).cdf).pvalue > 0.01
    assert stats.kstest(np.arctan2(axes[:, 1], axes[:, 0]), stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 0.01
    # a deliberately biased sample fails the same test (the test can fail)
    assert stats.kstest(np.array(angles) * 0.9, lambda w: (w - np.sin(w)) / np.pi).pvalue < 0.01
    # reproducible from (seed, k); other seeds and steps differ; no inversion -> always proper
    again = symprobe.rotation_set("random", inversion=True, seed=11, step=17)[0][0]
    np.testing.assert_array_equal(again, samples[17])
    assert not np.allclose(symprobe.rotation_set("random", inversion=True, seed=12, step=17)[0][0], again)
    assert all(np.linalg.det(symprobe.rotation_set("random", seed=11, step=k)[0][0]) > 0
               for k in range(200))


def test_random_stream_state_can_be_read_and_restored(reference_path, box):
    model = symprobe.load_model(reference_path("water-orientation"), rotations="random",
                                inversion=True, seed=42)
    assert model.rotation_step == 0
    first = [compute(model, box)["energy"] for _ in range(5)]
    assert model.rotation_step == 5
    assert len(set(first)) == 5  # a fresh rotation per evaluation
    model.rotation_step = 2  # as after read_restart
    assert compute(model, box)["energy"] == first[2]
    other = symprobe.load_model(reference_path("water-orientation"), rotations="random",
                                inversion=True, seed=42)
    assert [compute(other, box)["energy"] for _ in range(5)] == first


def quadrature_set(quads, inversion=False):
    mats = [np.asarray(R) for R, w, _ in quads]
    weights = [w for R, w, _ in quads]
    if inversion:
        mats, weights = mats + [-R for R in mats], weights + weights
    return np.array(mats), np.array(weights) / np.sum(weights)


def assert_same_rotation_sets(ours, theirs):
    (A, wa), (B, wb) = ours, theirs
    assert len(A) == len(B)
    wa = wa / wa.sum()
    matched = set()
    for R, w in zip(B, wb):
        d = np.abs(A - R).reshape(len(A), -1).max(axis=1)
        k = int(np.argmin(d))
        assert d[k] < 1e-10 and abs(wa[k] - w) < 1e-12
        matched.add(k)
    assert len(matched) == len(A)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_grid_equals_ipi_legendre_quadrature(order):
    from ipi.utils.mathtools import get_rotation_quadrature_legendre
    quads = get_rotation_quadrature_legendre(order)
    assert_same_rotation_sets(symprobe.rotation_set(f"grid {order}"), quadrature_set(quads))
    assert_same_rotation_sets(symprobe.rotation_set(f"grid {order}", inversion=True),
                              quadrature_set(quads, inversion=True))


@pytest.mark.parametrize("order", [1, 3, 5, 7, 11, 17])
def test_lebedev_equals_ipi_lebedev_quadrature(order):
    from ipi.utils.mathtools import get_rotation_quadrature_lebedev
    assert_same_rotation_sets(symprobe.rotation_set(f"lebedev {order}"),
                              quadrature_set(get_rotation_quadrature_lebedev(order)))


def test_grid_sizes():
    for L, size in [(2, 18), (3, 75), (4, 196)]:
        assert len(symprobe.rotation_set(f"grid {L}")[1]) == size
        assert len(symprobe.rotation_set(f"grid {L}", inversion=True)[1]) == 2 * size


def test_diagnostics_match_explicit_rotations(reference_path, box):
    """Per-rotation energies and the force spread equal plain evaluations of explicitly rotated
    structures; net torque equals sum x_i x F_i for a molecule."""
    path = reference_path("water-orientation")
    model = symprobe.load_model(path, rotations="grid 2", inversion=True, chunk=7)
    plain = symprobe.load_model(path)
    res = compute(model, box, forces_rms_spread=True)
    mats, weights = symprobe.rotation_set("grid 2", inversion=True)
    weights = weights / weights.sum()
    energies, forces = [], []
    for R in mats:
        r = plain.compute(box.positions @ R.T, box.numbers, box.cell.array @ R.T, True)
        energies.append(r["energy"])
        forces.append(r["forces"] @ R)  # back to the lab frame
    np.testing.assert_allclose(res["rotation_energies"], energies, rtol=1e-12)
    mean_f = np.einsum("k,kia->ia", weights, forces)
    np.testing.assert_allclose(res["forces"], mean_f, atol=1e-10)
    spread = np.sqrt(np.einsum("k,kia->", weights, (np.array(forces) - mean_f) ** 2) / mean_f.size)
    assert res["forces_rms_spread"] == pytest.approx(spread, rel=1e-8)
    mean_e = weights @ energies
    assert res["energy_std"] == pytest.approx(np.sqrt(weights @ (np.array(energies) - mean_e) ** 2), rel=1e-8)
    assert res["energy_spread"] == pytest.approx(np.ptp(energies), rel=1e-10)
    # net torque of a gas-phase molecule: sum x_i x F_i (the orientation term exerts one)
    molecule = water_box(1, seed=3)
    molecule.pbc = False
    molecule.positions += [40.0, -3.0, 7.0]
    r = plain.compute(molecule.positions, molecule.numbers, None, False)
    torque = np.cross(molecule.positions, r["forces"]).sum(axis=0)
    np.testing.assert_allclose(r["net_torque"], torque, atol=1e-10)
    assert np.linalg.norm(torque) > 1e-3
    np.testing.assert_allclose(r["net_force"], 0.0, atol=1e-12)
    invariant = symprobe.load_model(reference_path("water-reference"))
    r = invariant.compute(molecule.positions, molecule.numbers, None, False)
    np.testing.assert_allclose(r["net_torque"], 0.0, atol=1e-10)


def test_chunk_size_does_not_change_results(reference_path, box):
    path = reference_path("water-orientation")
    results = [compute(symprobe.load_model(path, rotations="grid 3", inversion=True, chunk=c), box)
               for c in (0, 1, 7, 150)]
    # the automatic choice tunes itself over the first evaluations, within 1..G
    auto = symprobe.load_model(path, rotations="grid 3", inversion=True)
    assert auto.chunk == 0
    for _ in range(10):
        results.append(compute(auto, box))
    assert 1 <= auto.chunk <= 150
    for r in results[1:]:
        assert r["energy"] == pytest.approx(results[0]["energy"], rel=1e-13)
        np.testing.assert_allclose(r["forces"], results[0]["forces"], atol=1e-12)
        np.testing.assert_allclose(r["rotation_energies"], results[0]["rotation_energies"], rtol=1e-13)


@pytest.mark.parametrize("options,message", [
    (dict(rotations="grid 0"), "rotations grid needs an order L \\(a positive integer\\), got '0'"),
    (dict(rotations="grid"), "rotations grid needs an order L \\(a positive integer\\)$"),
    (dict(rotations="grid inversion"), "rotations grid needs an order L .*got 'inversion'"),
    (dict(rotations="grid 99"), "grid order must lie in 1..12"),
    (dict(rotations="lebedev 4"), "no Lebedev rule of order 4; available: 1 3 5"),
    (dict(rotations="spin 2"), "unknown rotations 'spin'"),
    (dict(rotations="random 3"), "unknown option '3'"),
    (dict(rotations="none", randomize=True), "randomize applies to rotations grid L and lebedev L"),
    (dict(rotations="grid 2", chunk=-1), "chunk must be a non-negative integer"),
    (dict(rotations="random", seed=-1), "seed must be a non-negative integer \\(0 to 2\\^64-1\\), got '-1'"),
    (dict(rotations="random", seed=2**64), "seed must be a non-negative integer"),
    (dict(rotations="random", inversion="maybe"), "inversion must be yes or no, got 'maybe'"),
    (dict(rotations="grid 2", spin=1), "unknown option 'spin' \\(options: rotations, inversion"),
])
def test_bad_rotation_options(reference_path, options, message):
    with pytest.raises(ValueError, match=message):
        symprobe.load_model(reference_path("water-orientation"), **options)


def test_calculator_exposes_diagnostics(reference_path, box):
    atoms = box.copy()
    atoms.calc = symprobe.Calculator(reference_path("water-orientation"), rotations="grid 2",
                                     inversion=True)
    atoms.get_potential_energy()
    assert atoms.calc.results["rotation_energies"].shape == (36,)
    assert atoms.calc.results["energy_spread"] > 0.1


@pytest.mark.parametrize("options", [dict(), dict(rotations="grid 2", inversion=True)])
def test_batch_equals_separate_evaluations(reference_path, options):
    """Several structures (beads) in one call give the results of separate calls, diagnostics
    included."""
    path = reference_path("water-orientation")
    structures = [water_box(8, seed=s) for s in (1, 2, 3)]
    structures[1].positions += np.random.default_rng(0).normal(0, 0.05, (24, 3))
    batch = symprobe.load_model(path, **options).compute_batch(
        [a.positions for a in structures], structures[0].numbers,
        [a.cell.array for a in structures], True, energies=True, atomic_virials=True,
        forces_rms_spread=True)
    for atoms, got in zip(structures, batch):
        ref = compute(symprobe.load_model(path, **options), atoms, energies=True, atomic_virials=True,
                      forces_rms_spread=True)
        for key in ("energy", "energy_spread", "energy_std", "forces_rms_spread"):
            assert got[key] == pytest.approx(ref[key], rel=1e-10, abs=1e-12), key
        for key in ("forces", "virial", "energies", "atomic_virials", "rotation_energies", "net_torque"):
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-10, atol=1e-10, err_msg=key)


def test_rotations_of_a_system_without_edges(reference_path):
    model = symprobe.load_model(reference_path("water-orientation"), rotations="grid 2", inversion=True)
    res = model.compute([[0.0, 0.0, 0.0]], [8], None, False, forces_rms_spread=True)
    assert np.isfinite(res["energy"]) and np.all(res["forces"] == 0.0)
    assert res["forces_rms_spread"] == 0.0


def test_inversion_needs_rotations(reference_path):
    with pytest.raises(ValueError, match="inversion needs rotations"):
        symprobe.load_model(reference_path("water-orientation"), inversion=True)


def test_ase_properties_come_from_one_random_draw(reference_path, box):
    atoms = box.copy()
    atoms.calc = symprobe.Calculator(reference_path("water-orientation"), rotations="random", seed=3)
    energy = atoms.get_potential_energy()
    atoms.get_forces()
    assert atoms.get_potential_energies().sum() == pytest.approx(energy, rel=1e-12)
    assert atoms.calc.model.rotation_step == 1


@pytest.mark.device
@pytest.mark.parametrize("options", [dict(rotations="grid 2", inversion=True),
                                     dict(rotations="random", seed=3)])
def test_device_equals_cpu(reference_path, box, options, accelerator):
    """The symmetrisation stage on the device (rotation set cached on the device, one copy back
    per evaluation) gives the CPU's results."""
    path = reference_path("water-orientation")
    cpu = compute(symprobe.load_model(path, **options), box, energies=True, forces_rms_spread=True)
    gpu = compute(symprobe.load_model(path, device=accelerator, **options), box, energies=True,
                  forces_rms_spread=True)
    for key in ("energy", "energy_spread", "forces_rms_spread"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-10, abs=1e-12), key
    for key in ("forces", "virial", "energies", "rotation_energies"):
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-10, atol=1e-10, err_msg=key)


@pytest.mark.device
def test_water_pet_on_the_device_equals_cpu(accelerator):
    """The bundled float32 PET on the device: energies, forces and virial of a 192-atom box equal
    the CPU's to float32 rounding (per-atom energies O(1) eV at eps 1.2e-7, summed in float64)."""
    atoms = water_box(64, seed=4)
    cpu = compute(symprobe.load_model("water-pet"), atoms)
    gpu = compute(symprobe.load_model("water-pet", device=accelerator), atoms)
    assert gpu["energy"] == pytest.approx(cpu["energy"], abs=1e-4)
    np.testing.assert_allclose(gpu["forces"], cpu["forces"], atol=1e-3)
    np.testing.assert_allclose(gpu["virial"], cpu["virial"], atol=1e-2)


@pytest.mark.device
def test_water_pet_layers_in_pieces_on_the_device_equal_cpu(accelerator):
    """water-pet's layers run piece by piece on the device (option atoms: no autograd in the
    forward pass, a piece's layer again in the backward pass) give the CPU's whole evaluation, to
    float32 rounding, with rotated copies."""
    atoms = water_box(64, seed=4)
    cpu = compute(symprobe.load_model("water-pet", rotations="grid 1", inversion=True), atoms)
    gpu = compute(symprobe.load_model("water-pet", device=accelerator, atoms=50, rotations="grid 1",
                                      inversion=True), atoms)
    assert gpu["energy"] == pytest.approx(cpu["energy"], abs=1e-4)
    np.testing.assert_allclose(gpu["forces"], cpu["forces"], atol=1e-3)
    np.testing.assert_allclose(gpu["virial"], cpu["virial"], atol=1e-2)


@pytest.mark.device
def test_memory_budget_on_the_device(accelerator, reference_path):
    """On a GPU the memory per edge is read from torch's caching allocator: measured after the
    first call, and a budget that one copy fills keeps the automatic chunk at 1; the default
    budget is half the device's free memory."""
    path = reference_path("water-orientation")
    atoms = water_box(64, seed=2)
    model = symprobe.load_model(path, device=accelerator, rotations="grid 3", inversion=True, memory=1)
    energies = [compute(model, atoms)["energy"] for _ in range(2)]
    assert model.memory_per_edge_bytes > 0
    assert model.chunk == 1
    assert energies[1] == pytest.approx(energies[0], rel=1e-12)
    assert symprobe.load_model(path, device=accelerator).memory_budget_bytes > 0


@pytest.mark.parametrize("batch", [0, 1, 2, 3, 5])
def test_batches_give_the_same_results_whatever_the_structures_per_call(reference_path, batch):
    """compute_batch evaluates `batch` structures per model call (0: tuned); the results equal
    separate evaluations, every structure of a batch gets the step's random rotation, and the
    model's counter advances once per batch."""
    path = reference_path("water-orientation")
    structures = [water_box(8, seed=s) for s in range(5)]
    model = symprobe.load_model(path, rotations="random", seed=8, batch=batch)
    single = symprobe.load_model(path, rotations="random", seed=8)
    for call in range(6):  # enough calls for the automatic choice to settle
        got = model.compute_batch([a.positions for a in structures], structures[0].numbers,
                                  [a.cell.array for a in structures], True)
        assert model.rotation_step == call + 1
        for atoms, r in zip(structures, got):
            ref = single.compute(atoms.positions, atoms.numbers, atoms.cell.array, True, step=call)
            assert r["energy"] == pytest.approx(ref["energy"], rel=1e-10)
            np.testing.assert_allclose(r["forces"], ref["forces"], atol=1e-10)
    if batch:
        assert model.batch == batch
    else:
        assert model.batch in (1, 2, 4, 5)  # tuned: 1, 2, 4, ... capped at the batch's size


def test_memory_budget_bounds_the_automatic_chunk_and_batch(reference_path):
    """Option memory (MB per model call): the memory one edge of one copy keeps alive from the
    forward to the backward pass is measured at the first call; then the automatic chunk and
    batch stay within the budget. A budget that one copy fills settles both at 1 at the second
    call, where an ample budget is still tuning (1, 2, 4, ... are tried); results unchanged."""
    path = reference_path("water-orientation")
    atoms = water_box(64, seed=2)  # ~4500 edges: ~0.7 MB per copy of this model
    structures = [atoms.positions + 0.01 * k for k in range(4)]
    runs = {}
    for memory in (1, 100000):
        grid = symprobe.load_model(path, rotations="grid 3", inversion=True, memory=memory)
        beads = symprobe.load_model(path, memory=memory)
        assert grid.memory_budget_bytes == memory * 2 ** 20 and grid.memory_per_edge_bytes == 0
        energies = [compute(grid, atoms)["energy"] for _ in range(2)]
        batches = [beads.compute_batch(structures, atoms.numbers, [atoms.cell.array] * 4, True) for _ in range(2)]
        runs[memory] = (grid.chunk, beads.batch, energies, [r["energy"] for r in batches[-1]])
        edges = len(symprobe.neighbor_list(atoms.positions, atoms.cell.array, True, grid.cutoff).centers)
        per_copy = grid.memory_per_edge_bytes * edges
        assert 0.1e6 < per_copy < 10e6  # a few hundred bytes per edge: the activations kept
    assert runs[1][:2] == (1, 1)
    assert runs[100000][:2] == (0, 0)
    assert runs[1][2] == pytest.approx(runs[100000][2], rel=1e-12)
    assert runs[1][3] == pytest.approx(runs[100000][3], rel=1e-12)
    with pytest.raises(ValueError, match="memory must be a non-negative integer in MB"):
        symprobe.load_model(path, memory="-1")
    assert symprobe.load_model(path).memory_budget_bytes > 0  # automatic: half the available


def test_bad_batch_option(reference_path):
    with pytest.raises(ValueError, match="batch must be a non-negative integer"):
        symprobe.load_model(reference_path("water-orientation"), batch=-1)


def test_randomize_reorients_the_whole_grid_each_step(reference_path, box):
    """randomize: the grid of step k is G_i R(seed, k), with R the rotation that `rotations
    random` draws at step k (i-PI's <ffrotations random="true">), the weights unchanged and
    inversion applied after; a model's rotation energies change from one evaluation to the next,
    and each is the plain model's energy of the structure rotated by its matrix."""
    grid, weights = symprobe.rotation_set("grid 2", step=0)
    for k in (0, 5):
        r = symprobe.rotation_set("random", seed=7, step=k)[0][0]
        matrices, w = symprobe.rotation_set("grid 2", randomize=True, seed=7, step=k)
        np.testing.assert_allclose(matrices, grid @ r, atol=1e-14)
        np.testing.assert_allclose(w, weights)
        improper, _ = symprobe.rotation_set("grid 2", randomize=True, inversion=True, seed=7, step=k)
        np.testing.assert_allclose(improper, np.concatenate([grid @ r, -(grid @ r)]), atol=1e-14)
    path = reference_path("water-orientation")
    model = symprobe.load_model(path, rotations="grid 2", randomize=True, seed=7)
    plain = symprobe.load_model(path)
    first = compute(model, box)["rotation_energies"]
    second = compute(model, box)["rotation_energies"]
    assert np.abs(first - second).max() > 1e-4
    for step, energies in ((0, first), (1, second)):
        matrices, _ = symprobe.rotation_set("grid 2", randomize=True, seed=7, step=step)
        for i in (0, 7):
            turned = box.copy()
            turned.positions = box.positions @ matrices[i].T
            turned.cell = box.cell.array @ matrices[i].T
            assert energies[i] == pytest.approx(compute(plain, turned)["energy"], rel=1e-10)
