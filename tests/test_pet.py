"""PET-style model and training: contract round trip, smoothness at the cutoff, training lowers
the loss, exact resume."""
import json
import os

import ase.io
import numpy as np
import pytest
import torch

import symprobe
from symprobe.training.pet import PET
from symprobe.water import water_box

from conftest import ROOT, SHARED_DATA, WATER_190, contract_graph, shared_file


def small_pet(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = PET([1, 8], cutoff=3.5, cutoff_width=0.5, d_model=16, n_heads=2, d_ff=32,
                n_layers=2, n_blocks=1)
    # give the energy heads non-zero weights so that the tests see a non-trivial function
    with torch.no_grad():
        for layer in model.layers:
            for head in (layer.atom_energy, layer.bond_energy):
                head[-1].weight.normal_(0, 0.3)
    return model.to(dtype)


def test_export_round_trip_and_contract_forces(tmp_path):
    module = small_pet()
    path = symprobe.export_model(module, tmp_path / "pet.pt", cutoff=module.cutoff,
                                 interaction_range=module.interaction_range, elements=["H", "O"])
    model = symprobe.load_model(path)
    assert model.interaction_range == 7.0
    atoms = water_box(16, seed=3)
    species, centers, neighbors, vectors = contract_graph(atoms, module.cutoff)
    vectors.requires_grad_(True)
    energies = module(species, centers, neighbors, vectors)
    grad, = torch.autograd.grad(energies.sum(), vectors)
    forces = torch.zeros(len(atoms), 3, dtype=grad.dtype)
    forces.index_add_(0, centers, grad).index_add_(0, neighbors, -grad)
    res = model.compute(atoms.positions, atoms.numbers, atoms.cell.array, True, energies=True)
    np.testing.assert_allclose(res["energies"], energies.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res["forces"], forces.numpy(), atol=1e-10)
    # several graphs in one call: the batched energies equal the separate ones
    other = water_box(8, seed=4)
    s2, c2, n2, v2 = contract_graph(other, module.cutoff)
    batch = module(torch.cat([species, s2]), torch.cat([centers, c2 + len(atoms)]),
                   torch.cat([neighbors, n2 + len(atoms)]), torch.cat([vectors.detach(), v2]))
    np.testing.assert_allclose(batch[:len(atoms)].detach().numpy(), energies.detach().numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(batch[len(atoms):].detach().numpy(),
                               module(s2, c2, n2, v2).detach().numpy(), atol=1e-12)


def test_not_rotation_invariant():
    module = small_pet()
    atoms = water_box(8, seed=1)
    e0 = module(*contract_graph(atoms, module.cutoff)).sum().item()
    from scipy.spatial.transform import Rotation
    R = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ R.T
    rotated.cell = atoms.cell.array @ R.T
    e1 = module(*contract_graph(rotated, module.cutoff)).sum().item()
    assert abs(e1 - e0) > 1e-6


def test_energy_and_forces_continuous_where_an_edge_crosses_the_cutoff(tmp_path):
    """One atom pulled out of another's neighbourhood along a line on which no other distance
    crosses the cutoff: across the crossing r = rc, |E(rc - eps) - E(rc + eps)| and the largest
    change of any force component (the full force, both ends of every edge, from the core) go to
    zero with eps, as a C1 cutoff function makes them (energy ~ eps^2, forces ~ eps)."""
    module = small_pet()
    path = symprobe.export_model(module, tmp_path / "pet.pt", cutoff=module.cutoff,
                                 interaction_range=module.interaction_range, elements=["H", "O"])
    model = symprobe.load_model(path)
    rc = module.cutoff
    away = np.array([0.8, 0.6, 0.0])  # from atom 0, pointing away from atom 1

    def at(r):
        x = np.array([[0.0, 0.0, 0.0], [-0.6, -0.75, 0.0], r * away])
        # atom 2 stays beyond the cutoff of atom 1 (distance > r + 0.9)
        assert np.linalg.norm(x[2] - x[1]) > r + 0.9
        out = model.compute(x, [8, 1, 8], None, False)
        return out["energy"], out["forces"]

    e_in, _ = at(rc - 0.3)
    e_out, _ = at(rc + 0.3)
    assert abs(e_in - e_out) > 1e-4  # the edge matters when it is well inside
    jumps = []
    for eps in (1e-2, 1e-3, 1e-4, 1e-5):
        (e_a, f_a), (e_b, f_b) = at(rc - eps), at(rc + eps)
        jumps.append((abs(e_a - e_b), np.abs(f_a - f_b).max()))
    jumps = np.array(jumps)
    # each tenfold smaller eps shrinks the energy change >= 50x and the force change >= 5x
    assert np.all(jumps[1:, 0] < jumps[:-1, 0] / 50 + 1e-13), jumps
    assert np.all(jumps[1:, 1] < jumps[:-1, 1] / 5 + 1e-12), jumps
    assert jumps[-1, 0] < 1e-8 and jumps[-1, 1] < 1e-3, jumps  # a 1e-6 eV step would fail


def write_config(tmp_path, data, epochs, directory="run"):
    cfg = tmp_path / f"{directory}.toml"
    cfg.write_text(f"""
[data]
path = "{data}"
split = [4, 1, 1]
seed = 1
[model]
cutoff = 3.5
d_model = 16
n_heads = 2
d_ff = 32
n_layers = 1
[training]
epochs = {epochs}
batch_size = 2
learning_rate = 1e-2
energy_weight = 0.01
grad_clip = 1.0
warmup_epochs = 0
seed = 3
threads = 1
[output]
directory = "{directory}"
""")
    return cfg


@pytest.fixture(scope="module")
def six_frames(tmp_path_factory):
    shared_file(WATER_190.name)
    path = tmp_path_factory.mktemp("data") / "six.xyz"
    ase.io.write(path, ase.io.read(WATER_190, index=":6"))
    return path


def test_training_lowers_loss_and_reports(tmp_path, six_frames):
    from symprobe.training.train import train
    # the log of an earlier run whose checkpoint is gone (a finished run reproduced in its
    # folder): a fresh start replaces it
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    report = train(str(write_config(tmp_path, six_frames, 2)), progress=False)
    log = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl")]
    assert len(log) == 2 and all("train_loss" in entry for entry in log)
    assert log[1]["train_loss"] < log[0]["train_loss"]
    split = json.load(open(tmp_path / "run" / "split.json"))
    assert len(split["train"]) == 4 and len(split["test"]) == 1
    assert set(split["train"]).isdisjoint(split["test"])
    assert report["test"]["frames"] == 1
    # recorded paths are relative to the run directory (a moved checkout keeps them valid)
    assert not os.path.isabs(split["source"])
    assert os.path.samefile(tmp_path / "run" / split["source"], six_frames)
    assert json.load(open(tmp_path / "run" / "report.json"))["model"] == "model.pt"
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["config"]
    assert saved["data"]["path"] == split["source"] and saved["output"]["directory"] == "."
    model = symprobe.load_model(report["model"])
    assert model.dtype == "float32" and model.metadata["name"] == "pet"
    # the refitted baseline leaves no mean energy error per atom on the training frames
    frames = ase.io.read(six_frames, index=":")
    errors = [(model.compute(frames[k].positions, frames[k].numbers, frames[k].cell.array, True,
                             forces=False, virial=False)["energy"] - frames[k].get_potential_energy())
              / len(frames[k]) for k in split["train"]]
    assert abs(np.mean(errors)) < 1e-5, errors  # float32 model, ~1e-6 eV/atom round-off
    shift = report["baseline_shift_eV"]
    assert set(shift) == {"H", "O"} and abs(shift["O"]) > 1e-5  # it did move


def test_interrupted_training_resumes_exactly(tmp_path, six_frames):
    from symprobe.training.train import train
    straight = write_config(tmp_path, six_frames, 3, "straight")
    train(str(straight), progress=False)
    split_run = write_config(tmp_path, six_frames, 3, "resumed")
    # a wall-time limit already passed still completes one epoch
    status = train(str(split_run), max_minutes=1e-9, progress=False)
    assert status == {"status": "incomplete", "epoch": 1, "epochs": 3}
    status = train(str(split_run), max_epochs=1, progress=False)
    assert status == {"status": "incomplete", "epoch": 2, "epochs": 3}
    train(str(split_run), progress=False)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_augmentation_draws_the_cores_random_rotation_stream():
    from symprobe.training.train import random_rotations
    # frame k of the training set at epoch e is rotated by step e * n_train + k of the stream
    # behind `rotations random` (one generator for the runtime and training)
    drawn = random_rotations(6, seed=3, start=12, inversion=True)
    assert drawn.shape == (6, 3, 3) and drawn.dtype == torch.float64
    for k in range(6):
        expected = symprobe.rotation_set("random", inversion=True, seed=3, step=12 + k)[0][0]
        np.testing.assert_array_equal(drawn[k].numpy(), expected)
    assert torch.equal(random_rotations(2, seed=3, start=14, inversion=True), drawn[2:4])
    many = random_rotations(400, seed=5, start=0, inversion=True)
    np.testing.assert_allclose(many @ many.transpose(1, 2), np.broadcast_to(np.eye(3), (400, 3, 3)),
                               atol=1e-12)
    improper = int((torch.det(many) < 0).sum())
    assert 140 < improper < 260  # probability 1/2 (binomial, 400 draws: ~6 sigma)
    assert (torch.det(random_rotations(100, seed=5, start=0, inversion=False)) > 0).all()


def test_training_config_errors(tmp_path, six_frames):
    from symprobe.training.train import train
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[data]\npath = "{six_frames}"\n[training]\nepoch = 3\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\] in \[training\]"):
        train(str(cfg))
    cfg.write_text('[training]\nepochs = 3\n')
    with pytest.raises(ValueError, match=r"\[data\] path"):
        train(str(cfg))
    cfg.write_text(f'[data]\npath = "{six_frames}"\n[training]\nseed = -1\n')
    with pytest.raises(ValueError, match=r"\[training\] seed must be an integer >= 0, got -1"):
        train(str(cfg))
    with pytest.raises(ValueError, match="max_minutes must be a positive number of minutes"):
        train(str(write_config(tmp_path, six_frames, 1, "timed")), max_minutes=0)
    assert not (tmp_path / "timed").exists()  # refused before anything was written


def test_second_stage_starts_from_first_stage_weights(tmp_path, six_frames):
    from symprobe.training.train import train
    first = write_config(tmp_path, six_frames, 2, "first")
    train(str(first), progress=False)
    # a baseline no fresh start would fit: it must come from the checkpoint
    checkpoint = torch.load(tmp_path / "first" / "checkpoint.pt", weights_only=False)
    checkpoint["model"]["baseline"] += 0.125
    torch.save(checkpoint, tmp_path / "first" / "checkpoint.pt")
    second = write_config(tmp_path, six_frames, 1, "second")
    text = second.read_text()
    second.write_text(text.replace("learning_rate = 1e-2", "learning_rate = 1e-12")
                      + '[init]\ncheckpoint = "first/checkpoint.pt"\nepoch = 2\n')
    train(str(second), progress=False)
    a = torch.load(tmp_path / "first" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "second" / "checkpoint.pt", weights_only=False)["model"]
    # a learning rate of 1e-12 leaves the weights where stage 1 ended (baseline included)
    assert torch.equal(a["baseline"], b["baseline"])
    assert torch.equal(a["energy_scale"], b["energy_scale"])
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-9), key
    # the wrong epoch, other hyperparameters or another split are refused by name
    for old, new, message in (("epoch = 2", "epoch = 5", "is at epoch 2, the config expects epoch 5"),
                              ('checkpoint = "first/checkpoint.pt"\n', "",
                               "epoch needs \\[init\\] checkpoint"),
                              ("d_model = 16", "d_model = 8", "model hyperparameters"),
                              ("seed = 1\n", "seed = 2\n", "another data split")):
        bad = tmp_path / "bad.toml"
        bad.write_text(second.read_text().replace(old, new).replace('"second"', '"bad"'))
        with pytest.raises(ValueError, match=message):
            train(str(bad), progress=False)


