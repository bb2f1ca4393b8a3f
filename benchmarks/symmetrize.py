"""Cost of rotational averaging in the core: a grid of G rotations (one batched forward and
backward per chunk) against one plain evaluation, for several chunk sizes, and peak memory.

    .venv/bin/python benchmarks/symmetrize.py [--grid "grid 2"] [--inversion] [--quick]

Models: the bundled reference model, and an untrained PET-size transformer (d_model 128,
4 message-passing layers x 2 transformer blocks, d_ff 512, cutoff 4 A, ~1.6M parameters, float32).
Each configuration runs in a fresh subprocess (peak RSS). Writes benchmarks/results/symmetrize.json.
"""
import argparse
import json
import os
import resource
import sys
import tempfile

import symprobe
from common import child_json, median_time, pet_size_model, settled, water_system, write_json


def child(args):
    atoms = water_system(args.rep)
    x, z, cell, pbc = atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = symprobe.load_model(args.model, threads=args.threads, rotations=args.rotations,
                                inversion=args.inversion, chunk=args.chunk)
    res = settled(model, x, z, cell, pbc)
    t = median_time(lambda: model.compute(x, z, cell, pbc), args.repeats, warmup=0)
    print(json.dumps({"seconds": t, "rotations": len(res["rotation_energies"]), "chunk": model.chunk,
                      "peak_rss_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))


def run(model, rep, rotations, inversion, chunk, threads, repeats):
    cmd = [sys.executable, __file__, "--child", "--model", model, "--rep", str(rep), "--rotations",
           rotations, "--chunk", str(chunk), "--threads", str(threads), "--repeats", str(repeats)]
    if inversion:
        cmd.append("--inversion")
    return child_json(cmd)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--child", action="store_true")
    p.add_argument("--model", default="water-reference")
    p.add_argument("--rep", type=int, default=1)
    p.add_argument("--rotations", default="grid 2")
    p.add_argument("--inversion", action="store_true")
    p.add_argument("--chunk", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="reference model only")
    p.add_argument("--pet-chunks", default="1,2,4",
                   help="chunk sizes for the PET-size model (each copy needs ~1.5 GB)")
    args = p.parse_args()
    if args.child:
        child(args)
        return
    tmp = tempfile.mkdtemp()
    models = [("reference", "water-reference", [1, 2], 9)]
    if not args.quick:
        pet = os.path.join(tmp, "pet-size.pt")
        print(f"PET-size model: {pet_size_model(pet)} parameters")
        models.append(("PET-size", pet, [1], 3))
    rows = []
    for label, path, reps, repeats in models:
        for rep in reps:
            plain = run(path, rep, "none", False, 0, args.threads, repeats)
            G = run(path, rep, args.rotations, args.inversion, 1, args.threads, 1)["rotations"]
            row = {"model": label, "atoms": 192 * rep ** 3, "grid": args.rotations,
                   "inversion": args.inversion, "rotations": G, "plain_s": plain["seconds"],
                   "plain_peak_rss_mb": plain["peak_rss_mb"], "chunks": {}}
            chunks = ({int(c) for c in args.pet_chunks.split(",")} | {0} if label == "PET-size"
                      else {1, 2, 4, 9, 18, G, 0})
            for chunk in sorted(chunks):
                r = run(path, rep, args.rotations, args.inversion, chunk, args.threads,
                        max(1, repeats // 3))
                row["chunks"]["auto" if chunk == 0 else str(chunk)] = {
                    "seconds": r["seconds"], "ratio_to_G_plain": r["seconds"] / (G * plain["seconds"]),
                    "peak_rss_mb": r["peak_rss_mb"], "chunk_used": r["chunk"]}
                print(label, row["atoms"], "chunk", chunk or "auto", row["chunks"]["auto" if chunk == 0 else str(chunk)], flush=True)
            rows.append(row)
            write_json("symmetrize", {"benchmark": "symmetrize", "threads": args.threads, "rows": rows})
    path = write_json("symmetrize", {"benchmark": "symmetrize", "threads": args.threads, "rows": rows})
    print(f"\nwrote {path}\n")
    print("| model | atoms | G | plain (ms) | chunk | grid (ms) | grid / (G x plain) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for chunk, c in r["chunks"].items():
            label = f"auto ({c['chunk_used']})" if chunk == "auto" else chunk
            print(f"| {r['model']} | {r['atoms']} | {r['rotations']} | {1e3 * r['plain_s']:.1f} | {label} | "
                  f"{1e3 * c['seconds']:.1f} | {c['ratio_to_G_plain']:.2f} | {c['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
