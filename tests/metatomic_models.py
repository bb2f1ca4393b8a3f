"""Metatomic models for the tests: metatrain's PET with small random weights, and a hand-written
pair model that reads the neighbour list's vectors (not the positions) and whose lists, units,
outputs and devices the tests choose."""
import copy
from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput,
                             NeighborListOptions, System)


def metatrain_pet(path, dtype=torch.float64, seed=0, cutoff=3.5, layers=2, direct=False):
    """metatrain's PET for H and O, width 16, `layers` message-passing layers (interaction range
    layers x cutoff), random weights large enough to give forces of ~0.1-1 eV/A; `direct` adds
    heads for non-conservative forces and stress, as PET-MAD has."""
    from metatrain.pet import PET
    from metatrain.utils.architectures import get_default_hypers
    from metatrain.utils.data import DatasetInfo
    from metatrain.utils.data.target_info import get_energy_target_info, get_generic_target_info
    torch.manual_seed(seed)
    hypers = copy.deepcopy(get_default_hypers("pet")["model"])
    hypers.update(d_pet=16, d_head=16, d_node=16, d_feedforward=32, num_heads=2,
                  num_attention_layers=1, num_gnn_layers=layers, cutoff=cutoff)
    targets = {"energy": get_energy_target_info("energy", {"quantity": "energy", "unit": "eV"})}
    if direct:
        for name, unit, rank, kind in (("non_conservative_forces", "eV/Angstrom", 1, "atom"),
                                       ("non_conservative_stress", "eV/Angstrom^3", 2, "system")):
            targets[name] = get_generic_target_info(name, {
                "quantity": "", "unit": unit, "type": {"cartesian": {"rank": rank}},
                "num_subtargets": 1, "sample_kind": kind})
    info = DatasetInfo(length_unit="Angstrom", atomic_types=[1, 8], targets=targets)
    model = PET(hypers, info)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    model.to(dtype).export().save(str(path))
    return str(path)


class PairModel(torch.nn.Module):
    """E = sum over pairs of a Morse-like term times (1 + b * (d_z / r)), the last factor not
    rotation-invariant: the energy depends on the pairs' orientation. Pair energies go half to
    each atom. Reads distances from the neighbour list's values only."""

    def __init__(self, cutoff: float, full_list: bool, length_scale: float, energy_scale: float,
                 output: str):
        super().__init__()
        self.options = NeighborListOptions(cutoff=cutoff, full_list=full_list, strict=True)
        self.full_list = full_list
        self.length_scale = length_scale  # model length unit per Angstrom
        self.energy_scale = energy_scale  # model energy unit per eV
        self.output = output

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.options]

    def forward(self, systems: List[System], outputs: Dict[str, ModelOutput],
                selected_atoms: Optional[Labels] = None) -> Dict[str, TensorMap]:
        values, samples = [], []
        per_atom = outputs[self.output].sample_kind == "atom"
        for index, system in enumerate(systems):
            nl = system.get_neighbor_list(self.options)
            pairs = nl.samples.values
            d = nl.values.reshape(-1, 3) / self.length_scale
            r = torch.linalg.norm(d, dim=1)
            cut = 0.5 * (1 + torch.cos(torch.pi * r * self.length_scale / self.options.cutoff))
            pair = cut * (torch.exp(-2 * (r - 1.2)) - 2 * torch.exp(-(r - 1.2))) * (1 + 0.3 * d[:, 2] / r)
            # a full list holds every pair twice
            weight = 0.25 if self.full_list else 0.5
            energy = torch.zeros(len(system), dtype=d.dtype, device=d.device)
            energy = energy.index_add(0, pairs[:, 0], weight * pair)
            energy = energy.index_add(0, pairs[:, 1], weight * pair)
            atoms = torch.arange(len(system), device=d.device, dtype=torch.int32)
            if per_atom:
                values.append(self.energy_scale * energy.unsqueeze(1))
                samples.append(torch.stack([torch.full_like(atoms, index), atoms], dim=1))
            else:
                values.append(self.energy_scale * energy.sum().reshape(1, 1))
                samples.append(torch.tensor([[index]], dtype=torch.int32, device=d.device))
        names = ["system", "atom"] if per_atom else ["system"]
        block = TensorBlock(values=torch.cat(values), samples=Labels(names, torch.cat(samples)),
                            components=[], properties=Labels(["energy"], torch.tensor([[0]], device=values[0].device)))
        return {self.output: TensorMap(Labels("_", torch.tensor([[0]], device=values[0].device)), [block])}


def pair_model(path, full_list=True, length_unit="Angstrom", energy_unit="eV", output="energy",
               devices=("cpu",), cutoff_angstrom=3.0, types=(1, 8)):
    length_scale = {"Angstrom": 1.0, "nm": 0.1}[length_unit]
    energy_scale = {"eV": 1.0, "kcal/mol": 23.060547830619026}[energy_unit]
    module = PairModel(cutoff_angstrom * length_scale, full_list, length_scale, energy_scale,
                       output).to(torch.float64)
    capabilities = ModelCapabilities(
        outputs={output: ModelOutput(unit=energy_unit if output == "energy" else "", sample_kind="atom")},
        atomic_types=list(types), interaction_range=cutoff_angstrom * length_scale,
        length_unit=length_unit, supported_devices=list(devices), dtype="float64")
    AtomisticModel(module.eval(), ModelMetadata(name="pair test model"), capabilities).save(str(path))
    return str(path)
