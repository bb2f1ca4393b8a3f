"""The i-PI driver against a real i-PI (from PyPI) and against ASE's socket server."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import ase.io
import numpy as np
import pytest

import symprobe
from symprobe.water import water_box

from conftest import strain_derivative
from ipi_support import (Processes, finish, forcefield_xml, free_port, input_xml, read_forces,
                         read_positions, read_properties, remove_socket_files, socket_name,
                         wait_for, wait_socket)

pytest.importorskip("ipi")


@pytest.fixture()
def run(tmp_path):
    procs = Processes(tmp_path)
    yield procs
    procs.stop()
    remove_socket_files()  # a killed i-PI leaves its socket file behind


def write_structure(path, molecules=64, seed=1):
    atoms = water_box(molecules, seed=seed)
    ase.io.write(path, atoms, format="extxyz")
    return atoms


def check_against_core(workdir, model, numbers, bead=None, atol_energy=2e-6):
    """i-PI's potential and forces of every step equal a direct evaluation by the core of the
    positions i-PI wrote (8 decimals, in A)."""
    props = read_properties(workdir)
    frames = read_positions(workdir, bead)
    forces = read_forces(workdir, bead)
    assert len(frames) == len(props) > 5
    for frame, frc, row in zip(frames, forces, props):
        direct = model.compute(frame.positions, numbers, frame.cell.array, True)
        # i-PI converts Hartree to eV with 27.2113834 eV, symprobe with CODATA 2018's
        # 27.2113862 eV: 1.1e-7 relative; the positions it printed carry 1e-8 A
        assert row[1] == pytest.approx(direct["energy"], abs=atol_energy + 2e-7 * abs(row[1]))
        np.testing.assert_allclose(frc, direct["forces"], atol=2e-5)


@pytest.mark.parametrize("transport", ["unix", "inet"])
def test_classical_nvt_matches_core(run, tmp_path, transport):
    atoms = write_structure(tmp_path / "init.xyz")
    name = socket_name("nvt")
    if transport == "unix":
        ff = forcefield_xml("sp", name)
        where = ["--unix", name]
    else:
        port = free_port()
        ff = forcefield_xml("sp", "127.0.0.1", mode="inet", port=port)
        where = ["--inet", f"127.0.0.1:{port}"]
    ipi = run.ipi(input_xml("init.xyz", ff, steps=20))
    if transport == "unix":
        wait_socket(name)
    driver = run.driver(*where, "--model", "water-reference", "--structure", "init.xyz")
    assert finish(ipi) == 0
    assert finish(driver, 30) == 0, driver.log_path.read_text()
    assert "EXIT received" in driver.log_path.read_text()
    check_against_core(tmp_path, symprobe.load_model("water-reference"), atoms.numbers)


def run_pimd(run, workdir, name, beads, batch, steps=6, model="water-orientation", extra=()):
    write_structure(workdir / "init.xyz", molecules=8, seed=3)
    ipi = run.ipi(input_xml("init.xyz", forcefield_xml("sp", name, batch_size=batch),
                            steps=steps, beads=beads))
    wait_socket(name)
    driver = run.driver("--unix", name, "--model", model, "--structure", "init.xyz", *extra)
    assert finish(ipi) == 0
    assert finish(driver, 30) == 0, driver.log_path.read_text()
    return read_properties(workdir)


def test_path_integrals_batched_equals_sequential(run, tmp_path):
    """8 beads sent one by one and 8 beads in one batched message (one model call) give the
    same trajectory."""
    (tmp_path / "seq").mkdir()
    (tmp_path / "bat").mkdir()
    seq_run, bat_run = Processes(tmp_path / "seq"), Processes(tmp_path / "bat")
    try:
        seq = run_pimd(seq_run, tmp_path / "seq", socket_name("seq"), beads=8, batch=1)
        bat = run_pimd(bat_run, tmp_path / "bat", socket_name("bat"), beads=8, batch=8)
    finally:
        seq_run.stop()
        bat_run.stop()
    np.testing.assert_allclose(bat[:, 1], seq[:, 1], rtol=1e-9)
    np.testing.assert_allclose(bat[:, 2], seq[:, 2], rtol=1e-9)
    # and every bead's forces equal the core's
    model = symprobe.load_model("water-orientation")
    numbers = ase.io.read(tmp_path / "bat" / "init.xyz").numbers
    for bead in (0, 5):
        frames = read_positions(tmp_path / "bat", bead)
        forces = read_forces(tmp_path / "bat", bead)
        for frame, frc in zip(frames[:3], forces[:3]):
            direct = model.compute(frame.positions, numbers, frame.cell.array, True)
            np.testing.assert_allclose(frc, direct["forces"], atol=2e-5)


def test_path_integrals_with_four_beads_and_two_drivers(run, tmp_path):
    write_structure(tmp_path / "init.xyz", molecules=8, seed=4)
    name = socket_name("two")
    ipi = run.ipi(input_xml("init.xyz", forcefield_xml("sp", name), steps=6, beads=4))
    wait_socket(name)
    drivers = [run.driver("--unix", name, "--model", "water-reference", "--structure", "init.xyz",
                          name=f"driver{k}") for k in range(2)]
    assert finish(ipi) == 0
    for d in drivers:
        assert finish(d, 30) == 0, d.log_path.read_text()
    props = read_properties(tmp_path)
    atoms = ase.io.read(tmp_path / "init.xyz")
    model = symprobe.load_model("water-reference")
    # step 0: all beads sit on the initial structure
    assert props[0, 1] == pytest.approx(model.compute(atoms.positions, atoms.numbers,
                                                      atoms.cell.array, True)["energy"], abs=1e-6)
    # every step: i-PI's potential is the bead average of the core's energies on the beads'
    # positions, and each bead received the core's forces on its own positions
    beads = [(read_positions(tmp_path, b), read_forces(tmp_path, b)) for b in range(4)]
    assert all(len(frames) == len(props) == 7 for frames, _ in beads)
    for step in range(len(props)):
        energies = []
        for frames, forces in beads:
            frame = frames[step]
            direct = model.compute(frame.positions, atoms.numbers, frame.cell.array, True)
            energies.append(direct["energy"])
            np.testing.assert_allclose(forces[step], direct["forces"], atol=2e-5)
        assert props[step, 1] == pytest.approx(np.mean(energies), abs=1e-6)
    # the beads separate after step 0
    assert np.ptp([frames[-1].positions[0, 0] for frames, _ in beads]) > 1e-4


def test_ffrotations_equals_in_driver_grid(run, tmp_path):
    """i-PI's own <ffrotations> (Legendre grid 2 with inversion: 36 socket requests per step)
    over the plain driver gives the trajectory of one driver evaluating grid 2 + inversion in
    one batched call: the cross-check against the paper authors' implementation."""
    results = {}
    for label, rotations, extra in (("ipi", (2, True), ()),
                                    ("ours", None, ("--rotations", "grid", "2", "--inversion"))):
        work = tmp_path / label
        work.mkdir()
        write_structure(work / "init.xyz", molecules=8, seed=5)
        procs = Processes(work)
        try:
            name = socket_name(label)
            procs.ipi(input_xml("init.xyz", forcefield_xml("sp", name, rotations=rotations), steps=5))
            wait_socket(name)
            driver = procs.driver("--unix", name, "--model", "water-orientation", "--structure",
                                  "init.xyz", *extra)
            assert finish(procs.started[0]) == 0, (work / "ipi.log").read_text()[-2000:]
            assert finish(driver, 30) == 0
            results[label] = read_properties(work)
        finally:
            procs.stop()
    np.testing.assert_allclose(results["ours"][:, 1], results["ipi"][:, 1], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(results["ours"][:, 2], results["ipi"][:, 2], rtol=1e-8, atol=1e-8)
    # the plain model differs from the averaged one by far more than that
    plain = symprobe.load_model("water-orientation")
    atoms = ase.io.read(tmp_path / "ours" / "init.xyz")
    e_plain = plain.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)["energy"]
    assert abs(e_plain - results["ours"][0, 1]) > 1e-2