def test_training_device_is_checked(tmp_path, six_frames):
    from symprobe.training.train import train, training_device
    assert training_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = write_config(tmp_path, six_frames, 1)
    cfg.write_text(cfg.read_text().replace("threads = 1", 'threads = 1\ndevice = "tpu"'))
    with pytest.raises(ValueError, match="device must be cpu, cuda, cuda:N or auto, got 'tpu'"):
        train(str(cfg), progress=False)
    if not torch.cuda.is_available():
        cfg.write_text(cfg.read_text().replace('"tpu"', '"cuda"'))
        with pytest.raises(ValueError, match="no CUDA device"):
            train(str(cfg), progress=False)


def test_float32_model_adds_large_baselines_without_rounding():
    # element energies of real water (~ -188 and -94 eV per atom): a float32 sum would round
    # every atom's energy to ~1e-5 eV and the total of 24 atoms to ~1e-4 eV
    model32, model64 = small_pet(dtype=torch.float32), small_pet(dtype=torch.float64)
    for model in (model32, model64):
        model.baseline.copy_(torch.tensor([-93.7982, -187.5964]))
    atoms = water_box(8, seed=2)
    species, centers, neighbors, vectors = contract_graph(atoms, 3.5)
    e32 = model32(species, centers, neighbors, vectors.float())
    e64 = model64(species, centers, neighbors, vectors)
    assert e32.dtype == torch.float64
    baseline = model64.baseline[model64.species_index[species]].sum()
    network32, network64 = (e32.sum() - baseline).item(), (e64.sum() - baseline).item()
    # only the float32 network part remains (~5e-7 eV here; a float32 sum of the baselines
    # would be off by ~6e-5 eV)
    assert abs(network32 - network64) < 1e-6 * max(1.0, abs(network64)), (network32, network64)


