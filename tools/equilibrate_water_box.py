"""Makes the start structure of `symprobe md`: a 64-molecule water box equilibrated at 300 K by
the bundled model itself, so that a run starts in equilibrium.

    .venv/bin/python tools/equilibrate_water_box.py python/symprobe/water/water-64-300K.xyz

Protocol: `water_box(64, seed=0)` (a lattice at 0.997 g/cm^3), Langevin at 300 K with a 20 fs
time constant for 1 ps (the lattice relaxes and its heat is removed), then with the 100 fs of
`symprobe md` for 2 ps; 0.5 fs steps, velocities and thermostat seeded with 0. The last frame
is written with its provenance in the comment line; positions wrapped into the cell. The
float32 model makes the result depend on the machine's arithmetic: regenerate, do not compare.
"""
import argparse
import os
import sys

import ase.io
import numpy as np
from ase import units
from ase.md import velocitydistribution as vd
from ase.md.langevin import Langevin

import symprobe
from symprobe.models import DEFAULT
from symprobe.water import water_box

STAGES = ((20.0, 1.0), (100.0, 2.0))  # (Langevin time constant fs, duration ps)
TIMESTEP_FS = 0.5
TEMPERATURE_K = 300.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("output", help="extxyz file to write (never overwritten)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if os.path.exists(args.output):
        print(f"{args.output} exists; remove it first", file=sys.stderr)
        return 2
    atoms = water_box(64, seed=0)
    atoms.calc = symprobe.Calculator(DEFAULT, threads=args.threads, skin=0.5)
    rng = np.random.default_rng(0)
    vd.MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE_K, rng=rng)
    vd.Stationary(atoms)
    for tau, ps in STAGES:
        dyn = Langevin(atoms, TIMESTEP_FS * units.fs, temperature_K=TEMPERATURE_K,
                       friction=1.0 / (tau * units.fs), fixcm=False, rng=rng)
        steps = int(round(ps * 1000 / TIMESTEP_FS))
        for done in range(0, steps, 200):
            dyn.run(200)
            print(f"tau {tau:g} fs, {(done + 200) * TIMESTEP_FS / 1000:.1f} ps: "
                  f"T={atoms.get_temperature():.1f} K Epot={atoms.get_potential_energy():.3f} eV",
                  flush=True)
    atoms.wrap()
    out = atoms.copy()
    del out.arrays["momenta"]  # positions and cell only: md draws its own velocities
    out.info = {"source": "tools/equilibrate_water_box.py", "model": DEFAULT,
                "temperature_K": TEMPERATURE_K, "protocol": "Langevin 300 K: tau 20 fs 1 ps, "
                "tau 100 fs 2 ps, 0.5 fs steps, seed 0, from water_box(64, seed=0)"}
    ase.io.write(args.output, out, format="extxyz")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