def test_driver_exits_when_ipi_is_killed(run, tmp_path):
    write_structure(tmp_path / "init.xyz")
    name = socket_name("kill")
    ipi = run.ipi(input_xml("init.xyz", forcefield_xml("sp", name), steps=100000))
    wait_socket(name)
    driver = run.driver("--unix", name, "--model", "water-reference", "--structure", "init.xyz")
    wait_for(lambda: (tmp_path / "sim.out").exists() and len(read_properties(tmp_path)) > 3, 60,
             "a few MD steps")
    os.killpg(ipi.pid, signal.SIGKILL)
    t0 = time.monotonic()
    rc = finish(driver, 10)
    assert rc != 0 and time.monotonic() - t0 < 5
    assert "i-PI is gone" in driver.log_path.read_text()


def serve_once(payload_fn, path):
    """A fake server on a unix socket: sends what payload_fn returns, then closes."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def handle():
        conn, _ = server.accept()
        conn.sendall(payload_fn())
        time.sleep(1.0)
        conn.close()
        server.close()

    thread = threading.Thread(target=handle, daemon=True)
    thread.start()
    return thread


def test_malformed_header_and_wrong_atom_count(run, tmp_path):
    write_structure(tmp_path / "init.xyz", molecules=2)
    name = socket_name("bad")
    serve_once(lambda: b"HELLOTHERE!!", f"/tmp/ipi_{name}")
    driver = run.driver("--unix", name, "--model", "water-reference", "--structure", "init.xyz")
    assert finish(driver, 20) == 1
    assert "unexpected message header b'HELLOTHERE!!'" in driver.log_path.read_text()
    os.unlink(f"/tmp/ipi_{name}")
    # i-PI with 64 molecules, driver told 2 molecules
    write_structure(tmp_path / "big.xyz", molecules=64)
    name = socket_name("count")
    ipi = run.ipi(input_xml("big.xyz", forcefield_xml("sp", name), steps=5))
    wait_socket(name)
    driver = run.driver("--unix", name, "--model", "water-reference", "--structure", "init.xyz",
                        name="wrong")
    assert finish(driver, 30) == 1
    assert "i-PI sent 192 atoms but the structure has 6" in driver.log_path.read_text()
    ipi.kill()


def test_no_server_gives_bounded_retry(run, tmp_path):
    write_structure(tmp_path / "init.xyz", molecules=2)
    t0 = time.monotonic()
    driver = run.driver("--unix", socket_name("none"), "--model", "water-reference",
                        "--structure", "init.xyz", "--connect-timeout", "1")
    assert finish(driver, 30) == 2 and time.monotonic() - t0 < 20
    assert "could not connect to i-PI" in driver.log_path.read_text()


def test_sigterm_exits_cleanly(run, tmp_path):
    write_structure(tmp_path / "init.xyz")
    name = socket_name("term")
    run.ipi(input_xml("init.xyz", forcefield_xml("sp", name), steps=100000))
    wait_socket(name)
    driver = run.driver("--unix", name, "--model", "water-reference", "--structure", "init.xyz")
    wait_for(lambda: "connected" in driver.log_path.read_text(), 30, "the driver to connect")
    driver.send_signal(signal.SIGTERM)
    assert finish(driver, 10) == 0
    assert "Traceback" not in driver.log_path.read_text()


def test_ase_socket_server_drives_the_driver(run, tmp_path):
    from ase.calculators.socketio import SocketIOCalculator
    atoms = write_structure(tmp_path / "init.xyz", molecules=8, seed=6)
    name = socket_name("ase")
    model = symprobe.load_model("water-orientation")
    with SocketIOCalculator(unixsocket=name, timeout=60) as calc:
        run.driver("--unix", name, "--model", "water-orientation", "--structure", "init.xyz")
        atoms.calc = calc
        for k in range(3):
            atoms.positions += np.random.default_rng(k).normal(0, 0.02, atoms.positions.shape)
            direct = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
            # the wire is in atomic units; ASE converts with CODATA 2014, symprobe with CODATA
            # 2018 (Hartree differs by 8e-9, Bohr by 6.5e-10 relative: distances scale by that)
            assert atoms.get_potential_energy() == pytest.approx(direct["energy"], rel=2e-8)
            np.testing.assert_allclose(atoms.get_forces(), direct["forces"], rtol=2e-8, atol=1e-7)
            # ASE's stress from the virial the driver sent
            sigma = -direct["virial"].T / atoms.get_volume()
            np.testing.assert_allclose(atoms.get_stress(voigt=False), 0.5 * (sigma + sigma.T),
                                       rtol=2e-8, atol=1e-9)


def test_ipi_pes_module(tmp_path):
    """symprobe/ipi_pes.py as i-PI's custom PES: single and batched calls in atomic units."""
    from symprobe import ipi_pes
    from symprobe.units import BOHR_A, HARTREE_EV
    atoms = write_structure(tmp_path / "init.xyz", molecules=4, seed=7)
    pes = ipi_pes.Symprobe_driver(structure=str(tmp_path / "init.xyz"), model="water-orientation",
                                  rotations="grid 2", inversion="true")
    h = atoms.cell.array.T / BOHR_A
    pos = atoms.positions / BOHR_A
    energy, forces, virial, extras = pes(h, pos)
    ref = symprobe.load_model("water-orientation", rotations="grid 2", inversion=True).compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True)
    assert energy * HARTREE_EV == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(forces * HARTREE_EV / BOHR_A, ref["forces"], atol=1e-10)
    assert "energy_spread_eV" in extras
    batch = pes([h, h], [pos, pos + 0.01])
    assert batch[0][0] == pytest.approx(energy, rel=1e-12) and batch[1][0] != batch[0][0]
    with pytest.raises(ValueError, match="inversion must be yes or no, got 'maybe'"):
        ipi_pes.Symprobe_driver(structure=str(tmp_path / "init.xyz"), model="water-reference",
                                rotations="random", inversion="maybe")


