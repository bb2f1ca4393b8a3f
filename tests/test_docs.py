"""Code in the documentation runs and does what it says."""
import os
import re
import runpy
import shutil
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symprobe.water import water_box

from conftest import fenced_blocks

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(name):
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), flags=re.S)


def test_model_contract_export_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "example.py"  # TorchScript reads the source from a file
    script.write_text(python_blocks("model-contract.md")[0])
    scope = runpy.run_path(str(script), run_name="__main__")
    model = scope["model"]
    assert model.dtype == "float32" and model.cutoff == 4.0
    atoms = water_box(8, seed=1)
    res = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    # a float32 model: forces agree with float64 finite differences of its energy to ~1e-4
    i, h = 3, 1e-3
    pos = atoms.positions.copy()
    pos[i, 2] += h
    ep = model.compute(pos, atoms.numbers, atoms.cell.array, True)["energy"]
    pos[i, 2] -= 2 * h
    em = model.compute(pos, atoms.numbers, atoms.cell.array, True)["energy"]
    assert -(ep - em) / (2 * h) == pytest.approx(res["forces"][i, 2], abs=2e-4)
    # the example is not rotation-invariant: the virial is not symmetric
    assert np.abs(res["virial"] - res["virial"].T).max() > 1e-6


# --- every command shown in README.md and docs/ -------------------------------------------------

ROOT = DOCS.parent
VENV_BIN = Path(sys.executable).parent


def shell_env():
    """The documented environment: the venv's commands (lmp, mpirun, python, symprobe-ipi) on
    PATH, as after `source .venv/bin/activate`."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


# Shell blocks that no test runs verbatim, and why. Every other bash block of README.md and
# docs/ must be run by a test of this file or of the file named.
NOT_RUN_HERE = {
    ("README.md", 0): "the first two commands: .ci/run runs setup.sh and the test command; the "
                      "main job runs in tests/test_cli.py with its options",
    ("README.md", 1): "the bundled model's two-stage training recipe: hours of CPU "
                      "(tests/test_pet.py checks that the recipes are valid)",
    ("docs/water-model.md", 0): "the same training recipe, hours of CPU",
    ("docs/ipi.md", None): "run by tests/test_docs_ipi.py",
    ("docs/performance.md", 0): "the GPU check on a GPU; the same script runs on the CPU in "
                                "test_gpu_check_on_the_cpu",
}


def test_every_shell_block_is_run_by_a_test():
    documents = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    for doc in documents:
        name = str(doc.relative_to(ROOT))
        for k, block in enumerate(fenced_blocks(doc, "bash")):
            if (name, k) in NOT_RUN_HERE or (name, None) in NOT_RUN_HERE:
                continue
            assert (name, k) in RUN_HERE, f"{name}: bash block {k} is run by no test:\n{block}"


def lammps_thermo(log):
    """Rows of the thermo table of a LAMMPS log (after the header that starts with Step)."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["Step"])
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("Loop time"):
            break
        rows.append([float(v) for v in line.split()])
    return np.array(rows)


