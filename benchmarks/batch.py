"""Batches of structures (path-integral beads): one `compute_batch` call of B structures with
every structure in one model call (batch B), with the automatic choice of structures per call
(batch 0, after it has settled), against B separate `compute` calls; 1 torch thread. Structures
of 192 atoms (the first revPBE0-D3 frame), and of 24 atoms (8 molecules, where the per-call
overhead is a larger share) for the cheap model.

    .venv/bin/python benchmarks/batch.py [--beads 32] [--models water-reference water-pet] [--small water-reference]

Each model runs in a fresh process (peak RSS). Writes benchmarks/results/batch.json and prints a
markdown table (medians, seconds per B structures).
"""
import argparse
import json
import resource
import sys

import numpy as np

import symprobe
from common import child_json, median_time, print_table, water_system, write_json


def child(model_name, beads, repeats, molecules):
    if molecules == 64:
        atoms = water_system(1)
    else:
        from symprobe.water import water_box
        atoms = water_box(molecules, seed=1)
    rng = np.random.default_rng(0)
    positions = [atoms.positions + rng.normal(0, 0.02, atoms.positions.shape) for _ in range(beads)]
    cells = [atoms.cell.array] * beads
    z = atoms.numbers
    row = {"model": model_name, "atoms": len(atoms), "beads": beads}
    separate = symprobe.load_model(model_name, threads=1)
    row["separate_s"] = median_time(lambda: [separate.compute(p, z, c, True) for p, c in zip(positions, cells)],
                                    repeats)
    whole = symprobe.load_model(model_name, threads=1, batch=beads)
    row["one_call_s"] = median_time(lambda: whole.compute_batch(positions, z, cells, True), repeats)
    auto = symprobe.load_model(model_name, threads=1)
    for _ in range(12):  # until the automatic choice has settled
        auto.compute_batch(positions, z, cells, True)
        if auto.batch > 0:
            break
    row["auto_s"] = median_time(lambda: auto.compute_batch(positions, z, cells, True), repeats, warmup=0)
    row["auto_batch"] = auto.batch
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(row))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--beads", type=int, default=32)
    p.add_argument("--models", nargs="+", default=["water-reference", "water-pet"])
    p.add_argument("--small", nargs="*", default=["water-reference"], help="models also run with 24-atom structures")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--molecules", type=int, default=64, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.beads, args.repeats, args.molecules)
        return
    rows = []
    for model, molecules in [(m, 64) for m in args.models] + [(m, 8) for m in args.small]:
        rows.append(child_json([sys.executable, __file__, "--child", model, "--beads", str(args.beads),
                                "--repeats", str(args.repeats), "--molecules", str(molecules)]))
        print(rows[-1], flush=True)
    path = write_json("batch", {"benchmark": "batch", "threads": 1, "rows": rows})
    print(f"\nwrote {path}\n")
    print_table(["model", "beads x atoms", "separate calls (s)", "one call (s)", "automatic (s)",
                 "automatic batch", "auto / separate"],
                [[r["model"], f"{r['beads']} x {r['atoms']}", f"{r['separate_s']:.3f}", f"{r['one_call_s']:.3f}",
                  f"{r['auto_s']:.3f}", str(r["auto_batch"]), f"{r['auto_s'] / r['separate_s']:.2f}"] for r in rows])


if __name__ == "__main__":
    main()
