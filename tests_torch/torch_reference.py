"""TorchANI float64 references and random structures for the export tests. TorchANI's NeuroChem
files come from $TORCHANI_DATA_DIR (../shared/tools/setup_reference_env.sh)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


def neurochem_dir() -> Path:
    """$TORCHANI_DATA_DIR/Neurochem, which must hold ani-2x_8x (set by setup_reference_env.sh)."""
    data = os.environ.get("TORCHANI_DATA_DIR")
    assert data, 'TORCHANI_DATA_DIR is not set (eval "$(bash ../shared/tools/setup_reference_env.sh)")'
    path = Path(data) / "Neurochem"
    assert (path / "ani-2x_8x.info").is_file(), f"no ANI-2x NeuroChem files in {path}"
    return path


def round_to_float32(model) -> None:
    """Parameters rounded to float32 values (pyani's model files store float32 weights), in float64."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.float().double())


def random_molecule(rng, n_atoms, numbers, box=4.5, min_distance=0.95):
    """Atoms of the given atomic numbers at random, at least `min_distance` apart."""
    positions = []
    while len(positions) < n_atoms:
        p = rng.uniform(0, box, 3)
        if all(np.linalg.norm(p - q) >= min_distance for q in positions):
            positions.append(p)
    return rng.choice(numbers, n_atoms), np.array(positions)


def random_box(rng, n_atoms, numbers, length=9.0, min_distance=1.0):
    """A periodic, slightly triclinic box of random atoms: (numbers, positions, cell)."""
    cell = np.diag([length, length * 1.05, length * 0.95]) + rng.uniform(-0.4, 0.4, (3, 3)) * (1 - np.eye(3))
    positions = []
    while len(positions) < n_atoms:
        p = rng.uniform(0, 1, 3) @ cell
        if all(_minimum_image(p - q, cell) >= min_distance for q in positions):
            positions.append(p)
    return rng.choice(numbers, n_atoms), np.array(positions), cell


def _minimum_image(d, cell):
    frac = np.linalg.solve(cell.T, d)
    shifts = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).reshape(3, -1).T
    return min(np.linalg.norm((frac - np.round(frac) + s) @ cell) for s in shifts)


def torchani_reference(model, numbers, positions, cell=None):
    """TorchANI float64 (energy Ha, forces Ha/A, stress (1/V) dE/dstrain Ha/A^3 or None)."""
    species = torch.tensor(np.asarray(numbers)[None], dtype=torch.long)
    coords = torch.tensor(positions[None], dtype=torch.float64)
    if cell is None:
        coords.requires_grad_(True)
        energy = model((species, coords)).energies.sum()
        (grad,) = torch.autograd.grad(energy, coords)
        return float(energy.detach()), -grad[0].numpy(), None
    strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    coords.requires_grad_(True)
    deform = torch.eye(3, dtype=torch.float64) + strain
    cell_t = torch.tensor(cell, dtype=torch.float64)
    pbc = torch.tensor([True, True, True])
    energy = model((species, coords @ deform), cell=cell_t @ deform, pbc=pbc).energies.sum()
    grad, dstrain = torch.autograd.grad(energy, (coords, strain))
    volume = abs(np.linalg.det(cell))
    return float(energy.detach()), -grad[0].numpy(), dstrain.numpy() / volume