def test_graphs_without_atoms_or_edges():
    """No atoms: no energies; atoms without edges: each its baseline plus the atom-token
    energies of its species, from the eager and the scripted model alike (a layer may be called
    on any part of a graph, docs/model-contract.md)."""
    model = small_pet()
    model.baseline.copy_(torch.tensor([-1.5, -3.0], dtype=torch.float64))
    scripted = torch.jit.script(model)
    empty = torch.zeros(0, dtype=torch.long)
    for m in (model, scripted):
        assert m(empty, empty, empty, torch.zeros(0, 3, dtype=torch.float64)).shape == (0,)
        lone = m(torch.tensor([8, 1, 1]), empty, empty, torch.zeros(0, 3, dtype=torch.float64))
        assert lone[1] == lone[2] and lone[0] != lone[1]
        assert abs(lone[1].item() + 1.5) > 1e-6  # the heads add to the baseline
        features, energies = m.layer(0, torch.zeros(0, dtype=torch.long), torch.zeros(0, 16, dtype=torch.float64),
                                     empty, empty, torch.zeros(0, 3, dtype=torch.float64))
        assert features.shape == (0, 16) and energies.shape == (0,)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.toml")))
def test_example_training_configs_are_valid(name):
    """Every shipped recipe parses, builds its model and names an [init] checkpoint of the same
    hyperparameters: one in the checkout, or the checkpoint.pt another shipped recipe writes,
    whose committed run folder then keeps the weights it ended with as last.pt (an ended run
    keeps no checkpoint). The data file is checked where ../shared is present."""
    from symprobe.training.train import load_config
    config = load_config(str(ROOT / "examples" / name))
    model = PET([1, 8], **config["model"])
    assert sum(p.numel() for p in model.parameters()) > 0
    if config["init"]["checkpoint"]:
        path = os.path.normpath(config["init"]["checkpoint"])
        if not os.path.exists(path):
            writers = [other for other in (load_config(str(p))
                                           for p in (ROOT / "examples").glob("*.toml"))
                       if os.path.normpath(os.path.join(other["output"]["directory"],
                                                        "checkpoint.pt")) == path]
            assert writers, f"{path} is neither in the checkout nor written by a shipped recipe"
            assert all(other["model"] == config["model"] for other in writers)
            path = os.path.join(os.path.dirname(path), "last.pt")
        saved = torch.load(path, weights_only=False, map_location="cpu")
        assert saved["config"]["model"] == config["model"]
        assert saved["state"]["epoch"] == config["init"]["epoch"]
    if SHARED_DATA.exists():
        assert os.path.isfile(config["data"]["path"]), config["data"]["path"]


