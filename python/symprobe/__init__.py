"""symprobe: runtime and diagnostics for non-equivariant ML interatomic potentials.

Units: Angstrom, eV, eV/Angstrom; cells hold lattice vectors as rows.
"""
import torch  # noqa: F401  (loads libtorch before the compiled core that links to it)

from ._runtime import InvalidModelError, ModelError, atomic_number, element_symbol
from .runtime import Model, load_model, neighbor_list, rotation_set
from .calculator import Calculator
from .export import export_model

__version__ = "0.1.0"

__all__ = [
    "Calculator",
    "InvalidModelError",
    "Model",
    "ModelError",
    "atomic_number",
    "element_symbol",
    "export_model",
    "load_model",
    "neighbor_list",
    "rotation_set",
]
