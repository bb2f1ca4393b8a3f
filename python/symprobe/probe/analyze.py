"""Observables of MD trajectories, several runs overlaid, with block-averaged error bars
(`symprobe analyze`).

Trajectories: anything ASE reads (extxyz from `symprobe md`, LAMMPS dumps, i-PI's ase-format
output) and i-PI's own xyz (cell in a `# CELL(abcABC):` comment line). A quoted glob pattern
matching several files is one path-integral run, one file per bead. An i-PI property file given
with a run (`--properties`) supplies its frame times, temperature, conserved quantity and
quantum kinetic energy. Times come from there, from the frames' `time_ps` (symprobe md) or from
--frame-time. Units: Angstrom, ps, eV, K.

- periodic runs: g(r) of every element pair (first peak position and height; with beads the
  quantum g(r), of all beads), the mean-squared displacement of each element and its diffusion
  coefficient (with beads of the centroids);
- runs with the records of `symprobe md`: temperature, and the drift of the total energy of
  runs without a thermostat; runs with an i-PI property file: temperature, the drift of i-PI's
  conserved quantity (which accounts for the thermostat's work) and the centroid-virial kinetic
  energy per element;
- non-periodic runs: the angular momentum L(t) (from the momenta), the model's net torque, and
  the lab-frame orientation of each water molecule's axis (O to the midpoint of its H atoms) as
  a free energy F(cos theta, phi) = -ln P in kT.
Every scalar carries the standard error of its mean over blocks of consecutive frames; the
summary says which differences between runs exceed twice their combined standard error.
"""
from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..water.analysis import max_rdf_range, radial_distribution

IPI_CELL = re.compile(r"CELL[(\[]abcABC[)\]]:\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)")


def read_ipi_xyz(path):
    """Frames of i-PI's own xyz format (Angstrom when the comment says positions{angstrom}),
    cell from its abcABC comment; None if the file is not in that format."""
    from ase import Atoms
    frames = []
    with open(path) as f:
        while True:
            line = f.readline()
            if not line.strip():
                break
            n = int(line)
            comment = f.readline()
            cell = IPI_CELL.search(comment)
            if cell is None:
                return None
            scale = 1.0 if "positions{angstrom}" in comment else 0.52917721090
            rows = [f.readline().split() for _ in range(n)]
            atoms = Atoms([r[0] for r in rows], positions=np.array([r[1:4] for r in rows], float) * scale)
            a, b, c, alpha, beta, gamma = (float(v) for v in cell.groups())
            cell_scale = 1.0 if "cell{angstrom}" in comment else 0.52917721090
            atoms.set_cell([a * cell_scale, b * cell_scale, c * cell_scale, alpha, beta, gamma])
            atoms.pbc = True
            step = re.search(r"Step:\s*(\d+)", comment)
            if step:
                atoms.info["step"] = int(step.group(1))
            frames.append(atoms)
    return frames


def read_trajectory(path, index=":"):
    """The frames of a trajectory file (see the module's formats): all of them, or one frame
    for an integer index. i-PI's xyz is recognised by its cell comment (ASE would read it
    without the cell)."""
    import ase.io
    with open(path) as f:
        f.readline()
        second = f.readline()
    if IPI_CELL.search(second):
        frames = read_ipi_xyz(path)
        if frames:
            return frames if index == ":" else frames[index]
    frames = ase.io.read(path, index=index)
    if index == ":" and not frames:
        raise ValueError(f"{path}: no frames")
    return frames


PROPERTY = re.compile(r"^#\s*(?:column|cols\.)\s+(\d+)(?:-(\d+))?\s+-->\s+(\S+)")


def read_ipi_properties(path):
    """Columns of an i-PI property file: {name as in the input, e.g. 'time{picosecond}' or
    'kinetic_cv(H){electronvolt}': array over rows} (vector properties [rows, n])."""
    columns = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            m = PROPERTY.match(line)
            if m:
                first = int(m.group(1)) - 1
                columns[m.group(3)] = slice(first, int(m.group(2)) if m.group(2) else first + 1)
    if not columns:
        raise ValueError(f"{path}: not an i-PI property file (no '# column N --> name' header)")
    data = np.loadtxt(path, ndmin=2)
    return {name: data[:, c] if c.stop - c.start > 1 else data[:, c.start] for name, c in columns.items()}