def test_no_inet_server_gives_bounded_retry(run, tmp_path):
    write_structure(tmp_path / "init.xyz", molecules=2)
    driver = run.driver("--inet", f"127.0.0.1:{free_port()}", "--model", "water-reference",
                        "--structure", "init.xyz", "--connect-timeout", "1")
    assert finish(driver, 30) == 2
    assert "could not connect to i-PI" in driver.log_path.read_text()


def test_stale_unix_socket_is_named_at_once(run, tmp_path):
    """A socket file left by a crashed i-PI (bound, listened, closed: the file stays) refuses
    connections: the driver names the file and what to do within seconds, not after its 30 s
    connect timeout."""
    write_structure(tmp_path / "init.xyz", molecules=2)
    name = socket_name("stale")
    path = f"/tmp/ipi_{name}"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.listen(1)
    stale.close()
    try:
        assert os.path.exists(path)  # closing a unix socket leaves its file behind
        with pytest.raises(ConnectionRefusedError):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(path)
        t0 = time.monotonic()
        driver = run.driver("--unix", name, "--model", "water-reference", "--structure",
                            "init.xyz")  # the default --connect-timeout, 30 s
        rc = finish(driver, 40)
        elapsed = time.monotonic() - t0
        log = driver.log_path.read_text()
        assert rc == 2, log
        assert elapsed < 15, f"took {elapsed:.1f} s:\n{log}"
        assert f"the unix socket file {path} exists but nothing listens on it" in log
        assert "stopped or crashed" in log and f"rm {path}" in log
        assert "Traceback" not in log
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_socket_file_refusing_briefly_is_retried(tmp_path):
    """i-PI binds its socket file a moment before it listens: a refusal shorter than the stale
    limit is retried, and the driver connects once the server listens."""
    from symprobe.ipi import connect
    name = socket_name("late")
    path = f"/tmp/ipi_{name}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    try:
        timer = threading.Timer(1.0, server.listen, args=(1,))
        timer.start()
        t0 = time.monotonic()
        client = connect(name, None, "/tmp/ipi_", timeout=30)
        assert 0.9 < time.monotonic() - t0 < 3.0
        client.close()
        timer.join()
    finally:
        server.close()
        os.unlink(path)


