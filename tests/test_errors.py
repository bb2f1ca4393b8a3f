"""Every bad input raises a clear Python exception that names the problem, never a crash."""
import json
import zipfile

import numpy as np
import pytest
import torch

import symprobe
from symprobe.water import water_box


@pytest.fixture()
def atoms():
    return water_box(8, seed=0)


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        symprobe.load_model(tmp_path / "nope.pt")


def test_corrupt_model_file(tmp_path, reference_path):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"this is not a zip archive" * 10)
    with pytest.raises(symprobe.InvalidModelError, match="garbage.pt.*not a readable TorchScript"):
        symprobe.load_model(bad)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(open(reference_path(), "rb").read()[:3000])
    with pytest.raises(symprobe.InvalidModelError, match="truncated.pt"):
        symprobe.load_model(truncated)


def test_model_without_metadata(tmp_path):
    from symprobe.water.reference import reference_model
    path = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(reference_model("water-reference")), path)
    with pytest.raises(symprobe.InvalidModelError, match="no symprobe metadata"):
        symprobe.load_model(path)


def rewrite_metadata(src, dst, change):
    """Copy a model archive, editing its metadata.json with `change(dict)`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("extra/metadata.json"):
                meta = json.loads(data)
                change(meta)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)


@pytest.mark.parametrize("field,change,message", [
    ("cutoff", lambda m: m.pop("cutoff"), "missing the field 'cutoff'"),
    ("elements", lambda m: m.pop("elements"), "missing the field 'elements'"),
    ("dtype", lambda m: m.update(dtype="float16"), "'dtype' must be"),
    ("energy_unit", lambda m: m.update(energy_unit="kcal/mol"), "'energy_unit' must be \"eV\""),
    ("version", lambda m: m.update(contract_version=7), "contract version 7"),
    ("element", lambda m: m.update(elements=["H", "Xx"]), "unknown chemical element symbol 'Xx'"),
    ("range", lambda m: m.update(interaction_range=1.0), "'interaction_range' must be >="),
])
def test_bad_metadata(tmp_path, reference_path, field, change, message):
    path = tmp_path / f"{field}.pt"
    rewrite_metadata(reference_path(), path, change)
    with pytest.raises(symprobe.InvalidModelError, match=message):
        symprobe.load_model(path)


def test_element_not_in_model(invariant_model, atoms):
    numbers = atoms.numbers.copy()
    numbers[5] = 11
    with pytest.raises(ValueError, match=r"atom 5 is element Na \(Z=11\).*elements: H O"):
        invariant_model.compute(atoms.positions, numbers, atoms.cell.array, True)
    numbers[5] = 0
    with pytest.raises(ValueError, match="atom 5 is atomic number 0"):
        invariant_model.compute(atoms.positions, numbers, atoms.cell.array, True)


def test_non_finite_positions(invariant_model, atoms):
    for bad in (np.nan, np.inf):
        pos = atoms.positions.copy()
        pos[3, 1] = bad
        with pytest.raises(ValueError, match="position of atom 3 is not finite"):
            invariant_model.compute(pos, atoms.numbers, atoms.cell.array, True)


def test_singular_or_zero_cell_with_periodicity(invariant_model, atoms):
    flat = atoms.cell.array.copy()
    flat[2] = flat[0] + flat[1]
    with pytest.raises(ValueError, match="singular"):
        invariant_model.compute(atoms.positions, atoms.numbers, flat, True)
    with pytest.raises(ValueError, match="cell vector 1 is zero"):
        invariant_model.compute(atoms.positions, atoms.numbers, np.diag([5.0, 0.0, 5.0]), True)
    with pytest.raises(ValueError, match="cell contains NaN"):
        invariant_model.compute(atoms.positions, atoms.numbers, np.full((3, 3), np.nan), True)
    # the same zero cell is fine without periodicity
    invariant_model.compute(atoms.positions, atoms.numbers, np.zeros((3, 3)), False)


def test_empty_system(invariant_model):
    with pytest.raises(ValueError, match="empty system"):
        invariant_model.compute(np.zeros((0, 3)), np.zeros(0, int), np.eye(3) * 5, True)


def test_wrong_shapes(invariant_model, atoms):
    with pytest.raises(ValueError, match=r"positions must have shape \(N, 3\), got \(24, 2\)"):
        invariant_model.compute(atoms.positions[:, :2], atoms.numbers, atoms.cell.array, True)
    with pytest.raises(ValueError, match=r"numbers must have shape \(24,\), got \(23,\)"):
        invariant_model.compute(atoms.positions, atoms.numbers[:-1], atoms.cell.array, True)
    with pytest.raises(ValueError, match=r"cell must have shape \(3, 3\)"):
        invariant_model.compute(atoms.positions, atoms.numbers, np.eye(2), True)
    with pytest.raises(ValueError, match="pbc must be"):
        invariant_model.compute(atoms.positions, atoms.numbers, atoms.cell.array, [True, False])
    with pytest.raises(ValueError, match="edge 0 refers to atom"):
        invariant_model.compute_graph([8, 1], [0], [5], [[1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"vectors must have shape \(1, 3\)"):
        invariant_model.compute_graph([8, 1], [0], [1], [[1.0, 0.0]])


def test_overlapping_atoms(invariant_model, atoms):
    pos = atoms.positions.copy()
    pos[4] = pos[7]
    with pytest.raises(ValueError, match="atoms 4 and 7 overlap|atoms 7 and 4 overlap"):
        invariant_model.compute(pos, atoms.numbers, atoms.cell.array, True)


class Raising(torch.nn.Module):
    def forward(self, species, centers, neighbors, vectors):
        if species.shape[0] > 2:
            raise RuntimeError("too many atoms for this toy")
        return vectors.sum() * torch.ones(species.shape[0], dtype=vectors.dtype)


class WrongShape(torch.nn.Module):
    def forward(self, species, centers, neighbors, vectors):
        return vectors.sum().reshape(1)


@pytest.mark.parametrize("module,message", [
    (Raising(), "the model raised an error during evaluation.*too many atoms for this toy"),
    (WrongShape(), r"forward returned a tensor of shape \[1\].*requires per-atom energies of shape \[24\]"),
])
def test_model_failures_become_model_errors(tmp_path, atoms, module, message):
    path = symprobe.export_model(module, tmp_path / "toy.pt", cutoff=3.0, elements=["H", "O"])
    model = symprobe.load_model(path)
    with pytest.raises(symprobe.ModelError, match=message):
        model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)


def test_bad_options(reference_path):
    with pytest.raises(ValueError, match="device must be cpu, cuda or cuda:N, got 'tpu'"):
        symprobe.load_model(reference_path(), device="tpu")
    with pytest.raises(ValueError, match="skin must be a non-negative length in Angstrom, got '-1.0'"):
        symprobe.load_model(reference_path(), skin=-1.0)
    with pytest.raises(ValueError, match="threads must be a non-negative integer"):
        symprobe.load_model(reference_path(), threads=-2)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            symprobe.load_model(reference_path(), device="cuda")


def test_export_never_overwrites(tmp_path):
    from symprobe.water.reference import export_reference
    path = tmp_path / "m.pt"
    path.write_text("precious user data")
    with pytest.raises(FileExistsError, match="m.pt exists"):
        export_reference("water-reference", path)
    assert path.read_text() == "precious user data"
    with pytest.raises(ValueError, match="unknown chemical element symbol 'Qq'"):
        symprobe.export_model(Raising(), tmp_path / "q.pt", cutoff=3.0, elements=["Qq"])


def test_failed_rebuild_leaves_no_stale_verlet_list(reference_path, atoms):
    model = symprobe.load_model(reference_path(), skin=0.5)
    good = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)["energy"]
    bad = atoms.positions.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        model.compute(bad, atoms.numbers, atoms.cell.array, True)
    again = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)["energy"]
    assert again == pytest.approx(good, rel=1e-13)


def test_out_of_range_atomic_numbers_are_not_wrapped(invariant_model, atoms):
    numbers = atoms.numbers.astype(np.int64)
    numbers[0] = 2**32 + 8
    with pytest.raises(ValueError, match="atom 0 is atomic number"):
        invariant_model.compute(atoms.positions, numbers, atoms.cell.array, True)


def test_compute_inside_inference_mode(invariant_model, atoms):
    ref = invariant_model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    with torch.inference_mode():
        got = invariant_model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    np.testing.assert_allclose(got["forces"], ref["forces"], atol=1e-12)


def test_failed_evaluation_does_not_advance_the_random_stream(tmp_path, atoms):
    path = symprobe.export_model(Raising(), tmp_path / "toy.pt", cutoff=3.0, elements=["H", "O"])
    model = symprobe.load_model(path, rotations="random", seed=1)
    with pytest.raises(symprobe.ModelError):
        model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    assert model.rotation_step == 0


def test_positions_too_far_to_wrap_are_an_error(invariant_model, atoms):
    """A periodic wrap of a position ~1e300 A keeps no digit of its place in the cell: an error
    naming the atom, not a silently wrong energy; far but representable positions still work."""
    pos = atoms.positions.copy()
    pos[3, 1] = 1e300
    with pytest.raises(ValueError, match="atom 3 at .* lies .* cell lengths from the cell along "
                                         "periodic axis 1; wrapping it would lose precision"):
        invariant_model.compute(pos, atoms.numbers, atoms.cell.array, True)
    pos[3, 1] = atoms.positions[3, 1] + 1e7 * atoms.cell.array[1, 1]  # 1e7 cells away
    with pytest.raises(ValueError, match="atom 3"):
        invariant_model.compute(pos, atoms.numbers, atoms.cell.array, True)
    # 1000 cells away: an exact image, the same energy to rounding of the shift
    shifted = atoms.positions + 1000 * atoms.cell.array[0]
    ref = invariant_model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    got = invariant_model.compute(shifted, atoms.numbers, atoms.cell.array, True)
    assert got["energy"] == pytest.approx(ref["energy"], rel=1e-9)
    # without periodicity there is nothing to wrap: a molecule far away is fine
    mol = atoms.positions[:3] + 1e6
    far = invariant_model.compute(mol, atoms.numbers[:3], None, False)
    near = invariant_model.compute(atoms.positions[:3], atoms.numbers[:3], None, False)
    assert far["energy"] == pytest.approx(near["energy"], rel=1e-6)


def test_weights_in_another_dtype_than_the_metadata(tmp_path):
    """metadata float32 with float64 weights (an export that skipped the conversion) is refused
    with a message naming the parameter; export_model converts and loads."""
    from symprobe.export import METADATA_FILE, model_metadata
    from symprobe.training.pet import PET
    module = PET([1, 8], cutoff=3.0, cutoff_width=0.5, d_model=8, n_heads=2, d_ff=16, n_layers=1).double()
    meta = model_metadata(cutoff=3.0, elements=["H", "O"], dtype=torch.float32)
    path = tmp_path / "mixed.pt"
    torch.jit.save(torch.jit.script(module), path, _extra_files={METADATA_FILE: json.dumps(meta)})
    with pytest.raises(symprobe.InvalidModelError,
                       match=r"mixed.pt': metadata says dtype float32 but (parameter|buffer) '.*' is Double"):
        symprobe.load_model(path)
    good = symprobe.export_model(module, tmp_path / "good.pt", cutoff=3.0, elements=["H", "O"],
                                 dtype=torch.float32)
    assert symprobe.load_model(good).dtype == "float32"
