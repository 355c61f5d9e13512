// Cell-list neighbour search: periodic in any subset of directions, triclinic cells,
// cells thinner than the cutoff (several images), atoms anywhere (wrapped internally).
#pragma once

#include <cstdint>
#include <vector>

#include "large_buffer.hpp"

namespace pyani {

// A half neighbour list: each pair (i, j, shift) appears once, with i < j, or i == j
// and a shift that is lexicographically positive (an atom and its own image).
// vector = positions[j] - positions[i] + shift @ cell, in the frame of the input positions.
struct NeighborList {
    LargeVector<int64_t> pairs;    // [n_pairs, 2]
    LargeVector<int32_t> shifts;   // [n_pairs, 3] integer lattice translations
    LargeVector<double> vectors;   // [n_pairs, 3] Angstrom
    int64_t size() const { return static_cast<int64_t>(pairs.size() / 2); }
};

// positions [n_atoms, 3]; cell [3, 3] with rows = lattice vectors (rows of non-periodic
// directions are ignored); pbc [3]. Pairs closer than `cutoff` (strictly) are returned.
// The caller guarantees finite positions, cutoff > 0 and linearly independent periodic rows.
NeighborList neighbor_list(
    const double* positions, int64_t n_atoms, const double* cell, const bool* pbc,
    double cutoff, int n_threads);

}  // namespace pyani
