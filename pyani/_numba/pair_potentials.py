"""Pair potentials of TorchANI models, a twin of the C++ kernels (``cpp/pair_potentials.cpp``):
xTB repulsion and two-body D3(BJ) dispersion, float64, with their exact gradients.

See ``cpp/pair_potentials.hpp`` for the formulas. The per-pair work runs over pairs with
``prange``; the sums from pairs into atoms and structures are serial, in pair order (no
races, results independent of the thread count).
"""

from __future__ import annotations

import math
import operator

import numba
import numpy as np

#: TorchANI's RepulsionXTB clamps distances (Angstrom) to this before dividing by them.
REPULSION_MIN_DISTANCE = 1e-7
D3_REFERENCES = 5
#: Thread start-up costs more than the work below this many pairs per thread (as in the C++).
MIN_PAIRS_PER_THREAD = 2048
CUTOFF_FNS = {"dummy": 0, "cosine": 1, "smooth": 2}


@numba.njit(cache=True, inline="always")
def _int_power(x, n):
    out = x
    for _ in range(1, n):
        out *= x
    return out


@numba.njit(cache=True)
def _envelope(kind, cutoff, order, eps, r):
    """(fc(r), d fc / dr) of the cutoff function `kind` (0 dummy, 1 cosine, 2 smooth)."""
    if kind == 0:
        return 1.0, 0.0
    if kind == 1:
        x = r * (math.pi / cutoff)
        return 0.5 * math.cos(x) + 0.5, -0.5 * (math.pi / cutoff) * math.sin(x)
    x = r / cutoff
    u = 1.0 - _int_power(x, order)
    if u > eps:
        value = math.exp(1.0 - 1.0 / u)
        du_dr = -order * (_int_power(x, order - 1) if order > 1 else 1.0) / cutoff
        return value, value * du_dr / (u * u)
    return math.exp(1.0 - 1.0 / eps), 0.0


@numba.njit(cache=True)
def _distances(pairs, vectors, cutoff, n_atoms, atom_mask, use_mask):
    """(distance [P] with -1 for pairs beyond the cutoff (r <= cutoff kept, as TorchANI's
    discard_outside_cutoff), weight [P] = (m_i + m_j) / 2 or 1)."""
    n_pairs = pairs.shape[0]
    distance = np.empty(n_pairs)
    weight = np.ones(n_pairs)
    for p in range(n_pairs):
        i, j = pairs[p, 0], pairs[p, 1]
        if i < 0 or i >= n_atoms or j < 0 or j >= n_atoms:
            raise ValueError("pairs: atom index out of range")
        v = vectors[p]
        r = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
        if not math.isfinite(r):
            raise ValueError("vectors must be finite")
        distance[p] = r if r <= cutoff else -1.0
        if use_mask:
            weight[p] = 0.5 * ((1.0 if atom_mask[i] else 0.0) + (1.0 if atom_mask[j] else 0.0))
    return distance, weight


@numba.njit(cache=True, inline="always")
def _along(v, r, de_dr, out):
    scale = de_dr / r if r > 0.0 else 0.0
    for c in range(3):
        out[c] = scale * v[c]


@numba.njit(cache=True)
def _finish(pairs, vectors, bounds, weight, energy, gradient, n_atoms, want_atomic, want_forces, want_virial):
    """(energies [B], atomic [A], forces [A, 3], virial [B, 3, 3]) from each pair's energy and
    its gradient dE/dvector of the weighted energy; unwanted outputs are empty."""
    n_structures = bounds.shape[0] - 1
    energies = np.zeros(n_structures)
    for b in range(n_structures):
        total = 0.0
        for p in range(bounds[b], bounds[b + 1]):
            total += weight[p] * energy[p]
        energies[b] = total
    atomic = np.zeros(n_atoms if want_atomic else 0)
    if want_atomic:
        for p in range(pairs.shape[0]):
            atomic[pairs[p, 0]] += 0.5 * energy[p]
            atomic[pairs[p, 1]] += 0.5 * energy[p]
    forces = np.zeros((n_atoms if want_forces else 0, 3))
    if want_forces:
        for p in range(pairs.shape[0]):
            i, j = pairs[p, 0], pairs[p, 1]
            for c in range(3):
                forces[i, c] += gradient[p, c]
                forces[j, c] -= gradient[p, c]
    virial = np.zeros((n_structures if want_virial else 0, 3, 3))
    if want_virial:
        for b in range(n_structures):
            for p in range(bounds[b], bounds[b + 1]):
                for x in range(3):
                    for y in range(3):
                        virial[b, x, y] += vectors[p, x] * gradient[p, y]
    return energies, atomic, forces, virial


