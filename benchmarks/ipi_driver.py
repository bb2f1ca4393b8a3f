"""i-PI driver overhead: wall time per MD step of i-PI + symprobe-ipi against the core's own
evaluation time, 192 atoms; 32 beads batched vs one request per bead; in-driver grid 2i vs
i-PI's <ffrotations> (36 requests per step). Reference model, 1 torch thread.

    .venv/bin/python benchmarks/ipi_driver.py [--steps 200]

Writes benchmarks/results/ipi_driver.json.
"""
import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import ase.io

import symprobe
from common import median_time, water_system, write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ipi_support import Processes, finish, forcefield_xml, input_xml, socket_name, wait_socket  # noqa: E402


def cheap_model(path):
    """A nearly free non-invariant pair model: where per-request overhead dominates."""
    import torch

    class Cheap(torch.nn.Module):
        def forward(self, species, centers, neighbors, vectors):
            r = torch.sqrt((vectors * vectors).sum(1))
            pair = 0.01 * torch.exp(-r) * (1.0 + 0.3 * (vectors[:, 2] / r) ** 2)
            return torch.zeros(species.shape[0], dtype=vectors.dtype).index_add(0, centers, pair)

    symprobe.export_model(Cheap(), path, cutoff=3.0, elements=["H", "O"], overwrite=True)
    return str(path)


def ipi_seconds_per_step(workdir, ff, steps, beads, driver_args, model="water-reference"):
    """Wall time per step from two runs of steps/4 and steps steps: start-up (i-PI, the driver's
    import of torch, the chunk tuning) cancels in the difference."""
    short = max(1, steps // 4)
    t_short = ipi_run_seconds(workdir, ff, short, beads, driver_args, model)
    t_long = ipi_run_seconds(workdir, ff, steps, beads, driver_args, model)
    return (t_long - t_short) / (steps - short)


def ipi_run_seconds(workdir, ff, steps, beads, driver_args, model):
    for old in workdir.glob("sim.*"):
        old.unlink()
    procs = Processes(workdir)
    try:
        name = re.search(r"<address>(.*?)</address>", ff).group(1)
        procs.ipi(input_xml("init.xyz", ff, steps=steps, beads=beads, stride=10 ** 6))
        wait_socket(name)
        procs.driver("--unix", name, "--model", model, "--structure", "init.xyz",
                     "--threads", "1", *driver_args)
        t0 = time.perf_counter()
        finish(procs.started[0], timeout=3000)
        return time.perf_counter() - t0
    finally:
        procs.stop()


def driver_overhead(atoms, model, steps=300):
    """This process plays i-PI: a unix-socket server that sends POSDATA + GETFORCE to a real
    `symprobe-ipi` process and waits for the reply. Round trip minus the core's own evaluation
    time = the driver's overhead per step (s), socket included."""
    import os
    import socket
    import subprocess

    import numpy as np

    from symprobe.ipi import EXIT, GETFORCE, INIT, POSDATA, STATUS
    from symprobe.units import BOHR_A

    name = socket_name("overhead")
    path = f"/tmp/ipi_{name}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    with tempfile.TemporaryDirectory() as tmp:
        ase.io.write(Path(tmp) / "init.xyz", atoms, format="extxyz")
        driver = subprocess.Popen([str(Path(sys.executable).parent / "symprobe-ipi"), "--unix", name,
                                   "--model", "water-reference", "--structure", str(Path(tmp) / "init.xyz"),
                                   "--threads", "1"], stdout=subprocess.DEVNULL)
        try:
            server.settimeout(60)
            conn, _ = server.accept()
            conn.sendall(STATUS)
            conn.recv(12)
            conn.sendall(INIT + np.int32(0).tobytes() + np.int32(0).tobytes())
            n = len(atoms)
            h = atoms.cell.array.T / BOHR_A
            message = (POSDATA + h.tobytes() + np.linalg.inv(h).tobytes() + np.int32(n).tobytes()
                       + (atoms.positions / BOHR_A).tobytes() + GETFORCE)
            reply = 12 + 8 + 4 + 24 * n + 72 + 4
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                conn.sendall(message)
                got = bytearray()
                while len(got) < reply:
                    got += conn.recv(1 << 20)
                length = int(np.frombuffer(bytes(got[reply - 4:reply]), np.int32)[0])
                while len(got) < reply + length:
                    got += conn.recv(1 << 20)
                times.append(time.perf_counter() - t0)
            conn.sendall(EXIT)
            driver.wait(timeout=30)
        finally:
            if driver.poll() is None:
                driver.kill()
            server.close()
            os.unlink(path)
    x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
    core = median_time(lambda: model.compute(x, z, cell, True), steps, warmup=5)
    return float(np.median(times)) - core


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args()
    atoms = water_system(1)
    model = symprobe.load_model("water-reference", threads=1)
    x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
    core = median_time(lambda: model.compute(x, z, cell, True), 50, warmup=5)
    grid = symprobe.load_model("water-reference", threads=1, rotations="grid 2", inversion=True)
    for _ in range(10):
        grid.compute(x, z, cell, True)
    core_grid = median_time(lambda: grid.compute(x, z, cell, True), 10)
    rows = {"core_ms": 1e3 * core, "core_grid2i_ms": 1e3 * core_grid,
            "driver_overhead_us": 1e6 * driver_overhead(atoms, model)}
    print(f"driver overhead per step: {rows['driver_overhead_us']:.0f} us", flush=True)
    cases = [
        ("plain", forcefield_xml("sp", socket_name("b")), 1, (), args.steps),
        ("beads32_sequential", forcefield_xml("sp", socket_name("b")), 32, (), args.steps // 10),
        ("beads32_batched", forcefield_xml("sp", socket_name("b"), batch_size=32), 32, (), args.steps // 10),
        ("grid2i_in_driver", forcefield_xml("sp", socket_name("b")), 1,
         ("--rotations", "grid", "2", "--inversion"), args.steps // 4),
        ("grid2i_ffrotations", forcefield_xml("sp", socket_name("b"), rotations=(2, True)), 1, (),
         args.steps // 4),
    ]
    cheap_dir = tempfile.mkdtemp()
    cheap = cheap_model(Path(cheap_dir) / "cheap.pt")
    cases += [
        ("cheap_grid2i_in_driver", forcefield_xml("sp", socket_name("b")), 1,
         ("--rotations", "grid", "2", "--inversion"), args.steps // 2, cheap),
        ("cheap_grid2i_ffrotations", forcefield_xml("sp", socket_name("b"), rotations=(2, True)), 1, (),
         args.steps // 2, cheap),
    ]
    for label, ff, beads, extra, steps, *model in cases:
        with tempfile.TemporaryDirectory() as tmp:
            ase.io.write(Path(tmp) / "init.xyz", atoms, format="extxyz")
            rows[f"{label}_ms_per_step"] = 1e3 * ipi_seconds_per_step(Path(tmp), ff, steps, beads, extra,
                                                                       *(model or ["water-reference"]))
        print(label, f"{rows[f'{label}_ms_per_step']:.2f} ms/step", flush=True)
    out = write_json("ipi_driver", {"benchmark": "ipi_driver", "atoms": len(atoms), **rows})
    print(f"wrote {out}")
    for k, v in rows.items():
        print(f"| {k} | {v:.2f} |")


if __name__ == "__main__":
    main()
