// ANI atomic environment vectors (AEV) over a half neighbour list, and their exact
// backward pass from dE/dAEV to forces and virial, as TorchANI defines them:
//   radial   0.25 exp(-EtaR (r - ShfR)^2) fc(r)                                  r < Rcr
//   angular  2 ((1 + cos(theta - ShfZ)) / 2)^Zeta exp(-EtaA ((rj + rk)/2 - ShfA)^2)
//            fc(rj) fc(rk),  theta = acos(0.95 cos(angle jik))                   r < Rca
//   fc(r) = 0.5 cos(pi r / Rc) + 0.5                                (cutoff_fn "cosine")
//   fc(r) = exp(1 - 1 / max(eps, 1 - (r / Rc)^order))               (cutoff_fn "smooth")
// Layout of one AEV row: radial [n_species][n_shf_r], then angular
// [species pair (upper triangle, row-major)][n_shf_a][n_shf_z].
//
// One AEVComputer per model (parameters, compiled variant, buffer pool); each forward() call
// returns an AEVPass that owns that call's state, so that several threads can use one
// computer at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "large_buffer.hpp"
#include "pooled_array.hpp"

namespace pyani {

// The cutoff function fc of both AEV parts; order and eps are those of "smooth"
// (TorchANI's CutoffSmooth; its defaults).
constexpr int MAX_SMOOTH_ORDER = 1024;  // far beyond any model (TorchANI's default is 2)
struct CutoffFunction {
    enum Kind { cosine, smooth };
    Kind kind = cosine;
    int order = 2;
    double eps = 1e-10;
};

struct AEVParams {
    int n_species = 0;
    CutoffFunction cutoff_fn;
    double radial_cutoff = 0, angular_cutoff = 0;
    double eta_r = 0, eta_a = 0, zeta = 0;
    std::vector<double> shf_r, shf_a, shf_z;

    int64_t radial_length() const { return n_species * static_cast<int64_t>(shf_r.size()); }
    int64_t angular_length() const {
        return n_species * (n_species + 1) / 2 * static_cast<int64_t>(shf_a.size() * shf_z.size());
    }
    int64_t length() const { return radial_length() + angular_length(); }
};

// The half list seen from each atom: entry e of atom i (start[i] <= e < start[i+1]) is pair
// pair[e], walked from i (sign +1: i is the pair's first atom, the vector as stored; -1:
// reversed); species[e] is the species of the atom at its other end. An atom's entries are in
// pair order. entries [n_pairs, 2]: pair p's entries from its first and second atom.
struct Directed {
    int64_t n_atoms = 0, n_pairs = 0;
    PooledArray<int64_t> start, pair, entries;
    PooledArray<int8_t> sign;
    PooledArray<int32_t> species;
};

// What the kernels read besides the directed list. vectors [n_pairs, 3] (r_j - r_i + image);
// rows [n_atoms]: the output row of atom i; features [n_features]: the columns of the full
// layout kept in the output (the others count as zero in the backward pass).
struct AtomInputs {
    int64_t n_atoms = 0;
    const double* vectors = nullptr;
    const int64_t* rows = nullptr;
    const int64_t* features = nullptr;
    int64_t n_features = 0;
};

// The kernels of one instruction set (aev_dispatch.cpp compiles one per set). forward
// writes the AEV rows of every atom into aev [n_rows, n_features]; backward overwrites
// grad_entry [2 n_pairs, 3] with dE/d(vector of each directed entry) from grad_aev. The AEV
// and dE/dAEV are Real: float (float32 models) or double (precision="float64").
template <typename Real>
using ForwardKernel = void (*)(const AEVParams& params, const Directed& dir, const AtomInputs& in, Real* aev,
                               int n_threads);
template <typename Real>
using BackwardKernel = void (*)(const AEVParams& params, const Directed& dir, const AtomInputs& in,
                                const Real* grad_aev, double* grad_entry, int n_threads);
struct AEVKernels {
    const char* isa;
    ForwardKernel<float> forward_f32;
    ForwardKernel<double> forward_f64;
    BackwardKernel<float> backward_f32;
    BackwardKernel<double> backward_f64;
    ForwardKernel<float> forward(float*) const { return forward_f32; }
    ForwardKernel<double> forward(double*) const { return forward_f64; }
    BackwardKernel<float> backward(const float*) const { return backward_f32; }
    BackwardKernel<double> backward(const double*) const { return backward_f64; }
};
std::vector<std::string> kernel_isas();               // usable on this CPU, best first
const AEVKernels& aev_kernels(const std::string& isa);  // "auto" or one of kernel_isas()

class AEVPass;

// Bad parameters or inputs throw std::invalid_argument (ValueError in Python). A pass keeps
// its own copies of the index arrays (rows, features; species and pairs go into its directed
// index) but only a pointer to `vectors`, which must outlive it (the bindings keep a
// reference).
class AEVComputer {
public:
    // double_precision: the AEV and dE/dAEV in float64 instead of float32.
    AEVComputer(AEVParams params, int n_threads, const std::string& isa, bool double_precision = false);

