"""Cell-list neighbour search in Numba: the box (and wrapping atoms into it), the bins, the
pair search around one atom, and the output (count each atom's pairs, then fill its rows).

Same box and bins as ``cpp/cell_list.cpp`` and no fastmath, so the pair set agrees with the
C++ core's (the tests compare sets of (i, j, shift), and vectors to rounding).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# The set-up hands the pair search one plain tuple (a NamedTuple built in jitted code cannot
# cross into a prange body: Numba's gufunc builder cannot name its type):
#   matrix [3,3] box rows (Angstrom), wrapped [N,3] positions moved into the box (Angstrom),
#   offset [N,3] int32 lattice translations removed, n_bins [3], reach [3] bins to visit on
#   each side, bin_of [N,3], bin_start [n_bins + 1] first slot of each bin, bin_atoms [N]
#   atoms by bin (ascending within a bin), bin_wrapped [3,N] wrapped positions in that order
#   (one row per component: contiguous per bin), near_bin [3, W]: along direction d, bin
#   o + k - reach[d] seen from bin o at [d, o * (2 reach[d] + 1) + k], wrapped when periodic
#   (near_image the image number it was wrapped from), -1 outside an open direction.

# Periodic images searched on each side at most: more would take forever (planes 0.1 Angstrom
# apart for a 5 Angstrom cutoff already mean 129^3 bins per atom).
MAX_REACH = 64
SINGULAR_CELL = "cell: periodic rows dependent, or lattice planes closer than cutoff / 64"
# Pairs per task when filtering a kept list: fixed, so the result does not depend on the thread count.
FILTER_CHUNK = 4096


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
    if n == 0:  # a cross product of dependent periodic rows (Numba would raise ZeroDivisionError)
        raise ValueError(SINGULAR_CELL)
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
    if det == 0:
        raise ValueError(SINGULAR_CELL)
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
def _wrap(positions, matrix, inverse, origin, pbc):
    """(wrapped [N,3] Angstrom, offset [N,3] int32, fractional [N,3]): atoms moved into the
    box along periodic directions, the lattice translation taken off, box coordinates."""
    n_atoms = positions.shape[0]
    wrapped = np.empty((n_atoms, 3))
    offset = np.zeros((n_atoms, 3), dtype=np.int32)
    fractional = np.empty((n_atoms, 3))
    for i in range(n_atoms):
        r0 = positions[i, 0] - origin[0]
        r1 = positions[i, 1] - origin[1]
        r2 = positions[i, 2] - origin[2]
        for d in range(3):
            s = r0 * inverse[0, d] + r1 * inverse[1, d] + r2 * inverse[2, d]
            if pbc[d]:
                whole = math.floor(s)
                offset[i, d] = np.int32(whole)
                s -= whole
            fractional[i, d] = s
        for c in range(3):
            w = positions[i, c]
            for d in range(3):
                w -= offset[i, d] * matrix[d, c]
            wrapped[i, c] = w
    return wrapped, offset, fractional


@numba.njit(cache=True)
def _bins(matrix, inverse, pbc, wrapped, fractional, cutoff):
    """(n_bins [3], reach [3], bin_of [N,3], bin_start, bin_atoms [N], bin_wrapped [3,N],
    near_bin [3, W], near_image [3, W]); see the note at the top of this file."""
    n_atoms = wrapped.shape[0]
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
    # The product in float64: in int64 it can overflow for atoms ~1e8 Angstrom apart.
    while float(n_bins[0]) * float(n_bins[1]) * float(n_bins[2]) > max_bins:
        d = 0
        for k in range(1, 3):
            if n_bins[k] > n_bins[d]:
                d = k
        n_bins[d] = (n_bins[d] + 1) // 2
    for d in range(3):
        r = math.ceil(cutoff * n_bins[d] / spacing[d]) if spacing[d] > 0 else np.inf
        if pbc[d] and not r <= MAX_REACH:  # NaN too
            raise ValueError(SINGULAR_CELL)
        reach[d] = np.int64(min(r, n_bins[d] - 1)) if not pbc[d] else np.int64(r)

    # Per direction, the bins within reach of each bin and their image numbers (tables, so
    # the search does no floor division per visited bin).
    width = 0
    for d in range(3):
        width = max(width, n_bins[d] * (2 * reach[d] + 1))
    near_bin = np.empty((3, width), dtype=np.int64)
    near_image = np.empty((3, width), dtype=np.int64)
    for d in range(3):
        span = 2 * reach[d] + 1
        for o in range(n_bins[d]):
            for k in range(span):
                b = o + k - reach[d]
                image = 0
                if pbc[d]:
                    image = b // n_bins[d]
                    b -= image * n_bins[d]
                elif b < 0 or b >= n_bins[d]:
                    b = -1
                near_bin[d, o * span + k] = b
                near_image[d, o * span + k] = image

    # Counting sort into bins; stable, so atoms ascend within a bin.
    bin_of = np.empty((n_atoms, 3), dtype=np.int64)
    bin_start = np.zeros(n_bins[0] * n_bins[1] * n_bins[2] + 1, dtype=np.int64)
    for i in range(n_atoms):
        for d in range(3):
            b = np.int64(math.floor(fractional[i, d] * n_bins[d]))
            bin_of[i, d] = min(max(b, 0), n_bins[d] - 1)
        bin_start[(bin_of[i, 0] * n_bins[1] + bin_of[i, 1]) * n_bins[2] + bin_of[i, 2] + 1] += 1
    for b in range(bin_start.shape[0] - 1):
        bin_start[b + 1] += bin_start[b]
    fill = bin_start[:-1].copy()
    bin_atoms = np.empty(n_atoms, dtype=np.int64)
    bin_wrapped = np.empty((3, n_atoms))
    for i in range(n_atoms):
        b = (bin_of[i, 0] * n_bins[1] + bin_of[i, 1]) * n_bins[2] + bin_of[i, 2]
        slot = fill[b]
        fill[b] += 1
        bin_atoms[slot] = i
        for c in range(3):
            bin_wrapped[c, slot] = wrapped[i, c]
    return n_bins, reach, bin_of, bin_start, bin_atoms, bin_wrapped, near_bin, near_image


@numba.njit(cache=True)
def _prepare(positions, cell, pbc, cutoff):
    """The box, the wrapped atoms and the bins, as the tuple the pair search takes."""
    matrix, inverse, origin = make_box(positions, cell, pbc, cutoff)
    wrapped, offset, fractional = _wrap(positions, matrix, inverse, origin, pbc)
    return (matrix, wrapped, offset) + _bins(matrix, inverse, pbc, wrapped, fractional, cutoff)


@numba.njit(cache=True)
def _pair_vector(positions, cell, i, j, s0, s1, s2, c):
    """Component c of positions[j] - positions[i] + shift @ cell (Angstrom)."""
    return positions[j, c] - positions[i, c] + s0 * cell[0, c] + s1 * cell[1, c] + s2 * cell[2, c]


@numba.njit(cache=True)
def _atom_pairs(i, positions, cell, cutoff2, grid, write, first, pairs, shifts, vectors):
    """Pairs (i, j >= i) of atom i closer than sqrt(cutoff2), written from row `first` when
    `write`; returns how many, so one function serves the counting and the filling pass
    (which counts without a branch on the distance). No allocation per atom."""
    matrix, wrapped, offset, n_bins, reach, bin_of, bin_start, bin_atoms, bin_wrapped, near_bin, near_image = grid
    span0 = 2 * reach[0] + 1
    span1 = 2 * reach[1] + 1
    span2 = 2 * reach[2] + 1
    row0 = bin_of[i, 0] * span0
    row1 = bin_of[i, 1] * span1
    row2 = bin_of[i, 2] * span2
    xi = wrapped[i, 0]
    yi = wrapped[i, 1]
    zi = wrapped[i, 2]
    count = 0
    for kx in range(span0):
        b0 = near_bin[0, row0 + kx]
        if b0 < 0:
            continue
        m0 = near_image[0, row0 + kx]
        for ky in range(span1):
            b1 = near_bin[1, row1 + ky]
            if b1 < 0:
                continue
            m1 = near_image[1, row1 + ky]
            for kz in range(span2):
                b2 = near_bin[2, row2 + kz]
                if b2 < 0:
                    continue
                m2 = near_image[2, row2 + kz]
                t0 = m0 * matrix[0, 0] + m1 * matrix[1, 0] + m2 * matrix[2, 0]
                t1 = m0 * matrix[0, 1] + m1 * matrix[1, 1] + m2 * matrix[2, 1]
                t2 = m0 * matrix[0, 2] + m1 * matrix[1, 2] + m2 * matrix[2, 2]
                bin_ = (b0 * n_bins[1] + b1) * n_bins[2] + b2
                lo = bin_start[bin_]
                hi = bin_start[bin_ + 1]
                # Half list: partners below i are skipped without reading their positions,
                # and i itself (first if present) unless seen through a positive image.
                while lo < hi and bin_atoms[lo] < i:
                    lo += 1
                positive_image = m0 > 0 or (m0 == 0 and (m1 > 0 or (m1 == 0 and m2 > 0)))
                if lo < hi and bin_atoms[lo] == i and not positive_image:
                    lo += 1
                if not write:
                    for k in range(lo, hi):
                        v0 = bin_wrapped[0, k] + t0 - xi
                        v1 = bin_wrapped[1, k] + t1 - yi
                        v2 = bin_wrapped[2, k] + t2 - zi
                        count += v0 * v0 + v1 * v1 + v2 * v2 < cutoff2
                    continue
                for k in range(lo, hi):
                    v0 = bin_wrapped[0, k] + t0 - xi
                    v1 = bin_wrapped[1, k] + t1 - yi
                    v2 = bin_wrapped[2, k] + t2 - zi
                    # The counting test exactly (NaN is outside): rows must match the counts.
                    if not v0 * v0 + v1 * v1 + v2 * v2 < cutoff2:
                        continue
                    j = bin_atoms[k]
                    row = first + count
                    s0 = np.int32(m0) - offset[j, 0] + offset[i, 0]
                    s1 = np.int32(m1) - offset[j, 1] + offset[i, 1]
                    s2 = np.int32(m2) - offset[j, 2] + offset[i, 2]
                    pairs[row, 0] = i
                    pairs[row, 1] = j
                    shifts[row, 0] = s0
                    shifts[row, 1] = s1
                    shifts[row, 2] = s2
                    for c in range(3):
                        vectors[row, c] = _pair_vector(positions, cell, i, j, s0, s1, s2, c)
                    count += 1
    return count


@numba.njit(cache=True)
def _exclusive_sum(counts):
    """starts [n + 1]: starts[k] = sum of counts[:k]."""
    starts = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    for k in range(counts.shape[0]):
        starts[k + 1] = starts[k] + counts[k]
    return starts


@numba.njit(cache=True)
def _allocate(n_pairs):
    return (
        np.empty((n_pairs, 2), dtype=np.int64),
        np.empty((n_pairs, 3), dtype=np.int32),
        np.empty((n_pairs, 3), dtype=np.float64),
    )


@numba.njit(cache=True, parallel=True)
def neighbor_list(positions, cell, pbc, cutoff):
    """Half neighbour list within `cutoff` (Angstrom): (pairs [P,2] int64, shifts [P,3] int32,
    vectors [P,3] float64 Angstrom), atoms i in ascending order.

    A counting pass sizes the output exactly; then each atom fills its own block of rows,
    so the order does not depend on the thread count.
    """
    n_atoms = positions.shape[0]
    grid = _prepare(positions, cell, pbc, cutoff)
    cutoff2 = cutoff * cutoff
    counts = np.empty(n_atoms, dtype=np.int64)
    pairs, shifts, vectors = _allocate(0)
    # int64(i): prange indices are uint64 in the parallel body but int64 when this function
    # is typed, and each would compile its own copy of _atom_pairs.
    for i in numba.prange(n_atoms):
        counts[i] = _atom_pairs(np.int64(i), positions, cell, cutoff2, grid, False, 0, pairs, shifts, vectors)
    starts = _exclusive_sum(counts)
    pairs, shifts, vectors = _allocate(starts[-1])
    for i in numba.prange(n_atoms):
        _atom_pairs(np.int64(i), positions, cell, cutoff2, grid, True, starts[i], pairs, shifts, vectors)
    return pairs, shifts, vectors


@numba.njit(cache=True, parallel=True)
def pairs_within(positions, cell, pairs, shifts, cutoff):
    """The pairs of a kept list closer than `cutoff` (Angstrom) at `positions`, in the same
    order, with their vectors recomputed: (pairs, shifts, vectors) as neighbor_list."""
    n_pairs = pairs.shape[0]
    n_chunks = (n_pairs + FILTER_CHUNK - 1) // FILTER_CHUNK
    cutoff2 = cutoff * cutoff
    counts = np.zeros(n_chunks, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        n = 0
        for p in range(chunk * FILTER_CHUNK, min(n_pairs, (chunk + 1) * FILTER_CHUNK)):
            i, j = pairs[p, 0], pairs[p, 1]
            s0, s1, s2 = shifts[p, 0], shifts[p, 1], shifts[p, 2]
            v0 = _pair_vector(positions, cell, i, j, s0, s1, s2, 0)
            v1 = _pair_vector(positions, cell, i, j, s0, s1, s2, 1)
            v2 = _pair_vector(positions, cell, i, j, s0, s1, s2, 2)
            if v0 * v0 + v1 * v1 + v2 * v2 < cutoff2:
                n += 1
        counts[chunk] = n
    starts = _exclusive_sum(counts)
    out_pairs, out_shifts, out_vectors = _allocate(starts[-1])
    for chunk in numba.prange(n_chunks):
        row = starts[chunk]
        for p in range(chunk * FILTER_CHUNK, min(n_pairs, (chunk + 1) * FILTER_CHUNK)):
            i, j = pairs[p, 0], pairs[p, 1]
            s0, s1, s2 = shifts[p, 0], shifts[p, 1], shifts[p, 2]
            v0 = _pair_vector(positions, cell, i, j, s0, s1, s2, 0)
            v1 = _pair_vector(positions, cell, i, j, s0, s1, s2, 1)
            v2 = _pair_vector(positions, cell, i, j, s0, s1, s2, 2)
            if not v0 * v0 + v1 * v1 + v2 * v2 < cutoff2:  # as counted (NaN is outside)
                continue
            out_pairs[row, 0] = i
            out_pairs[row, 1] = j
            out_shifts[row, 0] = s0
            out_shifts[row, 1] = s1
            out_shifts[row, 2] = s2
            out_vectors[row, 0] = v0
            out_vectors[row, 1] = v1
            out_vectors[row, 2] = v2
            row += 1
    return out_pairs, out_shifts, out_vectors