@dataclass
class Run:
    label: str
    path: str
    frames: list        # with beads: the centroids
    times: np.ndarray   # ps
    periodic: bool
    beads: list = None  # path integrals: the frames of each bead
    properties: dict = None  # an i-PI property file's columns, rows from `start` on
    notes: list = field(default_factory=list)


def minimum_image(d, cell, pbc):
    """Displacements d [..., 3] taken to their minimum image along the periodic axes."""
    if not pbc.any():
        return d
    f = d @ np.linalg.inv(cell)
    return (f - np.round(f) * pbc) @ cell


def centroids(beads):
    """Frames of the ring polymers' centroids: each bead's positions taken to the minimum image
    of bead 0's, then averaged."""
    out = []
    for k, frame in enumerate(beads[0]):
        x0 = frame.positions
        shifted = [x0]
        for bead in beads[1:]:
            shifted.append(x0 + minimum_image(bead[k].positions - x0, frame.cell.array, frame.pbc))
        centroid = frame.copy()
        centroid.positions = np.mean(shifted, axis=0)
        out.append(centroid)
    return out


def load_run(path, label, frame_time_ps, properties=None, start_ps=0.0):
    """One run: a trajectory file, or a glob pattern of one file per bead; `properties`: i-PI's
    property file of the run (frame times from its step and time columns); frames before
    `start_ps` are left out (equilibration)."""
    paths = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
    if not paths:
        raise ValueError(f"{path}: no file matches")
    beads = [read_trajectory(p) for p in paths]
    frames = beads[0]
    n = len(frames[0])
    for p, bead in zip(paths, beads):
        if len(bead) != len(frames):
            raise ValueError(f"{p}: {len(bead)} frames, {paths[0]} has {len(frames)}: beads of one run need the same frames")
        for k, a in enumerate(bead):
            if len(a) != n or (a.numbers != frames[0].numbers).any():
                raise ValueError(f"{p}: frame {k} has other atoms than frame 0 of {paths[0]}")
    table = read_ipi_properties(properties) if properties else None
    if table is not None:
        if "step" not in table or "time{picosecond}" not in table:
            raise ValueError(f"{properties}: needs the properties step and time{{picosecond}}")
        if not all("step" in a.info for a in frames):
            raise ValueError(f"{paths[0]}: frames without i-PI's 'Step:' to match {properties}")
        time_of = dict(zip(table["step"].astype(int), table["time{picosecond}"]))
        missing = [a.info["step"] for a in frames if a.info["step"] not in time_of]
        if missing:
            raise ValueError(f"{properties}: no row for step {missing[0]} of {paths[0]} (property stride must divide the trajectory's)")
        times = np.array([time_of[a.info["step"]] for a in frames], float)
    elif all("time_ps" in a.info for a in frames):
        times = np.array([a.info["time_ps"] for a in frames], float)
    elif frame_time_ps is not None:
        times = frame_time_ps * np.arange(len(frames))
    else:
        times = np.arange(len(frames), dtype=float)
    keep = times >= times[0] + start_ps - 1e-9
    if keep.sum() < 2:
        raise ValueError(f"{path}: fewer than 2 frames after --start {start_ps} ps")
    beads = [[f for f, k in zip(bead, keep) if k] for bead in beads]
    if table is not None:
        rows = table["time{picosecond}"] >= times[0] + start_ps - 1e-9
        table = {name: column[rows] for name, column in table.items()}
    frames = centroids(beads) if len(beads) > 1 else beads[0]
    periodic = bool(frames[0].pbc.all())
    return Run(label, path, frames, times[keep], periodic, beads=beads if len(beads) > 1 else None,
               properties=table)


def angular_momentum(atoms) -> np.ndarray:
    """Total angular momentum about the centre of mass (amu A^2/ps) from the atoms' momenta."""
    from ase import units
    x = atoms.positions - atoms.get_center_of_mass()
    return np.cross(x, atoms.get_momenta()).sum(0) * (1e3 * units.fs)  # ASE time -> ps


