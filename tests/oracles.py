"""Independent NumPy oracles for the tests: brute-force neighbours and a float64 AEV.

Deliberately written the slow, obvious way (explicit image enumeration, per-atom loops) so
they share no code or structure with the kernels they check.
"""

from __future__ import annotations

import itertools

import numpy as np


def image_range(cell: np.ndarray, pbc, cutoff: float) -> list[range]:
    """Lattice translations to try along each direction (0 only when not periodic)."""
    out = []
    inv = np.linalg.inv(cell) if np.all(pbc) else None
    for d in range(3):
        if not pbc[d]:
            out.append(range(0, 1))
            continue
        if inv is not None:
            spacing = 1.0 / np.linalg.norm(inv[:, d])
        else:  # partial pbc: the spacing of the periodic rows alone is not defined; be generous
            spacing = min(np.linalg.norm(cell[k]) for k in range(3) if pbc[k]) / 4
        n = int(np.ceil(cutoff / spacing)) + 2
        out.append(range(-n, n + 1))
    return out


def brute_force_pairs(positions, cell, pbc, cutoff):
    """Half list as a dict {(i, j, sx, sy, sz): vector} with the kernels' half-list rule."""
    positions = np.asarray(positions, dtype=np.float64)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    pbc = [False] * 3 if pbc is None else list(np.broadcast_to(pbc, 3))
    if not any(pbc):
        cell = np.eye(3)  # never used: all shifts are zero
    out = {}
    for shift in itertools.product(*image_range(cell, pbc, cutoff)):
        translation = np.asarray(shift, dtype=np.float64) @ cell
        vec = positions[None, :, :] - positions[:, None, :] + translation
        dist2 = np.einsum("ijk,ijk->ij", vec, vec)
        positive = shift > (0, 0, 0)
        for i, j in zip(*np.nonzero(dist2 < cutoff**2)):
            if i < j or (i == j and positive):
                out[(int(i), int(j), *shift)] = vec[i, j]
    return out


def pair_dict(pairs, shifts, vectors):
    """The kernels' output in the oracle's dict form (and a check that keys are unique)."""
    keys = [(int(i), int(j), int(a), int(b), int(c)) for (i, j), (a, b, c) in zip(pairs, shifts)]
    assert len(set(keys)) == len(keys), "duplicate pairs"
    return dict(zip(keys, np.asarray(vectors)))


def cutoff_function(r, rc, name=None, params=None):
    """TorchANI's cutoff functions at distances r < rc: "cosine" (None) or "smooth" with
    params {order, eps} (TorchANI's defaults 2 and 1e-10 for those left out)."""
    if name in (None, "cosine"):
        return 0.5 * np.cos(np.pi * r / rc) + 0.5
    if name == "smooth":
        params = {"order": 2, "eps": 1e-10, **(params or {})}
        return np.exp(1 - 1 / np.maximum(params["eps"], 1 - (r / rc) ** params["order"]))
    raise ValueError(f"no oracle for cutoff_fn {name!r}")


def reference_aev(positions, species, n_species, aev, cell=None, pbc=None):
    """Float64 AEVs [N, D] straight from the ANI formulas (TorchANI conventions), with the
    cutoff function the `aev` metadata names."""
    from pyani._layout import AEVLayout  # here: the other oracles also run where pyani is not installed

    rc_r, rc_a = aev["radial_cutoff"], aev["angular_cutoff"]
    shf_r, shf_a, shf_z = (np.asarray(aev[k]) for k in ("shf_r", "shf_a", "shf_z"))
    layout = AEVLayout.of(aev, n_species)

    def fc(r, rc):
        return cutoff_function(r, rc, aev.get("cutoff_fn"), aev.get("cutoff_fn_params"))

    n = len(positions)
    out = np.zeros((n, layout.length))
    neighbors = [[] for _ in range(n)]
    for (i, j, *_), v in brute_force_pairs(positions, cell, pbc, rc_r).items():
        neighbors[i].append((j, v))
        neighbors[j].append((i, -v))
    for i in range(n):
        for j, v in neighbors[i]:
            r = np.linalg.norm(v)
            s = species[j]
            out[i, layout.radial(s)] += 0.25 * np.exp(-aev["eta_r"] * (r - shf_r) ** 2) * fc(r, rc_r)
        close = [(j, v, np.linalg.norm(v)) for j, v in neighbors[i] if np.linalg.norm(v) < rc_a]
        for (j, vj, rj), (k, vk, rk) in itertools.combinations(close, 2):
            theta = np.arccos(0.95 * np.dot(vj, vk) / (rj * rk))
            f1 = 2 * ((1 + np.cos(theta - shf_z)) / 2) ** aev["zeta"]
            f2 = np.exp(-aev["eta_a"] * ((rj + rk) / 2 - shf_a) ** 2)
            term = np.outer(f2, f1).ravel() * fc(rj, rc_a) * fc(rk, rc_a)
            out[i, layout.angular(species[j], species[k])] += term
    return out


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def random_molecule(rng, n_atoms, elements=(1, 6, 7, 8), box=4.0, min_distance=0.95):
    """Random but not absurd H/C/N/O cluster: atoms at least `min_distance` apart."""
    positions = []
    while len(positions) < n_atoms:
        p = rng.uniform(0, box, 3)
        if all(np.linalg.norm(p - q) >= min_distance for q in positions):
            positions.append(p)
    return rng.choice(elements, n_atoms), np.array(positions)


def water_box(rng, per_side, spacing=3.1):
    """Waters on a jittered cubic grid, randomly oriented: (numbers, positions, cell)."""
    water = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
    numbers, positions = [], []
    for idx in np.ndindex(per_side, per_side, per_side):
        centre = (np.array(idx) + 0.5) * spacing + rng.uniform(-0.2, 0.2, 3)
        positions.append(water @ random_rotation(rng).T + centre)
        numbers += [8, 1, 1]
    return np.array(numbers), np.concatenate(positions), np.eye(3) * per_side * spacing


def padded_batch(molecules):
    """(numbers [B, N] padded with -1, positions [B, N, 3] padded with 0) of (numbers,
    positions) pairs, N the largest molecule."""
    width = max(len(z) for z, _ in molecules)
    numbers = np.full((len(molecules), width), -1)
    positions = np.zeros((len(molecules), width, 3))
    for b, (z, p) in enumerate(molecules):
        numbers[b, : len(z)] = z
        positions[b, : len(z)] = p
    return numbers, positions
