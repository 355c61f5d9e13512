"""Energies of many structures through Model.compute's padded batches, one failure at a time.

Molecules are sorted by size and computed in padded batches (far faster than one call each);
periodic structures go one by one. A batch that raises is redone structure by structure, so
a bad structure gets its own error and the others their energies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._structures import Structure

#: atoms (padding included) per batch: big enough to amortise the call, small enough for the cache
BATCH_ATOMS = 4096


@dataclass
class Outcome:
    """What one structure gave: Hartree and Hartree/Angstrom, or an error message."""

    energy: float = float("nan")
    energy_std: float = float("nan")
    forces: np.ndarray | None = None
    error: str | None = None


def evaluate(model, structures: list[Structure], *, forces: bool = False) -> list[Outcome]:
    """One Outcome per structure, in order. Never raises for a structure's fault."""
    outcomes: list[Outcome | None] = [None] * len(structures)
    molecules = []
    for i, s in enumerate(structures):
        if s.error is not None:
            outcomes[i] = Outcome(error=s.error)
        elif s.cell is None:
            molecules.append(i)
        else:
            outcomes[i] = _single(model, s, forces)
    molecules.sort(key=lambda i: structures[i].natoms)
    start = 0
    while start < len(molecules):
        width = structures[molecules[start]].natoms
        stop = start + 1
        while stop < len(molecules):  # grow while the padded batch stays within BATCH_ATOMS
            width = structures[molecules[stop]].natoms
            if (stop - start + 1) * width > BATCH_ATOMS:
                break
            stop += 1
        group = molecules[start:stop]
        for i, outcome in zip(group, _batch(model, [structures[i] for i in group], forces)):
            outcomes[i] = outcome
        start = stop
    return outcomes


def _batch(model, group: list[Structure], forces: bool) -> list[Outcome]:
    if len(group) == 1:
        return [_single(model, group[0], forces)]
    width = max(s.natoms for s in group)
    numbers = np.full((len(group), width), -1, dtype=np.int64)
    positions = np.zeros((len(group), width, 3))
    for b, s in enumerate(group):
        numbers[b, : s.natoms] = s.numbers
        positions[b, : s.natoms] = s.positions
    try:
        result = model.compute(numbers, positions, forces=forces)
    except (ValueError, TypeError, MemoryError):
        return [_single(model, s, forces) for s in group]  # find which structure is at fault
    return [
        Outcome(
            float(result.energy[b]),
            float(result.energy_std[b]),
            result.forces[b, : s.natoms] if forces else None,
        )
        for b, s in enumerate(group)
    ]


def _single(model, s: Structure, forces: bool) -> Outcome:
    try:
        result = model.compute(s.numbers, s.positions, s.cell, s.pbc, forces=forces)
    except (ValueError, TypeError, MemoryError) as err:
        return Outcome(error=f"{s.source}[{s.index}]: {' '.join(str(err).split())}")
    return Outcome(result.energy, result.energy_std, result.forces if forces else None)
