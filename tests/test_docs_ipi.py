"""Every shell command in docs/ipi.md runs, exactly as written, in a copy of the example folder
it belongs to, against real i-PI; the outcomes are checked against the core's own evaluation.

Each ```bash block of docs/ipi.md is preceded by `<!-- test: ID -->`; ID names the test below.
The blocks use the fixed socket names of the examples' input.xml (/tmp/ipi_symprobe-*): a lock
file serialises these tests across concurrent pytest runs, and each test removes its socket
file afterwards (i-PI leaves it behind when killed).

The blocks run with OMP_NUM_THREADS=1, and the reference evaluations with threads=1: on a
2-core machine with other work running, torch's default two OpenMP threads make an evaluation
of the examples 15x slower (1.2 s instead of 0.07 s), and these tests must stay short.
"""
import fcntl
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest

import symprobe

from ipi_support import Processes, finish, wait_for

pytest.importorskip("ipi")

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ipi.md"
EXAMPLES = ROOT / "examples" / "ipi"
TESTED = {"classical", "pimd", "py_driver"}
LOCK = Path("/tmp/symprobe-test-docs-ipi.lock")


def doc_blocks():
    """{ID: script} of the doc's code blocks; every code block must carry a test marker."""
    text = DOC.read_text()
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    marked = re.findall(r"^<!-- test: (\w+) -->\n```bash\n(.*?)^```", text, flags=re.S | re.M)
    assert len(marked) == len(blocks), "a code block in docs/ipi.md has no `<!-- test: ID -->`"
    ids = [m[0] for m in marked]
    assert len(set(ids)) == len(ids), f"duplicate test ids in docs/ipi.md: {ids}"
    return dict(marked)


def ipi_ev_to_symprobe_ev(values):
    """i-PI converts the Hartree the driver sent to eV with its own constant (1e-7 from CODATA
    2018's): undo it, so that i-PI's output compares with the core to the printed digits."""
    from ipi.utils.units import unit_to_internal
    from symprobe.units import HARTREE_EV
    return np.asarray(values) * unit_to_internal("energy", "electronvolt", 1.0) * HARTREE_EV


# i-PI prints 9 significant digits (1e-4 eV at 3e4 eV); the positions it writes carry 1e-8 A
ENERGY_ATOL = 3e-4


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """threads=1 below sets torch's process-wide thread count: restore it for later tests."""
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def exclusive():
    """Serialises the tests that use the examples' fixed socket names."""
    with open(LOCK, "w") as lock:
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{LOCK} held by another run for 600 s")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_block(block_id, example, tmp_path, address, timeout=None, until=None):
    """Runs the doc's block `block_id` with bash in a copy of examples/ipi/`example`; the
    socket /tmp/ipi_`address` must be the one the block uses. Waits for the block to finish
    (timeout s) or, with `until`, for until(workdir) to hold; stops everything it started and
    removes the socket file. Returns (workdir, exit status or None, the block's output)."""
    script = doc_blocks()[block_id]
    # the block and the example's input.xml agree on the socket
    assert address in script
    assert f"<address>{address}</address>" in (EXAMPLES / example / "input.xml").read_text()
    work = tmp_path / example
    shutil.copytree(EXAMPLES / example, work)
    path = Path(f"/tmp/ipi_{address}")
    if path.exists():  # left by a killed i-PI (we hold the lock), or a foreign live i-PI
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
                pytest.fail(f"{path} is in use by a running i-PI: stop it and rerun")
            except ConnectionRefusedError:
                path.unlink()
    procs = Processes(work)
    rc = None
    try:
        shell = procs.shell(script, name="block", OMP_NUM_THREADS="1")
        try:
            if until is None:
                rc = finish(shell, timeout)
            else:
                wait_for(lambda: shell.poll() is not None or until(work), timeout,
                         f"the block '{block_id}' to get far enough")
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{logs(work)}") from None
        assert until is None or until(work), f"the block ended early:\n{logs(work)}"
    finally:
        procs.stop()
        if path.exists():
            path.unlink()
    return work, rc, (work / "block.log").read_text()


def logs(work, chars=3000):
    """The ends of the block's output and of i-PI's log, for failure messages."""
    out = []
    for name in ("block.log", "ipi.log"):
        if (work / name).exists():
            out.append(f"--- {name}:\n{(work / name).read_text()[-chars:]}")
    return "\n".join(out)


def properties(work):
    return np.loadtxt(work / "sim.out", ndmin=2)


def steps_written(work):
    out = work / "sim.out"
    return sum(1 for line in out.read_text().splitlines()
               if line.strip() and not line.startswith("#")) if out.exists() else 0


def test_every_code_block_is_run():
    """Every code block of docs/ipi.md is a marked bash block that one of these tests runs."""
    assert set(doc_blocks()) == TESTED


