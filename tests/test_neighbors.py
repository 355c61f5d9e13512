"""NeighborList (both backends) against brute force: molecules, every pbc combination, skewed
and tiny cells, atoms far outside the cell, far-apart fragments; thread-count independence;
the Verlet skin (reuse equals a fresh list, `builds` follows the rebuild rule); bad
arguments; concurrent calls; the two backends against each other as sets."""

from __future__ import annotations

import gc
import itertools
import threading

import numpy as np
import pytest
from conftest import BACKENDS
from oracles import brute_force_pairs, pair_dict, random_molecule, water_box

from pyani import _backend

SKEWED = np.array([[7.0, 0.0, 0.0], [2.1, 6.5, 0.0], [-1.3, 1.7, 8.0]])
CUTOFF = 5.2
NO_CELL = np.zeros((3, 3))
NO_PBC = np.zeros(3, bool)
ALL_PBC = np.ones(3, bool)


def kernels(backend):
    return _backend.resolve(backend)[1]


def sorted_list(pairs, shifts, vectors):
    """(keys [P,5] = (i, j, shift) sorted, vectors in that order): a list as a set, fast."""
    keys = np.concatenate([pairs, shifts.astype(np.int64)], axis=1)
    order = np.lexsort(keys.T[::-1])
    return keys[order], np.asarray(vectors)[order]


def assert_same_set(got, want, label=""):
    """Same (i, j, shift) set, each once; vectors equal to rounding."""
    got_keys, got_vectors = sorted_list(*got)
    want_keys, want_vectors = sorted_list(*want)
    assert len(np.unique(got_keys, axis=0)) == len(got_keys), f"{label}: duplicate pairs"
    assert got_keys.shape == want_keys.shape and np.array_equal(got_keys, want_keys), f"{label}: pairs differ"
    np.testing.assert_allclose(got_vectors, want_vectors, rtol=0, atol=1e-12, err_msg=label)


def check_against_brute_force(backend, positions, cell, pbc, cutoff=CUTOFF, label=""):
    k = kernels(backend)
    cell_arg = NO_CELL if cell is None else cell
    pbc_arg = NO_PBC if pbc is None else np.broadcast_to(pbc, 3).copy()
    pairs, shifts, vectors = k.NeighborList(cutoff).compute(positions, cell_arg, pbc_arg)
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
    n = check_against_brute_force(backend, pos, cell, ALL_PBC, label=f"scale {scale}")
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
    nl = kernels(backend).NeighborList(CUTOFF)
    near_pairs = pair_dict(*nl.compute(pos, cell, ALL_PBC))
    far_pairs = pair_dict(*nl.compute(far, cell, ALL_PBC))
    relabelled = {}
    for (i, j, *shift), vec in far_pairs.items():
        np.testing.assert_allclose(vec, far[j] - far[i] + np.array(shift) @ cell, atol=1e-9)
        near_shift = np.array(shift) + offsets[j] - offsets[i]
        relabelled[(i, j, *map(int, near_shift))] = vec
    assert set(relabelled) == set(near_pairs)
    for key, vec in near_pairs.items():
        np.testing.assert_allclose(relabelled[key], vec, atol=1e-8)
    check_against_brute_force(backend, pos, cell, ALL_PBC, label="wrapped")


def test_far_apart_fragments_stay_cheap(backend):
    """Two molecules 1e6 Angstrom apart: bins are capped, so this is instant and small."""
    rng = np.random.default_rng(5)
    _, a = random_molecule(rng, 10)
    pos = np.concatenate([a, a + [1e6, -1e6, 3e5]])
    n = check_against_brute_force(backend, pos, None, None, label="fragments")
    assert n == 2 * len(brute_force_pairs(a, None, None, CUTOFF))


def test_no_atoms_single_atom_and_isolated_atoms(backend):
    nl = kernels(backend).NeighborList(CUTOFF)
    for pos in (np.zeros((0, 3)), np.zeros((1, 3)), np.array([[0.0, 0, 0], [10.0, 0, 0]])):
        pairs, shifts, vectors = nl.compute(pos, NO_CELL, NO_PBC)
        assert pairs.shape == (0, 2) and shifts.shape == (0, 3) and vectors.shape == (0, 3)
        assert pairs.dtype == np.int64 and shifts.dtype == np.int32 and vectors.dtype == np.float64


