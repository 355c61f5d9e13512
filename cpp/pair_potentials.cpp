// RepulsionXTB and DispersionD3 (pair_potentials.hpp). The per-pair work (exponentials) runs
// in parallel over pairs; the sums over pairs into atoms and structures are serial, in pair
// order, so that results do not depend on the thread count.
#include "pair_potentials.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "parallel.hpp"
#include "pooled_array.hpp"

namespace pyani {
namespace {

void require(bool ok, const char* message) {
    if (!ok) throw std::invalid_argument(message);
}

constexpr double PI = 3.14159265358979323846;
// TorchANI's RepulsionXTB clamps distances (Angstrom) to this before dividing by them.
constexpr double REPULSION_MIN_DISTANCE = 1e-7;
constexpr int64_t MIN_PAIRS_PER_THREAD = 2048;

int threads_for(int64_t items, int n_threads) {
    const int64_t useful = std::max<int64_t>(1, items / MIN_PAIRS_PER_THREAD);
    return static_cast<int>(std::min<int64_t>(resolve_threads(n_threads), useful));
}

// x^n for a small integer n >= 1 by repeated products (TorchANI's integer powers).
inline double int_power(double x, int n) {
    double out = x;
    for (int k = 1; k < n; ++k) out *= x;
    return out;
}

// n objects of T set to value, from the potential's pool (big per-call buffers are reused
// between calls instead of faulting in fresh pages).
template <typename T>
PooledArray<T> filled(const std::shared_ptr<Scratch>& pool, int64_t n, T value) {
    PooledArray<T> out = take_pooled<T>(pool, static_cast<size_t>(n));
    std::fill(out.data(), out.data() + n, value);
    return out;
}

// What every potential needs of a call: the pair list checked once and copied (the caller's
// arrays are not read for indices again), the distances, which pairs are within the cutoff
// and each pair's weight.
struct PairSet {
    int64_t n_atoms = 0, n_pairs = 0, n_structures = 1;
    PooledArray<int32_t> species;  // [n_atoms]
    PooledArray<int64_t> atoms;    // [n_pairs, 2]
    std::vector<int64_t> bounds;   // [n_structures + 1]
    PooledArray<double> distance;  // [n_pairs], Angstrom; -1 flags a pair beyond the cutoff
    PooledArray<double> weight;    // [n_pairs], (m_i + m_j) / 2, or 1
    const double* vectors = nullptr;
};

PairSet prepare(const std::shared_ptr<Scratch>& pool, const PairInputs& in, int n_species, double cutoff,
                int n_threads) {
    require(in.n_atoms >= 0 && in.n_pairs >= 0 && in.n_structures >= 0, "negative sizes");
    PairSet set;
    set.n_atoms = in.n_atoms;
    set.n_pairs = in.n_pairs;
    set.vectors = in.vectors;
    set.species = take_pooled<int32_t>(pool, in.n_atoms);
    std::copy(in.species, in.species + in.n_atoms, set.species.data());
    for (int64_t i = 0; i < in.n_atoms; ++i)
        require(set.species[i] >= 0 && set.species[i] < n_species, "species out of range");
    if (in.pair_bounds == nullptr) {
        set.bounds = {0, in.n_pairs};
    } else {
        require(in.n_structures >= 1, "pair_bounds needs at least two entries");
        set.n_structures = in.n_structures;
        set.bounds.assign(in.pair_bounds, in.pair_bounds + in.n_structures + 1);
        require(set.bounds.front() == 0 && set.bounds.back() == in.n_pairs,
                "pair_bounds must start at 0 and end at the number of pairs");
        for (int64_t b = 0; b < set.n_structures; ++b) {
            require(set.bounds[b] <= set.bounds[b + 1], "pair_bounds must be nondecreasing");
        }
    }
    set.atoms = take_pooled<int64_t>(pool, 2 * in.n_pairs);
    std::copy(in.pairs, in.pairs + 2 * in.n_pairs, set.atoms.data());
    for (int64_t k = 0; k < 2 * in.n_pairs; ++k) {
        require(set.atoms[k] >= 0 && set.atoms[k] < in.n_atoms, "pairs: atom index out of range");
    }
    set.distance = take_pooled<double>(pool, in.n_pairs);
    set.weight = filled(pool, in.n_pairs, 1.0);
    int64_t not_finite = 0;  // counted, not thrown: an exception must not leave an OpenMP region
#pragma omp parallel for schedule(static) reduction(+ : not_finite) num_threads(threads_for(in.n_pairs, n_threads))
    for (int64_t p = 0; p < in.n_pairs; ++p) {
        const double* v = in.vectors + 3 * p;
        const double r = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        if (!std::isfinite(r)) ++not_finite;
        // r <= cutoff as TorchANI's discard_outside_cutoff (a pair at the cutoff counts in the CN)
        set.distance[p] = r <= cutoff ? r : -1.0;
        if (in.atom_mask != nullptr) {
            set.weight[p] =
                0.5 * ((in.atom_mask[set.atoms[2 * p]] ? 1.0 : 0.0) + (in.atom_mask[set.atoms[2 * p + 1]] ? 1.0 : 0.0));
        }
    }
    require(not_finite == 0, "vectors must be finite");
    return set;
}

// From each pair's energy (unweighted, envelope included) and its gradient dE/dvector of the
// weighted energy [n_pairs, 3] to the outputs.
void finish(const PairSet& set, const PooledArray<double>& energy, const PooledArray<double>& gradient,
            const PairOutputs& out) {
    if (out.energies != nullptr) {
        for (int64_t b = 0; b < set.n_structures; ++b) {
            double sum = 0;
            for (int64_t p = set.bounds[b]; p < set.bounds[b + 1]; ++p) sum += set.weight[p] * energy[p];
            out.energies[b] = sum;
        }
    }
    if (out.atomic != nullptr) {
        std::fill(out.atomic, out.atomic + set.n_atoms, 0.0);
        for (int64_t p = 0; p < set.n_pairs; ++p) {
            out.atomic[set.atoms[2 * p]] += 0.5 * energy[p];
            out.atomic[set.atoms[2 * p + 1]] += 0.5 * energy[p];
        }
    }
    if (out.forces != nullptr) {
        std::fill(out.forces, out.forces + 3 * set.n_atoms, 0.0);
        for (int64_t p = 0; p < set.n_pairs; ++p) {
            // vector = r_j - r_i: dE/dr_j = +g, dE/dr_i = -g; forces are minus those.
            double* fi = out.forces + 3 * set.atoms[2 * p];
            double* fj = out.forces + 3 * set.atoms[2 * p + 1];
            const double* g = gradient.get() + 3 * p;
            for (int c = 0; c < 3; ++c) {
                fi[c] += g[c];
                fj[c] -= g[c];
            }
        }
    }
    if (out.virial != nullptr) {
        for (int64_t b = 0; b < set.n_structures; ++b) {
            double w[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t p = set.bounds[b]; p < set.bounds[b + 1]; ++p) {
                const double* v = set.vectors + 3 * p;
                const double* g = gradient.get() + 3 * p;
                for (int x = 0; x < 3; ++x) {
                    for (int y = 0; y < 3; ++y) w[3 * x + y] += v[x] * g[y];
                }
            }
            std::copy(w, w + 9, out.virial + 9 * b);
        }
    }
}

bool wants_gradient(const PairOutputs& out) { return out.forces != nullptr || out.virial != nullptr; }

// dE/dvector = dE/dr * vector / r (0 for coincident atoms, where every slope here is 0).
inline void along(const double* v, double r, double dE_dr, double* g) {
    const double scale = r > 0.0 ? dE_dr / r : 0.0;
    for (int c = 0; c < 3; ++c) g[c] = scale * v[c];
}

}  // namespace

void PairCutoffFunction::evaluate(double r, double& value, double& slope) const {
    switch (kind) {
        case Dummy:
            value = 1.0;
            slope = 0.0;
            return;
        case Cosine: {
            const double x = r * (PI / cutoff);
            value = 0.5 * std::cos(x) + 0.5;
            slope = -0.5 * (PI / cutoff) * std::sin(x);
            return;
        }
        case Smooth: {
            const double x = r / cutoff;
            const double u = 1.0 - int_power(x, order);
            if (u > eps) {
                value = std::exp(1.0 - 1.0 / u);
                const double du_dr = -order * (order > 1 ? int_power(x, order - 1) : 1.0) / cutoff;
                slope = value * du_dr / (u * u);
            } else {  // clamped at eps: constant
                value = std::exp(1.0 - 1.0 / eps);
                slope = 0.0;
            }
            return;
        }
    }
}

RepulsionXTB::RepulsionXTB(RepulsionXTBParams params, int n_threads)
    : params_(std::move(params)), n_threads_(n_threads) {
    const size_t n = static_cast<size_t>(params_.n_species);
    require(params_.n_species > 0, "n_species must be positive");
    require(params_.y_ab.size() == n * n && params_.sqrt_alpha_ab.size() == n * n && params_.k_rep_ab.size() == n * n,
            "repulsion tables must have shape (n_species, n_species)");
    require(std::isfinite(params_.cutoff_fn.cutoff) && params_.cutoff_fn.cutoff > 0, "cutoff must be finite and > 0");
}

void RepulsionXTB::compute(const PairInputs& in, const PairOutputs& out) const {
    const PairSet set = prepare(pool_, in, params_.n_species, cutoff(), n_threads_);
    const bool gradient = wants_gradient(out);
    PooledArray<double> energy = filled(pool_, set.n_pairs, 0.0),
                        grad = filled(pool_, gradient ? 3 * set.n_pairs : 0, 0.0);
    const int64_t n_species = params_.n_species;
    const double bohr = params_.bohr_per_angstrom;
#pragma omp parallel for schedule(static) num_threads(threads_for(set.n_pairs, n_threads_))
    for (int64_t p = 0; p < set.n_pairs; ++p) {
        const double r = set.distance[p];
        if (r < 0.0) continue;
        const int64_t ab = set.species[set.atoms[2 * p]] * n_species + set.species[set.atoms[2 * p + 1]];
        const double clamped = std::max(r, REPULSION_MIN_DISTANCE);
        const double d = clamped * bohr;
        const double k = params_.k_rep_ab[ab], sqrt_alpha = params_.sqrt_alpha_ab[ab];
        const double d_k = std::pow(d, k);
        const double e = params_.y_ab[ab] / d * std::exp(-sqrt_alpha * d_k);
        double fc, dfc;
        params_.cutoff_fn.evaluate(r, fc, dfc);
        energy[p] = e * fc;
        if (gradient) {
            // de/dd = e (-1/d - sqrt_alpha k d^(k-1)); nothing moves while clamped
            const double de_dr = r > REPULSION_MIN_DISTANCE ? e * (-1.0 / d - sqrt_alpha * k * d_k / d) * bohr : 0.0;
            along(set.vectors + 3 * p, r, set.weight[p] * (de_dr * fc + e * dfc), grad.get() + 3 * p);
        }
    }
    finish(set, energy, grad, out);
}

DispersionD3::DispersionD3(DispersionD3Params params, int n_threads)
    : params_(std::move(params)), n_threads_(n_threads) {
    const size_t n = static_cast<size_t>(params_.n_species);
    const size_t refs = D3_REFERENCES * D3_REFERENCES;
    require(params_.n_species > 0, "n_species must be positive");
    require(params_.cutoff_radii.size() == n * n && params_.sqrt_charge_ab.size() == n * n,
            "cutoff_radii and sqrt_charge_ab must have shape (n_species, n_species)");
    require(params_.covalent_radii.size() == n, "covalent_radii must have shape (n_species,)");
    require(
        params_.c6.size() == n * n * refs && params_.cn_a.size() == n * n * refs && params_.cn_b.size() == n * n * refs,
        "c6, cn_a and cn_b must have shape (n_species, n_species, 5, 5)");
    require(std::isfinite(params_.cutoff_fn.cutoff) && params_.cutoff_fn.cutoff > 0, "cutoff must be finite and > 0");
    references_.resize(n * n);
    for (size_t ab = 0; ab < n * n; ++ab) {
        References& r = references_[ab];
        for (size_t k = 0; k < refs; ++k) {
            const size_t at = ab * refs + k;
            if (!(params_.c6[at] > 0.0)) continue;  // weighs 0 (TorchANI masks c6 <= 0)
            r.c6[r.count] = params_.c6[at];
            r.cn_a[r.count] = params_.cn_a[at];
            r.cn_b[r.count] = params_.cn_b[at];
            r.p[r.count] = static_cast<int>(k) / D3_REFERENCES;
            r.q[r.count] = static_cast<int>(k) % D3_REFERENCES;
            ++r.count;
        }
    }
    // One CN per (element, reference) across every table entry that uses it?
    reference_cn_.assign(n * D3_REFERENCES, std::nan(""));
    separable_ = true;
    auto agree = [&](size_t element, int ref, double cn) {
        double& slot = reference_cn_[element * D3_REFERENCES + ref];
        if (std::isnan(slot)) slot = cn;
        return slot == cn;
    };
    for (size_t a = 0; a < n && separable_; ++a) {
        for (size_t b = 0; b < n && separable_; ++b) {
            const References& r = references_[a * n + b];
            for (int k = 0; k < r.count; ++k) {
                if (!agree(a, r.p[k], r.cn_a[k]) || !agree(b, r.q[k], r.cn_b[k])) separable_ = false;
            }
        }
    }
}

void DispersionD3::compute(const PairInputs& in, const PairOutputs& out) const {
    const PairSet set = prepare(pool_, in, params_.n_species, cutoff(), n_threads_);
    const bool gradient = wants_gradient(out);
    const int threads = threads_for(set.n_pairs, n_threads_);
    const int64_t n_species = params_.n_species;
    const double bohr = params_.bohr_per_angstrom;
    const DispersionD3Params& P = params_;

    // Pass 1: each pair's count towards the coordination numbers, and its slope d count / dr.
    PooledArray<double> count = filled(pool_, set.n_pairs, 0.0);
    PooledArray<double> count_slope = filled(pool_, gradient ? set.n_pairs : 0, 0.0);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t p = 0; p < set.n_pairs; ++p) {
        const double r = set.distance[p];
        if (r < 0.0) continue;
        const double d = r * bohr;
        const double radii =
            P.covalent_radii[set.species[set.atoms[2 * p]]] + P.covalent_radii[set.species[set.atoms[2 * p + 1]]];
        const double t = -P.k1 * (P.k2 * radii / d - 1.0);
        const double et = std::exp(t);
        const double c = 1.0 / (1.0 + et);
        count[p] = c;
        // dc/dt = -e^t c^2, dt/dd = k1 k2 radii / d^2
        if (gradient && d > 0.0) count_slope[p] = -et * c * c * (P.k1 * P.k2 * radii / (d * d)) * bohr;
    }
    PooledArray<double> cn = filled(pool_, set.n_atoms, 0.0);
    for (int64_t p = 0; p < set.n_pairs; ++p) {
        cn[set.atoms[2 * p]] += count[p];
        cn[set.atoms[2 * p + 1]] += count[p];
    }

