"""What Model.compute returns, and the energy sums that make it (float64)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._system import System


@dataclass
class Result:
    """What ``Model.compute`` returns. Hartree and Angstrom throughout.

    For a batch every field gains a leading structure axis; padding atoms get zeros. For
    structures of different sizes (a list of ase.Atoms, ragged lists) the per-atom fields
    are lists of [N_b, ...] arrays instead, one per structure.
    """

    energy: float | np.ndarray
    """Total energy (Hartree): mean over ensemble members, self energies included."""
    member_energies: np.ndarray
    """Energy of each ensemble member (Hartree), [M] or [B, M]."""
    energy_std: float | np.ndarray
    """Standard deviation of the member energies (Hartree, ddof=1 as in TorchANI)."""
    forces: np.ndarray | None = None
    """-dE/dpositions (Hartree/Angstrom), [N, 3] or [B, N, 3]; None unless forces=True."""
    atomic_energies: np.ndarray | None = None
    """Per-atom energies (Hartree), self energies included, summing to ``energy``."""
    stress: np.ndarray | None = None
    """(1/V) dE/d(strain) (Hartree/Angstrom^3), [3, 3] or [B, 3, 3]; None unless stress=True."""
    member_forces: np.ndarray | None = None
    """Forces of each ensemble member (Hartree/Angstrom), [M, N, 3] or [B, M, N, 3];
    None unless member_forces=True."""
    forces_std: np.ndarray | None = None
    """Standard deviation of the members' forces, per component (Hartree/Angstrom, ddof=1),
    like ``forces``: the force counterpart of ``energy_std`` (TorchANI's force QBC takes
    the spread of the magnitudes instead: derive it from ``member_forces``)."""


def energies(
    system: System, member_atomic: np.ndarray, self_energies: np.ndarray, atomic: bool, counted=None, pair=None
) -> Result:
    """The energy fields of a Result from the networks' atomic energies [M, A] (float32,
    rows grouped by element) and the self energies per species (Hartree). counted: bool [A],
    the atoms whose energies the totals sum (None: all); atomic energies are given for all.
    pair: the pair potentials' PairTerms (pyani/_pair_potentials.py) or None; their energies
    (already weighted by counted) go to every member alike, so energy_std does not change."""
    # Float64 from here on: sums over many atoms keep their digits.
    member_atomic = member_atomic[:, system.rows].astype(np.float64)  # [M, A], atom order
    self_energy = self_energies[system.species]
    atomic_energies = member_atomic.mean(axis=0) + self_energy if atomic else None
    if counted is not None:
        member_atomic = member_atomic * counted
        self_energy = self_energy * counted
    if len(system.atom_counts) == 1:
        members = member_atomic.sum(axis=1)[None, :] + self_energy.sum()  # [1, M]
    else:
        starts = np.concatenate([[0], np.cumsum(system.atom_counts)[:-1]])
        members = np.add.reduceat(member_atomic, starts, axis=1).T  # [B, M]
        members += np.add.reduceat(self_energy, starts)[:, None]
    if pair is not None:
        members += pair.energies[:, None]
        if atomic:
            atomic_energies += pair.atomic
    # mean and std written out: numpy's own cost tens of microseconds per small molecule
    n_members = members.shape[1]
    energy = members.sum(axis=1) / n_members
    deviation = members - energy[:, None]
    std = np.sqrt((deviation * deviation).sum(axis=1) / max(n_members - 1, 1))
    batched = system.batched
    result = Result(
        energy=energy if batched else float(energy[0]),
        member_energies=members if batched else members[0],
        energy_std=std if batched else float(std[0]),
    )
    if atomic:
        result.atomic_energies = system.scatter(atomic_energies)
    return result