def blocks(n, n_blocks):
    """Index ranges of n_blocks consecutive blocks of n frames (at least one frame each)."""
    n_blocks = max(1, min(n_blocks, n))
    edges = np.linspace(0, n, n_blocks + 1).astype(int)
    return [range(edges[k], edges[k + 1]) for k in range(n_blocks)]


def block_mean(values, n_blocks):
    """Mean of a series and the standard error of its block means."""
    values = np.asarray(values, float)
    return mean_sem([values[list(b)].mean() for b in blocks(len(values), n_blocks)])


def drift_per_atom(t, energy, n_atoms):
    """Slope of a linear fit of energy (eV) against t (ps), per atom."""
    return float(np.polyfit(t, energy, 1)[0] / n_atoms)


def mean_sem(values):
    values = np.asarray(values, float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def element_pairs(numbers):
    zs = sorted(set(int(z) for z in numbers))
    return [(a, b) for i, a in enumerate(zs) for b in zs[i:]]


def first_maximum(r, g):
    """Position and height of the first maximum of g after it first exceeds 1."""
    above = np.flatnonzero(g > 1.0)
    if len(above) == 0:
        return float("nan"), float("nan")
    k = above[0]
    while k + 1 < len(g) and g[k + 1] >= g[k]:
        k += 1
    return float(r[k]), float(g[k])


def radial_distributions(run, n_blocks, n_bins=200, r_max=None):
    """g(r) of every element pair over all frames (with beads: of every bead, the quantum g(r)),
    standard errors over blocks of consecutive frames."""
    from ase.data import chemical_symbols
    frames = run.frames
    beads = run.beads or [frames]
    limit = min(max_rdf_range(a.cell.array) for a in frames)
    r_max = min(limit, r_max or limit, 8.0)
    out = {}
    for za, zb in element_pairs(frames[0].numbers):
        per_block = []
        for block in blocks(len(frames), n_blocks):
            r, g = radial_distribution([bead[k] for k in block for bead in beads], za, zb, r_max, n_bins)
            per_block.append(g)
        per_block = np.array(per_block)
        g_mean = per_block.mean(0)
        g_sem = per_block.std(0, ddof=1) / np.sqrt(len(per_block)) if len(per_block) > 1 else np.full(n_bins, np.nan)
        peaks = np.array([first_maximum(r, g) for g in per_block])
        name = f"{chemical_symbols[za]}-{chemical_symbols[zb]}"
        position, height = first_maximum(r, g_mean)
        out[name] = {"r_A": r.tolist(), "g": g_mean.tolist(), "g_sem": g_sem.tolist(),
                     "first_peak_A": position, "first_peak_sem": mean_sem(peaks[:, 0])[1],
                     "first_peak_height": height, "first_peak_height_sem": mean_sem(peaks[:, 1])[1]}
    return out


def unwrapped(frames):
    """Positions [F, N, 3] continuous in time: each step's displacement taken as its minimum
    image along periodic axes (frames must be closer in time than atoms move half a box)."""
    x = np.array([a.positions for a in frames])
    steps = minimum_image(np.diff(x, axis=0), frames[0].cell.array, frames[0].pbc)
    return np.concatenate([x[:1], x[0] + np.cumsum(steps, axis=0)])


def msd_curve(xs, t, max_lags=100):
    """Lag times (ps) and the MSD (A^2) of positions xs [F, N, 3] averaged over all time
    origins, at up to max_lags lags from 0 to F // 2 (frames evenly spaced in time)."""
    n = len(xs)
    lags = np.unique(np.linspace(0, n // 2, min(max_lags, n // 2 + 1)).astype(int))
    msd = np.array([((xs[lag:] - xs[:n - lag]) ** 2).sum(-1).mean() if lag else 0.0 for lag in lags])
    return t[lags] - t[0], msd


def diffusion_coefficient(lag_times, msd):
    """D (A^2/ps) from MSD = 6 D t fitted over the second half of the lags (past the ballistic
    regime); NaN with fewer than 4 lags."""
    half = slice(len(lag_times) // 2, len(lag_times))
    if len(lag_times) < 4 or lag_times[half][-1] <= lag_times[half][0]:
        return float("nan")
    return float(np.polyfit(lag_times[half], msd[half], 1)[0] / 6.0)


def mean_squared_displacement(run, n_blocks):
    """Per element: the MSD curve of the whole run; D as the mean over blocks of each block's
    own MSD fit, with the standard error of that mean (the value and its error from the same
    lags: a short block's D is not yet the diffusive limit, but runs analysed alike compare);
    and the fit of the whole run's MSD (longer lags, no error estimate)."""
    from ase.data import chemical_symbols
    x = unwrapped(run.frames)
    out = {}
    for z in sorted(set(int(v) for v in run.frames[0].numbers)):
        xs = x[:, run.frames[0].numbers == z]
        lag_times, msd = msd_curve(xs, run.times)
        per_block = [diffusion_coefficient(*msd_curve(xs[list(b)], run.times[list(b)]))
                     for b in blocks(len(xs), n_blocks)]
        finite = [d for d in per_block if np.isfinite(d)]
        whole = diffusion_coefficient(lag_times, msd)
        d, sem = mean_sem(finite) if len(finite) > 1 else (whole, float("nan"))
        out[chemical_symbols[z]] = {"t_ps": lag_times.tolist(), "msd_A2": msd.tolist(),
                                    "D_A2_per_ps": d, "D_sem": sem, "D_whole_run_A2_per_ps": whole,
                                    "block_ps": float(run.times[-1] - run.times[0]) / max(1, len(per_block))}
    return out


def ipi_thermo(run, n_blocks):
    """Temperature, the drift of the conserved quantity and the kinetic energies per atom of
    each element from the run's i-PI property file."""
    from ase.data import chemical_symbols
    table, out = run.properties, {}
    t = table["time{picosecond}"]
    out["t_ps"] = t.tolist()
    if "temperature{kelvin}" in table:
        out["temperature_K"] = block_mean(table["temperature{kelvin}"], n_blocks)
        out["temperature_series"] = table["temperature{kelvin}"].tolist()
    if "conserved{electronvolt}" in table and len(t) > 2:
        conserved = table["conserved{electronvolt}"]
        out["drift_eV_per_atom_per_ps"] = drift_per_atom(t, conserved, len(run.frames[0]))
        out["etot_series"] = conserved.tolist()
    counts = {chemical_symbols[z]: int((run.frames[0].numbers == z).sum()) for z in set(run.frames[0].numbers)}
    for name, values in table.items():
        m = re.fullmatch(r"kinetic_cv(?:\((\w+)\))?\{electronvolt\}", name)
        if m and values.ndim == 1:
            element = m.group(1)
            atoms = counts.get(element) if element else len(run.frames[0])
            if atoms:
                mean, sem = block_mean(values / atoms, n_blocks)
                out[f"kinetic_cv_{element or 'all'}_meV_per_atom"] = (1e3 * mean, 1e3 * sem)
    return out


def thermo(run, n_blocks):
    """Temperature and conserved-energy drift from the records of symprobe md, or from the
    run's i-PI property file."""
    if run.properties is not None:
        return ipi_thermo(run, n_blocks)
    info = [a.info for a in run.frames]
    out = {"t_ps": run.times.tolist()}
    if all("temperature_K" in i for i in info):
        temps = np.array([i["temperature_K"] for i in info])
        out["temperature_K"] = block_mean(temps, n_blocks)
        out["temperature_series"] = temps.tolist()
    # the total energy is conserved without a thermostat only (symprobe md records which)
    if all("etot_eV" in i and i.get("thermostat", "none") == "none" for i in info) and len(info) > 2:
        etot = np.array([i["etot_eV"] for i in info])
        out["drift_eV_per_atom_per_ps"] = drift_per_atom(run.times, etot, len(run.frames[0]))
        out["etot_series"] = etot.tolist()
    return out if len(out) > 1 else {}


def angular_momentum_of_run(run):
    """L(t) about the centre of mass (amu A^2/ps: symprobe md's record, else from the frames'
    momenta) and the model's net torque (eV, symprobe md's net_torque_eV), of a non-periodic
    run."""
    out = {"t_ps": run.times.tolist()}
    key = "angular_momentum_amu_A2_per_ps"  # symprobe md's, at full precision
    ell = None
    if all(key in a.info for a in run.frames):
        ell = np.array([a.info[key] for a in run.frames], float)
    elif all(a.has("momenta") for a in run.frames):
        ell = np.array([angular_momentum(a) for a in run.frames])
    if ell is not None:
        out["L_amu_A2_per_ps"] = ell.tolist()
        out["L_norm"] = np.linalg.norm(ell, axis=1).tolist()
        out["L_change"] = float(np.linalg.norm(ell[-1] - ell[0]))
    if all("net_torque_eV" in a.info for a in run.frames):
        torque = np.linalg.norm([a.info["net_torque_eV"] for a in run.frames], axis=1)
        out["torque_eV"] = torque.tolist()
        out["mean_torque_eV"] = mean_sem(torque)
    return out


def molecular_axes(atoms, oh_max=1.3):
    """Unit vectors from each water O to the midpoint of its two H atoms (periodic images
    handled by the minimum image)."""
    from ..runtime import neighbor_list
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, oh_max)
    z = atoms.numbers
    oh = (z[nl.centers] == 8) & (z[nl.neighbors] == 1)
    axes = []
    for o in np.flatnonzero(z == 8):
        vectors = nl.vectors[oh & (nl.centers == o)]
        if len(vectors) == 2:
            m = vectors.mean(0)
            axes.append(m / np.linalg.norm(m))
    return np.array(axes).reshape(-1, 3)


def orientation_map(axes, bins=(10, 12)):
    """Free energy F(cos theta, phi) = -ln(P / P_uniform) in kT of unit vectors `axes`, on a
    grid of equal-area bins; empty bins are NaN."""
    cos_theta = np.clip(axes[:, 2], -1, 1)
    phi = np.arctan2(axes[:, 1], axes[:, 0])
    counts, ce, pe = np.histogram2d(cos_theta, phi, bins=bins, range=[[-1, 1], [-np.pi, np.pi]])
    expected = len(axes) / counts.size
    with np.errstate(divide="ignore"):
        free = -np.log(counts / expected)
    free[~np.isfinite(free)] = np.nan
    return {"cos_theta_edges": ce.tolist(), "phi_edges": pe.tolist(), "counts": counts.tolist(),
            "F_kT": np.where(np.isnan(free), None, free).tolist(),
            # chi^2 per bin of the counts against a uniform distribution: ~1 when flat, for
            # independent samples (frames of one trajectory are correlated: see `orientation`)
            "chi2_per_bin": float(((counts - expected) ** 2 / expected).sum() / (counts.size - 1))}


def orientation(run, n_blocks):
    """The orientation map of all frames' water axes, and the mean axis <u> with the standard
    error of its block means: a preferred lab-frame orientation shows as <u> away from zero
    beyond its error, which (unlike a chi^2 of the map) accounts for correlated frames."""
    per_frame = [molecular_axes(a) for a in run.frames]
    out = orientation_map(np.concatenate(per_frame))
    means = np.array([np.concatenate([per_frame[k] for k in block]).mean(0)
                      for block in blocks(len(per_frame), n_blocks)])
    out["mean_axis"] = means.mean(0).tolist()
    out["mean_axis_sem"] = (means.std(0, ddof=1) / np.sqrt(len(means))).tolist() if len(means) > 1 else [float("nan")] * 3
    return out


def differences(runs_values, key_name):
    """Pairs of runs whose values of one scalar differ by more than twice their combined
    standard error: lines of the summary."""
    lines = []
    labels = list(runs_values)
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            (va, sa), (vb, sb) = runs_values[a], runs_values[b]
            if not (np.isfinite(va) and np.isfinite(vb)):
                continue
            sigma = np.sqrt(np.nan_to_num(sa) ** 2 + np.nan_to_num(sb) ** 2)
            verdict = ("differ" if sigma > 0 and abs(va - vb) > 2 * sigma else
                       "agree within 2 standard errors" if sigma > 0 else "no error estimate")
            lines.append(f"- {key_name}: {a} {va:.4g} +- {sa:.2g}, {b} {vb:.4g} +- {sb:.2g}: {verdict}")
    return lines


def analyze(runs, n_blocks=5) -> dict:
    """Every observable that applies to the runs: {observable: {label: result}}."""
    report = {"runs": {r.label: {"path": r.path, "frames": len(r.frames), "periodic": r.periodic,
                                 "atoms": len(r.frames[0]), "beads": len(r.beads) if r.beads else None}
                       for r in runs}}
    periodic = [r for r in runs if r.periodic]
    finite = [r for r in runs if not r.periodic]
    if periodic:
        report["rdf"] = {r.label: radial_distributions(r, n_blocks) for r in periodic}
        report["msd"] = {r.label: mean_squared_displacement(r, n_blocks) for r in periodic}
    thermo_rows = {r.label: thermo(r, n_blocks) for r in runs}
    if any(thermo_rows.values()):
        report["thermo"] = thermo_rows
    if finite:
        report["angular"] = {r.label: angular_momentum_of_run(r) for r in finite}
    water = [r for r in runs if set(np.unique(r.frames[0].numbers)) <= {1, 8} and (r.frames[0].numbers == 8).any()]
    if water and finite:
        report["orientation"] = {r.label: orientation(r, n_blocks) for r in water if not r.periodic}
    return report


def summary(report) -> str:
    lines = ["# symprobe analyze", ""]
    for label, r in report["runs"].items():
        lines.append(f"- {label}: {r['path']}, {r['frames']} frames"
                     + (f" of {r['beads']} beads" if r.get("beads") else "")
                     + f", {r['atoms']} atoms, {'periodic' if r['periodic'] else 'non-periodic'}")
    lines.append("")
    lines.append("Differences beyond statistical error (twice the combined standard error of block means):")
    found = []
    if "rdf" in report:
        for pair in next(iter(report["rdf"].values())):
            found += differences({k: (v[pair]["first_peak_A"], v[pair]["first_peak_sem"])
                                  for k, v in report["rdf"].items() if pair in v}, f"g_{pair} first peak (A)")
            found += differences({k: (v[pair]["first_peak_height"], v[pair]["first_peak_height_sem"])
                                  for k, v in report["rdf"].items() if pair in v}, f"g_{pair} first peak height")
    if "msd" in report:
        for element in next(iter(report["msd"].values())):
            found += differences({k: (v[element]["D_A2_per_ps"], v[element]["D_sem"])
                                  for k, v in report["msd"].items() if element in v}, f"D({element}) (A^2/ps)")
    if "thermo" in report:
        found += differences({k: tuple(v["temperature_K"]) for k, v in report["thermo"].items()
                              if "temperature_K" in v}, "temperature (K)")
        for key in sorted({k for v in report["thermo"].values() for k in v if k.startswith("kinetic_cv_")}):
            element = key.split("_")[2]
            found += differences({k: tuple(v[key]) for k, v in report["thermo"].items() if key in v},
                                 f"quantum kinetic energy of {element} (meV/atom)")
        for k, v in report["thermo"].items():
            if "drift_eV_per_atom_per_ps" in v:
                found.append(f"- conserved-energy drift of {k}: {1e3 * v['drift_eV_per_atom_per_ps']:+.3g} meV/atom/ps")
    if "angular" in report:
        for k, v in report["angular"].items():
            if "L_change" in v:
                found.append(f"- {k}: |L(end) - L(0)| = {v['L_change']:.3g} amu A^2/ps")
        found += differences({k: tuple(v["mean_torque_eV"]) for k, v in report["angular"].items()
                              if "mean_torque_eV" in v}, "mean |torque| (eV)")
    if "orientation" in report:
        for k, v in report["orientation"].items():
            u, e = np.array(v["mean_axis"]), np.array(v["mean_axis_sem"])
            preferred = bool(np.any(np.abs(u) > 2 * e))
            found.append(f"- orientation of {k}: mean axis <u> = ({u[0]:+.3f}, {u[1]:+.3f}, {u[2]:+.3f}) "
                         f"+- ({e[0]:.3f}, {e[1]:.3f}, {e[2]:.3f}): "
                         + ("a preferred orientation (beyond 2 standard errors)" if preferred
                            else "no preferred orientation within 2 standard errors"))
    lines += found or ["- nothing to compare"]
    return "\n".join(lines) + "\n"


def plots(report, directory) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []

    def save(fig, name):
        path = os.path.join(directory, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if "rdf" in report:
        pairs = list(next(iter(report["rdf"].values())))
        fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.5), squeeze=False)
        for ax, pair in zip(axes[0], pairs):
            for label, v in report["rdf"].items():
                r, g, s = np.array(v[pair]["r_A"]), np.array(v[pair]["g"]), np.array(v[pair]["g_sem"], float)
                ax.plot(r, g, label=label)
                ax.fill_between(r, g - np.nan_to_num(s), g + np.nan_to_num(s), alpha=0.3)
            ax.set_xlabel("r (A)")
            ax.set_ylabel(f"g_{pair}(r)")
        axes[0][0].legend()
        save(fig, "rdf.png")
    if "msd" in report:
        elements = list(next(iter(report["msd"].values())))
        fig, axes = plt.subplots(1, len(elements), figsize=(4.2 * len(elements), 3.5), squeeze=False)
        for ax, element in zip(axes[0], elements):
            for label, v in report["msd"].items():
                ax.plot(v[element]["t_ps"], v[element]["msd_A2"], label=label)
            ax.set_xlabel("t (ps)")
            ax.set_ylabel(f"MSD {element} (A^2)")
        axes[0][0].legend()
        save(fig, "msd.png")
    def two_panels(curves, xlabel, ylabels, name):
        """curves: (label, panel, x, y) lines; one figure of two panels sharing the legend."""
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for label, panel, x, y in curves:
            axes[panel].plot(x, y, label=label)
        for ax, ylabel in zip(axes, ylabels):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
        axes[0].legend()
        save(fig, name)

    if "thermo" in report:
        curves = []
        for label, v in report["thermo"].items():
            if "temperature_series" in v:
                curves.append((label, 0, v["t_ps"], v["temperature_series"]))
            if "etot_series" in v:
                e = np.array(v["etot_series"])
                curves.append((label, 1, v["t_ps"], e - e[0]))
        two_panels(curves, "t (ps)", ["T (K)", "conserved energy - its start (eV)"], "thermo.png")
    if "angular" in report:
        curves = [(label, panel, v["t_ps"], v[key]) for label, v in report["angular"].items()
                  for panel, key in ((0, "L_norm"), (1, "torque_eV")) if key in v]
        two_panels(curves, "t (ps)", ["|L| (amu A^2/ps)", "model's |torque| (eV)"], "angular.png")
    if "orientation" in report:
        labels = list(report["orientation"])
        fig, axes = plt.subplots(1, len(labels), figsize=(4.5 * len(labels), 3.5), squeeze=False)
        for ax, label in zip(axes[0], labels):
            v = report["orientation"][label]
            free = np.array(v["F_kT"], dtype=float)
            image = ax.pcolormesh(v["phi_edges"], v["cos_theta_edges"], free, shading="flat")
            fig.colorbar(image, ax=ax, label="F (kT)")
            ax.set_xlabel("phi (rad)")
            ax.set_ylabel("cos theta")
            ax.set_title(label)
        save(fig, "orientation.png")
    return written


OBSERVABLES = ("rdf", "msd", "thermo", "angular", "orientation")


def write(report, directory) -> list[str]:
    """One JSON and one PNG per observable, and summary.md, into `directory` (which must not
    hold an earlier analysis: nothing is overwritten); returns the paths written."""
    os.makedirs(directory, exist_ok=True)
    names = ["summary.md"] + [f"{o}{s}" for o in OBSERVABLES for s in (".json", ".png")]
    taken = [n for n in names if os.path.exists(os.path.join(directory, n))]
    if taken:
        raise ValueError(f"{directory} already holds {', '.join(taken)}; choose another --output")
    written = []
    for name in OBSERVABLES:
        if name in report:
            path = os.path.join(directory, f"{name}.json")
            with open(path, "w") as f:
                json.dump({"runs": report["runs"], name: report[name]}, f)
            written.append(path)
    path = os.path.join(directory, "summary.md")
    with open(path, "w") as f:
        f.write(summary(report))
    return written + [path] + plots(report, directory)