def test_unsupported_element_fails_before_connecting(run, tmp_path):
    """Defect 4: the structure's elements are checked against the model before waiting for
    i-PI: no server, default 30 s connect timeout, yet status 2 at once, naming the element."""
    from ase import Atoms
    ase.io.write(tmp_path / "nacl.xyz", Atoms("OH2Na", positions=[[0, 0, 0], [0.96, 0, 0],
                                                                 [-0.24, 0.93, 0], [3, 3, 3]],
                                              cell=np.eye(3) * 10, pbc=True), format="extxyz")
    t0 = time.monotonic()
    driver = run.driver("--unix", socket_name("elem"), "--model", "water-reference",
                        "--structure", "nacl.xyz")
    rc = finish(driver, 40)
    elapsed = time.monotonic() - t0
    log = driver.log_path.read_text()
    assert rc == 2, log
    assert elapsed < 15, f"took {elapsed:.1f} s: the driver waited for i-PI first\n{log}"
    assert "atom 3 is element Na (Z=11)" in log and "does not support" in log
    assert "could not connect" not in log and "Traceback" not in log


def test_negative_seed_is_an_error_before_connecting(run, tmp_path):
    write_structure(tmp_path / "init.xyz", molecules=2)
    t0 = time.monotonic()
    driver = run.driver("--unix", socket_name("seed"), "--model", "water-reference",
                        "--structure", "init.xyz", "--rotations", "random", "--seed", "-1")
    rc = finish(driver, 40)
    log = driver.log_path.read_text()
    assert rc == 2, log
    assert time.monotonic() - t0 < 15, log
    assert "seed must be a non-negative integer" in log
    assert "could not connect" not in log and "Traceback" not in log


