"""The AEV layout: which columns of an AEV row belong to which element or element pair.

One row holds, in this order (TorchANI's and NeuroChem's layout, which the kernels in
cpp/aev.cpp and pyani/_numba/aev.py write):

    radial   [n_species][n_shf_r]                   neighbours of species s
    angular  [species pair][n_shf_a][n_shf_z]      pairs (a, b), a <= b, upper triangle row-major

The exporter sizes the first layers from it, the networks keep only the columns of the
elements present (pyani/_networks.py), and the test oracle fills it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AEVLayout:
    n_species: int
    n_radial: int  # radial shifts (ShfR)
    n_angular: int  # angular shifts times sections (ShfA x ShfZ) per species pair

    @classmethod
    def of(cls, aev: dict, n_species: int) -> AEVLayout:
        """The layout of a model's ``aev`` metadata (or NeuroChem constants) for n_species elements."""
        return cls(n_species, len(aev["shf_r"]), len(aev["shf_a"]) * len(aev["shf_z"]))

    @property
    def species_pairs(self) -> list[tuple[int, int]]:
        """Unordered species pairs (a <= b) in the order of the angular blocks."""
        return [(a, b) for a in range(self.n_species) for b in range(a, self.n_species)]

    @property
    def radial_length(self) -> int:
        return self.n_species * self.n_radial

    @property
    def length(self) -> int:
        """Columns of one AEV row."""
        return self.radial_length + len(self.species_pairs) * self.n_angular

    def radial(self, species: int) -> slice:
        """Columns of the radial block of neighbours of one species."""
        return slice(species * self.n_radial, (species + 1) * self.n_radial)

    def angular(self, a: int, b: int) -> slice:
        """Columns of the angular block of neighbour pairs of species a and b (either order)."""
        a, b = min(a, b), max(a, b)
        start = self.radial_length + self.species_pairs.index((a, b)) * self.n_angular
        return slice(start, start + self.n_angular)

    def columns(self, present) -> np.ndarray:
        """Columns that atoms of only the species in `present` can make non-zero, in order."""
        present = set(present)
        blocks = [self.radial(s) for s in sorted(present)]
        blocks += [self.angular(a, b) for a, b in self.species_pairs if a in present and b in present]
        return np.concatenate([np.arange(s.start, s.stop) for s in blocks]).astype(np.int64)
