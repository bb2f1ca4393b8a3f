import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import symprobe
from symprobe.water.reference import export_reference

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SYMPROBE_SHARED", ROOT.parent / "shared")) / "data"
WATER_190 = SHARED_DATA / "water-revpbe0d3-190.xyz"


DEVICE_UNDER_TEST = os.environ.get("SYMPROBE_TEST_DEVICE", "cuda")


@pytest.fixture
def accelerator():
    """The device of the tests marked `device`: SYMPROBE_TEST_DEVICE (default cuda), compared
    with the CPU. Skips where that is CUDA and torch sees none; benchmarks/gpu_check.sh runs
    them on a GPU, and with SYMPROBE_TEST_DEVICE=cpu on the CPU."""
    if DEVICE_UNDER_TEST.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device and a CUDA build of torch (SYMPROBE_TEST_DEVICE=cpu runs "
                    "it on the CPU)")
    index = DEVICE_UNDER_TEST.partition(":")[2]
    if index and int(index) >= torch.cuda.device_count():
        pytest.skip(f"SYMPROBE_TEST_DEVICE={DEVICE_UNDER_TEST}, but torch sees "
                    f"{torch.cuda.device_count()} CUDA device(s)")
    return DEVICE_UNDER_TEST


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not found: the shared data directory ../shared/data is absent")
    return path


@functools.lru_cache(maxsize=None)
def _frames_190():
    import ase.io
    return ase.io.read(WATER_190, index=":")


@pytest.fixture(scope="session")
def water_190():
    """The 190 revPBE0-D3 frames of ../shared/data (skips when absent)."""
    shared_file(WATER_190.name)
    return _frames_190()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def reference_path(model_dir):
    """Path factory for freshly exported reference models: (name, dtype) -> path."""
    cache = {}

    def get(name="water-reference", dtype=torch.float64):
        key = (name, dtype)
        if key not in cache:
            suffix = "f32" if dtype == torch.float32 else "f64"
            cache[key] = export_reference(name, model_dir / f"{name}-{suffix}.pt", dtype=dtype)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def invariant_model(reference_path):
    return symprobe.load_model(reference_path("water-reference"))


@pytest.fixture(scope="session")
def orientation_model(reference_path):
    return symprobe.load_model(reference_path("water-orientation"))


def random_rotation(rng) -> np.ndarray:
    from scipy.spatial.transform import Rotation
    return Rotation.random(random_state=rng).as_matrix()


def contract_graph(atoms, cutoff):
    """Model-contract inputs of `atoms`: species, centers, neighbors, vectors (A)."""
    nl = symprobe.neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    return (torch.tensor(atoms.numbers), torch.from_numpy(nl.centers),
            torch.from_numpy(nl.neighbors), torch.from_numpy(nl.vectors))


def fd_force(energy, positions, cell, i, c, h=1e-5):
    """-dE/dx_ic by central differences; energy(positions, cell) -> eV."""
    pos = positions.copy()
    pos[i, c] += h
    ep = energy(pos, cell)
    pos[i, c] -= 2 * h
    return -(ep - energy(pos, cell)) / (2 * h)


def strain_derivative(energy, positions, cell, h=1e-6):
    """dE/d(eps)_ab by central differences of E((1 + eps) x, (1 + eps) cell); equals -W_ba."""
    out = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sign in (1, -1):
                eps = np.eye(3)
                eps[a, b] += sign * h
                e.append(energy(positions @ eps.T, cell @ eps.T))
            out[a, b] = (e[0] - e[1]) / (2 * h)
    return out


def fenced_blocks(path, language):
    """The code blocks of `path` in `language` ("" for a bare fence), in order."""
    blocks, current, opened = [], None, None
    for line in path.read_text().splitlines(keepends=True):
        if current is None and line.startswith("```"):
            current, opened = [], line[3:].strip()
        elif current is not None and line.strip() == "```":
            if opened == language:
                blocks.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks
