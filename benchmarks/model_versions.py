"""The bundled water-pet of an earlier commit against the current file, alternated in fresh
processes (1 torch thread, 1536 atoms, energy + forces + virial): speed and peak memory of the
same weights under two versions of the PET code.

    .venv/bin/python benchmarks/model_versions.py [--commit bf7a0f0] [--rounds 3]

Writes benchmarks/results/model_versions.json.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import HERE, write_json

MEASURE = """
import json, resource, sys
sys.path.insert(0, {benchmarks!r})
import symprobe
from common import median_time, water_system
atoms = water_system(2)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = symprobe.load_model({path!r}, threads=1)
seconds = median_time(lambda: model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True), 5, warmup=2)
print(json.dumps({{"seconds": seconds, "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}}))
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--commit", default="bf7a0f0")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    current = str(HERE.parent / "python" / "symprobe" / "models" / "water-pet.pt")
    with tempfile.TemporaryDirectory() as tmp:
        earlier = Path(tmp) / "water-pet-earlier.pt"
        earlier.write_bytes(subprocess.run(["git", "show", f"{args.commit}:python/symprobe/models/water-pet.pt"],
                                           cwd=HERE.parent, capture_output=True, check=True).stdout)
        runs = {args.commit: [], "current": []}
        for _ in range(args.rounds):
            for label, path in ((args.commit, str(earlier)), ("current", current)):
                out = subprocess.run([sys.executable, "-c", MEASURE.format(benchmarks=str(HERE), path=path)],
                                     capture_output=True, text=True, check=True)
                runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {label: {"seconds": statistics.median(r["seconds"] for r in rs),
                       "peak_mb": statistics.median(r["peak_mb"] for r in rs)} for label, rs in runs.items()}
    summary["speedup"] = summary[args.commit]["seconds"] / summary["current"]["seconds"]
    summary["memory_ratio"] = summary["current"]["peak_mb"] / summary[args.commit]["peak_mb"]
    print(json.dumps(summary, indent=1))
    print(f"wrote {write_json('model_versions', {'benchmark': 'model_versions', 'atoms': 1536, 'commit': args.commit, 'runs': runs, 'summary': summary})}")


if __name__ == "__main__":
    main()
