"""The `symprobe` command line."""
from __future__ import annotations

import argparse
import os
import sys


LEGEND = (
    "columns: step; t: simulated time (ps); Epot, Etot: potential and total energy (eV); T: "
    "temperature (K);\n"
    "  |torque|: norm of the net torque sum_i x_i x F_i (eV) and dE_inv: |E(x) - E(-x)|, the "
    "energy change when the structure is inverted (meV),\n"
    "  both zero for an exactly O(3)-invariant model: they measure the model's broken symmetry"
    "{rotations}")


def md(args) -> int:
    import time

    import ase.io
    import numpy as np
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md import velocitydistribution as vd
    from ase.md.verlet import VelocityVerlet
    from tqdm import tqdm

    from .calculator import Calculator
    from .probe.analyze import angular_momentum, read_trajectory
    from .probe.error import free_stem
    from .runtime import load_model, options_from_arguments
    from .water import EQUILIBRATED_BOX, equilibrated_box, water_box

    options = options_from_arguments(args)
    calc = Calculator(args.model, **options)
    seed = calc.model.seed  # one seed: rotations, velocities, thermostat and generated box
    if args.structure:
        atoms = read_trajectory(args.structure, index=0)  # the file is only read
        source = args.structure
    elif args.molecules == 64:
        atoms = equilibrated_box()
        source = f"64 water molecules equilibrated at 300 K by water-pet ({EQUILIBRATED_BOX})"
    else:
        atoms = water_box(args.molecules, seed=seed)
        source = (f"lattice box of {args.molecules} water molecules (not equilibrated: expect "
                  f"the temperature to overshoot in the first 0.1 ps)")
    if args.finite:  # a gas-phase molecule in a box: no periodic images, a defined net torque
        atoms.pbc = False
        source += ", as a finite system (no periodic images; started without angular momentum)"
    calc.model.check_numbers(atoms.numbers)
    atoms.calc = calc
    # |E(x) - E(-x)| of the unsymmetrised model: the cheapest probe of a broken symmetry. The
    # run's own model is that model unless it symmetrises; then E(x) is known at every report.
    plain = calc.model if calc.model.rotations == "none" else load_model(
        args.model, **{k: v for k, v in options.items() if k in ("threads", "device")})
    # thermalize_momenta replaces MaxwellBoltzmannDistribution from ASE 3.28 on
    thermalize = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    thermalize(atoms, temperature_K=args.temperature, rng=np.random.default_rng(seed))
    vd.Stationary(atoms)
    if args.finite:
        # no angular momentum either: torque-free forces then keep L = 0, and with it the energy
        vd.ZeroRotation(atoms)
    if args.thermostat == "langevin":
        dyn = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature,
                       friction=1.0 / (args.tau * units.fs), fixcm=False,
                       rng=np.random.default_rng(seed))
    else:
        dyn = VelocityVerlet(atoms, args.timestep * units.fs)
    root, ext = os.path.splitext(args.output)
    output = free_stem(os.path.dirname(root), os.path.basename(root), (ext,)) + ext
    grid = len(calc.model.rotation_weights) > 1
    print(f"symprobe md: {source}, {len(atoms)} atoms, model {calc.model.path}, "
          f"rotations {calc.model.rotations}")
    print(f"  {args.steps} steps of {args.timestep} fs, {args.thermostat} at {args.temperature} K;"
          f" trajectory -> {output} every {args.interval} steps")
    print(LEGEND.format(rotations="; dE_rot: energy spread (max - min) over the rotations of "
                                  "the run (meV)" if grid else ""))
    records = []

    def report(step):
        epot = atoms.get_potential_energy()
        ekin = atoms.get_kinetic_energy()
        torque = atoms.calc.results["net_torque"]
        def plain_energy(sign):
            return plain.compute(sign * atoms.positions, atoms.numbers, sign * atoms.cell.array,
                                 atoms.pbc, forces=False, virial=False)["energy"]

        e_x = epot if plain is calc.model else plain_energy(1)
        record = {"step": step, "time_ps": step * args.timestep / 1000,
                  "temperature_K": atoms.get_temperature(), "etot_eV": epot + ekin,
                  "torque_eV": float(np.linalg.norm(torque)),
                  "inversion_spread_eV": abs(e_x - plain_energy(-1))}
        records.append(record)
        spread = f"  dE_rot={1e3 * atoms.calc.results['energy_spread']:8.2f} meV" if grid else ""
        bar.write(f"step {step:7d}  t={record['time_ps']:8.3f} ps  Epot={epot:12.4f} eV  "
                  f"Etot={epot + ekin:12.4f} eV  T={record['temperature_K']:7.1f} K  "
                  f"|torque|={record['torque_eV']:.3e} eV  "
                  f"dE_inv={1e3 * record['inversion_spread_eV']:8.3f} meV{spread}")
        frame = atoms.copy()
        frame.calc = atoms.calc
        if not atoms.pbc.any():  # L about the centre of mass, at full precision
            frame.info["angular_momentum_amu_A2_per_ps"] = angular_momentum(atoms)
        # the energy and forces written are the model's: "source" keeps them from passing
        # for reference labels (symprobe error)
        frame.info.update({"source": "symprobe md", "model": args.model, "step": step, "time_ps": record["time_ps"],
                           "temperature_K": record["temperature_K"], "etot_eV": record["etot_eV"],
                           "thermostat": args.thermostat,
                           "net_torque_eV": np.asarray(torque, float),
                           "inversion_spread_eV": record["inversion_spread_eV"]})
        ase.io.write(output, frame, format="extxyz", append=True)

    wall = 0.0
    with tqdm(total=args.steps, unit="step", file=sys.stdout, dynamic_ncols=True) as bar:
        report(0)
        done = 0
        while done < args.steps:
            n = min(args.interval, args.steps - done)
            started = time.perf_counter()
            dyn.run(n)
            wall += time.perf_counter() - started
            done += n
            bar.update(n)
            report(done)
    summarize(records, args, len(atoms), wall, output)
    return 0


