"""Hessians from the analytic forces, by central differences with a small step.

H[i, j] = d^2E / dx_i dx_j = -dF_j / dx_i, from forces at x +- h along each coordinate. ANI's
activation (CELU) has a second derivative that jumps where a neuron's input crosses zero, and
a big network has such kinks everywhere: a difference whose stencil straddles one is off, so
the step is as small as the precision allows (1e-3 Angstrom gave Hessian errors of 7e-3
Ha/A^2 on water, 1e-4 Angstrom 1.6e-4). All 6N displaced copies are one padded batch, so a
molecule's Hessian is one call of ``compute``.
"""

from __future__ import annotations

import numpy as np

#: Displacement (Angstrom) by model precision: the float64 forces allow a step whose stencil
#: rarely meets a kink; float32 forces would drown in their own rounding below ~3e-5.
STEP = {"float64": 1e-6, "float32": 3e-5}

#: Structures per compute call: bounds the memory of big molecules' Hessians.
BATCH = 512


def hessian(model, numbers, positions, cell=None, pbc=None, step: float | None = None) -> np.ndarray:
    """Hessian [3N, 3N] (Hartree/Angstrom^2) of one structure, symmetrised."""
    numbers = np.asarray(numbers)
    positions = np.asarray(positions, dtype=np.float64)
    if numbers.ndim != 1 or positions.shape != (len(numbers), 3):
        raise ValueError("hessian: numbers must have shape (n_atoms,) and positions (n_atoms, 3)")
    step = STEP[model.precision] if step is None else step
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive length in Angstrom, got {step}")
    n = 3 * len(numbers)
    # displaced[k, c]: positions with coordinate c moved by -h (k = 0) or +h (k = 1)
    displaced = np.repeat(positions.reshape(1, 1, n), 2 * n, axis=0).reshape(2, n, n)
    displaced[0, np.arange(n), np.arange(n)] -= step
    displaced[1, np.arange(n), np.arange(n)] += step
    structures = displaced.reshape(2 * n, -1, 3)
    forces = np.empty((2 * n, n))
    for start in range(0, 2 * n, BATCH):
        batch = structures[start : start + BATCH]
        result = model.compute(np.broadcast_to(numbers, (len(batch), len(numbers))), batch, cell, pbc)
        forces[start : start + BATCH] = result.forces.reshape(len(batch), n)
    forces = forces.reshape(2, n, n)
    h = -(forces[1] - forces[0]) / (2 * step)
    return 0.5 * (h + h.T)
