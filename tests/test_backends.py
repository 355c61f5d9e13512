"""The Numba backend against the C++ core, kernel by kernel and through whole models: same
pairs in the same order, same AEVs and gradients to rounding, same errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import get_model
from oracles import padded_batch, random_molecule, water_box

from pyani import _backend

pytest.importorskip("numba", reason="the numba backend needs the numba package")
import pyani._numba as nb

needs_cpp = pytest.mark.skipif(
    not _backend.cpp_available(), reason="pyani's C++ extension (pyani._core) is not built: nothing to compare with"
)

SKEWED = np.array([[7.0, 0.0, 0.0], [2.1, 6.5, 0.0], [-1.3, 1.7, 8.0]])
CUTOFF = 5.2
ANI_1X_AEV = {
    "radial_cutoff": 5.2,
    "angular_cutoff": 3.5,
    "eta_r": 16.0,
    "shf_r": np.linspace(0.9, 5.2, 17)[:-1],
    "eta_a": 8.0,
    "zeta": 32.0,
    "shf_a": np.linspace(0.9, 3.5, 5)[:-1],
    "shf_z": (np.arange(8) + 0.5) * np.pi / 8,
}
N_SPECIES = 4


def cpp():
    return _backend.resolve("cpp")[1]


def jittered(rng, cell, per_side, outside=0.0):
    """Atoms on a jittered grid of the cell (no near-coincident pairs); a fraction `outside`
    moved by random lattice translations, out of the cell."""
    grid = np.stack(np.meshgrid(*[np.arange(per_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frac = (grid + 0.5 + rng.uniform(-0.25, 0.25, grid.shape)) / per_side
    moved = rng.random(len(frac)) < outside
    frac[moved] += rng.integers(-3, 4, (moved.sum(), 3))
    return frac @ cell


def systems():
    """(label, positions, cell, pbc) covering the neighbour search's code paths."""
    rng = np.random.default_rng(7)
    out = []
    _, mol = random_molecule(rng, 40, box=9.0)
    out.append(("molecule", mol, np.zeros((3, 3)), [False] * 3))
    cubic = np.eye(3) * 11.0
    out.append(("cubic", jittered(rng, cubic, 6), cubic, [True] * 3))  # 216 atoms: parallel paths
    out.append(("triclinic", jittered(rng, SKEWED, 4, outside=0.3), SKEWED, [True] * 3))
    out.append(("pbc-TFT", jittered(rng, SKEWED, 4, outside=0.3), SKEWED, [True, False, True]))
    out.append(("pbc-FTF", jittered(rng, SKEWED, 3, outside=0.3), SKEWED, [False, True, False]))
    small = SKEWED * 0.35
    out.append(("cell-smaller-than-cutoff", rng.uniform(0, 1, (4, 3)) @ small, small, [True] * 3))
    out.append(("atoms-outside", jittered(rng, SKEWED, 3, outside=1.0) + 40.0, SKEWED, [True] * 3))
    _, a = random_molecule(rng, 10)
    _, b = random_molecule(rng, 10)
    out.append(("far-fragments", np.concatenate([a, b + [900.0, -700.0, 1200.0]]), np.zeros((3, 3)), [False] * 3))
    out.append(("one-atom", np.array([[0.3, 0.2, 0.1]]), SKEWED, [True] * 3))
    return [(label, pos, cell, np.array(pbc)) for label, pos, cell, pbc in out]


SYSTEMS = systems()
IDS = [s[0] for s in SYSTEMS]


def kernel_inputs(positions, cell, pbc, seed=0):
    rng = np.random.default_rng(seed)
    pairs, shifts, vectors = nb.NeighborList(CUTOFF).compute(positions, cell, pbc)
    species = rng.integers(0, N_SPECIES, len(positions)).astype(np.int32)
    order = np.argsort(species, kind="stable")
    rows = np.empty(len(species), dtype=np.int64)
    rows[order] = np.arange(len(species))
    return species, pairs, shifts, vectors, rows


