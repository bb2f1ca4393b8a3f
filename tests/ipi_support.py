"""Running real i-PI (from PyPI) against symprobe-ipi in tests: every wait bounded, only the
processes a test started are stopped."""
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

_counter = itertools.count()
VENV_BIN = Path(sys.executable).parent


def socket_name(tag: str) -> str:
    return f"symprobe-test-{os.getpid()}-{tag}-{next(_counter)}"


def remove_socket_files():
    """Removes the unix socket files named by socket_name() in this process: a killed i-PI
    (or a test's fake server) leaves its file behind."""
    for path in Path("/tmp").glob(f"ipi_symprobe-test-{os.getpid()}-*"):
        path.unlink(missing_ok=True)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def forcefield_xml(name, address, mode="unix", port=None, batch_size=1, rotations=None,
                   latency=1e-5):
    inner = (f"<ffsocket name='{name}' mode='{mode}' pbc='false'>"
             f"<address>{address}</address>{f'<port>{port}</port>' if port else ''}"
             f"<latency>{latency}</latency>"
             f"{f'<batch_size>{batch_size}</batch_size>' if batch_size > 1 else ''}</ffsocket>")
    if rotations is None:
        return inner
    order, inversion = rotations
    inner = inner.replace(f"name='{name}'", "name='inner'")
    return (f"<ffrotations name='{name}'><grid_mode>legendre</grid_mode>"
            f"<grid_order>{order}</grid_order><inversion>{inversion}</inversion>"
            f"{inner}</ffrotations>")


def input_xml(structure, forcefield, steps=10, beads=1, seed=31415, stride=1, forces=None, dynamics=None):
    """stride: steps between outputs (benchmarks write none: i-PI's extxyz output costs ms);
    forces, dynamics: the <forces> and <dynamics> elements' contents when not the one
    forcefield's force and NVT with a Langevin thermostat at 0.5 fs."""
    if forces is None:
        name = forcefield.split("name='")[1].split("'")[0]
        forces = f"<force forcefield='{name}'/>"
    if dynamics is None:
        dynamics = ("<dynamics mode='nvt'><timestep units='femtosecond'>0.5</timestep>"
                    "<thermostat mode='langevin'><tau units='femtosecond'>100</tau></thermostat></dynamics>")
    return f"""<simulation verbosity='low' safe_stride='100000'>
  <output prefix='sim'>
    <properties stride='{stride}' filename='out'> [ step, potential{{electronvolt}}, conserved{{electronvolt}} ] </properties>
    <trajectory filename='pos' stride='{stride}' format='ase'> positions </trajectory>
    <trajectory filename='frc' stride='{stride}' format='ase'> forces </trajectory>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>{seed}</seed></prng>
  {forcefield}
  <system>
    <initialize nbeads='{beads}'>
      <file mode='ase'>{structure}</file>
      <velocities mode='thermal' units='kelvin'>300</velocities>
    </initialize>
    <forces>{forces}</forces>
    <motion mode='dynamics'>{dynamics}</motion>
    <ensemble><temperature units='kelvin'>300</temperature></ensemble>
  </system>
</simulation>
"""


class Processes:
    """Starts i-PI and drivers in a directory; stops what it started."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.started = []

    def start(self, args, name, env=None):
        log = open(self.workdir / f"{name}.log", "w")
        proc = subprocess.Popen(args, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
        proc.log_path = self.workdir / f"{name}.log"
        self.started.append(proc)
        return proc

    def ipi(self, xml: str):
        (self.workdir / "input.xml").write_text(xml)
        return self.start([str(VENV_BIN / "i-pi"), "input.xml"], "ipi")

    def driver(self, *args, name="driver"):
        return self.start([str(VENV_BIN / "symprobe-ipi"), *args], name)

    def shell(self, script: str, name="shell", **env):
        """Runs a bash script (`bash -e`) with the venv's commands first on PATH and the
        variables `env` set; its background jobs stay in its process group, which stop()
        kills."""
        env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env)
        return self.start(["bash", "-e", "-c", script], name, env=env)

    def stop(self):
        """Kills the process group (session) of every process started, also when its leader
        has exited but left children behind (a shell's background jobs)."""
        for proc in self.started:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # the group is empty: nothing of ours is left
                pass
            proc.wait(timeout=10)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def wait_socket(address, timeout=60):
    wait_for(lambda: os.path.exists(f"/tmp/ipi_{address}"), timeout, f"/tmp/ipi_{address}")


def finish(proc, timeout=240):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{proc.args} did not finish within {timeout} s:\n"
                           + proc.log_path.read_text()[-3000:])


def read_properties(workdir):
    """step, potential (eV), conserved (eV) per step from i-PI's sim.out."""
    return np.loadtxt(Path(workdir) / "sim.out", ndmin=2)


def read_positions(workdir, bead=None):
    import ase.io
    return ase.io.read(Path(workdir) / f"sim.pos_{bead or 0}.extxyz", index=":")


def read_forces(workdir, bead=None):
    """Forces (eV/A) i-PI received, per step."""
    import ase.io
    return [f.get_forces() for f in ase.io.read(Path(workdir) / f"sim.frc_{bead or 0}.extxyz", index=":")]