    // Per-atom Gaussian factors exp(-k3 (CN_i - reference_cn)^2) when the tables allow (separable_).
    PooledArray<double> factor = filled(pool_, separable_ ? D3_REFERENCES * set.n_atoms : 0, 0.0);
    if (separable_) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t i = 0; i < set.n_atoms; ++i) {
            const double* reference = reference_cn_.data() + D3_REFERENCES * set.species[i];
            for (int p = 0; p < D3_REFERENCES; ++p) {
                const double delta = cn[i] - reference[p];
                factor[D3_REFERENCES * i + p] = std::isnan(reference[p]) ? 0.0 : std::exp(-P.k3 * delta * delta);
            }
        }
    }

    // Pass 2: energies, dE/dr at fixed CN, and dE/dCN of both atoms (weighted).
    PooledArray<double> energy = filled(pool_, set.n_pairs, 0.0),
                        grad = filled(pool_, gradient ? 3 * set.n_pairs : 0, 0.0);
    PooledArray<double> dE_dr = filled(pool_, gradient ? set.n_pairs : 0, 0.0);
    PooledArray<double> dE_dcn = filled(pool_, gradient ? 2 * set.n_pairs : 0, 0.0);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t p = 0; p < set.n_pairs; ++p) {
        const double r = set.distance[p];
        if (r < 0.0) continue;
        const int64_t i = set.atoms[2 * p], j = set.atoms[2 * p + 1];
        const int64_t ab = set.species[i] * n_species + set.species[j];
        const References& ref = references_[ab];
        const double cn_i = cn[i], cn_j = cn[j];
        double sum_g = 0, sum_c6g = 0;
        double g[D3_REFERENCES * D3_REFERENCES];
        if (separable_) {
            const double* fi = factor.get() + D3_REFERENCES * i;
            const double* fj = factor.get() + D3_REFERENCES * j;
            for (int k = 0; k < ref.count; ++k) g[k] = fi[ref.p[k]] * fj[ref.q[k]];
        } else {
            for (int k = 0; k < ref.count; ++k) {
                const double da = cn_i - ref.cn_a[k], db = cn_j - ref.cn_b[k];
                g[k] = std::exp(-P.k3 * (da * da + db * db));
            }
        }
        for (int k = 0; k < ref.count; ++k) {
            sum_g += g[k];
            sum_c6g += ref.c6[k] * g[k];
        }
        const double w = sum_g + P.eps, z = sum_c6g + P.eps;
        const double c6 = z / w;
        const double q = P.sqrt_charge_ab[ab];
        const double radius = P.a1 * P.cutoff_radii[ab] + P.a2;
        const double d = r * bohr;
        const double d2 = d * d, d6 = d2 * d2 * d2, d8 = d6 * d2;
        const double R2 = radius * radius, R6 = R2 * R2 * R2, R8 = R6 * R2;
        const double den6 = d6 + R6, den8 = d8 + R8;
        // E0 = -C6 (s6 / den6 + 3 q s8 / den8)
        const double per_c6 = P.s6 / den6 + 3.0 * q * P.s8 / den8;
        const double e0 = -c6 * per_c6;
        double fc, dfc;
        P.cutoff_fn.evaluate(r, fc, dfc);
        energy[p] = e0 * fc;
        if (!gradient) continue;
        const double wp = set.weight[p];
        // dE0/dd = C6 (6 s6 d^5 / den6^2 + 24 q s8 d^7 / den8^2)
        const double de0_dd =
            c6 * (6.0 * P.s6 * d2 * d2 * d / (den6 * den6) + 24.0 * q * P.s8 * d6 * d / (den8 * den8));
        dE_dr[p] = wp * (de0_dd * bohr * fc + e0 * dfc);
        // dC6/dCN_i = -2 k3 / W sum g (c6 - C6)(CN_i - cn_a); same for j with cn_b
        double sum_i = 0, sum_j = 0;
        for (int k = 0; k < ref.count; ++k) {
            const double spread = g[k] * (ref.c6[k] - c6);
            sum_i += spread * (cn_i - ref.cn_a[k]);
            sum_j += spread * (cn_j - ref.cn_b[k]);
        }
        const double dE_dc6 = -per_c6 * fc * wp;
        dE_dcn[2 * p] = dE_dc6 * (-2.0 * P.k3 / w) * sum_i;
        dE_dcn[2 * p + 1] = dE_dc6 * (-2.0 * P.k3 / w) * sum_j;
    }
    if (gradient) {
        // Pass 3: the CN chain rule, dE/dCN of each atom back onto every pair that counts towards it.
        PooledArray<double> atom_dE_dcn = filled(pool_, set.n_atoms, 0.0);
        for (int64_t p = 0; p < set.n_pairs; ++p) {
            atom_dE_dcn[set.atoms[2 * p]] += dE_dcn[2 * p];
            atom_dE_dcn[set.atoms[2 * p + 1]] += dE_dcn[2 * p + 1];
        }
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t p = 0; p < set.n_pairs; ++p) {
            const double r = set.distance[p];
            if (r < 0.0) continue;
            const double chain = (atom_dE_dcn[set.atoms[2 * p]] + atom_dE_dcn[set.atoms[2 * p + 1]]) * count_slope[p];
            along(set.vectors + 3 * p, r, dE_dr[p] + chain, grad.get() + 3 * p);
        }
    }
    finish(set, energy, grad, out);
}

}  // namespace pyani
