"""Export a PyTorch module through the symprobe model contract (docs/model-contract.md)."""
from __future__ import annotations

import json
import os
import warnings
from typing import Iterable, Optional

import torch

from ._runtime import atomic_number

CONTRACT_VERSION = 1
METADATA_FILE = "metadata.json"


def model_metadata(
    *,
    cutoff: float,
    elements: Iterable[str],
    interaction_range: Optional[float] = None,
    dtype: torch.dtype = torch.float64,
    name: str = "",
    description: str = "",
    layers: int = 0,
    features: int = 0,
    **extra,
) -> dict:
    """The metadata dictionary stored in a model file.

    cutoff (Angstrom): the neighbour-list cutoff the model reads.
    interaction_range (Angstrom): cutoff x message-passing depth (defaults to cutoff).
    elements: chemical symbols the model accepts.
    layers, features: a model with the layered methods embed and layer (docs/model-contract.md)
    gives its number of message-passing layers (= interaction_range / cutoff) and the width of
    its node features; 0 for a model with forward only.
    """
    elements = list(elements)
    for symbol in elements:
        atomic_number(symbol)  # raises ValueError for an unknown symbol
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive (Angstrom), got {cutoff}")
    interaction_range = cutoff if interaction_range is None else interaction_range
    if interaction_range < cutoff:
        raise ValueError("interaction_range must be >= cutoff (Angstrom)")
    dtype_name = {torch.float32: "float32", torch.float64: "float64"}.get(dtype)
    if dtype_name is None:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if (layers > 0) != (features > 0) or layers < 0 or features < 0:
        raise ValueError("layers and features are both positive (a layered model) or both 0")
    if layers > 0 and abs(interaction_range - layers * cutoff) > 1e-9 * cutoff:
        raise ValueError(f"a layered model's interaction_range is layers x cutoff "
                         f"({layers} x {cutoff} A), got {interaction_range} A")
    meta = {
        "contract_version": CONTRACT_VERSION,
        "cutoff": float(cutoff),
        "interaction_range": float(interaction_range),
        "elements": elements,
        "dtype": dtype_name,
        "energy_unit": "eV",
        "length_unit": "A",
        "name": name,
        "description": description,
    }
    if layers > 0:
        meta.update(layers=int(layers), features=int(features))
    meta.update(extra)
    return meta


def export_model(
    module: torch.nn.Module,
    path: str | os.PathLike,
    *,
    cutoff: float,
    elements: Iterable[str],
    interaction_range: Optional[float] = None,
    dtype: torch.dtype = torch.float64,
    name: str = "",
    description: str = "",
    overwrite: bool = False,
    layers: int = 0,
    features: int = 0,
    **extra,
) -> str:
    """Script `module`, convert it to `dtype` and save it with its metadata to `path`.

    The module's forward must be
    ``forward(species: int64[N], centers: int64[E], neighbors: int64[E], vectors: float[E,3])
    -> float[N]`` (per-atom energies in eV, vectors in Angstrom). A layered model (``layers``,
    ``features`` > 0) also has the methods ``embed`` and ``layer`` of docs/model-contract.md. An
    existing file is never replaced unless ``overwrite=True``.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    meta = model_metadata(
        cutoff=cutoff,
        elements=elements,
        interaction_range=interaction_range,
        dtype=dtype,
        name=name,
        description=description,
        layers=layers,
        features=features,
        **extra,
    )
    module = module.to(dtype).eval()
    tmp = path + ".tmp"
    with warnings.catch_warnings():
        # TorchScript is the contract's format (loadable from C++ without Python)
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module)
    if layers > 0:
        missing = [m for m in ("embed", "layer") if not scripted._c._has_method(m)]
        if missing:
            raise ValueError(f"layers={layers}: the model lacks the method(s) {', '.join(missing)} "
                             "of a layered model (docs/model-contract.md)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(scripted, tmp, _extra_files={METADATA_FILE: json.dumps(meta, indent=1)})
    os.replace(tmp, path)
    return path