def test_single_atom_sees_its_own_images(backend):
    cell = np.diag([3.0, 3.0, 3.0])
    n = check_against_brute_force(backend, np.zeros((1, 3)), cell, ALL_PBC, label="self images")
    # Images within 5.2 A of a simple cubic lattice of 3 A: half of the non-zero shifts.
    shifts = np.array(list(itertools.product(range(-2, 3), repeat=3)))
    expected = (np.count_nonzero(np.linalg.norm(shifts * 3.0, axis=1) < CUTOFF) - 1) // 2
    assert n == expected


def test_output_order_does_not_depend_on_threads(backend):
    rng = np.random.default_rng(6)
    cell = np.diag([12.0, 12.0, 12.0])
    pos = rng.uniform(0, 12, (300, 3))
    k = kernels(backend)
    one = k.NeighborList(CUTOFF, n_threads=1).compute(pos, cell, ALL_PBC)
    for n_threads in (2, 0):
        other = k.NeighborList(CUTOFF, n_threads=n_threads).compute(pos, cell, ALL_PBC)
        for a, b in zip(one, other):
            np.testing.assert_array_equal(a, b)
    skin = k.NeighborList(CUTOFF, 1.0, n_threads=1).compute(pos, cell, ALL_PBC)
    for a, b in zip(skin, k.NeighborList(CUTOFF, 1.0, n_threads=2).compute(pos, cell, ALL_PBC)):
        np.testing.assert_array_equal(a, b)


def test_properties_and_input_left_alone(backend):
    nl = kernels(backend).NeighborList(4.5, 0.75, 1)
    assert nl.cutoff == 4.5 and nl.skin == 0.75 and nl.builds == 0
    pos = np.random.default_rng(7).uniform(0, 8, (30, 3))
    cell = SKEWED.copy()
    copies = (pos.copy(), cell.copy())
    nl.compute(pos, cell, ALL_PBC)
    np.testing.assert_array_equal(pos, copies[0])
    np.testing.assert_array_equal(cell, copies[1])
    # Python scalars and lists are accepted like arrays
    got = nl.compute(pos.tolist(), cell.tolist(), [True, True, True])
    assert len(got[0]) > 0


# ----------------------------------------------------------------------------- Verlet skin


def trajectory(rng, positions, steps, step_size):
    """Positions of a random walk of every atom (Angstrom), one frame per step."""
    frames = [positions]
    for _ in range(steps):
        frames.append(frames[-1] + rng.uniform(-step_size, step_size, positions.shape))
    return frames


def expected_builds(frames, skin):
    """The rule, independently: rebuild when an atom moved more than skin / 2 since the last build."""
    builds, reference = 0, None
    for x in frames:
        if reference is None or np.linalg.norm(x - reference, axis=1).max() > skin / 2:
            builds, reference = builds + 1, x
    return builds


SKIN_SYSTEMS = {
    "water-box": lambda rng: water_box(rng, 4)[1:] + (ALL_PBC,),
    "molecule": lambda rng: (random_molecule(rng, 40, box=9.0)[1], NO_CELL, NO_PBC),
    "skewed-TFT": lambda rng: (rng.uniform(0, 1, (40, 3)) @ SKEWED, SKEWED, np.array([True, False, True])),
}


@pytest.mark.parametrize("system", list(SKIN_SYSTEMS))
def test_skin_reuse_equals_a_fresh_list(backend, system):
    rng = np.random.default_rng(8)
    positions, cell, pbc = SKIN_SYSTEMS[system](rng)
    k = kernels(backend)
    skin = 1.0
    nl = k.NeighborList(CUTOFF, skin)
    frames = trajectory(rng, positions, 12, 0.12)
    seen = set()
    for step, x in enumerate(frames):
        got = nl.compute(x, cell, pbc)
        assert_same_set(got, k.NeighborList(CUTOFF).compute(x, cell, pbc), f"{system} step {step}")
        seen.add(sorted_list(*got)[0].tobytes())
    assert len(seen) > 2, "pairs should enter and leave the cutoff along the trajectory"
    builds = expected_builds(frames, skin)
    assert 1 < builds < len(frames), "the trajectory should both reuse and rebuild"
    assert nl.builds == builds


def test_skin_rebuilds_when_the_system_changes(backend):
    rng = np.random.default_rng(9)
    _, pos, cell = water_box(rng, 3)
    k = kernels(backend)
    nl = k.NeighborList(CUTOFF, 1.0)
    nl.compute(pos, cell, ALL_PBC)
    nl.compute(pos + 0.2, cell, ALL_PBC)  # every atom moved 0.35 A < skin / 2: kept
    assert nl.builds == 1
    changes = [
        ("cell", pos, cell * 1.001, ALL_PBC),
        ("pbc", pos, cell * 1.001, np.array([True, True, False])),
        ("atom count", pos[:-3], cell * 1.001, np.array([True, True, False])),
        ("moved", pos[:-3] + [0.0, 0.0, 0.51], cell * 1.001, np.array([True, True, False])),
    ]
    for n, (what, x, c, p) in enumerate(changes, start=2):
        got = nl.compute(x, c, p)
        assert nl.builds == n, what
        assert_same_set(got, k.NeighborList(CUTOFF).compute(x, c, p), what)