@needs_cpp
@pytest.mark.parametrize(("label", "positions", "cell", "pbc"), SYSTEMS, ids=IDS)
def test_aev_kernels_match(label, positions, cell, pbc):
    species, pairs, _, vectors, rows = kernel_inputs(positions, cell, pbc)
    n = len(species)
    p_cpp = cpp().make_params(ANI_1X_AEV, N_SPECIES)
    p_nb = nb.make_params(ANI_1X_AEV, N_SPECIES)
    want = cpp().aev(p_cpp, species, pairs, vectors, rows, n, 0)
    rng = np.random.default_rng(1)
    grad_aev = rng.normal(size=want.shape).astype(np.float32)
    want_grad = cpp().aev_backward(p_cpp, species, pairs, vectors, rows, grad_aev, 0)
    want_forces = cpp().pair_forces(n, pairs, want_grad)
    for n_threads in (1, 2):
        got = nb.aev(p_nb, species, pairs, vectors, rows, n, n_threads)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"{label}: aev")
        got_grad = nb.aev_backward(p_nb, species, pairs, vectors, rows, grad_aev, n_threads)
        assert got_grad.dtype == np.float64 and got_grad.shape == (len(pairs), 3)
        scale = max(np.abs(want_grad).max(initial=0.0), 1.0)
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{label}: backward")
        got_forces = nb.pair_forces(n, pairs, got_grad)
        assert got_forces.dtype == np.float64 and got_forces.shape == (n, 3)
        np.testing.assert_allclose(got_forces, want_forces, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{label}: forces")


@needs_cpp
@pytest.mark.parametrize(("label", "positions", "cell", "pbc"), SYSTEMS, ids=IDS)
def test_compiled_kernel_variants_agree(label, positions, cell, pbc):
    """cpp/aev.cpp is compiled once per instruction set (baseline, AVX2): same results."""
    from pyani import _core

    isas = _core.kernel_isas()
    assert isas[-1] == "baseline"
    species, pairs, _, vectors, rows = kernel_inputs(positions, cell, pbc)
    n = len(species)
    params = cpp().make_params(ANI_1X_AEV, N_SPECIES)
    want = _core.aev(params, species, pairs, vectors, rows, n, 0, isa="baseline")
    grad_aev = np.random.default_rng(3).normal(size=want.shape).astype(np.float32)
    want_grad = _core.aev_backward(params, species, pairs, vectors, rows, grad_aev, 0, isa="baseline")
    scale = max(np.abs(want_grad).max(initial=0.0), 1.0)
    for isa in isas:
        got = _core.aev(params, species, pairs, vectors, rows, n, 0, isa=isa)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"{label}: aev, {isa}")
        got_grad = _core.aev_backward(params, species, pairs, vectors, rows, grad_aev, 0, isa=isa)
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{label}: {isa}")
    with pytest.raises(ValueError, match="isa must be 'auto' or one of"):
        _core.aev(params, species, pairs, vectors, rows, n, 0, isa="sse9")


UNUSUAL_AEVS = {
    # exp(-EtaR d^2) far below 1e-300: no recurrence, exp arguments clamped
    "steep radial": {**ANI_1X_AEV, "eta_r": 400.0},
    # uneven angular shifts, a zeta that is not a whole number, 3 sections: the generic loops
    "generic angular": {**ANI_1X_AEV, "shf_a": [0.9, 1.3, 2.2, 3.0], "zeta": 7.5, "shf_z": [0.3, 1.4, 2.9]},
    # a zeta that is a whole number other than 32, 5 radial shifts
    "zeta 8": {**ANI_1X_AEV, "zeta": 8.0, "shf_r": np.linspace(0.8, 5.0, 5)},
}


