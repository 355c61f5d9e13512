// The AEV kernels (formulas and layout in aev.hpp). This file is compiled once per
// instruction set, into namespace pyani::PYANI_KERNEL_ISA (CMakeLists.txt); aev_dispatch.cpp
// picks one at run time.
//
// Per atom, the work is arranged as loops over arrays so that the compiler vectorises them:
// the neighbours of the atom (grouped by species, so that all those feeding one block of
// the AEV are contiguous), then all its angular triples (grouped by species pair). Sums are
// float64; the AEV is stored as float32.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "aev.hpp"
#include "large_buffer.hpp"
#include "parallel.hpp"

#ifndef PYANI_KERNEL_ISA
#define PYANI_KERNEL_ISA baseline
#endif

namespace pyani {
namespace PYANI_KERNEL_ISA {
namespace {

constexpr double PI = 3.14159265358979323846;
constexpr double COS_SCALE = 0.95;  // TorchANI/NeuroChem scale the cosine to keep acos finite

// ---------------------------------------------------------------------------------------
// Elementary functions over arrays. libm's exp, sin and cos are calls that stop a loop from
// vectorising; these are plain arithmetic.

// c[0] + x (c[1] + x (c[2] + ...)), for a double or a vector of doubles.
template <typename T, size_t N>
inline T horner(T x, const double (&c)[N]) {
    T p = T{} + c[N - 1];
    for (size_t k = N - 1; k-- > 0;) p = p * x + c[k];
    return p;
}

// Taylor coefficients: exp(r); sin(u) / u and cos(u) as polynomials in u^2.
constexpr double EXP_SERIES[] = {1.0,
                                 1.0,
                                 1.0 / 2.0,
                                 1.0 / 6.0,
                                 1.0 / 24.0,
                                 1.0 / 120.0,
                                 1.0 / 720.0,
                                 1.0 / 5040.0,
                                 1.0 / 40320.0,
                                 1.0 / 362880.0,
                                 1.0 / 3628800.0,
                                 1.0 / 39916800.0,
                                 1.0 / 479001600.0};
constexpr double SINC_SERIES[] = {1.0,
                                  -1.0 / 6.0,
                                  1.0 / 120.0,
                                  -1.0 / 5040.0,
                                  1.0 / 362880.0,
                                  -1.0 / 39916800.0,
                                  1.0 / 6227020800.0,
                                  -1.0 / 1307674368000.0,
                                  1.0 / 355687428096000.0,
                                  -1.0 / 121645100408832000.0,
                                  1.0 / 51090942171709440000.0};
constexpr double COS_SERIES[] = {1.0,
                                 -1.0 / 2.0,
                                 1.0 / 24.0,
                                 -1.0 / 720.0,
                                 1.0 / 40320.0,
                                 -1.0 / 3628800.0,
                                 1.0 / 479001600.0,
                                 -1.0 / 87178291200.0,
                                 1.0 / 20922789888000.0,
                                 -1.0 / 6402373705728000.0,
                                 1.0 / 2432902008176640000.0,
                                 -1.0 / 1124000727777607680000.0};

// exp(x) for x in [-700, 700] (clamped beyond): Cody-Waite reduction x = n ln2 + r,
// |r| <= ln2/2, a degree-12 Taylor polynomial of exp(r), and 2^n built in the exponent bits.
// Relative error below 4e-16.
#if defined(__GNUC__)
template <int W>
struct Lanes {
    typedef double D __attribute__((vector_size(8 * W)));
    typedef int64_t I __attribute__((vector_size(8 * W)));
};

template <int W>
inline typename Lanes<W>::D exp_lanes(typename Lanes<W>::D x) {
    using D = typename Lanes<W>::D;
    using I = typename Lanes<W>::I;
    // Clamp to [-700, 700] with masks: vector comparisons and integer bit operations work
    // in GCC and Clang alike, where ?: on vectors does not in every Clang.
    const D lo = D{} - 700.0, hi = D{} + 700.0;
    I xb, lob, hib;
    std::memcpy(&xb, &x, sizeof xb);
    std::memcpy(&lob, &lo, sizeof lob);
    std::memcpy(&hib, &hi, sizeof hib);
    const I below = x < lo, above = x > hi;
    xb = (below & lob) | (above & hib) | (~(below | above) & xb);
    std::memcpy(&x, &xb, sizeof x);
    const double shifter = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
    const D t = x * 1.4426950408889634 + shifter;
    const D n = t - shifter;
    const D r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    const D p = horner(r, EXP_SERIES);
    // The low bits of t hold n; (n + 1023) << 52 is the bit pattern of 2^n.
    I bits;
    std::memcpy(&bits, &t, sizeof bits);
    bits = (bits + 1023) << 52;
    D scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

void exp_array(const double* x, double* out, size_t n) {
#if defined(__AVX2__)
    constexpr int W = 4;
#else
    constexpr int W = 2;
#endif
    using D = typename Lanes<W>::D;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        D v;
        std::memcpy(&v, x + i, sizeof v);
        v = exp_lanes<W>(v);
        std::memcpy(out + i, &v, sizeof v);
    }
    if (i < n) {  // the tail, padded
        D v{};
        std::memcpy(&v, x + i, (n - i) * sizeof(double));
        v = exp_lanes<W>(v);
        std::memcpy(out + i, &v, (n - i) * sizeof(double));
    }
}
#else
void exp_array(const double* x, double* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = std::exp(std::min(700.0, std::max(-700.0, x[i])));
}
#endif

// The cosine cutoff fc(r) = 0.5 cos(pi r / rc) + 0.5 and, when dfc is given, its
// derivative, for 0 <= r < rc. With u = pi r / rc - pi/2 in [-pi/2, pi/2): cos = -sin(u) and
// sin = cos(u), Taylor series to degree 21 and 22 (truncation error below 1e-17).
void cutoff_cosine(const double* r, size_t n, double rc, double* fc, double* dfc) {
    const double scale = PI / rc;
    for (size_t q = 0; q < n; ++q) {
        const double u = scale * r[q] - 0.5 * PI, u2 = u * u;
        const double s = horner(u2, SINC_SERIES);  // sin(u) / u
        fc[q] = 0.5 - 0.5 * u * s;
    }
    if (!dfc) return;
    for (size_t q = 0; q < n; ++q) {
        const double u = scale * r[q] - 0.5 * PI, u2 = u * u;
        const double c = horner(u2, COS_SERIES);  // cos(u)
        dfc[q] = -0.5 * scale * c;
    }
}

// ---------------------------------------------------------------------------------------
// Per-call tables.

// The half list seen from each atom: entry e of atom i is pair `pair[e]`, walked from i
// (sign +1: i is the pair's first atom, the vector as stored; -1: reversed).
struct Directed {
    LargeVector<int64_t> start;  // [n_atoms + 1]
    LargeVector<int64_t> pair;
    LargeVector<int8_t> sign;
    LargeVector<int64_t> entries;  // [n_pairs, 2]: pair p's entries from its first and second atom (backward only)
};

Directed directed_neighbors(int64_t n_atoms, int64_t n_pairs, const int64_t* pairs, bool with_entries) {
    Directed dir;
    dir.start.assign(n_atoms + 1, 0);
    for (int64_t p = 0; p < n_pairs; ++p) {
        dir.start[pairs[2 * p] + 1] += 1;
        dir.start[pairs[2 * p + 1] + 1] += 1;
    }
    for (int64_t i = 0; i < n_atoms; ++i) dir.start[i + 1] += dir.start[i];
    dir.pair.resize(2 * n_pairs);
    dir.sign.resize(2 * n_pairs);
    if (with_entries) dir.entries.resize(2 * n_pairs);
    LargeVector<int64_t> fill(dir.start.begin(), dir.start.end() - 1);
    for (int64_t p = 0; p < n_pairs; ++p) {
        const int64_t first = fill[pairs[2 * p]]++, second = fill[pairs[2 * p + 1]]++;
        dir.pair[first] = dir.pair[second] = p;
        dir.sign[first] = 1;
        dir.sign[second] = -1;
        if (with_entries) {
            dir.entries[2 * p] = first;
            dir.entries[2 * p + 1] = second;
        }
    }
    return dir;
}

// Index of the unordered species pair (a, b) in the upper triangle, row-major.
std::vector<int64_t> species_pair_table(int n) {
    std::vector<int64_t> table(n * n);
    int64_t k = 0;
    for (int a = 0; a < n; ++a) {
        for (int b = a; b < n; ++b) {
            table[a * n + b] = table[b * n + a] = k++;
        }
    }
    return table;
}

// cos and sin of the angular sections ShfZ. Zeta is a whole number in every ANI model (32):
// then x^(zeta-1) by squaring beats std::pow.
struct Sections {
    std::vector<double> cos_z, sin_z;
    bool integer_zeta;
    int64_t zeta_minus_one;
    Sections(const std::vector<double>& shf_z, double zeta)
        : integer_zeta(zeta == std::floor(zeta) && zeta >= 1 && zeta <= 1024),
          zeta_minus_one(integer_zeta ? static_cast<int64_t>(zeta) - 1 : 0) {
        for (double z : shf_z) {
            cos_z.push_back(std::cos(z));
            sin_z.push_back(std::sin(z));
        }
    }
};

// exp(-eta (x - shift_k)^2) for the shifts of one AEV part, x in [0, cutoff]. The shifts of
// every ANI model are evenly spaced: then two exps and a product recurrence replace one exp
// per shift (g_{k+1} = g_k r_k, r_{k+1} = r_k decay), as long as no value or ratio can leave
// the range of doubles (`recurrence`).
struct Gaussians {
    double eta, step = 0, decay = 0;
    std::vector<double> shifts;
    bool recurrence;
    Gaussians(double eta_, const std::vector<double>& shifts_, double cutoff) : eta(eta_), shifts(shifts_) {
        bool uniform = shifts.size() > 2;
        if (uniform) step = (shifts.back() - shifts.front()) / (shifts.size() - 1);
        for (size_t k = 0; uniform && k < shifts.size(); ++k) {
            uniform = std::fabs(shifts[0] + k * step - shifts[k]) <= 1e-6 * std::fabs(step);
        }
        decay = std::exp(-2.0 * eta * step * step);
        double far = 0;  // largest |x - shift|
        for (double s : {shifts.front(), shifts.back()}) far = std::max({far, std::fabs(s), std::fabs(cutoff - s)});
        const double t = std::max(std::fabs(shifts[0]), std::fabs(cutoff - shifts[0]));
        recurrence = uniform && eta >= 0 && eta * far * far <= 600.0 &&
                     eta * std::fabs(step) * (2.0 * t + std::fabs(step)) <= 600.0;
    }

