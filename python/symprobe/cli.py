"""The `symprobe` command line."""
from __future__ import annotations

import argparse
import os
import sys


def _free_path(path: str) -> str:
    """`path` if it does not exist, else the first of path-1, path-2, ... that does not."""
    if not os.path.exists(path):
        return path
    root, ext = os.path.splitext(path)
    k = 1
    while os.path.exists(f"{root}-{k}{ext}"):
        k += 1
    return f"{root}-{k}{ext}"


def md(args) -> int:
    import ase.io
    import numpy as np
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md import velocitydistribution as vd
    from ase.md.verlet import VelocityVerlet
    from tqdm import tqdm

    from .calculator import Calculator
    from .runtime import options_from_arguments
    from .water import water_box

    options = options_from_arguments(args)
    calc = Calculator(args.model, **options)
    seed = calc.model.seed  # one seed: rotations, velocities, thermostat and generated box
    if args.structure:
        atoms = ase.io.read(args.structure, index=0)
        source = args.structure
    else:
        atoms = water_box(args.molecules, seed=seed)
        source = f"generated box of {args.molecules} water molecules"
    calc.model.check_numbers(atoms.numbers)
    atoms.calc = calc
    # thermalize_momenta replaces MaxwellBoltzmannDistribution from ASE 3.28 on
    thermalize = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    thermalize(atoms, temperature_K=args.temperature, rng=np.random.default_rng(seed))
    vd.Stationary(atoms)
    if args.thermostat == "langevin":
        dyn = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature,
                       friction=1.0 / (args.tau * units.fs), fixcm=False,
                       rng=np.random.default_rng(seed))
    else:
        dyn = VelocityVerlet(atoms, args.timestep * units.fs)
    output = _free_path(args.output)
    print(f"symprobe md: {source}, {len(atoms)} atoms, model {atoms.calc.model.path}, "
          f"rotations {atoms.calc.model.rotations}")
    print(f"  {args.steps} steps of {args.timestep} fs, {args.thermostat} at {args.temperature} K;"
          f" trajectory -> {output} every {args.interval} steps")

    def report(step):
        epot = atoms.get_potential_energy()
        ekin = atoms.get_kinetic_energy()
        torque = np.linalg.norm(atoms.calc.results["net_torque"])
        spread = (f"  dE_rot={1e3 * atoms.calc.results['energy_spread']:.2f} meV"
                  if len(atoms.calc.results["rotation_energies"]) > 1 else "")
        bar.write(f"step {step:7d}  t={step * args.timestep / 1000:8.3f} ps  "
                  f"Epot={epot:12.4f} eV  Etot={epot + ekin:12.4f} eV  "
                  f"T={atoms.get_temperature():7.1f} K  |torque|={torque:.3e} eV{spread}")
        ase.io.write(output, atoms, format="extxyz", append=True)

    with tqdm(total=args.steps, unit="step", file=sys.stdout, dynamic_ncols=True) as bar:
        report(0)
        done = 0
        while done < args.steps:
            n = min(args.interval, args.steps - done)
            dyn.run(n)
            done += n
            bar.update(n)
            report(done)
    print(f"wrote {output}")
    return 0


def main(argv=None) -> int:
    from .runtime import add_option_arguments
    from .models import DEFAULT

    parser = argparse.ArgumentParser(prog="symprobe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("md", help="molecular dynamics with a symprobe model (ASE)")
    p.add_argument("--model", default=DEFAULT, help="model file or bundled model name")
    p.add_argument("--structure", help="start structure (any ASE format); default: a water box")
    p.add_argument("--molecules", type=int, default=64, help="molecules in the generated box")
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
    args = parser.parse_args(argv)
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
    except (ValueError, OSError, RuntimeError) as error:  # bad input: a message, no traceback
        print(f"symprobe md: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
