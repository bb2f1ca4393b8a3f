"""The README's main job (`symprobe md`) and the bundled reference models."""
import os
import re
import subprocess
import sys

import ase.io
import numpy as np
import pytest

import symprobe
import symprobe.models
from symprobe.models import BUNDLED, bundled_path
from symprobe.water import water_box


def test_md_command_writes_trajectory_and_never_overwrites(tmp_path):
    out = tmp_path / "md.xyz"
    out.write_text("user's file\n")
    cmd = [sys.executable, "-m", "symprobe.cli", "md", "--steps", "40", "--interval", "20",
           "--molecules", "8", "--output", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert out.read_text() == "user's file\n"
    written = tmp_path / "md-1.xyz"
    assert f"trajectory: {written} (3 frames)" in run.stdout
    frames = ase.io.read(written, index=":")
    assert len(frames) == 3 and len(frames[0]) == 24
    assert "T=" in run.stdout and "Epot=" in run.stdout
    assert np.isfinite(frames[-1].get_potential_energy())


def test_md_command_with_rotations(tmp_path):
    cmd = [sys.executable, "-m", "symprobe.cli", "md", "--steps", "4", "--interval", "2",
           "--molecules", "4", "--model", "water-orientation", "--rotations", "grid", "2",
           "--inversion", "--output", str(tmp_path / "rot.xyz")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "rotations grid 2, inversion" in run.stdout and "dE_rot=" in run.stdout
    bad = subprocess.run(cmd[:-2] + ["--rotations", "grid", "x"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert bad.returncode == 2 and "rotations grid needs an order L" in bad.stderr
    assert "Traceback" not in bad.stderr
    for args, message in ((["--seed", "-1"], "seed must be a non-negative integer"),
                          (["--skin", "-0.5"], "skin must be a non-negative length in Angstrom"),
                          (["--chunk", "two"], "chunk must be a non-negative integer")):
        bad = subprocess.run(cmd[:-2] + args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr


def test_md_command_rejects_bad_arguments(tmp_path):
    run = subprocess.run([sys.executable, "-m", "symprobe.cli", "md", "--timestep", "-1"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode != 0 and "--timestep" in run.stderr


@pytest.mark.parametrize("name", sorted(set(BUNDLED) - {"water-pet"}))
def test_bundled_models_equal_their_source(name, tmp_path):
    """The committed reference .pt files are exactly what reference.py exports today (the
    trained water-pet is checked against its training run in test_water_pet.py)."""
    from symprobe.water.reference import export_reference
    fresh = symprobe.load_model(export_reference(name, tmp_path / "fresh.pt"))
    shipped = symprobe.load_model(name)
    assert shipped.path == bundled_path(name)
    assert shipped.metadata == fresh.metadata
    atoms = water_box(27, seed=2)
    a = shipped.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    b = fresh.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    assert a["energy"] == b["energy"]
    np.testing.assert_array_equal(a["forces"], b["forces"])


def test_bundled_names_resolve_in_the_core(tmp_path, monkeypatch):
    """The core (shared by Python, LAMMPS and i-PI) knows exactly the documented bundled names;
    a file that exists wins over a name; an unknown name is refused with the list."""
    from symprobe import _runtime
    assert _runtime.bundled_models() == sorted(BUNDLED)
    for name in BUNDLED:
        path = _runtime.resolve_model_path(name)
        package_file = os.path.join(os.path.dirname(symprobe.models.__file__), name + ".pt")
        assert os.path.samefile(path, package_file)
        assert bundled_path(name) == path
        assert os.path.isabs(path) and ".." not in path.split(os.sep)
    assert bundled_path("water-pett") is None
    shipped = bundled_path("water-pet")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "water-pet").write_bytes(b"not a model")
    # the user's file wins, named in full; bundled_path still gives the shipped file
    assert _runtime.resolve_model_path("water-pet") == os.path.realpath(tmp_path / "water-pet")
    assert bundled_path("water-pet") == shipped
    assert not os.path.samefile(shipped, "water-pet")
    with pytest.raises(FileNotFoundError, match=r"'water-pett' .*\(bundled models: water-orientation"):
        symprobe.load_model("water-pett")


def test_water_box():
    atoms = water_box(64, density=0.997)
    mass = atoms.get_masses().sum() * 1.66053906660e-24  # g
    assert mass / (atoms.get_volume() * 1e-24) == pytest.approx(0.997, rel=1e-3)
    d = symprobe.neighbor_list(atoms.positions, atoms.cell.array, True, 2.0)
    # no intermolecular contact closer than 2 A: only the two O-H bonds (and H-H) per molecule
    r = np.linalg.norm(d.vectors, axis=1)
    assert np.sum(r < 1.0) == 4 * 64
    with pytest.raises(ValueError, match="n_molecules"):
        water_box(0)


def test_md_random_rotation_of_step_k_is_the_cores_rotation_k(tmp_path):
    """docs/symmetrization.md: in `symprobe md`, MD step k is evaluated with the core's random
    rotation of step k (one evaluation per step, the start structure being step 0)."""
    out = tmp_path / "random.xyz"
    cmd = [sys.executable, "-m", "symprobe.cli", "md", "--steps", "6", "--interval", "3",
           "--molecules", "4", "--model", "water-orientation", "--rotations", "random",
           "--seed", "5", "--thermostat", "none", "--output", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    frames = ase.io.read(out, index=":")
    assert len(frames) == 3
    model = symprobe.load_model("water-orientation", rotations="random", seed=5)
    for step, atoms in zip((0, 3, 6), frames):
        expected = [model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True,
                                  step=k)["energy"] for k in (step - 1, step, step + 1) if k >= 0]
        # extxyz keeps positions to 1e-8 A: energies agree to ~1e-7 eV, rotations differ by far more
        got, right = atoms.get_potential_energy(), expected[0 if step == 0 else 1]
        assert got == pytest.approx(right, abs=1e-6)
        assert all(abs(got - e) > 1e-4 for e in expected if e != right)


def test_every_front_end_takes_every_option_of_the_core():
    """The option vocabulary lives in the core's table: the command lines are generated from it
    and load_model / Calculator pass every name on (a new option needs no front-end change)."""
    from symprobe.runtime import option_table
    table = option_table()
    assert {o["name"] for o in table} >= {"rotations", "inversion", "randomize", "seed", "chunk",
                                          "skin", "threads", "device"}
    helps = [subprocess.run([sys.executable, "-m", module] + args + ["--help"], capture_output=True,
                            text=True, timeout=120).stdout
             for module, args in (("symprobe.cli", ["md"]), ("symprobe.ipi", []))]
    defaults = {}
    for option in table:
        for text in helps:
            assert f"--{option['name']}" in text, option["name"]
        defaults[option["name"]] = option["default"] == "yes" if option["flag"] else option["default"]
    model = symprobe.load_model("water-reference", **defaults)
    assert model.rotations == "none" and model.seed == 0 and model.skin == 0.0
    calc = symprobe.Calculator("water-reference", **defaults)
    assert calc.model.rotations == "none"


def run_md(workdir, *args):
    cmd = [sys.executable, "-m", "symprobe.cli", "md", "--steps", "400", "--interval", "50",
           "--threads", "1", *args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=workdir)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout


def report_temperatures(stdout):
    return [float(m) for m in re.findall(r"^step +\d+ .* T= *([-\d.]+) K", stdout, flags=re.M)]


@pytest.fixture(scope="module")
def default_md(tmp_path_factory):
    """The main job's defaults (the bundled equilibrated box), shortened to 400 steps."""
    work = tmp_path_factory.mktemp("md")
    return work, run_md(work)


def test_default_md_starts_in_equilibrium(default_md, tmp_path):
    """From the bundled equilibrated box the temperature stays within ~3 standard deviations of
    the thermostat's natural fluctuation (T sqrt(2/3N) = 18 K at 192 atoms) from the first
    report on; the generated lattice box (the start before) breaks that bound."""
    work, stdout = default_md
    assert "equilibrated at 300 K by water-pet" in stdout
    temperatures = report_temperatures(stdout)
    assert len(temperatures) == 9
    assert max(abs(t - 300.0) for t in temperatures[1:]) < 60.0, temperatures
    lattice = tmp_path / "lattice.xyz"
    ase.io.write(lattice, water_box(64, seed=0))
    broken = report_temperatures(run_md(tmp_path, "--structure", str(lattice), "--steps", "100"))
    assert max(abs(t - 300.0) for t in broken[1:]) > 60.0, broken


def test_md_summary_equals_the_trajectory(default_md):
    """Every number of the closing summary is recomputed from the written trajectory."""
    work, stdout = default_md
    assert "columns: step; t: simulated time (ps)" in stdout  # the legend
    frames = ase.io.read(work / "md.xyz", index=":")
    assert len(frames) == 9 and f"trajectory: md.xyz (9 frames)" in stdout
    summary = stdout[stdout.index("summary:"):]
    assert "0.200 ps simulated (400 steps of 0.5 fs)" in summary
    temperatures = np.array([a.get_temperature() for a in frames[1:]])
    mean, std, count = re.search(r"temperature: mean ([\d.]+) K, std ([\d.]+) K over (\d+) reports",
                                 summary).groups()
    assert float(mean) == pytest.approx(temperatures.mean(), abs=0.051)
    assert float(std) == pytest.approx(temperatures.std(), abs=0.051)
    assert int(count) == 8
    torque, spread = re.search(r"mean \|torque\| ([\d.e+-]+) eV, mean dE_inv ([\d.]+) meV", summary).groups()
    torques = [np.linalg.norm(a.info["net_torque_eV"]) for a in frames]
    assert float(torque) == pytest.approx(np.mean(torques), rel=1e-3)
    spreads = [a.info["inversion_spread_eV"] for a in frames]
    assert float(spread) == pytest.approx(1e3 * np.mean(spreads), abs=5e-4)
    assert min(spreads) > 0  # water-pet is not invariant under inversion
    # dE_inv is |E(x) - E(-x)| of the written frame
    model = symprobe.load_model("water-pet")
    last = frames[-1]
    e = [model.compute(sign * last.positions, last.numbers, sign * last.cell.array, True)["energy"]
         for sign in (1, -1)]
    assert last.info["inversion_spread_eV"] == pytest.approx(abs(e[0] - e[1]), abs=1e-5)
    assert "not defined (the Langevin thermostat exchanges heat)" in summary
    assert re.search(r"speed: [\d.]+ steps/s, \d+ atom-steps/s", summary)
    assert "symprobe md --rotations grid 2 --inversion --steps 200" in stdout


def test_md_nve_summary_reports_the_drift(tmp_path):
    out = run_md(tmp_path, "--molecules", "8", "--model", "water-reference", "--thermostat", "none",
                 "--steps", "100", "--interval", "20", "--timestep", "0.25")
    frames = ase.io.read(tmp_path / "md.xyz", index=":")
    times = np.array([a.info["time_ps"] for a in frames])
    etot = np.array([a.get_potential_energy() + a.get_kinetic_energy() for a in frames])
    drift = np.polyfit(times, etot, 1)[0] / 24
    got = float(re.search(r"conserved energy drift: ([-+\d.]+) meV/atom/ps", out).group(1))
    assert got == pytest.approx(1e3 * drift, abs=1e-3)


def test_md_never_modifies_the_given_structure(tmp_path):
    start = tmp_path / "start.xyz"
    atoms = water_box(8, seed=3)
    ase.io.write(start, atoms)
    before = start.read_bytes()
    run_md(tmp_path, "--structure", str(start), "--model", "water-reference", "--steps", "20",
           "--interval", "10")
    assert start.read_bytes() == before