@numba.njit(cache=True, parallel=True)
def _repulsion_pairs(
    species, pairs, vectors, distance, weight, y_ab, sqrt_alpha_ab, k_rep_ab, bohr, kind, cutoff, order, eps, gradient
):
    n_pairs = pairs.shape[0]
    energy = np.zeros(n_pairs)
    grad = np.zeros((n_pairs if gradient else 0, 3))
    for p in numba.prange(n_pairs):
        r = distance[p]
        if r < 0.0:
            continue
        a, b = species[pairs[p, 0]], species[pairs[p, 1]]
        d = max(r, REPULSION_MIN_DISTANCE) * bohr
        k, sqrt_alpha = k_rep_ab[a, b], sqrt_alpha_ab[a, b]
        d_k = d**k
        e = y_ab[a, b] / d * math.exp(-sqrt_alpha * d_k)
        fc, dfc = _envelope(kind, cutoff, order, eps, r)
        energy[p] = e * fc
        if gradient:
            de_dr = e * (-1.0 / d - sqrt_alpha * k * d_k / d) * bohr if r > REPULSION_MIN_DISTANCE else 0.0
            _along(vectors[p], r, weight[p] * (de_dr * fc + e * dfc), grad[p])
    return energy, grad


@numba.njit(cache=True, parallel=True)
def _d3_counts(species, pairs, distance, covalent_radii, k1, k2, bohr, gradient):
    """Each pair's count towards the coordination numbers and its slope d count / dr."""
    n_pairs = pairs.shape[0]
    count = np.zeros(n_pairs)
    slope = np.zeros(n_pairs if gradient else 0)
    for p in numba.prange(n_pairs):
        r = distance[p]
        if r < 0.0:
            continue
        d = r * bohr
        radii = covalent_radii[species[pairs[p, 0]]] + covalent_radii[species[pairs[p, 1]]]
        et = math.exp(-k1 * (k2 * radii / d - 1.0))
        c = 1.0 / (1.0 + et)
        count[p] = c
        if gradient and d > 0.0:  # dc/dt = -e^t c^2, dt/dd = k1 k2 radii / d^2
            slope[p] = -et * c * c * (k1 * k2 * radii / (d * d)) * bohr
    return count, slope


@numba.njit(cache=True, parallel=True)
def _d3_pairs(
    species,
    pairs,
    distance,
    weight,
    cn,
    factor,
    n_refs,
    ref_p,
    ref_q,
    ref_c6,
    ref_cn_a,
    ref_cn_b,
    sqrt_charge_ab,
    cutoff_radii,
    s6,
    s8,
    a1,
    a2,
    k3,
    eps,
    bohr,
    kind,
    cutoff,
    order,
    fn_eps,
    gradient,
):
    """Each pair's energy, dE/dr at fixed CN and dE/dCN of its two atoms (both weighted)."""
    n_pairs = pairs.shape[0]
    energy = np.zeros(n_pairs)
    de_dr = np.zeros(n_pairs if gradient else 0)
    de_dcn = np.zeros((n_pairs if gradient else 0, 2))
    for p in numba.prange(n_pairs):
        r = distance[p]
        if r < 0.0:
            continue
        i, j = pairs[p, 0], pairs[p, 1]
        a, b = species[i], species[j]
        cn_i, cn_j = cn[i], cn[j]
        count = n_refs[a, b]
        sum_g = 0.0
        sum_c6g = 0.0
        g = np.empty(count)
        for k in range(count):
            if factor.shape[0] > 0:  # separable tables: per-atom factors
                g[k] = factor[i, ref_p[a, b, k]] * factor[j, ref_q[a, b, k]]
            else:
                da = cn_i - ref_cn_a[a, b, k]
                db = cn_j - ref_cn_b[a, b, k]
                g[k] = math.exp(-k3 * (da * da + db * db))
            sum_g += g[k]
            sum_c6g += ref_c6[a, b, k] * g[k]
        w = sum_g + eps
        c6 = (sum_c6g + eps) / w
        q = sqrt_charge_ab[a, b]
        radius = a1 * cutoff_radii[a, b] + a2
        d = r * bohr
        d2 = d * d
        d6 = d2 * d2 * d2
        d8 = d6 * d2
        radius2 = radius * radius
        radius6 = radius2 * radius2 * radius2
        den6 = d6 + radius6
        den8 = d8 + radius6 * radius2
        per_c6 = s6 / den6 + 3.0 * q * s8 / den8
        e0 = -c6 * per_c6
        fc, dfc = _envelope(kind, cutoff, order, fn_eps, r)
        energy[p] = e0 * fc
        if gradient:
            wp = weight[p]
            de0_dd = c6 * (6.0 * s6 * d2 * d2 * d / (den6 * den6) + 24.0 * q * s8 * d6 * d / (den8 * den8))
            de_dr[p] = wp * (de0_dd * bohr * fc + e0 * dfc)
            sum_i = 0.0
            sum_j = 0.0
            for k in range(count):  # dC6/dCN_i = -2 k3 / W sum g (c6 - C6)(CN_i - cn_a)
                spread = g[k] * (ref_c6[a, b, k] - c6)
                sum_i += spread * (cn_i - ref_cn_a[a, b, k])
                sum_j += spread * (cn_j - ref_cn_b[a, b, k])
            de_dc6 = -per_c6 * fc * wp
            de_dcn[p, 0] = de_dc6 * (-2.0 * k3 / w) * sum_i
            de_dcn[p, 1] = de_dc6 * (-2.0 * k3 / w) * sum_j
    return energy, de_dr, de_dcn


