"""Stability and structure of liquid water MD with a model: Langevin NVT at 300 K, 0.5 fs.

Every --interval (0.1 ps) it checks that no molecule broke (each O keeps two H within 1.3 A,
each H one O) and that energies stay finite, adds the frame to g_OO(r) once past equilibration,
and writes a checkpoint (state.npz: positions, momenta, random stream, g(r) histogram). A killed
run resumes with the same command, so 50 ps runs can span sessions. The model card's runs
(docs/water-model.md) are committed in benchmarks/runs/:

    .venv/bin/python benchmarks/water_md.py --molecules 64 --ps 50 --run-dir benchmarks/runs/md-64
    .venv/bin/python benchmarks/water_md.py --molecules 512 --ps 50 --run-dir benchmarks/runs/md-512

Defaults are small (1 ps, in the untracked runs/water-md-<molecules> of the repository). The
result (stability, temperature, g_OO and its first peak) goes to result.json in the run's folder,
so that a trial run never replaces the model card's. A finished run keeps settings.json and log.jsonl;
its checkpoint can then be removed (the result file holds everything the checkpoint adds), after
which the folder refuses to start again.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

from common import HERE, SHARED_DATA, write_json

ROOT = HERE.parent  # the repository: recorded paths are relative to it


def start_structure(n_molecules: int, seed: int):
    from symprobe.water import water_box
    path = SHARED_DATA / "water-512.xyz"
    if n_molecules == 512 and path.exists():
        import ase.io
        return ase.io.read(path, index=0), os.path.relpath(path, ROOT)
    return water_box(n_molecules, seed=seed), f"generated box of {n_molecules} molecules"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=None, help="model file or bundled name (default: the "
                   "package default)")
    p.add_argument("--molecules", type=int, default=64)
    p.add_argument("--ps", type=float, default=1.0, help="simulated time, ps")
    p.add_argument("--timestep", type=float, default=0.5, help="fs")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--tau", type=float, default=100.0, help="Langevin time constant, fs")
    p.add_argument("--interval", type=float, default=0.1, help="ps between checks, g(r) frames "
                   "and checkpoints")
    p.add_argument("--equilibration", type=float, default=None,
                   help="ps skipped before g(r) (default: a fifth of the run, at most 5 ps)")
    p.add_argument("--report", action="store_true", help="only write the result of the run so "
                   "far (no further steps)")
    p.add_argument("--trajectory", action="store_true", help="also append every checked frame "
                   "to trajectory.xyz in the run folder")
    p.add_argument("--run-dir", default=None, help="checkpoint and trajectory folder "
                   "(default runs/water-md-<molecules> of the repository, untracked)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import ase.io
    from ase import units
    from ase.md import velocitydistribution as vd
    from ase.md.langevin import Langevin

    import symprobe
    from symprobe.water.analysis import (broken_water_molecules, first_peak, max_rdf_range,
                                   pair_histogram,
                                   radial_distribution_from_histogram)
    from symprobe.models import DEFAULT

    model = args.model or DEFAULT
    run = args.run_dir or str(ROOT / "runs" / f"water-md-{args.molecules}")
    os.makedirs(run, exist_ok=True)
    equilibration = (args.equilibration if args.equilibration is not None
                     else min(5.0, 0.2 * args.ps))
    # everything that shapes the trajectory or its analysis; --ps may grow between calls
    settings = {"model": model, "molecules": args.molecules, "timestep_fs": args.timestep,
                "temperature_K": args.temperature, "tau_fs": args.tau, "seed": args.seed,
                "interval_ps": args.interval, "equilibration_ps": equilibration}
    state_path, settings_path = os.path.join(run, "state.npz"), os.path.join(run, "settings.json")
    log_path, traj_path = os.path.join(run, "log.jsonl"), os.path.join(run, "trajectory.xyz")

    atoms, source = start_structure(args.molecules, args.seed)
    atoms.calc = symprobe.Calculator(model, threads=args.threads, rotations="none")
    with open(atoms.calc.model.path, "rb") as f:  # a resumed run must use the same file
        settings["model_sha256"] = hashlib.sha256(f.read()).hexdigest()
    r_max = min(8.0, max_rdf_range(atoms.cell.array) - 1e-6)
    edges = np.linspace(0.0, r_max, int(r_max / 0.025) + 1)
    rng = np.random.default_rng(args.seed)
    if os.path.exists(state_path):
        with open(settings_path) as f:
            saved = json.load(f)
        if args.equilibration is None:  # the default was fixed when the run started
            settings["equilibration_ps"] = equilibration = saved.get("equilibration_ps")
        if saved != settings:
            sys.exit(f"{run} holds a run with other settings {saved}; use another --run-dir")
        state = np.load(state_path, allow_pickle=False)
        atoms.positions = state["positions"]
        atoms.set_momenta(state["momenta"])
        step, wall = int(state["step"]), float(state["wall_seconds"])
        g_counts, g_norm, g_frames = state["g_counts"], float(state["g_norm"]), int(state["g_frames"])
        rng.bit_generator.state = json.loads(str(state["rng"]))
        failure = json.loads(str(state["failure"]))
        # log lines written after the last checkpoint (a kill in between) are dropped
        with open(log_path) as f:
            kept = [line for line in f if json.loads(line)["step"] <= step]
        with open(log_path, "w") as f:
            f.writelines(kept)
        print(f"resuming {run} at {step * args.timestep / 1000:.2f} ps"
              + (" (it failed there: reporting only)" if failure else ""))
    elif os.path.exists(log_path) and os.path.getsize(log_path):
        # a finished run whose checkpoint was removed: starting over would overwrite its log
        sys.exit(f"{run} holds the log of a run but no checkpoint (a finished run: its result is "
                 f"in {os.path.join(run, 'result.json')}); use another --run-dir")
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=rng)
        vd.Stationary(atoms)
        step, wall, failure = 0, 0.0, None
        g_counts, g_norm, g_frames = np.zeros(len(edges) - 1), 0.0, 0
        with open(settings_path, "w") as f:
            json.dump(settings, f)
    dyn = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature,
                   friction=1.0 / (args.tau * units.fs), fixcm=False, rng=rng)
    print(f"water MD: {source}, {len(atoms)} atoms, model {atoms.calc.model.path}, "
          f"{args.timestep} fs, Langevin {args.temperature} K (tau {args.tau} fs) -> {run}")

    per_check = max(1, round(args.interval * 1000 / args.timestep))
    total = step if args.report else round(args.ps * 1000 / args.timestep)
    while step < total and failure is None:
        t0 = time.perf_counter()
        n = min(per_check, total - step)
        try:
            dyn.run(n)
            epot = atoms.get_potential_energy()
            problems = broken_water_molecules(atoms)
        except (RuntimeError, ValueError) as error:  # e.g. the core refusing non-finite forces
            epot, problems = float("nan"), [f"evaluation failed: {error}"]
        step += n
        wall += time.perf_counter() - t0
        time_ps = step * args.timestep / 1000
        if problems:
            failure = {"time_ps": time_ps, "problems": problems[:10]}
        elif time_ps > equilibration + 1e-9:
            counts, norm = pair_histogram(atoms, 8, 8, edges)
            g_counts, g_norm, g_frames = g_counts + counts, g_norm + norm, g_frames + 1
        entry = {"step": step, "time_ps": time_ps, "epot_eV": epot,
                 "temperature_K": atoms.get_temperature(), "broken": len(problems)}
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if args.trajectory or failure:
            ase.io.write(traj_path, atoms, format="extxyz", append=True)
        np.savez(state_path + ".tmp.npz", positions=atoms.positions, momenta=atoms.get_momenta(),
                 step=step, wall_seconds=wall, rng=json.dumps(rng.bit_generator.state),
                 g_counts=g_counts, g_norm=g_norm, g_frames=g_frames, failure=json.dumps(failure))
        os.replace(state_path + ".tmp.npz", state_path)  # atomic: a kill never corrupts it
        print(f"{time_ps:8.2f} ps  Epot {epot:12.4f} eV  T {entry['temperature_K']:6.1f} K"
              f"  broken {len(problems)}  ({1e3 * wall / step:.1f} ms/step)", flush=True)

    with open(log_path) as f:
        log = [json.loads(line) for line in f]
    failures = [e for e in log if e["broken"]]
    after = np.array([e["temperature_K"] for e in log if e["time_ps"] > equilibration + 1e-9])
    result = {"model": model, "source": source, "settings": settings, "atoms": len(atoms),
              "simulated_ps": log[-1]["time_ps"] if log else 0.0, "target_ps": args.ps,
              "stable": not failures, "first_failure": failure or (failures[0] if failures else None),
              "temperature_mean_K": float(after.mean()) if len(after) else None,
              "temperature_std_K": float(after.std()) if len(after) else None,
              "g_OO_frames": g_frames, "wall_seconds": wall, "ms_per_step": 1e3 * wall / max(step, 1),
              "torch_threads": None if args.report else args.threads}  # of the last call that stepped
    if g_frames:
        r, g = radial_distribution_from_histogram(edges, g_counts, g_norm)
        peak_r, peak_g = first_peak(r, g)
        result.update({"g_OO_first_peak_A": peak_r, "g_OO_first_peak_height": peak_g,
                       "g_OO": {"r_A": r.round(4).tolist(), "g": g.round(4).tolist()}})
    out = write_json("result", result, directory=run)
    peak = (f"g_OO first peak {result['g_OO_first_peak_A']:.3f} A (height "
            f"{result['g_OO_first_peak_height']:.2f}, {g_frames} frames)" if g_frames else
            "no frames past equilibration yet")
    print(f"{'stable' if result['stable'] else 'FAILED'} over {result['simulated_ps']:.2f} ps; "
          f"{peak} -> {out}")
    return 0 if result["stable"] else 1


if __name__ == "__main__":
    sys.exit(main())