    const AEVParams& params() const { return shared_->params; }
    int64_t length() const { return shared_->params.length(); }
    const std::string& isa() const { return shared_->isa; }
    size_t retained_bytes() const { return pool_->retained_bytes(); }
    bool double_precision() const { return shared_->double_precision; }

    // species [n_atoms] in 0..n_species-1; pairs [n_pairs, 2]; vectors [n_pairs, 3]; rows
    // [n_atoms], distinct, in 0..n_rows-1; features: distinct columns of the full layout.
    // The AEV [n_rows, features.size()] is in the pass; rows no atom names are zero.
    std::unique_ptr<AEVPass> forward(int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                                     const int64_t* pairs, const double* vectors, const int64_t* rows,
                                     int64_t n_rows, std::vector<int64_t> features, bool keep_for_backward) const;

    struct Shared {
        AEVParams params;
        int n_threads;
        std::string isa;
        const AEVKernels* kernels;
        bool double_precision;
    };

private:
    std::shared_ptr<const Shared> shared_;
    std::shared_ptr<Scratch> pool_;
};

class AEVPass {
public:
    int64_t n_rows() const { return n_rows_; }
    int64_t n_features() const { return static_cast<int64_t>(features_.size()); }
    int64_t n_atoms() const { return dir_.n_atoms; }
    int64_t n_pairs() const { return dir_.n_pairs; }
    bool keeps_backward() const { return keeps_backward_; }
    const std::shared_ptr<Scratch>& pool() const { return pool_; }

    // The AEV [n_rows, n_features] (float32, or float64 for a double-precision computer);
    // take_aev() hands its block over (it returns to the pool when the new owner frees it).
    PooledArray<float> take_aev() { return std::move(aev_); }
    PooledArray<double> take_aev64() { return std::move(aev64_); }

    // grad_aev [n_rows, n_features] = dE/dAEV. forces [n_atoms, 3] = -dE/dr (null: not
    // wanted); virial [n_bounds - 1, 3, 3]: virial[b] = sum over pairs p in
    // bounds[b]..bounds[b+1]-1 of outer(vector p, dE/d(vector p)) (null: not wanted).
    // bounds: nondecreasing, in 0..n_pairs (null: one structure with all pairs).
    // grad_aev is float or double as the computer's precision.
    template <typename Real>
    void backward(const Real* grad_aev, const int64_t* bounds, int64_t n_bounds, double* forces,
                  double* virial) const;

private:
    friend class AEVComputer;
    AEVPass() = default;

    std::shared_ptr<const AEVComputer::Shared> shared_;
    std::shared_ptr<Scratch> pool_;
    Directed dir_;
    std::vector<int64_t> rows_, features_;
    const double* vectors_ = nullptr;
    int64_t n_rows_ = 0;
    bool keeps_backward_ = false;
    PooledArray<float> aev_;
    PooledArray<double> aev64_;

    AtomInputs inputs() const;
};

}  // namespace pyani