@numba.njit(cache=True)
def _coordination_numbers(pairs, count, n_atoms):
    cn = np.zeros(n_atoms)
    for p in range(pairs.shape[0]):
        cn[pairs[p, 0]] += count[p]
        cn[pairs[p, 1]] += count[p]
    return cn


@numba.njit(cache=True, parallel=True)
def _gaussian_factors(species, cn, reference_cn, k3):
    """exp(-k3 (CN_i - reference_cn[s_i, p])^2) [A, 5]; 0 where the element has no reference p."""
    out = np.zeros((cn.shape[0], D3_REFERENCES))
    for i in numba.prange(cn.shape[0]):
        for p in range(D3_REFERENCES):
            reference = reference_cn[species[i], p]
            if not math.isnan(reference):
                delta = cn[i] - reference
                out[i, p] = math.exp(-k3 * delta * delta)
    return out


@numba.njit(cache=True, parallel=True)
def _d3_gradient(pairs, vectors, distance, de_dr, de_dcn, slope, n_atoms):
    """dE/dvector of each pair: its own slope plus the CN chain rule of both its atoms."""
    atom_de_dcn = np.zeros(n_atoms)
    for p in range(pairs.shape[0]):
        atom_de_dcn[pairs[p, 0]] += de_dcn[p, 0]
        atom_de_dcn[pairs[p, 1]] += de_dcn[p, 1]
    grad = np.zeros((pairs.shape[0], 3))
    for p in numba.prange(pairs.shape[0]):
        r = distance[p]
        if r < 0.0:
            continue
        chain = (atom_de_dcn[pairs[p, 0]] + atom_de_dcn[pairs[p, 1]]) * slope[p]
        _along(vectors[p], r, de_dr[p] + chain, grad[p])
    return grad


def _cutoff_function(params: dict) -> tuple[int, float, int, float]:
    """(kind, cutoff, order, eps) of an entry's cutoff function."""
    try:
        cutoff = float(params["cutoff"])
    except KeyError:
        raise ValueError("pair potential: no entry 'cutoff'") from None
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"pair potential: cutoff must be finite and > 0, got {cutoff}")
    name = params.get("cutoff_fn", "smooth")
    if name not in CUTOFF_FNS:
        raise ValueError(f"pair potential: cutoff_fn must be one of {tuple(CUTOFF_FNS)}, got {name!r}")
    extra = params.get("cutoff_fn_params") or {}
    order, eps = int(extra.get("order", 2)), float(extra.get("eps", 1e-10))
    if name == "smooth" and not (order >= 1 and eps > 0):
        raise ValueError("pair potential: the smooth cutoff needs order >= 1 and eps > 0")
    return CUTOFF_FNS[name], cutoff, order, eps


