"""Numba twin of the C++ core (``pyani._core``), behind the backend interface of
``pyani._backend``: the same objects and functions, arguments, dtypes and pair order. Checks
are only those memory safety needs (shapes, index ranges), with messages of their own.

Kernels are compiled on first use (~15 s) and cached on disk (``cache=True``: next to the
sources, else in Numba's user cache directory; NUMBA_CACHE_DIR overrides), so later
processes only load them (~0.4 s).
"""

from __future__ import annotations

import math
import operator
import threading
from contextlib import contextmanager

import numba
import numpy as np

from .._validate import cutoff_function
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


def _in_range(a: np.ndarray, stop: int) -> bool:
    """Every entry in 0..stop-1."""
    return a.size == 0 or (a.min() >= 0 and a.max() < stop)


def _distinct(a: np.ndarray, stop: int) -> bool:
    """No value twice in `a` (values in 0..stop-1): O(stop), no sort."""
    seen = np.zeros(stop, dtype=np.bool_)
    seen[a] = True
    return int(np.count_nonzero(seen)) == a.size


def _params(aev: dict, n_species) -> AEVParams:
    n_species = operator.index(n_species)
    _require(n_species > 0, f"n_species must be positive, got {n_species}")
    try:
        scalars = {key: float(aev[key]) for key in ("radial_cutoff", "angular_cutoff", "eta_r", "eta_a", "zeta")}
        shifts = {key: np.array(aev[key], dtype=np.float64) for key in ("shf_r", "shf_a", "shf_z")}
    except KeyError as err:
        raise ValueError(f"aev: no entry {err}") from None
    except (TypeError, ValueError):
        raise ValueError("aev: cutoffs, eta and zeta must be numbers, the shifts sequences of numbers") from None
    for key, value in shifts.items():
        _require(value.ndim == 1 and value.size > 0, f"aev: {key} must be a non-empty sequence of numbers")
    _require(
        all(np.isfinite(v) for v in scalars.values()) and all(np.isfinite(v).all() for v in shifts.values()),
        "aev: every parameter must be finite",
    )
    radial, angular = scalars["radial_cutoff"], scalars["angular_cutoff"]
    _require(0 < angular <= radial, f"aev: need 0 < angular_cutoff <= radial_cutoff, got {angular} and {radial}")
    kind, cutoff_params = cutoff_function(aev.get("cutoff_fn"), aev.get("cutoff_fn_params"))
    return AEVParams(n_species=n_species, **scalars, **shifts, smooth_cutoff=kind == "smooth", **cutoff_params)


