"""Cost per atom-step and memory per atom of every bundled model from 192 to 98304 water atoms
(the 192-atom frame repeated), 1 torch thread, each size in a fresh process (peak resident
memory over import); the largest sizes also in pieces (the option `atoms`). For the PETs, the
floating-point work of one evaluation (torch's FLOP counter over forward and backward, eager) and
the fraction of this CPU's float32 matmul rate that the evaluation reaches.

    .venv/bin/python benchmarks/scaling.py [--quick]
    .venv/bin/python benchmarks/scaling.py --project   # after it, lammps_pair.py and grid_profile.py

--project adds projections of production runs to scaling.json: from the measured rates, the
2-rank LAMMPS speed-up (lammps_pair_water-pet.json), water-pet's grid 2 + inversion cost over 36
plain evaluations (grid_profile.json) and stated GPU figures.

Writes benchmarks/results/scaling.json (not with --quick) and prints the table of docs/scaling.md.
"""
import argparse
import json
import resource
import sys
import time

import symprobe
from common import child_json, median_time, print_table, water_system, write_json

# (model, repeat n of the 192-atom frame, option atoms); water-pet's 98304 atoms need pieces:
# with the option, and without it (chosen from the memory budget)
CASES = [(m, n, 0) for m in ("water-reference", "water-orientation", "water-pet") for n in (1, 2, 4)]
CASES += [("water-reference", 8, 0), ("water-orientation", 8, 0), ("water-pet", 2, 512),
          ("water-pet", 4, 4096), ("water-pet", 8, 4096), ("water-pet", 8, 0)]
QUICK = [("water-reference", 1, 0), ("water-pet", 1, 0), ("water-pet", 2, 512)]


def child(model_name, rep, atoms_option):
    atoms = water_system(rep)
    x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = symprobe.load_model(model_name, threads=1, atoms=atoms_option)
    repeats = 1 if len(atoms) > 20000 else 3
    seconds = median_time(lambda: model.compute(x, z, cell, True), repeats, warmup=1 if repeats > 1 else 0)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
    print(json.dumps({"model": model_name, "atoms": len(atoms), "atoms_option": atoms_option,
                      "seconds": seconds, "us_per_atom_step": 1e6 * seconds / len(atoms),
                      "peak_mb": peak / 2 ** 20, "kb_per_atom": peak / 1024 / len(atoms)}))


def flops_per_atom(model_name):
    """FLOPs of one evaluation (energy and its gradient) of the eager PET, per atom, 192 atoms."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from symprobe.models import bundled_path
    from symprobe.training.pet import PET
    scripted = torch.jit.load(bundled_path(model_name))
    hypers = {k: (v if k in ("cutoff", "cutoff_width") else int(v)) for k, v in scripted.hypers.items()}
    module = PET([1, 8], **hypers)
    module.load_state_dict(scripted.state_dict())
    atoms = water_system(1)
    nl = symprobe.neighbor_list(atoms.positions, atoms.cell.array, True, module.cutoff)
    vectors = torch.tensor(nl.vectors, dtype=torch.float32, requires_grad=True)
    args = (torch.tensor(atoms.numbers), torch.tensor(nl.centers), torch.tensor(nl.neighbors))
    with FlopCounterMode(display=False) as counter:
        energy = module(*args, vectors).sum()
        energy.backward()
    return counter.get_total_flops() / len(atoms)


def matmul_gflops():
    """This CPU's float32 matmul rate on 1 thread (1024 x 1024), GFLOP/s."""
    import torch
    torch.set_num_threads(1)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = median_time(lambda: a @ b, 20, warmup=3)
    return 2 * 1024 ** 3 / seconds / 1e9


# Stated, not measured: the GPU figures of the projections
GPU_TFLOPS = 20.0       # effective float32 rate: a third of an H100/H200's ~60-67 TFLOP/s peak
GPU_FLOOR_S = 2e-3      # per model call: a few hundred kernel launches of a 2-layer PET
STEP_FS = 0.5           # time step of water with hydrogen (fs), classical and path-integral