def _table(params: dict, key: str, shape: tuple) -> np.ndarray:
    if key not in params:
        raise ValueError(f"pair potential: no entry {key!r}")
    try:
        out = np.array(params[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"pair potential: {key} must be an array of numbers") from None
    if out.shape != shape:
        raise ValueError(f"{key} must have shape {shape}, got {out.shape}")
    return np.ascontiguousarray(out)


def _number(params: dict, key: str) -> float:
    if key not in params:
        raise ValueError(f"pair potential: no entry {key!r}")
    try:
        return float(params[key])
    except (TypeError, ValueError):
        raise ValueError(f"pair potential: {key} must be a number") from None


class _PairPotential:
    """What both potentials share: arguments in, outputs out."""

    retained_bytes = 0  # no pool: NumPy and Numba's allocator manage the buffers

    def __init__(self, params: dict, n_species: int, n_threads: int):
        self._n_species = operator.index(n_species)
        if self._n_species <= 0:
            raise ValueError(f"n_species must be positive, got {self._n_species}")
        self._n_threads = operator.index(n_threads)
        self._fn = _cutoff_function(params)
        self._bohr = _number(params, "bohr_per_angstrom")

    @property
    def cutoff(self) -> float:
        """Cutoff, Angstrom."""
        return self._fn[1]

    def compute(
        self, species, pairs, vectors, pair_bounds=None, atom_mask=None, atomic=False, forces=False, virial=False
    ):
        """(energies [B], atomic energies [A] or None, forces [A,3] or None, virial [B,3,3] or
        None), float64, Hartree and Angstrom, of atoms species [A] (int32) over the half list
        pairs [P,2] (int64, indices into the A atoms) with vectors [P,3] (r_j - r_i + image,
        Angstrom); structure b owns pairs pair_bounds[b]:pair_bounds[b+1] (None: one
        structure). atom_mask [A] (bool, None: all): the atoms whose energies count; a pair
        then counts with weight (m_i + m_j) / 2 in energies, forces and virial (atomic energies
        are unweighted, half of each pair to each atom). virial[b] sums outer(vector,
        dE/dvector) over its pairs."""
        # the package's helpers; imported here because the package imports this module first
        from . import _array, _in_range, _require, _require_shape, _threads, _using_threads

        species = _array(species, np.int32).copy()
        pairs = _array(pairs, np.int64).copy()
        vectors = _array(vectors, np.float64)
        _require_shape(species, "species", (-1,))
        _require_shape(pairs, "pairs", (-1, 2))
        _require_shape(vectors, "vectors", (pairs.shape[0], 3))
        n_atoms, n_pairs = species.shape[0], pairs.shape[0]
        _require(_in_range(species, self._n_species), "species out of range")
        if pair_bounds is None:
            bounds = np.array([0, n_pairs], dtype=np.int64)
        else:
            bounds = _array(pair_bounds, np.int64).copy()
            _require_shape(bounds, "pair_bounds", (-1,))
            _require(bounds.size >= 2, "pair_bounds needs at least two entries")
            _require(bounds[0] == 0 and bounds[-1] == n_pairs, "pair_bounds must start at 0 and end at the pairs")
            _require(bool(np.all(np.diff(bounds) >= 0)), "pair_bounds must be nondecreasing")
        use_mask = atom_mask is not None
        mask = _array(atom_mask, np.bool_) if use_mask else np.ones(0, dtype=np.bool_)
        if use_mask:
            _require_shape(mask, "atom_mask", (n_atoms,))
        gradient = bool(forces or virial)
        with _using_threads(_threads(self._n_threads, n_pairs, MIN_PAIRS_PER_THREAD)):
            distance, weight = _distances(pairs, vectors, self.cutoff, n_atoms, mask, use_mask)
            energy, grad = self._pairs(species, pairs, vectors, distance, weight, n_atoms, gradient)
            e, a, f, w = _finish(
                pairs, vectors, bounds, weight, energy, grad, n_atoms, bool(atomic), bool(forces), bool(virial)
            )
        return e, (a if atomic else None), (f if forces else None), (w if virial else None)


class RepulsionXTB(_PairPotential):
    """TorchANI's xTB repulsion, y_ab / d exp(-sqrt_alpha_ab d^k_rep_ab) fc(r), d in Bohr;
    params: a 'repulsion_xtb' entry of a model's 'pair_potentials' metadata. Thread-safe."""

    def __init__(self, params: dict, n_species: int, n_threads: int = 0):
        super().__init__(params, n_species, n_threads)
        shape = (self._n_species, self._n_species)
        self._y_ab = _table(params, "y_ab", shape)
        self._sqrt_alpha_ab = _table(params, "sqrt_alpha_ab", shape)
        self._k_rep_ab = _table(params, "k_rep_ab", shape)

    def _pairs(self, species, pairs, vectors, distance, weight, n_atoms, gradient):
        kind, cutoff, order, eps = self._fn
        return _repulsion_pairs(
            species,
            pairs,
            vectors,
            distance,
            weight,
            self._y_ab,
            self._sqrt_alpha_ab,
            self._k_rep_ab,
            self._bohr,
            kind,
            cutoff,
            order,
            eps,
            gradient,
        )


class DispersionD3(_PairPotential):
    """TorchANI's two-body D3(BJ) dispersion with coordination-number-dependent C6; params: a
    'dispersion_d3bj' entry of a model's 'pair_potentials' metadata. Thread-safe."""

    def __init__(self, params: dict, n_species: int, n_threads: int = 0):
        super().__init__(params, n_species, n_threads)
        n = self._n_species
        self._scalars = {k: _number(params, k) for k in ("s6", "s8", "a1", "a2", "k1", "k2", "k3", "eps")}
        self._cutoff_radii = _table(params, "cutoff_radii", (n, n))
        self._sqrt_charge_ab = _table(params, "sqrt_charge_ab", (n, n))
        self._covalent_radii = _table(params, "covalent_radii", (n,))
        refs = (n, n, D3_REFERENCES, D3_REFERENCES)
        c6 = _table(params, "c6", refs).reshape(n, n, -1)
        cn_a = _table(params, "cn_a", refs).reshape(n, n, -1)
        cn_b = _table(params, "cn_b", refs).reshape(n, n, -1)
        # The references with c6 > 0 packed first (the others weigh 0: TorchANI masks them),
        # with their indices p (first atom) and q (second atom).
        self._n_refs = np.zeros((n, n), dtype=np.int64)
        self._c6, self._cn_a, self._cn_b = (np.zeros_like(c6) for _ in range(3))
        self._p, self._q = (np.zeros(c6.shape, dtype=np.int64) for _ in range(2))
        for a in range(n):
            for b in range(n):
                kept = np.flatnonzero(c6[a, b] > 0)
                self._n_refs[a, b] = kept.size
                self._c6[a, b, : kept.size] = c6[a, b, kept]
                self._cn_a[a, b, : kept.size] = cn_a[a, b, kept]
                self._cn_b[a, b, : kept.size] = cn_b[a, b, kept]
                self._p[a, b, : kept.size], self._q[a, b, : kept.size] = np.divmod(kept, D3_REFERENCES)
        self._reference_cn = self._separable_reference_cn()

    def _separable_reference_cn(self) -> np.ndarray | None:
        """Grimme's tables give each reference p of an element one CN, whatever the partner:
        cn_a[a,b,p,q] = cn[a,p], cn_b[a,b,p,q] = cn[b,q]. The Gaussian weight is then a product
        of per-atom factors (five exponentials per atom, not up to 25 per pair). That [n, 5]
        table (NaN: no such reference), or None for tables without the structure."""
        n = self._n_species
        out = np.full((n, D3_REFERENCES), np.nan)
        for a in range(n):
            for b in range(n):
                for k in range(self._n_refs[a, b]):
                    for element, ref, value in (
                        (a, self._p[a, b, k], self._cn_a[a, b, k]),
                        (b, self._q[a, b, k], self._cn_b[a, b, k]),
                    ):
                        if np.isnan(out[element, ref]):
                            out[element, ref] = value
                        elif out[element, ref] != value:
                            return None
        return out

    def _pairs(self, species, pairs, vectors, distance, weight, n_atoms, gradient):
        s = self._scalars
        kind, cutoff, order, eps = self._fn
        count, slope = _d3_counts(
            species, pairs, distance, self._covalent_radii, s["k1"], s["k2"], self._bohr, gradient
        )
        cn = _coordination_numbers(pairs, count, n_atoms)
        if self._reference_cn is None:
            factor = np.zeros((0, D3_REFERENCES))
        else:
            factor = _gaussian_factors(species, cn, self._reference_cn, s["k3"])
        energy, de_dr, de_dcn = _d3_pairs(
            species,
            pairs,
            distance,
            weight,
            cn,
            factor,
            self._n_refs,
            self._p,
            self._q,
            self._c6,
            self._cn_a,
            self._cn_b,
            self._sqrt_charge_ab,
            self._cutoff_radii,
            s["s6"],
            s["s8"],
            s["a1"],
            s["a2"],
            s["k3"],
            s["eps"],
            self._bohr,
            kind,
            cutoff,
            order,
            eps,
            gradient,
        )
        if not gradient:
            return energy, np.zeros((0, 3))
        return energy, _d3_gradient(pairs, vectors, distance, de_dr, de_dcn, slope, n_atoms)
