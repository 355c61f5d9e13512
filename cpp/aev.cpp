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
    void operator()(double x, double* out) const {
        const double t = x - shifts[0];
        const double span = eta * std::fabs(t) * (std::fabs(t) + 2.0 * std::fabs(step) * shifts.size());
        if (!uniform || span > 600.0) {
            for (size_t k = 0; k < shifts.size(); ++k) {
                const double d = x - shifts[k];
                out[k] = std::exp(-eta * d * d);
            }
            return;
        }
        double g = std::exp(-eta * t * t);
        double ratio = std::exp(eta * step * (2.0 * t - step));
        for (size_t k = 0; k < shifts.size(); ++k) {
            out[k] = g;
            g *= ratio;
            ratio *= decay;
        }
    }
};

// Angular factors of one triple: F1[z] = 2 X^zeta with X = (1 + cos(theta - ShfZ)) / 2,
// and dF1/dcos; cos(theta - z) expanded so no acos is needed.
void angle_factors(const AEVParams& prm, const Sections& sec, double cos_angle, double* f1,
                   double* df1) {
    const double c = COS_SCALE * cos_angle;
    const double sin_theta = std::sqrt(std::max(0.0, 1.0 - c * c));
    const double dsin_dcos = -COS_SCALE * c / sin_theta;  // sin_theta >= sqrt(1 - 0.95^2)
    const size_t n_z = sec.cos_z.size();
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
    Tables(const AEVParams& prm, int64_t n_atoms, int64_t n_pairs, const int64_t* pairs)
        : dir(directed_neighbors(n_atoms, n_pairs, pairs)),
          pair_index(species_pair_table(prm.n_species)),
          sections(prm.shf_z, prm.zeta),
          radial_terms(prm.eta_r, prm.shf_r),
          angular_terms(prm.eta_a, prm.shf_a) {}
};

}  // namespace

void aev_forward(const AEVParams& prm, int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                 const int64_t* pairs, const double* vectors, const int64_t* rows, float* aev,
                 int n_threads) {
    const Tables t(prm, n_atoms, n_pairs, pairs);
    const Directed& dir = t.dir;
    const std::vector<int64_t>& pair_index = t.pair_index;
    const int64_t length = prm.length(), radial_length = prm.radial_length();
    const size_t n_r = prm.shf_r.size(), n_a = prm.shf_a.size(), n_z = prm.shf_z.size();
    const Sections& sections = t.sections;
    const Gaussians &radial_terms = t.radial_terms, &angular_terms = t.angular_terms;

#pragma omp parallel num_threads(threads_for(n_atoms, n_threads))
    {
        std::vector<double> acc(length), f1(n_z), f2(n_a), g(n_r);
        std::vector<Neighbor> radial, angular;
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n_atoms; ++i) {
            std::fill(acc.begin(), acc.end(), 0.0);
            gather(prm, dir, pairs, vectors, species, i, radial, angular);
            for (const Neighbor& nb : radial) {
                double* out = acc.data() + nb.species * n_r;
                radial_terms(nb.r, g.data());
                const double scale = 0.25 * nb.fc;
                for (size_t k = 0; k < n_r; ++k) out[k] += scale * g[k];
            }
            for (size_t a = 0; a < angular.size(); ++a) {
                for (size_t b = a + 1; b < angular.size(); ++b) {
                    const Neighbor& na = angular[a];
                    const Neighbor& nb = angular[b];
                    angle_factors(prm, sections, cosine(na, nb), f1.data(), nullptr);
                    const double fcfc = na.fc * nb.fc;
                    angular_terms(0.5 * (na.r + nb.r), f2.data());
                    for (size_t k = 0; k < n_a; ++k) f2[k] *= fcfc;
                    double* out = acc.data() + radial_length +
                                  pair_index[na.species * prm.n_species + nb.species] * n_a * n_z;
                    for (size_t k = 0; k < n_a; ++k) {
                        for (size_t z = 0; z < n_z; ++z) out[k * n_z + z] += f2[k] * f1[z];
                    }
                }
            }
            float* row = aev + rows[i] * length;
            for (int64_t k = 0; k < length; ++k) row[k] = static_cast<float>(acc[k]);
        }
    }
}

