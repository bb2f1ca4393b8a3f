"""This checkout against another build of symprobe, measured alternately in one run: the
evaluation path (plain and grid-symmetrised `model.compute`) before and after a change.

    git worktree add /tmp/before <commit>
    .venv/bin/python -m pip install --no-build-isolation --no-deps --target /tmp/before-site /tmp/before
    .venv/bin/python benchmarks/paired_builds.py --other /tmp/before-site --label-other <commit>

Each measurement runs in a fresh process (benchmarks/symmetrize.py's child: median over repeated
calls after the automatic chunk has settled), alternating the two builds `--rounds` times;
the table gives the median over rounds of each build and their ratio. Writes
benchmarks/results/paired_builds.json.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import HERE, child_json, write_json

CASES = [  # (model, repeats of the 192-atom frame, rotations, inversion)
    ("water-reference", 1, "none", False),
    ("water-reference", 1, "grid 2", True),
    ("water-reference", 2, "none", False),
    ("water-reference", 2, "grid 2", True),
    ("water-pet", 1, "none", False),
    ("water-pet", 1, "grid 2", True),
]

# Hides this checkout's editable install, so that PYTHONPATH decides which build is imported.
HIDE_EDITABLE = ("import sys\nsys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in "
                 "type(f).__module__.lower()]\n")


def measure(case, threads, repeats, other):
    model, rep, rotations, inversion = case
    cmd = [sys.executable, str(HERE / "symmetrize.py"), "--child", "--model", model, "--rep",
           str(rep), "--rotations", rotations, "--chunk", "0", "--threads", str(threads),
           "--repeats", str(repeats)] + (["--inversion"] if inversion else [])
    env = dict(os.environ)
    if other:
        env["PYTHONPATH"] = os.pathsep.join([other["boot"], other["site"]])
    return child_json(cmd, env=env)["seconds"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--other", required=True, help="site directory of the other build")
    p.add_argument("--label-other", default="other")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    boot = tempfile.mkdtemp()
    Path(boot, "sitecustomize.py").write_text(HIDE_EDITABLE)
    other = {"boot": boot, "site": os.path.abspath(args.other)}
    rows = []
    for case in CASES:
        repeats = 3 if case[0] == "water-pet" else 9
        times = {"this": [], "other": []}
        for _ in range(args.rounds):
            times["other"].append(measure(case, args.threads, repeats, other))
            times["this"].append(measure(case, args.threads, repeats, None))
        row = {"model": case[0], "atoms": 192 * case[1] ** 3, "rotations": case[2],
               "inversion": case[3], "this_s": statistics.median(times["this"]),
               "other_s": statistics.median(times["other"]), "rounds": times}
        row["ratio"] = row["this_s"] / row["other_s"]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "rounds"}), flush=True)
    path = write_json("paired_builds", {"benchmark": "paired_builds", "other": args.label_other,
                                        "threads": args.threads, "rows": rows})
    print(f"\nwrote {path}\n")
    print(f"| model | atoms | rotations | {args.label_other} (ms) | this (ms) | this / {args.label_other} |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        rot = r["rotations"] + (" + inversion" if r["inversion"] else "")
        print(f"| {r['model']} | {r['atoms']} | {rot} | {1e3 * r['other_s']:.1f} | "
              f"{1e3 * r['this_s']:.1f} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
