"""metatomic models: the core against metatomic's own ASE calculators on the same model, a
metatrain PET of metatrain's default size (d_pet 128, 2 message-passing layers, cutoff 4.5 A,
float32, untrained weights), 1 torch thread, water of 192 and 1536 atoms:
- energy + forces: symprobe's `model.compute` against `MetatomicCalculator.calculate`;
- rotational averaging at 192 atoms: symprobe's grid 2 + inversion (36 rotations, one batched
  stage) against metatomic-ase's `SymmetrizedCalculator(l_max=2)` (60 rotations with
  inversion, all in one batch, plus one plain evaluation), per evaluation and per rotation;
- LAMMPS (1 rank, fix nve, list every 10 steps) per step against one `model.compute`, each in
  a fresh process of its own (5 evaluations of warm-up, then the timed ones).
The two sides of each pair are timed in alternation (medians); LAMMPS runs alternate with
rounds of core calls.

    .venv/bin/python benchmarks/metatomic_backend.py [--repeats 5] [--parts plain lammps grid]

Writes benchmarks/results/metatomic_backend.json.
"""
import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import symprobe
from common import print_table, settled, water_system, write_json
from lammps_pair import lammps_seconds_per_step


def export_default_pet(path) -> int:
    from metatrain.pet import PET
    from metatrain.utils.architectures import get_default_hypers
    from metatrain.utils.data import DatasetInfo
    from metatrain.utils.data.target_info import get_energy_target_info
    torch.manual_seed(0)
    hypers = copy.deepcopy(get_default_hypers("pet")["model"])
    info = DatasetInfo(length_unit="Angstrom", atomic_types=[1, 8], targets={
        "energy": get_energy_target_info("energy", {"quantity": "energy", "unit": "eV"})})
    model = PET(hypers, info)
    model.export().save(str(path))
    return sum(p.numel() for p in model.parameters())


def alternated(first, second, repeats):
    """Medians of two callables timed in alternation (after one warm-up call each)."""
    first(), second()
    times = [[], []]
    for _ in range(repeats):
        for k, fn in enumerate((first, second)):
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return float(np.median(times[0])), float(np.median(times[1]))


CORE_STEPS = """
import sys, time
import ase.io, torch
import symprobe
torch.set_num_threads(1)
atoms = ase.io.read(sys.argv[1])
model = symprobe.load_model(sys.argv[2], threads=1)
x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
for _ in range(int(sys.argv[3])):  # as LAMMPS's first run
    model.compute(x, z, cell, True)
started = time.perf_counter()
for _ in range(int(sys.argv[4])):
    model.compute(x, z, cell, True)
print((time.perf_counter() - started) / int(sys.argv[4]))
"""


def lammps_against_core(path, atoms, steps, rounds):
    """LAMMPS seconds per step and the core's seconds per call, each in a fresh process of its
    own (the same warm-up of 5 evaluations, then `steps` timed ones), in alternating rounds;
    medians over the rounds."""
    import subprocess
    import sys
    lammps, core, sections = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        structure = str(Path(tmp) / "structure.xyz")
        atoms.write(structure)
        for _ in range(rounds):
            seconds, _, sections = lammps_seconds_per_step(path, atoms, steps, 1)
            lammps.append(seconds)
            out = subprocess.run([sys.executable, "-c", CORE_STEPS, structure, path, "5", str(steps)],
                                 capture_output=True, text=True, check=True).stdout
            core.append(float(out.split()[-1]))
    return {"lammps_ms": 1e3 * np.median(lammps), "core_ms": 1e3 * np.median(core)}, sections


def main():
    from ase.calculators.calculator import all_changes
    from metatomic_ase import MetatomicCalculator, SymmetrizedCalculator
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="LAMMPS steps per round at 192 atoms (fewer when larger)")
    p.add_argument("--rounds", type=int, default=3, help="alternating LAMMPS / core rounds")
    p.add_argument("--parts", nargs="+", choices=["plain", "lammps", "grid"], default=["plain", "lammps", "grid"],
                   help="parts to run; the others keep their rows of the existing JSON")
    args = p.parse_args()
    torch.set_num_threads(1)
    previous = Path(__file__).parent / "results" / "metatomic_backend.json"
    rows = {"plain": [], "grid": [], "lammps": []}
    if previous.exists():
        rows.update({k: v for k, v in json.loads(previous.read_text()).items() if k in rows and k not in args.parts})
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "pet.pt")
        parameters = export_default_pet(path)
        for rep in (1, 2):
            atoms = water_system(rep)
            x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
            if "plain" in args.parts:
                model = symprobe.load_model(path, threads=1)
                calc = MetatomicCalculator(path)
                core, ase = alternated(lambda: model.compute(x, z, cell, True),
                                       lambda: calc.calculate(atoms, ["energy", "forces"], all_changes),
                                       max(2, args.repeats // rep ** 2))
                rows["plain"].append({"atoms": len(atoms), "symprobe_ms": 1e3 * core, "metatomic_ase_ms": 1e3 * ase,
                                      "metatomic_ase_over_symprobe": ase / core})
                print(rows["plain"][-1], flush=True)
            if "lammps" in args.parts:
                steps = max(2, args.steps // rep ** 3)
                times, sections = lammps_against_core(path, atoms, steps, args.rounds)
                rows["lammps"].append({"atoms": len(atoms), **{k: float(v) for k, v in times.items()},
                                       "lammps_over_core": float(times["lammps_ms"] / times["core_ms"]),
                                       "steps": steps, "rounds": args.rounds,
                                       "sections_ms": {k: 1e3 * v for k, v in sections.items()}})
                print(rows["lammps"][-1], flush=True)
        if "grid" in args.parts:
            atoms = water_system(1)
            x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
            grid = symprobe.load_model(path, threads=1, rotations="grid 2", inversion=True)
            symmetrized = SymmetrizedCalculator(MetatomicCalculator(path), l_max=2, include_inversion=True)
            settled(grid, x, z, cell)
            ours, theirs = alternated(lambda: grid.compute(x, z, cell, True),
                                      lambda: symmetrized.calculate(atoms, ["energy", "forces"], all_changes),
                                      max(2, args.repeats // 2))
            n_ours, n_theirs = len(grid.rotation_weights), len(symmetrized.quadrature_rotations)
            rows["grid"].append({"atoms": len(atoms), "symprobe_rotations": n_ours, "symprobe_chunk": grid.chunk,
                                 "symprobe_ms": 1e3 * ours, "metatomic_ase_rotations": n_theirs,
                                 "metatomic_ase_ms": 1e3 * theirs, "per_evaluation_ratio": theirs / ours,
                                 "per_rotation_ratio": (theirs / (n_theirs + 1)) / (ours / n_ours)})
            print(rows["grid"][-1], flush=True)
    path = write_json("metatomic_backend", {"benchmark": "metatomic_backend", "model": "metatrain PET, default hypers, float32",
                                            "parameters": parameters, "torch_threads": 1, **rows})
    print(f"wrote {path}")
    print_table(["atoms", "symprobe (ms)", "metatomic-ase (ms)", "ratio"],
                [[str(r["atoms"]), f"{r['symprobe_ms']:.1f}", f"{r['metatomic_ase_ms']:.1f}",
                  f"{r['metatomic_ase_over_symprobe']:.2f}"] for r in rows["plain"]])


if __name__ == "__main__":
    main()