@needs_cpp
@pytest.mark.parametrize("name", list(UNUSUAL_AEVS))
def test_unusual_aev_parameters_match(name):
    """Parameters off the ANI shapes take the C++ core's general paths; Numba has one path."""
    from pyani import _core

    _, positions, cell, pbc = SYSTEMS[2]
    species, pairs, _, vectors, rows = kernel_inputs(positions, cell, pbc)
    n = len(species)
    aev = UNUSUAL_AEVS[name]
    p_cpp = cpp().make_params(aev, N_SPECIES)
    p_nb = nb.make_params(aev, N_SPECIES)
    want = nb.aev(p_nb, species, pairs, vectors, rows, n, 0)
    grad_aev = np.random.default_rng(4).normal(size=want.shape).astype(np.float32)
    want_grad = nb.aev_backward(p_nb, species, pairs, vectors, rows, grad_aev, 0)
    assert np.abs(want).max() > 0.01
    scale = max(np.abs(want_grad).max(), 1.0)
    for isa in _core.kernel_isas():
        got = _core.aev(p_cpp, species, pairs, vectors, rows, n, 0, isa=isa)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"{name}, {isa}")
        got_grad = _core.aev_backward(p_cpp, species, pairs, vectors, rows, grad_aev, 0, isa=isa)
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{name}, {isa}")


def test_unnamed_rows_are_zero_and_threads_do_not_change_results():
    _, positions, cell, pbc = SYSTEMS[1]
    species, pairs, _, vectors, rows = kernel_inputs(positions, cell, pbc)
    params = nb.make_params(ANI_1X_AEV, N_SPECIES)
    out = nb.aev(params, species, pairs, vectors, rows + 3, len(species) + 5, 2)
    assert not out[:3].any() and not out[-2:].any()
    np.testing.assert_array_equal(out[3:-2], nb.aev(params, species, pairs, vectors, rows, len(species), 1))
    grad = np.random.default_rng(2).normal(size=(len(species), out.shape[1])).astype(np.float32)
    serial = nb.aev_backward(params, species, pairs, vectors, rows, grad, 1)
    for n_threads in (2, 0):
        np.testing.assert_array_equal(nb.aev_backward(params, species, pairs, vectors, rows, grad, n_threads), serial)


def model_cases():
    rng = np.random.default_rng(11)
    z, p = random_molecule(rng, 24)
    batch_z, batch_p = padded_batch([random_molecule(rng, n) for n in (7, 12, 4)])
    box = water_box(rng, 4)  # 192 atoms: several threads
    return {"molecule": (z, p), "padded-batch": (batch_z, batch_p), "water-box": box}


MODEL_CASES = model_cases()


@needs_cpp
@pytest.mark.parametrize("label", list(MODEL_CASES))
def test_models_match(label):
    cpp_model = get_model("ani-1x", "cpp")
    nb_model = get_model("ani-1x", "numba")
    assert nb_model.backend == "numba" and cpp_model.backend == "cpp"
    args = MODEL_CASES[label]
    periodic = len(args) == 3
    want = cpp_model.compute(*args, stress=periodic, atomic=True)
    got = nb_model.compute(*args, stress=periodic, atomic=True)
    n_atoms = np.count_nonzero(np.asarray(args[0]) >= 0, axis=-1)
    assert np.all(np.abs(got.energy - want.energy) / n_atoms <= 1e-7)  # Hartree/atom
    assert np.abs(got.forces - want.forces).max() <= 1e-5  # Hartree/Angstrom
    assert np.abs(got.atomic_energies - want.atomic_energies).max() <= 1e-6
    if periodic:
        assert np.abs(got.stress - want.stress).max() <= 1e-8


