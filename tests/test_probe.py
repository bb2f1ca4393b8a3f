"""The probe: `symprobe error` against the exactly known orientational averages of the reference
models, and the torque-free correction against an independent projection and in NVE."""
import json

import numpy as np
import pytest
from ase import Atoms

import symprobe
from symprobe.cli import main
from symprobe.probe.error import parse_set, rotational_error, select_frames
from symprobe.water.reference import orientation_average


# --- symprobe error ---------------------------------------------------------------------------

def test_set_names_and_frame_selection():
    assert [parse_set(s).rotations for s in ("0", "i", "2", "2i", "3", "3i")] == [1, 2, 18, 36, 75, 150]
    assert select_frames("0:10:3", 20) == [0, 3, 6, 9]
    assert select_frames("1,-1,4:6", 8) == [1, 7, 4, 5]
    assert select_frames(None, 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="frame 9 does not exist"):
        select_frames("9", 5)
    with pytest.raises(ValueError, match="not an index K or a slice"):
        select_frames("a:b", 5)
    with pytest.raises(ValueError, match="rotation set 'x2'"):
        parse_set("x2")


def test_polynomial_model_error_vanishes_for_exact_grids(water_190, reference_path, invariant_model):
    """A degree-2 orientation term is averaged exactly by every grid with 2L - 2 >= 2, so those
    rows are zero and the reference equals the invariant energy plus the exact average; the plain
    model and the inversion pair are not exact."""
    frames = water_190[:3]
    report = rotational_error(frames, reference_path("water-orientation-poly2"), ["0", "i", "2", "2i"],
                              reference="3i", batch=2)
    rows = {r["set"]: r for r in report["rows"]}
    for s in ("2", "2i"):
        assert rows[s]["energy_meV_per_frame"] < 1e-7
        assert rows[s]["force_meV_per_A"] < 1e-7
    for s in ("0", "i"):
        assert rows[s]["energy_meV_per_frame"] > 1.0
        assert rows[s]["force_meV_per_A"] > 0.01
    exact = [invariant_model.compute(a.positions, a.numbers, a.cell.array, True)["energy"]
             + 64 * orientation_average("poly", 2) for a in frames]
    np.testing.assert_allclose(report["energies_eV"]["3i"], exact, rtol=0, atol=1e-9)
    # labelled frames: the model's own errors beside the rotational ones
    assert report["labelled"] and rows["0"]["label_force_mae_meV_per_A"] > 0


def test_exponential_model_error_falls_with_grid_order(water_190, reference_path, invariant_model):
    """Against the exact average of the exponential model, the error of grid L falls with L as
    the theory says: the grid integrates the terms of degree <= 2L - 2 of the expansion of
    exp(a t) exactly, so its error per molecule is bounded by the tail, strength x sum_a 2 sum_{n
    >= 2L-1} a^n / n! (|t| <= 1), which falls faster than geometrically."""
    import math
    from symprobe.water.reference import ORIENTATION_COEFFICIENTS, ORIENTATION_STRENGTH
    frames = water_190[:2]
    orders = (2, 3, 4, 5)
    report = rotational_error(frames, reference_path("water-orientation"), [str(L) for L in orders],
                              reference="0")
    exact = np.array([invariant_model.compute(a.positions, a.numbers, a.cell.array, True)["energy"]
                      + 64 * orientation_average("exp") for a in frames])
    errors = [np.abs(np.array(report["energies_eV"][str(L)]) - exact).mean() for L in orders]
    for L, error in zip(orders, errors):
        tail = sum(2 * sum(a ** n / math.factorial(n) for n in range(2 * L - 1, 60))
                   for a in ORIENTATION_COEFFICIENTS)
        assert 0 < error <= 64 * ORIENTATION_STRENGTH * tail
    assert all(later < earlier / 3 for earlier, later in zip(errors, errors[1:])), errors


