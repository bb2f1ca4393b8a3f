"""A point-edge transformer (PET-style): a non-equivariant model over raw Cartesian neighbour
vectors, written to the symprobe model contract.

Each message-passing layer runs a small transformer over every atom's neighbourhood: one token
for the atom and one per neighbour edge. Edge tokens are built from the raw vector (x, y, z) and Gaussians of |r|,
the neighbour's species and the neighbour's atom token of the previous layer. Attention weights
are multiplied by a smooth cutoff function of the edge length and renormalised, so a neighbour
crossing the cutoff enters and leaves continuously; per-edge ("bond") energies are multiplied by
the same function. Energy = sum over layers of atom-token and bond energies + a per-element
baseline. Nothing mixes different atoms' neighbourhoods except through the graph, so several
graphs can be evaluated in one call. Energies in eV, lengths in Angstrom.
"""
from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Tuple

import torch
from torch import nn


N_RADIAL = 16  # Gaussians in |r| beside the raw vector: sharp radial resolution learns fast
N_GROUPS = 8   # atoms with edges, in groups by neighbour count, each padded to its own widest


def cutoff_function(r: torch.Tensor, cutoff: float, width: float) -> torch.Tensor:
    """1 below cutoff - width, (1 + cos)/2 down to 0 at the cutoff (C1 smooth)."""
    x = torch.clamp((r - (cutoff - width)) / width, 0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(math.pi * x))


class Graph(NamedTuple):
    """What every layer reads of the geometry: the edges in group order (each group's edges one
    contiguous range, in the order of their tokens), their cutoff weights and features, and the
    atoms in groups, each group's tokens padded to its widest neighbourhood."""
    centers: torch.Tensor            # [E] of the edges in group order
    neighbors: torch.Tensor          # [E]
    fc: torch.Tensor                 # [E] cutoff function of each edge
    geometry: torch.Tensor           # [E, 3 + N_RADIAL] raw vector and Gaussians of |r|
    group_atoms: List[torch.Tensor]  # atoms of each group
    group_edges: List[int]           # number of edges of each group's atoms
    group_heads: List[torch.Tensor]  # token of each atom in its group's tokens [atoms x T]
    group_slots: List[torch.Tensor]  # token of each edge
    group_log_weights: List[torch.Tensor]  # [atoms, T]


