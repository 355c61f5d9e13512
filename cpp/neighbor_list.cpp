#include "neighbor_list.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "parallel.hpp"

namespace pyani {

NeighborList::NeighborList(double cutoff, double skin, int n_threads)
    : cutoff_(cutoff), skin_(skin), n_threads_(n_threads), pool_(std::make_shared<Scratch>()) {
    if (!(std::isfinite(cutoff) && cutoff > 0)) throw std::invalid_argument("cutoff must be finite and positive");
    if (!(std::isfinite(skin) && skin >= 0)) throw std::invalid_argument("skin must be finite and non-negative");
}

bool NeighborList::still_valid(const Kept& kept, const double* positions, int64_t n_atoms, const double* cell,
                               const bool* pbc) const {
    if (static_cast<int64_t>(kept.positions.size()) != 3 * n_atoms) return false;
    for (int k = 0; k < 9; ++k) {
        if (!(kept.cell[k] == cell[k])) return false;
    }
    for (int d = 0; d < 3; ++d) {
        if (kept.pbc[d] != pbc[d]) return false;
    }
    // No pair can have come from beyond cutoff + skin to within cutoff while every atom
    // moved at most skin / 2.
    const double limit2 = 0.25 * skin_ * skin_;
    const double* before = kept.positions.data();
    int64_t moved = 0;
    const int n_threads = static_cast<int>(
        std::min<int64_t>(resolve_threads(n_threads_), std::max<int64_t>(1, n_atoms / 4096)));
#pragma omp parallel for num_threads(n_threads) reduction(+ : moved) schedule(static)
    for (int64_t i = 0; i < n_atoms; ++i) {
        double d2 = 0;
        for (int c = 0; c < 3; ++c) {
            const double dc = positions[3 * i + c] - before[3 * i + c];
            d2 += dc * dc;
        }
        moved += !(d2 <= limit2);  // NaN counts as moved
    }
    return moved == 0;
}

PairList NeighborList::compute(const double* positions, int64_t n_atoms, const double* cell, const bool* pbc) {
    for (int64_t k = 0; k < 3 * n_atoms; ++k) {
        if (!std::isfinite(positions[k])) throw std::invalid_argument("positions contain NaN or infinite values");
    }
    // Rows of open directions too: their zero shifts multiply them into the vectors.
    for (int k = 0; k < 9; ++k) {
        if (!std::isfinite(cell[k])) throw std::invalid_argument("cell contains NaN or infinite values");
    }
    if (skin_ == 0) {
        PairList list = cell_list_pairs(positions, n_atoms, cell, pbc, cutoff_, n_threads_, pool_, true);
        builds_.fetch_add(1);  // after: a build that threw is no build
        return list;
    }
    std::shared_ptr<const Kept> kept;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        kept = kept_;
    }
    if (!kept || !still_valid(*kept, positions, n_atoms, cell, pbc)) {
        auto fresh = std::make_shared<Kept>();
        fresh->positions.assign(positions, positions + 3 * n_atoms);
        std::copy(cell, cell + 9, fresh->cell.begin());
        std::copy(pbc, pbc + 3, fresh->pbc.begin());
        fresh->list = cell_list_pairs(positions, n_atoms, cell, pbc, cutoff_ + skin_, n_threads_, pool_, false);
        builds_.fetch_add(1);
        kept = fresh;
        std::lock_guard<std::mutex> lock(mutex_);
        kept_ = std::move(fresh);
    }
    return pairs_within(kept->list, positions, cell, cutoff_, n_threads_, pool_);
}

}  // namespace pyani
