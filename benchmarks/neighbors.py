"""Neighbour-list time: symprobe vs vesin vs ase.neighborlist, water from 192 to ~100k atoms.

    .venv/bin/pip install vesin      # benchmark only
    .venv/bin/python benchmarks/neighbors.py [--max-repeat 8] [--cutoff 5.0]

Writes benchmarks/results/neighbors.json and prints a markdown table (medians, ms).
"""
import argparse

import numpy as np
from ase.neighborlist import primitive_neighbor_list

import symprobe
from common import median_time, water_system, write_json


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-repeat", type=int, default=8)
    parser.add_argument("--cutoff", type=float, default=5.0)
    args = parser.parse_args()
    try:
        import vesin
    except ImportError:
        vesin = None
        print("vesin not installed: `pip install vesin` to include it")
    rows = []
    for rep in [r for r in (1, 2, 4, 8) if r <= args.max_repeat]:
        atoms = water_system(rep)
        x, cell, pbc = atoms.positions, atoms.cell.array, atoms.pbc
        n = len(atoms)
        repeats = max(3, int(2e5 / n))
        row = {"atoms": n, "cutoff": args.cutoff}
        nl = symprobe.neighbor_list(x, cell, pbc, args.cutoff)
        row["pairs"] = len(nl.centers)
        for threads in (1, 2):
            row[f"symprobe_{threads}t_ms"] = 1e3 * median_time(
                lambda: symprobe.neighbor_list(x, cell, pbc, args.cutoff, threads=threads), repeats)
        if vesin is not None:
            for threads in (1, 2):
                calc = vesin.NeighborList(cutoff=args.cutoff, full_list=True, n_threads=threads)
                got = calc.compute(x, cell, True, quantities="ijSD")
                assert len(got[0]) == row["pairs"]
                row[f"vesin_{threads}t_ms"] = 1e3 * median_time(
                    lambda: calc.compute(x, cell, True, quantities="ijSD"), repeats)
        ase_repeats = max(1, min(repeats, int(2e4 / n)))
        row["ase_ms"] = 1e3 * median_time(
            lambda: primitive_neighbor_list("ijSD", pbc, cell, x, args.cutoff,
                                            self_interaction=False), ase_repeats, warmup=0)
        rows.append(row)
        print(row, flush=True)
    out = write_json("neighbors", {"benchmark": "neighbors", "quantities": "i, j, shifts, vectors",
                                   "full_list": True, "rows": rows})
    print(f"\nwrote {out}\n")
    print("| atoms | pairs | symprobe 1t | symprobe 2t | vesin 1t | vesin 2t | ASE | symprobe/vesin (1t) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        v1 = r.get("vesin_1t_ms", float("nan"))
        v2 = r.get("vesin_2t_ms", float("nan"))
        print(f"| {r['atoms']} | {r['pairs']} | {r['symprobe_1t_ms']:.2f} | {r['symprobe_2t_ms']:.2f} "
              f"| {v1:.2f} | {v2:.2f} | {r['ase_ms']:.1f} | {r['symprobe_1t_ms'] / v1:.2f} |")


if __name__ == "__main__":
    main()