    // out[k * n + q] = exp(-eta (x_q - shift_k)^2) for the n values x (in [0, cutoff]); N the
    // number of shifts when known at compile time, else 0. arg and ratio: scratch [n].
    template <size_t N>
    void eval(const double* x, size_t n, double* out, double* arg, double* ratio) const {
        const size_t n_shifts = N ? N : shifts.size();
        if (recurrence) {
            for (size_t q = 0; q < n; ++q) {
                const double d = x[q] - shifts[0];
                arg[q] = -eta * d * d;
                ratio[q] = eta * step * (2.0 * d - step);
            }
            exp_array(arg, out, n);
            exp_array(ratio, ratio, n);
            for (size_t k = 1; k < n_shifts; ++k) {
                for (size_t q = 0; q < n; ++q) {
                    out[k * n + q] = out[(k - 1) * n + q] * ratio[q];
                    ratio[q] *= decay;
                }
            }
            return;
        }
        for (size_t k = 0; k < n_shifts; ++k) {
            for (size_t q = 0; q < n; ++q) {
                const double d = x[q] - shifts[k];
                arg[q] = -eta * d * d;
            }
            exp_array(arg, out + k * n, n);
        }
    }
};

// Thread start-up costs more than the work for a few dozen atoms.
constexpr int64_t MIN_ATOMS_PER_THREAD = 32;

int threads_for(int64_t n_atoms, int n_threads) {
    const int64_t useful = std::max<int64_t>(1, n_atoms / MIN_ATOMS_PER_THREAD);
    return static_cast<int>(std::min<int64_t>(resolve_threads(n_threads), useful));
}

// What the forward and backward passes both derive from their arguments once per call.
struct Tables {
    Directed dir;
    std::vector<int64_t> pair_index;
    Sections sections;
    Gaussians radial, angular;
    Tables(const AEVParams& prm, int64_t n_atoms, int64_t n_pairs, const int64_t* pairs, bool backward)
        : dir(directed_neighbors(n_atoms, n_pairs, pairs, backward)),
          pair_index(species_pair_table(prm.n_species)),
          sections(prm.shf_z, prm.zeta),
          radial(prm.eta_r, prm.shf_r, prm.radial_cutoff),
          angular(prm.eta_a, prm.shf_a, prm.angular_cutoff) {}
};

// ---------------------------------------------------------------------------------------
// Neighbours of one atom.

// All directed entries of one atom: vectors (from the atom), distances, species.
struct Candidates {
    std::vector<double> x, y, z, r;
    std::vector<int64_t> entry;
    std::vector<int32_t> species;

