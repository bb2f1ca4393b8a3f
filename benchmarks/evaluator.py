"""Evaluator time per call (energy + forces + virial) and peak memory, for 192, 1536 and 12288
water atoms, with the bundled reference model (or --model NAME|PATH).

    .venv/bin/python benchmarks/evaluator.py [--model water-reference] [--threads 2] [--sizes 1 2]

Each size runs in a fresh subprocess so that its peak resident memory can be read. Writes
benchmarks/results/evaluator.json (evaluator_<model>.json for another model) and prints a
markdown table.
"""
import argparse
import json
import resource
import sys

import symprobe
from common import child_json, median_time, print_table, water_system, write_json


def measure(model_name, rep, threads):
    """Runs in a child process: prints one JSON row."""
    atoms = water_system(rep)
    x, z, cell, pbc = atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = symprobe.load_model(model_name, threads=threads)
    n = len(atoms)
    repeats = max(5, int(2e4 / n))
    row = {"atoms": n, "threads": threads, "model": model_name}
    row["compute_ms"] = 1e3 * median_time(lambda: model.compute(x, z, cell, pbc), repeats, warmup=3)
    row["energy_only_ms"] = 1e3 * median_time(
        lambda: model.compute(x, z, cell, pbc, forces=False, virial=False), repeats, warmup=2)
    row["neighbors_ms"] = 1e3 * median_time(
        lambda: symprobe.neighbor_list(x, cell, pbc, model.cutoff, threads=threads), repeats)
    row["us_per_atom"] = 1e3 * row["compute_ms"] / n
    row["peak_rss_mb_over_import"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    print(json.dumps(row))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="water-reference")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4],
                        help="repeats n of the 192-atom frame (n^3 copies)")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.model, args.child, args.threads)
        return
    rows = []
    for rep in args.sizes:
        rows.append(child_json([sys.executable, __file__, "--model", args.model, "--threads",
                                str(args.threads), "--child", str(rep)]))
        print(rows[-1], flush=True)
    name = "evaluator" if args.model == "water-reference" else f"evaluator_{args.model}"
    path = write_json(name, {"benchmark": "evaluator", "rows": rows})
    print(f"\nwrote {path}\n")
    print_table(["atoms", "E+F+W (ms)", "E only (ms)", "neighbour list (ms)", "us/atom",
                 "peak RSS over import (MB)"],
                [[str(r["atoms"]), f"{r['compute_ms']:.2f}", f"{r['energy_only_ms']:.2f}", f"{r['neighbors_ms']:.2f}",
                  f"{r['us_per_atom']:.1f}", f"{r['peak_rss_mb_over_import']:.0f}"] for r in rows])


if __name__ == "__main__":
    main()
