"""Rotational error: how far the energies and forces of a model averaged over a rotation set lie
from those averaged over a finer reference set, frame by frame.

Set names follow the paper (../shared/notes/paper.md): "0" is the plain model (1 rotation), "i"
the identity with the inversion (2), "L" the grid of order L ((2L-1)^2 L rotations) and "Li" that
grid with -R for every R. Energies in eV, forces in eV/A; the reported errors in meV per frame and
meV/A per force component.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import numpy as np

from ..runtime import load_model, rotation_set
from .analyze import mean_sem


@dataclass(frozen=True)
class RotationSetName:
    name: str      # "2i"
    options: dict  # load_model options: rotations, inversion

    @property
    def rotations(self) -> int:
        """G, the number of rotations of the set."""
        return len(rotation_set(**self.options)[1])


def parse_set(name: str) -> RotationSetName:
    """A set name of the paper ("0", "i", "2", "2i", ...) as load_model options."""
    text = name.strip()
    if text == "0":
        return RotationSetName(text, {"rotations": "none"})
    if text == "i":
        # the grid of order 1 is the identity (i-PI's convention): with inversion, {1, -1}
        return RotationSetName(text, {"rotations": "grid 1", "inversion": True})
    match = re.fullmatch(r"([1-9][0-9]*)(i?)", text)
    if not match:
        raise ValueError(f"rotation set '{name}': expected 0, i, L or Li with L a grid order "
                         f"(e.g. 2, 2i, 3i)")
    return RotationSetName(text, {"rotations": f"grid {match[1]}", "inversion": bool(match[2])})


def select_frames(spec: str | None, n_frames: int) -> list[int]:
    """Frame indices from a selection: None or ':' (all), 'K', 'A:B[:S]' (a Python slice) or a
    comma-separated list of those."""
    if spec is None or spec.strip() in ("", ":"):
        return list(range(n_frames))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if ":" in part:
                fields = [int(f) if f.strip() else None for f in part.split(":")]
                if len(fields) > 3:
                    raise ValueError
                out.extend(range(n_frames)[slice(*fields)])
            else:
                k = int(part)
                if not -n_frames <= k < n_frames:
                    raise IndexError
                out.append(k % n_frames)
        except ValueError:
            raise ValueError(f"--frames '{spec}': '{part}' is not an index K or a slice A:B[:S]") from None
        except IndexError:
            raise ValueError(f"--frames '{spec}': frame {part} does not exist (the file has "
                             f"{n_frames} frames)") from None
    if not out:
        raise ValueError(f"--frames '{spec}' selects no frame of the {n_frames} in the file")
    return out


def frame_labels(atoms):
    """(energy eV, forces [N,3] eV/A) of a labelled frame, or None; frames of `symprobe md`
    carry the model's own energy and forces, not labels."""
    if atoms.info.get("source") == "symprobe md":
        return None
    calc = atoms.calc
    if calc is not None and "energy" in calc.results and "forces" in calc.results:
        return float(calc.results["energy"]), np.asarray(calc.results["forces"], float)
    if "energy" in atoms.info and "forces" in atoms.arrays:
        return float(atoms.info["energy"]), np.asarray(atoms.arrays["forces"], float)
    return None


def evaluate_set(frames, model_path: str, rotation_set: RotationSetName, batch: int,
                 options: dict, progress=None):
    """Energies [F] (eV) and forces (list of [N,3], eV/A) of every frame, averaged over the set;
    frames evaluated `batch` at a time (one compute_batch call each)."""
    model = load_model(model_path, **rotation_set.options, **options)
    energies, forces = [], []
    for start in range(0, len(frames), batch):
        chunk = frames[start:start + batch]
        pbc = chunk[0].pbc
        if any((a.pbc != pbc).any() for a in chunk):
            raise ValueError("frames of one batch must share their periodicity (use --batch 1)")
        out = model.compute_batch([a.positions for a in chunk], [a.numbers for a in chunk],
                                  [a.cell.array for a in chunk], pbc, forces=True, virial=False)
        energies.extend(r["energy"] for r in out)
        forces.extend(r["forces"] for r in out)
        if progress is not None:
            progress.update(len(chunk))
    return np.array(energies), forces


