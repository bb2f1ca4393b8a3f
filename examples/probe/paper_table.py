"""The paper's rotational-error table recomputed from its own per-frame energies
(../shared/data/paper-archive/*.delta: step, then the energies of grids 0, i, 2, 2i, 3, 3i in
Hartree), in the layout of `symprobe error`: mean over frames of |E_set - E_3i| (meV per frame)
with its standard error.

    python paper_table.py [--archive ../../../shared/data/paper-archive] [--output paper-table.json]
"""
import argparse
import json
import os

import numpy as np

HARTREE_EV = 27.211386245988  # CODATA 2018
SETS = ["0", "i", "2", "2i", "3"]
FILES = {"test_errors": "190 test frames (64 H2O)", "nvt_errors": "101 bulk MD frames (512 H2O)",
         "mol_errors": "1000 gas-phase molecule frames"}


def table(path):
    data = np.loadtxt(path)
    energies = data[:, 1:7] * HARTREE_EV * 1e3  # meV
    rows = []
    for k, name in enumerate(SETS):
        err = np.abs(energies[:, k] - energies[:, 5])
        rows.append({"set": name, "energy_meV_per_frame": float(err.mean()),
                     "energy_sem": float(err.std(ddof=1) / np.sqrt(len(err)))})
    return {"frames": len(data), "reference": "3i", "rows": rows}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archive", default=os.path.join(here, "..", "..", "..", "shared", "data", "paper-archive"))
    p.add_argument("--output", default="paper-table.json")
    args = p.parse_args()
    if os.path.exists(args.output):
        raise SystemExit(f"paper_table.py: {args.output} exists; choose another --output")
    report = {name: {"what": what, **table(os.path.join(args.archive, f"{name}.delta"))}
              for name, what in FILES.items()}
    print("| frames | " + " | ".join(SETS) + " |")
    print("|---|" + "---|" * len(SETS))
    for r in report.values():
        print(f"| {r['what']} | " + " | ".join(f"{x['energy_meV_per_frame']:.3g}" for x in r["rows"]) + " |")
    with open(args.output, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