def test_lammps_example_commands(tmp_path):
    """docs/lammps.md: the commands run verbatim in a copy of examples/lammps; the input shown is
    the file; every run's first energy and torque equal the core's at step 0."""
    import ase.io
    import symprobe
    doc = DOCS / "lammps.md"
    shown = fenced_blocks(doc, "")[0]
    assert shown == (ROOT / "examples" / "lammps" / "in.water").read_text()
    commands = fenced_blocks(doc, "bash")[0].strip().splitlines()
    assert commands[0] == "cd examples/lammps"
    work = tmp_path / "examples" / "lammps"
    shutil.copytree(ROOT / "examples" / "lammps", work)
    atoms = ase.io.read(work / "water.data", format="lammps-data", Z_of_type={1: 8, 2: 1})
    model = symprobe.load_model("water-pet", rotations="random", seed=42)
    ref = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True, step=0)
    for command in commands[1:]:
        run = subprocess.run(command, shell=True, cwd=work, env=shell_env(), capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, command + "\n" + run.stdout[-3000:] + run.stderr[-3000:]
        rows = lammps_thermo((work / "log.lammps").read_text())
        assert rows.shape == (5, 8) and np.all(np.isfinite(rows))
        # a float32 model: LAMMPS's graph lists each atom's edges in another order, so every
        # attention sums in another order; the per-atom energies agree to float32 rounding
        # (6e-8 of O(1) eV network energies), their sum over 192 atoms to ~1e-5 eV
        assert rows[0, 2] == pytest.approx(ref["energy"], abs=1e-5), command
        # and the torque (an antisymmetric part of W) agrees to float32 rounding of |W|
        np.testing.assert_allclose(rows[0, 5:], ref["net_torque"], atol=1e-6 * np.abs(ref["virial"]).max())
        assert np.all(rows[:, 3] == 0.0)  # one rotation per step: no spread


def test_gpu_check_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.sh, as documented for the CPU: builds, runs the device tests on the
    CPU and writes throughput rows for both models."""
    block = fenced_blocks(DOCS / "performance.md", "bash")[1]
    assert "--device cpu" in block
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")  # run from a user's directory
    out = subprocess.run(["bash", "-c", block], cwd=tmp_path, env=shell_env(), capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = re.search(r"^(\d+) passed, \d+ deselected in", out.stdout, re.M)  # the device tests
    assert summary and int(summary.group(1)) >= 4, out.stdout
    payload = json.loads((tmp_path / "gpu-check-cpu.json").read_text())
    assert payload["device"] == "cpu"
    rows = {(r["model"], r["rotations"]) for r in payload["rows"]}
    assert rows == {("water-pet", 1), ("water-pet", 36), ("PET-size", 1)}
    assert all("error" not in r and r["atom_steps_per_second"] > 0 and r["copies_per_step"] is None for r in payload["rows"])


@pytest.fixture(scope="module")
def metatomic_workflow(tmp_path_factory):
    """docs/metatomic.md's first block, run verbatim in a copy of the examples with shared/
    beside it: the trained model and every command's output, for the tests below."""
    pytest.importorskip("metatrain")
    root = tmp_path_factory.mktemp("metatomic")
    for folder in ("examples/metatomic", "examples/lammps", "examples/ipi/classical"):
        shutil.copytree(ROOT / folder, root / "repo" / folder)
    (root / "shared").symlink_to(ROOT.parent / "shared")
    work = root / "repo" / "examples" / "metatomic"
    commands = fenced_blocks(DOCS / "metatomic.md", "bash")[0].strip().splitlines()
    assert commands[0] == "cd examples/metatomic"
    outputs = {}
    for command in commands[1:]:
        run = subprocess.run(command, shell=True, cwd=work, env=shell_env(), capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, command + "\n" + run.stdout[-3000:] + run.stderr[-3000:]
        outputs[command.split()[0 if not command.startswith("mpirun") else 3]] = run.stdout
    return work, outputs


def test_metatomic_workflow(metatomic_workflow):
    """metatrain trains and exports a PET that the core loads as a metatomic model; symprobe md
    runs it with grid 2 + inversion; LAMMPS on 2 ranks starts at the core's energy of step 0
    with the random rotation of seed 42."""
    import ase.io
    import symprobe
    work, outputs = metatomic_workflow
    model = symprobe.load_model(work / "pet-water.pt", rotations="random", seed=42)
    assert model.kind == "metatomic" and model.elements == ["H", "O"]
    assert "grid 2, inversion" in outputs["symprobe"] and "steps/s" in outputs["symprobe"]
    atoms = ase.io.read(work / "../lammps/water.data", format="lammps-data", Z_of_type={1: 8, 2: 1})
    ref = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True, step=0)
    rows = lammps_thermo((work / "log.lammps").read_text())
    assert rows.shape == (5, 8) and np.all(np.isfinite(rows))
    assert "metatomic model on 2 ranks" in (work / "log.lammps").read_text()
    # a float32 model whose per-atom energies carry the composition baseline (~ -156 eV): two
    # ranks see other neighbour orders and ghosts, so each per-atom energy differs by float32
    # rounding (1.5e-5 eV) and the sum over N atoms by ~sqrt(N) of that
    ulp = float(np.spacing(np.float32(abs(ref["energy"]) / len(atoms))))
    assert rows[0, 2] == pytest.approx(ref["energy"], abs=np.sqrt(len(atoms)) * ulp)
    np.testing.assert_allclose(rows[0, 5:], ref["net_torque"], atol=1e-6 * np.abs(ref["virial"]).max())


def test_metatomic_ipi_commands(metatomic_workflow):
    """docs/metatomic.md's i-PI block, verbatim: the first potential i-PI prints is the core's
    grid 2 + inversion energy of the start structure."""
    import ase.io
    import symprobe
    from symprobe.units import HARTREE_EV
    from ipi.utils.units import unit_to_internal
    work, _ = metatomic_workflow
    block = fenced_blocks(DOCS / "metatomic.md", "bash")[1]
    try:
        run = subprocess.run(["bash", "-c", block], cwd=work, env=shell_env(), capture_output=True,
                             text=True, timeout=600)
    finally:
        Path("/tmp/ipi_symprobe-metatomic").unlink(missing_ok=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "EXIT received" in run.stdout
    rows = np.loadtxt(work / "sim.out", ndmin=2)
    assert len(rows) == 11
    atoms = ase.io.read(work / "../ipi/classical/init.xyz")
    ref = symprobe.load_model(work / "pet-water.pt", rotations="grid 2", inversion=True).compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True)
    # i-PI prints 9 digits, in eV converted with its own Hartree
    first = rows[0, 5] * unit_to_internal("energy", "electronvolt", 1.0) * HARTREE_EV
    assert first == pytest.approx(ref["energy"], abs=3e-4)


def test_metatomic_ase_example(metatomic_workflow, monkeypatch, capsys):
    import symprobe
    import ase.io
    work, _ = metatomic_workflow
    monkeypatch.chdir(work)
    script = work / "ase_example.py"
    script.write_text(python_blocks("metatomic.md")[0])
    runpy.run_path(str(script), run_name="__main__")
    energy, spread = map(float, capsys.readouterr().out.split())
    atoms = ase.io.read(work / "../ipi/classical/init.xyz")
    ref = symprobe.load_model(work / "pet-water.pt", rotations="grid 2", inversion=True).compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True)
    assert energy == pytest.approx(ref["energy"], abs=1e-9)
    assert spread == pytest.approx(ref["energy_spread"], abs=1e-9) and spread > 0