class Block(nn.Module):
    """Pre-norm transformer block with cutoff-weighted attention over one neighbourhood."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int):
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.SiLU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
        # x: [A, T, d]; log_weights: [A, T], log of the cutoff weight (-inf for padding).
        # softmax(s + log w) = softmax(s) w / sum(softmax(s) w): the cutoff-weighted attention
        # with one [A, H, T, T] tensor kept for the backward pass instead of four
        a, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(a, t, 3, self.n_heads, self.d_head).unbind(2)
        h, dh = self.n_heads, self.d_head
        q = q.transpose(1, 2).reshape(a * h, t, dh)  # [A H, T, dh]
        k = k.transpose(1, 2).reshape(a * h, t, dh)
        v = v.transpose(1, 2).reshape(a * h, t, dh)
        # scale, product and weights in one kernel
        scores = torch.baddbmm(log_weights[:, None, :].expand(a, h, t).reshape(a * h, 1, t),
                               q, k.transpose(1, 2), alpha=1.0 / math.sqrt(dh))
        attention = torch.softmax(scores, dim=-1)
        mixed = torch.bmm(attention, v).view(a, h, t, dh).transpose(1, 2).reshape(a, t, d)
        x = x + self.out(mixed)
        return x + self.ff(self.norm2(x))


class Layer(nn.Module):
    def __init__(self, n_species: int, d_model: int, n_heads: int, d_ff: int, n_blocks: int):
        super().__init__()
        self.geometry = nn.Sequential(nn.Linear(3 + N_RADIAL, d_model), nn.SiLU(),
                                      nn.Linear(d_model, d_model))
        self.neighbor_species = nn.Embedding(n_species, d_model)
        self.neighbor_token = nn.Linear(d_model, d_model)
        self.blocks = nn.ModuleList([Block(d_model, n_heads, d_ff) for _ in range(n_blocks)])
        self.atom_energy = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model),
                                         nn.SiLU(), nn.Linear(d_model, 1))
        self.bond_energy = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model),
                                         nn.SiLU(), nn.Linear(d_model, 1))
        # an untrained model predicts the element baseline exactly
        for head in (self.atom_energy, self.bond_energy):
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def forward(self, s: torch.Tensor, atom: torch.Tensor, energies: torch.Tensor,
                graph: Graph) -> Tuple[torch.Tensor, torch.Tensor]:
        """New atom tokens from the tokens `atom` of the layer before, and this layer's energies
        (network units) added to `energies`."""
        # the neighbour's species and token enter through one per-atom table: one gather per edge
        table = self.neighbor_token(atom) + self.neighbor_species(s)
        edge = self.geometry(graph.geometry) + table[graph.neighbors]
        d = edge.shape[1]
        # each group's tokens written into, and read out of, one padded tensor in place
        atom_out = torch.zeros_like(atom)
        edge_out: List[torch.Tensor] = []
        # one split (its gradient one concatenation), not a full-size gradient per group's slice
        edge_in = torch.split(edge, graph.group_edges)
        for g in range(len(graph.group_atoms)):
            log_weights = graph.group_log_weights[g]
            n_tokens = log_weights.shape[0] * log_weights.shape[1]
            tokens = torch.zeros(n_tokens, d, dtype=edge.dtype, device=edge.device)
            tokens[graph.group_heads[g]] = atom[graph.group_atoms[g]]
            tokens[graph.group_slots[g]] = edge_in[g]
            tokens = tokens.view(log_weights.shape[0], log_weights.shape[1], d)
            for block in self.blocks:
                tokens = block(tokens, log_weights)
            tokens = tokens.reshape(n_tokens, d)
            atom_out[graph.group_atoms[g]] = tokens[graph.group_heads[g]]
            edge_out.append(tokens[graph.group_slots[g]])
        atom = atom_out
        energies = energies + self.atom_energy(atom).squeeze(-1)
        if len(edge_out) > 0:  # an empty graph has no group
            bonds = self.bond_energy(torch.cat(edge_out)).squeeze(-1) * graph.fc
            energies = energies.index_add(0, graph.centers, bonds)
        return atom, energies


class PET(nn.Module):
    __jit_unused_properties__ = ["interaction_range"]

    def __init__(self, elements: List[int], cutoff: float = 4.0, cutoff_width: float = 0.5,
                 d_model: int = 64, n_heads: int = 4, d_ff: int = 128, n_layers: int = 2,
                 n_blocks: int = 1):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError("d_model must be a multiple of n_heads")
        if not 0 < cutoff_width <= cutoff:
            raise ValueError("cutoff_width must lie in (0, cutoff] (Angstrom)")
        self.hypers: Dict[str, float] = {
            "cutoff": float(cutoff), "cutoff_width": float(cutoff_width), "d_model": float(d_model),
            "n_heads": float(n_heads), "d_ff": float(d_ff), "n_layers": float(n_layers),
            "n_blocks": float(n_blocks)}
        self.elements = list(elements)
        self.cutoff = float(cutoff)
        self.cutoff_width = float(cutoff_width)
        self.n_radial = N_RADIAL  # TorchScript reads attributes, not globals
        self.n_groups = N_GROUPS
        index = torch.full((119,), -1, dtype=torch.long)
        for k, z in enumerate(self.elements):
            index[z] = k
        self.register_buffer("species_index", index)
        # per-element energy baseline (eV), fitted by least squares before training; cast with
        # the model (a constant ~1e-5 eV rounding per element in float32) but added in float64
        self.register_buffer("baseline", torch.zeros(len(self.elements), dtype=torch.float64))
        # eV; the network's O(1) outputs are multiplied by it (set to the RMS force of the
        # training set times 1 A) so that learning starts at the right energy scale
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))
        self.atom_species = nn.Embedding(len(self.elements), d_model)
        self.layers = nn.ModuleList(
            [Layer(len(self.elements), d_model, n_heads, d_ff, n_blocks) for _ in range(n_layers)])

    @property
    def interaction_range(self) -> float:
        return self.cutoff * len(self.layers)

    def forward(self, species: torch.Tensor, centers: torch.Tensor, neighbors: torch.Tensor,
                vectors: torch.Tensor) -> torch.Tensor:
        s = self.species_index[species]
        graph = self._graph(s, centers, neighbors, vectors)
        atom = self.atom_species(s).to(vectors.dtype)
        energies = torch.zeros(species.shape[0], dtype=vectors.dtype, device=vectors.device)
        for layer in self.layers:
            atom, energies = layer(s, atom, energies, graph)
        # float64 even for a float32 model: baselines are ~100 eV per atom, and float32 sums
        # would round each atom to ~1e-5 eV, far above sub-meV rotational errors
        return (energies.to(torch.float64) * self.energy_scale.to(torch.float64)
                + self.baseline[s].to(torch.float64))

    @torch.jit.export
    def embed(self, species: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The node features [N, d_model] that enter the first layer, and the per-element
        baseline energies [N] (eV, float64): the layered form of forward (model contract)."""
        s = self.species_index[species]
        return self.atom_species(s), self.baseline[s].to(torch.float64)

    @torch.jit.export
    def layer(self, k: int, species: torch.Tensor, features: torch.Tensor, centers: torch.Tensor,
              neighbors: torch.Tensor, vectors: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Layer k: the node features after it [N, d_model] and its per-atom energies [N] (eV,
        float64), read from the features of the nodes before it. embed + all layers = forward."""
        s = self.species_index[species]
        graph = self._graph(s, centers, neighbors, vectors)
        energies = torch.zeros(species.shape[0], dtype=vectors.dtype, device=vectors.device)
        for i, layer in enumerate(self.layers):
            if i == k:
                atom, energies = layer(s, features, energies, graph)
                return atom, energies.to(torch.float64) * self.energy_scale.to(torch.float64)
        raise RuntimeError("layer index out of range")

    def _graph(self, s: torch.Tensor, centers: torch.Tensor, neighbors: torch.Tensor,
               vectors: torch.Tensor) -> Graph:
        n_atoms = s.shape[0]
        n_edges = centers.shape[0]
        r = torch.sqrt((vectors * vectors).sum(dim=1))
        fc = cutoff_function(r, self.cutoff, self.cutoff_width)
        # raw Cartesian vector + Gaussians of its length (0.5 A to the cutoff)
        centres = torch.linspace(0.5, self.cutoff, self.n_radial, dtype=vectors.dtype,
                                 device=vectors.device)
        sigma = (self.cutoff - 0.5) / (self.n_radial - 1)
        radial = torch.exp(-0.5 * ((r.unsqueeze(1) - centres) / sigma) ** 2)
        geometry = torch.cat([vectors, radial], dim=1)

        # Atoms in groups of similar neighbour counts, each group padded to its own widest
        # neighbourhood (token tensors [atoms, 1 + width, d]): atoms without edges (LAMMPS's
        # remote neighbours, a piece's halo) cost one token, not the widest neighbourhood.
        counts = torch.bincount(centers, minlength=n_atoms)
        by_count = torch.sort(counts, stable=True)[1]  # atoms, fewest neighbours first
        sorted_counts = counts[by_count]
        position = torch.empty_like(by_count)  # of each atom in by_count
        position[by_count] = torch.arange(n_atoms, device=centers.device)
        # rank of every edge among the edges of its centre (any edge order)
        order = torch.sort(centers, stable=True)[1]
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n_edges, device=centers.device)
        rank = rank - starts[centers]
        # groups end at the counts of equally spaced quantiles, and all atoms with one count
        # share a group: an atom's tensor shapes, and so its rounding, depend on the counts
        # alone, not on the order of the atoms (LAMMPS and the core number them differently)
        empty = int((sorted_counts == 0).sum().item())
        bounds = [0, empty] if empty > 0 else [0]
        for k in range(1, self.n_groups + 1):
            quantile = empty + (n_atoms - empty) * k // self.n_groups
            if quantile > bounds[-1]:
                bound = int((sorted_counts <= sorted_counts[quantile - 1]).sum().item())
                if bound > bounds[-1]:
                    bounds.append(bound)
        edge_position = position[centers]
        group_atoms: List[torch.Tensor] = []
        group_edges: List[torch.Tensor] = []
        group_heads: List[torch.Tensor] = []
        group_slots: List[torch.Tensor] = []
        group_log_weights: List[torch.Tensor] = []
        # attention weight of each token: 1 for the atom, the cutoff function for an edge, none
        # for padding; as a logarithm, with the cutoff function kept above 1e-30 (a normal
        # number in float32) so that an edge exactly at the cutoff has a finite gradient
        log_fc = torch.log(torch.clamp(fc, min=1e-30))
        for g in range(len(bounds) - 1):
            first, last = bounds[g], bounds[g + 1]
            width = int(sorted_counts[last - 1].item())
            edges = torch.nonzero((edge_position >= first) & (edge_position < last)).flatten()
            # token t of atom a at a * (1 + width) + t: the atom's own token first
            slot = (edge_position[edges] - first) * (width + 1) + 1 + rank[edges]
            slot, in_token_order = torch.sort(slot)
            edges = edges[in_token_order]
            log_weights = torch.zeros(((last - first) * (width + 1),), dtype=vectors.dtype,
                                      device=vectors.device)
            log_weights.view(last - first, width + 1)[:, 1:] = -math.inf
            log_weights[slot] = log_fc[edges]
            group_atoms.append(by_count[first:last])
            group_edges.append(edges)
            group_heads.append(torch.arange(last - first, device=centers.device) * (width + 1))
            group_slots.append(slot)
            group_log_weights.append(log_weights.view(last - first, width + 1))
        edges = torch.cat(group_edges) if len(group_edges) > 0 else order
        return Graph(centers[edges], neighbors[edges], fc[edges], geometry[edges], group_atoms,
                     [int(e.shape[0]) for e in group_edges], group_heads, group_slots,
                     group_log_weights)
