"""Stability and structure of liquid water MD with a model: Langevin NVT at 300 K, 0.5 fs.

Checks at every frame that no molecule breaks (each O keeps two H within 1.3 A, each H one O)
and that energies stay finite; at the end computes g_OO(r) over the frames after equilibration
and its first peak. Long runs checkpoint every frame and resume with the same command:

    .venv/bin/python benchmarks/water_md.py --molecules 64 --ps 50 --run-dir runs/md-64
    .venv/bin/python benchmarks/water_md.py --molecules 512 --ps 50 --run-dir runs/md-512

Defaults are small (1 ps). The result goes to benchmarks/results/water_md_<molecules>.json.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from common import SHARED_DATA, write_json


def start_structure(n_molecules: int, seed: int):
    from symprobe.water import water_box
    path = SHARED_DATA / "water-512.xyz"
    if n_molecules == 512 and path.exists():
        import ase.io
        return ase.io.read(path, index=0), str(path)
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
    p.add_argument("--frame-interval", type=float, default=0.1, help="ps between frames, checks "
                   "and checkpoints")
    p.add_argument("--equilibration", type=float, default=None,
                   help="ps skipped before g(r) (default: a fifth of the run)")
    p.add_argument("--run-dir", default=None, help="checkpoint and trajectory folder "
                   "(default runs/water-md-<molecules>)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import ase.io
    from ase import units
    from ase.md import velocitydistribution as vd
    from ase.md.langevin import Langevin

    import symprobe
    from symprobe.analysis import broken_water_molecules, first_peak, radial_distribution
    from symprobe.models import DEFAULT

    model = args.model or DEFAULT
    run = args.run_dir or f"runs/water-md-{args.molecules}"
    os.makedirs(run, exist_ok=True)
    settings = {"model": model, "molecules": args.molecules, "timestep_fs": args.timestep,
                "temperature_K": args.temperature, "tau_fs": args.tau, "seed": args.seed,
                "frame_interval_ps": args.frame_interval}
    state_path, traj_path = os.path.join(run, "state.npz"), os.path.join(run, "trajectory.xyz")
    settings_path, log_path = os.path.join(run, "settings.json"), os.path.join(run, "log.jsonl")

    rng = np.random.default_rng(args.seed)
    if os.path.exists(state_path):
        with open(settings_path) as f:
            saved = json.load(f)
        if saved != settings:
            sys.exit(f"{run} holds a run with other settings {saved}; use another --run-dir")
        state = np.load(state_path, allow_pickle=False)
        atoms, source = start_structure(args.molecules, args.seed)
        atoms.positions = state["positions"]
        atoms.set_momenta(state["momenta"])
        step, wall = int(state["step"]), float(state["wall_seconds"])
        rng.bit_generator.state = json.loads(str(state["rng"]))
        print(f"resuming {run} at {step * args.timestep / 1000:.2f} ps")
    else:
        atoms, source = start_structure(args.molecules, args.seed)
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=rng)
        vd.Stationary(atoms)
        step, wall = 0, 0.0
        with open(settings_path, "w") as f:
            json.dump(settings, f)
    atoms.calc = symprobe.Calculator(model, threads=args.threads, rotations="none")
    dyn = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature,
                   friction=1.0 / (args.tau * units.fs), fixcm=False, rng=rng)

    per_frame = max(1, round(args.frame_interval * 1000 / args.timestep))
    total = round(args.ps * 1000 / args.timestep)
    failure = None
    while step < total and failure is None:
        t0 = time.perf_counter()
        n = min(per_frame, total - step)
        dyn.run(n)
        step += n
        wall += time.perf_counter() - t0
        epot = atoms.get_potential_energy()
        problems = broken_water_molecules(atoms)
        if not np.isfinite(epot) or not np.isfinite(atoms.get_momenta()).all():
            problems.append("non-finite energy or momenta")
        if problems:
            failure = {"time_ps": step * args.timestep / 1000, "problems": problems[:10]}
        entry = {"step": step, "time_ps": step * args.timestep / 1000, "epot_eV": epot,
                 "temperature_K": atoms.get_temperature(), "broken": len(problems)}
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        ase.io.write(traj_path, atoms, format="extxyz", append=True)
        np.savez(state_path + ".tmp.npz", positions=atoms.positions, momenta=atoms.get_momenta(),
                 step=step, wall_seconds=wall, rng=json.dumps(rng.bit_generator.state))
        os.replace(state_path + ".tmp.npz", state_path)  # atomic: a kill never corrupts it
        print(f"{entry['time_ps']:8.2f} ps  Epot {epot:12.4f} eV  T {entry['temperature_K']:6.1f} K"
              f"  broken {len(problems)}  ({1e3 * wall / step:.1f} ms/step)", flush=True)

    with open(log_path) as f:
        log = [json.loads(line) for line in f]
    frames = ase.io.read(traj_path, index=":")
    time_ps = np.array([e["time_ps"] for e in log])
    equilibration = args.equilibration if args.equilibration is not None else 0.2 * time_ps[-1]
    after = [a for a, t in zip(frames, time_ps) if t > equilibration]
    r_max = min(8.0, 0.5 * min(atoms.cell.lengths()))
    r, g = radial_distribution(after, 8, 8, r_max, n_bins=int(r_max / 0.025))
    peak_r, peak_g = first_peak(r, g)
    temperatures = np.array([e["temperature_K"] for e in log if e["time_ps"] > equilibration])
    result = {"model": model, "source": source, "settings": settings, "atoms": len(atoms),
              "simulated_ps": float(time_ps[-1]), "target_ps": args.ps,
              "stable": failure is None, "failure": failure,
              "max_broken_molecule_reports": int(max(e["broken"] for e in log)),
              "temperature_mean_K": float(temperatures.mean()) if len(temperatures) else None,
              "temperature_std_K": float(temperatures.std()) if len(temperatures) else None,
              "g_OO_frames": len(after), "g_OO_first_peak_A": peak_r, "g_OO_first_peak_height": peak_g,
              "g_OO": {"r_A": r.round(4).tolist(), "g": g.round(4).tolist()},
              "wall_seconds": wall, "ms_per_step": 1e3 * wall / max(step, 1),
              "torch_threads": args.threads}
    out = write_json(f"water_md_{args.molecules}", result)
    print(f"{'stable' if failure is None else 'FAILED'} over {time_ps[-1]:.2f} ps; g_OO first peak "
          f"{peak_r:.3f} A (height {peak_g:.2f}, {len(after)} frames); -> {out}")
    return 0 if failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