def test_training_graph_and_forces_equal_the_cores(tmp_path):
    """Training batches frames and forms forces itself (it differentiates through them, which
    the core never does): its energies and forces, each frame rotated by its augmentation
    rotation, equal the core's compute_batch of the rotated structures."""
    from symprobe.training.train import Frame, predict, random_rotations
    module = small_pet(seed=2)
    path = symprobe.export_model(module, tmp_path / "pet.pt", cutoff=module.cutoff,
                                 interaction_range=module.interaction_range, elements=["H", "O"])
    structures = [water_box(8, seed=5), water_box(16, seed=6)]
    frames = []
    for atoms in structures:
        nl = symprobe.neighbor_list(atoms.positions, atoms.cell.array, True, module.cutoff)
        frames.append(Frame(torch.tensor(atoms.numbers), torch.from_numpy(nl.centers),
                            torch.from_numpy(nl.neighbors), torch.from_numpy(nl.vectors), 0.0,
                            torch.zeros(len(atoms), 3, dtype=torch.float64)))
    rotations = random_rotations(2, seed=9, start=0, inversion=True)
    energy, forces, *_ = predict(module, frames, rotations, torch.float64, create_graph=False)
    rotated = [(a.positions @ R.numpy().T, a.cell.array @ R.numpy().T)
               for a, R in zip(structures, rotations)]
    core = symprobe.load_model(path).compute_batch([p for p, _ in rotated], [a.numbers for a in structures],
                                                   [c for _, c in rotated], True)
    np.testing.assert_allclose(energy.detach().numpy(), [r["energy"] for r in core], rtol=1e-12)
    np.testing.assert_allclose(forces.detach().numpy(), np.concatenate([r["forces"] for r in core]),
                               atol=1e-10)
