"""`symprobe train CONFIG`: train a PET-style model on energies and forces, with rotational
augmentation, checkpoints every epoch and exact resume, then export through the model contract.

CONFIG is a TOML file (see examples/train-water.toml). Units: eV, Angstrom.
The run directory holds: config.toml (copy), split.json, checkpoint.pt (latest epoch),
best.pt (state with the lowest validation loss), final.pt (best.pt with the refitted baseline,
the exported weights), log.jsonl, model.pt (export), report.json. checkpoint.pt and best.pt
are intermediate: a finished run needs only config.toml, split.json, log.jsonl, report.json
and final.pt (model.pt is the export of final.pt). Paths recorded in split.json, report.json
and the checkpoints' config are relative to the run directory.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass

import numpy as np
import torch

from .._runtime import element_symbol
from ..runtime import neighbor_list, rotation_set
from ..export import export_model
from .pet import PET

DEFAULTS = {
    "data": {"path": "", "split": [0.7, 0.1, 0.2], "seed": 0, "energy_key": "energy",
             "forces_key": "forces"},
    "model": {"cutoff": 4.0, "cutoff_width": 0.5, "d_model": 64, "n_heads": 4, "d_ff": 128,
              "n_layers": 2, "n_blocks": 1},
    "training": {"epochs": 100, "batch_size": 4, "learning_rate": 1e-3, "min_learning_rate": 1e-5,
                 "warmup_epochs": 2, "energy_weight": 1.0, "energy_weight_start": None,
                 "energy_ramp_epochs": 0, "forces_weight": 1.0, "grad_clip": 0.0,
                 "augmentation": True, "inversion": True, "seed": 0, "threads": 0,
                 "dtype": "float32", "device": "cpu"},
    "output": {"directory": "runs/train", "export_dtype": "float32", "name": "pet",
               "description": "PET-style model trained by symprobe train"},
    # start from the weights of another run's checkpoint.pt (fine-tuning, or a second stage
    # with other weights), or of such a file without its optimizer state (an ended run's
    # last weights, e.g. training/pet-water/last.pt); `epoch` (optional) must match its epoch
    "init": {"checkpoint": "", "epoch": None},
}


def load_config(path: str) -> dict:
    with open(path, "rb") as f:
        user = tomllib.load(f)
    config = {}
    for section, defaults in DEFAULTS.items():
        given = user.get(section, {})
        unknown = set(given) - set(defaults)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {sorted(unknown)} in [{section}]")
        config[section] = {**defaults, **given}
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}")
    if config["init"]["epoch"] is not None and not config["init"]["checkpoint"]:
        raise ValueError(f"{path}: [init] epoch needs [init] checkpoint")
    if not config["data"]["path"]:
        raise ValueError(f"{path}: [data] path (an extxyz file with energies and forces) is required")
    for section in ("data", "training"):
        seed = config[section]["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"{path}: [{section}] seed must be an integer >= 0, got {seed!r}")
    base = os.path.dirname(os.path.abspath(path))
    for section, key in (("data", "path"), ("output", "directory"), ("init", "checkpoint")):
        if not config[section][key]:
            continue
        value = os.path.expanduser(config[section][key])
        config[section][key] = value if os.path.isabs(value) else os.path.join(base, value)
    return config


def _recorded_path(path: str, run: str) -> str:
    """`path` as the run directory's files record it: relative to the run directory, so that
    the record stays valid when the checkout moves (absolute only where no relative path
    exists, e.g. another drive)."""
    try:
        return os.path.relpath(path, run)
    except ValueError:
        return os.path.normpath(path)


def _recorded_config(config: dict, run: str) -> dict:
    """The config as a checkpoint records it: its paths relative to the run directory."""
    recorded = {section: dict(values) for section, values in config.items()}
    for section, key in (("data", "path"), ("output", "directory"), ("init", "checkpoint")):
        if recorded.get(section, {}).get(key):  # runs from before [init] have no "init"
            recorded[section][key] = _recorded_path(recorded[section][key], run)
    return recorded


def _portable(config: dict) -> dict:
    """The config without what does not change the training (the paths, the exported
    model's name, the device): a checkout elsewhere, a renamed export or a run moved between
    CPU and GPU resumes the same run."""
    return {section: {k: v for k, v in values.items() if (section, k) not in
                      {("data", "path"), ("output", "directory"), ("init", "checkpoint"),
                       ("output", "name"), ("output", "description"), ("training", "device")}}
            for section, values in config.items()
            if section != "init" or values["checkpoint"]}  # runs from before [init] existed


@dataclass
class Frame:
    numbers: torch.Tensor  # [N] int64
    centers: torch.Tensor  # [E]
    neighbors: torch.Tensor  # [E]
    vectors: torch.Tensor  # [E, 3] float64, Angstrom
    energy: float  # eV
    forces: torch.Tensor  # [N, 3] eV/A


def read_frames(path: str, cutoff: float, energy_key: str, forces_key: str) -> list[Frame]:
    import ase.io
    frames = []
    for k, atoms in enumerate(ase.io.read(path, index=":")):
        energy = atoms.info.get(energy_key)
        if energy is None and atoms.calc is not None:
            energy = atoms.calc.results.get("energy")
        forces = atoms.arrays.get(forces_key)
        if forces is None and atoms.calc is not None:
            forces = atoms.calc.results.get("forces")
        if energy is None or forces is None:
            raise ValueError(f"{path}: frame {k} has no '{energy_key}' energy or '{forces_key}' forces")
        nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
        frames.append(Frame(torch.tensor(atoms.numbers, dtype=torch.long),
                            torch.from_numpy(nl.centers), torch.from_numpy(nl.neighbors),
                            torch.from_numpy(nl.vectors), float(energy),
                            torch.tensor(np.asarray(forces), dtype=torch.float64)))
    return frames


def split_indices(n: int, split, seed: int) -> dict:
    """Fixed seeded split; `split` holds counts or fractions (train, validation, test)."""
    if len(split) != 3:
        raise ValueError("[data] split must have three entries: train, validation, test")
    counts = [int(s) for s in split] if all(float(s).is_integer() and s >= 0 for s in split) \
        and sum(split) > 1 else [int(round(float(s) * n)) for s in split]
    if sum(counts) > n or min(counts) < 0 or counts[0] < 1:
        raise ValueError(f"split {split} does not fit {n} frames")
    perm = np.random.default_rng(seed).permutation(n)
    a, b = counts[0], counts[0] + counts[1]
    return {"train": sorted(perm[:a].tolist()), "validation": sorted(perm[a:b].tolist()),
            "test": sorted(perm[b:b + counts[2]].tolist())}


def composition(frames: list[Frame], elements: list[int]) -> np.ndarray:
    """[frames, elements] atom counts."""
    return np.array([[int((f.numbers == z).sum()) for z in elements] for f in frames], float)


def fit_baseline(frames: list[Frame], elements: list[int]) -> np.ndarray:
    """Per-element energies (eV) by least squares on the composition (minimum-norm solution
    when compositions are collinear, e.g. always H2O)."""
    energies = np.array([f.energy for f in frames])
    return np.linalg.lstsq(composition(frames, elements), energies, rcond=None)[0]


def random_rotations(n: int, seed: int, start: int, inversion: bool) -> torch.Tensor:
    """[n, 3, 3] Haar-random rotations, improper with probability 1/2 if `inversion`: steps
    start, ..., start + n - 1 of the core's counter-based stream for `seed` (the one behind
    `rotations random`, symprobe.rotation_set), so that a draw depends only on (seed, step)."""
    return torch.from_numpy(np.stack([
        rotation_set("random", inversion=inversion, seed=int(seed), step=start + k)[0][0]
        for k in range(n)]))


def batch_graph(frames: list[Frame], rotations, dtype, device="cpu"):
    """Concatenate frames into one graph (the contract's batched call), rotating each frame's
    edge vectors and target forces by its rotation."""
    numbers, centers, neighbors, vectors, forces, owner = [], [], [], [], [], []
    offset = 0
    for k, f in enumerate(frames):
        v, fr = f.vectors, f.forces
        if rotations is not None:
            v, fr = v @ rotations[k].T, fr @ rotations[k].T
        numbers.append(f.numbers)
        centers.append(f.centers + offset)
        neighbors.append(f.neighbors + offset)
        vectors.append(v)
        forces.append(fr)
        owner.append(torch.full((len(f.numbers),), k, dtype=torch.long))
        offset += len(f.numbers)
    return tuple(t.to(device) for t in (torch.cat(numbers), torch.cat(centers),
                                        torch.cat(neighbors), torch.cat(vectors).to(dtype),
                                        torch.cat(forces), torch.cat(owner)))


def predict(model, frames, rotations, dtype, create_graph: bool, device="cpu"):
    """Energies per frame (eV), forces (eV/A) and the batched graph's targets (on `device`)."""
    numbers, centers, neighbors, vectors, forces_ref, owner = batch_graph(frames, rotations, dtype,
                                                                          device)
    vectors.requires_grad_(True)
    atomic = model(numbers, centers, neighbors, vectors)
    energy = torch.zeros(len(frames), dtype=torch.float64, device=device).index_add(
        0, owner, atomic.double())
    grad, = torch.autograd.grad(energy.sum(), vectors, create_graph=create_graph)
    # the contract's force formula (see docs/model-contract.md)
    forces = torch.zeros(len(numbers), 3, dtype=grad.dtype, device=device)
    forces = forces.index_add(0, centers, grad).index_add(0, neighbors, -grad)
    energy_ref = torch.tensor([f.energy for f in frames], dtype=torch.float64, device=device)
    n_atoms = torch.tensor([len(f.numbers) for f in frames], dtype=torch.float64, device=device)
    return energy, forces, energy_ref, forces_ref, n_atoms


def learning_rate(epoch: int, cfg: dict) -> float:
    """Linear warm-up, then cosine decay from learning_rate to min_learning_rate."""
    lr, lr_min, warm, total = (cfg["learning_rate"], cfg["min_learning_rate"],
                               cfg["warmup_epochs"], cfg["epochs"])
    if epoch < warm:
        return lr * (epoch + 1) / warm
    t = (epoch - warm) / max(1, total - warm)
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * t))