def test_triclinic_cell_and_raw_virial_orientation(run, tmp_path):
    """This process plays i-PI on a unix socket with a triclinic cell (h upper triangular, the
    lattice vectors as its columns) and reads the reply bytes as they come: the energy and forces
    are the core's on cell = h^T, and the nine virial components, read row-major with no
    symmetrisation, are W_ij = -dE/d(eps_ij) for the strain x -> x (1 + eps) that i-PI's own
    metatomic PES uses, measured by finite strain. The orientation model's virial is far from
    symmetric, so a transposed or symmetrised virial fails."""
    from symprobe.ipi import EXIT, FORCEREADY, GETFORCE, INIT, NEEDINIT, POSDATA, READY, STATUS
    from symprobe.units import BOHR_A, HARTREE_EV
    atoms = water_box(8, seed=11)
    shear = np.array([[1.0, 0.0, 0.0], [0.15, 1.0, 0.0], [-0.1, 0.2, 1.0]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    assert np.allclose(np.triu(atoms.cell.array, 1), 0) and abs(atoms.cell.array[2, 0]) > 0.5
    ase.io.write(tmp_path / "init.xyz", atoms, format="extxyz")
    name = socket_name("raw")
    path = f"/tmp/ipi_{name}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(60)
    try:
        run.driver("--unix", name, "--model", "water-orientation", "--structure", "init.xyz")
        conn, _ = server.accept()
        conn.settimeout(60)

        def recv(n):
            got = b""
            while len(got) < n:
                chunk = conn.recv(n - len(got))
                assert chunk, "the driver closed the socket"
                got += chunk
            return got

        conn.sendall(STATUS)
        assert recv(12) == NEEDINIT
        conn.sendall(INIT + np.int32(0).tobytes() + np.int32(0).tobytes())
        conn.sendall(STATUS)
        assert recv(12) == READY
        h = atoms.cell.array.T / BOHR_A
        n = len(atoms)
        conn.sendall(POSDATA + h.tobytes() + np.linalg.inv(h).tobytes() + np.int32(n).tobytes()
                     + (atoms.positions / BOHR_A).tobytes() + GETFORCE)
        assert recv(12) == FORCEREADY
        energy = np.frombuffer(recv(8), np.float64)[0] * HARTREE_EV
        assert np.frombuffer(recv(4), np.int32)[0] == n
        forces = np.frombuffer(recv(24 * n), np.float64).reshape(n, 3) * HARTREE_EV / BOHR_A
        virial = np.frombuffer(recv(72), np.float64).reshape(3, 3) * HARTREE_EV
        recv(int(np.frombuffer(recv(4), np.int32)[0]))
        conn.sendall(EXIT)
        conn.close()
    finally:
        server.close()
        os.unlink(path)
    model = symprobe.load_model("water-orientation")
    direct = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    assert energy == pytest.approx(direct["energy"], rel=1e-12)
    np.testing.assert_allclose(forces, direct["forces"], atol=1e-10)
    # strain_derivative strains x -> x (1 + eps)^T: W = -(its result)^T
    w_fd = -strain_derivative(
        lambda x, cell: model.compute(x, atoms.numbers, cell, True, forces=False, virial=False)["energy"],
        atoms.positions, atoms.cell.array, h=1e-5).T
    np.testing.assert_allclose(virial, w_fd, atol=1e-6 * np.abs(w_fd).max() + 1e-8)
    asymmetry = np.abs(virial - virial.T).max()
    assert asymmetry > 100 * np.abs(virial - w_fd).max() and asymmetry > 1e-3, (virial, w_fd)


@pytest.mark.parametrize("correction", ["none", "torque-free"])
def test_finite_molecule_torque_free(run, tmp_path, correction):
    """One molecule of the orientation model in i-PI's 100 A box with --finite: i-PI receives
    the forces of the finite molecule; with --correction torque-free they carry no net force and
    no net torque at any step, without it the model's torque."""
    atoms = water_box(1, seed=2)
    atoms.set_cell([100.0, 100.0, 100.0])
    atoms.center()
    ase.io.write(tmp_path / "init.xyz", atoms, format="extxyz")
    name = socket_name("finite")
    run.ipi(input_xml("init.xyz", forcefield_xml("sp", name), steps=6))
    wait_socket(name)
    driver = run.driver("--unix", name, "--model", "water-orientation", "--structure", "init.xyz",
                        "--finite", "--correction", correction)
    assert finish(run.started[0]) == 0, (tmp_path / "ipi.log").read_text()[-2000:]
    assert finish(driver, 30) == 0
    assert "a finite system" in driver.log_path.read_text()
    frames, forces = read_positions(tmp_path), read_forces(tmp_path)
    assert len(frames) == len(forces) > 5
    for frame, frc in zip(frames, forces):
        x = frame.positions - frame.get_center_of_mass()
        torque = np.linalg.norm(np.cross(x, frc).sum(0))
        if correction == "torque-free":
            assert torque < 1e-4 and np.abs(frc.sum(0)).max() < 1e-4  # i-PI prints 8 decimals
        else:
            assert torque > 1e-2


def mts_input(structure, plain, correction, nmts, steps, timestep_fs):
    """i-PI NVE with two force components on two MTS levels: the correction (outer, slow) and
    the plain model (inner, fast); `correction` None: one level with the forcefield `plain`."""
    def socket(name, address):
        return (f"<ffsocket name='{name}' mode='unix' pbc='false'><address>{address}</address>"
                f"<latency>1e-5</latency></ffsocket>")
    if correction is None:
        fields, forces, levels = socket("full", plain), "<force forcefield='full'/>", ""
    else:
        fields = socket("plain", plain) + socket("correction", correction)
        forces = ("<force forcefield='correction'><mts_weights>[1, 0]</mts_weights></force>"
                  "<force forcefield='plain'><mts_weights>[0, 1]</mts_weights></force>")
        levels = f"<nmts>[{nmts[0]}, {nmts[1]}]</nmts>"
    dynamics = f"<dynamics mode='nve'><timestep units='femtosecond'>{timestep_fs}</timestep>{levels}</dynamics>"
    return input_xml(structure, fields, steps=steps, seed=7, forces=forces, dynamics=dynamics)


def test_multiple_time_stepping_driver(tmp_path):
    """symprobe-ipi --mts-unix: one driver serves i-PI's two MTS levels, the plain model (fast)
    and grid 2 + inversion minus plain (slow). With nmts [1, 1] the levels add up to the
    averaged model at every step: the trajectory equals one level served by the averaged model.
    With nmts [1, 4] (the paper's 0.5/2 fs kind of split) the run conserves its energy."""
    grid = ("--rotations", "grid", "2", "--inversion")
    results = {}
    for label, nmts, timestep in (("one-level", None, 0.5), ("mts-1-1", (1, 1), 0.5), ("mts-1-4", (1, 4), 2.0)):
        work = tmp_path / label
        work.mkdir()
        write_structure(work / "init.xyz", molecules=8, seed=5)
        procs = Processes(work)
        try:
            plain, correction = socket_name("plain"), socket_name("corr")
            procs.ipi(mts_input("init.xyz", plain, correction if nmts else None, nmts, 20, timestep))
            wait_socket(plain)
            extra = ("--mts-unix", correction) if nmts else ()
            driver = procs.driver("--unix", plain, "--model", "water-orientation", "--structure",
                                  "init.xyz", *grid, *extra)
            assert finish(procs.started[0]) == 0, (work / "ipi.log").read_text()[-2000:]
            assert finish(driver, 30) == 0, driver.log_path.read_text()[-2000:]
            results[label] = read_properties(work)
        finally:
            procs.stop()
    assert "multiple time stepping" in (tmp_path / "mts-1-1" / "driver.log").read_text()
    np.testing.assert_allclose(results["mts-1-1"][:, 1], results["one-level"][:, 1], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(results["mts-1-1"][:, 2], results["one-level"][:, 2], rtol=1e-8, atol=1e-8)
    conserved = results["mts-1-4"][:, 2]
    kinetic = 1.5 * 24 * 8.617333e-5 * 300
    assert np.ptp(conserved) < 0.05 * kinetic
    assert np.ptp(results["mts-1-4"][:, 1]) > 5 * np.ptp(conserved)


def test_multiple_time_stepping_needs_rotations(tmp_path):
    write_structure(tmp_path / "init.xyz", molecules=8)
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "symprobe-ipi"), "--unix", "x", "--mts-unix", "y",
                          "--model", "water-reference", "--structure", str(tmp_path / "init.xyz")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "multiple time stepping needs rotations" in run.stderr
