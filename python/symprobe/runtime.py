"""Python face of the compiled core: models and neighbour lists."""
from __future__ import annotations

import json
import os
from typing import NamedTuple

import numpy as np

from . import _runtime


class NeighborList(NamedTuple):
    """Full neighbour list; vectors[e] = x[neighbors[e]] - x[centers[e]] + shifts[e] @ cell (A)."""

    centers: np.ndarray  # int64 [E]
    neighbors: np.ndarray  # int64 [E]
    shifts: np.ndarray  # int32 [E, 3]
    vectors: np.ndarray  # float64 [E, 3], Angstrom


def neighbor_list(positions, cell, pbc, cutoff: float, threads: int = 1) -> NeighborList:
    """All pairs closer than `cutoff` (Angstrom), in both directions, periodic images included.

    positions: [N, 3] Angstrom; cell: [3, 3] Angstrom (rows are lattice vectors; rows of
    non-periodic axes are ignored and may be zero) or None; pbc: bool or 3 bools.
    """
    return NeighborList(*_runtime.neighbor_list(positions, cell, pbc, cutoff, threads))


def option_table() -> list[dict]:
    """The options every front end shares (name, values, default, flag, help), from the core."""
    return _runtime.option_table()


def cpu_cache_stats() -> dict:
    """The core's cache of large CPU blocks (docs/performance.md): `free_bytes`, the bytes of
    freed blocks it holds for the next evaluation, and `reused`, the allocations it has served
    from kept blocks since the process started."""
    return _runtime.cpu_cache_stats()


def take_options(kwargs: dict) -> dict:
    """Removes the core's options (by the names of the table) from `kwargs` and returns them;
    for front ends whose own keywords sit beside them (ASE's Calculator, i-PI's -o)."""
    names = {o["name"] for o in option_table()}
    return {k: kwargs.pop(k) for k in list(kwargs) if k in names}


def option_tokens(options: dict) -> list[str]:
    """`key value` tokens for the core's option parser: True/False become yes/no and a value
    with spaces ("grid 2") becomes several tokens. The core checks names and values."""
    tokens = []
    for key, value in options.items():
        if isinstance(value, bool):
            value = "yes" if value else "no"
        tokens.append(str(key))
        tokens.extend(str(value).split() or [""])
    return tokens


class Model(_runtime.Model):
    """A TorchScript model evaluated by the C++ core: a symprobe-contract file (kind "symprobe")
    or a metatomic AtomisticModel (kind "metatomic", docs/metatomic.md), told apart by the file.

    compute(positions [N,3] A, numbers [N], cell [3,3] A or None, pbc, forces=True,
    virial=True, energies=False, atomic_virials=False, forces_rms_spread=False, step=-1,
    masses=None, symmetrize=True)
    returns a dict with energy (eV), energies [N] (eV), forces [N,3] (eV/A), virial [3,3] (eV,
    W = -sum_e r_e (x) dE/dr_e), atomic_virials [N,3,3] (eV), and the symmetry diagnostics:
    rotation_energies [G] (eV), energy_std, energy_spread (eV), net_force [3] (eV/A),
    net_torque [3] (eV), and forces_rms_spread (eV/A) when asked. With rotations, every quantity
    is the weighted rotational average. `step` is the MD step: random rotations are drawn from
    (seed, step); -1 uses the model's counter `rotation_step`, which advances after every
    successful evaluation in random modes. `masses` [N] (amu) weight the option correction
    torque-free (default: standard atomic weights). symmetrize=False evaluates the plain model
    whatever the option rotations (the fast level of multiple time stepping).
    """

    @property
    def metadata(self) -> dict:
        return json.loads(self.metadata_json)

    def __repr__(self) -> str:
        return (f"symprobe.Model('{self.path}', kind={self.kind}, cutoff={self.cutoff} A, elements={self.elements}, "
                f"dtype={self.dtype}, device={self.device}, rotations={self.rotations})")


def load_model(path: str | os.PathLike, **options) -> Model:
    """Load a model file, or a bundled model by name (see symprobe.models.BUNDLED).

    options (the vocabulary of every front end, docs/symmetrization.md; `option_table()` lists
    them): rotations ("none", "random", "grid L", "lebedev L"), inversion, randomize (bools),
    seed (>= 0), chunk (rotations per model call, 0 = automatic), batch (structures per model
    call in compute_batch, 0 = automatic), skin (Verlet skin, Angstrom;
    0 rebuilds the neighbour list at every call), threads (torch's intra-op threads, set for the
    whole process as torch.set_num_threads does, and neighbour-search threads; 0 keeps torch's
    setting), device ("cpu", "cuda[:N]"), forces ("conservative", "direct"), correction
    ("none", "torque-free": forces without net force and torque on a non-periodic system, a
    symmetric virial on a periodic one). A file that exists always wins over a bundled name.
    """
    return Model(os.fspath(path), option_tokens(options))


def rotation_set(rotations: str = "none", step: int = 0, **options):
    """The rotation matrices [G, 3, 3] and weights [G] the core uses at MD step `step` for these
    options (rotations, inversion, randomize, seed)."""
    return _runtime.rotation_set(option_tokens({"rotations": rotations, **options}), step)


def add_option_arguments(parser, defaults: dict | None = None) -> None:
    """Command-line flags for every option of the core's table (`--rotations grid 2`,
    `--inversion`, `--seed 42`, ...); `defaults` overrides the core's default of a front end."""
    defaults = defaults or {}
    for option in option_table():
        name = option["name"]
        default = defaults.get(name, option["default"])
        text = f"{option['help']} (default: {default})"
        if option["flag"]:
            parser.add_argument(f"--{name}", action="store_true", default=None, help=text)
        elif name == "rotations":
            parser.add_argument(f"--{name}", nargs="+", metavar="WORD", default=None,
                                help=f"{option['values']}: {text}")
        else:
            parser.add_argument(f"--{name}", metavar=option["values"], default=None,
                                help=text)
    parser.set_defaults(_option_defaults=defaults)


def options_from_arguments(args) -> dict:
    """The options given on a command line made by add_option_arguments, over its defaults;
    the core parses and checks them."""
    options = dict(getattr(args, "_option_defaults", {}))
    for option in option_table():
        value = getattr(args, option["name"], None)
        if value is not None:
            options[option["name"]] = " ".join(value) if isinstance(value, list) else value
    return options
