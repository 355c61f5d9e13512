"""Cell-list neighbour search, a line-by-line twin of ``cpp/cell_list.cpp``.

The floating-point operations are written in the C++ order (no fastmath, no reassociation)
so that bins, the cutoff test and therefore the pair list are bit-for-bit the same.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# The set-up pass hands the pair search one plain tuple (a NamedTuple built in jitted code
# cannot cross into a prange body: Numba's gufunc builder cannot name its type):
#   matrix [3,3] box rows (Angstrom), wrapped [N,3] positions moved into the box (Angstrom),
#   offset [N,3] int32 lattice translations removed, n_bins [3], reach [3] bins to visit on
#   each side, bin_of [N,3], bin_start [n_bins + 1] counting-sort offsets, bin_atoms [N].


@numba.njit(cache=True)
def _cross(a, b):
    out = np.empty(3)
    out[0] = a[1] * b[2] - a[2] * b[1]
    out[1] = a[2] * b[0] - a[0] * b[2]
    out[2] = a[0] * b[1] - a[1] * b[0]
    return out


@numba.njit(cache=True)
def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


@numba.njit(cache=True)
def _normalized(a):
    n = math.sqrt(_dot(a, a))
    out = np.empty(3)
    for c in range(3):
        out[c] = a[c] / n
    return out


@numba.njit(cache=True)
def _inverse(m):
    # Columns of the inverse are the cross products of the rows divided by the determinant.
    c0 = _cross(m[1], m[2])
    c1 = _cross(m[2], m[0])
    c2 = _cross(m[0], m[1])
    det = _dot(m[0], c0)
    inv = np.empty((3, 3))
    for r in range(3):
        inv[r, 0] = c0[r] / det
        inv[r, 1] = c1[r] / det
        inv[r, 2] = c2[r] / det
    return inv


@numba.njit(cache=True)
def make_box(positions, cell, pbc, cutoff):
    """The box the bins live in: (matrix [3,3] rows, inverse [3,3], origin [3]), Angstrom.

    Periodic rows are the cell's; each non-periodic row is a vector orthogonal to the other
    rows, as long as the atoms' extent along it (at least `cutoff`), so fractional
    coordinates lie in [0, 1] there whatever the cell holds in that row.
    """
    n_atoms = positions.shape[0]
    matrix = np.empty((3, 3))
    open_dirs = np.zeros(3, dtype=np.int64)
    n_open = 0
    for d in range(3):
        for c in range(3):
            matrix[d, c] = cell[d, c]
        if not pbc[d]:
            open_dirs[n_open] = d
            n_open += 1

    unit = np.zeros((3, 3))
    if n_open == 3:
        for d in range(3):
            unit[d, d] = 1.0
    elif n_open == 2:
        p = 3 - open_dirs[0] - open_dirs[1]
        a = matrix[p].copy()
        # Start from the Cartesian axis least aligned with the periodic vector.
        axis = 0
        for k in range(1, 3):
            if abs(a[k]) < abs(a[axis]):
                axis = k
        e = np.zeros(3)
        e[axis] = 1.0
        u0 = _normalized(_cross(a, e))
        u1 = _normalized(_cross(a, u0))
        for c in range(3):
            unit[open_dirs[0], c] = u0[c]
            unit[open_dirs[1], c] = u1[c]
    elif n_open == 1:
        d = open_dirs[0]
        u = _normalized(_cross(matrix[(d + 1) % 3], matrix[(d + 2) % 3]))
        for c in range(3):
            unit[d, c] = u[c]

    origin = np.zeros(3)
    for k in range(n_open):
        u = unit[open_dirs[k]]
        lo = np.inf
        hi = -np.inf
        for i in range(n_atoms):
            s = positions[i, 0] * u[0] + positions[i, 1] * u[1] + positions[i, 2] * u[2]
            # std::min / std::max semantics, so ties and signed zeros match the C++.
            if s < lo:
                lo = s
            if hi < s:
                hi = s
        if n_atoms == 0:
            lo = 0.0
            hi = 0.0
        extent = hi - lo
        if extent < cutoff:
            extent = cutoff
        # A little slack keeps the atoms at the far edge inside the last bin.
        length = extent * (1 + 1e-9) + 1e-9
        for c in range(3):
            matrix[open_dirs[k], c] = u[c] * length
            origin[c] += u[c] * lo
    return matrix, _inverse(matrix), origin


@numba.njit(cache=True)
def _prepare(positions, cell, pbc, cutoff):
    """Everything the pair search needs: wrapped positions, bins and their contents."""
    n_atoms = positions.shape[0]
    matrix, inverse, origin = make_box(positions, cell, pbc, cutoff)

    # Fractional coordinates, wrapped into [0, 1) along periodic directions; `offset`
    # remembers the lattice translation so shifts refer to the caller's positions.
    wrapped = np.empty((n_atoms, 3))
    offset = np.zeros((n_atoms, 3), dtype=np.int32)
    fractional = np.empty((n_atoms, 3))
    r = np.empty(3)
    for i in range(n_atoms):
        for c in range(3):
            r[c] = positions[i, c] - origin[c]
        for d in range(3):
            s = r[0] * inverse[0, d] + r[1] * inverse[1, d] + r[2] * inverse[2, d]
            if pbc[d]:
                k = math.floor(s)
                offset[i, d] = np.int32(k)
                s -= k
            fractional[i, d] = s
        for c in range(3):
            w = positions[i, c]
            for d in range(3):
                w -= offset[i, d] * matrix[d, c]
            wrapped[i, c] = w

    # Bins at least `cutoff` wide (distance between lattice planes), capped in number so
    # that far-apart fragments cannot ask for more bins than there are atoms.
    n_bins = np.empty(3, dtype=np.int64)
    reach = np.empty(3, dtype=np.int64)
    spacing = np.empty(3)
    for d in range(3):
        col2 = inverse[0, d] * inverse[0, d] + inverse[1, d] * inverse[1, d] + inverse[2, d] * inverse[2, d]
        spacing[d] = 1.0 / math.sqrt(col2)
        n_bins[d] = max(1, np.int64(math.floor(spacing[d] / cutoff)))
    max_bins = max(8, 2 * n_atoms)
    # The product is compared in float64: in int64 it can overflow for atoms ~1e8 Angstrom
    # apart (where the C++ wraps around); below 2**53 both comparisons agree exactly.
    while float(n_bins[0]) * float(n_bins[1]) * float(n_bins[2]) > max_bins:
        d = 0
        for k in range(1, 3):
            if n_bins[k] > n_bins[d]:  # first maximum, as std::max_element
                d = k
        n_bins[d] = (n_bins[d] + 1) // 2
    for d in range(3):
        reach[d] = np.int64(math.ceil(cutoff * n_bins[d] / spacing[d]))
        if not pbc[d]:
            reach[d] = min(reach[d], n_bins[d] - 1)

    # Counting sort of atoms into bins.
    total_bins = n_bins[0] * n_bins[1] * n_bins[2]
    bin_of = np.empty((n_atoms, 3), dtype=np.int64)
    bin_start = np.zeros(total_bins + 1, dtype=np.int64)
    bin_atoms = np.empty(n_atoms, dtype=np.int64)
    for i in range(n_atoms):
        for d in range(3):
            b = np.int64(math.floor(fractional[i, d] * n_bins[d]))
            bin_of[i, d] = min(max(b, 0), n_bins[d] - 1)
        bin_start[(bin_of[i, 0] * n_bins[1] + bin_of[i, 1]) * n_bins[2] + bin_of[i, 2] + 1] += 1
    for b in range(total_bins):
        bin_start[b + 1] += bin_start[b]
    fill = bin_start[:-1].copy()
    for i in range(n_atoms):
        b = (bin_of[i, 0] * n_bins[1] + bin_of[i, 1]) * n_bins[2] + bin_of[i, 2]
        bin_atoms[fill[b]] = i
        fill[b] += 1
    return matrix, wrapped, offset, n_bins, reach, bin_of, bin_start, bin_atoms


@numba.njit(cache=True)
def _atom_pairs(i, positions, cell, pbc, cutoff2, bins, write, first, pairs, shifts, vectors):
    """Pairs (i, j >= i) of atom i in the C++ order; written from row `first` when `write`.

    Returns how many there are, so one function serves the counting and the filling pass.
    Scalars rather than small arrays: no allocation per atom.
    """
    matrix, wrapped, offset, n_bins, reach, bin_of, bin_start, bin_atoms = bins
    count = 0
    for dx in range(-reach[0], reach[0] + 1):
        for dy in range(-reach[1], reach[1] + 1):
            for dz in range(-reach[2], reach[2] + 1):
                b0 = bin_of[i, 0] + dx
                b1 = bin_of[i, 1] + dy
                b2 = bin_of[i, 2] + dz
                # Floor division (Python's //) is the C++ floor_div.
                m0 = b0 // n_bins[0] if pbc[0] else 0
                m1 = b1 // n_bins[1] if pbc[1] else 0
                m2 = b2 // n_bins[2] if pbc[2] else 0
                b0 -= m0 * n_bins[0]
                b1 -= m1 * n_bins[1]
                b2 -= m2 * n_bins[2]
                if (
                    (not pbc[0] and (b0 < 0 or b0 >= n_bins[0]))
                    or (not pbc[1] and (b1 < 0 or b1 >= n_bins[1]))
                    or (not pbc[2] and (b2 < 0 or b2 >= n_bins[2]))
                ):
                    continue
                # Same summation order as the C++: image 0, 1, 2 added to 0.0.
                t0 = 0.0 + m0 * matrix[0, 0] + m1 * matrix[1, 0] + m2 * matrix[2, 0]
                t1 = 0.0 + m0 * matrix[0, 1] + m1 * matrix[1, 1] + m2 * matrix[2, 1]
                t2 = 0.0 + m0 * matrix[0, 2] + m1 * matrix[1, 2] + m2 * matrix[2, 2]
                positive_image = m0 > 0 or (m0 == 0 and (m1 > 0 or (m1 == 0 and m2 > 0)))
                bin_ = (b0 * n_bins[1] + b1) * n_bins[2] + b2
                for k in range(bin_start[bin_], bin_start[bin_ + 1]):
                    j = bin_atoms[k]
                    if j < i or (j == i and not positive_image):
                        continue
                    v0 = wrapped[j, 0] + t0 - wrapped[i, 0]
                    v1 = wrapped[j, 1] + t1 - wrapped[i, 1]
                    v2 = wrapped[j, 2] + t2 - wrapped[i, 2]
                    if v0 * v0 + v1 * v1 + v2 * v2 >= cutoff2:
                        continue
                    if write:
                        row = first + count
                        s0 = np.int32(m0) - offset[j, 0] + offset[i, 0]
                        s1 = np.int32(m1) - offset[j, 1] + offset[i, 1]
                        s2 = np.int32(m2) - offset[j, 2] + offset[i, 2]
                        pairs[row, 0] = i
                        pairs[row, 1] = j
                        for c in range(3):
                            vectors[row, c] = (
                                positions[j, c] - positions[i, c] + s0 * cell[0, c] + s1 * cell[1, c] + s2 * cell[2, c]
                            )
                        shifts[row, 0] = s0
                        shifts[row, 1] = s1
                        shifts[row, 2] = s2
                    count += 1
    return count


@numba.njit(cache=True)
def _allocate(counts):
    starts = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    for i in range(counts.shape[0]):
        starts[i + 1] = starts[i] + counts[i]
    n_pairs = starts[-1]
    return (
        starts,
        np.empty((n_pairs, 2), dtype=np.int64),
        np.empty((n_pairs, 3), dtype=np.int32),
        np.empty((n_pairs, 3), dtype=np.float64),
    )


@numba.njit(cache=True, parallel=True)
def neighbor_list(positions, cell, pbc, cutoff):
    """Half neighbour list within `cutoff` (Angstrom): (pairs [P,2] int64, shifts [P,3] int32,
    vectors [P,3] float64 Angstrom), in the C++ order.

    Atoms are spread over threads; each atom owns a block of rows sized by a counting pass,
    so the output order is the C++ order (atoms in index order) for any thread count.
    """
    n_atoms = positions.shape[0]
    bins = _prepare(positions, cell, pbc, cutoff)
    cutoff2 = cutoff * cutoff
    counts = np.empty(n_atoms, dtype=np.int64)
    starts, pairs, shifts, vectors = _allocate(counts[:0])
    # int64(i): prange indices are uint64 in the parallel body but int64 when this function
    # is typed, and each would compile its own copy of _atom_pairs.
    for i in numba.prange(n_atoms):
        counts[i] = _atom_pairs(np.int64(i), positions, cell, pbc, cutoff2, bins, False, 0, pairs, shifts, vectors)
    starts, pairs, shifts, vectors = _allocate(counts)
    for i in numba.prange(n_atoms):
        _atom_pairs(np.int64(i), positions, cell, pbc, cutoff2, bins, True, starts[i], pairs, shifts, vectors)
    return pairs, shifts, vectors