RUN_HERE = {("docs/lammps.md", 0): test_lammps_example_commands,
            ("docs/performance.md", 1): test_gpu_check_on_the_cpu,
            ("docs/metatomic.md", 0): test_metatomic_workflow,
            ("docs/metatomic.md", 1): test_metatomic_ipi_commands}


def test_readme_python_example(tmp_path, monkeypatch, capsys):
    """README.md's "Using it" block runs as written and prints energy, forces shape and stress,
    then the symmetry diagnostics of a grid-averaged orientation model."""
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "readme.py"
    script.write_text(fenced_blocks(ROOT / "README.md", "python")[0])
    scope = runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "(192, 3)" in lines[0]
    out = scope["out"]
    assert out["energy_spread"] > 0 and len(out["rotation_energies"]) == 36
    assert scope["nl"].centers.shape == scope["nl"].neighbors.shape


def test_probing_commands(tmp_path):
    """docs/probing.md's quick tour runs verbatim in a copy of examples/probe (with ../shared
    beside the copied checkout, as beside this one) and writes what the page says."""
    from conftest import shared_file
    shared_file("paper-archive/test_errors.delta")
    commands = fenced_blocks(DOCS / "probing.md", "bash")[0].strip().splitlines()
    assert commands[0] == "cd examples/probe"
    checkout = tmp_path / "main"
    work = checkout / "examples" / "probe"
    shutil.copytree(ROOT / "examples" / "probe", work)
    shutil.copytree(ROOT / "examples" / "ipi", checkout / "examples" / "ipi")  # bulk.py's start box
    (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    for command in commands[1:]:
        run = subprocess.run(command, shell=True, cwd=work, env=shell_env(), capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, command + "\n" + run.stdout[-3000:] + run.stderr[-3000:]
    error = json.loads((work / "error-molecule" / "rotational-error.json").read_text())
    assert error["frames"] == list(range(0, 100, 10))
    rows = {r["set"]: r for r in error["rows"]}
    assert rows["0"]["energy_meV_per_frame"] > rows["2i"]["energy_meV_per_frame"] > 0
    gas = json.loads((work / "gas-phase.json").read_text())
    assert gas["runs"]["torque-free"]["L_norm"][-1] < 1e-9 < gas["runs"]["plain"]["L_norm"][-1]
    angular = json.loads((work / "analysis-molecule" / "angular.json").read_text())["angular"]
    assert angular["torque-free"]["L_change"] < 1e-6 < angular["plain"]["L_change"]
    ice = json.loads((work / "ice-quick.json").read_text())
    assert [c["atoms"] for c in ice["cells"]] == [288, 288]
    assert all(c["plain_converged"] for c in ice["cells"])
    for name, beads in (("bulk-quick", None), ("bulk-pimd-quick", 4)):
        analysis = work / name / "analysis"
        runs = json.loads((analysis / "rdf.json").read_text())["runs"]
        assert set(runs) == {"plain", "2i"} and all(r["beads"] == beads for r in runs.values())
        thermo = json.loads((analysis / "thermo.json").read_text())["thermo"]
        for run in thermo.values():
            assert 150 < run["temperature_K"][0] < 600
            if beads:  # the quantum kinetic energy of H exceeds the classical 3/2 kT = 39 meV
                assert run["kinetic_cv_H_meV_per_atom"][0] > 45
        assert "2i" in (analysis / "summary.md").read_text()
    error = json.loads((work / "error-bulk-quick" / "rotational-error.json").read_text())
    assert error["frames"] == [0, 1] and [r["set"] for r in error["rows"]] == ["0", "2"]
    paper = json.loads((work / "paper-table.json").read_text())
    assert paper["test_errors"]["rows"][0]["energy_meV_per_frame"] == pytest.approx(5.07, abs=0.01)


def test_probing_mts_commands(tmp_path):
    """docs/probing.md's multiple-time-stepping block, verbatim: i-PI runs its 4 outer steps
    with one driver on two sockets, and the first potential is the core's grid 2 + inversion
    energy (plain + correction) of the start structure."""
    import ase.io
    import symprobe
    from symprobe.units import HARTREE_EV
    from ipi.utils.units import unit_to_internal
    block = fenced_blocks(DOCS / "probing.md", "bash")[1]
    assert block.startswith("cd examples/probe/mts\n")
    shutil.copytree(ROOT / "examples" / "probe", tmp_path / "examples" / "probe")
    shutil.copytree(ROOT / "examples" / "ipi", tmp_path / "examples" / "ipi")
    try:
        run = subprocess.run(["bash", "-c", block], cwd=tmp_path, env=shell_env(), capture_output=True,
                             text=True, timeout=600)
    finally:
        for name in ("plain", "correction"):
            Path(f"/tmp/ipi_symprobe-{name}").unlink(missing_ok=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "multiple time stepping" in run.stdout and "EXIT received" in run.stdout
    rows = np.loadtxt(tmp_path / "examples" / "probe" / "mts" / "sim.out", ndmin=2)
    assert len(rows) == 5
    atoms = ase.io.read(ROOT / "examples" / "ipi" / "classical" / "init.xyz")
    ref = symprobe.load_model("water-pet", rotations="grid 2", inversion=True).compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True)
    first = rows[0, 4] * unit_to_internal("energy", "electronvolt", 1.0) * HARTREE_EV
    assert first == pytest.approx(ref["energy"], abs=3e-4)


RUN_HERE[("docs/probing.md", 0)] = test_probing_commands
RUN_HERE[("docs/probing.md", 1)] = test_probing_mts_commands
NOT_RUN_HERE[("docs/probing.md", 2)] = "the paper-length gas-phase run: 10^6 steps per run, hours"
NOT_RUN_HERE[("docs/probing.md", 3)] = ("the NVT orientation runs: 10 ps each, minutes of CPU; the same "
                                        "commands at 200 steps run in test_probing_commands")
NOT_RUN_HERE[("docs/probing.md", 4)] = ("the table's runs on the labelled frames and on 512 molecules: half an "
                                        "hour of CPU; symprobe error and symprobe md on smaller inputs run "
                                        "in test_probing_commands")
NOT_RUN_HERE[("docs/probing.md", 5)] = ("the ice run: 9 cells, 3 minutes of CPU; the same script on 2 cells "
                                        "runs in test_probing_commands")
NOT_RUN_HERE[("docs/probing.md", 6)] = ("the bulk runs: 1 ps each, half an hour of CPU; bulk.py at 50 fs and "
                                        "symprobe error and analyze on its output run in test_probing_commands")
NOT_RUN_HERE[("docs/probing.md", 7)] = ("the path-integral runs: 0.5 ps of 8 beads each, an hour of CPU; "
                                        "bulk.py --beads 4 at 30 fs runs in test_probing_commands")