def energy_weight(epoch: int, cfg: dict) -> float:
    """Geometric ramp from energy_weight_start to energy_weight over energy_ramp_epochs: a large
    energy weight from the start stalls force learning (per-atom energy offsets jump with every
    optimizer step of an untrained model)."""
    final, start, ramp = cfg["energy_weight"], cfg["energy_weight_start"], cfg["energy_ramp_epochs"]
    if start is None or ramp <= 0 or epoch >= ramp:
        return final
    return start * (final / start) ** (epoch / ramp)


def evaluate(model, frames, dtype, batch_size, device="cpu") -> dict:
    """E MAE/RMSE (meV/atom) and F MAE/RMSE (meV/A) over frames, no augmentation."""
    de, df = [], []
    for b in range(0, len(frames), batch_size):
        chunk = frames[b:b + batch_size]
        e, f, e_ref, f_ref, n = predict(model, chunk, None, dtype, False, device)
        de.append(((e.detach().double() - e_ref) / n).cpu().numpy())
        df.append((f.detach().double() - f_ref).cpu().numpy().ravel())
    de, df = np.concatenate(de) * 1e3, np.concatenate(df) * 1e3
    return {"energy_mae_meV_per_atom": float(np.abs(de).mean()),
            "energy_rmse_meV_per_atom": float(np.sqrt((de ** 2).mean())),
            "forces_mae_meV_per_A": float(np.abs(df).mean()),
            "forces_rmse_meV_per_A": float(np.sqrt((df ** 2).mean())),
            "frames": len(frames)}


