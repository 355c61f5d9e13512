"""The prepared system: user input checked once, and everything the kernels need of it.

Model.compute's first stage: ``prepare`` validates numbers, positions, cell and pbc (every
error names the argument), finds the neighbour pairs of each structure and lays the atoms
of all structures out as one list, grouped by element for the networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate

#: Coincident atoms make the AEV gradient 0/0; closer than this (Angstrom) is an input error.
MIN_DISTANCE = 1e-6


@dataclass
class System:
    """One structure or a padded batch, validated, with its neighbour pairs (Angstrom)."""

    numbers: np.ndarray  # int64 [B, N], -1 = padding
    mask: np.ndarray  # bool [B, N], real atoms
    batched: bool  # the user passed a batch (results keep the leading axis)
    cells: np.ndarray  # float64 [B, 3, 3], rows are lattice vectors
    pbc: np.ndarray  # bool [3]
    species: np.ndarray  # int32 [A], species index of each real atom, structure after structure
    atom_counts: np.ndarray  # int64 [B], real atoms per structure
    counts: np.ndarray  # int64 [n_elements], atoms of each element over all structures
    rows: np.ndarray  # int64 [A], row of atom a in the element-grouped AEV matrix
    pairs: np.ndarray  # int64 [P, 2], indices into the A real atoms
    vectors: np.ndarray  # float64 [P, 3], r_j - r_i + image
    pair_bounds: np.ndarray  # int64 [B + 1], structure b owns pairs pair_bounds[b]:pair_bounds[b+1]

    @property
    def n_atoms(self) -> int:
        return len(self.species)

    def volumes(self) -> np.ndarray:
        """Cell volumes [B] (Angstrom^3) of a periodic system, for the stress."""
        if not self.pbc.any():
            raise ValueError("stress=True needs a periodic system (a cell and pbc)")
        volumes = np.abs(np.linalg.det(self.cells))
        if np.any(volumes < 1e-9):
            raise ValueError("stress=True needs a cell with non-zero volume")
        return volumes

    def scatter(self, values: np.ndarray) -> np.ndarray:
        """Per-atom values [A, ...] back to the user's layout: [N, ...] or [B, N, ...], zeros on padding."""
        out = np.zeros((*self.numbers.shape, *values.shape[1:]))
        out[self.mask] = values
        return out if self.batched else out[0]


def prepare(numbers, positions, cell, pbc, species_of: np.ndarray, neighbors, batch_neighbors) -> System:
    """Validate user input and find the pairs.

    species_of: the model's lookup from atomic number to species index (-1: unknown).
    neighbors: the NeighborList for a single structure (it may keep a Verlet list);
    batch_neighbors: the one for the structures of a batch (no skin: they differ).
    """
    nums, batched = _validate.numbers(numbers, species_of)
    mask = nums >= 0
    pos = _validate.positions(positions, nums.shape, batched, mask)
    cells, pbc_ = _validate.cell_and_pbc(cell, pbc, nums.shape[0], batched)
    atom_counts = mask.sum(axis=1)
    _validate.density(atom_counts, cells, pbc_)
    _validate.image_counts(pos, mask, cells, pbc_)
    species = species_of[nums[mask]]

    finder = neighbors if len(nums) == 1 else batch_neighbors
    pairs, vectors, offset = [], [], 0
    for b in range(len(nums)):
        p, _, v = finder.compute(pos[b][mask[b]], cells[b], pbc_)
        pairs.append(p + offset if offset else p)
        vectors.append(v)
        offset += atom_counts[b]
    pair_bounds = np.cumsum([0, *(len(p) for p in pairs)])
    pairs = np.concatenate(pairs) if len(pairs) > 1 else pairs[0]
    vectors = np.concatenate(vectors) if len(vectors) > 1 else vectors[0]
    if len(vectors):
        d2 = np.einsum("ij,ij->i", vectors, vectors)
        if d2.min() < MIN_DISTANCE**2:
            i, j = pairs[np.argmin(d2)]
            raise ValueError(f"positions: atoms {i} and {j} (or periodic images) are at the same place")

    # The networks want atoms grouped by element: row of atom a in the AEV matrix.
    order = np.argsort(species, kind="stable")
    rows = np.empty(len(species), dtype=np.int64)
    rows[order] = np.arange(len(species))
    counts = np.bincount(species, minlength=int(species_of.max()) + 1).astype(np.int64)
    return System(
        numbers=nums,
        mask=mask,
        batched=batched,
        cells=cells,
        pbc=pbc_,
        species=species,
        atom_counts=atom_counts,
        counts=counts,
        rows=rows,
        pairs=pairs,
        vectors=vectors,
        pair_bounds=pair_bounds,
    )
