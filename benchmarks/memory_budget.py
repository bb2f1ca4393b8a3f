"""The option memory: what the automatic batch of structures and chunk of rotated copies settle
on under a memory budget, the memory per item the core measured, and the peak resident memory
of the process over the memory after the model's first plain evaluation; 1 torch thread, a
fresh process per row.

- water-reference, 32 structures of 192 atoms (beads) in `compute_batch`, batch automatic;
- water-pet, grid 2 + inversion (36 copies) of 192 atoms, chunk automatic.

    .venv/bin/python benchmarks/memory_budget.py [--budgets 0 2 8] [--pet-budgets 0 100]

Writes benchmarks/results/memory_budget.json and prints a markdown table.
"""
import argparse
import json
import resource
import sys
import time

import numpy as np

import symprobe
from common import child_json, print_table, water_system, write_json


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(case, memory):
    atoms = water_system(1)
    z, cell = atoms.numbers, atoms.cell.array
    edges = len(symprobe.neighbor_list(atoms.positions, cell, True, 4.0).centers)
    if case == "beads":
        model = symprobe.load_model("water-reference", threads=1, memory=memory)
        model.compute(atoms.positions, z, cell, True)
        base = peak_mb()
        rng = np.random.default_rng(0)
        positions = [atoms.positions + rng.normal(0, 0.02, atoms.positions.shape) for _ in range(32)]
        call = lambda: model.compute_batch(positions, z, [cell] * 32, True)  # noqa: E731
        settled = lambda: model.batch  # noqa: E731
    else:
        model = symprobe.load_model("water-pet", threads=1, memory=memory, rotations="grid 2", inversion=True)
        model.compute(atoms.positions, z, cell, True, symmetrize=False)
        base = peak_mb()
        call = lambda: model.compute(atoms.positions, z, cell, True)  # noqa: E731
        settled = lambda: model.chunk  # noqa: E731
    for _ in range(12):  # until the automatic choice has settled
        call()
        if settled() > 0:
            break
    started = time.perf_counter()
    call()
    seconds = time.perf_counter() - started
    items = settled()
    per_item_mb = model.memory_per_edge_bytes * edges / 2 ** 20
    print(json.dumps({"case": case, "memory_mb": memory, "budget_mb": model.memory_budget_bytes / 2 ** 20,
                      "settled": items, "measured_per_item_mb": per_item_mb,
                      "items_x_per_item_mb": items * per_item_mb, "seconds": seconds,
                      "peak_over_base_mb": peak_mb() - base}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--budgets", type=int, nargs="+", default=[0, 2, 8])
    p.add_argument("--pet-budgets", type=int, nargs="+", default=[0, 100])
    p.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    rows = []
    for case, budgets in (("beads", args.budgets), ("grid", args.pet_budgets)):
        for memory in budgets:
            rows.append(child_json([sys.executable, __file__, "--child", case, str(memory)]))
            print(rows[-1], flush=True)
    path = write_json("memory_budget", {"benchmark": "memory_budget", "threads": 1, "rows": rows})
    print(f"\nwrote {path}\n")
    print_table(["case", "memory (MB)", "budget (MB)", "settled per call", "measured per item (MB)",
                 "per call (MB)", "time per evaluation (s)", "peak RSS over base (MB)"],
                [["32 beads, water-reference" if r["case"] == "beads" else "grid 2i, water-pet",
                  str(r["memory_mb"]) if r["memory_mb"] else "0 (auto)", f"{r['budget_mb']:.0f}", str(r["settled"]),
                  f"{r['measured_per_item_mb']:.2f}", f"{r['items_x_per_item_mb']:.1f}", f"{r['seconds']:.3f}",
                  f"{r['peak_over_base_mb']:.0f}"] for r in rows])


if __name__ == "__main__":
    main()
