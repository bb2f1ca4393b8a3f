"""Models shipped with symprobe (TorchScript files in this directory)."""
from __future__ import annotations

import os
from typing import Optional

_HERE = os.path.dirname(os.path.abspath(__file__))

# name -> file in this directory
BUNDLED = {
    "water-reference": "water-reference.pt",
    "water-orientation": "water-orientation.pt",
    "water-pet": "water-pet.pt",  # PET-style, trained on revPBE0-D3 water (docs/water-model.md)
}
DEFAULT = "water-pet"


def bundled_path(name: str) -> Optional[str]:
    """Path of the bundled model `name`, or None if there is no such bundled model."""
    filename = BUNDLED.get(name)
    return os.path.join(_HERE, filename) if filename else None
