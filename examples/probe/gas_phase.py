"""Gas-phase water molecule in NVE (the paper's experiment 1, ../../docs/probing.md): the total
angular momentum L(t) and the model's net torque for the plain model, grid 2 + inversion, one
random rotation per step (improper with probability 1/2) and the torque-free correction.

The molecule of water-molecule.xyz, a finite system (no periodic images), starts at 300 K
(Maxwell-Boltzmann, seed 0) without centre-of-mass motion and without angular momentum, so that
any L(t) is made by the model's net torque. Velocity Verlet, 0.5 fs.

    python gas_phase.py [--model water-pet] [--steps 2000] [--output gas-phase]
    python gas_phase.py --full        # the paper's length: 10^6 steps (500 ps) per run

Writes OUTPUT.json (per run: time, |L|, L, the model's |torque|, total energy) and OUTPUT.png.
"""
import argparse
import json
import os
import sys
import time

import ase.io
import numpy as np
from ase import units
from ase.md import velocitydistribution as vd
from ase.md.verlet import VelocityVerlet

import symprobe
from symprobe.probe.analyze import angular_momentum

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = {
    "plain": {},
    "2i": {"rotations": "grid 2", "inversion": True},
    "random": {"rotations": "random", "inversion": True, "seed": 1},
    "torque-free": {"correction": "torque-free"},
}


def run(model, options, steps, interval, timestep_fs):
    atoms = ase.io.read(os.path.join(HERE, "water-molecule.xyz"))
    atoms.pbc = False
    thermalize = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    thermalize(atoms, temperature_K=300, rng=np.random.default_rng(0))
    vd.Stationary(atoms)
    vd.ZeroRotation(atoms)
    atoms.calc = symprobe.Calculator(model, threads=1, **options)
    dyn = VelocityVerlet(atoms, timestep_fs * units.fs)
    rows = []

    def record():
        angular = angular_momentum(atoms)  # amu A^2 / ps
        etot = atoms.get_potential_energy() + atoms.get_kinetic_energy()
        rows.append([dyn.nsteps * timestep_fs / 1000, *angular,
                     float(np.linalg.norm(atoms.calc.results["net_torque"])), etot])

    record()
    started = time.perf_counter()
    for _ in range(steps // interval):
        dyn.run(interval)
        record()
    rows = np.array(rows)
    return {"options": options, "time_ps": rows[:, 0].tolist(), "L_amu_A2_per_ps": rows[:, 1:4].tolist(),
            "L_norm": np.linalg.norm(rows[:, 1:4], axis=1).tolist(), "torque_eV": rows[:, 4].tolist(),
            "etot_eV": rows[:, 5].tolist(), "seconds": time.perf_counter() - started}


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, r in report["runs"].items():
        t = np.array(r["time_ps"])
        axes[0].plot(t, r["L_norm"], label=name)
        axes[1].plot(t, r["torque_eV"], label=name)
        axes[2].plot(t, np.array(r["etot_eV"]) - r["etot_eV"][0], label=name)
    axes[0].set_ylabel("|L| (amu A^2/ps)")
    axes[1].set_ylabel("the model's |torque| (eV)")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("E_tot - E_tot(0) (eV)")
    for ax in axes:
        ax.set_xlabel("t (ps)")
    axes[0].legend()
    fig.suptitle(f"one water molecule in NVE, {report['model']}, 0.5 fs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="water-pet")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--interval", type=int, default=20, help="steps between records")
    p.add_argument("--full", action="store_true", help="10^6 steps per run, as in the paper")
    p.add_argument("--output", default="gas-phase", help="OUTPUT.json and OUTPUT.png (never overwritten)")
    args = p.parse_args()
    steps = 1_000_000 if args.full else args.steps
    interval = 1000 if args.full else args.interval
    for suffix in (".json", ".png"):
        if os.path.exists(args.output + suffix):
            sys.exit(f"gas_phase.py: {args.output}{suffix} exists; choose another --output")
    report = {"model": args.model, "steps": steps, "timestep_fs": 0.5, "runs": {}}
    for name, options in RUNS.items():
        report["runs"][name] = r = run(args.model, options, steps, interval, 0.5)
        print(f"{name:12s} final |L| {r['L_norm'][-1]:10.4g} amu A^2/ps, max |L| {max(r['L_norm']):10.4g}, "
              f"mean model |torque| {np.mean(r['torque_eV']):.3g} eV, "
              f"E_tot drift {r['etot_eV'][-1] - r['etot_eV'][0]:+.2e} eV ({r['seconds']:.0f} s)", flush=True)
    with open(args.output + ".json", "w") as f:
        json.dump(report, f)
    plot(report, args.output + ".png")
    print(f"wrote {args.output}.json, {args.output}.png")


if __name__ == "__main__":
    main()