def bad_calls(k, params):
    """(name, thunk) of kernel calls with bad input; the same for both backends."""
    species = np.array([0, 1, 2, 3], dtype=np.int32)
    pairs = np.array([[0, 1], [1, 2]])
    vectors = np.ones((2, 3))
    rows = np.arange(4)
    grad = np.zeros((4, 384), dtype=np.float32)
    return [
        ("species high", lambda: k.aev(params, [0, 1, 4, 0], pairs, vectors, rows, 4)),
        ("species negative", lambda: k.aev(params, [0, -1, 0, 0], pairs, vectors, rows, 4)),
        ("species 2d", lambda: k.aev(params, species[None], pairs, vectors, rows, 4)),
        ("rows high", lambda: k.aev(params, species, pairs, vectors, [0, 1, 2, 4], 4)),
        ("rows before species", lambda: k.aev(params, [0, 1, 2, 9], pairs, vectors, [0, 9, 2, 3], 4)),
        ("species before rows", lambda: k.aev(params, [0, 9, 2, 3], pairs, vectors, [0, 9, 2, 3], 4)),
        ("rows shape", lambda: k.aev(params, species, pairs, vectors, rows[:3], 4)),
        ("pairs high", lambda: k.aev(params, species, [[0, 1], [1, 4]], vectors, rows, 4)),
        ("pairs negative", lambda: k.aev(params, species, [[0, -1], [1, 2]], vectors, rows, 4)),
        ("pairs shape", lambda: k.aev(params, species, np.zeros((2, 3), np.int64), vectors, rows, 4)),
        ("vectors shape", lambda: k.aev(params, species, pairs, np.ones((3, 3)), rows, 4)),
        ("grad_aev shape", lambda: k.aev_backward(params, species, pairs, vectors, rows, grad[:, :10])),
        ("grad_aev rows", lambda: k.aev_backward(params, species, pairs, vectors, [0, 1, 2, 5], grad)),
        ("backward pairs", lambda: k.aev_backward(params, species, [[0, 1], [1, 7]], vectors, rows, grad)),
        ("n_atoms negative", lambda: k.pair_forces(-1, pairs, vectors)),
        ("forces pairs", lambda: k.pair_forces(2, pairs, vectors)),
        ("grad_vectors shape", lambda: k.pair_forces(4, pairs, np.ones((2, 2)))),
        ("params n_species", lambda: k.make_params(ANI_1X_AEV, 0)),
        ("params cutoffs", lambda: k.make_params({**ANI_1X_AEV, "angular_cutoff": 6.0}, 4)),
        ("params empty", lambda: k.make_params({**ANI_1X_AEV, "shf_a": []}, 4)),
    ]


@needs_cpp
def test_bad_inputs_raise_the_same_errors():
    c, n = cpp(), nb
    for (name, call_cpp), (_, call_nb) in zip(
        bad_calls(c, c.make_params(ANI_1X_AEV, N_SPECIES)), bad_calls(n, n.make_params(ANI_1X_AEV, N_SPECIES))
    ):
        with pytest.raises(ValueError) as want:
            call_cpp()
        with pytest.raises(ValueError) as got:
            call_nb()
        assert str(got.value) == str(want.value), name


def test_empty_inputs():
    params = nb.make_params(ANI_1X_AEV, N_SPECIES)
    pairs, shifts, vectors = nb.NeighborList(CUTOFF).compute(np.zeros((0, 3)), np.eye(3), np.ones(3, bool))
    assert pairs.shape == (0, 2) and shifts.shape == (0, 3) and vectors.shape == (0, 3)
    assert pairs.dtype == np.int64 and shifts.dtype == np.int32 and vectors.dtype == np.float64
    out = nb.aev(params, np.zeros(0, np.int32), pairs, vectors, np.zeros(0, np.int64), 0)
    assert out.shape == (0, 384) and out.dtype == np.float32
    species = np.zeros(2, np.int32)
    rows = np.arange(2)
    aev = nb.aev(params, species, pairs, vectors, rows, 2)
    assert aev.shape == (2, 384) and not aev.any()
    grad = nb.aev_backward(params, species, pairs, vectors, rows, np.ones((2, 384), np.float32))
    assert grad.shape == (0, 3)
    np.testing.assert_array_equal(nb.pair_forces(2, pairs, grad), np.zeros((2, 3)))