def test_error_command_writes_json_table_and_figure(tmp_path, water_190, reference_path):
    data = tmp_path / "frames.xyz"
    import ase.io
    ase.io.write(data, water_190[:4])
    out = tmp_path / "out"
    model = reference_path("water-orientation")
    argv = ["error", str(data), "--model", model, "--frames", "0:4:2", "--sets", "0,i,2",
            "--reference", "2i", "--output", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "rotational-error.json").read_text())
    assert set(report) >= {"model", "data", "frames", "reference", "rows"}
    assert report["frames"] == [0, 2] and report["reference"] == "2i"
    assert [r["set"] for r in report["rows"]] == ["0", "i", "2"]
    assert [r["rotations"] for r in report["rows"]] == [1, 2, 18]
    for r in report["rows"]:
        assert set(r) >= {"set", "rotations", "energy_meV_per_frame", "energy_sem", "force_meV_per_A", "force_sem"}
    assert report["rows"][0]["energy_meV_per_frame"] > report["rows"][2]["energy_meV_per_frame"] > 0
    assert "| 2 | 18 |" in (out / "rotational-error.md").read_text()
    assert (out / "rotational-error.png").read_bytes()[:4] == b"\x89PNG"
    # a second run keeps the first one's files
    assert main(argv) == 0
    assert (out / "rotational-error-1.json").exists()
    assert json.loads((out / "rotational-error.json").read_text()) == report


def test_error_command_rejects_bad_input(tmp_path, capsys, water_190, reference_path):
    data = tmp_path / "frames.xyz"
    import ase.io
    ase.io.write(data, water_190[:2])
    assert main(["error", str(data), "--model", reference_path("water-reference"), "--frames", "5"]) == 2
    assert "frame 5 does not exist (the file has 2 frames)" in capsys.readouterr().err
    assert main(["error", str(data), "--model", reference_path("water-reference"), "--sets", "0,0"]) == 2
    assert "a set is given twice" in capsys.readouterr().err
    carbon = tmp_path / "carbon.xyz"
    ase.io.write(carbon, Atoms("CO", positions=[[0, 0, 0], [1.2, 0, 0]]))
    assert main(["error", str(carbon), "--model", reference_path("water-reference")]) == 2
    assert "frame 0:" in capsys.readouterr().err
    unknown = tmp_path / "frames.unknown"
    unknown.write_text("not a structure\n")
    assert main(["error", str(unknown)]) == 2
    assert "symprobe error: error:" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing.xyz")]) == 2
    assert "missing.xyz" in capsys.readouterr().err


# --- the torque-free correction ---------------------------------------------------------------

def water_cluster(n_molecules=3, seed=1):
    from symprobe.water import water_box
    atoms = water_box(n_molecules, seed=seed)
    atoms.pbc = False
    atoms.center(vacuum=5.0)
    return atoms


def projected(forces, positions, masses):
    """Forces minus their mass-weighted projection on rigid-body motions, by linear algebra:
    dF = W A^T (A W A^T)^+ A F with A the 6 x 3N rows of net force and net torque, W = diag(m)."""
    n = len(masses)
    a = np.zeros((6, 3 * n))
    for i, x in enumerate(positions):
        a[0:3, 3 * i:3 * i + 3] = np.eye(3)
        a[3:6, 3 * i:3 * i + 3] = np.array([[0, -x[2], x[1]], [x[2], 0, -x[0]], [-x[1], x[0], 0]])
    w = np.repeat(masses, 3)
    f = forces.ravel()
    df = w * (a.T @ (np.linalg.pinv((a * w) @ a.T) @ (a @ f)))
    return (f - df).reshape(-1, 3)


@pytest.mark.parametrize("atoms", [water_cluster(3), water_cluster(1)], ids=["3 molecules", "1 molecule"])
def test_torque_free_forces_equal_the_mass_weighted_projection(atoms, reference_path):
    path = reference_path("water-orientation")
    plain = symprobe.load_model(path)
    model = symprobe.load_model(path, correction="torque-free")
    assert model.correction == "torque-free"
    masses = atoms.get_masses()
    masses[1] *= 2.0  # deuterium: the integrator's masses weight the projection
    raw = plain.compute(atoms.positions, atoms.numbers, None, False)
    out = model.compute(atoms.positions, atoms.numbers, None, False, masses=masses)
    x = atoms.positions
    assert np.linalg.norm(np.cross(x, raw["forces"]).sum(0)) > 1e-3  # the model exerts a torque
    # the two pseudo-inverses round differently: 1e-10 eV/A of O(1) eV/A forces
    np.testing.assert_allclose(out["forces"], projected(raw["forces"], x, masses), rtol=0, atol=1e-10)
    assert np.abs(out["forces"].sum(0)).max() < 1e-10
    assert np.abs(np.cross(x, out["forces"]).sum(0)).max() < 1e-10
    assert np.abs(np.cross(x - 7.0, out["forces"]).sum(0)).max() < 1e-10
    np.testing.assert_allclose(out["virial"], np.einsum("ia,ib->ab", x, out["forces"]), atol=1e-10)
    np.testing.assert_allclose(out["virial"], out["virial"].T, atol=1e-10)
    assert out["energy"] == raw["energy"]
    np.testing.assert_array_equal(out["net_torque"], raw["net_torque"])  # diagnostics: the model's
    # default masses: the standard atomic weights
    np.testing.assert_allclose(model.compute(x, atoms.numbers, None, False)["forces"],
                               projected(raw["forces"], x, atoms.get_masses()), rtol=0, atol=1e-10)
    # composed with rotations: the projection of the averaged forces
    grid = symprobe.load_model(path, rotations="grid 2", inversion=True)
    grid_free = symprobe.load_model(path, rotations="grid 2", inversion=True, correction="torque-free")
    averaged = grid.compute(x, atoms.numbers, None, False)["forces"]
    np.testing.assert_allclose(grid_free.compute(x, atoms.numbers, None, False, masses=masses)["forces"],
                               projected(averaged, x, masses), rtol=0, atol=1e-10)


