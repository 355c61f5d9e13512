"""Numba twin of the C++ core (``pyani._core``), behind the backend interface of
``pyani._backend``: same functions, arguments, checks, error messages, dtypes and pair order.

Kernels are compiled on first use (~15 s) and cached on disk (``cache=True``: next to the
sources, else in Numba's user cache directory; NUMBA_CACHE_DIR overrides), so later
processes only load them (~0.4 s).

The function ``aev`` below shadows the submodule ``pyani._numba.aev`` as an attribute of
this package; reach the module through ``sys.modules["pyani._numba.aev"]`` if needed.
"""

from __future__ import annotations

import math
import operator
import threading
from contextlib import contextmanager

import numba
import numpy as np

from . import aev as _aev
from . import cell_list as _cell_list
from .aev import AEVParams

# Thread start-up costs more than the work for small systems: the C++ core's thresholds.
# Small systems still go through the parallel kernels, on one thread: a launch costs a few
# microseconds, less than compiling serial twins of every kernel.
_MIN_ATOMS_PER_THREAD_AEV = 32
_MIN_ATOMS_PER_THREAD_NEIGHBORS = 64

_launch_lock = threading.Lock()
_layer_is_threadsafe: bool | None = None


def _parallel_launch_is_threadsafe() -> bool:
    """Whether parallel kernels may run from several Python threads at once.

    Numba's "workqueue" threading layer aborts the process on concurrent launches; "omp" and
    "tbb" do not. With workqueue (or a layer not yet started) launches take a lock.
    """
    global _layer_is_threadsafe
    if _layer_is_threadsafe is None:
        try:
            _layer_is_threadsafe = numba.threading_layer() != "workqueue"
        except ValueError:  # not started; numba.get/set_num_threads start it
            return False
    return _layer_is_threadsafe


def _threads(n_threads, n_atoms: int, min_atoms_per_thread: int) -> int:
    n_threads = operator.index(n_threads)
    # 0 (or negative, as in the C++ resolve_threads) = this thread's current numba setting.
    wanted = n_threads if n_threads > 0 else numba.get_num_threads()
    wanted = min(wanted, numba.config.NUMBA_NUM_THREADS)
    return max(1, min(wanted, n_atoms // min_atoms_per_thread))


@contextmanager
def _using_threads(n: int):
    # numba.set_num_threads is thread-local (each Python thread has its own value), so setting
    # and restoring it here does not disturb other threads running kernels concurrently.
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        if _parallel_launch_is_threadsafe():
            yield
        else:
            with _launch_lock:
                yield
    finally:
        numba.set_num_threads(previous)


def _array(value, dtype) -> np.ndarray:
    """C-contiguous, writeable array of `dtype` (unsafe casts, like pybind11's forcecast);
    writeable so that Numba compiles one signature per kernel, not one per input flag."""
    out = np.asarray(value, dtype=dtype, order="C")
    return out if out.flags.writeable else out.copy()


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _require_shape(a: np.ndarray, name: str, shape: tuple) -> None:
    ok = a.ndim == len(shape) and all(s < 0 or a.shape[d] == s for d, s in enumerate(shape))
    if not ok:
        want = "(" + ", ".join("n" if s < 0 else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}")


def _check_pairs(pairs: np.ndarray, vectors: np.ndarray, n_atoms: int, vectors_name: str = "vectors") -> None:
    _require_shape(pairs, "pairs", (-1, 2))
    _require_shape(vectors, vectors_name, (pairs.shape[0], 3))
    in_range = pairs.size == 0 or (pairs.min() >= 0 and pairs.max() < n_atoms)
    _require(in_range, "pairs contains an atom index out of range")


def _check_atoms(params: AEVParams, species: np.ndarray, rows: np.ndarray, n_rows: int) -> None:
    _require_shape(species, "species", (-1,))
    _require_shape(rows, "rows", (species.shape[0],))
    # The C++ checks atom by atom (species, then rows): the first bad atom names the message.
    bad_species = np.flatnonzero((species < 0) | (species >= params.n_species))
    bad_rows = np.flatnonzero((rows < 0) | (rows >= n_rows))
    if bad_species.size and (not bad_rows.size or bad_species[0] <= bad_rows[0]):
        raise ValueError("species contains an index out of range")
    _require(not bad_rows.size, "rows contains an index out of range")


def make_params(aev: dict, n_species: int) -> AEVParams:
    """Kernel parameters from a model's ``aev`` metadata (cutoffs in Angstrom, eta in
    1/Angstrom^2, shifts in Angstrom or radians)."""
    n_species = operator.index(n_species)
    radial_cutoff = float(aev["radial_cutoff"])
    angular_cutoff = float(aev["angular_cutoff"])
    shifts = {}
    for key in ("shf_r", "shf_a", "shf_z"):
        value = np.array(aev[key], dtype=np.float64)
        if value.ndim != 1:
            raise ValueError(f"{key} must be a sequence of numbers")
        shifts[key] = value
    _require(n_species > 0, "n_species must be positive")
    _require(angular_cutoff > 0 and angular_cutoff <= radial_cutoff, "angular_cutoff must be in (0, radial_cutoff]")
    _require(all(v.size for v in shifts.values()), "shf_r, shf_a and shf_z must not be empty")
    return AEVParams(
        n_species=n_species,
        radial_cutoff=radial_cutoff,
        angular_cutoff=angular_cutoff,
        eta_r=float(aev["eta_r"]),
        eta_a=float(aev["eta_a"]),
        zeta=float(aev["zeta"]),
        **shifts,
    )


def _finite_float(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} should be a number of Angstrom, not {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} should be a finite number of Angstrom, not {out}")
    return out


class NeighborList:
    """Half neighbour list within `cutoff` (Angstrom), kept between calls with a Verlet `skin`
    (Angstrom, 0 = build every call); n_threads: Numba threads (0 = Numba's setting).

    With a skin, the list is built with cutoff + skin and reused while the atom count, cell
    and pbc stay the same and no atom moves more than skin / 2 from where it was built
    (then no pair can have come within the cutoff unseen). Atomic numbers play no part: the
    pairs depend on geometry only. Several threads may call compute() at once.
    """

    def __init__(self, cutoff, skin=0.0, n_threads=0):
        cutoff = _finite_float(cutoff, "cutoff")
        skin = _finite_float(skin, "skin")
        if cutoff <= 0:
            raise ValueError(f"cutoff should be above 0 Angstrom, not {cutoff}")
        if skin < 0:
            raise ValueError(f"skin should be 0 Angstrom or more, not {skin}")
        self._cutoff = cutoff
        self._skin = skin
        self._n_threads = operator.index(n_threads)
        self._lock = threading.Lock()
        self._builds = 0
        # (positions, cell, pbc, pairs, shifts) of the list built with cutoff + skin; replaced
        # whole, never changed, so a call can go on filtering the one it took.
        self._kept = None

    @property
    def cutoff(self) -> float:
        """Cutoff, Angstrom."""
        return self._cutoff

    @property
    def skin(self) -> float:
        """Verlet skin, Angstrom."""
        return self._skin

    @property
    def builds(self) -> int:
        """How many lists were built from scratch so far."""
        return self._builds

    @property
    def retained_bytes(self) -> int:
        """Bytes of reusable buffers kept between calls: none here (NumPy allocates)."""
        return 0

    def compute(self, positions, cell, pbc):
        """(pairs int64 [P,2], shifts int32 [P,3], vectors float64 [P,3] Angstrom) of atoms at
        positions [N,3] (Angstrom) in cell [3,3] (rows = lattice vectors) with periodicity
        pbc [3]: each (i, j, shift) once, vector = positions[j] - positions[i] + shift @ cell,
        |vector| < cutoff."""
        positions = _array(positions, np.float64)
        cell = _array(cell, np.float64)
        pbc = _array(pbc, np.bool_)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions should have shape (N, 3), not {positions.shape}")
        if cell.shape != (3, 3):
            raise ValueError(f"cell should have shape (3, 3), not {cell.shape}")
        if pbc.shape != (3,):
            raise ValueError(f"pbc should have shape (3,), not {pbc.shape}")
        if not np.isfinite(positions).all():
            raise ValueError("positions should be finite numbers of Angstrom (found NaN or infinity)")
        if not np.isfinite(cell).all():  # open rows too: zero shifts multiply them into the vectors
            raise ValueError("cell should hold finite numbers of Angstrom (found NaN or infinity)")
        n_atoms = positions.shape[0]
        threads = _threads(self._n_threads, n_atoms, _MIN_ATOMS_PER_THREAD_NEIGHBORS)
        if self._skin == 0:
            out = self._build(positions, cell, pbc, self._cutoff, threads)
            with self._lock:
                self._builds += 1  # after: a build that raised is no build
            return out
        with self._lock:
            kept = self._kept
        if kept is None or not self._still_valid(kept, positions, cell, pbc):
            pairs, shifts, _ = self._build(positions, cell, pbc, self._cutoff + self._skin, threads)
            kept = (positions.copy(), cell.copy(), pbc.copy(), pairs, shifts)
            with self._lock:
                self._kept = kept
                self._builds += 1
        with _using_threads(threads):
            return _cell_list.pairs_within(positions, cell, kept[3], kept[4], self._cutoff)

    def _still_valid(self, kept, positions, cell, pbc) -> bool:
        old_positions, old_cell, old_pbc, _, _ = kept
        same_box = np.array_equal(old_cell, cell) and np.array_equal(old_pbc, pbc)
        if old_positions.shape != positions.shape or not same_box:
            return False
        if positions.size == 0:
            return True
        moved2 = np.einsum("ij,ij->i", positions - old_positions, positions - old_positions)
        return bool(moved2.max() <= 0.25 * self._skin**2)  # NaN compares False: rebuild

    @staticmethod
    def _build(positions, cell, pbc, cutoff, threads):
        if positions.shape[0] == 0:
            return np.empty((0, 2), np.int64), np.empty((0, 3), np.int32), np.empty((0, 3), np.float64)
        with _using_threads(threads):
            return _cell_list.neighbor_list(positions, cell, pbc, cutoff)


def _features(params: AEVParams, features) -> np.ndarray:
    """The AEV columns to keep (C++ check_features): all when None."""
    if features is None:
        return np.arange(params.length, dtype=np.int64)
    features = _array(features, np.int64)
    _require_shape(features, "features", (-1,))
    _require(
        features.size == 0 or (features.min() >= 0 and features.max() < params.length),
        "features contains a column out of range",
    )
    _require(np.unique(features).size == features.size, "features contains a column twice")
    return features


def aev(params, species, pairs, vectors, rows, n_rows, n_threads=0, features=None, *, scratch=None):
    """AEVs [n_rows, len(features)] (float32) of atoms with species [N] (0..n_species-1), from
    the half list pairs [P,2] / vectors [P,3] (Angstrom); atom i goes to row rows[i].
    features: the columns of the full AEV layout to keep (default all). scratch: from
    make_scratch(), None here (the C++ core reuses big buffers through it)."""
    species = _array(species, np.int32)
    pairs = _array(pairs, np.int64)
    vectors = _array(vectors, np.float64)
    rows = _array(rows, np.int64)
    n_rows = operator.index(n_rows)
    _check_atoms(params, species, rows, n_rows)
    _check_pairs(pairs, vectors, species.shape[0])
    features = _features(params, features)
    # Rows not named in `rows` (none in normal use) must not hold garbage.
    out = np.zeros((n_rows, features.size), dtype=np.float32)
    with _using_threads(_threads(n_threads, species.shape[0], _MIN_ATOMS_PER_THREAD_AEV)):
        _aev.aev_forward(params, species, pairs, vectors, rows, features, out)
    return out


def aev_backward(params, species, pairs, vectors, rows, grad_aev, n_threads=0, features=None, *, scratch=None):
    """dE/d(vectors) [P,3] (float64, Hartree/Angstrom) from dE/dAEV grad_aev
    [n_rows, len(features)] (float32, Hartree); other arguments as for `aev`."""
    species = _array(species, np.int32)
    pairs = _array(pairs, np.int64)
    vectors = _array(vectors, np.float64)
    rows = _array(rows, np.int64)
    grad_aev = _array(grad_aev, np.float32)
    features = _features(params, features)
    _require_shape(grad_aev, "grad_aev", (-1, features.size))
    _check_atoms(params, species, rows, grad_aev.shape[0])
    _check_pairs(pairs, vectors, species.shape[0])
    with _using_threads(_threads(n_threads, species.shape[0], _MIN_ATOMS_PER_THREAD_AEV)):
        return _aev.aev_backward(params, species, pairs, vectors, rows, features, grad_aev)


def pair_forces(n_atoms, pairs, grad_vectors):
    """Forces [N,3] = -dE/dr (float64, Hartree/Angstrom) from dE/d(vector) [P,3] of each pair."""
    n_atoms = operator.index(n_atoms)
    pairs = _array(pairs, np.int64)
    grad_vectors = _array(grad_vectors, np.float64)
    _require(n_atoms >= 0, "n_atoms must be non-negative")
    _check_pairs(pairs, grad_vectors, n_atoms, "grad_vectors")
    return _aev.pair_forces(n_atoms, pairs, grad_vectors)


def make_scratch() -> None:
    """No reusable buffers here: NumPy and Numba's own allocator manage the temporaries."""
    return None


__all__ = ["NeighborList", "aev", "aev_backward", "make_params", "make_scratch", "pair_forces"]
