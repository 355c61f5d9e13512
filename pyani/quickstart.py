"""Quickstart: energy and forces of a molecule and of a periodic water box.

pyani-quickstart [--model ani-1ccx] [--backend auto]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import pyani

#: Aspirin (acetylsalicylic acid, C9H8O4), Angstrom.
ASPIRIN_NUMBERS = [6, 6, 6, 6, 6, 6, 6, 8, 8, 8, 6, 8, 6, 1, 1, 1, 1, 1, 1, 1, 1]
ASPIRIN_POSITIONS = [
    [1.2333, 0.5540, 0.7792],
    [-0.0580, 1.0820, 0.7010],
    [-1.0670, 0.3940, 0.0340],
    [-0.7880, -0.8250, -0.5600],
    [0.5000, -1.3510, -0.4800],
    [1.5090, -0.6630, 0.1870],
    [-1.0580, 2.3770, 1.3180],
    [-2.0420, 2.6930, 0.6700],
    [-0.8940, 2.9340, 2.4800],
    [-2.3140, 0.9260, 0.0880],
    [-3.2830, 0.4080, -0.7600],
    [-3.0320, -0.4050, -1.6530],
    [-4.6030, 0.9300, -0.4800],
    [2.0160, 1.0920, 1.2990],
    [-1.5560, -1.3720, -1.0950],
    [0.7100, -2.3080, -0.9530],
    [2.5150, -1.0690, 0.2510],
    [-1.4810, 3.6380, 2.6550],
    [-5.2800, 0.4740, -1.2110],
    [-4.9470, 0.7460, 0.5400],
    [-4.6250, 2.0130, -0.6350],
]


def water_box(n_side: int = 4, density: float = 1.0):
    """A cubic box of n_side^3 water molecules on a grid (density in g/cm^3)."""
    n = n_side**3
    length = (n * 18.015 / 0.60221 / density) ** (1 / 3)  # Angstrom
    grid = (np.indices((n_side,) * 3).reshape(3, -1).T + 0.5) * (length / n_side)
    # O at the grid point, H at 0.9572 A with a 104.52 degree angle.
    half = np.radians(104.52) / 2
    shape = np.array(
        [
            [0, 0, 0],
            [0.9572 * np.sin(half), 0.9572 * np.cos(half), 0],
            [-0.9572 * np.sin(half), 0.9572 * np.cos(half), 0],
        ]
    )
    positions = (grid[:, None, :] + shape[None]).reshape(-1, 3)
    return np.tile([8, 1, 1], n), positions, np.eye(3) * length


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default="ani-1ccx", help="ani-1x, ani-1ccx, or a .onnx/.info path")
    parser.add_argument("--backend", default="auto", choices=["auto", "cpp", "numba"])
    args = parser.parse_args(argv)

    model = pyani.load(args.model, backend=args.backend)
    print(model)
    r = model.compute(ASPIRIN_NUMBERS, ASPIRIN_POSITIONS)
    start = time.perf_counter()
    for _ in range(20):
        model.compute(ASPIRIN_NUMBERS, ASPIRIN_POSITIONS)
    ms = (time.perf_counter() - start) / 20 * 1e3
    print(f"aspirin (21 atoms): E = {r.energy:.8f} Ha  (ensemble std {r.energy_std * 1e3:.3f} mHa)")
    print(f"  max |F| = {np.abs(r.forces).max():.6f} Ha/A, {ms:.2f} ms per energy+forces call")

    numbers, positions, cell = water_box()
    r = model.compute(numbers, positions, cell, stress=True)
    print(f"water box ({len(numbers)} atoms, periodic {cell[0, 0]:.3f} A cube): E = {r.energy:.6f} Ha")
    pressure = -np.trace(r.stress) / 3  # Hartree/Angstrom^3; 1 Ha/A^3 = 4359.74 GPa
    print(f"  max |F| = {np.abs(r.forces).max():.6f} Ha/A, pressure = {pressure * 4359.74:.3f} GPa")


if __name__ == "__main__":
    main()
