"""Reference values for pyani's tests, from float64 TorchANI 2.9.

    eval "$(bash ../shared/tools/setup_reference_env.sh)"
    $REF_PYTHON tests/data/make_fixtures.py

Writes tests/data/<model>/<system>.npz (see README.md in this folder for the keys). Needs
torch, torchani and ase (the reference venv has them); pyani's tests never import them.
Deterministic: rerunning gives the same numbers.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import torch
import torchani
from ase.build import molecule

torch.set_default_dtype(torch.float64)
HERE = Path(__file__).resolve().parent
INFO = {"ani-1x": "ani-1x_8x.info", "ani-1ccx": "ani-1ccx_8x.info", "ani-2x": "ani-2x_8x.info"}
HCNO = {1, 6, 7, 8}

#: Aspirin (C9H8O4), Angstrom: a sensible but unoptimised geometry.
ASPIRIN = (
    [6, 6, 6, 6, 6, 6, 6, 8, 8, 8, 6, 8, 6, 1, 1, 1, 1, 1, 1, 1, 1],
    [
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
    ],
)


def g2(name, seed=None, jitter=0.0):
    atoms = molecule(name)
    pos = atoms.positions.copy()
    if seed is not None:
        pos += np.random.default_rng(seed).normal(scale=jitter, size=pos.shape)
    return atoms.numbers.astype(np.int64), pos


def rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def waters_in_cell(cell, n_molecules, seed, z_extent=None, min_distance=1.5):
    """Waters inserted at random (seeded), no intermolecular atoms closer than min_distance."""
    rng = np.random.default_rng(seed)
    water = molecule("H2O").positions
    water -= water[0]
    positions = []
    for _ in range(n_molecules):
        for _ in range(20000):
            centre = rng.uniform(0, 1, 3) @ cell
            if z_extent is not None:
                centre[2] = rng.uniform(*z_extent)
            mol = water @ rotation(rng).T + centre
            if all(_min_image_distance(mol, other, cell) >= min_distance for other in positions):
                break
        else:
            raise RuntimeError("could not place a water molecule")
        positions.append(mol)
    return np.tile([8, 1, 1], n_molecules).astype(np.int64), np.concatenate(positions)


def _min_image_distance(a, b, cell):
    best = np.inf
    for shift in np.ndindex(3, 3, 3):
        t = (np.array(shift) - 1) @ cell
        d = np.linalg.norm(a[:, None, :] - (b[None, :, :] + t), axis=-1).min()
        best = min(best, d)
    return best


def check_min_distance(numbers, positions, cell=None, pbc=None, limit=0.9):
    if numbers.ndim == 2:
        for z, p in zip(numbers, positions):
            check_min_distance(z, p, cell, pbc, limit)
        return
    pos = positions[numbers > 0]
    shifts = [np.zeros(3)]
    if cell is not None:
        ranges = [range(-2, 3) if p else range(1) for p in pbc]
        shifts = [np.array(s) @ cell for s in itertools.product(*ranges)]
    for t in shifts:
        d = np.linalg.norm(pos[:, None, :] - pos[None, :, :] - t, axis=-1)
        if not np.any(t):
            d[np.diag_indices_from(d)] = np.inf
        assert d.min() >= limit, f"atoms {d.min():.3f} A apart"


def padded(molecules):
    """A batch: numbers [B, N] padded with -1, positions [B, N, 3] padded with 0."""
    n_max = max(len(z) for z, _ in molecules)
    numbers = np.full((len(molecules), n_max), -1, dtype=np.int64)
    positions = np.zeros((len(molecules), n_max, 3))
    for b, (z, p) in enumerate(molecules):
        numbers[b, : len(z)] = z
        positions[b, : len(z)] = p
    return numbers, positions


def systems():
    """name -> (numbers, positions, cell, pbc, which models)."""
    out = {}
    all_models = ("ani-1x", "ani-1ccx", "ani-2x")
    for name, g2name in (("methane", "CH4"), ("water", "H2O"), ("ethanol", "CH3CH2OH"), ("benzene", "C6H6")):
        out[name] = (*g2(g2name), None, None, all_models)
    out["acetic_acid"] = (*g2("CH3COOH", seed=1, jitter=0.05), None, None, all_models)
    out["aspirin"] = (np.array(ASPIRIN[0]), np.array(ASPIRIN[1]), None, None, all_models)

    out["batch"] = (*padded([g2("CH4"), g2("H2O"), g2("CH3CH2OH"), g2("C6H6")]), None, None, all_models)

    # 32 waters at ~1 g/cm3 (cubic 9.86 A); some molecules moved by a lattice vector.
    length = (32 * 18.015 / 0.60221) ** (1 / 3)
    cell = np.eye(3) * length
    numbers, positions = waters_in_cell(cell, 32, seed=2)
    positions[0:3] += cell[0]
    positions[9:12] -= cell[1] + 2 * cell[2]
    positions[30:33] += 3 * cell[2]
    out["water_box"] = (numbers, positions, cell, np.array([True] * 3), all_models)

    cell = np.array([[8.0, 0.0, 0.0], [2.0, 7.5, 0.0], [1.5, -1.0, 8.0]])
    numbers, positions = waters_in_cell(cell, 12, seed=3)
    out["triclinic"] = (numbers, positions, cell, np.array([True] * 3), all_models)

    cell = np.array([[7.0, 0.0, 0.0], [0.0, 7.0, 0.0], [0.0, 0.0, 20.0]])
    numbers, positions = waters_in_cell(cell, 10, seed=4, z_extent=(8.0, 11.0))
    out["slab"] = (numbers, positions, cell, np.array([True, True, False]), all_models)

    cell = np.array([[3.6, 0.0, 0.0], [0.4, 3.8, 0.0], [0.3, -0.2, 4.0]])
    numbers, positions = g2("H2CO")
    positions = positions - positions.mean(axis=0) + cell.sum(axis=0) / 2
    out["small_cell"] = (numbers, positions, cell, np.array([True] * 3), all_models)

    cell = np.array([[9.0, 0.0, 0.0], [1.5, 8.5, 0.0], [-1.0, 2.0, 9.5]])
    numbers, positions = waters_in_cell(cell, 8, seed=5)
    out["mixed_pbc"] = (numbers, positions, cell, np.array([True, False, True]), all_models)

    only_2x = ("ani-2x",)
    out["methanethiol"] = (*g2("CH3SH"), None, None, only_2x)
    out["chloromethane"] = (*g2("CH3Cl"), None, None, only_2x)
    mols = [g2("CH3SH"), g2("CH3Cl"), g2("CF4"), g2("SO2"), g2("SH2"), g2("CH3COF"), g2("C4H4S")]
    out["ani2x_molecules"] = (*padded(mols), None, None, only_2x)
    return out


def equivalent_periodic_cell(cell, pbc, length=200.0):
    """A fully periodic cell with the same periodic rows; non-periodic rows replaced by long
    vectors orthogonal to the periodic ones, so no atom meets an image along them.

    TorchANI 2.9's partial-pbc path is wrong as soon as the periodic vectors are not aligned
    with the axes (a slab rotated by 10 degrees about x changes its energy by 0.39 Ha), while
    its fully periodic path is right; partial-pbc references are made through this cell.
    """
    periodic = [cell[d] for d in range(3) if pbc[d]]
    if len(periodic) == 2:
        normals = [np.cross(*periodic)]
    else:
        a = periodic[0]
        e = np.eye(3)[np.argmin(np.abs(a))]
        n1 = np.cross(a, e)
        normals = [n1, np.cross(a, n1)]
    out = cell.copy()
    for d, n in zip([d for d in range(3) if not pbc[d]], normals):
        out[d] = length * n / np.linalg.norm(n)
    return out


def reference(model, numbers, positions, cell, pbc):
    batched = numbers.ndim == 2
    species = torch.tensor(numbers if batched else numbers[None])
    coords = torch.tensor(positions if batched else positions[None], requires_grad=True)
    kwargs = {}
    eps = torch.zeros(3, 3, requires_grad=True)
    if cell is not None:
        strain = torch.eye(3) + eps
        ref_cell = cell if pbc.all() else equivalent_periodic_cell(cell, pbc)
        kwargs = {"cell": torch.tensor(ref_cell) @ strain, "pbc": torch.tensor([True, True, True])}
        coords_in = coords @ strain
    else:
        coords_in = coords
    energy = model((species, coords_in), **kwargs).energies
    grads = torch.autograd.grad(energy.sum(), [coords, eps] if cell is not None else [coords])
    members = model((species, coords_in.detach()), **kwargs, ensemble_values=True).energies  # [M, B]
    atomic = model((species, coords_in.detach()), **kwargs, atomic=True).energies  # [B, N]
    mask = species >= 0
    out = {
        "numbers": numbers,
        "positions": positions,
        "energy": energy.detach().numpy(),
        "forces": (-grads[0] * mask[..., None]).detach().numpy(),
        "member_energies": members.detach().numpy().T,
        "atomic_energies": (atomic * mask).detach().numpy(),
    }
    if cell is not None:
        out["cell"] = cell
        out["pbc"] = pbc
        if pbc.all():
            # Partial pbc: the equivalent cell has another volume and other strain
            # derivatives; pyani's slab stress is checked by finite differences instead.
            out["stress"] = grads[1].numpy() / abs(np.linalg.det(cell))
    if not batched:
        for key in ("energy", "forces", "member_energies", "atomic_energies"):
            out[key] = out[key][0]
        if len(numbers) <= 40:
            elem = torch.tensor([[model.symbols.index(torchani.utils.PERIODIC_TABLE[z]) for z in numbers]])
            c = None if cell is None else torch.tensor(kwargs["cell"].detach())
            p = None if cell is None else kwargs["pbc"]
            out["aev"] = model.aev_computer(elem, torch.tensor(positions[None]), c, p)[0].detach().numpy()
    return out, energy


def check_forces(model, numbers, positions, cell, pbc, forces):
    """Central differences on two coordinates, so a sign slip cannot reach the data."""
    kwargs = {}
    if cell is not None:
        ref_cell = cell if pbc.all() else equivalent_periodic_cell(cell, pbc)
        kwargs = {"cell": torch.tensor(ref_cell), "pbc": torch.tensor([True, True, True])}
    batched = numbers.ndim == 2
    species = torch.tensor(numbers if batched else numbers[None])
    for flat in (0, positions.size // 2 + 1):
        idx = np.unravel_index(flat, positions.shape)
        if numbers[idx[:-1]] < 0:
            continue
        values = []
        for h in (1e-5, -1e-5):
            p = positions.copy()
            p[idx] += h
            coords = torch.tensor(p if batched else p[None])
            values.append(model((species, coords), **kwargs).energies.sum().item())
        fd = -(values[0] - values[1]) / 2e-5
        assert abs(fd - forces[idx]) <= 1e-5 * max(1.0, abs(fd)), (fd, forces[idx])


def main():
    root = Path(os.environ.get("TORCHANI_DATA_DIR", "")) / "Neurochem"
    if not (root / INFO["ani-1x"]).is_file():
        raise SystemExit('set TORCHANI_DATA_DIR: eval "$(bash ../shared/tools/setup_reference_env.sh)"')
    cases = systems()
    for name, info in INFO.items():
        model = torchani.neurochem.load_model_from_info_file(root / info).double()
        (HERE / name).mkdir(exist_ok=True)
        for system, (numbers, positions, cell, pbc, models) in cases.items():
            if name not in models:
                continue
            if name != "ani-2x":
                assert set(np.unique(numbers[numbers > 0])) <= HCNO, system
            check_min_distance(numbers, positions, cell, pbc)
            data, _ = reference(model, numbers, positions, cell, pbc)
            check_forces(model, numbers, positions, cell, pbc, data["forces"])
            np.savez_compressed(HERE / name / f"{system}.npz", **data)
            print(f"{name}/{system}: {np.count_nonzero(numbers > 0)} atoms, keys {sorted(data)}")


if __name__ == "__main__":
    main()