    void gather(const Directed& dir, const int64_t* pairs, const double* vectors, const int32_t* species_of,
                int64_t i) {
        const int64_t first = dir.start[i], n = dir.start[i + 1] - first;
        for (std::vector<double>* v : {&x, &y, &z, &r}) v->resize(n);
        entry.resize(n);
        species.resize(n);
        for (int64_t q = 0; q < n; ++q) {
            const int64_t e = first + q, p = dir.pair[e];
            const double s = dir.sign[e];
            x[q] = s * vectors[3 * p];
            y[q] = s * vectors[3 * p + 1];
            z[q] = s * vectors[3 * p + 2];
            entry[q] = e;
            species[q] = species_of[s > 0 ? pairs[2 * p + 1] : pairs[2 * p]];
        }
        for (int64_t q = 0; q < n; ++q) r[q] = std::sqrt(x[q] * x[q] + y[q] * y[q] + z[q] * z[q]);
    }
};

// The neighbours within one cutoff, grouped by species (those of species s are
// start[s] .. start[s+1]-1), with the cutoff function and its derivative.
struct NeighborSet {
    std::vector<double> x, y, z, r, fc, dfc;
    std::vector<int64_t> entry;
    std::vector<int32_t> species;
    std::vector<int64_t> start, cursor;

