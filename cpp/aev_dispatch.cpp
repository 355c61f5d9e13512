// Runtime choice between the compiled variants of the AEV kernels (aev.hpp), and the
// pair-force sum, which needs no variants.
#include <algorithm>
#include <stdexcept>

#include "aev.hpp"

namespace pyani {

std::vector<std::string> kernel_isas() {
    std::vector<std::string> isas;
#if defined(PYANI_HAVE_AVX2)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isas.push_back("avx2");
#endif
    isas.push_back("baseline");
    return isas;
}

AEVKernels aev_kernels(const std::string& isa) {
    static const std::vector<std::string> available = kernel_isas();
    const std::string chosen = isa == "auto" ? available.front() : isa;
    if (std::find(available.begin(), available.end(), chosen) == available.end()) {
        std::string names;
        for (const std::string& name : available) names += " " + name;
        throw std::invalid_argument("isa must be 'auto' or one of the kernels this machine runs:" + names +
                                    "; got '" + isa + "'");
    }
#if defined(PYANI_HAVE_AVX2)
    if (chosen == "avx2") return {chosen, avx2::aev_forward, avx2::aev_backward};
#endif
    return {chosen, baseline::aev_forward, baseline::aev_backward};
}

void aev_forward(const AEVParams& params, int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                 const int64_t* pairs, const double* vectors, const int64_t* rows, const int64_t* features,
                 int64_t n_features, float* aev, int n_threads) {
    static const AEVKernels best = aev_kernels("auto");
    best.forward(params, n_atoms, species, n_pairs, pairs, vectors, rows, features, n_features, aev, n_threads);
}

void aev_backward(const AEVParams& params, int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                  const int64_t* pairs, const double* vectors, const int64_t* rows, const int64_t* features,
                  int64_t n_features, const float* grad_aev, double* grad_vectors, int n_threads) {
    static const AEVKernels best = aev_kernels("auto");
    best.backward(params, n_atoms, species, n_pairs, pairs, vectors, rows, features, n_features, grad_aev,
                  grad_vectors, n_threads);
}

void pair_forces(int64_t n_atoms, int64_t n_pairs, const int64_t* pairs, const double* grad_vectors,
                 double* forces) {
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
