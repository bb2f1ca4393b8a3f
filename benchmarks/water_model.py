"""Numbers of the bundled water model's card (docs/water-model.md): accuracy on the held-out
test frames and rotational error beside the paper's.

For every test frame: E and F errors against revPBE0-D3, and the energies and forces averaged
over the rotation sets of the paper's table (0 = plain, i, 2, 2i, 3, 3i), reported as the mean
|E_grid - E_3i| per frame (meV) and mean |F_grid - F_3i| per component (meV/A). The paper's
per-frame energies (paper-archive/test_errors.delta, all 190 frames) give its column.

    .venv/bin/python benchmarks/water_model.py [--model water-pet] [--frames 40]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import HERE, SHARED_DATA, write_json

GRIDS = {"0": ("none", False), "i": ("grid 1", True), "2": ("grid 2", False),
         "2i": ("grid 2", True), "3": ("grid 3", False), "3i": ("grid 3", True)}
HARTREE_EV = 27.211386245988  # CODATA 2018


def paper_rotational_errors() -> dict:
    """Mean |E_grid - E_3i| per frame (meV) of the paper's PET on the 190 test frames."""
    path = SHARED_DATA / "paper-archive" / "test_errors.delta"
    data = np.loadtxt(path)
    data = data[data[:, 0] > 0]  # i-PI's step-0 row repeats the first frame
    if len(data) != 190:
        raise ValueError(f"{path}: expected 190 frames after step 0, found {len(data)}")
    columns = dict(zip(GRIDS, data[:, 1:7].T))
    return {g: float(np.abs(columns[g] - columns["3i"]).mean() * HARTREE_EV * 1e3)
            for g in GRIDS if g != "3i"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="water-pet")
    p.add_argument("--split", default=str(HERE.parent / "training" / "pet-water" / "split.json"),
                   help="split.json of the training run (its test frames are used)")
    p.add_argument("--frames", type=int, default=None, help="use the first N test frames only")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)

    import ase.io
    import symprobe

    frames = ase.io.read(SHARED_DATA / "water-revpbe0d3-190.xyz", index=":")
    with open(args.split) as f:
        test = json.load(f)["test"][:args.frames]
    models = {g: symprobe.load_model(args.model, threads=args.threads, rotations=mode,
                                     inversion=inv) for g, (mode, inv) in GRIDS.items()}
    de, df = [], []
    energies = {g: [] for g in GRIDS}
    forces = {g: [] for g in GRIDS}
    t0 = time.perf_counter()
    for n, k in enumerate(test):
        atoms = frames[k]
        for g, model in models.items():
            out = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc,
                                virial=False)
            energies[g].append(out["energy"])
            forces[g].append(out["forces"])
        de.append((energies["0"][-1] - atoms.get_potential_energy()) / len(atoms))
        df.append((forces["0"][-1] - atoms.get_forces()).ravel())
        print(f"frame {k} ({n + 1}/{len(test)}): dE {1e3 * de[-1]:+.2f} meV/atom, "
              f"|E_0 - E_3i| {1e3 * abs(energies['0'][-1] - energies['3i'][-1]):.2f} meV "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    de, df = 1e3 * np.array(de), 1e3 * np.concatenate(df)
    rotational = {g: {"energy_meV_per_frame": float(1e3 * np.mean(np.abs(
                      np.array(energies[g]) - np.array(energies["3i"])))),
                      "forces_meV_per_A_per_component": float(1e3 * np.mean(np.abs(
                          np.array(forces[g]) - np.array(forces["3i"]))))}
                  for g in GRIDS if g != "3i"}
    result = {"model": args.model, "test_frames": test,
              "test": {"energy_mae_meV_per_atom": float(np.abs(de).mean()),
                       "energy_rmse_meV_per_atom": float(np.sqrt((de ** 2).mean())),
                       "forces_mae_meV_per_A": float(np.abs(df).mean()),
                       "forces_rmse_meV_per_A": float(np.sqrt((df ** 2).mean()))},
              "rotational_error_vs_3i": rotational,
              "paper_rotational_error_vs_3i_meV_per_frame": paper_rotational_errors(),
              "wall_seconds": time.perf_counter() - t0}
    out = write_json("water_model", result)
    t = result["test"]
    print(f"test: E MAE {t['energy_mae_meV_per_atom']:.2f} meV/atom, F MAE "
          f"{t['forces_mae_meV_per_A']:.1f} meV/A, RMSE {t['forces_rmse_meV_per_A']:.1f}")
    print("| grid | ours: meV/frame | ours: meV/A | paper: meV/frame |\n|---|---|---|---|")
    for g in rotational:
        print(f"| {g} | {rotational[g]['energy_meV_per_frame']:.2f} | "
              f"{rotational[g]['forces_meV_per_A_per_component']:.2f} | "
              f"{result['paper_rotational_error_vs_3i_meV_per_frame'][g]:.2f} |")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
