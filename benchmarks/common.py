"""Shared helpers of the benchmarks: timing, structures, JSON output."""
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("SYMPROBE_SHARED", HERE.parents[1] / "shared")) / "data"


def water_system(n_repeat: int):
    """The first revPBE0-D3 frame (192 atoms) repeated n_repeat^3 times, or a generated box
    of the same size when ../shared is absent."""
    path = SHARED_DATA / "water-revpbe0d3-190.xyz"
    if path.exists():
        import ase.io
        atoms = ase.io.read(path, index=0)
    else:
        from symprobe.water import water_box
        atoms = water_box(64)
    return atoms.repeat((n_repeat,) * 3)


def pet_size_model(path) -> int:
    """Exports an untrained PET-size transformer (d_model 128, 4 message-passing layers x 2
    transformer blocks, d_ff 512, cutoff 4 A, float32) to `path`; returns its parameter count."""
    import torch
    import symprobe
    from symprobe.training.pet import PET
    torch.manual_seed(0)
    module = PET([1, 8], cutoff=4.0, d_model=128, n_heads=4, d_ff=512, n_layers=4, n_blocks=2)
    symprobe.export_model(module, path, cutoff=4.0, interaction_range=module.interaction_range,
                          elements=["H", "O"], dtype=torch.float32, overwrite=True)
    return sum(p.numel() for p in module.parameters())


def settled(model, x, z, cell, pbc=True):
    """Evaluates until the automatic rotation chunk has finished its trials (at most 12 calls),
    so that timings see the size it settled on; returns the last result."""
    for _ in range(12):
        result = model.compute(x, z, cell, pbc)
        if model.chunk > 0 or len(result["rotation_energies"]) == 1:
            break
    return result


def last_json(stdout: str) -> dict:
    """The JSON object on the last line a benchmark's child process printed."""
    return json.loads(stdout.strip().splitlines()[-1])


def child_json(cmd, **kwargs) -> dict:
    """Runs a benchmark's child process (a fresh process: its own peak memory, no warm caches)
    and returns the JSON object of its last output line."""
    return last_json(subprocess.run(cmd, capture_output=True, text=True, check=True, **kwargs).stdout)


def print_table(header, rows):
    """A Markdown table: `header` names, `rows` lists of formatted cells."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` calls, in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def write_json(name: str, payload: dict, directory=None) -> Path:
    """payload + the machine, as `name`.json in `directory` (default: benchmarks/results)."""
    payload = dict(payload)
    payload["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": platform.python_version()}
    out = Path(directory or HERE / "results") / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    return out
