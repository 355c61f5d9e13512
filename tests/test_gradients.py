"""Finite differences: the AEV backward (kernel level, in float64 through the NumPy oracle),
and forces and stress of whole models (through the float32 networks).

Directional derivatives along random directions (as NNPOps does): two energy calls per check.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import get_model
from oracles import random_molecule, reference_aev

from pyani import _backend

SKEWED = np.array([[6.0, 0.0, 0.0], [1.5, 5.5, 0.0], [-1.0, 1.2, 6.5]])
CASES = {
    "molecule": (None, None),
    "periodic": (SKEWED, np.array([True, True, True])),
    "slab": (SKEWED, np.array([True, True, False])),
    "small_cell": (SKEWED * 0.55, np.array([True, True, True])),
}


def linear_energy_and_gradient(backend, model, numbers, pos, cell, pbc, weights):
    """E = sum(weights * AEV): float64 oracle value, and the kernels' forces and virial."""
    k = _backend.resolve(backend)[1]
    kernel = k.AEVComputer(model.metadata["aev"], len(model.elements))
    species = np.searchsorted(model.atomic_numbers, numbers).astype(np.int32)
    cell_arg = np.zeros((3, 3)) if cell is None else cell
    pbc_arg = np.zeros(3, bool) if pbc is None else pbc
    pairs, _, vectors = k.NeighborList(model.cutoff).compute(pos, cell_arg, pbc_arg)
    rows = np.arange(len(numbers), dtype=np.int64)
    run = kernel.forward(species, pairs, vectors, rows, len(numbers), backward=True)
    forces, virial = run.backward(weights.astype(np.float32), forces=True, virial=True)
    assert virial.shape == (1, 3, 3)
    virial = virial[0]

    def energy(p, c=cell):
        return float(np.sum(weights * reference_aev(p, species, len(model.elements), model.metadata["aev"], c, pbc)))

    return energy, forces, virial


@pytest.mark.parametrize("case", CASES)
def test_aev_backward_matches_finite_differences(backend, case):
    model = get_model("ani-1x", backend)
    cell, pbc = CASES[case]
    rng = np.random.default_rng(20)
    numbers, pos = random_molecule(rng, 8, box=3.5)
    # float32-representable weights, so the kernel sees exactly what the oracle uses
    weights = rng.normal(size=(8, 384)).astype(np.float32).astype(np.float64)
    energy, forces, virial = linear_energy_and_gradient(backend, model, numbers, pos, cell, pbc, weights)
    assert np.abs(forces).max() > 1e-2
    h = 1e-5
    for _ in range(3):
        u = rng.normal(size=pos.shape)
        fd = (energy(pos + h * u) - energy(pos - h * u)) / (2 * h)
        np.testing.assert_allclose(-np.sum(forces * u), fd, rtol=1e-6, atol=1e-8)
    if cell is not None:
        for _ in range(2):
            eps = rng.normal(size=(3, 3))
            eps = 0.5 * (eps + eps.T)
            plus, minus = np.eye(3) + h * eps, np.eye(3) - h * eps
            fd = (energy(pos @ plus, cell @ plus) - energy(pos @ minus, cell @ minus)) / (2 * h)
            np.testing.assert_allclose(np.sum(virial * eps), fd, rtol=1e-6, atol=1e-8)


def test_virial_per_structure_sums_its_pairs(backend):
    """pair_bounds splits the virial by structure: two copies of one periodic system, one
    scaled, each get their own virial, equal to that of the system alone."""
    model = get_model("ani-1x", backend)
    k = _backend.resolve(backend)[1]
    kernel = k.AEVComputer(model.metadata["aev"], len(model.elements))
    rng = np.random.default_rng(22)
    numbers, pos = random_molecule(rng, 8, box=3.5)
    cell, pbc = CASES["periodic"]
    species = np.searchsorted(model.atomic_numbers, numbers).astype(np.int32)
    weights = rng.normal(size=(8, 384)).astype(np.float32)
    alone, both_pairs, both_vectors = [], [], []
    for b, scale in enumerate((1.0, 1.1)):
        pairs, _, vectors = k.NeighborList(model.cutoff, 0.0, 0).compute(pos * scale, cell * scale, pbc)
        run = kernel.forward(species, pairs, vectors, np.arange(8), 8, backward=True)
        forces, virial = run.backward(weights, forces=True, virial=True)
        alone.append((forces, virial[0]))
        both_pairs.append(pairs + 8 * b)
        both_vectors.append(vectors)
    bounds = np.cumsum([0, *(len(p) for p in both_pairs)])
    run = kernel.forward(
        np.tile(species, 2), np.concatenate(both_pairs), np.concatenate(both_vectors), np.arange(16), 16, backward=True
    )
    forces, virial = run.backward(np.tile(weights, (2, 1)), bounds, forces=True, virial=True)
    assert virial.shape == (2, 3, 3) and np.abs(virial).max() > 1e-3
    for b in range(2):
        np.testing.assert_allclose(forces[8 * b : 8 * b + 8], alone[b][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(virial[b], alone[b][1], rtol=1e-12, atol=1e-14)
    none, only = run.backward(np.tile(weights, (2, 1)), bounds, forces=False, virial=True)
    assert none is None
    np.testing.assert_array_equal(only, virial)
    for bad in ([0, bounds[-1] + 1], [5, 3], [-1, 0]):
        with pytest.raises(ValueError, match="pair_bounds"):
            run.backward(np.tile(weights, (2, 1)), np.array(bad), virial=True)
    no_backward = kernel.forward(species, both_pairs[0], both_vectors[0], np.arange(8), 8)
    with pytest.raises(ValueError, match="backward"):
        no_backward.backward(weights)


@pytest.mark.parametrize("case", CASES)
def test_model_forces_and_stress_match_finite_differences(backend, case):
    model = get_model("ani-1ccx", backend)
    cell, pbc = CASES[case]
    rng = np.random.default_rng(21)
    numbers, pos = random_molecule(rng, 10, box=4.0, min_distance=1.0)
    want_stress = cell is not None
    r = model.compute(numbers, pos, cell, pbc, stress=want_stress)

    def energy(p, c=cell):
        return model.compute(numbers, p, c, pbc, forces=False).energy

    # float32 networks: an energy is good to ~1e-7 Ha, so steps of 1e-3 and loose bounds.
    h = 1e-3
    for _ in range(3):
        u = rng.normal(size=pos.shape)
        u /= np.linalg.norm(u)
        fd = (energy(pos + h * u) - energy(pos - h * u)) / (2 * h)
        assert abs(-np.sum(r.forces * u) - fd) < 2e-4 + 1e-3 * abs(fd), (case, fd)
    if want_stress:
        volume = abs(np.linalg.det(cell))
        for _ in range(2):
            eps = rng.normal(size=(3, 3))
            eps = 0.5 * (eps + eps.T) / np.linalg.norm(eps)
            plus, minus = np.eye(3) + h * eps, np.eye(3) - h * eps
            fd = (energy(pos @ plus, cell @ plus) - energy(pos @ minus, cell @ minus)) / (2 * h)
            got = volume * np.sum(r.stress * eps)
            assert abs(got - fd) < 5e-4 + 1e-3 * abs(fd), (case, got, fd)
