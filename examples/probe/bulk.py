"""Bulk liquid water in i-PI, the plain model against grid 2 + inversion and one random rotation
per step (the paper's experiment 3, ../../docs/probing.md), and with --beads 8 the same under
nuclear quantum effects (path integrals; the paper did not).

64 molecules (examples/ipi/classical/init.xyz, equilibrated at 300 K by water-pet), 300 K,
time step 0.5 fs (--timestep):
- plain: the model as it is;
- random: one random rotation per step, improper with probability 1/2;
- 2i: grid 2 + inversion by multiple time stepping as in the paper, the plain model every
  time step and the correction (average minus plain) every 5 fs; with beads the correction is
  evaluated on the ring polymer's centroid (i-PI's ring-polymer contraction to one bead).
Classical runs use the paper's SVR thermostat (tau 10 fs); path-integral runs PILE-L (centroid
tau 100 fs). Each run is one i-PI and one symprobe-ipi process; then `symprobe analyze` compares
the runs: g(r), diffusion (of the centroids with beads), temperature, the drift of i-PI's
conserved quantity and, with beads, the quantum kinetic energy (centroid-virial estimator).

    python bulk.py [--beads 1] [--time 1.0] [--start 0.2] [--runs plain,random,2i] [--output bulk]
    python bulk.py --beads 8 --time 0.5 --start 0.1 --output bulk-pimd
    python bulk.py --full      # the paper's length: 1 ns per run (100 ps with beads)

Writes OUTPUT/RUN/ (the i-PI input, its outputs and the logs) and OUTPUT/analysis/ (the
reports of `symprobe analyze`). OUTPUT must not exist: nothing is overwritten.
"""
import argparse
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
STRUCTURE = os.path.join(HERE, "..", "ipi", "classical", "init.xyz")
DRIVER_OPTIONS = {
    "plain": [],
    "random": ["--rotations", "random", "--inversion", "--seed", "1"],
    "2i": ["--rotations", "grid", "2", "--inversion"],
}


OUTER_FS = 5.0  # the outer time step of 2i, and the stride of the properties


def ipi_input(run, beads, steps, address, seed, timestep_fs):
    """The i-PI input of one run of `steps` time steps; 2i: two MTS levels, the correction
    (outer, 5 fs) and the plain model (inner, timestep_fs), otherwise one level."""
    def socket(name, suffix):
        return (f"<ffsocket name='{name}' mode='unix' pbc='false'>"
                f"<address>{address}{suffix}</address><latency>1e-4</latency></ffsocket>")
    properties = "step, time{picosecond}, conserved{electronvolt}, temperature{kelvin}, potential{electronvolt}"
    if beads > 1:
        properties += ", kinetic_cv(H){electronvolt}, kinetic_cv(O){electronvolt}"
    if run == "2i":
        timestep, inner = OUTER_FS, round(OUTER_FS / timestep_fs)
        contraction = " nbeads='1'" if beads > 1 else ""
        fields = socket("plain", "") + socket("correction", "-c")
        forces = (f"<force forcefield='correction'{contraction}><mts_weights>[1, 0]</mts_weights></force>"
                  "<force forcefield='plain'><mts_weights>[0, 1]</mts_weights></force>")
        levels = f"<nmts>[1, {inner}]</nmts>"
        steps //= inner
    else:
        timestep = timestep_fs
        fields, forces, levels = socket("plain", ""), "<force forcefield='plain'/>", ""
    stride = max(1, round(OUTER_FS / timestep))  # a property row every 5 fs, a frame every 10
    if beads > 1:
        thermostat = "<thermostat mode='pile_l'><tau units='femtosecond'>100</tau></thermostat>"
    else:
        thermostat = "<thermostat mode='svr'><tau units='femtosecond'>10</tau></thermostat>"
    return f"""<simulation verbosity='low'>
  <output prefix='sim'>
    <properties stride='{stride}' filename='out'> [ {properties} ] </properties>
    <trajectory filename='pos' stride='{2 * stride}' format='xyz' cell_units='angstrom'> positions{{angstrom}} </trajectory>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>{seed}</seed></prng>
  {fields}
  <system>
    <initialize nbeads='{beads}'>
      <file mode='ase'>init.xyz</file>
      <velocities mode='thermal' units='kelvin'>300</velocities>
    </initialize>
    <forces>{forces}</forces>
    <motion mode='dynamics'>
      <dynamics mode='nvt'>
        <timestep units='femtosecond'>{timestep}</timestep>{levels}
        {thermostat}
      </dynamics>
    </motion>
    <ensemble><temperature units='kelvin'>300</temperature></ensemble>
  </system>
</simulation>
"""


