"""TorchScript executor mode for energy + gradient: why the core runs models unoptimised on CPU.

The optimising graph executor wraps a model in differentiable graphs whose backward computes the
gradient of every input that requires it, the weights included, although the core only asks for
d E / d vectors. The core therefore evaluates with the graph optimiser off (op by op, autograd
recorded as in eager PyTorch) and with the weights frozen (requires_grad false). This benchmark
times forward + backward of each bundled model on the same graph both ways (the core's previous
and present setting), alternating, in one process, and the core's full `compute` call:

    .venv/bin/python benchmarks/executor.py [--threads 1] [--sizes 1 2]

Writes benchmarks/results/executor.json and prints a markdown table (ms, medians).
"""
import argparse

import numpy as np
import torch

import symprobe
from common import median_time, print_table, water_system, write_json
from symprobe.models import BUNDLED, bundled_path


def graph(model, atoms):
    """The model-contract inputs of `atoms` (edges within the model's cutoff)."""
    nl = symprobe.neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, model.cutoff)
    return (torch.from_numpy(np.asarray(atoms.numbers, dtype=np.int64)),
            torch.from_numpy(nl.centers).long(), torch.from_numpy(nl.neighbors).long(),
            torch.from_numpy(nl.vectors))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2],
                        help="repeats n of the 192-atom frame (n^3 copies)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in BUNDLED:
        core = symprobe.load_model(name, threads=args.threads)
        dtype = {"float32": torch.float32, "float64": torch.float64}[core.metadata["dtype"]]
        for rep in args.sizes:
            atoms = water_system(rep)
            species, centers, neighbors, vectors = graph(core, atoms)
            # fresh modules per mode and size: an executor keeps the plan of its first calls
            modules = {optimise: torch.jit.load(bundled_path(name)).eval() for optimise in (True, False)}
            for parameter in modules[False].parameters():
                parameter.requires_grad_(False)

            def energy_and_gradient(optimise: bool):
                with torch.jit.optimized_execution(optimise):
                    v = vectors.to(dtype).requires_grad_(True)
                    e = modules[optimise](species, centers, neighbors, v).sum()
                    return torch.autograd.grad(e, v)[0]

            times = {True: [], False: []}
            for _ in range(args.repeats):  # alternate so that machine noise hits both alike
                for optimise in (True, False):
                    times[optimise].append(median_time(lambda: energy_and_gradient(optimise), 3,
                                                       warmup=3))
            x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
            row = {"model": name, "atoms": len(atoms), "threads": args.threads,
                   "optimised_ms": 1e3 * float(np.median(times[True])),
                   "unoptimised_ms": 1e3 * float(np.median(times[False])),
                   "core_compute_ms": 1e3 * median_time(lambda: core.compute(x, z, cell, True),
                                                        args.repeats, warmup=3)}
            row["speedup"] = row["optimised_ms"] / row["unoptimised_ms"]
            rows.append(row)
            print(row, flush=True)
    path = write_json("executor", {"benchmark": "executor", "torch": torch.__version__,
                                   "rows": rows})
    print(f"\nwrote {path}\n")
    print_table(["model", "atoms", "optimising executor (ms)", "unoptimised, frozen weights (ms)",
                 "speed-up", "core E+F+W (ms)"],
                [[r["model"], str(r["atoms"]), f"{r['optimised_ms']:.1f}", f"{r['unoptimised_ms']:.1f}",
                  f"{r['speedup']:.2f}", f"{r['core_compute_ms']:.1f}"] for r in rows])


if __name__ == "__main__":
    main()
