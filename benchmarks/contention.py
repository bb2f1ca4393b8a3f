"""What two processes on this machine's cores cost each other: one `model.compute` of water-pet
(1 torch thread) alone, and in two processes at once (as 2 MPI ranks run), 1536 and 12288
atoms; the slowdown is what the two ranks of a LAMMPS run cost each other on this machine.

    .venv/bin/python benchmarks/contention.py

Writes benchmarks/results/contention.json.
"""
import json
import subprocess
import sys

from common import last_json, median_time, water_system, write_json


def child(rep):
    import symprobe
    atoms = water_system(rep)
    model = symprobe.load_model("water-pet", threads=1)
    seconds = median_time(lambda: model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True),
                          5 if rep <= 2 else 2, warmup=1)
    print(json.dumps({"atoms": len(atoms), "seconds": seconds}))


def run(rep, processes):
    procs = [subprocess.Popen([sys.executable, __file__, "--child", str(rep)], stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    return [last_json(p.communicate()[0])["seconds"] for p in procs]


def main():
    if sys.argv[1:2] == ["--child"]:
        return child(int(sys.argv[2]))
    rows = []
    for rep in (2, 4):
        alone = run(rep, 1)[0]
        together = max(run(rep, 2))
        rows.append({"atoms": 192 * rep ** 3, "alone_s": alone, "two_at_once_s": together,
                     "slowdown": together / alone})
        print(json.dumps(rows[-1]), flush=True)
    print(f"wrote {write_json('contention', {'benchmark': 'contention', 'model': 'water-pet', 'rows': rows})}")


if __name__ == "__main__":
    main()