def summarize(records, args, n_atoms, wall, output) -> None:
    """The closing summary: what the run did and measured, and what to run next."""
    import numpy as np

    later = records[1:] or records  # the start is set, not simulated
    temperatures = np.array([r["temperature_K"] for r in later])
    steps = records[-1]["step"]
    print(f"summary: {records[-1]['time_ps']:.3f} ps simulated ({steps} steps of {args.timestep} fs), "
          f"{args.thermostat} at {args.temperature} K")
    print(f"  temperature: mean {temperatures.mean():.1f} K, std {temperatures.std():.1f} K "
          f"over {len(later)} reports after the start")
    if args.thermostat == "none" and len(records) > 2:
        times = np.array([r["time_ps"] for r in records])
        etot = np.array([r["etot_eV"] for r in records])
        drift = np.polyfit(times, etot, 1)[0] / n_atoms
        print(f"  conserved energy drift: {1e3 * drift:+.3f} meV/atom/ps (linear fit of Etot)")
    elif args.thermostat != "none":
        print("  conserved energy drift: not defined (the Langevin thermostat exchanges heat)")
    torques = np.array([r["torque_eV"] for r in records])
    spreads = np.array([r["inversion_spread_eV"] for r in records])
    print(f"  broken symmetry: mean |torque| {torques.mean():.3e} eV, mean dE_inv "
          f"{1e3 * spreads.mean():.3f} meV over {len(records)} reports")
    if wall > 0:
        print(f"  speed: {steps / wall:.2f} steps/s, {steps * n_atoms / wall:.0f} atom-steps/s "
              f"({wall:.1f} s of dynamics)")
    print(f"  trajectory: {output} ({len(records)} frames)")
    print("next:")
    print("  symprobe md --rotations grid 2 --inversion --steps 200   # averaged over 36 rotations "
          "(36 model copies per step; docs/symmetrization.md)")
    print("  cd examples/lammps && lmp -in in.water                   # LAMMPS (docs/lammps.md)")
    print("  cd examples/ipi/classical                                # i-PI and symprobe-ipi "
          "(docs/ipi.md)")


def error_command(args) -> int:
    from .probe.analyze import read_trajectory
    from .probe.error import markdown_table, rotational_error, select_frames, write_report

    frames = read_trajectory(args.data)  # the file is only read
    indices = select_frames(args.frames, len(frames))
    frames = [frames[k] for k in indices]
    sets = [s for s in args.sets.split(",") if s.strip()]
    options = {k: getattr(args, k) for k in ("threads", "device", "chunk") if getattr(args, k) is not None}
    print(f"symprobe error: {len(frames)} frames of {args.data}, model {args.model}, sets "
          f"{', '.join(sets)} against {args.reference}")
    report = rotational_error(frames, args.model, sets, args.reference, batch=args.batch,
                              options=options, progress=True)
    report = {"model": args.model, "data": args.data, "frames": indices, **report}
    paths = write_report(report, args.output)
    print(markdown_table(report))
    print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}")
    return 0


def analyze_command(args) -> int:
    from .probe.analyze import analyze, load_run, summary, write

    labels = args.labels or [os.path.splitext(os.path.basename(p))[0] for p in args.trajectories]
    if len(labels) != len(args.trajectories):
        raise ValueError(f"--labels: {len(labels)} labels for {len(args.trajectories)} trajectories")
    if len(set(labels)) != len(labels):
        raise ValueError(f"--labels: the runs need distinct labels, got {', '.join(labels)}")
    if args.blocks < 1:
        raise ValueError("--blocks must be >= 1")
    properties = args.properties or [None] * len(args.trajectories)
    if len(properties) != len(args.trajectories):
        raise ValueError(f"--properties: {len(properties)} files for {len(args.trajectories)} trajectories")
    if args.start < 0:
        raise ValueError(f"--start must be >= 0 ps, got {args.start}")
    runs = [load_run(p, label, args.frame_time, properties=prop, start_ps=args.start)
            for p, label, prop in zip(args.trajectories, labels, properties)]
    report = analyze(runs, n_blocks=args.blocks)
    paths = write(report, args.output)
    print(summary(report))
    print("wrote " + ", ".join(paths))
    return 0