def start_run(directory, run, args):
    os.makedirs(directory)
    with open(STRUCTURE) as f, open(os.path.join(directory, "init.xyz"), "w") as g:
        g.write(f.read())
    address = f"symprobe-bulk-{os.getpid()}-{run}"
    steps = round(args.time * 1000 / args.timestep)
    with open(os.path.join(directory, "input.xml"), "w") as f:
        f.write(ipi_input(run, args.beads, steps, address, args.seed, args.timestep))
    ipi = subprocess.Popen([os.path.join(BIN, "i-pi"), "input.xml"], cwd=directory,
                           stdout=open(os.path.join(directory, "ipi.log"), "w"), stderr=subprocess.STDOUT)
    driver = [os.path.join(BIN, "symprobe-ipi"), "--unix", address, "--model", args.model,
              "--structure", "init.xyz", "--threads", str(args.threads), *DRIVER_OPTIONS[run]]
    if run == "2i":
        driver += ["--mts-unix", address + "-c"]
    socket = f"/tmp/ipi_{address}"
    for _ in range(600):  # i-PI opens its socket after reading the input
        if os.path.exists(socket) or ipi.poll() is not None:
            break
        time.sleep(0.1)
    driver = subprocess.Popen(driver, cwd=directory, stdout=open(os.path.join(directory, "driver.log"), "w"),
                              stderr=subprocess.STDOUT)
    return ipi, driver


def stop_all(running):
    """Kills the runs' processes and removes the socket files a killed i-PI leaves behind."""
    for _, ipi, driver in running:
        ipi.kill()
        driver.kill()
    for path in glob.glob(f"/tmp/ipi_symprobe-bulk-{os.getpid()}-*"):
        os.remove(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="water-pet")
    p.add_argument("--beads", type=int, default=1, help="1: classical; more: path integrals")
    p.add_argument("--time", type=float, default=1.0, help="ps per run")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (2i: the inner step; 5 fs must be a multiple)")
    p.add_argument("--start", type=float, default=0.2, help="ps left out of the analysis (equilibration)")
    p.add_argument("--runs", default="plain,random,2i", help="comma-separated: plain, random, 2i")
    p.add_argument("--jobs", type=int, default=2, help="runs at the same time")
    p.add_argument("--threads", type=int, default=1, help="threads per driver")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--seed", type=int, default=31415, help="i-PI's seed (velocities, thermostat)")
    p.add_argument("--output", default=None, help="default: bulk, or bulk-pimd with beads")
    p.add_argument("--full", action="store_true", help="1 ns per run (100 ps with beads), 20 ps left out")
    args = p.parse_args(argv)
    if args.full:
        args.time, args.start = (100.0 if args.beads > 1 else 1000.0), 20.0
    output = args.output or ("bulk-pimd" if args.beads > 1 else "bulk")
    runs = [r for r in args.runs.split(",") if r]
    unknown = [r for r in runs if r not in DRIVER_OPTIONS]
    if unknown or not runs:
        p.error(f"--runs: unknown run {', '.join(unknown) or '(none)'}; choose from {', '.join(DRIVER_OPTIONS)}")
    if len(set(runs)) != len(runs):
        p.error(f"--runs: each run once, got {args.runs}")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    inner = OUTER_FS / args.timestep if args.timestep > 0 else 0
    if inner < 1 or abs(inner - round(inner)) > 1e-9:
        p.error(f"--timestep {args.timestep} fs must divide the 5 fs outer step of 2i")
    if args.beads < 1:
        p.error(f"--beads must be >= 1, got {args.beads}")
    if not 0 <= args.start < args.time:
        p.error(f"--start {args.start} ps must lie in [0, --time {args.time} ps)")
    if os.path.exists(output):
        p.error(f"{output} exists; choose another --output (nothing is overwritten)")
    os.makedirs(output)

    started, pending, running = time.perf_counter(), list(runs), []
    while pending or running:
        while pending and len(running) < args.jobs:
            run = pending.pop(0)
            running.append((run, *start_run(os.path.join(output, run), run, args)))
        time.sleep(1)
        for entry in list(running):
            run, ipi, driver = entry
            if ipi.poll() is None:
                # a driver that failed leaves i-PI waiting for its client forever (one that
                # ended normally was told to by i-PI, which is finishing its output)
                if driver.poll() not in (None, 0):
                    stop_all(running)
                    sys.exit(f"{run}: the driver stopped (exit {driver.returncode}) before i-PI finished; "
                             f"see {output}/{run}/driver.log")
                continue
            try:
                driver.wait(60)
            except subprocess.TimeoutExpired:
                driver.kill()
            running.remove(entry)
            if ipi.returncode != 0:
                stop_all(running)
                sys.exit(f"{run}: i-PI failed (exit {ipi.returncode}); see {output}/{run}/ipi.log and driver.log")
            print(f"{run}: done after {time.perf_counter() - started:.0f} s", flush=True)

    command = [os.path.join(BIN, "symprobe"), "analyze"]
    for run in runs:
        beads = sorted(glob.glob(os.path.join(output, run, "sim.pos_*.xyz")))
        command.append(beads[0] if len(beads) == 1 else os.path.join(output, run, "sim.pos_*.xyz"))
    command += ["--labels", *runs, "--properties", *(os.path.join(output, r, "sim.out") for r in runs),
                "--start", str(args.start), "--blocks", str(args.blocks), "--output", os.path.join(output, "analysis")]
    subprocess.run(command, check=True)
    with open(os.path.join(output, "analysis", "summary.md")) as f:
        print(f.read())


if __name__ == "__main__":
    main()