def test_builds_count_every_call_without_skin(backend):
    nl = kernels(backend).NeighborList(CUTOFF)
    pos = np.random.default_rng(10).uniform(0, 6, (10, 3))
    for n in range(1, 4):
        nl.compute(pos, NO_CELL, NO_PBC)
        assert nl.builds == n


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0.0,), "cutoff"),
        ((-1.0,), "cutoff"),
        ((float("nan"),), "cutoff"),
        ((float("inf"),), "cutoff"),
        ((CUTOFF, -0.1), "skin"),
        ((CUTOFF, float("nan")), "skin"),
        ((CUTOFF, float("inf")), "skin"),
    ],
)
def test_bad_cutoff_or_skin_raise(backend, args, name):
    with pytest.raises(ValueError, match=name):
        kernels(backend).NeighborList(*args)


@pytest.mark.parametrize("skin", [0.0, 1.0])
def test_bad_inputs_raise(backend, skin):
    """Wrong shapes, non-finite values and cells the search cannot handle: a ValueError naming
    the argument, never a crash, a hang or NaN vectors."""
    nl = kernels(backend).NeighborList(CUTOFF, skin)
    pos = np.random.default_rng(14).uniform(0, 5, (10, 3))
    nan_pos = pos.copy()
    nan_pos[3, 1] = np.nan
    inf_pos = pos.copy()
    inf_pos[0, 0] = -np.inf
    nan_open_row = np.diag([10.0, 10.0, 10.0])
    nan_open_row[2, 0] = np.nan  # in the row of a non-periodic direction
    xy = np.array([True, True, False])
    for name, call in [
        ("positions", lambda: nl.compute(np.zeros((4, 2)), NO_CELL, NO_PBC)),
        ("positions", lambda: nl.compute(np.zeros(3), NO_CELL, NO_PBC)),
        ("cell", lambda: nl.compute(pos, np.eye(2), NO_PBC)),
        ("pbc", lambda: nl.compute(pos, NO_CELL, np.ones(2, bool))),
        ("pbc", lambda: nl.compute(pos, NO_CELL, np.True_)),
        ("positions", lambda: nl.compute(nan_pos, np.eye(3) * 10, ALL_PBC)),
        ("positions", lambda: nl.compute(inf_pos, NO_CELL, NO_PBC)),
        ("cell", lambda: nl.compute(pos, nan_open_row, xy)),
        ("cell", lambda: nl.compute(pos, np.diag([10.0, 10.0, np.inf]), ALL_PBC)),
        ("cell", lambda: nl.compute(pos, NO_CELL, ALL_PBC)),  # periodic but no cell
        ("cell", lambda: nl.compute(pos, np.array([[10.0, 0, 0], [10, 0, 0], [0, 0, 10]]), xy)),  # dependent rows
        ("cell", lambda: nl.compute(pos, np.diag([10.0, 0.0, 10.0]), np.array([False, True, False]))),
        ("cell", lambda: nl.compute(pos, np.diag([10.0, 10.0, 0.05]), ALL_PBC)),  # 105 images each way
    ]:
        with pytest.raises(ValueError, match=name):
            call()
    assert nl.builds == 0  # failed calls built nothing
    # the object still works afterwards
    fresh = kernels(backend).NeighborList(CUTOFF).compute(pos, NO_CELL, NO_PBC)
    assert_same_set(nl.compute(pos, NO_CELL, NO_PBC), fresh)


@pytest.mark.parametrize("skin", [0.0, 1.0])
def test_concurrent_compute_from_threads(backend, skin):
    """Threads share one object, each walking its own trajectory (so the kept list keeps
    being replaced under the others): every result equals a fresh list."""
    rng = np.random.default_rng(11)
    _, pos, cell = water_box(rng, 4)
    k = kernels(backend)
    shared = k.NeighborList(CUTOFF, skin, 1)
    walks = [trajectory(np.random.default_rng(20 + t), pos, 6, 0.1) for t in range(4)]
    wants = [[k.NeighborList(CUTOFF).compute(x, cell, ALL_PBC) for x in walk] for walk in walks]
    errors = []
    barrier = threading.Barrier(len(walks))

    def run(t):
        try:
            barrier.wait()
            for _ in range(2):
                for x, want in zip(walks[t], wants[t]):
                    assert_same_set(shared.compute(x, cell, ALL_PBC), want, f"thread {t}")
        except Exception as err:  # reported in the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(len(walks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert 1 <= shared.builds <= 2 * sum(len(w) for w in walks)


