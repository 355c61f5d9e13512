"""TEMPORARY: the kernel-object interface on top of the old free functions (removed at merge)."""

from __future__ import annotations

import threading

import numpy as np


def objects(k):
    if hasattr(k, "NeighborList"):
        return k.NeighborList, k.AEVComputer

    class NeighborList:
        def __init__(self, cutoff, skin=0.0, n_threads=0):
            self.cutoff, self.skin, self.n_threads, self.builds = cutoff, skin, n_threads, 0
            self._kept = None
            self._lock = threading.Lock()

        def compute(self, positions, cell, pbc):
            if self.skin == 0:
                self.builds += 1
                return k.neighbor_list(positions, cell, pbc, self.cutoff, self.n_threads)
            key = (len(positions), cell.tobytes(), pbc.tobytes())
            with self._lock:
                kept = self._kept
            if kept is None or kept[0] != key or np.linalg.norm(positions - kept[1], axis=1).max() > self.skin / 2:
                pairs, shifts, _ = k.neighbor_list(positions, cell, pbc, self.cutoff + self.skin, self.n_threads)
                kept = (key, positions.copy(), pairs, shifts)
                with self._lock:
                    self._kept = kept
                    self.builds += 1
            _, _, pairs, shifts = kept
            vectors = positions[pairs[:, 1]] - positions[pairs[:, 0]] + shifts @ cell
            inside = np.einsum("ij,ij->i", vectors, vectors) < self.cutoff**2
            return pairs[inside], shifts[inside], vectors[inside]

    class AEVPass:
        def __init__(self, c, args, aev):
            self.c, self.args, self.aev = c, args, aev

        def backward(self, grad_aev, pair_bounds=None, forces=True, virial=False):
            species, pairs, vectors, rows, features = self.args
            gv = k.aev_backward(self.c.params, species, pairs, vectors, rows, grad_aev, self.c.n_threads, features,
                                scratch=self.c.scratch)
            f = k.pair_forces(len(species), pairs, gv) if forces else None
            w = None
            if virial:
                b = np.array([0, len(pairs)]) if pair_bounds is None else pair_bounds
                w = np.stack([vectors[s:e].T @ gv[s:e] for s, e in zip(b[:-1], b[1:])])
            return f, w

    class AEVComputer:
        def __init__(self, aev, n_species, n_threads=0, isa="auto"):
            self.params = k.make_params(aev, n_species)
            self.scratch = k.make_scratch()
            self.n_threads = n_threads
            self.length = self.params.length
            self.isa = isa

        @property
        def retained_bytes(self):
            return 0 if self.scratch is None else self.scratch.retained_bytes

        def forward(self, species, pairs, vectors, rows, n_rows, features=None, backward=False):
            aev = k.aev(self.params, species, pairs, vectors, rows, n_rows, self.n_threads, features,
                        scratch=self.scratch)
            return AEVPass(self, (species, pairs, vectors, rows, features), aev)

    return NeighborList, AEVComputer