def main(argv=None) -> int:
    from .runtime import add_option_arguments
    from .models import DEFAULT

    parser = argparse.ArgumentParser(prog="symprobe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("md", help="molecular dynamics with a symprobe model (ASE)")
    p.add_argument("--model", default=DEFAULT, help="model file or bundled model name")
    p.add_argument("--structure", help="start structure (any ASE format; only read); default: 64 "
                        "water molecules equilibrated at 300 K by water-pet")
    p.add_argument("--molecules", type=int, default=64,
                   help="without --structure: 64 starts from the bundled box equilibrated at 300 K; "
                        "another number generates a lattice box (not equilibrated)")
    p.add_argument("--finite", action="store_true",
                   help="evaluate the structure as a finite system, without periodic images (a "
                        "gas-phase molecule in a box): its net torque is defined, and "
                        "--correction torque-free removes it")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--timestep", type=float, default=0.5, help="fs")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--thermostat", choices=["langevin", "none"], default="langevin")
    p.add_argument("--tau", type=float, default=100.0, help="Langevin time constant, fs")
    p.add_argument("--interval", type=int, default=100, help="steps between reports and frames")
    p.add_argument("--output", default="md.xyz", help="extxyz trajectory (never overwritten)")
    add_option_arguments(p, defaults={"skin": 0.5})
    t = sub.add_parser("train", help="train a PET-style model (TOML config; resumes from its checkpoint)")
    t.add_argument("config", help="TOML file, e.g. examples/train-water.toml")
    t.add_argument("--max-epochs", type=int, default=None,
                   help="stop after this many epochs of this call (resume later)")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="stop after the first epoch that ends past this many minutes of this "
                        "call (resume later; for batch jobs with a wall-time limit)")
    e = sub.add_parser("error", help="rotational error of rotation sets against a reference set, "
                                     "frame by frame (the paper's table; docs/probing.md)")
    e.add_argument("data", help="frames (extxyz or any ASE format; only read); labelled frames "
                                "(energy, forces) also give the model's own errors")
    e.add_argument("--model", default=DEFAULT, help="model file or bundled model name")
    e.add_argument("--frames", default=None, help="selection: K, A:B[:S] or a comma list of those "
                                                  "(default: all frames)")
    e.add_argument("--sets", default="0,i,2,2i,3",
                   help="rotation sets: 0 (plain), i (identity and inversion), L (grid of order L), "
                        "Li (with inversion)")
    e.add_argument("--reference", default="3i", help="the reference set (default: 3i, 150 rotations)")
    e.add_argument("--output", default=".", help="directory for rotational-error.json/.md/.png "
                                                 "(existing files are kept: the next free name is used)")
    e.add_argument("--batch", type=int, default=4, help="frames per model call")
    e.add_argument("--chunk", type=int, default=None, help="rotated copies per model call (default: automatic)")
    e.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's setting)")
    e.add_argument("--device", default=None, help="cpu or cuda[:N]")
    a = sub.add_parser("analyze", help="observables of MD trajectories, runs overlaid with "
                                       "block-averaged error bars (docs/probing.md)")
    a.add_argument("trajectories", nargs="+", metavar="TRAJ",
                   help="extxyz from symprobe md, LAMMPS dumps, i-PI output (only read); a "
                        "quoted glob pattern of several files: one path-integral run, a file per bead")
    a.add_argument("--labels", nargs="+", help="one label per trajectory (default: file names)")
    a.add_argument("--output", default="analysis", help="directory for the JSON, PNG and summary.md files")
    a.add_argument("--blocks", type=int, default=5, help="blocks of consecutive frames for error bars")
    a.add_argument("--frame-time", type=float, default=None,
                   help="ps between frames, where the frames carry no time_ps")
    a.add_argument("--properties", nargs="+", metavar="FILE",
                   help="i-PI property files, one per trajectory: frame times, temperature, "
                        "conserved quantity, kinetic_cv")
    a.add_argument("--start", type=float, default=0.0, help="ps at the start of each run left out (equilibration)")
    args = parser.parse_args(argv)
    from ase.io.formats import UnknownFileTypeError
    bad_input = (ValueError, OSError, RuntimeError, UnknownFileTypeError)  # a message, no traceback
    if args.command in ("analyze", "error"):
        try:
            return analyze_command(args) if args.command == "analyze" else error_command(args)
        except bad_input as exc:
            print(f"symprobe {args.command}: error: {exc}", file=sys.stderr)
            return 2
    if args.command == "train":
        from .training.train import train
        try:
            result = train(args.config, max_epochs=args.max_epochs, max_minutes=args.max_minutes)
        except (ValueError, OSError) as error:
            print(f"symprobe train: error: {error}", file=sys.stderr)
            return 2
        if result.get("status") == "incomplete":
            print(f"stopped at epoch {result['epoch']}/{result['epochs']}; run again to resume")
        return 0
    if args.steps < 0 or args.interval < 1 or args.timestep <= 0:
        parser.error("--steps must be >= 0, --interval >= 1 and --timestep > 0")
    try:
        return md(args)
    except bad_input as error:
        print(f"symprobe md: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