# ----------------------------------------------------------------------------- C++ only: pool

needs_cpp = pytest.mark.skipif(not _backend.cpp_available(), reason="pyani's C++ extension is not built")


@needs_cpp
def test_big_outputs_return_to_the_pool_and_outlive_the_object():
    """Output arrays of 2 MB and more come from the object's pool and go back to it when
    NumPy frees them: repeated calls reuse them (the pool does not grow), the bits do not
    change, and arrays stay valid after the object is gone."""
    k = kernels("cpp")
    rng = np.random.default_rng(12)
    _, pos, cell = water_box(rng, 12)  # 5184 atoms, ~1.6e5 pairs: pairs and vectors > 2 MB
    nl = k.NeighborList(CUTOFF, 0.0, 2)
    first = nl.compute(pos, cell, ALL_PBC)
    first = [a.copy() for a in first]
    retained = nl.retained_bytes
    assert retained >= first[0].nbytes + first[2].nbytes

    def check(out):
        for a, b in zip(out, first):
            np.testing.assert_array_equal(a, b)

    for _ in range(3):
        check(nl.compute(pos, cell, ALL_PBC))  # the arrays are freed on return from check
        assert nl.retained_bytes == retained
    kept = nl.compute(pos, cell, ALL_PBC)
    del nl
    gc.collect()
    check(kept)


# ----------------------------------------------------------------------------- backend parity


def jittered(rng, cell, per_side, outside=0.0):
    """Atoms on a jittered grid of the cell; a fraction `outside` moved by whole cells."""
    grid = np.stack(np.meshgrid(*[np.arange(per_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frac = (grid + 0.5 + rng.uniform(-0.25, 0.25, grid.shape)) / per_side
    moved = rng.random(len(frac)) < outside
    frac[moved] += rng.integers(-3, 4, (moved.sum(), 3))
    return frac @ cell


def parity_systems():
    rng = np.random.default_rng(13)
    _, mol = random_molecule(rng, 40, box=9.0)
    cubic = np.eye(3) * 11.0
    small = SKEWED * 0.35
    _, a = random_molecule(rng, 10)
    out = {
        "molecule": (mol, NO_CELL, [False] * 3),
        "cubic": (jittered(rng, cubic, 6), cubic, [True] * 3),  # 216 atoms: several threads
        "triclinic": (jittered(rng, SKEWED, 4, outside=0.3), SKEWED, [True] * 3),
        "pbc-TFT": (jittered(rng, SKEWED, 4, outside=0.3), SKEWED, [True, False, True]),
        "pbc-FTF": (jittered(rng, SKEWED, 3, outside=0.3), SKEWED, [False, True, False]),
        "cell-smaller-than-cutoff": (rng.uniform(0, 1, (4, 3)) @ small, small, [True] * 3),
        "atoms-outside": (jittered(rng, SKEWED, 3, outside=1.0) + 40.0, SKEWED, [True] * 3),
        "far-fragments": (np.concatenate([a, a + [900.0, -700.0, 1200.0]]), NO_CELL, [False] * 3),
        "water-box": water_box(rng, 5)[1:] + ([True] * 3,),
    }
    return {label: (pos, cell, np.array(pbc)) for label, (pos, cell, pbc) in out.items()}


PARITY = parity_systems()


@pytest.mark.skipif(set(BACKENDS) != {"cpp", "numba"}, reason="needs both backends built")
@pytest.mark.parametrize("label", list(PARITY))
@pytest.mark.parametrize("skin", [0.0, 0.8])
def test_backends_agree(label, skin):
    positions, cell, pbc = PARITY[label]
    cpp, nb = kernels("cpp"), kernels("numba")
    frames = (positions, positions + 0.1)  # with a skin, the second call reuses the list
    wants = [cpp.NeighborList(CUTOFF, skin).compute(x, cell, pbc) for x in frames]
    assert len(wants[0][0]) > 0
    for n_threads in (1, 2):
        nl = nb.NeighborList(CUTOFF, skin, n_threads)
        for x, want in zip(frames, wants):
            assert_same_set(nl.compute(x, cell, pbc), want, f"{label}, {n_threads} threads")
        assert nl.builds == (1 if skin > 0 else 2)