    size_t size() const { return r.size(); }

    void fill(const Candidates& c, double cutoff, int n_species, bool derivatives) {
        start.assign(n_species + 1, 0);
        for (size_t q = 0; q < c.r.size(); ++q) {
            if (c.r[q] < cutoff) start[c.species[q] + 1] += 1;
        }
        for (int s = 0; s < n_species; ++s) start[s + 1] += start[s];
        const size_t n = start[n_species];
        for (std::vector<double>* v : {&x, &y, &z, &r, &fc, &dfc}) v->resize(n);
        entry.resize(n);
        species.resize(n);
        cursor.assign(start.begin(), start.end() - 1);
        for (size_t q = 0; q < c.r.size(); ++q) {
            if (!(c.r[q] < cutoff)) continue;
            const int64_t j = cursor[c.species[q]]++;
            x[j] = c.x[q];
            y[j] = c.y[q];
            z[j] = c.z[q];
            r[j] = c.r[q];
            entry[j] = c.entry[q];
            species[j] = c.species[q];
        }
        cutoff_cosine(r.data(), n, cutoff, fc.data(), derivatives ? dfc.data() : nullptr);
    }
};

// ---------------------------------------------------------------------------------------
// Angular terms.

// All triples (centre, a, b), a < b, of one atom's angular neighbours, ordered by species
// pair so that each output block of the AEV gets one contiguous run, and every factor of the
// angular terms as arrays over the triples.
struct Triples {
    size_t size = 0;
    std::vector<int32_t> ia, ib;     // neighbour indices (NeighborSet) of triple t
    std::vector<int64_t> run_start;  // runs of one species pair: run_start[u] .. [u+1]-1
    std::vector<int64_t> run_block;  // their angular block (pair_index)
    std::vector<double> cos_ab, c, sin_t, mean, w, x, power, ratio, arg;  // [size]
    std::vector<double> f1, df1;  // [n_z][size]: 2 X^zeta and its derivative by cos_ab
    std::vector<double> f2, df2;  // [n_a][size]: exp(-EtaA (mean - ShfA)^2) and d/dmean
    std::vector<double> dsin_dcos, s_cos, s_mean, s_cut, gz, gdz;  // [size], backward only

