// ANI atomic environment vectors (AEV) over a half neighbour list, and their exact
// backward pass from dE/dAEV to dE/d(pair vector), as TorchANI defines them:
//   radial   0.25 exp(-EtaR (r - ShfR)^2) fc(r)                                  r < Rcr
//   angular  2 ((1 + cos(theta - ShfZ)) / 2)^Zeta exp(-EtaA ((rj + rk)/2 - ShfA)^2)
//            fc(rj) fc(rk),  theta = acos(0.95 cos(angle jik))                   r < Rca
//   fc(r) = 0.5 cos(pi r / Rc) + 0.5
// Layout of one AEV row: radial [n_species][n_shf_r], then angular
// [species pair (upper triangle, row-major)][n_shf_a][n_shf_z].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pyani {

struct AEVParams {
    int n_species = 0;
    double radial_cutoff = 0, angular_cutoff = 0;
    double eta_r = 0, eta_a = 0, zeta = 0;
    std::vector<double> shf_r, shf_a, shf_z;

    int64_t radial_length() const { return n_species * static_cast<int64_t>(shf_r.size()); }
    int64_t angular_length() const {
        return n_species * (n_species + 1) / 2 * static_cast<int64_t>(shf_a.size() * shf_z.size());
    }
    int64_t length() const { return radial_length() + angular_length(); }
};

// species [n_atoms] in 0..n_species-1; pairs [n_pairs, 2]; vectors [n_pairs, 3] (r_j - r_i
// + image); rows [n_atoms]: the row of `aev` that receives atom i (lets the caller group
// atoms by element for free). features [n_features]: the columns of the full AEV layout to
// keep (distinct, in 0..length-1; the zero columns of absent elements can be left out).
// aev [n_rows, n_features] is overwritten on the given rows.
void aev_forward(const AEVParams& params, int64_t n_atoms, const int32_t* species,
                 int64_t n_pairs, const int64_t* pairs, const double* vectors,
                 const int64_t* rows, const int64_t* features, int64_t n_features, float* aev,
                 int n_threads);

// grad_aev [n_rows, n_features] = dE/dAEV (rows and features as above; left-out columns
// count as zero); grad_vectors [n_pairs, 3] is overwritten with dE/d(vector).
void aev_backward(const AEVParams& params, int64_t n_atoms, const int32_t* species,
                  int64_t n_pairs, const int64_t* pairs, const double* vectors,
                  const int64_t* rows, const int64_t* features, int64_t n_features,
                  const float* grad_aev, double* grad_vectors, int n_threads);

// forces [n_atoms, 3] = -dE/dr (overwritten) from dE/d(vector) of every pair.
void pair_forces(int64_t n_atoms, int64_t n_pairs, const int64_t* pairs,
                 const double* grad_vectors, double* forces);

// The per-instruction-set kernels behind aev_forward and aev_backward (same arguments).
#define PYANI_DECLARE_AEV_KERNELS                                                                     \
    void aev_forward(const AEVParams& params, int64_t n_atoms, const int32_t* species, int64_t n_pairs, \
                     const int64_t* pairs, const double* vectors, const int64_t* rows,                 \
                     const int64_t* features, int64_t n_features, float* aev, int n_threads);          \
    void aev_backward(const AEVParams& params, int64_t n_atoms, const int32_t* species, int64_t n_pairs,\
                      const int64_t* pairs, const double* vectors, const int64_t* rows,                \
                      const int64_t* features, int64_t n_features, const float* grad_aev,              \
                      double* grad_vectors, int n_threads);
namespace baseline {
PYANI_DECLARE_AEV_KERNELS
}
namespace avx2 {
PYANI_DECLARE_AEV_KERNELS
}
#undef PYANI_DECLARE_AEV_KERNELS

// cpp/aev.cpp is compiled once per instruction set (CMakeLists.txt): "baseline" always, and
// "avx2" (AVX2 + FMA) where the compiler can. aev_forward and aev_backward above run the best
// variant this CPU can; the bindings can ask for one (tests compare them).
struct AEVKernels {
    std::string isa;
    decltype(&baseline::aev_forward) forward;
    decltype(&baseline::aev_backward) backward;
};
std::vector<std::string> kernel_isas();  // usable here, best first
AEVKernels aev_kernels(const std::string& isa);  // "auto" or one of kernel_isas()

}  // namespace pyani
