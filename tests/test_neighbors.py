"""Neighbour search against brute force: molecules, every pbc combination, skewed and tiny
cells, atoms far outside the cell, far-apart fragments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from oracles import brute_force_pairs, pair_dict, random_molecule

from pyani import _backend

SKEWED = np.array([[7.0, 0.0, 0.0], [2.1, 6.5, 0.0], [-1.3, 1.7, 8.0]])
CUTOFF = 5.2


def kernels(backend):
    return _backend.resolve(backend)[1]


def check_against_brute_force(backend, positions, cell, pbc, cutoff=CUTOFF, label=""):
    k = kernels(backend)
    cell_arg = np.zeros((3, 3)) if cell is None else cell
    pbc_arg = np.zeros(3, bool) if pbc is None else np.broadcast_to(pbc, 3).copy()
    pairs, shifts, vectors = k.neighbor_list(positions, cell_arg, pbc_arg, cutoff, 0)
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2, label
    assert shifts.dtype == np.int32 and vectors.dtype == np.float64, label
    got = pair_dict(pairs, shifts, vectors)
    want = brute_force_pairs(positions, cell, pbc, cutoff)
    assert set(got) == set(want), f"{label}: missing {set(want) - set(got)}, extra {set(got) - set(want)}"
    for key, vec in want.items():
        np.testing.assert_allclose(got[key], vec, atol=1e-10, err_msg=f"{label} {key}")
    assert len(want) > 0 or len(positions) < 2, f"{label}: the test system has no pairs at all"
    return len(want)


def test_molecule(backend):
    rng = np.random.default_rng(1)
    _, pos = random_molecule(rng, 40, box=9.0)
    check_against_brute_force(backend, pos, None, None, label="molecule")


@pytest.mark.parametrize("pbc", list(itertools.product([False, True], repeat=3)))
def test_every_pbc_combination_on_a_skewed_cell(backend, pbc):
    rng = np.random.default_rng(2)
    frac = rng.uniform(-0.2, 1.2, (30, 3))  # some atoms outside the cell
    check_against_brute_force(backend, frac @ SKEWED, SKEWED, np.array(pbc), label=f"pbc={pbc}")


@pytest.mark.parametrize("scale", [0.35, 0.6, 1.0])
def test_cell_smaller_than_cutoff(backend, scale):
    """Several images of the same atom (and of itself) fall within the cutoff."""
    rng = np.random.default_rng(3)
    cell = SKEWED * scale
    pos = rng.uniform(0, 1, (4, 3)) @ cell
    n = check_against_brute_force(backend, pos, cell, np.array([True, True, True]), label=f"scale {scale}")
    if scale < 1:
        assert n > 4 * 4, "expected many image pairs"


def test_atoms_far_outside_the_cell(backend):
    """Unwrapped atoms (thousands of cells away) give the same pairs and vectors as wrapped
    ones, with shifts that refer to the positions as given."""
    rng = np.random.default_rng(4)
    cell = np.diag([6.0, 7.0, 8.0]) + np.array([[0, 0, 0], [1.0, 0, 0], [0.5, -0.7, 0]])
    pos = rng.uniform(0, 1, (20, 3)) @ cell
    offsets = np.concatenate(
        [rng.integers(-1000, 1000, (20, 1)), np.zeros((20, 1)), rng.integers(-50, 50, (20, 1))], axis=1
    )
    far = pos + offsets @ cell
    k = kernels(backend)
    pbc = np.ones(3, bool)
    near_pairs = pair_dict(*k.neighbor_list(pos, cell, pbc, CUTOFF, 0))
    far_pairs = pair_dict(*k.neighbor_list(far, cell, pbc, CUTOFF, 0))
    relabelled = {}
    for (i, j, *shift), vec in far_pairs.items():
        np.testing.assert_allclose(vec, far[j] - far[i] + np.array(shift) @ cell, atol=1e-9)
        near_shift = np.array(shift) + offsets[j] - offsets[i]
        relabelled[(i, j, *map(int, near_shift))] = vec
    assert set(relabelled) == set(near_pairs)
    for key, vec in near_pairs.items():
        np.testing.assert_allclose(relabelled[key], vec, atol=1e-8)
    check_against_brute_force(backend, pos, cell, pbc, label="wrapped")


def test_far_apart_fragments_stay_cheap(backend):
    """Two molecules 1e6 Angstrom apart: bins are capped, so this is instant and small."""
    rng = np.random.default_rng(5)
    _, a = random_molecule(rng, 10)
    pos = np.concatenate([a, a + [1e6, -1e6, 3e5]])
    n = check_against_brute_force(backend, pos, None, None, label="fragments")
    assert n == 2 * len(brute_force_pairs(a, None, None, CUTOFF))


def test_single_atom_and_isolated_atoms(backend):
    k = kernels(backend)
    for pos in (np.zeros((1, 3)), np.array([[0.0, 0, 0], [10.0, 0, 0]])):
        pairs, shifts, vectors = k.neighbor_list(pos, np.zeros((3, 3)), np.zeros(3, bool), CUTOFF, 0)
        assert pairs.shape == (0, 2) and shifts.shape == (0, 3) and vectors.shape == (0, 3)


def test_single_atom_sees_its_own_images(backend):
    cell = np.diag([3.0, 3.0, 3.0])
    n = check_against_brute_force(backend, np.zeros((1, 3)), cell, np.ones(3, bool), label="self images")
    # Images within 5.2 A of a simple cubic lattice of 3 A: half of the non-zero shifts.
    shifts = np.array(list(itertools.product(range(-2, 3), repeat=3)))
    expected = (np.count_nonzero(np.linalg.norm(shifts * 3.0, axis=1) < CUTOFF) - 1) // 2
    assert n == expected


def test_output_order_does_not_depend_on_threads(backend):
    rng = np.random.default_rng(6)
    cell = np.diag([12.0, 12.0, 12.0])
    pos = rng.uniform(0, 12, (300, 3))
    k = kernels(backend)
    one = k.neighbor_list(pos, cell, np.ones(3, bool), CUTOFF, 1)
    two = k.neighbor_list(pos, cell, np.ones(3, bool), CUTOFF, 2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_kernel_rejects_bad_shapes(backend):
    k = kernels(backend)
    with pytest.raises(ValueError, match="positions"):
        k.neighbor_list(np.zeros((4, 2)), np.zeros((3, 3)), np.zeros(3, bool), CUTOFF, 0)
    with pytest.raises(ValueError, match="cutoff"):
        k.neighbor_list(np.zeros((4, 3)), np.zeros((3, 3)), np.zeros(3, bool), -1.0, 0)