class AEVComputer:
    """ANI AEVs and their backward pass for one set of parameters (a model's ``aev``
    metadata: cutoffs in Angstrom, eta in 1/Angstrom^2, shifts in Angstrom or radians).
    Thread-safe: each forward() returns an AEVPass that owns its state."""

    isa = "numba"
    retained_bytes = 0  # no pool: NumPy and Numba's allocator manage the buffers

    def __init__(self, aev: dict, n_species: int, n_threads: int = 0, isa: str = "auto", dtype: str = "float32"):
        _require(isa == "auto", f"isa: the Numba backend has one variant ('auto'), got {isa!r}")
        _require(dtype in ("float32", "float64"), f"dtype: 'float32' or 'float64', got {dtype!r}")
        self.dtype = dtype
        """Precision of the AEV and dE/dAEV."""
        self._params = _params(aev, n_species)
        self._n_threads = operator.index(n_threads)
        self.length = self._params.length

    def forward(self, species, pairs, vectors, rows, n_rows, features=None, backward=False) -> AEVPass:
        """AEVPass of atoms species [N] (int32, 0..n_species-1) over the half list pairs [P,2]
        (int64) / vectors [P,3] (float64, Angstrom); atom i's AEV goes to row rows[i] of
        n_rows; features: columns of the full layout to keep (None: all); backward: keep what
        AEVPass.backward needs."""
        # Checked copies of the index arrays: the caller may change its own afterwards (the
        # pass keeps rows; pairs are checked as the directed index is built).
        species = _array(species, np.int32).copy()
        pairs = _array(pairs, np.int64)
        vectors = _array(vectors, np.float64)
        rows = _array(rows, np.int64).copy()
        n_rows = operator.index(n_rows)
        _require_shape(species, "species", (-1,))
        n_atoms = species.shape[0]
        _require_shape(pairs, "pairs", (-1, 2))
        _require_shape(vectors, "vectors", (pairs.shape[0], 3))
        _require_shape(rows, "rows", (n_atoms,))
        _require(n_rows >= n_atoms, f"n_rows ({n_rows}) is smaller than the number of atoms ({n_atoms})")
        _require(_in_range(species, self._params.n_species), "species out of range")
        _require(_in_range(rows, n_rows), "rows out of range")
        _require(_distinct(rows, n_rows), "rows: every atom needs a row of its own")
        if features is None:
            features = np.arange(self.length, dtype=np.int64)
        else:
            features = _array(features, np.int64).copy()
            _require_shape(features, "features", (-1,))
            _require(_in_range(features, self.length), "features out of range")
            _require(_distinct(features, self.length), "features: a column appears twice")
        with _using_threads(_threads(self._n_threads, n_atoms, _MIN_ATOMS_PER_THREAD_AEV)):
            tables = _aev.setup(self._params, species, pairs)
            # Rows no atom names stay zero.
            out = np.zeros((n_rows, features.size), dtype=self.dtype)
            _aev.forward(self._params, tables, vectors, rows, features, out)
        return AEVPass(self, out, tables if backward else None, vectors, rows, features)


class AEVPass:
    """One forward pass: ``aev`` [n_rows, n_features] (the computer's dtype, writable) and, when made with
    backward=True, what backward() needs."""

    def __init__(self, computer, aev, tables, vectors, rows, features):
        self.aev = aev
        self._computer = computer
        self._tables = tables
        self._vectors = vectors
        self._rows = rows
        self._features = features

    def backward(self, grad_aev, pair_bounds=None, forces=True, virial=False):
        """(forces [N,3] = -dE/dr (float64, Hartree/Angstrom) or None, virial [B,3,3]
        (Hartree) or None) from grad_aev = dE/dAEV [n_rows, n_features] (Hartree, the AEV's dtype).
        virial[b] sums outer(vector, dE/dvector) over pairs pair_bounds[b]:pair_bounds[b+1]
        (int64 [B+1]; None: one structure with all pairs)."""
        if self._tables is None:
            raise ValueError("backward: this pass was made by forward(..., backward=False)")
        grad_aev = _array(grad_aev, self.aev.dtype)
        _require_shape(grad_aev, "grad_aev", self.aev.shape)
        n_pairs = self._vectors.shape[0]
        if pair_bounds is None:
            bounds = np.array([0, n_pairs], dtype=np.int64)
        else:
            bounds = _array(pair_bounds, np.int64)
            _require_shape(bounds, "pair_bounds", (-1,))
            _require(bounds.size > 0, "pair_bounds is empty")
            _require(_in_range(bounds, n_pairs + 1), "pair_bounds out of range")
            _require(bool(np.all(np.diff(bounds) >= 0)), "pair_bounds must be nondecreasing")
        computer = self._computer
        n_threads = _threads(computer._n_threads, self._rows.shape[0], _MIN_ATOMS_PER_THREAD_AEV)
        with _using_threads(n_threads):
            grad_entry = _aev.backward_entries(
                computer._params, self._tables, self._vectors, self._rows, self._features, grad_aev
            )
            atom_forces = _aev.forces_from_entries(self._tables, grad_entry) if forces else None
            pair_virial = _aev.virial_from_entries(self._tables, grad_entry, self._vectors, bounds) if virial else None
        return atom_forces, pair_virial


__all__ = ["AEVComputer", "AEVPass", "NeighborList"]
