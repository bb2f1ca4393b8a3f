"""Where the time of a grid-symmetrised evaluation goes: grid 2 + inversion (36 rotations,
automatic chunk) of 192 atoms, 1 torch thread, split into the core's named stages (torch's
profiler over the core's record scopes): staging the graph on the device, rotating the copies,
the model's forward, per-copy energies, the model's backward (autograd), rotating gradients back,
and forces and virial; the rest of a `model.compute` call is the neighbour list and Python.
Beside it, the plain evaluation and the grid's cost in plain evaluations.

    .venv/bin/python benchmarks/grid_profile.py [--models water-reference water-pet]

Writes benchmarks/results/grid_profile.json.
"""
import argparse
import json
import time

import torch
from torch.profiler import ProfilerActivity, profile

import symprobe
from common import median_time, print_table, settled, water_system, write_json

STAGES = ["stage_graph", "rotate", "model_forward", "energies", "model_backward", "rotate_back",
          "forces_and_virial"]


def breakdown(model_name, repeats):
    atoms = water_system(1)
    x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
    plain = symprobe.load_model(model_name, threads=1)
    grid = symprobe.load_model(model_name, threads=1, rotations="grid 2", inversion=True)
    settled(grid, x, z, cell)
    t_plain = median_time(lambda: plain.compute(x, z, cell, True), 5 * repeats, warmup=1)
    t_grid = median_time(lambda: grid.compute(x, z, cell, True), repeats, warmup=0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        for _ in range(repeats):
            grid.compute(x, z, cell, True)
        profiled = (time.perf_counter() - started) / repeats
    totals = {e.key.split("::", 1)[1]: e.cpu_time_total / 1e6 / repeats
              for e in prof.key_averages() if e.key.startswith("symprobe::")}
    stages = {s: totals.get(s, 0.0) for s in STAGES}
    stages["rest (neighbour list, Python)"] = max(0.0, profiled - sum(stages.values()))
    return {"model": model_name, "atoms": len(atoms), "rotations": 36, "chunk": grid.chunk,
            "plain_ms": 1e3 * t_plain, "grid_ms": 1e3 * t_grid, "grid_over_36_plain": t_grid / (36 * t_plain),
            "profiled_ms": 1e3 * profiled,
            "stages_ms": {k: 1e3 * v for k, v in stages.items()},
            "stages_fraction": {k: v / profiled for k, v in stages.items()}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["water-reference", "water-pet"])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.models:
        rows.append(breakdown(name, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    print(f"wrote {write_json('grid_profile', {'benchmark': 'grid_profile', 'rows': rows})}")
    print_table(["stage"] + [f"{r['model']} (ms, share)" for r in rows],
                [[stage] + [f"{r['stages_ms'][stage]:.2f} ({100 * r['stages_fraction'][stage]:.0f} %)" for r in rows]
                 for stage in rows[0]["stages_ms"]])


if __name__ == "__main__":
    main()