def test_classical_example(tmp_path, exclusive):
    t0 = time.monotonic()
    work, rc, out = run_block("classical", "classical", tmp_path, "symprobe-classical",
                              timeout=240)
    assert rc == 0, logs(work)
    assert out.count("symprobe-ipi: EXIT received") == 1, out
    assert "I-PI reports success" in (work / "ipi.log").read_text(), logs(work)
    props = properties(work)
    np.testing.assert_array_equal(props[:, 0], np.arange(21))  # steps 0..20, all done
    assert np.isfinite(props).all()
    # the potential i-PI received is the core's energy of the start structure...
    model = symprobe.load_model("water-pet", threads=1)
    start = ase.io.read(work / "init.xyz")
    e0 = model.compute(start.positions, start.numbers, start.cell.array, True)["energy"]
    assert props[0, 5] == pytest.approx(e0, rel=1e-6)
    assert ipi_ev_to_symprobe_ev(props[0, 5]) == pytest.approx(e0, abs=ENERGY_ATOL)
    # ...and of the structures i-PI moved to (the trajectory every 10 steps)
    frames = ase.io.read(work / "sim.pos_0.extxyz", index=":")
    assert len(frames) == 3
    for frame, row in zip(frames, props[::10]):
        assert int(re.search(r"Step:\s*(\d+)", frame.info["ipi_comment"])[1]) == row[0]
        direct = model.compute(frame.positions, start.numbers, frame.cell.array, True)["energy"]
        assert ipi_ev_to_symprobe_ev(row[5]) == pytest.approx(direct, abs=ENERGY_ATOL)
    assert abs(props[-1, 5] - props[0, 5]) > 10 * ENERGY_ATOL  # the atoms did move
    print(f"classical example: {time.monotonic() - t0:.1f} s")


def test_pimd_example(tmp_path, exclusive):
    """Two drivers with their own seeds: every bead potential of step 0 (all beads on the start
    structure) is the core's energy for rotation k of seed 42 or 43, the k-th evaluation of
    one of the drivers (docs/ipi.md, Random rotations)."""
    t0 = time.monotonic()
    work, rc, out = run_block("pimd", "pimd", tmp_path, "symprobe-pimd", timeout=300)
    assert rc == 0, logs(work)
    assert out.count("symprobe-ipi: EXIT received") == 2, out  # both drivers served
    assert "(random, seed 42)" in out and "(random, seed 43)" in out, out
    assert "I-PI reports success" in (work / "ipi.log").read_text(), logs(work)
    props = properties(work)
    np.testing.assert_array_equal(props[:, 0], np.arange(11))  # steps 0..10, all done
    beads = props[:, 6:10]  # bead_potentials{electronvolt}
    assert beads.shape == (11, 4) and np.isfinite(props).all()
    np.testing.assert_allclose(props[:, 5], beads.mean(axis=1), rtol=1e-8)
    start = ase.io.read(work / "init.xyz")
    candidates = {}
    for seed in (42, 43):
        model = symprobe.load_model("water-pet", rotations="random", seed=seed, threads=1)
        for k in range(4):
            candidates[seed, k] = model.compute(start.positions, start.numbers,
                                                start.cell.array, True, step=k)["energy"]
    matched = []
    for value in ipi_ev_to_symprobe_ev(beads[0]):
        hits = [c for c, e in candidates.items() if abs(e - value) < ENERGY_ATOL]
        assert len(hits) == 1, (value, candidates)
        matched.append(hits[0])
    # 4 distinct evaluations: driver 42 answered its first a requests, driver 43 the other 4-a
    assert len(set(matched)) == 4, matched
    a = sum(1 for seed, _ in matched if seed == 42)
    assert set(matched) == {(42, k) for k in range(a)} | {(43, k) for k in range(4 - a)}
    # the beads are 4 different rotations of one structure: the model is not invariant
    assert np.ptp(beads[0]) > 10 * ENERGY_ATOL
    print(f"pimd example: {time.monotonic() - t0:.1f} s, beads per driver at step 0: "
          f"{a}, {4 - a}")


def test_python_m_ipi_pes_prints_the_pes_path():
    from symprobe import ipi_pes
    out = subprocess.run([sys.executable, "-m", "symprobe.ipi_pes"], capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    assert Path(out).is_file() and Path(out).samefile(ipi_pes.__file__)


def test_py_driver_command(tmp_path, exclusive):
    """The quoted `i-pi-py_driver` command: i-PI receives the grid-2 + inversion average of the
    core. The block would run 20 steps of 36 rotations: stopped once step 1 is written."""
    t0 = time.monotonic()

    work, _, _ = run_block("py_driver", "classical", tmp_path, "symprobe-classical",
                             timeout=300, until=lambda work: steps_written(work) >= 2)
    props = properties(work)
    assert np.isfinite(props[:2]).all()
    start = ase.io.read(work / "init.xyz")
    # chunk 12: no tuning; results do not depend on the chunk
    grid = symprobe.load_model("water-pet", rotations="grid 2", inversion=True, chunk=12,
                                threads=1)
    e0 = grid.compute(start.positions, start.numbers, start.cell.array, True)["energy"]
    assert ipi_ev_to_symprobe_ev(props[0, 5]) == pytest.approx(e0, abs=ENERGY_ATOL)
    plain = symprobe.load_model("water-pet", threads=1).compute(
        start.positions, start.numbers, start.cell.array, True)["energy"]
    assert abs(plain - e0) > 100 * ENERGY_ATOL  # the options reached the core
    print(f"py_driver command: {time.monotonic() - t0:.1f} s")
