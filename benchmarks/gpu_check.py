"""Throughput of the core on one device: atom-steps per second of water-pet and the PET-size
model (benchmarks/common.py), plain and with grid 2 + inversion (36 rotations), and the host <->
device copies of one evaluation (counted by torch's profiler on CUDA). Part of
benchmarks/gpu_check.sh; runs on the CPU too (--device cpu), where no copies are counted.

    python benchmarks/gpu_check.py --device cuda [--sizes 1536 12288] [--quick] [--output FILE]

Writes benchmarks/results/gpu_check_<device>.json unless --output names another file.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import symprobe
from common import median_time, pet_size_model, settled, water_system, write_json

REPEATS = {192: 1, 1536: 2, 12288: 4}  # copies of the 192-atom frame per side


def copies_per_evaluation(evaluate, device):
    """Host-to-device and device-to-host copies of one evaluation (CUDA's memcpy events)."""
    if not device.startswith("cuda"):
        return None
    import torch
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        evaluate()
        torch.cuda.synchronize()
    names = [e.name for e in prof.events()]
    return {"host_to_device": sum("Memcpy HtoD" in n for n in names),
            "device_to_host": sum("Memcpy DtoH" in n for n in names)}


def measure(label, path, atoms_count, device, rotations, repeats):
    atoms = water_system(REPEATS[atoms_count])
    x, z, cell = atoms.positions, atoms.numbers, atoms.cell.array
    options = dict(device=device) if rotations == "none" else dict(device=device, rotations=rotations,
                                                                   inversion=True)
    model = symprobe.load_model(path, **options)
    result = settled(model, x, z, cell)
    sync = (lambda: __import__("torch").cuda.synchronize()) if device.startswith("cuda") else (lambda: None)

    def evaluate():
        model.compute(x, z, cell, True)
        sync()

    seconds = median_time(evaluate, repeats, warmup=1)
    row = {"model": label, "atoms": len(atoms), "rotations": len(result["rotation_energies"]),
           "seconds_per_step": seconds, "atom_steps_per_second": len(atoms) / seconds,
           "chunk": model.chunk, "copies_per_step": copies_per_evaluation(evaluate, device)}
    if device.startswith("cuda"):
        import torch
        row["peak_device_memory_mb"] = torch.cuda.max_memory_allocated(torch.device(device)) / 2 ** 20
        torch.cuda.reset_peak_memory_stats(torch.device(device))
    print(json.dumps(row), flush=True)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[1536, 12288], choices=sorted(REPEATS),
                   help="atoms (water frames repeated)")
    p.add_argument("--quick", action="store_true",
                   help="192 atoms, water-pet plain and grid, the PET-size model plain (a check that it runs)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", help="JSON file (default benchmarks/results/gpu_check_<device>.json)")
    args = p.parse_args()
    import torch
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"gpu_check: --device {args.device} but torch {torch.__version__} sees no CUDA device")
    sizes = [192] if args.quick else args.sizes
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pet_size = os.path.join(tmp, "pet-size.pt")
        pet_size_model(pet_size)
        for n in sizes:
            for rotations in ("none", "grid 2"):
                for label, path in (("water-pet", "water-pet"), ("PET-size", pet_size)):
                    if args.quick and label == "PET-size" and rotations != "none":
                        continue
                    try:
                        rows.append(measure(label, path, n, args.device, rotations, args.repeats))
                    except (RuntimeError, ValueError) as error:  # e.g. out of device memory: keep going
                        rows.append({"model": label, "atoms": n, "rotations": 1 if rotations == "none" else 36,
                                     "error": str(error).splitlines()[0]})
                        print(json.dumps(rows[-1]), flush=True)
                        if args.device.startswith("cuda"):
                            torch.cuda.empty_cache()  # the next row starts with the device's memory free
    payload = {"benchmark": "gpu_check", "device": args.device, "torch": torch.__version__,
               "device_name": (torch.cuda.get_device_name(torch.device(args.device))
                               if args.device.startswith("cuda") else "cpu"),
               "rows": rows, "wall_seconds": time.perf_counter() - t0}
    if args.output:
        out = Path(args.output)
        out.write_text(json.dumps(payload, indent=1))
    else:
        out = write_json(f"gpu_check_{args.device.replace(':', '')}", payload)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