def _initialize_from(model, config: dict, elements: list[int], split: dict) -> None:
    """Weights (baseline and energy scale included) from another run's checkpoint.pt."""
    path, epoch = config["init"]["checkpoint"], config["init"]["epoch"]
    saved = torch.load(path, weights_only=False, map_location="cpu")
    if not isinstance(saved, dict) or "config" not in saved or "state" not in saved:
        raise ValueError(f"[init] checkpoint {path} is not a checkpoint.pt of symprobe train")
    if saved["config"]["model"] != config["model"]:
        raise ValueError(f"[init] checkpoint {path} has model hyperparameters "
                         f"{saved['config']['model']}, this config {config['model']}")
    if epoch is not None and saved["state"]["epoch"] != epoch:
        raise ValueError(f"[init] checkpoint {path} is at epoch {saved['state']['epoch']}, "
                         f"the config expects epoch {epoch}")
    if saved["split"] != split:  # else test frames may have been trained on
        raise ValueError(f"[init] checkpoint {path} was trained with another data split")
    index = saved["model"]["species_index"]
    trained = (index >= 0).nonzero().flatten().tolist()
    if trained != elements:
        raise ValueError(f"[init] checkpoint {path} was trained on elements Z={trained}, "
                         f"the data has Z={elements}")
    model.load_state_dict(saved["model"])
    print(f"initialised from {os.path.normpath(path)} (epoch {saved['state']['epoch']})")


