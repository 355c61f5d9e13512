#include "aev.hpp"

#include <algorithm>
#include <cmath>

#include "parallel.hpp"

namespace pyani {
namespace {

constexpr double PI = 3.14159265358979323846;
constexpr double COS_SCALE = 0.95;  // TorchANI/NeuroChem scale the cosine to keep acos finite

// The half list seen from each atom: entry e of atom i is pair `pair[e]`, walked from i
// (sign +1: i is the pair's first atom, the vector as stored; -1: reversed).
struct Directed {
    std::vector<int64_t> start;  // [n_atoms + 1]
    std::vector<int64_t> pair;
    std::vector<int8_t> sign;
};

Directed directed_neighbors(int64_t n_atoms, int64_t n_pairs, const int64_t* pairs) {
    Directed dir;
    dir.start.assign(n_atoms + 1, 0);
    for (int64_t p = 0; p < n_pairs; ++p) {
        dir.start[pairs[2 * p] + 1] += 1;
        dir.start[pairs[2 * p + 1] + 1] += 1;
    }
    for (int64_t i = 0; i < n_atoms; ++i) dir.start[i + 1] += dir.start[i];
    dir.pair.resize(2 * n_pairs);
    dir.sign.resize(2 * n_pairs);
    std::vector<int64_t> fill(dir.start.begin(), dir.start.end() - 1);
    for (int64_t p = 0; p < n_pairs; ++p) {
        int64_t e = fill[pairs[2 * p]]++;
        dir.pair[e] = p;
        dir.sign[e] = 1;
        e = fill[pairs[2 * p + 1]]++;
        dir.pair[e] = p;
        dir.sign[e] = -1;
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

// One neighbour of the centre atom, as both passes need it.
struct Neighbor {
    int64_t entry;  // index into Directed
    double v[3];
    double r, fc, dfc;  // distance, cutoff function and its derivative
    int32_t species;
};

void cutoff_cosine(double r, double rc, double& fc, double& dfc) {
    fc = 0.5 * std::cos(PI * r / rc) + 0.5;
    dfc = -0.5 * PI / rc * std::sin(PI * r / rc);
}

// The neighbours of atom i within the radial cutoff (all) and the angular cutoff (angular).
void gather(const AEVParams& prm, const Directed& dir, const int64_t* pairs, const double* vectors,
            const int32_t* species, int64_t i, std::vector<Neighbor>& radial,
            std::vector<Neighbor>& angular) {
    radial.clear();
    angular.clear();
    for (int64_t e = dir.start[i]; e < dir.start[i + 1]; ++e) {
        const int64_t p = dir.pair[e];
        const double s = dir.sign[e];
        Neighbor nb;
        nb.entry = e;
        for (int c = 0; c < 3; ++c) nb.v[c] = s * vectors[3 * p + c];
        nb.r = std::sqrt(nb.v[0] * nb.v[0] + nb.v[1] * nb.v[1] + nb.v[2] * nb.v[2]);
        if (nb.r >= prm.radial_cutoff) continue;
        nb.species = species[s > 0 ? pairs[2 * p + 1] : pairs[2 * p]];
        cutoff_cosine(nb.r, prm.radial_cutoff, nb.fc, nb.dfc);
        radial.push_back(nb);
        if (nb.r < prm.angular_cutoff) {
            cutoff_cosine(nb.r, prm.angular_cutoff, nb.fc, nb.dfc);
            angular.push_back(nb);
        }
    }
}

// cos and sin of the angular sections ShfZ, computed once per call.
// Zeta is a whole number in ANI-1x (32): then x^(zeta-1) by squaring beats std::pow.
constexpr size_t MAX_SECTIONS = 64;  // checked when AEVParams are made (bindings)

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

double power(double x, int64_t n) {
    double result = 1.0;
    while (n > 0) {
        if (n & 1) result *= x;
        x *= x;
        n >>= 1;
    }
    return result;
}

// exp(-eta (x - shift_k)^2) for every shift k. The shifts of every ANI model are evenly
// spaced: then two exps and a product recurrence replace one exp per shift
// (g_{k+1} = g_k r_k, r_{k+1} = r_k exp(-2 eta step^2)), unless that could under/overflow.
struct Gaussians {
    double eta, step = 0, decay = 0;
    std::vector<double> shifts;
    bool uniform;
    Gaussians(double eta_, const std::vector<double>& shifts_) : eta(eta_), shifts(shifts_) {
        uniform = shifts.size() > 2;
        if (uniform) step = (shifts.back() - shifts.front()) / (shifts.size() - 1);
        for (size_t k = 0; uniform && k < shifts.size(); ++k) {
            uniform = std::fabs(shifts[0] + k * step - shifts[k]) <= 1e-6 * std::fabs(step);
        }
        decay = std::exp(-2.0 * eta * step * step);
    }
    // N > 0: the number of shifts, known at compile time (the loops unroll); 0: shifts.size().
    template <size_t N = 0>
    void eval(double x, double* out) const {
        const size_t n = N ? N : shifts.size();
        const double t = x - shifts[0];
        const double span = eta * std::fabs(t) * (std::fabs(t) + 2.0 * std::fabs(step) * n);
        if (!uniform || span > 600.0) {
            for (size_t k = 0; k < n; ++k) {
                const double d = x - shifts[k];
                out[k] = std::exp(-eta * d * d);
            }
            return;
        }
        double g = std::exp(-eta * t * t);
        double ratio = std::exp(eta * step * (2.0 * t - step));
        for (size_t k = 0; k < n; ++k) {
            out[k] = g;
            g *= ratio;
            ratio *= decay;
        }
    }
};

// Angular factors of one triple: F1[z] = 2 X^zeta with X = (1 + cos(theta - ShfZ)) / 2,
// and dF1/dcos; cos(theta - z) expanded so no acos is needed. NZ as N in Gaussians.
template <size_t NZ>
void angle_factors(const AEVParams& prm, const Sections& sec, double cos_angle, double* f1,
                   double* df1) {
    const double c = COS_SCALE * cos_angle;
    const double sin_theta = std::sqrt(std::max(0.0, 1.0 - c * c));
    const double dsin_dcos = -COS_SCALE * c / sin_theta;  // sin_theta >= sqrt(1 - 0.95^2)
    const size_t n_z = NZ ? NZ : sec.cos_z.size();
    double x[MAX_SECTIONS], xpow[MAX_SECTIONS];
    for (size_t z = 0; z < n_z; ++z) {
        x[z] = std::max(0.0, 0.5 * (1.0 + c * sec.cos_z[z] + sin_theta * sec.sin_z[z]));
    }
    if (sec.integer_zeta) {
        // x^(zeta-1) by squaring, all sections at once (the loops vectorise).
        double base[MAX_SECTIONS];
        for (size_t z = 0; z < n_z; ++z) {
            base[z] = x[z];
            xpow[z] = 1.0;
        }
        for (int64_t n = sec.zeta_minus_one; n > 0; n >>= 1) {
            if (n & 1) {
                for (size_t z = 0; z < n_z; ++z) xpow[z] *= base[z];
            }
            for (size_t z = 0; z < n_z; ++z) base[z] *= base[z];
        }
    } else {
        for (size_t z = 0; z < n_z; ++z) xpow[z] = std::pow(x[z], prm.zeta - 1.0);
    }
    for (size_t z = 0; z < n_z; ++z) f1[z] = 2.0 * xpow[z] * x[z];
    if (df1) {
        for (size_t z = 0; z < n_z; ++z) {
            df1[z] = prm.zeta * xpow[z] * (COS_SCALE * sec.cos_z[z] + dsin_dcos * sec.sin_z[z]);
        }
    }
}

// Thread start-up costs more than the work for a few dozen atoms.
constexpr int64_t MIN_ATOMS_PER_THREAD = 32;

int threads_for(int64_t n_atoms, int n_threads) {
    const int64_t useful = std::max<int64_t>(1, n_atoms / MIN_ATOMS_PER_THREAD);
    return static_cast<int>(std::min<int64_t>(resolve_threads(n_threads), useful));
}

double cosine(const Neighbor& a, const Neighbor& b) {
    const double d = a.v[0] * b.v[0] + a.v[1] * b.v[1] + a.v[2] * b.v[2];
    return d / std::max(a.r * b.r, 1e-10);
}

// What the forward and backward passes both derive from their arguments once per call.
struct Tables {
    Directed dir;
    std::vector<int64_t> pair_index;
    Sections sections;
    Gaussians radial_terms, angular_terms;
    // Whether the angular Gaussians may use their recurrence for every mean distance in
    // [0, angular_cutoff] (see triple_terms).
    bool angular_recurrence;
    Tables(const AEVParams& prm, int64_t n_atoms, int64_t n_pairs, const int64_t* pairs)
        : dir(directed_neighbors(n_atoms, n_pairs, pairs)),
          pair_index(species_pair_table(prm.n_species)),
          sections(prm.shf_z, prm.zeta),
          radial_terms(prm.eta_r, prm.shf_r),
          angular_terms(prm.eta_a, prm.shf_a) {
        const Gaussians& g = angular_terms;
        const double t = std::max(std::fabs(g.shifts[0]), std::fabs(prm.angular_cutoff - g.shifts[0]));
        angular_recurrence = g.uniform && g.eta * t * (t + 2.0 * std::fabs(g.step) * g.shifts.size()) <= 600.0;
    }
};

// The angular neighbours of one atom as arrays, grouped by species, so that the loops over
// the partners of one neighbour vectorise and partners of one species are contiguous.
struct AngularSet {
    std::vector<double> x, y, z, r, fc, dfc;
    std::vector<double> half_ratio;  // exp(EtaA step (r - ShfA[0])): see triple_terms
    std::vector<int64_t> entry;
    std::vector<int32_t> species;
    std::vector<int64_t> start, cursor;  // neighbours of species s: start[s] .. start[s+1]-1

    size_t size() const { return r.size(); }

    void fill(const std::vector<Neighbor>& nbs, const AEVParams& prm, const Tables& t) {
        const size_t n = nbs.size();
        for (std::vector<double>* v : {&x, &y, &z, &r, &fc, &dfc, &half_ratio}) v->resize(n);
        entry.resize(n);
        species.resize(n);
        start.assign(prm.n_species + 1, 0);
        for (const Neighbor& nb : nbs) start[nb.species + 1] += 1;
        for (int s = 0; s < prm.n_species; ++s) start[s + 1] += start[s];
        cursor.assign(start.begin(), start.end() - 1);
        for (const Neighbor& nb : nbs) {
            const int64_t j = cursor[nb.species]++;
            x[j] = nb.v[0];
            y[j] = nb.v[1];
            z[j] = nb.v[2];
            r[j] = nb.r;
            fc[j] = nb.fc;
            dfc[j] = nb.dfc;
            entry[j] = nb.entry;
            species[j] = nb.species;
        }
        if (t.angular_recurrence) {
            const Gaussians& g = t.angular_terms;
            for (size_t j = 0; j < n; ++j) half_ratio[j] = std::exp(g.eta * g.step * (r[j] - g.shifts[0]));
        }
    }
};

// All triples (centre, a, b), a < b, of one atom's angular neighbours, ordered by species
// pair so that each output block of the AEV gets one contiguous run, and every factor of the
// angular terms as arrays over the triples: the loops run over a few hundred triples and
// vectorise, where loops over the partners of one neighbour would be a few elements long.
struct Triples {
    size_t size = 0;
    std::vector<int32_t> ia, ib;          // neighbour indices (AngularSet) of triple t
    std::vector<int64_t> run_start;       // runs of one species pair: run_start[u]..[u+1]-1
    std::vector<int64_t> run_block;       // their angular block (pair_index)
    std::vector<double> cos_ab, c, sin_t, mean, w, x, base, power;  // [size]
    std::vector<double> f1, df1;  // [n_z][size]: 2 X^zeta and its derivative by cos_ab
    std::vector<double> f2, df2;  // [n_a][size]: exp(-EtaA (mean - ShfA)^2) and d/dmean
    std::vector<double> dsin_dcos, s_cos, s_mean, s_cut, gz, gdz;  // [size], backward only

    // Lists the triples of `set` and sizes the arrays.
    void list(const AEVParams& prm, const Tables& t, const AngularSet& set) {
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
        for (std::vector<double>* v : {&cos_ab, &c, &sin_t, &mean, &w, &x, &base, &power, &dsin_dcos,
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

// The factors of every triple (Triples), with their derivatives when asked.
template <size_t NA, size_t NZ>
void triple_terms(const AEVParams& prm, const Tables& t, const AngularSet& set, Triples& tr,
                  bool derivatives) {
    const size_t n_a = NA ? NA : prm.shf_a.size(), n_z = NZ ? NZ : prm.shf_z.size();
    const size_t n = tr.size;
    const int32_t *ia = tr.ia.data(), *ib = tr.ib.data();
    double *cos_ab = tr.cos_ab.data(), *c = tr.c.data(), *sin_t = tr.sin_t.data();
    double *mean = tr.mean.data(), *w = tr.w.data(), *x = tr.x.data();
    // Gathers first (they do not vectorise), then arithmetic over contiguous arrays.
    for (size_t q = 0; q < n; ++q) {
        const int32_t a = ia[q], b = ib[q];
        cos_ab[q] = set.x[a] * set.x[b] + set.y[a] * set.y[b] + set.z[a] * set.z[b];
        c[q] = set.r[a] * set.r[b];  // scratch: r_a r_b
        mean[q] = 0.5 * (set.r[a] + set.r[b]);
        w[q] = set.fc[a] * set.fc[b];
        x[q] = set.half_ratio[a] * set.half_ratio[b];  // scratch: see below
    }
    for (size_t q = 0; q < n; ++q) {
        cos_ab[q] /= c[q] > 1e-10 ? c[q] : 1e-10;
        c[q] = COS_SCALE * cos_ab[q];
        const double s2 = 1.0 - c[q] * c[q];
        sin_t[q] = std::sqrt(s2 > 0.0 ? s2 : 0.0);
    }

    // Gaussians in the mean distance. The ratio of the recurrence of Gaussians::eval,
    // exp(EtaA step (2 (mean - ShfA[0]) - step)), splits into a factor per neighbour.
    const Gaussians& g = t.angular_terms;
    double* f2 = tr.f2.data();
    if (t.angular_recurrence) {
        const double last = std::exp(-g.eta * g.step * g.step);
        for (size_t q = 0; q < n; ++q) {
            const double d = mean[q] - g.shifts[0];
            f2[q] = std::exp(-g.eta * d * d);
        }
        for (size_t q = 0; q < n; ++q) {
            double value = f2[q], ratio = x[q] * last;
            for (size_t k = 1; k < n_a; ++k) {
                value *= ratio;
                ratio *= g.decay;
                f2[k * n + q] = value;
            }
        }
    } else {
        for (size_t k = 0; k < n_a; ++k) {
            for (size_t q = 0; q < n; ++q) {
                const double d = mean[q] - g.shifts[k];
                f2[k * n + q] = std::exp(-g.eta * d * d);
            }
        }
    }
    if (derivatives) {
        for (size_t k = 0; k < n_a; ++k) {
            const double shift = g.shifts[k];
            for (size_t q = 0; q < n; ++q) tr.df2[k * n + q] = -2.0 * g.eta * (mean[q] - shift) * f2[k * n + q];
        }
    }

    // Angular sections: F1 = 2 X^zeta, X = (1 + cos(theta - ShfZ)) / 2, with cos(theta - z)
    // expanded so that no acos is needed.
    const Sections& sec = t.sections;
    double *base = tr.base.data(), *power = tr.power.data(), *dsin_dcos = tr.dsin_dcos.data();
    if (derivatives) {
        for (size_t q = 0; q < n; ++q) dsin_dcos[q] = -COS_SCALE * c[q] / sin_t[q];  // sin_t >= sqrt(1 - 0.95^2)
    }
    for (size_t zi = 0; zi < n_z; ++zi) {
        const double cz = sec.cos_z[zi], sz = sec.sin_z[zi];
        for (size_t q = 0; q < n; ++q) {
            const double v = 0.5 * (1.0 + c[q] * cz + sin_t[q] * sz);
            x[q] = v > 0.0 ? v : 0.0;
        }
        if (sec.zeta_minus_one == 31) {  // every ANI model: x^31 unrolled, in registers
            for (size_t q = 0; q < n; ++q) {
                const double x2 = x[q] * x[q], x4 = x2 * x2, x8 = x4 * x4, x16 = x8 * x8;
                power[q] = x16 * x8 * x4 * x2 * x[q];
            }
        } else if (sec.integer_zeta) {  // x^(zeta-1) by squaring
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
            for (size_t q = 0; q < n; ++q) {
                df1[q] = prm.zeta * power[q] * (COS_SCALE * cz + dsin_dcos[q] * sz);
            }
        }
    }
}

// The per-atom loops of the two passes, for NR radial shifts, NA angular shifts and NZ
// angular sections known at compile time (the small loops over them then unroll), or 0 for
// counts read from the parameters. Every ANI model so far has 16, 4 and 8 (FIXED_SIZES).
template <size_t NR, size_t NA, size_t NZ>
void forward_atoms(const AEVParams& prm, const Tables& t, int64_t n_atoms, const int32_t* species,
                   const int64_t* pairs, const double* vectors, const int64_t* rows,
                   const int64_t* features, int64_t n_features, float* aev, int n_threads) {
    const size_t n_r = NR ? NR : prm.shf_r.size(), n_a = NA ? NA : prm.shf_a.size();
    const size_t n_z = NZ ? NZ : prm.shf_z.size();
    const int64_t length = prm.length(), radial_length = prm.radial_length();
#pragma omp parallel num_threads(threads_for(n_atoms, n_threads))
    {
        std::vector<double> acc(length), g(n_r);
        std::vector<Neighbor> radial, angular;
        AngularSet set;
        Triples tr;
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n_atoms; ++i) {
            std::fill(acc.begin(), acc.end(), 0.0);
            gather(prm, t.dir, pairs, vectors, species, i, radial, angular);
            for (const Neighbor& nb : radial) {
                double* out = acc.data() + nb.species * n_r;
                t.radial_terms.eval<NR>(nb.r, g.data());
                const double scale = 0.25 * nb.fc;
                for (size_t k = 0; k < n_r; ++k) out[k] += scale * g[k];
            }
            set.fill(angular, prm, t);
            tr.list(prm, t, set);
            triple_terms<NA, NZ>(prm, t, set, tr, false);
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
        }
    }
}


template <size_t NR, size_t NA, size_t NZ>
void backward_atoms(const AEVParams& prm, const Tables& t, int64_t n_atoms, const int32_t* species,
                    const int64_t* pairs, const double* vectors, const int64_t* rows,
                    const int64_t* features, int64_t n_features, const float* grad_aev,
                    double* grad_entry, int n_threads) {
    const size_t n_r = NR ? NR : prm.shf_r.size(), n_a = NA ? NA : prm.shf_a.size();
    const size_t n_z = NZ ? NZ : prm.shf_z.size();
    const int64_t length = prm.length(), radial_length = prm.radial_length();
#pragma omp parallel num_threads(threads_for(n_atoms, n_threads))
    {
        std::vector<double> g(length, 0.0), gauss(n_r), grad_x, grad_y, grad_z;
        std::vector<Neighbor> radial, angular;
        AngularSet set;
        Triples tr;
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n_atoms; ++i) {
            const float* row = grad_aev + rows[i] * n_features;
            for (int64_t k = 0; k < n_features; ++k) g[features[k]] = row[k];
            gather(prm, t.dir, pairs, vectors, species, i, radial, angular);

            for (const Neighbor& nb : radial) {
                const double* gr = g.data() + nb.species * n_r;
                t.radial_terms.eval<NR>(nb.r, gauss.data());
                double de_dr = 0;
                for (size_t k = 0; k < n_r; ++k) {
                    const double dr = nb.r - prm.shf_r[k];
                    de_dr += gr[k] * gauss[k] * (nb.dfc - 2.0 * prm.eta_r * dr * nb.fc);
                }
                de_dr *= 0.25;
                double* out = grad_entry + 3 * nb.entry;
                for (int c = 0; c < 3; ++c) out[c] += de_dr * nb.v[c] / nb.r;
            }

            set.fill(angular, prm, t);
            tr.list(prm, t, set);
            triple_terms<NA, NZ>(prm, t, set, tr, true);
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
            const size_t n_ang = set.size();
            grad_x.assign(n_ang, 0.0);
            grad_y.assign(n_ang, 0.0);
            grad_z.assign(n_ang, 0.0);
            for (size_t q = 0; q < nt; ++q) {
                const int32_t ja = tr.ia[q], jb = tr.ib[q];
                const double ra = set.r[ja], rb = set.r[jb], w = tr.w[q], cos_ab = tr.cos_ab[q];
                const double de_dcos = s_cos[q] * w;
                const double de_dra = 0.5 * s_mean[q] * w + s_cut[q] * set.dfc[ja] * set.fc[jb];
                const double de_drb = 0.5 * s_mean[q] * w + s_cut[q] * set.fc[ja] * set.dfc[jb];
                const double inv_rr = 1.0 / (ra * rb);
                const double ca = de_dra / ra - de_dcos * cos_ab / (ra * ra), cb_ = de_dcos * inv_rr;
                const double cb = de_drb / rb - de_dcos * cos_ab / (rb * rb);
                const double xa = set.x[ja], ya = set.y[ja], za = set.z[ja];
                const double xb = set.x[jb], yb = set.y[jb], zb = set.z[jb];
                grad_x[ja] += ca * xa + cb_ * xb;
                grad_y[ja] += ca * ya + cb_ * yb;
                grad_z[ja] += ca * za + cb_ * zb;
                grad_x[jb] += cb * xb + cb_ * xa;
                grad_y[jb] += cb * yb + cb_ * ya;
                grad_z[jb] += cb * zb + cb_ * za;
            }
            for (size_t j = 0; j < n_ang; ++j) {
                double* out = grad_entry + 3 * set.entry[j];
                out[0] += grad_x[j];
                out[1] += grad_y[j];
                out[2] += grad_z[j];
            }
        }
    }
}

bool fixed_sizes(const AEVParams& prm) {
    return prm.shf_r.size() == 16 && prm.shf_a.size() == 4 && prm.shf_z.size() == 8;
}

}  // namespace

void aev_forward(const AEVParams& prm, int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                 const int64_t* pairs, const double* vectors, const int64_t* rows,
                 const int64_t* features, int64_t n_features, float* aev, int n_threads) {
    const Tables t(prm, n_atoms, n_pairs, pairs);
    auto run = fixed_sizes(prm) ? forward_atoms<16, 4, 8> : forward_atoms<0, 0, 0>;
    run(prm, t, n_atoms, species, pairs, vectors, rows, features, n_features, aev, n_threads);
}

void aev_backward(const AEVParams& prm, int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                  const int64_t* pairs, const double* vectors, const int64_t* rows,
                  const int64_t* features, int64_t n_features, const float* grad_aev,
                  double* grad_vectors, int n_threads) {
    const Tables t(prm, n_atoms, n_pairs, pairs);
    const Directed& dir = t.dir;
    // Gradient per directed entry: atom i writes only its own entries, so no atomics.
    std::vector<double> grad_entry(3 * dir.pair.size(), 0.0);
    auto run = fixed_sizes(prm) ? backward_atoms<16, 4, 8> : backward_atoms<0, 0, 0>;
    run(prm, t, n_atoms, species, pairs, vectors, rows, features, n_features, grad_aev,
        grad_entry.data(), n_threads);

    std::fill(grad_vectors, grad_vectors + 3 * n_pairs, 0.0);
    for (size_t e = 0; e < dir.pair.size(); ++e) {
        const double s = dir.sign[e];
        for (int c = 0; c < 3; ++c) grad_vectors[3 * dir.pair[e] + c] += s * grad_entry[3 * e + c];
    }
}

void pair_forces(int64_t n_atoms, int64_t n_pairs, const int64_t* pairs,
                 const double* grad_vectors, double* forces) {
    // vector = r_j - r_i + image, so dE/dr_i = -dE/dvector and dE/dr_j = +dE/dvector.
    std::fill(forces, forces + 3 * n_atoms, 0.0);
    for (int64_t p = 0; p < n_pairs; ++p) {
        for (int c = 0; c < 3; ++c) {
            forces[3 * pairs[2 * p] + c] += grad_vectors[3 * p + c];
            forces[3 * pairs[2 * p + 1] + c] -= grad_vectors[3 * p + c];
        }
    }
}

}  // namespace pyani
