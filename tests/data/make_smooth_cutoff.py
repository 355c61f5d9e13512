"""AEVs with TorchANI's smooth cutoff, from float64 TorchANI 2.9's own AEVComputer.

    eval "$(bash ../shared/tools/setup_reference_env.sh)"
    $REF_PYTHON tests/data/make_smooth_cutoff.py

Writes tests/data/smooth_cutoff.npz (keys in README.md beside this file). No weights are
involved: only ``torchani.aev.AEVComputer`` built with ``cutoff_fn="smooth"`` (and once with
a ``CutoffSmooth`` of other parameters). Needs torch, torchani and ase (the reference venv
has them); pyani's tests never import them. Deterministic: rerunning gives the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.build import molecule
from torchani.aev import AEVComputer
from torchani.cutoffs import CutoffSmooth

torch.set_default_dtype(torch.float64)
HERE = Path(__file__).resolve().parent
OUT = HERE / "smooth_cutoff.npz"
ELEMENTS_1X = (1, 6, 7, 8)
ELEMENTS_2X = (1, 6, 7, 8, 16, 9, 17)


def g2(name, seed=None, jitter=0.0):
    atoms = molecule(name)
    pos = atoms.positions.copy()
    if seed is not None:
        pos += np.random.default_rng(seed).normal(scale=jitter, size=pos.shape)
    return atoms.numbers.astype(np.int64), pos


def cluster(seed, n_atoms, elements, box, min_distance=0.9):
    """Random atoms in a box, at least min_distance apart: many distances near both cutoffs."""
    rng = np.random.default_rng(seed)
    positions = []
    while len(positions) < n_atoms:
        p = rng.uniform(0, box, 3)
        if all(np.linalg.norm(p - q) >= min_distance for q in positions):
            positions.append(p)
    return rng.choice(elements, n_atoms).astype(np.int64), np.array(positions)


def water_box(seed):
    """8 jittered waters in a 6.4 Angstrom cube, some moved out by a lattice vector."""
    rng = np.random.default_rng(seed)
    water = molecule("H2O").positions
    cell = np.eye(3) * 6.4
    positions = []
    for idx in np.ndindex(2, 2, 2):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        centre = (np.array(idx) + 0.5) * 3.2 + rng.uniform(-0.3, 0.3, 3)
        positions.append(water @ (q * np.sign(np.diag(r))).T + centre)
    positions = np.concatenate(positions)
    positions[:3] += cell[0]
    positions[6:9] -= 2 * cell[2]
    return np.tile([8, 1, 1], 8).astype(np.int64), positions, cell


def constants(computer):
    """The AEV constants as pyani's model metadata names them."""
    radial, angular = computer.radial, computer.angular
    fn = radial.cutoff_fn
    return {
        "radial_cutoff": float(radial.cutoff),
        "angular_cutoff": float(angular.cutoff),
        "eta_r": float(radial.eta.item()),
        "shf_r": radial.shifts.numpy(),
        "eta_a": float(angular.eta.item()),
        "zeta": float(angular.zeta.item()),
        "shf_a": angular.shifts.numpy(),
        "shf_z": angular.sections.numpy(),
        "order": fn.order,
        "eps": fn.eps,
    }


def main():
    # The terms keep their constants in float32 buffers whatever the default dtype: .double()
    # as for TorchANI's float64 models (the constants stored below are those float32 values).
    variants = {
        "1x": (AEVComputer.like_1x(cutoff_fn="smooth").double(), ELEMENTS_1X),
        "2x": (AEVComputer.like_2x(cutoff_fn="smooth").double(), ELEMENTS_2X),
        "1x_order4": (AEVComputer.like_1x(cutoff_fn=CutoffSmooth(order=4, eps=1e-3)).double(), ELEMENTS_1X),
    }
    systems = {
        "1x": {
            "ethanol": (*g2("CH3CH2OH"), None),
            "benzene": (*g2("C6H6", seed=1, jitter=0.05), None),
            "cluster": (*cluster(2, 14, ELEMENTS_1X, 4.5), None),
            "water_box": water_box(3),
        },
        "2x": {
            "chloromethane": (*g2("CH3Cl"), None),
            "methanethiol": (*g2("CH3SH", seed=4, jitter=0.05), None),
            "cluster": (*cluster(5, 12, ELEMENTS_2X, 4.5), None),
        },
        "1x_order4": {
            "cluster": (*cluster(6, 14, ELEMENTS_1X, 4.5), None),
            "water_box": water_box(7),
        },
    }
    out = {}
    for variant, (computer, elements) in variants.items():
        for key, value in constants(computer).items():
            out[f"{variant}__{key}"] = np.asarray(value)
        out[f"{variant}__atomic_numbers"] = np.array(elements)
        for name, (numbers, positions, cell) in systems[variant].items():
            species = torch.tensor([[elements.index(z) for z in numbers]])
            coords = torch.tensor(positions[None])
            with torch.no_grad():
                if cell is None:
                    aev = computer(species, coords)
                else:
                    aev = computer(species, coords, torch.tensor(cell), torch.tensor([True, True, True]))
            assert aev.dtype == torch.float64 and computer.radial.shifts.dtype == torch.float64
            prefix = f"{variant}__{name}__"
            out[prefix + "numbers"] = numbers
            out[prefix + "positions"] = positions
            if cell is not None:
                out[prefix + "cell"] = cell
            out[prefix + "aev"] = aev[0].numpy()
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(out)} arrays)")


if __name__ == "__main__":
    main()
