"""The Numba backend against the C++ core, kernel by kernel and through whole models: same
AEVs, forces and virials to rounding; bad input is a ValueError in both."""

from __future__ import annotations

import threading

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


def backends():
    return {"numba": nb, "cpp": cpp()} if _backend.cpp_available() else {"numba": nb}


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
    pairs, shifts, vectors = nb.NeighborList(CUTOFF, 0.0, 0).compute(positions, cell, pbc)
    species = rng.integers(0, N_SPECIES, len(positions)).astype(np.int32)
    order = np.argsort(species, kind="stable")
    rows = np.empty(len(species), dtype=np.int64)
    rows[order] = np.arange(len(species))
    return species, pairs, shifts, vectors, rows


def forward_backward(kernel, species, pairs, vectors, rows, grad_seed=1):
    """AEV, forces and virial (two structures: the pairs split in half) of one pass."""
    n = len(species)
    run = kernel.forward(species, pairs, vectors, rows, n, backward=True)
    grad_aev = np.random.default_rng(grad_seed).normal(size=run.aev.shape).astype(np.float32)
    bounds = np.array([0, len(pairs) // 2, len(pairs)])
    forces, virial = run.backward(grad_aev, bounds, forces=True, virial=True)
    return run.aev, forces, virial


def assert_close(got, want, label):
    aev, forces, virial = want
    assert got[0].dtype == np.float32 and got[0].shape == aev.shape
    assert got[1].dtype == np.float64 and got[1].shape == forces.shape
    assert got[2].dtype == np.float64 and got[2].shape == virial.shape
    np.testing.assert_allclose(got[0], aev, rtol=1e-6, atol=1e-7, err_msg=f"{label}: aev")
    scale = max(np.abs(forces).max(initial=0.0), 1.0)
    np.testing.assert_allclose(got[1], forces, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{label}: forces")
    scale = max(np.abs(virial).max(initial=0.0), 1.0)
    np.testing.assert_allclose(got[2], virial, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{label}: virial")


@needs_cpp
@pytest.mark.parametrize(("label", "positions", "cell", "pbc"), SYSTEMS, ids=IDS)
def test_aev_kernels_match(label, positions, cell, pbc):
    species, pairs, _, vectors, rows = kernel_inputs(positions, cell, pbc)
    want = forward_backward(cpp().AEVComputer(ANI_1X_AEV, N_SPECIES), species, pairs, vectors, rows)
    for n_threads in (1, 2):
        kernel = nb.AEVComputer(ANI_1X_AEV, N_SPECIES, n_threads)
        assert_close(forward_backward(kernel, species, pairs, vectors, rows), want, f"{label}, {n_threads} threads")


@needs_cpp
@pytest.mark.parametrize(("label", "positions", "cell", "pbc"), SYSTEMS, ids=IDS)
def test_compiled_kernel_variants_agree(label, positions, cell, pbc):
    """cpp/aev_kernels.inc is compiled once per instruction set (baseline, AVX2): same results."""
    from pyani import _core

    isas = _core.kernel_isas()
    assert isas[-1] == "baseline"
    species, pairs, _, vectors, rows = kernel_inputs(positions, cell, pbc)
    want = forward_backward(_core.AEVComputer(ANI_1X_AEV, N_SPECIES, isa="baseline"), species, pairs, vectors, rows)
    for isa in isas:
        kernel = _core.AEVComputer(ANI_1X_AEV, N_SPECIES, isa=isa)
        assert kernel.isa == isa
        assert_close(forward_backward(kernel, species, pairs, vectors, rows), want, f"{label}, {isa}")
    assert _core.AEVComputer(ANI_1X_AEV, N_SPECIES).isa == isas[0]
    with pytest.raises(ValueError, match="isa must be 'auto' or one of"):
        _core.AEVComputer(ANI_1X_AEV, N_SPECIES, isa="sse9")


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
    aev = UNUSUAL_AEVS[name]
    want = forward_backward(nb.AEVComputer(aev, N_SPECIES), species, pairs, vectors, rows)
    assert np.abs(want[0]).max() > 0.01
    for isa in _core.kernel_isas():
        kernel = _core.AEVComputer(aev, N_SPECIES, isa=isa)
        assert_close(forward_backward(kernel, species, pairs, vectors, rows), want, f"{name}, {isa}")


@pytest.mark.parametrize("name", ["numba", "cpp"])
def test_threads_do_not_change_results(name):
    if name not in backends():
        pytest.skip("the C++ core is not built")
    k = backends()[name]
    _, positions, cell, pbc = SYSTEMS[1]
    species, pairs, _, vectors, rows = kernel_inputs(positions, cell, pbc)
    serial = forward_backward(k.AEVComputer(ANI_1X_AEV, N_SPECIES, 1), species, pairs, vectors, rows)
    for n_threads in (2, 0):
        got = forward_backward(k.AEVComputer(ANI_1X_AEV, N_SPECIES, n_threads), species, pairs, vectors, rows)
        for g, w in zip(got, serial):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("name", ["numba", "cpp"])
def test_concurrent_passes_on_one_computer(name):
    """Threads share one AEVComputer; each pass owns its state, and backward() may even run
    while other threads make new passes."""
    if name not in backends():
        pytest.skip("the C++ core is not built")
    kernel = backends()[name].AEVComputer(ANI_1X_AEV, N_SPECIES, 1)
    inputs = [kernel_inputs(*SYSTEMS[s][1:], seed=s) for s in (1, 2, 3)]
    want = [forward_backward(kernel, species, pairs, vectors, rows) for species, pairs, _, vectors, rows in inputs]
    got, errors = {}, []

    def work(t):
        try:
            for k in range(3):
                species, pairs, _, vectors, rows = inputs[(t + k) % 3]
                got[t, k] = forward_backward(kernel, species, pairs, vectors, rows)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 9
    for (t, k), result in got.items():
        for g, w in zip(result, want[(t + k) % 3]):
            np.testing.assert_array_equal(g, w)


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


SMOOTH = {"cutoff_fn": "smooth"}


def bad_calls(k):
    """(name, thunk) of kernel calls with bad input; the same for both backends."""
    kernel = k.AEVComputer(ANI_1X_AEV, N_SPECIES)
    species = np.array([0, 1, 2, 3], dtype=np.int32)
    pairs = np.array([[0, 1], [1, 2]])
    vectors = np.ones((2, 3))
    rows = np.arange(4)
    grad = np.zeros((4, 384), dtype=np.float32)
    run = kernel.forward(species, pairs, vectors, rows, 4, backward=True)
    no_cutoff = {key: value for key, value in ANI_1X_AEV.items() if key != "radial_cutoff"}
    return [
        ("n_species", lambda: k.AEVComputer(ANI_1X_AEV, 0)),
        ("angular_cutoff", lambda: k.AEVComputer({**ANI_1X_AEV, "angular_cutoff": 6.0}, 4)),
        ("shf_a", lambda: k.AEVComputer({**ANI_1X_AEV, "shf_a": []}, 4)),
        ("finite", lambda: k.AEVComputer({**ANI_1X_AEV, "eta_r": np.nan}, 4)),
        ("radial_cutoff", lambda: k.AEVComputer(no_cutoff, 4)),
        ("cutoff_fn", lambda: k.AEVComputer({**ANI_1X_AEV, "cutoff_fn": "gaussian"}, 4)),
        ("cutoff_fn", lambda: k.AEVComputer({**ANI_1X_AEV, "cutoff_fn": 2}, 4)),
        ("cutoff_fn_params", lambda: k.AEVComputer({**ANI_1X_AEV, "cutoff_fn_params": {"order": 2}}, 4)),
        ("order", lambda: k.AEVComputer({**ANI_1X_AEV, **SMOOTH, "cutoff_fn_params": {"order": 0}}, 4)),
        ("order", lambda: k.AEVComputer({**ANI_1X_AEV, **SMOOTH, "cutoff_fn_params": {"order": 2.5}}, 4)),
        ("eps", lambda: k.AEVComputer({**ANI_1X_AEV, **SMOOTH, "cutoff_fn_params": {"eps": 0.0}}, 4)),
        ("eps", lambda: k.AEVComputer({**ANI_1X_AEV, **SMOOTH, "cutoff_fn_params": {"eps": np.inf}}, 4)),
        ("cutoff_fn_params", lambda: k.AEVComputer({**ANI_1X_AEV, **SMOOTH, "cutoff_fn_params": {"p": 1}}, 4)),
        ("species", lambda: kernel.forward([0, 1, 4, 0], pairs, vectors, rows, 4)),
        ("species", lambda: kernel.forward([0, -1, 0, 0], pairs, vectors, rows, 4)),
        ("species", lambda: kernel.forward(species[None], pairs, vectors, rows, 4)),
        ("rows", lambda: kernel.forward(species, pairs, vectors, [0, 1, 2, 4], 4)),
        ("rows", lambda: kernel.forward(species, pairs, vectors, [0, 1, 1, 3], 4)),
        ("rows", lambda: kernel.forward(species, pairs, vectors, rows[:3], 4)),
        ("n_rows", lambda: kernel.forward(species, pairs, vectors, rows, 3)),
        ("pairs", lambda: kernel.forward(species, [[0, 1], [1, 4]], vectors, rows, 4)),
        ("pairs", lambda: kernel.forward(species, [[0, -1], [1, 2]], vectors, rows, 4)),
        ("pairs", lambda: kernel.forward(species, np.zeros((2, 3), np.int64), vectors, rows, 4)),
        ("vectors", lambda: kernel.forward(species, pairs, np.ones((3, 3)), rows, 4)),
        ("grad_aev", lambda: run.backward(grad[:, :10])),
        ("grad_aev", lambda: run.backward(grad[:3])),
        ("pair_bounds", lambda: run.backward(grad, [0, 3], virial=True)),
        ("pair_bounds", lambda: run.backward(grad, [[0, 2]], virial=True)),
    ]


@pytest.mark.parametrize("name", ["numba", "cpp"])
def test_bad_inputs_raise_value_errors_naming_the_argument(name):
    if name not in backends():
        pytest.skip("the C++ core is not built")
    for argument, call in bad_calls(backends()[name]):
        with pytest.raises(ValueError, match=argument):
            call()


@pytest.mark.parametrize("name", ["numba", "cpp"])
def test_empty_inputs(name):
    if name not in backends():
        pytest.skip("the C++ core is not built")
    kernel = backends()[name].AEVComputer(ANI_1X_AEV, N_SPECIES)
    pairs, vectors = np.zeros((0, 2), np.int64), np.zeros((0, 3))
    run = kernel.forward(np.zeros(0, np.int32), pairs, vectors, np.zeros(0, np.int64), 0, backward=True)
    assert run.aev.shape == (0, 384) and run.aev.dtype == np.float32
    forces, virial = run.backward(np.zeros((0, 384), np.float32), virial=True)
    assert forces.shape == (0, 3) and virial.shape == (1, 3, 3) and not virial.any()
    run = kernel.forward(np.zeros(2, np.int32), pairs, vectors, np.arange(2), 2, backward=True)
    assert run.aev.shape == (2, 384) and not run.aev.any()
    forces, virial = run.backward(np.ones((2, 384), np.float32), virial=True)
    np.testing.assert_array_equal(forces, np.zeros((2, 3)))
    np.testing.assert_array_equal(virial, np.zeros((1, 3, 3)))
