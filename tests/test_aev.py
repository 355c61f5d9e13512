"""AEV kernel: against the float64 NumPy oracle, TorchANI's stored AEVs, and invariances."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MODELS, get_model, load_reference, reference_systems
from oracles import random_molecule, random_rotation, reference_aev

from pyani import _backend

SKEWED = np.array([[7.0, 0.0, 0.0], [2.1, 6.5, 0.0], [-1.3, 1.7, 8.0]])


def computer(backend, model):
    k = _backend.resolve(backend)[1]
    return k.AEVComputer(model.metadata["aev"], len(model.elements))


def pairs_of(backend, model, positions, cell=None, pbc=None):
    """(pairs, vectors) of the half list within the model's cutoff."""
    k = _backend.resolve(backend)[1]
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    pbc = np.zeros(3, bool) if pbc is None else np.broadcast_to(pbc, 3).copy()
    pairs, _, vectors = k.NeighborList(model.cutoff, 0.0, 0).compute(positions, cell, pbc)
    return pairs, vectors


def kernel_aev(backend, model, numbers, positions, cell=None, pbc=None):
    """AEVs [N, D] (atom order) from the backend kernels, as Model.compute would call them."""
    species = np.searchsorted(model.atomic_numbers, numbers).astype(np.int32)
    pairs, vectors = pairs_of(backend, model, positions, cell, pbc)
    rows = np.arange(len(numbers), dtype=np.int64)
    return computer(backend, model).forward(species, pairs, vectors, rows, len(numbers)).aev, species


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
    numbers, pos = random_molecule(np.random.default_rng(11), 12)
    plain, species = kernel_aev(backend, model, numbers, pos)
    pairs, vectors = pairs_of(backend, model, pos)
    rows = np.random.default_rng(0).permutation(len(numbers)).astype(np.int64)
    moved = computer(backend, model).forward(species, pairs, vectors, rows, len(numbers)).aev
    np.testing.assert_array_equal(moved[rows], plain)
    padded = computer(backend, model).forward(species, pairs, vectors, rows + 2, len(numbers) + 5).aev
    assert not padded[:2].any() and not padded[-3:].any()  # rows no atom names are zero
    np.testing.assert_array_equal(padded[2:-3], moved)
    with pytest.raises(ValueError, match="rows"):
        computer(backend, model).forward(species, pairs, vectors, np.zeros(len(numbers), np.int64), len(numbers))


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
    kernel = computer(backend, model)
    rng = np.random.default_rng(12)
    numbers, pos = random_molecule(rng, 16)
    full, species = kernel_aev(backend, model, numbers, pos)
    pairs, vectors = pairs_of(backend, model, pos)
    rows = np.arange(len(numbers), dtype=np.int64)
    columns = rng.choice(full.shape[1], 100, replace=False)
    kept = kernel.forward(species, pairs, vectors, rows, len(numbers), columns, backward=True)
    np.testing.assert_array_equal(kept.aev, full[:, columns])
    grad = rng.normal(size=kept.aev.shape).astype(np.float32)
    padded = np.zeros_like(full)
    padded[:, columns] = grad
    run = kernel.forward(species, pairs, vectors, rows, len(numbers), backward=True)
    want, want_virial = run.backward(padded, virial=True)
    got, got_virial = kept.backward(grad, virial=True)
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got_virial, want_virial, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="grad_aev"):
        kept.backward(padded)
    for bad in ([0, full.shape[1]], [-1], [3, 5, 3]):
        with pytest.raises(ValueError, match="features"):
            kernel.forward(species, pairs, vectors, rows, len(numbers), np.array(bad))


@pytest.mark.parametrize("shifts", ["float32", "jittered"])
def test_nearly_even_shifts_are_exact(backend, shifts):
    """Shifts even only to float32 rounding (TorchANI's buffers) or jittered by 1e-9: the float64
    AEV is the oracle's to 1e-12 (the C++ recurrence corrects for the unevenness), and its
    backward pass agrees with finite differences."""
    model = get_model("ani-1x", backend)
    rng = np.random.default_rng(13)
    aev = dict(model.metadata["aev"])
    for key in ("shf_r", "shf_a"):
        even = np.asarray(aev[key])
        moved = (
            even.astype(np.float32).astype(np.float64)
            if shifts == "float32"
            else even + rng.uniform(-1e-9, 1e-9, even.size)
        )
        assert 0 < np.abs(moved - even).max() < 1e-6
        aev[key] = moved.tolist()
    numbers, pos = random_molecule(rng, 12, box=4.0)
    species = np.searchsorted(model.atomic_numbers, numbers).astype(np.int32)
    k = _backend.resolve(backend)[1]
    pairs, _, vectors = k.NeighborList(model.cutoff, 0.0, 0).compute(pos, np.zeros((3, 3)), np.zeros(3, bool))
    kernel = k.AEVComputer(aev, 4, dtype="float64")
    run = kernel.forward(species, pairs, vectors, np.arange(12), 12, backward=True)
    want = reference_aev(pos, species, 4, aev)
    np.testing.assert_allclose(run.aev, want, rtol=1e-12, atol=1e-13)
    weights = rng.normal(size=want.shape)
    forces, _ = run.backward(weights)
    h = 1e-5
    u = rng.normal(size=pos.shape)
    plus, minus = (np.sum(weights * reference_aev(pos + d * h * u, species, 4, aev)) for d in (1, -1))
    np.testing.assert_allclose(-np.sum(forces * u), (plus - minus) / (2 * h), rtol=1e-6, atol=1e-8)
