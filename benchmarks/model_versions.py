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

from common import HERE, child_json, write_json


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
                # benchmarks/evaluator.py's measurement: a fresh process, median time, peak RSS
                row = child_json([sys.executable, str(HERE / "evaluator.py"), "--model", path,
                                  "--threads", "1", "--child", "2"])
                runs[label].append({"seconds": row["compute_ms"] / 1e3, "peak_mb": row["peak_rss_mb_over_import"]})
    summary = {label: {"seconds": statistics.median(r["seconds"] for r in rs),
                       "peak_mb": statistics.median(r["peak_mb"] for r in rs)} for label, rs in runs.items()}
    summary["speedup"] = summary[args.commit]["seconds"] / summary["current"]["seconds"]
    summary["memory_ratio"] = summary["current"]["peak_mb"] / summary[args.commit]["peak_mb"]
    print(json.dumps(summary, indent=1))
    print(f"wrote {write_json('model_versions', {'benchmark': 'model_versions', 'atoms': 1536, 'commit': args.commit, 'runs': runs, 'summary': summary})}")


if __name__ == "__main__":
    main()