def test_torque_free_on_a_periodic_system_symmetrizes_the_virial(water_190, reference_path):
    atoms = water_190[0]
    path = reference_path("water-orientation")
    raw = symprobe.load_model(path).compute(atoms.positions, atoms.numbers, atoms.cell.array, True,
                                            atomic_virials=True)
    out = symprobe.load_model(path, correction="torque-free").compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True, atomic_virials=True)
    assert np.abs(raw["virial"] - raw["virial"].T).max() > 1e-3
    np.testing.assert_allclose(out["virial"], 0.5 * (raw["virial"] + raw["virial"].T), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["atomic_virials"], 0.5 * (raw["atomic_virials"]
                               + raw["atomic_virials"].transpose(0, 2, 1)), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out["forces"], raw["forces"])


def test_torque_free_errors(reference_path):
    with pytest.raises(ValueError, match="correction must be none or torque-free, got 'yes'"):
        symprobe.load_model(reference_path("water-orientation"), correction="yes")
    model = symprobe.load_model(reference_path("water-orientation"), correction="torque-free")
    atoms = water_cluster(1)
    with pytest.raises(ValueError, match="per-atom virials of a non-periodic system"):
        model.compute(atoms.positions, atoms.numbers, None, False, atomic_virials=True)
    with pytest.raises(ValueError, match="masses must be positive"):
        model.compute(atoms.positions, atoms.numbers, None, False, masses=[1.0, 0.0, 1.0])


