"""Code in the documentation runs and does what it says."""
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

from symprobe.water import water_box

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(name):
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), flags=re.S)


def test_model_contract_export_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "example.py"  # TorchScript reads the source from a file
    script.write_text(python_blocks("model-contract.md")[0])
    scope = runpy.run_path(str(script), run_name="__main__")
    model = scope["model"]
    assert model.dtype == "float32" and model.cutoff == 4.0
    atoms = water_box(8, seed=1)
    res = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    # a float32 model: forces agree with float64 finite differences of its energy to ~1e-4
    i, h = 3, 1e-3
    pos = atoms.positions.copy()
    pos[i, 2] += h
    ep = model.compute(pos, atoms.numbers, atoms.cell.array, True)["energy"]
    pos[i, 2] -= 2 * h
    em = model.compute(pos, atoms.numbers, atoms.cell.array, True)["energy"]
    assert -(ep - em) / (2 * h) == pytest.approx(res["forces"][i, 2], abs=2e-4)
    # the example is not rotation-invariant: the virial is not symmetric
    assert np.abs(res["virial"] - res["virial"].T).max() > 1e-6