def projections(scaling, lammps):
    """Cost of production runs of water-pet from the measured rates (1 thread per rank): a 1 ns
    classical run and a 100 ps 32-bead path-integral run of 512 and 4096 molecules, on 1 rank,
    on 2 ranks (the measured LAMMPS speed-up) and on a GPU (the FLOP count at GPU_TFLOPS, at
    least GPU_FLOOR_S per call), plain and with grid 2 + inversion."""
    rate = {r["atoms"]: r["us_per_atom_step"] * 1e-6 for r in scaling["rows"]
            if r["model"] == "water-pet" and r["atoms_option"] == 0}
    speedup2 = {r["atoms"]: r["speedup_2rank"] for r in lammps["rows"]}
    flops = next(r["gflop_per_atom_step"] for r in scaling["rows"] if "gflop_per_atom_step" in r) * 1e9
    g36 = scaling["grid_factor"] * 36
    out = []
    for molecules, atoms in ((512, 1536), (4096, 12288)):
        for run, evaluations in (("1 ns classical", 1e6 / STEP_FS), ("100 ps, 32 beads", 32 * 1e5 / STEP_FS)):
            cpu = rate[atoms] * atoms * evaluations
            gpu = max(flops * atoms / (GPU_TFLOPS * 1e12), GPU_FLOOR_S) * evaluations
            gpu_grid = max(flops * atoms * g36 / (GPU_TFLOPS * 1e12), GPU_FLOOR_S) * evaluations
            out.append({"molecules": molecules, "run": run, "evaluations": evaluations,
                        "cpu_1rank_days": cpu / 86400, "cpu_2ranks_days": cpu / speedup2[atoms] / 86400,
                        "cpu_1rank_grid_days": cpu * g36 / 86400,
                        "gpu_days": gpu / 86400, "gpu_grid_days": gpu_grid / 86400})
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="3 small cases (a check that it runs)")
    p.add_argument("--project", action="store_true",
                   help="only the projections, from scaling.json and lammps_pair_water-pet.json")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), int(args.child[2]))
    if args.project:
        from common import HERE
        scaling = json.loads((HERE / "results" / "scaling.json").read_text())
        lammps = json.loads((HERE / "results" / "lammps_pair_water-pet.json").read_text())
        profile = json.loads((HERE / "results" / "grid_profile.json").read_text())
        rows = [r for r in profile["rows"] if r["model"] == "water-pet"]
        if not rows:
            raise SystemExit("scaling.py --project: grid_profile.json has no water-pet row; run "
                             "benchmarks/grid_profile.py first")
        scaling["grid_factor"] = rows[0]["grid_over_36_plain"]
        scaling["stated"] = {"gpu_tflops": GPU_TFLOPS, "gpu_floor_s": GPU_FLOOR_S, "step_fs": STEP_FS}
        scaling["projections"] = projections(scaling, lammps)
        scaling.pop("machine", None)
        write_json("scaling", scaling)
        print(f"grid 2 + inversion: {scaling['grid_factor']:.2f} G")
        print_table(["molecules", "run", "1 rank (days)", "2 ranks (days)", "1 rank, grid 2i (days)",
                     "GPU (days)", "GPU, grid 2i (days)"],
                    [[str(r["molecules"]), r["run"], f"{r['cpu_1rank_days']:.0f}", f"{r['cpu_2ranks_days']:.0f}",
                      f"{r['cpu_1rank_grid_days']:.0f}", f"{r['gpu_days']:.2f}", f"{r['gpu_grid_days']:.2f}"]
                     for r in scaling["projections"]])
        return
    rows = []
    for model_name, rep, atoms_option in (QUICK if args.quick else CASES):
        rows.append(child_json([sys.executable, __file__, "--child", model_name, str(rep), str(atoms_option)]))
        print(json.dumps(rows[-1]), flush=True)
    peak = matmul_gflops()
    flops = {"water-pet": flops_per_atom("water-pet")}
    for row in rows:
        if row["model"] in flops:
            row["gflop_per_atom_step"] = flops[row["model"]] / 1e9
            row["fraction_of_matmul_rate"] = flops[row["model"]] / (row["us_per_atom_step"] * 1e-6) / (peak * 1e9)
    if not args.quick:  # a check, not a result
        path = write_json("scaling", {"benchmark": "scaling", "threads": 1, "matmul_gflops_1thread": peak,
                                      "rows": rows})
        print(f"wrote {path}")
    print_table(["model", "atoms", "option atoms", "us per atom-step", "kB per atom", "GFLOP per atom-step",
                 "of matmul rate"],
                [[r["model"], str(r["atoms"]), str(r["atoms_option"] or "-"), f"{r['us_per_atom_step']:.1f}",
                  f"{r['kb_per_atom']:.1f}"]
                 + ([f"{r['gflop_per_atom_step']:.4f}", f"{100 * r['fraction_of_matmul_rate']:.0f} %"]
                    if "gflop_per_atom_step" in r else ["-", "-"]) for r in rows])


if __name__ == "__main__":
    main()
