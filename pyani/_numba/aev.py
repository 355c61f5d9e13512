"""ANI AEVs over a half neighbour list and their backward pass, a twin of the C++ kernels
(``cpp/aev_kernels.inc``, ``cpp/aev.cpp``).

See ``cpp/aev.hpp`` for the formulas and the AEV layout. Sums are float64; the AEV is
stored as float32. Per-atom work (forward and backward) runs in blocks of atoms spread
over threads with ``prange``; each atom writes only its own AEV row and its own directed
entries, so there are no races.

The angular loops visit one triple at a time. The C++ core computes the same terms over
arrays of all triples of an atom, grouped by species pair, so that its loops vectorise;
the sums differ only in their order (results agree to rounding, tests/test_backends.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

COS_SCALE = 0.95  # TorchANI/NeuroChem scale the cosine to keep acos finite
#: Atoms per block: scratch buffers are allocated once per block, not per atom.
BLOCK = 16


class AEVParams(NamedTuple):
    """AEV hyper-parameters (Angstrom, 1/Angstrom^2, radians) in a Numba-friendly form."""

    n_species: int
    radial_cutoff: float
    angular_cutoff: float
    eta_r: float
    eta_a: float
    zeta: float
    shf_r: np.ndarray
    shf_a: np.ndarray
    shf_z: np.ndarray
    #: The cutoff function: False for the cosine, True for the smooth one with `order` and
    #: `eps` (unused by the cosine).
    smooth_cutoff: bool = False
    order: int = 2
    eps: float = 1e-10

    @property
    def radial_length(self) -> int:
        return self.n_species * len(self.shf_r)

    @property
    def length(self) -> int:
        """Length of one AEV row."""
        n_pairs = self.n_species * (self.n_species + 1) // 2
        return self.radial_length + n_pairs * len(self.shf_a) * len(self.shf_z)


@numba.njit(cache=True)
def directed_neighbors(n_atoms, pairs, species):
    """The half list seen from each atom: entries start[i]:start[i+1] of atom i are pairs
    `pair[e]` in pair order, walked with sign +1 (i is the pair's first atom) or -1
    (reversed); other[e] is the species at the entry's far end; entries[p] are pair p's
    entries from its first and second atom. ValueError for an atom index out of range
    (checked before it is used, and again in the second loop: the caller's array may have
    changed in between)."""
    n_pairs = pairs.shape[0]
    start = np.zeros(n_atoms + 1, dtype=np.int64)
    for p in range(n_pairs):
        a = pairs[p, 0]
        b = pairs[p, 1]
        if a < 0 or a >= n_atoms or b < 0 or b >= n_atoms:
            raise ValueError("pairs: atom index out of range")
        start[a + 1] += 1
        start[b + 1] += 1
    for i in range(n_atoms):
        start[i + 1] += start[i]
    pair = np.empty(2 * n_pairs, dtype=np.int64)
    sign = np.empty(2 * n_pairs, dtype=np.int8)
    other = np.empty(2 * n_pairs, dtype=np.int32)
    entries = np.empty((n_pairs, 2), dtype=np.int64)
    fill = start[:-1].copy()
    for p in range(n_pairs):
        a = pairs[p, 0]
        b = pairs[p, 1]
        if a < 0 or a >= n_atoms or b < 0 or b >= n_atoms or fill[a] >= start[a + 1] or fill[b] >= start[b + 1]:
            raise ValueError("pairs: changed during the call")
        e = fill[a]
        fill[a] += 1
        pair[e] = p
        sign[e] = 1
        other[e] = species[b]
        entries[p, 0] = e
        e = fill[b]
        fill[b] += 1
        pair[e] = p
        sign[e] = -1
        other[e] = species[a]
        entries[p, 1] = e
    return start, pair, sign, other, entries


@numba.njit(cache=True)
def species_pair_table(n):
    """Index of the unordered species pair (a, b) in the upper triangle, row-major."""
    table = np.empty((n, n), dtype=np.int64)
    k = 0
    for a in range(n):
        for b in range(a, n):
            table[a, b] = k
            table[b, a] = k
            k += 1
    return table


@numba.njit(cache=True)
def _max_degree(start):
    most = 0
    for i in range(start.shape[0] - 1):
        most = max(most, start[i + 1] - start[i])
    return most


class _Neighbors(NamedTuple):
    """Scratch for the neighbours of one centre atom (struct-of-arrays of the C++ Neighbor)."""

    entry: np.ndarray
    v: np.ndarray
    r: np.ndarray
    fc: np.ndarray
    dfc: np.ndarray
    species: np.ndarray


@numba.njit(cache=True)
def _neighbors(size):
    return _Neighbors(
        np.empty(size, dtype=np.int64),
        np.empty((size, 3)),
        np.empty(size),
        np.empty(size),
        np.empty(size),
        np.empty(size, dtype=np.int32),
    )


@numba.njit(cache=True)
def _store(out, k, e, v, r, other, rc, prm):
    out.entry[k] = e
    for c in range(3):
        out.v[k, c] = v[c]
    out.r[k] = r
    out.species[k] = other
    if prm.smooth_cutoff:
        # cutoff_smooth: fc = exp(1 - 1 / max(eps, u)), u = 1 - (r/rc)^order; fc is constant
        # where the clamp holds.
        power = _power(r / rc, prm.order - 1)
        u = 1.0 - power * (r / rc)
        out.fc[k] = math.exp(1.0 - 1.0 / (u if u > prm.eps else prm.eps))
        out.dfc[k] = out.fc[k] * (-prm.order * power / rc) / (u * u) if u > prm.eps else 0.0
    else:
        # cutoff_cosine: fc(r) and its derivative at cutoff rc.
        out.fc[k] = 0.5 * math.cos(math.pi * r / rc) + 0.5
        out.dfc[k] = -0.5 * math.pi / rc * math.sin(math.pi * r / rc)


@numba.njit(cache=True)
def _gather(prm, start, pair, sign, other_species, vectors, i, radial, angular):
    """Neighbours of atom i within the radial cutoff (all, radial fc) and the angular cutoff
    (angular fc), in directed-entry order; returns how many of each."""
    n_radial = 0
    n_angular = 0
    v = np.empty(3)
    for e in range(start[i], start[i + 1]):
        p = pair[e]
        s = float(sign[e])
        for c in range(3):
            v[c] = s * vectors[p, c]
        r = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
        if r >= prm.radial_cutoff:
            continue
        other = other_species[e]
        _store(radial, n_radial, e, v, r, other, prm.radial_cutoff, prm)
        n_radial += 1
        if r < prm.angular_cutoff:
            _store(angular, n_angular, e, v, r, other, prm.angular_cutoff, prm)
            n_angular += 1
    return n_radial, n_angular


@numba.njit(cache=True)
def _sections(prm):
    """cos and sin of the angular sections ShfZ, and zeta - 1 when zeta is a whole number
    (then x^(zeta-1) by squaring beats pow; ANI-1x has zeta = 32), else -1."""
    n_z = prm.shf_z.shape[0]
    cos_z = np.empty(n_z)
    sin_z = np.empty(n_z)
    for z in range(n_z):
        cos_z[z] = math.cos(prm.shf_z[z])
        sin_z[z] = math.sin(prm.shf_z[z])
    zeta = prm.zeta
    integer = zeta == math.floor(zeta) and zeta >= 1 and zeta <= 1024
    return cos_z, sin_z, np.int64(zeta) - 1 if integer else np.int64(-1)


@numba.njit(cache=True)
def _power(x, n):
    result = 1.0
    while n > 0:
        if n & 1:
            result *= x
        x *= x
        n >>= 1
    return result


@numba.njit(cache=True)
def _angle_factors(zeta, cos_z, sin_z, zeta_minus_one, cos_angle, f1, df1, with_derivative):
    """F1[z] = 2 X^zeta with X = (1 + cos(theta - ShfZ)) / 2, theta = acos(0.95 cos_angle),
    and dF1/dcos_angle; cos(theta - z) is expanded so no acos is needed."""
    c = COS_SCALE * cos_angle
    q = 1.0 - c * c
    sin_theta = math.sqrt(q if q > 0.0 else 0.0)  # std::max(0.0, q)
    dsin_dcos = -COS_SCALE * c / sin_theta  # sin_theta >= sqrt(1 - 0.95^2)
    for z in range(cos_z.shape[0]):
        cz = cos_z[z]
        sz = sin_z[z]
        x = 0.5 * (1.0 + c * cz + sin_theta * sz)
        if not x > 0.0:  # std::max(0.0, x)
            x = 0.0
        xpow = _power(x, zeta_minus_one) if zeta_minus_one >= 0 else x ** (zeta - 1.0)
        f1[z] = 2.0 * xpow * x
        if with_derivative:
            df1[z] = zeta * xpow * (COS_SCALE * cz + dsin_dcos * sz)


@numba.njit(cache=True)
def _cosine(nbs, a, b):
    d = nbs.v[a, 0] * nbs.v[b, 0] + nbs.v[a, 1] * nbs.v[b, 1] + nbs.v[a, 2] * nbs.v[b, 2]
    rr = nbs.r[a] * nbs.r[b]
    return d / (1e-10 if rr < 1e-10 else rr)


# Per-call tables shared by all atoms, as one plain tuple (a NamedTuple built in jitted code
# cannot cross into a prange body): start [N+1] (entries of atom i are start[i]:start[i+1]),
# pair [2P], sign [2P] int8 (+1 when the atom is the pair's first atom), other [2P] (species
# at the far end), entries [P,2], table [n_species, n_species] (species pair -> angular
# block), cos_z, sin_z, zeta_minus_one (-1 unless zeta is a whole number), max_degree (most
# entries of any atom: size of the scratch buffers).


@numba.njit(cache=True)
def setup(prm, species, pairs):
    """The tables of one pass (species in range, unchecked; pairs checked)."""
    start, pair, sign, other, entries = directed_neighbors(species.shape[0], pairs, species)
    cos_z, sin_z, zeta_minus_one = _sections(prm)
    table = species_pair_table(prm.n_species)
    return start, pair, sign, other, entries, table, cos_z, sin_z, zeta_minus_one, _max_degree(start)


@numba.njit(cache=True)
def _forward_block(lo, hi, prm, tables, vectors, rows, features, aev):
    """AEVs of atoms lo..hi-1 (the columns `features` of the full layout) into their rows
    of `aev` (float32)."""
    start, pair, sign, other, _, table, cos_z, sin_z, zeta_minus_one, max_degree = tables
    n_r = prm.shf_r.shape[0]
    n_a = prm.shf_a.shape[0]
    n_z = prm.shf_z.shape[0]
    radial_length = prm.n_species * n_r
    acc = np.empty(radial_length + prm.n_species * (prm.n_species + 1) // 2 * n_a * n_z)
    f1 = np.empty(n_z)
    f2 = np.empty(n_a)
    radial = _neighbors(max_degree)
    angular = _neighbors(max_degree)
    for i in range(lo, hi):
        acc[:] = 0.0
        n_radial, n_angular = _gather(prm, start, pair, sign, other, vectors, i, radial, angular)
        for m in range(n_radial):
            base = radial.species[m] * n_r
            for k in range(n_r):
                dr = radial.r[m] - prm.shf_r[k]
                acc[base + k] += 0.25 * math.exp(-prm.eta_r * dr * dr) * radial.fc[m]
        for a in range(n_angular):
            for b in range(a + 1, n_angular):
                _angle_factors(prm.zeta, cos_z, sin_z, zeta_minus_one, _cosine(angular, a, b), f1, f1, False)
                mean_r = 0.5 * (angular.r[a] + angular.r[b])
                fcfc = angular.fc[a] * angular.fc[b]
                for k in range(n_a):
                    dr = mean_r - prm.shf_a[k]
                    f2[k] = math.exp(-prm.eta_a * dr * dr) * fcfc
                base = radial_length + table[angular.species[a], angular.species[b]] * n_a * n_z
                for k in range(n_a):
                    for z in range(n_z):
                        acc[base + k * n_z + z] += f2[k] * f1[z]
        row = rows[i]
        for k in range(features.shape[0]):
            aev[row, k] = acc[features[k]]


@numba.njit(cache=True)
def _backward_block(lo, hi, prm, tables, vectors, rows, features, grad_aev, grad_entry):
    """dE/d(directed entry vector) of atoms lo..hi-1 into `grad_entry` (their own entries)."""
    start, pair, sign, other, _, table, cos_z, sin_z, zeta_minus_one, max_degree = tables
    n_r = prm.shf_r.shape[0]
    n_a = prm.shf_a.shape[0]
    n_z = prm.shf_z.shape[0]
    radial_length = prm.n_species * n_r
    g = np.zeros(radial_length + prm.n_species * (prm.n_species + 1) // 2 * n_a * n_z)  # full layout
    f1 = np.empty(n_z)
    df1 = np.empty(n_z)
    f2 = np.empty(n_a)
    df2 = np.empty(n_a)
    radial = _neighbors(max_degree)
    angular = _neighbors(max_degree)
    for i in range(lo, hi):
        for k in range(features.shape[0]):
            g[features[k]] = grad_aev[rows[i], k]
        n_radial, n_angular = _gather(prm, start, pair, sign, other, vectors, i, radial, angular)

        for m in range(n_radial):
            base = radial.species[m] * n_r
            r = radial.r[m]
            fc = radial.fc[m]
            dfc = radial.dfc[m]
            de_dr = 0.0
            for k in range(n_r):
                dr = r - prm.shf_r[k]
                e = 0.25 * math.exp(-prm.eta_r * dr * dr)
                de_dr += g[base + k] * e * (dfc - 2.0 * prm.eta_r * dr * fc)
            entry = radial.entry[m]
            for c in range(3):
                grad_entry[entry, c] += de_dr * radial.v[m, c] / r

        for a in range(n_angular):
            for b in range(a + 1, n_angular):
                cos_ab = _cosine(angular, a, b)
                _angle_factors(prm.zeta, cos_z, sin_z, zeta_minus_one, cos_ab, f1, df1, True)
                ra = angular.r[a]
                rb = angular.r[b]
                mean_r = 0.5 * (ra + rb)
                for k in range(n_a):
                    dr = mean_r - prm.shf_a[k]
                    f2[k] = math.exp(-prm.eta_a * dr * dr)
                    df2[k] = -2.0 * prm.eta_a * dr * f2[k]
                base = radial_length + table[angular.species[a], angular.species[b]] * n_a * n_z
                # Contract the gradient with each factor once, then apply the chain rule.
                s_cos = 0.0
                s_mean = 0.0
                s_cut = 0.0
                for k in range(n_a):
                    gz = 0.0
                    gdz = 0.0
                    for z in range(n_z):
                        gk = g[base + k * n_z + z]
                        gz += gk * f1[z]
                        gdz += gk * df1[z]
                    s_cos += f2[k] * gdz
                    s_mean += df2[k] * gz
                    s_cut += f2[k] * gz
                fc_a = angular.fc[a]
                fc_b = angular.fc[b]
                fcfc = fc_a * fc_b
                de_dcos = s_cos * fcfc
                de_dra = 0.5 * s_mean * fcfc + s_cut * angular.dfc[a] * fc_b
                de_drb = 0.5 * s_mean * fcfc + s_cut * fc_a * angular.dfc[b]
                inv_rr = 1.0 / (ra * rb)
                ea = angular.entry[a]
                eb = angular.entry[b]
                for c in range(3):
                    va = angular.v[a, c]
                    vb = angular.v[b, c]
                    dcos_da = vb * inv_rr - cos_ab * va / (ra * ra)
                    dcos_db = va * inv_rr - cos_ab * vb / (rb * rb)
                    grad_entry[ea, c] += de_dcos * dcos_da + de_dra * va / ra
                    grad_entry[eb, c] += de_dcos * dcos_db + de_drb * vb / rb


@numba.njit(cache=True, parallel=True)
def forward(prm, tables, vectors, rows, features, aev):
    """Write the AEV of atom i into row rows[i] of `aev` [n_rows, len(features)] (float32):
    the columns `features` (int64) of the full layout. vectors [P,3] float64 Angstrom
    (r_j - r_i + image)."""
    n_atoms = rows.shape[0]
    for block in numba.prange((n_atoms + BLOCK - 1) // BLOCK):
        # int64: prange indices are uint64 in the parallel body but int64 when the caller is
        # typed, and each would compile its own copy of the block function.
        lo = np.int64(block) * BLOCK
        _forward_block(lo, min(n_atoms, lo + BLOCK), prm, tables, vectors, rows, features, aev)


@numba.njit(cache=True, parallel=True)
def backward_entries(prm, tables, vectors, rows, features, grad_aev):
    """dE/d(directed entry vector) [2P,3] (Hartree/Angstrom) from dE/dAEV `grad_aev`
    [n_rows, len(features)] (float32, Hartree; columns `features` of the full layout, the
    others zero). Atom i writes only its own entries: no races."""
    n_atoms = rows.shape[0]
    grad_entry = np.zeros((tables[1].shape[0], 3))
    for block in numba.prange((n_atoms + BLOCK - 1) // BLOCK):
        lo = np.int64(block) * BLOCK  # see forward
        _backward_block(lo, min(n_atoms, lo + BLOCK), prm, tables, vectors, rows, features, grad_aev, grad_entry)
    return grad_entry


@numba.njit(cache=True, parallel=True)
def forces_from_entries(tables, grad_entry):
    """Forces [N,3] = -dE/dr: dE/d(vector p) = gradient from its first atom minus that from its
    second; vector = r_j - r_i + image, so atom i gets +dE/dvector as the pair's first atom
    and -dE/dvector as its second, summed in pair order (any thread count, same result)."""
    start, pair, sign, entries = tables[0], tables[1], tables[2], tables[4]
    n_atoms = start.shape[0] - 1
    forces = np.empty((n_atoms, 3))
    for i in numba.prange(n_atoms):
        for c in range(3):
            f = 0.0
            for e in range(start[i], start[i + 1]):
                p = pair[e]
                g = grad_entry[entries[p, 0], c] - grad_entry[entries[p, 1], c]
                if sign[e] > 0:
                    f += g
                else:
                    f -= g
            forces[i, c] = f
    return forces


#: Pairs per block of the virial sum: blocks are summed in order, whatever the threads.
VIRIAL_BLOCK = 4096


@numba.njit(cache=True, parallel=True)
def virial_from_entries(tables, grad_entry, vectors, bounds):
    """virial[b] [3,3] = sum over pairs p in bounds[b]:bounds[b+1] of outer(vectors[p],
    dE/d(vector p)) (Hartree)."""
    entries = tables[4]
    n_structures = bounds.shape[0] - 1
    n_blocks = 0
    for b in range(n_structures):
        n_blocks += (bounds[b + 1] - bounds[b] + VIRIAL_BLOCK - 1) // VIRIAL_BLOCK
    block_start = np.empty(n_blocks, np.int64)
    block_end = np.empty(n_blocks, np.int64)
    block_structure = np.empty(n_blocks, np.int64)
    k = 0
    for b in range(n_structures):
        for lo in range(bounds[b], bounds[b + 1], VIRIAL_BLOCK):
            block_start[k] = lo
            block_end[k] = min(lo + VIRIAL_BLOCK, bounds[b + 1])
            block_structure[k] = b
            k += 1
    partial = np.zeros((n_blocks, 3, 3))
    for k in numba.prange(n_blocks):
        for p in range(block_start[k], block_end[k]):
            for c in range(3):
                g = grad_entry[entries[p, 0], c] - grad_entry[entries[p, 1], c]
                for a in range(3):
                    partial[k, a, c] += vectors[p, a] * g
    virial = np.zeros((n_structures, 3, 3))
    for k in range(n_blocks):
        virial[block_structure[k]] += partial[k]
    return virial
