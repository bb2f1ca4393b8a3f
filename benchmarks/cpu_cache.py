"""The core's cache of large CPU blocks (csrc/cpu_cache.hpp) against torch's allocator alone
(SYMPROBE_NO_CPU_CACHE=1): one `model.compute` of water-pet (1 torch thread) at 1536 and 12288
atoms, the two settings alternated in fresh processes; time per call, the kernel's share of it
(system CPU time: page faults of fresh blocks), minor page faults per call and peak memory.

    .venv/bin/python benchmarks/cpu_cache.py [--rounds 3] [--sizes 2 4]

Writes benchmarks/results/cpu_cache.json and prints a markdown table.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

from common import child_json, print_table, water_system, write_json


def child(rep):
    import symprobe
    atoms = water_system(rep)
    model = symprobe.load_model("water-pet", threads=1)
    x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
    model.compute(x, z, cell, True)
    calls = 3
    before, seconds = resource.getrusage(resource.RUSAGE_SELF), []
    for _ in range(calls):
        started = time.perf_counter()
        model.compute(x, z, cell, True)
        seconds.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"atoms": len(atoms), "seconds": statistics.median(seconds),
                      "system_seconds": (after.ru_stime - before.ru_stime) / calls,
                      "minor_faults": (after.ru_minflt - before.ru_minflt) / calls,
                      "peak_mb": after.ru_maxrss / 1024}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sizes", type=int, nargs="+", default=[2, 4], help="repeats n of the 192-atom frame (n^3 copies)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return
    settings = {"cache": {}, "no cache": {"SYMPROBE_NO_CPU_CACHE": "1"}}
    runs = {size: {name: [] for name in settings} for size in args.sizes}
    for _ in range(args.rounds):
        for size in args.sizes:
            for name, extra in settings.items():
                env = {k: v for k, v in os.environ.items() if k != "SYMPROBE_NO_CPU_CACHE"}
                env.update(extra)
                runs[size][name].append(child_json([sys.executable, __file__, "--child", str(size)], env=env))
                print(size, name, runs[size][name][-1], flush=True)
    rows = []
    for size, by_setting in runs.items():
        row = {"atoms": by_setting["cache"][0]["atoms"]}
        for name, values in by_setting.items():
            row[name] = {key: statistics.median(v[key] for v in values)
                         for key in ("seconds", "system_seconds", "minor_faults", "peak_mb")}
        row["speedup"] = row["no cache"]["seconds"] / row["cache"]["seconds"]
        rows.append(row)
    path = write_json("cpu_cache", {"benchmark": "cpu_cache", "model": "water-pet", "threads": 1,
                                    "rounds": args.rounds, "runs": {str(k): v for k, v in runs.items()}, "rows": rows})
    print(f"\nwrote {path}\n")
    print_table(["atoms", "no cache (s)", "cache (s)", "speed-up", "kernel share, no cache / cache",
                 "minor faults per call, no cache / cache", "peak memory (MB), no cache / cache"],
                [[str(r["atoms"]), f"{r['no cache']['seconds']:.3f}", f"{r['cache']['seconds']:.3f}", f"{r['speedup']:.2f}",
                  f"{100 * r['no cache']['system_seconds'] / r['no cache']['seconds']:.0f} % / "
                  f"{100 * r['cache']['system_seconds'] / r['cache']['seconds']:.0f} %",
                  f"{r['no cache']['minor_faults']:.0f} / {r['cache']['minor_faults']:.0f}",
                  f"{r['no cache']['peak_mb']:.0f} / {r['cache']['peak_mb']:.0f}"] for r in rows])


if __name__ == "__main__":
    main()