def nve(atoms, calc, steps, dt_fs=0.25):
    from ase import units
    from ase.md.verlet import VelocityVerlet
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, dt_fs * units.fs)
    angular, total = [], []

    def record():
        x = atoms.positions - atoms.get_center_of_mass()
        angular.append(np.cross(x, atoms.get_momenta()).sum(0))
        total.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
    record()
    for _ in range(steps // 10):
        dyn.run(10)
        record()
    return np.array(angular), np.array(total)


@pytest.mark.parametrize("spin", [False, True], ids=["L=0", "spinning"])
def test_torque_free_conserves_angular_momentum_and_energy_in_the_gas_phase(spin, reference_path):
    """One molecule of the orientation model (a 0.5 eV lab-frame term): plain forces change its
    angular momentum; torque-free forces keep it to integration error, and conserve the energy
    of a molecule without angular momentum."""
    from ase.md.velocitydistribution import Stationary, ZeroRotation
    path = reference_path("water-orientation")
    start = water_cluster(1)
    from ase.md import velocitydistribution as vd
    thermalize = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    thermalize(start, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(start)
    ZeroRotation(start)
    if spin:  # a rigid rotation about the centre of mass on top
        x = start.positions - start.get_center_of_mass()
        start.set_velocities(start.get_velocities() + np.cross([0.0, 0.0, 0.02], x))
    runs = {}
    for name, correction in (("plain", "none"), ("torque-free", "torque-free")):
        runs[name] = nve(start.copy(), symprobe.Calculator(path, correction=correction), 400)
    l_plain, _ = runs["plain"]
    l_free, e_free = runs["torque-free"]
    change_plain = np.linalg.norm(l_plain - l_plain[0], axis=1).max()
    change_free = np.linalg.norm(l_free - l_free[0], axis=1).max()
    assert change_plain > 1e3 * change_free
    assert change_free < 1e-8
    if not spin:
        # d(E_kin + E_pot)/dt = -alpha . L for the corrected forces: conserved at L = 0 only (a
        # spinning molecule still sees its energy change with its orientation). Conserved means:
        # the fluctuation is the integrator's, falling as dt^2.
        _, e_half = nve(start.copy(), symprobe.Calculator(path, correction="torque-free"), 800, dt_fs=0.125)
        assert np.ptp(e_free) < 1e-3
        assert np.ptp(e_half) < np.ptp(e_free) / 3


# --- symprobe analyze -------------------------------------------------------------------------

def write_frames(path, frames):
    import ase.io
    ase.io.write(path, frames, format="extxyz")
    return str(path)


def test_ideal_gas_radial_distribution_is_one(tmp_path):
    """Uniformly random positions in a periodic box: every g(r) is 1 within its noise."""
    from symprobe.probe.analyze import analyze, load_run
    rng = np.random.default_rng(3)
    frames = [Atoms("O100H100", positions=rng.uniform(0, 14.0, (200, 3)), cell=[14.0] * 3, pbc=True)
              for _ in range(20)]
    run = load_run(write_frames(tmp_path / "gas.xyz", frames), "gas", frame_time_ps=0.1)
    rdf = analyze([run], n_blocks=4)["rdf"]["gas"]
    assert set(rdf) == {"H-H", "H-O", "O-O"}
    for pair in rdf.values():
        r, g = np.array(pair["r_A"]), np.array(pair["g"])
        far = r > 2.0
        assert abs(g[far].mean() - 1.0) < 0.02
        assert np.abs(g[far] - 1.0).max() < 0.5


def test_ballistic_msd_and_periodic_unwrapping(tmp_path):
    """Free flight x(t) = x0 + v t, written wrapped into the box: MSD(t) = <|v|^2> t^2."""
    from symprobe.probe.analyze import analyze, load_run
    rng = np.random.default_rng(4)
    x0 = rng.uniform(0, 10.0, (30, 3))
    v = rng.normal(0, 2.0, (30, 3))  # A/ps
    times = 0.05 * np.arange(40)
    frames = []
    for t in times:
        a = Atoms("O30", positions=x0 + v * t, cell=[10.0] * 3, pbc=True)
        a.wrap()
        a.info["time_ps"] = t
        frames.append(a)
    run = load_run(write_frames(tmp_path / "ballistic.xyz", frames), "b", None)
    msd = analyze([run])["msd"]["b"]["O"]
    lag_times = np.array(msd["t_ps"])
    np.testing.assert_allclose(lag_times, times[:21])  # lags up to half the run
    np.testing.assert_allclose(msd["msd_A2"], (v ** 2).sum(1).mean() * lag_times ** 2, rtol=1e-9, atol=1e-9)


def test_brownian_diffusion_coefficient_and_its_error(tmp_path):
    """Random walks with D = 0.5 A^2/ps, written wrapped into a periodic box: D of the blocks
    and of the whole run recover it, and the block estimate's error covers its deviation."""
    from symprobe.probe.analyze import analyze, load_run
    rng = np.random.default_rng(11)
    d_true, dt, n_frames, n_atoms, box = 0.5, 0.01, 200, 300, 15.0
    x = np.cumsum(rng.normal(0, np.sqrt(2 * d_true * dt), (n_frames, n_atoms, 3)), axis=0)
    frames = []
    for k in range(n_frames):
        a = Atoms(f"O{n_atoms}", positions=x[k], cell=[box] * 3, pbc=True)
        a.wrap()
        frames.append(a)
    run = load_run(write_frames(tmp_path / "walk.xyz", frames), "walk", frame_time_ps=dt)
    msd = analyze([run], n_blocks=5)["msd"]["walk"]["O"]
    assert msd["block_ps"] == pytest.approx((n_frames - 1) * dt / 5)
    assert 0 < msd["D_sem"] < 0.05
    assert abs(msd["D_A2_per_ps"] - d_true) < 3 * msd["D_sem"]
    assert msd["D_whole_run_A2_per_ps"] == pytest.approx(d_true, rel=0.1)


def test_rigid_rotor_angular_momentum_and_uniform_orientations(tmp_path):
    """A water molecule spinning rigidly about a principal axis through its centre of mass (a
    free rigid rotor): L(t) constant and equal to I omega; molecules in uniformly random
    orientations give a flat F(cos theta, phi), a preferred orientation does not."""
    from ase import units
    from scipy.spatial.transform import Rotation
    from symprobe.probe.analyze import analyze, load_run, molecular_axes, orientation_map
    molecule = water_cluster(1)
    x0 = molecule.positions - molecule.get_center_of_mass()
    inertia = sum(m * (x @ x * np.eye(3) - np.outer(x, x)) for m, x in zip(molecule.get_masses(), x0))
    omega = 2.0 * np.linalg.eigh(inertia)[1][:, 1]  # rad/ps, about the intermediate axis
    frames = []
    for t in 0.01 * np.arange(30):
        rotation = Rotation.from_rotvec(omega * t).as_matrix()
        a = molecule.copy()
        x = x0 @ rotation.T
        a.positions = x + 50.0
        a.set_momenta(a.get_masses()[:, None] * np.cross(omega, x) / (1e3 * units.fs))
        a.info["time_ps"] = t
        frames.append(a)
    run = load_run(write_frames(tmp_path / "rotor.xyz", frames), "rotor", None)
    angular = analyze([run])["angular"]["rotor"]
    ell = np.array(angular["L_amu_A2_per_ps"])
    # extxyz keeps 8 decimals of positions near 50 A and of momenta: 1e-6 relative
    np.testing.assert_allclose(ell, np.tile(inertia @ omega, (len(frames), 1)), rtol=2e-6)
    assert np.linalg.norm(ell[0]) > 1.0

    rng = np.random.default_rng(5)
    uniform = Rotation.random(20000, random_state=6).apply(np.array([0.0, 0.0, 1.0]))
    assert 0.5 < orientation_map(uniform)["chi2_per_bin"] < 1.6
    free = np.array(orientation_map(uniform)["F_kT"], float)
    noise = 1 / np.sqrt(20000 / free.size)  # kT: relative counting noise of a bin
    assert np.abs(free).max() < 5 * noise and np.abs(free).mean() < 1.5 * noise
    tilted = uniform + 0.3 * np.array([0.0, 0.0, 1.0])
    tilted /= np.linalg.norm(tilted, axis=1)[:, None]
    assert orientation_map(tilted)["chi2_per_bin"] > 20
    assert len(molecular_axes(frames[0])) == 1


def test_analyze_command_overlays_runs(tmp_path, capsys, reference_path):
    """Two short symprobe md runs of one molecule (plain and torque-free) through `symprobe
    analyze`: files per observable, the torque-free run's L conserved, bad input refused."""
    from symprobe.cli import main as cli
    structure = tmp_path / "molecule.xyz"
    write_frames(structure, [water_cluster(1)])
    model = reference_path("water-orientation")
    for name, extra in (("plain", []), ("free", ["--correction", "torque-free"])):
        assert cli(["md", "--model", model, "--structure", str(structure), "--finite", "--thermostat",
                    "none", "--steps", "100", "--interval", "10", "--timestep", "0.25",
                    "--output", str(tmp_path / f"{name}.xyz")] + extra) == 0
    capsys.readouterr()
    out = tmp_path / "analysis"
    assert cli(["analyze", str(tmp_path / "plain.xyz"), str(tmp_path / "free.xyz"),
                "--labels", "plain", "torque-free", "--output", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert "plain" in summary and "torque-free" in summary
    angular = json.loads((out / "angular.json").read_text())["angular"]
    assert angular["torque-free"]["L_change"] < 1e-6 < 1e-2 < angular["plain"]["L_change"]
    thermo = json.loads((out / "thermo.json").read_text())["thermo"]
    assert abs(thermo["torque-free"]["drift_eV_per_atom_per_ps"]) < 1e-2  # L = 0: energy conserved
    for name in ("angular.png", "orientation.png", "thermo.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert cli(["analyze", str(tmp_path / "plain.xyz"), "--output", str(out)]) == 2
    assert "already holds" in capsys.readouterr().err
    assert cli(["analyze", str(tmp_path / "plain.xyz"), "--labels", "a", "b"]) == 2
    assert "2 labels for 1 trajectories" in capsys.readouterr().err


# --- multiple time stepping: plain requests of a symmetrised model ----------------------------

def test_plain_requests_of_a_symmetrised_model(water_190, reference_path):
    """symmetrize=False (the fast MTS level) evaluates the plain model through a model loaded
    with rotations, without advancing its random-rotation counter."""
    atoms = water_190[0]
    args = (atoms.positions, atoms.numbers, atoms.cell.array, True)
    path = reference_path("water-orientation")
    plain = symprobe.load_model(path).compute(*args)
    grid = symprobe.load_model(path, rotations="grid 2", inversion=True)
    fast = grid.compute(*args, symmetrize=False)
    assert fast["energy"] == pytest.approx(plain["energy"], abs=1e-10)
    np.testing.assert_allclose(fast["forces"], plain["forces"], atol=1e-10)
    np.testing.assert_allclose(fast["virial"], plain["virial"], atol=1e-10)
    assert len(fast["rotation_energies"]) == 1
    assert abs(grid.compute(*args)["energy"] - plain["energy"]) > 1e-3
    random = symprobe.load_model(path, rotations="random", seed=3)
    random.compute(*args, symmetrize=False)
    assert random.rotation_step == 0
    random.compute(*args)
    assert random.rotation_step == 1


def test_ipi_xyz_trajectories_are_read_with_their_cell_and_units(tmp_path):
    """i-PI's own xyz output: the cell from the CELL(abcABC) comment, Angstrom or Bohr as the
    comment says; analyze reads it like any trajectory."""
    from symprobe.probe.analyze import read_trajectory
    bohr = 0.52917721090
    lines = []
    for step, unit in ((0, "angstrom"), (10, "atomic_unit")):
        scale = 1.0 if unit == "angstrom" else 1.0 / bohr
        lines += ["2", f"# CELL(abcABC):   {10 * scale:.8f}  {11 * scale:.8f}  {12 * scale:.8f}  90.00000  "
                  f"90.00000  90.00000  Step: {step}  Bead: 0 positions{{{unit}}}  cell{{{unit}}}",
                  f"O {1.0 * scale:.8f} {2.0 * scale:.8f} {3.0 * scale:.8f}",
                  f"H {1.5 * scale:.8f} {2.0 * scale:.8f} {3.0 * scale:.8f}"]
    path = tmp_path / "sim.pos_0.xyz"
    path.write_text("\n".join(lines) + "\n")
    frames = read_trajectory(str(path))
    assert len(frames) == 2
    for frame in frames:
        np.testing.assert_allclose(frame.positions, [[1.0, 2.0, 3.0], [1.5, 2.0, 3.0]], atol=1e-7)
        np.testing.assert_allclose(frame.cell.lengths(), [10.0, 11.0, 12.0], atol=1e-7)
        assert frame.pbc.all() and list(frame.get_chemical_symbols()) == ["O", "H"]
    assert [f.info["step"] for f in frames] == [0, 10]


def write_ipi_xyz(path, frames, steps, bead):
    lines = []
    for atoms, step in zip(frames, steps):
        a, b, c = atoms.cell.lengths()
        lines += [str(len(atoms)), f"# CELL(abcABC):   {a:.8f}  {b:.8f}  {c:.8f}  90.00000  90.00000  90.00000  "
                  f"Step: {step}  Bead: {bead} positions{{angstrom}}  cell{{angstrom}}"]
        lines += [f"{s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)]
    path.write_text("\n".join(lines) + "\n")


def test_path_integral_run_from_bead_files_and_ipi_properties(tmp_path):
    """A ring polymer written as one i-PI xyz file per bead, beads on both sides of the
    periodic boundary: the run's frames are the centroids, g(r) is pooled over all beads, times
    come from the property file's step and time columns, --start leaves the first frames out;
    the conserved quantity's drift and the kinetic energy per atom of an element are read back."""
    from symprobe.probe.analyze import analyze, load_run, radial_distribution
    from symprobe.water.analysis import max_rdf_range
    rng = np.random.default_rng(7)
    box, n_frames, n_beads = 9.0, 12, 3
    centre = rng.uniform(0, box, (6, 3))
    offsets = rng.normal(0, 0.3, (n_beads, 6, 3))
    offsets -= offsets.mean(0)
    steps = 20 * np.arange(n_frames)
    beads = [[] for _ in range(n_beads)]
    centroids = []
    for k in range(n_frames):
        c = centre + 0.4 * k * np.array([1.0, 0.3, 0.0])  # crosses the boundary
        centroids.append(c)
        for b in range(n_beads):
            a = Atoms("O2H4", positions=c + offsets[b], cell=[box] * 3, pbc=True)
            a.wrap()
            beads[b].append(a)
    for b in range(n_beads):
        write_ipi_xyz(tmp_path / f"sim.pos_{b}.xyz", beads[b], steps, b)
    # properties every 10 steps (0.005 ps each), conserved drifting at 0.3 eV/ps
    prop_steps = np.arange(0, steps[-1] + 1, 10)
    t = 0.0005 * prop_steps
    header = ["# column   1     --> step : The current simulation time step.",
              "# column   2     --> time{picosecond} : The elapsed simulation time.",
              "# column   3     --> conserved{electronvolt} : The conserved quantity.",
              "# column   4     --> temperature{kelvin} : The temperature.",
              "# column   5     --> kinetic_cv(H){electronvolt} : The kinetic energy.",
              "# cols.    6-7   --> bead_potentials{electronvolt} : The potential of each bead."]
    rows = np.column_stack([prop_steps, t, -5.0 + 0.3 * t, 300 + rng.normal(0, 5, len(t)),
                            np.full(len(t), 0.6), np.zeros((len(t), 2))])
    np.savetxt(tmp_path / "sim.out", rows, header="\n".join(h[2:] for h in header), comments="# ")
    start = 0.02
    run = load_run(str(tmp_path / "sim.pos_*.xyz"), "pimd", None, properties=str(tmp_path / "sim.out"),
                   start_ps=start)
    kept = 0.0005 * steps >= start
    np.testing.assert_allclose(run.times, 0.0005 * steps[kept])
    assert len(run.beads) == n_beads and len(run.frames) == kept.sum()
    for frame, c in zip(run.frames, np.array(centroids)[kept]):
        d = (frame.positions - c) / box
        np.testing.assert_allclose(d - np.round(d), 0, atol=1e-8)  # the centroid, modulo the box
    report = analyze([run], n_blocks=2)
    r_max = min(max_rdf_range(beads[0][0].cell.array), 8.0)
    pooled = [beads[b][k] for k in np.flatnonzero(kept) for b in range(n_beads)]
    r, g = radial_distribution(pooled, 8, 1, r_max, 200)
    np.testing.assert_allclose(report["rdf"]["pimd"]["H-O"]["g"], g, atol=1e-12)
    thermo = report["thermo"]["pimd"]
    assert thermo["drift_eV_per_atom_per_ps"] == pytest.approx(0.3 / 6, rel=1e-6)
    assert thermo["kinetic_cv_H_meV_per_atom"][0] == pytest.approx(600.0 / 4, rel=1e-9)
    assert report["runs"]["pimd"]["beads"] == n_beads
    # bad input: a trajectory step the property file lacks; beads of different lengths
    np.savetxt(tmp_path / "coarse.out", rows[::4], header="\n".join(h[2:] for h in header), comments="# ")
    with pytest.raises(ValueError, match="no row for step 20"):
        load_run(str(tmp_path / "sim.pos_0.xyz"), "x", None, properties=str(tmp_path / "coarse.out"))
    write_ipi_xyz(tmp_path / "sim.pos_9.xyz", beads[0][:5], steps, 9)
    with pytest.raises(ValueError, match="beads of one run need the same frames"):
        load_run(str(tmp_path / "sim.pos_*.xyz"), "x", None)
    with pytest.raises(ValueError, match="no file matches"):
        load_run(str(tmp_path / "nothing_*.xyz"), "x", None)


def test_compute_graph_torque_free_equals_compute(reference_path):
    """The graph entry point (LAMMPS's, and the Python binding's) with positions, pbc=False and
    masses applies the same torque-free projection as compute on the structure; without
    positions a non-periodic graph cannot be projected, and says so."""
    from symprobe.runtime import neighbor_list
    atoms = water_cluster(3)
    path = reference_path("water-orientation")
    model = symprobe.load_model(path, correction="torque-free")
    masses = atoms.get_masses()
    masses[2] *= 2.0
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, model.cutoff)
    direct = model.compute(atoms.positions, atoms.numbers, None, False, masses=masses)
    graph = model.compute_graph(atoms.numbers, nl.centers, nl.neighbors, nl.vectors,
                                positions=atoms.positions, pbc=False, masses=masses)
    assert graph["energy"] == pytest.approx(direct["energy"], abs=1e-10)
    np.testing.assert_allclose(graph["forces"], direct["forces"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(graph["virial"], direct["virial"], rtol=0, atol=1e-10)
    raw = symprobe.load_model(path).compute(atoms.positions, atoms.numbers, None, False)
    assert np.abs(raw["forces"] - graph["forces"]).max() > 1e-4  # the projection did something
    with pytest.raises(ValueError, match="positions"):
        model.compute_graph(atoms.numbers, nl.centers, nl.neighbors, nl.vectors)
    with pytest.raises(ValueError, match="positions"):
        model.compute_graph(atoms.numbers, nl.centers, nl.neighbors, nl.vectors,
                            positions=atoms.positions[:-1], pbc=False)


def test_multiple_time_stepping_levels_share_one_plain_evaluation(reference_path):
    """On a slow step i-PI asks the plain and the correction levels at the same positions: the
    plain model is evaluated once for both, and the two levels add up to the averaged model."""
    from symprobe.ipi import AtomicUnitsEvaluator, PlainCache

    class Counting:
        def __init__(self, model):
            self.model, self.plain_calls = model, 0

        def __getattr__(self, name):
            return getattr(self.model, name)

        def compute(self, *args, symmetrize=True, **kwargs):
            self.plain_calls += not symmetrize
            return self.model.compute(*args, symmetrize=symmetrize, **kwargs)

    atoms = water_cluster(2)
    atoms.set_cell([20.0] * 3)
    model = Counting(symprobe.load_model(reference_path("water-orientation"), rotations="grid 2", inversion=True))
    cache = PlainCache()
    plain = AtomicUnitsEvaluator(model, atoms.numbers, level="plain", plain_cache=cache)
    correction = AtomicUnitsEvaluator(model, atoms.numbers, level="correction", plain_cache=cache)
    full = AtomicUnitsEvaluator(model, atoms.numbers)
    bohr = 0.52917721090
    h = [atoms.cell.array.T / bohr]
    x = [atoms.positions / bohr]
    fast = plain.evaluate(h, x)[0]
    slow = correction.evaluate(h, x)[0]
    assert model.plain_calls == 1
    total = full.evaluate(h, x)[0]
    assert fast[0] + slow[0] == pytest.approx(total[0], abs=1e-12)
    np.testing.assert_allclose(fast[1] + slow[1], total[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast[2] + slow[2], total[2], rtol=0, atol=1e-12)
    assert abs(slow[0]) > 1e-6  # the correction is not zero
    correction.evaluate(h, [x[0] + 0.01])
    plain.evaluate(h, [x[0] + 0.01])
    assert model.plain_calls == 2


def test_error_and_md_read_ipi_xyz_with_its_cell(tmp_path, water_190, reference_path):
    """An i-PI xyz trajectory (cell in a comment ASE ignores) is read with its cell: `symprobe
    error` on it gives the numbers of the same frames in extxyz, and `symprobe md` starts from
    its first frame as a periodic structure."""
    import ase.io
    frames = water_190[:2]
    write_ipi_xyz(tmp_path / "sim.pos_0.xyz", frames, [0, 10], 0)
    ase.io.write(tmp_path / "frames.xyz", frames)
    model = reference_path("water-orientation")
    rows = {}
    for name in ("sim.pos_0.xyz", "frames.xyz"):
        out = tmp_path / f"out-{name}"
        assert main(["error", str(tmp_path / name), "--model", model, "--sets", "0", "--reference", "2",
                     "--output", str(out)]) == 0
        rows[name] = json.loads((out / "rotational-error.json").read_text())["rows"][0]
    assert rows["sim.pos_0.xyz"]["energy_meV_per_frame"] == pytest.approx(rows["frames.xyz"]["energy_meV_per_frame"], rel=1e-6)
    assert rows["sim.pos_0.xyz"]["force_meV_per_A"] == pytest.approx(rows["frames.xyz"]["force_meV_per_A"], rel=1e-6)
    assert main(["md", "--model", model, "--structure", str(tmp_path / "sim.pos_0.xyz"), "--steps", "2",
                 "--interval", "1", "--output", str(tmp_path / "md.xyz")]) == 0
    start = ase.io.read(tmp_path / "md.xyz", index=0)
    assert start.pbc.all()
    # md's frames carry the model's own energy and forces: not labels
    assert start.info["source"] == "symprobe md" and start.get_forces().shape == (len(start), 3)
    assert main(["error", str(tmp_path / "md.xyz"), "--model", model, "--sets", "0", "--reference", "2",
                 "--output", str(tmp_path / "out-md")]) == 0
    row = json.loads((tmp_path / "out-md" / "rotational-error.json").read_text())["rows"][0]
    assert not any(key.startswith("label_") for key in row)
    np.testing.assert_allclose(start.cell.lengths(), frames[0].cell.lengths(), atol=1e-6)


def test_bulk_example_fails_clearly_when_a_driver_stops(tmp_path):
    """examples/probe/bulk.py: a driver that cannot start (an unknown model) ends the script with
    a message naming its log, without leaving i-PI waiting for a client; bad arguments are
    refused before anything runs."""
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "examples" / "probe" / "bulk.py"
    run = subprocess.run([sys.executable, str(script), "--model", "no-such-model", "--time", "0.01",
                          "--start", "0", "--runs", "plain", "--output", "out"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "plain: the driver stopped" in run.stderr and "out/plain/driver.log" in run.stderr
    for argv, message in ((["--runs", "plain,plain"], "each run once"), (["--jobs", "0"], "--jobs must be >= 1"),
                          (["--timestep", "0.3"], "must divide the 5 fs outer step")):
        run = subprocess.run([sys.executable, str(script), *argv, "--output", "other"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and message in run.stderr
        assert not (tmp_path / "other").exists()