def rotational_error(frames, model_path: str, sets: list[str], reference: str = "3i",
                     batch: int = 4, options: dict | None = None, progress: bool = False) -> dict:
    """The rotational-error table of `frames` (ASE Atoms): one row per set with the mean over
    frames of |E_set - E_ref| (meV per frame) and of the per-frame mean |F_set - F_ref| per
    component (meV/A), with their standard errors; labelled frames add the model's own errors
    (label_* keys). `options`: further load_model options (threads, device, chunk, batch)."""
    options = dict(options or {})
    for key in ("rotations", "inversion", "randomize"):
        if key in options:
            raise ValueError(f"option '{key}' is set by the rotation sets")
    parsed = [parse_set(s) for s in sets]
    ref = parse_set(reference)
    if len({s.name for s in parsed}) != len(parsed):
        raise ValueError(f"--sets {','.join(sets)}: a set is given twice")
    if batch < 1:
        raise ValueError("--batch must be >= 1")
    model = load_model(model_path, **options)
    for k, atoms in enumerate(frames):
        try:
            model.check_numbers(atoms.numbers)
        except ValueError as error:
            raise ValueError(f"frame {k}: {error}") from None
    labels = [frame_labels(a) for a in frames]
    labelled = all(lab is not None for lab in labels)
    todo = [ref] + [s for s in parsed if s.name != ref.name]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo) * len(frames), unit="frame", desc="rotational error", dynamic_ncols=True)
    results = {}
    try:
        for s in todo:
            if bar is not None:
                bar.set_postfix_str(f"set {s.name} ({s.rotations} rotations)")
            results[s.name] = evaluate_set(frames, model_path, s, batch, options, bar)
    finally:
        if bar is not None:
            bar.close()
    e_ref, f_ref = results[ref.name]
    rows = []
    for s in parsed:
        e, f = results[s.name]
        e_err = 1e3 * np.abs(e - e_ref)
        f_err = 1e3 * np.array([np.abs(a - b).mean() for a, b in zip(f, f_ref)])
        row = {"set": s.name, "rotations": s.rotations}
        row["energy_meV_per_frame"], row["energy_sem"] = mean_sem(e_err)
        row["force_meV_per_A"], row["force_sem"] = mean_sem(f_err)
        if labelled:
            de = np.array([abs(ei - lab[0]) for ei, lab in zip(e, labels)])
            df = np.concatenate([(fi - lab[1]).ravel() for fi, lab in zip(f, labels)])
            n_atoms = np.array([len(a) for a in frames])
            row["label_energy_mae_meV_per_frame"] = float(1e3 * de.mean())
            row["label_energy_mae_meV_per_atom"] = float(1e3 * (de / n_atoms).mean())
            row["label_force_mae_meV_per_A"] = float(1e3 * np.abs(df).mean())
            row["label_force_rmse_meV_per_A"] = float(1e3 * np.sqrt((df ** 2).mean()))
        rows.append(row)
    return {"reference": ref.name, "reference_rotations": ref.rotations, "rows": rows,
            "labelled": labelled,
            "energies_eV": {name: e.tolist() for name, (e, _) in results.items()}}


def markdown_table(report: dict) -> str:
    """The rows as a Markdown table (errors against the reference set)."""
    labelled = report["labelled"]
    head = ["set", "G", "mean abs(E - E_ref) (meV/frame)", "mean abs(F - F_ref) (meV/A)"]
    if labelled:
        head += ["E MAE vs labels (meV/atom)", "F MAE vs labels (meV/A)"]
    lines = [f"Model {report['model']}, {len(report['frames'])} frames of {report['data']}; "
             f"reference: set {report['reference']} ({report['reference_rotations']} rotations). "
             f"Means over frames +- standard error.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["rows"]:
        cells = [r["set"], str(r["rotations"]),
                 f"{r['energy_meV_per_frame']:.4g} +- {r['energy_sem']:.2g}",
                 f"{r['force_meV_per_A']:.4g} +- {r['force_sem']:.2g}"]
        if labelled:
            cells += [f"{r['label_energy_mae_meV_per_atom']:.4g}", f"{r['label_force_mae_meV_per_A']:.4g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: str) -> None:
    """Error against the number of rotations G on log axes, energy and forces side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["set"] != report["reference"]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, key, sem, label in ((axes[0], "energy_meV_per_frame", "energy_sem", "|E - E_ref| (meV/frame)"),
                                (axes[1], "force_meV_per_A", "force_sem", "|F - F_ref| (meV/A)")):
        shown = [r for r in rows if r[key] > 0]
        g = [r["rotations"] for r in shown]
        ax.errorbar(g, [r[key] for r in shown], yerr=[np.nan_to_num(r[sem]) for r in shown],
                    marker="o", capsize=3)
        for r in shown:
            ax.annotate(r["set"], (r["rotations"], r[key]), textcoords="offset points", xytext=(4, 4))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rotations G")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"rotational error of {os.path.basename(report['model'])} "
                 f"(reference {report['reference']}, {len(report['frames'])} frames)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def free_stem(directory: str, stem: str, suffixes: tuple[str, ...]) -> str:
    """directory/stem, or stem-1, stem-2, ... : the first for which no file with any of the
    suffixes exists (the outputs of one run share it; nothing is overwritten)."""
    k = 0
    while True:
        name = stem if k == 0 else f"{stem}-{k}"
        base = os.path.join(directory, name)
        if not any(os.path.exists(base + s) for s in suffixes):
            return base
        k += 1


def write_report(report: dict, directory: str) -> dict:
    """Writes rotational-error.json, .md and .png into `directory` (created; existing files are
    kept: a run's three files take the next free name); returns their paths."""
    os.makedirs(directory, exist_ok=True)
    suffixes = (".json", ".md", ".png")
    base = free_stem(directory, "rotational-error", suffixes)
    paths = {s[1:]: base + s for s in suffixes}
    with open(paths["json"], "w") as f:
        json.dump(report, f, indent=1)
    with open(paths["md"], "w") as f:
        f.write(markdown_table(report))
    plot(report, paths["png"])
    return paths