    // Lists the triples of `set` and sizes the arrays.
    void list(const AEVParams& prm, const Tables& t, const NeighborSet& set) {
        ia.clear();
        ib.clear();
        run_start.assign(1, 0);
        run_block.clear();
        for (int32_t sa = 0; sa < prm.n_species; ++sa) {
            for (int32_t sb = sa; sb < prm.n_species; ++sb) {
                for (int64_t a = set.start[sa]; a < set.start[sa + 1]; ++a) {
                    for (int64_t b = std::max(a + 1, set.start[sb]); b < set.start[sb + 1]; ++b) {
                        ia.push_back(static_cast<int32_t>(a));
                        ib.push_back(static_cast<int32_t>(b));
                    }
                }
                if (static_cast<int64_t>(ia.size()) > run_start.back()) {
                    run_start.push_back(static_cast<int64_t>(ia.size()));
                    run_block.push_back(t.pair_index[sa * prm.n_species + sb]);
                }
            }
        }
        size = ia.size();
        for (std::vector<double>* v : {&cos_ab, &c, &sin_t, &mean, &w, &x, &power, &ratio, &arg, &dsin_dcos,
                                       &s_cos, &s_mean, &s_cut, &gz, &gdz}) {
            if (v->size() < size) v->resize(size);
        }
        const size_t n_a = prm.shf_a.size(), n_z = prm.shf_z.size();
        if (f1.size() < n_z * size) {
            f1.resize(n_z * size);
            df1.resize(n_z * size);
        }
        if (f2.size() < n_a * size) {
            f2.resize(n_a * size);
            df2.resize(n_a * size);
        }
    }
};

// The factors of every triple (Triples), with their derivatives when asked. NA and NZ: the
// numbers of angular shifts and sections when known at compile time (the loops over them
// unroll), 0 to read them from the parameters.
template <size_t NA, size_t NZ>
void triple_terms(const AEVParams& prm, const Tables& t, const NeighborSet& set, Triples& tr, bool derivatives) {
    const size_t n_a = NA ? NA : prm.shf_a.size(), n_z = NZ ? NZ : prm.shf_z.size();
    const size_t n = tr.size;
    const int32_t *ia = tr.ia.data(), *ib = tr.ib.data();
    double *cos_ab = tr.cos_ab.data(), *c = tr.c.data(), *sin_t = tr.sin_t.data();
    double *mean = tr.mean.data(), *w = tr.w.data(), *x = tr.x.data(), *arg = tr.arg.data();
    // Gathers first (they do not vectorise), then arithmetic over contiguous arrays.
    for (size_t q = 0; q < n; ++q) {
        const int32_t a = ia[q], b = ib[q];
        cos_ab[q] = set.x[a] * set.x[b] + set.y[a] * set.y[b] + set.z[a] * set.z[b];
        c[q] = set.r[a] * set.r[b];  // r_a r_b, for the next loop
        mean[q] = 0.5 * (set.r[a] + set.r[b]);
        w[q] = set.fc[a] * set.fc[b];
    }
    for (size_t q = 0; q < n; ++q) {
        cos_ab[q] /= c[q] > 1e-10 ? c[q] : 1e-10;
        c[q] = COS_SCALE * cos_ab[q];
        const double s2 = 1.0 - c[q] * c[q];
        sin_t[q] = std::sqrt(s2 > 0.0 ? s2 : 0.0);
    }

    // Gaussians in the mean distance.
    const Gaussians& g = t.angular;
    double* f2 = tr.f2.data();
    g.eval<NA>(mean, n, f2, arg, tr.ratio.data());
    if (derivatives) {
        for (size_t k = 0; k < n_a; ++k) {
            const double shift = g.shifts[k];
            for (size_t q = 0; q < n; ++q) tr.df2[k * n + q] = -2.0 * g.eta * (mean[q] - shift) * f2[k * n + q];
        }
    }

    // Angular sections: F1 = 2 X^zeta, X = (1 + cos(theta - ShfZ)) / 2, with cos(theta - z)
    // expanded so that no acos is needed.
    const Sections& sec = t.sections;
    double *power = tr.power.data(), *dsin_dcos = tr.dsin_dcos.data();
    if (derivatives) {
        for (size_t q = 0; q < n; ++q) dsin_dcos[q] = -COS_SCALE * c[q] / sin_t[q];  // sin_t >= sqrt(1 - 0.95^2)
    }
    for (size_t zi = 0; zi < n_z; ++zi) {
        const double cz = sec.cos_z[zi], sz = sec.sin_z[zi];
        for (size_t q = 0; q < n; ++q) {
            const double v = 0.5 * (1.0 + c[q] * cz + sin_t[q] * sz);
            x[q] = v > 0.0 ? v : 0.0;
        }
        if (sec.zeta_minus_one == 31) {  // every ANI model: x^31 unrolled
            for (size_t q = 0; q < n; ++q) {
                const double x2 = x[q] * x[q], x4 = x2 * x2, x8 = x4 * x4, x16 = x8 * x8;
                power[q] = x16 * x8 * x4 * x2 * x[q];
            }
        } else if (sec.integer_zeta) {  // x^(zeta-1) by squaring
            double* base = arg;
            for (size_t q = 0; q < n; ++q) {
                base[q] = x[q];
                power[q] = 1.0;
            }
            for (int64_t e = sec.zeta_minus_one; e > 0; e >>= 1) {
                if (e & 1) {
                    for (size_t q = 0; q < n; ++q) power[q] *= base[q];
                }
                for (size_t q = 0; q < n; ++q) base[q] *= base[q];
            }
        } else {
            for (size_t q = 0; q < n; ++q) power[q] = std::pow(x[q], prm.zeta - 1.0);
        }
        double* f1 = tr.f1.data() + zi * n;
        for (size_t q = 0; q < n; ++q) f1[q] = 2.0 * power[q] * x[q];
        if (derivatives) {
            double* df1 = tr.df1.data() + zi * n;
            for (size_t q = 0; q < n; ++q) df1[q] = prm.zeta * power[q] * (COS_SCALE * cz + dsin_dcos[q] * sz);
        }
    }
}

// What both passes compute for one atom: its neighbours within each cutoff, their radial
// Gaussians gauss[k * n_radial + q] (without the factor 0.25) and its angular triples, with
// derivatives when asked. One per thread; the buffers are reused from atom to atom.
struct AtomTerms {
    Candidates candidates;
    NeighborSet radial, angular;
    std::vector<double> gauss, arg, ratio;
    Triples triples;

