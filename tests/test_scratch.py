"""The C++ core's Scratch pool: big kernel buffers (2 MB and more) that a model keeps and
reuses from call to call. Reuse must not change a single bit, must not grow the pool on
repeated calls, and must hold up under concurrent calls."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import get_model
from oracles import water_box

from pyani import _backend

pytestmark = pytest.mark.skipif(not _backend.cpp_available(), reason="the C++ core is not built")


@pytest.fixture(scope="module")
def big_box():
    # 16^3 waters: ~3.5e5 pairs, so the directed tables and per-entry gradients exceed 2 MB.
    return water_box(np.random.default_rng(5), 16)


def kernel_inputs(model, numbers, positions, cell):
    """species, pairs, vectors and rows of a periodic box, as the AEV kernels take them."""
    species = model._species_of[numbers]
    pairs, _, vectors = model._kernels.NeighborList(model.cutoff, 0.0, 2).compute(positions, cell, np.ones(3, bool))
    return species, pairs, vectors, np.arange(len(numbers))


def test_reused_buffers_change_no_bit_and_the_pool_does_not_grow(big_box):
    from pyani import _core

    model = get_model("ani-1x", "cpp")
    numbers = big_box[0]
    k, params = model._kernels, model._params
    species, pairs, vectors, rows = kernel_inputs(model, *big_box)
    grad = np.random.default_rng(0).standard_normal((len(numbers), params.length)).astype(np.float32)

    fresh_aev = k.aev(params, species, pairs, vectors, rows, len(numbers), 2)
    fresh_grad = k.aev_backward(params, species, pairs, vectors, rows, grad, 2)
    scratch = _core.Scratch()
    sizes = []
    for _ in range(3):
        np.testing.assert_array_equal(
            k.aev(params, species, pairs, vectors, rows, len(numbers), 2, scratch=scratch), fresh_aev
        )
        np.testing.assert_array_equal(
            k.aev_backward(params, species, pairs, vectors, rows, grad, 2, scratch=scratch), fresh_grad
        )
        sizes.append(scratch.retained_bytes)
    assert sizes[0] > 2 * len(pairs) * 8  # the directed tables went through the pool
    assert sizes[1] == sizes[0] and sizes[2] == sizes[0]  # and were reused, not re-made


def test_model_reuses_its_pool_and_stays_thread_safe(big_box):
    model = get_model("ani-1x", "cpp")
    numbers, positions, cell = big_box
    first = model.compute(numbers, positions, cell)
    retained = model._scratch.retained_bytes
    assert retained > 0
    results, errors = [], []

    def work():
        try:
            results.append(model.compute(numbers, positions, cell))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        assert r.energy == first.energy
        np.testing.assert_array_equal(r.forces, first.forces)
    # Concurrent calls may each need their own buffers, but never more than one set per call.
    assert model._scratch.retained_bytes <= 4 * retained


def kernel_calls(model, scratch, numbers, positions, cell):
    """One AEV and one backward call through `scratch`; returns the bytes it then holds."""
    k, params = model._kernels, model._params
    species, pairs, vectors, rows = kernel_inputs(model, numbers, positions, cell)
    k.aev(params, species, pairs, vectors, rows, len(numbers), 2, scratch=scratch)
    grad = np.zeros((len(numbers), params.length), dtype=np.float32)
    k.aev_backward(params, species, pairs, vectors, rows, grad, 2, scratch=scratch)
    return scratch.retained_bytes


def test_the_pool_keeps_about_one_set_of_buffers_as_systems_change():
    from pyani import _core

    model = get_model("ani-1x", "cpp")
    rng = np.random.default_rng(11)
    one_set = kernel_calls(model, _core.Scratch(), *water_box(rng, 16))
    scratch = _core.Scratch()
    # Growing systems, then an MD-like run whose pair count fluctuates and sets new highs:
    # each outgrown block must be let go, and small fluctuations must reuse the blocks.
    held = [kernel_calls(model, scratch, *water_box(rng, n)) for n in (13, 14, 15, 16)]
    held += [kernel_calls(model, scratch, *water_box(np.random.default_rng(seed), 16)) for seed in range(6)]
    assert max(held) <= 1.3 * one_set, (held, one_set)
