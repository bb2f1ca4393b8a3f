"""Models shipped with symprobe: TorchScript files <name>.pt in this directory. The compiled core
resolves a bundled name (symprobe._runtime.resolve_model_path), so the same names work in Python,
`pair_style symprobe` and the i-PI driver."""
from __future__ import annotations

from typing import Optional

# name -> what it is (the file is <name>.pt)
BUNDLED = {
    "water-reference": "exactly rotation-invariant flexible water (symprobe.water.reference)",
    "water-orientation": "water-reference plus the paper's lab-frame orientation term",
    "water-pet": "PET-style, trained on revPBE0-D3 water (docs/water-model.md)",
}
DEFAULT = "water-pet"


def bundled_path(name: str) -> Optional[str]:
    """Path of the bundled model `name`, or None if there is no such bundled model."""
    from .. import _runtime  # the one resolver, shared with LAMMPS and i-PI

    return _runtime.bundled_model_path(name) or None
