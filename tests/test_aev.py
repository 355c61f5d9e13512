"""AEV kernel: against the float64 NumPy oracle, TorchANI's stored AEVs, and invariances."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MODELS, get_model, load_reference, reference_systems
from oracles import random_molecule, random_rotation, reference_aev

from pyani import _backend

SKEWED = np.array([[7.0, 0.0, 0.0], [2.1, 6.5, 0.0], [-1.3, 1.7, 8.0]])


def kernel_aev(backend, model, numbers, positions, cell=None, pbc=None):
    """AEVs [N, D] (atom order) from the backend kernels, as Model.compute would call them."""
    k = _backend.resolve(backend)[1]
    params = k.make_params(model.metadata["aev"], len(model.elements))
    species = np.searchsorted(model.atomic_numbers, numbers).astype(np.int32)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    pbc = np.zeros(3, bool) if pbc is None else np.broadcast_to(pbc, 3).copy()
    pairs, _, vectors = k.NeighborList(model.cutoff).compute(positions, cell, pbc)
    rows = np.arange(len(numbers), dtype=np.int64)
    return k.aev(params, species, pairs, vectors, rows, len(numbers), 0), species


def test_matches_oracle_for_molecule_and_periodic_cells(backend):
    model = get_model("ani-1x", backend)
    rng = np.random.default_rng(10)
    numbers, pos = random_molecule(rng, 14, box=4.5)
    for cell, pbc in ((None, None), (SKEWED, True), (SKEWED, [True, False, True]), (SKEWED * 0.5, True)):
        got, species = kernel_aev(backend, model, numbers, pos, cell, pbc)
        want = reference_aev(pos, species, len(model.elements), model.metadata["aev"], cell, pbc)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6, err_msg=f"pbc={pbc}")
        assert np.abs(want).max() > 0.1


@pytest.mark.parametrize("name", MODELS)
def test_matches_torchani(backend, name):
    model = get_model(name, backend)
    systems = [s for s in reference_systems(name) if "aev" in load_reference(name, s)]
    assert systems, f"no reference AEVs for {name}"
    for system in systems:
        ref = load_reference(name, system)
        got, _ = kernel_aev(backend, model, ref["numbers"], ref["positions"], ref.get("cell"), ref.get("pbc"))
        np.testing.assert_allclose(got, ref["aev"], rtol=2e-6, atol=2e-6, err_msg=system)


def test_rows_place_atoms(backend):
    """The `rows` argument only permutes the output rows."""
    model = get_model("ani-1x", backend)
    k = _backend.resolve(backend)[1]
    numbers, pos = random_molecule(np.random.default_rng(11), 12)
    plain, species = kernel_aev(backend, model, numbers, pos)
    params = k.make_params(model.metadata["aev"], len(model.elements))
    pairs, _, vectors = k.NeighborList(model.cutoff).compute(pos, np.zeros((3, 3)), np.zeros(3, bool))
    rows = np.random.default_rng(0).permutation(len(numbers)).astype(np.int64)
    moved = k.aev(params, species, pairs, vectors, rows, len(numbers), 0)
    np.testing.assert_array_equal(moved[rows], plain)


def test_invariances(backend):
    """Translation, rotation and permutation of atoms; periodic images of atoms."""
    model = get_model("ani-1x", backend)
    rng = np.random.default_rng(12)
    numbers, pos = random_molecule(rng, 16)
    base, _ = kernel_aev(backend, model, numbers, pos)
    rot = random_rotation(rng)
    moved, _ = kernel_aev(backend, model, numbers, pos @ rot.T + [3.0, -7.0, 11.0])
    np.testing.assert_allclose(moved, base, atol=2e-5, err_msg="rotation + translation")
    perm = rng.permutation(len(numbers))
    permuted, _ = kernel_aev(backend, model, numbers[perm], pos[perm])
    np.testing.assert_allclose(permuted, base[perm], atol=1e-5, err_msg="permutation")

    cell = SKEWED
    periodic, _ = kernel_aev(backend, model, numbers, pos, cell, True)
    images = pos + rng.integers(-3, 4, (len(pos), 3)) @ cell
    imaged, _ = kernel_aev(backend, model, numbers, images, cell, True)
    np.testing.assert_allclose(imaged, periodic, atol=1e-5, err_msg="periodic images")


def test_features_keep_columns(backend):
    """`features` keeps columns of the full layout, in the order given; the backward pass
    reads the left-out columns as zero."""
    model = get_model("ani-1x", backend)
    k = _backend.resolve(backend)[1]
    rng = np.random.default_rng(12)
    numbers, pos = random_molecule(rng, 16)
    full, species = kernel_aev(backend, model, numbers, pos)
    params = k.make_params(model.metadata["aev"], len(model.elements))
    pairs, _, vectors = k.NeighborList(model.cutoff).compute(pos, np.zeros((3, 3)), np.zeros(3, bool))
    rows = np.arange(len(numbers), dtype=np.int64)
    columns = rng.choice(full.shape[1], 100, replace=False)
    kept = k.aev(params, species, pairs, vectors, rows, len(numbers), 0, columns)
    np.testing.assert_array_equal(kept, full[:, columns])
    grad = rng.normal(size=kept.shape).astype(np.float32)
    padded = np.zeros_like(full)
    padded[:, columns] = grad
    want = k.aev_backward(params, species, pairs, vectors, rows, padded, 0)
    got = k.aev_backward(params, species, pairs, vectors, rows, grad, 0, columns)
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="grad_aev must have shape"):
        k.aev_backward(params, species, pairs, vectors, rows, padded, 0, columns)
    for bad, message in (([0, full.shape[1]], "out of range"), ([-1], "out of range"), ([3, 5, 3], "twice")):
        with pytest.raises(ValueError, match=f"features contains a column {message}"):
            k.aev(params, species, pairs, vectors, rows, len(numbers), 0, np.array(bad))
