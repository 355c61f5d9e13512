// The compiled variants of the AEV kernels (aev_kernels.inc) and the run-time choice
// between them.
//
// This file is compiled once, for any CPU of the target. The AVX2 + FMA variant is the same
// source included a second time inside a region that gives every function *defined* there
// the AVX2 target (#pragma GCC target / clang attribute). Everything defined elsewhere,
// std templates included, keeps the baseline target even when the AVX2 kernels instantiate
// it; since the linker may keep either copy of such a shared function, none of them can hold
// AVX2 code, whatever the link order. The compiler inlines baseline helpers into AVX2
// kernels (a subset of the instructions) but never AVX2 code into baseline functions.
// tests/test_build.py checks the built module.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "aev.hpp"
#include "large_buffer.hpp"
#include "parallel.hpp"

namespace pyani {

namespace baseline {
constexpr int LANES = 2;  // SSE2: two doubles per register
#include "aev_kernels.inc"
}  // namespace baseline

#if defined(PYANI_HAVE_AVX2)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace avx2 {
constexpr int LANES = 4;
#include "aev_kernels.inc"
}  // namespace avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

namespace {

const AEVKernels BASELINE{"baseline", baseline::forward_f32, baseline::forward_f64, baseline::backward_f32,
                          baseline::backward_f64};
#if defined(PYANI_HAVE_AVX2)
const AEVKernels AVX2{"avx2", avx2::forward_f32, avx2::forward_f64, avx2::backward_f32, avx2::backward_f64};
#endif

}  // namespace

std::vector<std::string> kernel_isas() {
    std::vector<std::string> isas;
#if defined(PYANI_HAVE_AVX2)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isas.push_back("avx2");
#endif
    isas.push_back("baseline");
    return isas;
}

const AEVKernels& aev_kernels(const std::string& isa) {
    static const std::vector<std::string> available = kernel_isas();
    const std::string chosen = isa == "auto" ? available.front() : isa;
    if (std::find(available.begin(), available.end(), chosen) == available.end()) {
        std::string names;
        for (const std::string& name : available) names += " " + name;
        throw std::invalid_argument("isa must be 'auto' or one of the kernels this machine runs:" + names +
                                    "; got '" + isa + "'");
    }
#if defined(PYANI_HAVE_AVX2)
    if (chosen == "avx2") return AVX2;
#endif
    return BASELINE;
}

}  // namespace pyani
