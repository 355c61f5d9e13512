// Cell-list neighbour search: periodic in any subset of directions, triclinic cells,
// cells thinner than the cutoff (several images), atoms anywhere (wrapped internally).
#pragma once

#include <cstdint>
#include <memory>

#include "large_buffer.hpp"
#include "pooled_array.hpp"

namespace pyani {

// A half pair list: each pair (i, j, shift) appears once, with i < j, or i == j and a shift
// that is lexicographically positive (an atom and its own image).
// vector = positions[j] - positions[i] + shift @ cell, in the frame of the input positions.
struct PairList {
    PooledArray<int64_t> pairs;    // [size, 2]
    PooledArray<int32_t> shifts;   // [size, 3] integer lattice translations
    PooledArray<double> vectors;   // [size, 3] Angstrom (empty when not asked for)
    int64_t size = 0;
};

// Pairs of positions [n_atoms, 3] closer than `cutoff` (strictly), in a cell [3, 3] with
// rows = lattice vectors (rows of non-periodic directions are ignored) and periodicity pbc [3].
// The order is atom i ascending, then the cell list's visiting order; it does not depend on
// the thread count. The output arrays are sized exactly (a counting pass, then a filling
// pass); they and the temporaries come from `pool` when not small (pool may be null). The
// caller guarantees finite positions and cell, and cutoff > 0; periodic rows that are
// dependent or closer than cutoff / 64 raise std::invalid_argument.
PairList cell_list_pairs(const double* positions, int64_t n_atoms, const double* cell, const bool* pbc,
                         double cutoff, int n_threads, const std::shared_ptr<Scratch>& pool, bool with_vectors);

// The pairs of `list` (built from other positions, same cell) that are closer than `cutoff`
// at `positions`, in the same order, with vectors recomputed (Verlet list reuse). Same
// vector formula as cell_list_pairs, so a list built at these positions gives the same bits.
PairList pairs_within(const PairList& list, const double* positions, const double* cell, double cutoff,
                      int n_threads, const std::shared_ptr<Scratch>& pool);

}  // namespace pyani