void aev_backward(const AEVParams& prm, int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                  const int64_t* pairs, const double* vectors, const int64_t* rows,
                  const float* grad_aev, double* grad_vectors, int n_threads) {
    const Tables t(prm, n_atoms, n_pairs, pairs);
    const Directed& dir = t.dir;
    const std::vector<int64_t>& pair_index = t.pair_index;
    const int64_t length = prm.length(), radial_length = prm.radial_length();
    const size_t n_r = prm.shf_r.size(), n_a = prm.shf_a.size(), n_z = prm.shf_z.size();
    const Sections& sections = t.sections;
    const Gaussians &radial_terms = t.radial_terms, &angular_terms = t.angular_terms;
    // Gradient per directed entry: atom i writes only its own entries, so no atomics.
    std::vector<double> grad_entry(3 * dir.pair.size(), 0.0);

#pragma omp parallel num_threads(threads_for(n_atoms, n_threads))
    {
        std::vector<double> g(length), f1(n_z), df1(n_z), f2(n_a), df2(n_a), gauss(n_r);
        std::vector<Neighbor> radial, angular;
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n_atoms; ++i) {
            const float* row = grad_aev + rows[i] * length;
            for (int64_t k = 0; k < length; ++k) g[k] = row[k];
            gather(prm, dir, pairs, vectors, species, i, radial, angular);

            for (const Neighbor& nb : radial) {
                const double* gr = g.data() + nb.species * n_r;
                radial_terms(nb.r, gauss.data());
                double de_dr = 0;
                for (size_t k = 0; k < n_r; ++k) {
                    const double dr = nb.r - prm.shf_r[k];
                    de_dr += gr[k] * gauss[k] * (nb.dfc - 2.0 * prm.eta_r * dr * nb.fc);
                }
                de_dr *= 0.25;
                double* out = grad_entry.data() + 3 * nb.entry;
                for (int c = 0; c < 3; ++c) out[c] += de_dr * nb.v[c] / nb.r;
            }

            for (size_t a = 0; a < angular.size(); ++a) {
                for (size_t b = a + 1; b < angular.size(); ++b) {
                    const Neighbor& na = angular[a];
                    const Neighbor& nb = angular[b];
                    const double cos_ab = cosine(na, nb);
                    angle_factors(prm, sections, cos_ab, f1.data(), df1.data());
                    const double mean_r = 0.5 * (na.r + nb.r);
                    angular_terms(mean_r, f2.data());
                    for (size_t k = 0; k < n_a; ++k) df2[k] = -2.0 * prm.eta_a * (mean_r - prm.shf_a[k]) * f2[k];
                    const double* ga = g.data() + radial_length +
                                       pair_index[na.species * prm.n_species + nb.species] * n_a * n_z;
                    // Contract the gradient with each factor once, then apply the chain rule.
                    double s_cos = 0, s_mean = 0, s_cut = 0;
                    for (size_t k = 0; k < n_a; ++k) {
                        double gz = 0, gdz = 0;
                        for (size_t z = 0; z < n_z; ++z) {
                            gz += ga[k * n_z + z] * f1[z];
                            gdz += ga[k * n_z + z] * df1[z];
                        }
                        s_cos += f2[k] * gdz;
                        s_mean += df2[k] * gz;
                        s_cut += f2[k] * gz;
                    }
                    const double fcfc = na.fc * nb.fc;
                    const double de_dcos = s_cos * fcfc;
                    const double de_dra = 0.5 * s_mean * fcfc + s_cut * na.dfc * nb.fc;
                    const double de_drb = 0.5 * s_mean * fcfc + s_cut * na.fc * nb.dfc;
                    const double inv_rr = 1.0 / (na.r * nb.r);
                    double* out_a = grad_entry.data() + 3 * na.entry;
                    double* out_b = grad_entry.data() + 3 * nb.entry;
                    for (int c = 0; c < 3; ++c) {
                        const double dcos_da = nb.v[c] * inv_rr - cos_ab * na.v[c] / (na.r * na.r);
                        const double dcos_db = na.v[c] * inv_rr - cos_ab * nb.v[c] / (nb.r * nb.r);
                        out_a[c] += de_dcos * dcos_da + de_dra * na.v[c] / na.r;
                        out_b[c] += de_dcos * dcos_db + de_drb * nb.v[c] / nb.r;
                    }
                }
            }
        }
    }

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
