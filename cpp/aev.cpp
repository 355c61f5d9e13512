// AEVComputer and AEVPass (aev.hpp): the checks memory safety needs, the directed pair
// index a pass builds once for both directions, and the sums from per-entry gradients to
// forces and virial. The per-atom kernels are in aev_kernels.inc.
#include "aev.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "parallel.hpp"

namespace pyani {
namespace {

void require(bool ok, const char* message) {
    if (!ok) throw std::invalid_argument(message);
}

bool finite(const std::vector<double>& values) {
    return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

// Thread start-up costs more than the work below this many atoms or pairs per thread.
constexpr int64_t MIN_ATOMS_PER_THREAD = 32;
constexpr int64_t MIN_PAIRS_PER_THREAD = 4096;

int threads_for(int64_t items, int64_t per_thread, int n_threads) {
    const int64_t useful = std::max<int64_t>(1, items / per_thread);
    return static_cast<int>(std::min<int64_t>(resolve_threads(n_threads), useful));
}

// Counts, then fills, in pair order; checks every atom index before it is used.
Directed directed_neighbors(const std::shared_ptr<Scratch>& pool, int64_t n_atoms, int64_t n_pairs,
                            const int64_t* pairs, const int32_t* species, bool with_entries) {
    Directed dir;
    dir.n_atoms = n_atoms;
    dir.n_pairs = n_pairs;
    dir.start = take_pooled<int64_t>(pool, n_atoms + 1);
    int64_t* start = dir.start.get();
    std::fill(start, start + n_atoms + 1, 0);
    for (int64_t p = 0; p < n_pairs; ++p) {
        const int64_t a = pairs[2 * p], b = pairs[2 * p + 1];
        require(a >= 0 && a < n_atoms && b >= 0 && b < n_atoms, "pairs: atom index out of range");
        start[a + 1] += 1;
        start[b + 1] += 1;
    }
    for (int64_t i = 0; i < n_atoms; ++i) start[i + 1] += start[i];
    dir.pair = take_pooled<int64_t>(pool, 2 * n_pairs);
    dir.sign = take_pooled<int8_t>(pool, 2 * n_pairs);
    dir.species = take_pooled<int32_t>(pool, 2 * n_pairs);
    if (with_entries) dir.entries = take_pooled<int64_t>(pool, 2 * n_pairs);
    PooledArray<int64_t> fill = take_pooled<int64_t>(pool, n_atoms);
    std::copy(start, start + n_atoms, fill.get());
    for (int64_t p = 0; p < n_pairs; ++p) {
        const int64_t a = pairs[2 * p], b = pairs[2 * p + 1];
        // Checked again: another thread may have changed the caller's array since the count.
        require(a >= 0 && a < n_atoms && b >= 0 && b < n_atoms, "pairs: atom index out of range");
        const int64_t first = fill[a]++;
        const int64_t second = fill[b]++;
        require(first < start[a + 1] && second < start[b + 1], "pairs: changed during the call");
        dir.pair[first] = dir.pair[second] = p;
        dir.sign[first] = 1;
        dir.sign[second] = -1;
        dir.species[first] = species[b];
        dir.species[second] = species[a];
        if (with_entries) {
            dir.entries[2 * p] = first;
            dir.entries[2 * p + 1] = second;
        }
    }
    return dir;
}

// dE/d(vector of pair p): the gradient seen from its first atom minus that from its second.
inline void pair_gradient(const Directed& dir, const double* grad_entry, int64_t p, double out[3]) {
    const double* from_first = grad_entry + 3 * dir.entries[2 * p];
    const double* from_second = grad_entry + 3 * dir.entries[2 * p + 1];
    for (int c = 0; c < 3; ++c) out[c] = from_first[c] - from_second[c];
}

}  // namespace

AEVComputer::AEVComputer(AEVParams params, int n_threads, const std::string& isa, bool double_precision)
    : pool_(std::make_shared<Scratch>()) {
    require(params.n_species > 0, "n_species must be positive");
    require(!params.shf_r.empty() && !params.shf_a.empty() && !params.shf_z.empty(),
            "the AEV shifts (shf_r, shf_a, shf_z) must not be empty");
    const std::vector<double> scalars{params.radial_cutoff, params.angular_cutoff, params.eta_r, params.eta_a,
                                      params.zeta};
    require(finite(scalars) && finite(params.shf_r) && finite(params.shf_a) && finite(params.shf_z),
            "the AEV parameters must be finite");
    require(params.angular_cutoff > 0 && params.angular_cutoff <= params.radial_cutoff,
            "angular_cutoff must be in (0, radial_cutoff]");
    if (params.cutoff_fn.kind == CutoffFunction::smooth) {
        require(params.cutoff_fn.order >= 1 && params.cutoff_fn.order <= MAX_SMOOTH_ORDER,
                "cutoff_fn_params: order must be an integer in 1..1024");
        require(std::isfinite(params.cutoff_fn.eps) && params.cutoff_fn.eps > 0,
                "cutoff_fn_params: eps must be a finite number > 0");
    }
    const AEVKernels& kernels = aev_kernels(isa);
    shared_ = std::make_shared<const Shared>(Shared{std::move(params), n_threads, kernels.isa, &kernels, double_precision});
}

std::unique_ptr<AEVPass> AEVComputer::forward(int64_t n_atoms, const int32_t* species, int64_t n_pairs,
                                              const int64_t* pairs, const double* vectors, const int64_t* rows,
                                              int64_t n_rows, std::vector<int64_t> features,
                                              bool keep_for_backward) const {
    const AEVParams& prm = shared_->params;
    require(n_rows >= n_atoms, "n_rows must be at least the number of atoms");
    std::unique_ptr<AEVPass> pass(new AEVPass());
    // Checked copies: another thread may change the caller's arrays during the call, and the
    // pass keeps rows for backward(). Species go into the directed index (far end of each
    // entry), and no kernel reads them per atom.
    const std::vector<int32_t> species_copy(species, species + n_atoms);
    pass->rows_.assign(rows, rows + n_atoms);
    species = species_copy.data();
    rows = pass->rows_.data();
    std::vector<bool> row_taken(n_rows, false);
    for (int64_t i = 0; i < n_atoms; ++i) {
        require(species[i] >= 0 && species[i] < prm.n_species, "species: index out of range");
        require(rows[i] >= 0 && rows[i] < n_rows, "rows: index out of range");
        require(!row_taken[rows[i]], "rows: a row named twice");
        row_taken[rows[i]] = true;
    }
    std::vector<bool> column_taken(prm.length(), false);
    for (int64_t c : features) {
        require(c >= 0 && c < prm.length(), "features: column out of range");
        require(!column_taken[c], "features: a column named twice");
        column_taken[c] = true;
    }

    pass->shared_ = shared_;
    pass->pool_ = pool_;
    pass->features_ = std::move(features);
    pass->vectors_ = vectors;
    pass->n_rows_ = n_rows;
    pass->keeps_backward_ = keep_for_backward;
    pass->dir_ = directed_neighbors(pool_, n_atoms, n_pairs, pairs, species, keep_for_backward);
    const int64_t width = pass->n_features();
    const size_t size = static_cast<size_t>(n_rows * width);
    auto run = [&](auto* aev) {
        // Only rows some atom names are written; a reused block holds the last call's numbers.
        if (n_rows != n_atoms) std::fill(aev, aev + size, 0);
        shared_->kernels->forward(aev)(prm, pass->dir_, pass->inputs(), aev, shared_->n_threads);
    };
    if (shared_->double_precision) {
        pass->aev64_ = take_pooled<double>(pool_, size);
        run(pass->aev64_.get());
    } else {
        pass->aev_ = take_pooled<float>(pool_, size);
        run(pass->aev_.get());
    }
    return pass;
}

AtomInputs AEVPass::inputs() const {
    AtomInputs in;
    in.n_atoms = dir_.n_atoms;
    in.vectors = vectors_;
    in.rows = rows_.data();
    in.features = features_.data();
    in.n_features = n_features();
    return in;
}

template <typename Real>
void AEVPass::backward(const Real* grad_aev, const int64_t* bounds, int64_t n_bounds, double* forces,
                       double* virial) const {
    if (!keeps_backward_) throw std::logic_error("backward() needs a pass made by forward(..., backward=True)");
    const int64_t n_pairs = dir_.n_pairs, n_atoms = dir_.n_atoms;
    const int64_t all_pairs[2] = {0, n_pairs};
    if (!bounds) {
        bounds = all_pairs;
        n_bounds = 2;
    }
    require(n_bounds >= 1, "pair_bounds must not be empty");
    for (int64_t b = 0; b < n_bounds; ++b) {
        require(bounds[b] >= 0 && bounds[b] <= n_pairs, "pair_bounds: pair index out of range");
        require(b == 0 || bounds[b] >= bounds[b - 1], "pair_bounds must not decrease");
    }
    const int n_threads = shared_->n_threads;
    PooledArray<double> grad_entry = take_pooled<double>(pool_, 3 * 2 * static_cast<size_t>(n_pairs));
    const double* ge = grad_entry.get();
    shared_->kernels->backward(grad_aev)(shared_->params, dir_, inputs(), grad_aev, grad_entry.get(), n_threads);

    if (forces) {
        // -dE/dr_i = +dE/dvector for the pair's first atom, -dE/dvector for its second. Each
        // atom sums its entries in pair order: the same additions, in the same order, as a
        // serial loop over the pairs, for any thread count.
#pragma omp parallel for schedule(static) num_threads(threads_for(n_atoms, MIN_ATOMS_PER_THREAD, n_threads))
        for (int64_t i = 0; i < n_atoms; ++i) {
            double f[3] = {0.0, 0.0, 0.0}, g[3];
            for (int64_t e = dir_.start[i]; e < dir_.start[i + 1]; ++e) {
                pair_gradient(dir_, ge, dir_.pair[e], g);
                for (int c = 0; c < 3; ++c) {
                    if (dir_.sign[e] > 0) {
                        f[c] += g[c];
                    } else {
                        f[c] -= g[c];
                    }
                }
            }
            for (int c = 0; c < 3; ++c) forces[3 * i + c] = f[c];
        }
    }
    if (virial) {
        // Fixed blocks of pairs, summed in block order: the result does not depend on the
        // thread count.
        constexpr int64_t BLOCK = 4096;
        std::vector<int64_t> block_start;  // blocks never straddle two structures
        std::vector<int64_t> block_structure;
        for (int64_t b = 0; b + 1 < n_bounds; ++b) {
            for (int64_t p = bounds[b]; p < bounds[b + 1]; p += BLOCK) {
                block_start.push_back(p);
                block_structure.push_back(b);
            }
        }
        const int64_t n_blocks = static_cast<int64_t>(block_start.size());
        std::vector<double> partial(9 * n_blocks, 0.0);
#pragma omp parallel for schedule(static) num_threads(threads_for(n_pairs, MIN_PAIRS_PER_THREAD, n_threads))
        for (int64_t k = 0; k < n_blocks; ++k) {
            const int64_t end = std::min(block_start[k] + BLOCK, bounds[block_structure[k] + 1]);
            double* sum = partial.data() + 9 * k;
            double g[3];
            for (int64_t p = block_start[k]; p < end; ++p) {
                pair_gradient(dir_, ge, p, g);
                const double* v = vectors_ + 3 * p;
                for (int a = 0; a < 3; ++a) {
                    for (int c = 0; c < 3; ++c) sum[3 * a + c] += v[a] * g[c];
                }
            }
        }
        std::fill(virial, virial + 9 * (n_bounds - 1), 0.0);
        for (int64_t k = 0; k < n_blocks; ++k) {
            for (int m = 0; m < 9; ++m) virial[9 * block_structure[k] + m] += partial[9 * k + m];
        }
    }
}

template void AEVPass::backward<float>(const float*, const int64_t*, int64_t, double*, double*) const;
template void AEVPass::backward<double>(const double*, const int64_t*, int64_t, double*, double*) const;

}  // namespace pyani