def train(config_path: str, max_epochs: int | None = None, progress: bool = True,
          max_minutes: float | None = None) -> dict:
    """Runs (or resumes) the training described by config_path. `max_epochs` stops after that
    many epochs of this call, `max_minutes` after the first epoch that ends past that many
    minutes of this call (batch jobs with a wall-time limit: leave one epoch of margin); the
    checkpoint allows resuming, with the same result as an uninterrupted run.
    Returns the report (final errors per split) once all epochs are done, else the status."""
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"max_minutes must be a positive number of minutes, got {max_minutes}")
    started = time.perf_counter()  # the call's wall time, data loading included
    config = load_config(config_path)
    data, hyp, tcfg, out = config["data"], config["model"], config["training"], config["output"]
    run = out["directory"]
    os.makedirs(run, exist_ok=True)
    if tcfg["threads"]:
        torch.set_num_threads(int(tcfg["threads"]))
    dtype = {"float32": torch.float32, "float64": torch.float64}[tcfg["dtype"]]
    device = training_device(tcfg["device"])

    frames = read_frames(data["path"], hyp["cutoff"], data["energy_key"], data["forces_key"])
    split = split_indices(len(frames), data["split"], data["seed"])
    elements = sorted({int(z) for f in frames for z in f.numbers.tolist()})
    checkpoint_path = os.path.join(run, "checkpoint.pt")

    torch.manual_seed(tcfg["seed"])
    model = PET(elements, **hyp).to(dtype).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tcfg["learning_rate"])
    state = {"epoch": 0, "best_validation": float("inf"), "seconds": 0.0}
    if os.path.exists(checkpoint_path):
        saved = torch.load(checkpoint_path, weights_only=False, map_location="cpu")
        if _portable(saved["config"]) != _portable(config) or saved["split"] != split:
            raise ValueError(f"{checkpoint_path} belongs to a different configuration or split; "
                             "use another [output] directory or remove the checkpoint")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        print(f"resuming {run} at epoch {state['epoch']}")
    elif config["init"]["checkpoint"]:
        _initialize_from(model, config, elements, split)
    else:
        baseline = fit_baseline([frames[i] for i in split["train"]], elements)
        model.baseline.copy_(torch.tensor(baseline))
        rms_force = torch.cat([frames[i].forces.flatten() for i in split["train"]]).pow(2).mean().sqrt()
        model.energy_scale.fill_(float(rms_force))  # eV (RMS force x 1 A)
    if state["epoch"] == 0:
        with open(os.path.join(run, "split.json"), "w") as f:
            json.dump({"seed": data["seed"], "source": _recorded_path(data["path"], run), **split}, f)
        shutil.copyfile(config_path, os.path.join(run, "config.toml"))
        # a fresh start (no checkpoint, e.g. reproducing a finished run in its committed
        # folder) begins a new log rather than appending to an old one
        open(os.path.join(run, "log.jsonl"), "w").close()

    train_frames = [frames[i] for i in split["train"]]
    val_frames = [frames[i] for i in split["validation"]]
    epochs_here = 0
    from tqdm import tqdm
    def time_left() -> bool:
        return max_minutes is None or time.perf_counter() - started < 60.0 * max_minutes

    while (state["epoch"] < tcfg["epochs"] and (max_epochs is None or epochs_here < max_epochs)
           and (epochs_here == 0 or time_left())):
        epoch = state["epoch"]
        t0 = time.perf_counter()
        lr = learning_rate(epoch, tcfg)
        w_energy = energy_weight(epoch, tcfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # everything random in an epoch derives from (seed, epoch): resume is exact. The
        # rotation of training frame k at this epoch is step epoch * n_train + k of the core's
        # random-rotation stream
        gen = torch.Generator().manual_seed(tcfg["seed"] * 1_000_003 + epoch)
        order = torch.randperm(len(train_frames), generator=gen).tolist()
        rotations = (random_rotations(len(train_frames), tcfg["seed"], epoch * len(train_frames),
                                      tcfg["inversion"])
                     if tcfg["augmentation"] else None)
        model.train()
        losses = []
        bs = tcfg["batch_size"]
        bar = tqdm(range(0, len(order), bs), desc=f"epoch {epoch + 1}/{tcfg['epochs']}",
                   disable=not progress, leave=False, file=sys.stdout)
        for b in bar:
            idx = order[b:b + bs]
            rot = rotations[idx] if rotations is not None else None
            e, f, e_ref, f_ref, n = predict(model, [train_frames[i] for i in idx], rot, dtype, True,
                                            device)
            loss_e = (((e.double() - e_ref) / n) ** 2).mean()
            loss_f = ((f.double() - f_ref) ** 2).mean()
            loss = w_energy * loss_e + tcfg["forces_weight"] * loss_f
            optimizer.zero_grad()
            loss.backward()
            if tcfg["grad_clip"] > 0:  # bounds the occasional huge step of a transformer
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses):.3e}",
                            F_rmse=f"{1e3 * math.sqrt(float(loss_f.detach())):.0f}meV/A")
        model.eval()
        val = evaluate(model, val_frames, dtype, bs, device) if val_frames else {}
        # fixed criterion across epochs (the training weight ramps)
        val_loss = (tcfg["energy_weight"] * (val["energy_rmse_meV_per_atom"] / 1e3) ** 2
                    + tcfg["forces_weight"] * (val["forces_rmse_meV_per_A"] / 1e3) ** 2
                    if val else float(np.mean(losses)))
        state["epoch"] = epoch + 1
        state["seconds"] += time.perf_counter() - t0
        entry = {"epoch": epoch + 1, "lr": lr, "energy_weight": w_energy,
                 "train_loss": float(np.mean(losses)),
                 "validation_loss": val_loss, **{f"validation_{k}": v for k, v in val.items()},
                 "seconds": state["seconds"]}
        # CPU tensors: a checkpoint written on a GPU loads anywhere
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if val_loss < state["best_validation"]:
            state["best_validation"] = val_loss
            torch.save({"model": weights, "epoch": epoch + 1},
                       os.path.join(run, "best.pt.tmp"))
            os.replace(os.path.join(run, "best.pt.tmp"), os.path.join(run, "best.pt"))
        saved = {"config": _recorded_config(config, run), "split": split, "model": weights,
                 "optimizer": optimizer.state_dict(), "state": state}
        torch.save(saved, checkpoint_path + ".tmp")
        os.replace(checkpoint_path + ".tmp", checkpoint_path)  # atomic: a kill never corrupts it
        with open(os.path.join(run, "log.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")
        if progress:
            v = (f"val E {val['energy_mae_meV_per_atom']:.2f} meV/atom, F "
                 f"{val['forces_mae_meV_per_A']:.1f} meV/A MAE" if val else "")
            print(f"epoch {epoch + 1:4d}  lr {lr:.2e}  loss {entry['train_loss']:.3e}  {v}  "
                  f"({state['seconds']:.0f} s)", flush=True)
        epochs_here += 1

    if state["epoch"] < tcfg["epochs"]:
        return {"status": "incomplete", "epoch": state["epoch"], "epochs": tcfg["epochs"]}
    return finish(run, model, frames, split, config, state)


def training_device(name: str) -> torch.device:
    """"cpu", "cuda", "cuda:N" or "auto" (CUDA when available, else CPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"[training] device must be cpu, cuda, cuda:N or auto, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"[training] device = {name!r}, but this torch has no CUDA device "
                         "(use cpu or auto)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"[training] device must be cpu, cuda, cuda:N or auto, got {name!r}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"[training] device = {name!r}, but there are only "
                         f"{torch.cuda.device_count()} CUDA devices")
    return device


def refit_baseline(model, frames: list[Frame]) -> np.ndarray:
    """Shifts the per-element baseline by the least-squares fit of the training energy residuals
    and returns the shift (eV per atom of each element). Forces never see a constant per-atom
    energy, and Adam moves the energy heads' output biases by ~learning rate x energy scale
    every step, so the trained model carries an arbitrary offset (tens of meV/atom in practice)
    that this removes exactly."""
    param = next(model.parameters())
    residuals = []
    with torch.no_grad():
        for f in frames:
            energy = model(f.numbers.to(param.device), f.centers.to(param.device),
                           f.neighbors.to(param.device), f.vectors.to(param.device, param.dtype))
            residuals.append(f.energy - float(energy.double().sum()))
    shift = np.linalg.lstsq(composition(frames, model.elements), np.array(residuals),
                            rcond=None)[0]
    model.baseline += torch.tensor(shift, dtype=model.baseline.dtype, device=model.baseline.device)
    return shift


def export_trained(model, path: str, config: dict, overwrite: bool = False) -> str:
    """The model file of a trained PET: a CPU file (the core moves it to a GPU on load) in the
    run's export dtype, with its name, description and hyperparameters."""
    model.cpu()
    export_dtype = {"float32": torch.float32, "float64": torch.float64}[config["output"]["export_dtype"]]
    return export_model(model, path, cutoff=model.cutoff, interaction_range=model.interaction_range,
                        elements=[element_symbol(z) for z in model.elements], dtype=export_dtype,
                        name=config["output"]["name"], description=config["output"]["description"],
                        overwrite=overwrite, hypers=config["model"], layers=len(model.layers),
                        features=model.atom_species.embedding_dim)


def export_run(run: str, path: str, overwrite: bool = False) -> str:
    """Exports a finished run (its config.toml and final.pt) with the current PET code, e.g. after
    a change of the code that keeps its results: the weights are the recorded ones."""
    config = load_config(os.path.join(run, "config.toml"))
    final = torch.load(os.path.join(run, "final.pt"), weights_only=False, map_location="cpu")
    index = final["model"]["species_index"]
    elements = [int(z) for z in sorted(torch.nonzero(index >= 0).flatten().tolist(), key=lambda z: int(index[z]))]
    model = PET(elements, **config["model"])
    model.load_state_dict(final["model"])
    return export_trained(model.eval(), path, config, overwrite=overwrite)


def finish(run, model, frames, split, config, state) -> dict:
    """Final report with the best-validation weights and a refitted baseline; the export, and
    the exported weights as final.pt."""
    best = torch.load(os.path.join(run, "best.pt"), weights_only=False, map_location="cpu")
    model.load_state_dict(best["model"])
    model.eval()
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    shift = refit_baseline(model, [frames[i] for i in split["train"]])
    report = {"best_epoch": best["epoch"], "epochs": state["epoch"],
              "train_seconds": state["seconds"], "torch_threads": torch.get_num_threads(),
              "baseline_shift_eV": dict(zip([element_symbol(z) for z in model.elements],
                                            shift.tolist()))}
    torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "epoch": best["epoch"], "baseline_shift_eV": shift.tolist()},
               os.path.join(run, "final.pt"))
    for name, idx in split.items():
        if idx:
            report[name] = evaluate(model, [frames[i] for i in idx], dtype,
                                    config["training"]["batch_size"], device)
    path = os.path.join(run, "model.pt")
    export_trained(model, path, config, overwrite=True)
    with open(os.path.join(run, "report.json"), "w") as f:  # the export, relative to the run
        json.dump({**report, "model": _recorded_path(path, run)}, f, indent=1)
    report["model"] = path  # the caller's path to the export
    for name in ("train", "validation", "test"):
        if name in report:
            r = report[name]
            print(f"{name:10s} E MAE {r['energy_mae_meV_per_atom']:.3f} meV/atom, RMSE "
                  f"{r['energy_rmse_meV_per_atom']:.3f}; F MAE {r['forces_mae_meV_per_A']:.1f} "
                  f"meV/A, RMSE {r['forces_rmse_meV_per_A']:.1f} ({r['frames']} frames)")
    print(f"exported {path}")
    return report