    template <size_t NR, size_t NA, size_t NZ>
    void compute(const AEVParams& prm, const Tables& t, const int64_t* pairs, const double* vectors,
                 const int32_t* species, int64_t i, bool derivatives) {
        candidates.gather(t.dir, pairs, vectors, species, i);
        radial.fill(candidates, prm.radial_cutoff, prm.n_species, derivatives);
        angular.fill(candidates, prm.angular_cutoff, prm.n_species, derivatives);
        const size_t n_r = NR ? NR : prm.shf_r.size(), n = radial.size();
        gauss.resize(n_r * n);
        arg.resize(n);
        ratio.resize(n);
        t.radial.eval<NR>(radial.r.data(), n, gauss.data(), arg.data(), ratio.data());
        triples.list(prm, t, angular);
        triple_terms<NA, NZ>(prm, t, angular, triples, derivatives);
    }
};

// ---------------------------------------------------------------------------------------
// The two passes, for NR radial shifts, NA angular shifts and NZ angular sections known at
// compile time, or 0 for counts read from the parameters. Every ANI model has 16, 4, 8.

template <size_t NR, size_t NA, size_t NZ>
void forward_atoms(const AEVParams& prm, const Tables& t, int64_t n_atoms, const int32_t* species,
                   const int64_t* pairs, const double* vectors, const int64_t* rows, const int64_t* features,
                   int64_t n_features, float* aev, int n_threads) {
    const size_t n_r = NR ? NR : prm.shf_r.size(), n_a = NA ? NA : prm.shf_a.size();
    const size_t n_z = NZ ? NZ : prm.shf_z.size();
    const int64_t length = prm.length(), radial_length = prm.radial_length();
    FirstError errors;  // per-atom scratch grows with the neighbours: bad_alloc must reach Python
#pragma omp parallel num_threads(threads_for(n_atoms, n_threads))
    {
        std::vector<double> acc;
        errors.guard([&] { acc.resize(length); });
        AtomTerms atom;
        const NeighborSet& radial = atom.radial;
        const std::vector<double>& gauss = atom.gauss;
        Triples& tr = atom.triples;
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n_atoms; ++i) {
            errors.guard([&] {
                std::fill(acc.begin(), acc.end(), 0.0);
                atom.compute<NR, NA, NZ>(prm, t, pairs, vectors, species, i, false);
                const size_t nr = radial.size();
                for (int32_t s = 0; s < prm.n_species; ++s) {
                    const size_t lo = radial.start[s], hi = radial.start[s + 1];
                    for (size_t k = 0; k < n_r && lo < hi; ++k) {
                        const double* gk = gauss.data() + k * nr;
                        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
                        for (size_t q = lo; q < hi; ++q) sum += gk[q] * radial.fc[q];
                        acc[s * n_r + k] += 0.25 * sum;
                    }
                }

                const size_t nt = tr.size;
                for (size_t u = 0; u + 1 < tr.run_start.size(); ++u) {
                    double* out = acc.data() + radial_length + tr.run_block[u] * n_a * n_z;
                    const size_t lo = tr.run_start[u], hi = tr.run_start[u + 1];
                    for (size_t k = 0; k < n_a; ++k) {
                        double* f2 = tr.f2.data() + k * nt;
                        for (size_t q = lo; q < hi; ++q) f2[q] *= tr.w[q];
                        for (size_t zi = 0; zi < n_z; ++zi) {
                            const double* f1 = tr.f1.data() + zi * nt;
                            double sum = 0.0;
#pragma omp simd reduction(+ : sum)
                            for (size_t q = lo; q < hi; ++q) sum += f2[q] * f1[q];
                            out[k * n_z + zi] += sum;
                        }
                    }
                }
                float* row = aev + rows[i] * n_features;
                for (int64_t k = 0; k < n_features; ++k) row[k] = static_cast<float>(acc[features[k]]);
            });
        }
    }
    errors.rethrow();
}

// Writes dE/d(entry vector) of atom i's entries into grad_entry [entries, 3] (atom i owns them).
template <size_t NR, size_t NA, size_t NZ>
void backward_atoms(const AEVParams& prm, const Tables& t, int64_t n_atoms, const int32_t* species,
                    const int64_t* pairs, const double* vectors, const int64_t* rows, const int64_t* features,
                    int64_t n_features, const float* grad_aev, double* grad_entry, int n_threads) {
    const size_t n_r = NR ? NR : prm.shf_r.size(), n_a = NA ? NA : prm.shf_a.size();
    const size_t n_z = NZ ? NZ : prm.shf_z.size();
    const int64_t length = prm.length(), radial_length = prm.radial_length();
    FirstError errors;  // per-atom scratch grows with the neighbours: bad_alloc must reach Python
#pragma omp parallel num_threads(threads_for(n_atoms, n_threads))
    {
        std::vector<double> g, de_dr, grad_x, grad_y, grad_z;
        errors.guard([&] { g.assign(length, 0.0); });
        AtomTerms atom;
        const NeighborSet &radial = atom.radial, &angular = atom.angular;
        const std::vector<double>& gauss = atom.gauss;
        Triples& tr = atom.triples;
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n_atoms; ++i) {
            errors.guard([&] {
                const float* row = grad_aev + rows[i] * n_features;
                for (int64_t k = 0; k < n_features; ++k) g[features[k]] = row[k];
                std::fill(grad_entry + 3 * t.dir.start[i], grad_entry + 3 * t.dir.start[i + 1], 0.0);
                atom.compute<NR, NA, NZ>(prm, t, pairs, vectors, species, i, true);

                // Radial: dE/dr per neighbour, then along its unit vector.
                const size_t nr = radial.size();
                de_dr.assign(nr, 0.0);
                for (int32_t s = 0; s < prm.n_species; ++s) {
                    const size_t lo = radial.start[s], hi = radial.start[s + 1];
                    for (size_t k = 0; k < n_r && lo < hi; ++k) {
                        const double gk = g[s * n_r + k], two_eta = 2.0 * t.radial.eta, shift = t.radial.shifts[k];
                        const double* gauss_k = gauss.data() + k * nr;
                        for (size_t q = lo; q < hi; ++q) {
                            de_dr[q] += gk * gauss_k[q] *
                                        (radial.dfc[q] - two_eta * (radial.r[q] - shift) * radial.fc[q]);
                        }
                    }
                }
                for (size_t q = 0; q < nr; ++q) {
                    double* out = grad_entry + 3 * radial.entry[q];
                    const double scale = 0.25 * de_dr[q] / radial.r[q];
                    out[0] += scale * radial.x[q];
                    out[1] += scale * radial.y[q];
                    out[2] += scale * radial.z[q];
                }

                const size_t nt = tr.size;
                double *s_cos = tr.s_cos.data(), *s_mean = tr.s_mean.data(), *s_cut = tr.s_cut.data();
                double *gz = tr.gz.data(), *gdz = tr.gdz.data();
                // Contract dE/dAEV with the section factors, then with the Gaussians: per triple,
                // dE/dcos, dE/dmean and dE/d(fc_a fc_b) (the latter two without the cutoffs).
                for (size_t q = 0; q < nt; ++q) s_cos[q] = s_mean[q] = s_cut[q] = 0.0;
                for (size_t u = 0; u + 1 < tr.run_start.size(); ++u) {
                    const double* block = g.data() + radial_length + tr.run_block[u] * n_a * n_z;
                    const size_t lo = tr.run_start[u], hi = tr.run_start[u + 1];
                    for (size_t k = 0; k < n_a; ++k) {
                        for (size_t q = lo; q < hi; ++q) gz[q] = gdz[q] = 0.0;
                        for (size_t zi = 0; zi < n_z; ++zi) {
                            const double gkz = block[k * n_z + zi];
                            const double *f1 = tr.f1.data() + zi * nt, *df1 = tr.df1.data() + zi * nt;
                            for (size_t q = lo; q < hi; ++q) {
                                gz[q] += gkz * f1[q];
                                gdz[q] += gkz * df1[q];
                            }
                        }
                        const double *f2 = tr.f2.data() + k * nt, *df2 = tr.df2.data() + k * nt;
                        for (size_t q = lo; q < hi; ++q) {
                            s_cos[q] += f2[q] * gdz[q];
                            s_mean[q] += df2[q] * gz[q];
                            s_cut[q] += f2[q] * gz[q];
                        }
                    }
                }
                // Chain rule to the two neighbour vectors of each triple, summed per neighbour.
                const size_t na = angular.size();
                grad_x.assign(na, 0.0);
                grad_y.assign(na, 0.0);
                grad_z.assign(na, 0.0);
                for (size_t q = 0; q < nt; ++q) {
                    const int32_t ja = tr.ia[q], jb = tr.ib[q];
                    const double ra = angular.r[ja], rb = angular.r[jb], w = tr.w[q], cos_ab = tr.cos_ab[q];
                    const double de_dcos = s_cos[q] * w;
                    const double de_dra = 0.5 * s_mean[q] * w + s_cut[q] * angular.dfc[ja] * angular.fc[jb];
                    const double de_drb = 0.5 * s_mean[q] * w + s_cut[q] * angular.fc[ja] * angular.dfc[jb];
                    // d cos / d v_a = v_b / (r_a r_b) - cos v_a / r_a^2, and the same with a <-> b.
                    const double cross = de_dcos / (ra * rb);
                    const double ca = de_dra / ra - de_dcos * cos_ab / (ra * ra);
                    const double cb = de_drb / rb - de_dcos * cos_ab / (rb * rb);
                    const double xa = angular.x[ja], ya = angular.y[ja], za = angular.z[ja];
                    const double xb = angular.x[jb], yb = angular.y[jb], zb = angular.z[jb];
                    grad_x[ja] += ca * xa + cross * xb;
                    grad_y[ja] += ca * ya + cross * yb;
                    grad_z[ja] += ca * za + cross * zb;
                    grad_x[jb] += cb * xb + cross * xa;
                    grad_y[jb] += cb * yb + cross * ya;
                    grad_z[jb] += cb * zb + cross * za;
                }
                for (size_t j = 0; j < na; ++j) {
                    double* out = grad_entry + 3 * angular.entry[j];
                    out[0] += grad_x[j];
                    out[1] += grad_y[j];
                    out[2] += grad_z[j];
                }
            });
        }
    }
    errors.rethrow();
}

bool fixed_sizes(const AEVParams& prm) {
    return prm.shf_r.size() == 16 && prm.shf_a.size() == 4 && prm.shf_z.size() == 8;
}

}  // namespace

