"""Deterministic benchmark inputs: aspirin, drug-like H/C/N/O molecules, water boxes."""

from __future__ import annotations

import numpy as np

from pyani.quickstart import ASPIRIN_NUMBERS, ASPIRIN_POSITIONS

WATER_MASS = 18.015  # g/mol
AVOGADRO = 0.60221  # (g/cm^3) * A^3 per (g/mol)


def aspirin():
    return np.array(ASPIRIN_NUMBERS), np.array(ASPIRIN_POSITIONS, dtype=np.float64)


def _rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def water_box(n_molecules: int, seed: int = 0, density: float = 1.0):
    """Cubic periodic box of about ``n_molecules`` waters (a cube number of them) on a grid,
    random orientations, at ``density`` g/cm^3. Returns numbers, positions, cell."""
    n_side = max(1, round(n_molecules ** (1 / 3)))
    n = n_side**3
    length = (n * WATER_MASS / AVOGADRO / density) ** (1 / 3)
    rng = np.random.default_rng(seed)
    half = np.radians(104.52) / 2
    shape = np.array(
        [
            [0, 0, 0],
            [0.9572 * np.sin(half), 0.9572 * np.cos(half), 0],
            [-0.9572 * np.sin(half), 0.9572 * np.cos(half), 0],
        ]
    )
    grid = (np.indices((n_side,) * 3).reshape(3, -1).T + 0.5) * (length / n_side)
    rotations = np.stack([_rotation(rng) for _ in range(n)])
    positions = grid[:, None, :] + np.einsum("mij,aj->mai", rotations, shape)
    return np.tile([8, 1, 1], n), positions.reshape(-1, 3), np.eye(3) * length


def drug_like(rng, n_heavy: int):
    """A random acyclic H/C/N/O molecule: a self-avoiding walk of heavy atoms (1.45 A bonds,
    tetrahedral-ish angles), each filled up with hydrogens at 1.09 A."""
    while True:
        heavy = [np.zeros(3)]
        direction = rng.normal(size=3)
        ok = True
        for _ in range(n_heavy - 1):
            for _attempt in range(50):
                step = rng.normal(size=3)
                step -= 0.8 * direction * np.dot(step, direction) / np.dot(direction, direction)
                step *= 1.45 / np.linalg.norm(step)
                p = heavy[-1] + step
                if all(np.linalg.norm(p - q) > 2.3 for q in heavy[:-1]):
                    heavy.append(p)
                    direction = step
                    break
            else:
                ok = False
                break
        if ok:
            break
    elements = rng.choice([6, 6, 6, 6, 7, 8], n_heavy)
    valence = {6: 4, 7: 3, 8: 2}
    numbers, positions = list(elements), list(heavy)
    for i, p in enumerate(heavy):
        bonded = (i > 0) + (i < n_heavy - 1)
        for _ in range(valence[elements[i]] - bonded):
            for _attempt in range(100):
                v = rng.normal(size=3)
                h = p + 1.09 * v / np.linalg.norm(v)
                if all(np.linalg.norm(h - q) > 1.5 for j, q in enumerate(positions) if j != i):
                    numbers.append(1)
                    positions.append(h)
                    break
    return np.array(numbers), np.array(positions)


def drug_like_batch(n_molecules: int = 100, seed: int = 0, min_atoms: int = 12, max_atoms: int = 33):
    """Padded batch (numbers -1 on padding) of drug-like molecules with 12-33 atoms."""
    rng = np.random.default_rng(seed)
    molecules = []
    while len(molecules) < n_molecules:
        z, p = drug_like(rng, int(rng.integers(4, 12)))
        if min_atoms <= len(z) <= max_atoms:
            molecules.append((z, p))
    width = max(len(z) for z, _ in molecules)
    numbers = np.full((n_molecules, width), -1)
    positions = np.zeros((n_molecules, width, 3))
    for b, (z, p) in enumerate(molecules):
        numbers[b, : len(z)] = z
        positions[b, : len(z)] = p
    return numbers, positions
