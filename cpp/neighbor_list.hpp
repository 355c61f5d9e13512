// The neighbour list object: a cell list (cell_list.hpp) with an optional Verlet skin, and a
// pool that its big output arrays come from and return to.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "cell_list.hpp"
#include "large_buffer.hpp"

namespace pyani {

class NeighborList {
public:
    // cutoff > 0 and skin >= 0 (Angstrom), both finite, else std::invalid_argument.
    // n_threads: OpenMP threads per call (0 = OpenMP's default).
    NeighborList(double cutoff, double skin, int n_threads);

    double cutoff() const { return cutoff_; }
    double skin() const { return skin_; }
    int64_t builds() const { return builds_.load(); }
    size_t retained_bytes() const { return pool_->retained_bytes(); }

    // Pairs closer than the cutoff (the contract of cell_list_pairs). With a skin, a list
    // built with cutoff + skin is kept while the atom count, cell and pbc are unchanged and
    // no atom has moved more than skin / 2 from where it was built; in between, its pairs are
    // filtered at the new positions. Atomic numbers play no part: a pair list depends on
    // geometry only. Several threads may call this at once.
    PairList compute(const double* positions, int64_t n_atoms, const double* cell, const bool* pbc);

private:
    // A list built with cutoff + skin and what it was built from. Immutable once made, and
    // shared: a call filters the one it found even if another call replaces it meanwhile.
    struct Kept {
        std::vector<double> positions;
        std::array<double, 9> cell;
        std::array<bool, 3> pbc;
        PairList list;  // pairs and shifts only
    };

    bool still_valid(const Kept& kept, const double* positions, int64_t n_atoms, const double* cell,
                     const bool* pbc) const;

    double cutoff_;
    double skin_;
    int n_threads_;
    std::shared_ptr<Scratch> pool_;
    std::atomic<int64_t> builds_{0};
    std::mutex mutex_;  // guards kept_
    std::shared_ptr<const Kept> kept_;
};

}  // namespace pyani