void aev_forward(const AEVParams& prm, int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                 const int64_t* pairs, const double* vectors, const int64_t* rows, const int64_t* features,
                 int64_t n_features, float* aev, int n_threads) {
    const Tables t(prm, n_atoms, n_pairs, pairs, false);
    auto run = fixed_sizes(prm) ? forward_atoms<16, 4, 8> : forward_atoms<0, 0, 0>;
    run(prm, t, n_atoms, species, pairs, vectors, rows, features, n_features, aev, n_threads);
}

void aev_backward(const AEVParams& prm, int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                  const int64_t* pairs, const double* vectors, const int64_t* rows, const int64_t* features,
                  int64_t n_features, const float* grad_aev, double* grad_vectors, int n_threads) {
    const Tables t(prm, n_atoms, n_pairs, pairs, true);
    const Directed& dir = t.dir;
    // Gradient per directed entry: atom i writes only its own entries, so no atomics. Left
    // uninitialised here: each atom zeroes its own entries, in parallel (1.4 GB for 1M atoms).
    LargeArray<double> grad_entry = make_large_array<double>(3 * dir.pair.size());
    auto run = fixed_sizes(prm) ? backward_atoms<16, 4, 8> : backward_atoms<0, 0, 0>;
    run(prm, t, n_atoms, species, pairs, vectors, rows, features, n_features, grad_aev, grad_entry.get(), n_threads);
    // dE/d(vector of p) = (gradient seen from its first atom) - (from its second atom), in a
    // fixed order, so the result does not depend on the thread count.
#pragma omp parallel for schedule(static) num_threads(threads_for(n_atoms, n_threads))
    for (int64_t p = 0; p < n_pairs; ++p) {
        const double* from_first = grad_entry.get() + 3 * dir.entries[2 * p];
        const double* from_second = grad_entry.get() + 3 * dir.entries[2 * p + 1];
        for (int c = 0; c < 3; ++c) grad_vectors[3 * p + c] = from_first[c] - from_second[c];
    }
}

}  // namespace PYANI_KERNEL_ISA
}  // namespace pyani
