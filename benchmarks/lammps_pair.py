"""LAMMPS pair_style symprobe: time per MD step (fix nve, neighbour list every 10 steps) against
the core's own evaluation (neighbour list + model + forces) for 192, 1536 and 12288 water
atoms, reference model (or --model NAME), 1 torch thread per rank; 1 and 2 MPI ranks (--ranks).
Several ranks also record the largest graph of a rank, which the pair style logs. A layered
model (water-pet) on several ranks exchanges node features between layers (ghosts out to one
cutoff); the same weights without their layers ("halo": each rank also evaluates the remote
atoms within layers - 1 hops) run beside it.

    .venv/bin/python benchmarks/lammps_pair.py [--steps 50] [--model water-pet --sizes 1 2] [--ranks 1 2 4]

Writes benchmarks/results/lammps_pair.json (lammps_pair_<model>.json for another model).
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import ase.io

import symprobe
from common import median_time, print_table, water_system, write_json
from symprobe.models import bundled_path

BIN = Path(sys.executable).parent


def lammps_seconds_per_step(model, atoms, steps, ranks):
    with tempfile.TemporaryDirectory() as tmp:
        ase.io.write(Path(tmp) / "data.lmp", atoms, format="lammps-data", specorder=["O", "H"], masses=True)
        (Path(tmp) / "in.lmp").write_text(f"""units metal
atom_style atomic
read_data data.lmp
pair_style symprobe {Path(model).resolve() if Path(model).exists() else bundled_path(model)} threads 1
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
        graph = re.search(r"largest graph of a rank: (\d+) local atoms, (\d+) remote centres, "
                          r"(\d+) remote neighbours", out)
        exchanged = re.search(r"largest graph of a rank: (\d+) local atoms, (\d+) ghost atoms", out)
        if exchanged:  # no remote centres
            graph = [int(exchanged[1]), 0, int(exchanged[2])]
        # LAMMPS's timing breakdown of the last run: average seconds per step of each section
        sections = {m[0].lower(): float(m[1]) / steps
                    for m in re.findall(r"^(Pair|Neigh|Comm|Modify|Output|Other)\s*\|\s*\S+\s*\|\s*(\S+)", out, re.M)}
        if graph is not None and not isinstance(graph, list):
            graph = [int(g) for g in graph.groups()]
        return loop / steps, graph, sections


def without_layers(model, path):
    """The model file with the same weights whose metadata hides its layers: several ranks
    evaluate it with remote neighbourhoods (halo) instead of exchanging features."""
    import torch
    extra = {"metadata.json": ""}
    module = torch.jit.load(str(Path(model) if Path(model).exists() else bundled_path(model)), _extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    if "layers" not in meta:
        return None
    del meta["layers"], meta["features"]
    torch.jit.save(module, str(path), _extra_files={"metadata.json": json.dumps(meta)})
    return str(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--model", default="water-reference")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4],
                   help="repeats n of the 192-atom frame (n^3 copies)")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    rows = []
    tmp = tempfile.TemporaryDirectory()
    halo = without_layers(args.model, Path(tmp.name) / "halo.pt") if max(args.ranks) > 1 else None
    for rep in args.sizes:
        atoms = water_system(rep)
        model = symprobe.load_model(args.model, threads=1)
        x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
        core = median_time(lambda: model.compute(x, z, cell, True), max(3, 200 // rep ** 3), warmup=2)
        row = {"atoms": len(atoms), "model": args.model, "core_ms": 1e3 * core}
        for ranks in args.ranks:
            seconds, graph, sections = lammps_seconds_per_step(args.model, atoms, max(10, args.steps // rep ** 2), ranks)
            row[f"lammps_{ranks}rank_ms"] = 1e3 * seconds
            row[f"sections_{ranks}rank_ms"] = {k: 1e3 * v for k, v in sections.items()}
            if graph:
                row[f"graph_{ranks}rank"] = dict(zip(["local", "remote_centres", "remote_neighbours"], graph))
            if halo and ranks > 1:
                seconds, graph, _ = lammps_seconds_per_step(halo, atoms, max(10, args.steps // rep ** 2), ranks)
                row[f"lammps_{ranks}rank_halo_ms"] = 1e3 * seconds
                row[f"graph_{ranks}rank_halo"] = dict(zip(["local", "remote_centres", "remote_neighbours"], graph))
        if "lammps_1rank_ms" in row:
            row["overhead_1rank"] = row["lammps_1rank_ms"] / row["core_ms"] - 1
            for ranks in args.ranks:
                row[f"speedup_{ranks}rank"] = row["lammps_1rank_ms"] / row[f"lammps_{ranks}rank_ms"]
                if f"lammps_{ranks}rank_halo_ms" in row:
                    row[f"speedup_{ranks}rank_halo"] = row["lammps_1rank_ms"] / row[f"lammps_{ranks}rank_halo_ms"]
        rows.append(row)
        print(row, flush=True)
    name = "lammps_pair" if args.model == "water-reference" else f"lammps_pair_{args.model}"
    path = write_json(name, {"benchmark": "lammps_pair", "rows": rows})
    print(f"wrote {path}")
    print_table(["atoms", "core (ms)"] + [f"LAMMPS {n} rank(s) (ms/step)" for n in args.ranks],
                [[str(r["atoms"]), f"{r['core_ms']:.2f}"] + [f"{r[f'lammps_{n}rank_ms']:.2f}" for n in args.ranks]
                 for r in rows])


if __name__ == "__main__":
    main()
