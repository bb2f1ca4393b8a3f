"""Proton-disordered ice Ih (the paper's experiment 4, ../../docs/probing.md): relative energies of
the proton arrangements with the plain model and with grid 2 + inversion, and the RMS of their
difference (paper: the arrangements span 0.32 meV/molecule (std); plain and averaged agree to
0.007 meV/molecule RMS).

Each cell of ice-ih-proton-disordered.xyz is relaxed at fixed cell with the plain model (FIRE,
max force 0.01 eV/A). By default the averaged energy is then evaluated at the plain minimum: the
averaged minimum lies a rotational force error (~1 meV/A) away, so the energy it would gain by
relaxing is second order in that error, far below the differences measured. --full relaxes
every cell again with the averaged model, as the paper did, and uses the paper's 9 cells.

    python ice.py [--cells 5] [--model water-pet] [--output ice]
    python ice.py --full

Writes OUTPUT.json: per cell, atoms, molecules, relaxation steps, energies (eV) and relative
energies (meV/molecule); the std of the relative energies and the RMS of plain - averaged.
"""
import argparse
import json
import os
import sys
import time

import ase.io
import numpy as np
from ase.optimize import FIRE

import symprobe

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "shared", "data", "ice-ih-proton-disordered.xyz")


def relax(atoms, calc, fmax, steps):
    atoms.calc = calc
    opt = FIRE(atoms, logfile=None)
    converged = opt.run(fmax=fmax, steps=steps)
    return bool(converged), opt.nsteps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DATA, help="proton-disordered cells (../shared/data by default)")
    p.add_argument("--cells", type=int, default=5, help="the first N cells (--full: 9)")
    p.add_argument("--model", default="water-pet")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--fmax", type=float, default=0.01, help="eV/A")
    p.add_argument("--steps", type=int, default=500, help="relaxation steps at most")
    p.add_argument("--full", action="store_true", help="9 cells, and each relaxed with the averaged model too")
    p.add_argument("--output", default="ice", help="OUTPUT.json (never overwritten)")
    args = p.parse_args()
    if os.path.exists(args.output + ".json"):
        sys.exit(f"ice.py: {args.output}.json exists; choose another --output")
    cells = ase.io.read(args.data, index=f":{9 if args.full else args.cells}")
    options = {"threads": args.threads} if args.threads else {}
    plain = symprobe.Calculator(args.model, **options)
    averaged = symprobe.Calculator(args.model, rotations="grid 2", inversion=True, **options)
    rows = []
    for k, atoms in enumerate(cells):
        started = time.perf_counter()
        n_mol = int((atoms.numbers == 8).sum())
        converged, steps = relax(atoms, plain, args.fmax, args.steps)
        e_plain = atoms.get_potential_energy()
        row = {"cell": k, "atoms": len(atoms), "molecules": n_mol, "plain_steps": steps,
               "plain_converged": converged, "plain_eV": e_plain}
        if args.full:
            converged, steps = relax(atoms, averaged, args.fmax, args.steps)
            row.update(averaged_steps=steps, averaged_converged=converged)
        else:
            atoms.calc = averaged
        row["averaged_eV"] = atoms.get_potential_energy()
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        print(f"cell {k}: {len(atoms)} atoms, {steps} steps, E_plain {e_plain / n_mol:.6f}, "
              f"E_2i {row['averaged_eV'] / n_mol:.6f} eV/molecule ({row['seconds']:.0f} s)", flush=True)
    per_mol = {key: np.array([r[f"{key}_eV"] / r["molecules"] for r in rows]) for key in ("plain", "averaged")}
    relative = {key: 1e3 * (v - v.mean()) for key, v in per_mol.items()}
    for r, a, b in zip(rows, relative["plain"], relative["averaged"]):
        r["plain_relative_meV_per_molecule"], r["averaged_relative_meV_per_molecule"] = float(a), float(b)
    report = {"model": args.model, "full": args.full, "fmax_eV_per_A": args.fmax, "cells": rows,
              "spread_std_meV_per_molecule": {k: float(v.std()) for k, v in relative.items()},
              "rms_plain_minus_averaged_meV_per_molecule":
                  float(np.sqrt(np.mean((relative["plain"] - relative["averaged"]) ** 2)))}
    with open(args.output + ".json", "w") as f:
        json.dump(report, f, indent=1)
    print(f"relative energies (meV/molecule), plain: {np.round(relative['plain'], 3).tolist()}")
    print(f"relative energies (meV/molecule), 2i:    {np.round(relative['averaged'], 3).tolist()}")
    print(f"std of the arrangements: plain {report['spread_std_meV_per_molecule']['plain']:.3f}, 2i "
          f"{report['spread_std_meV_per_molecule']['averaged']:.3f} meV/molecule (paper 0.32); RMS of "
          f"plain - 2i {report['rms_plain_minus_averaged_meV_per_molecule']:.4f} meV/molecule (paper 0.007)")
    print(f"wrote {args.output}.json")


if __name__ == "__main__":
    main()
