// The cell list in four parts: the box (and wrapping atoms into it), the bins, the pair
// search around one atom, and the output (count every atom's pairs, then fill each atom's
// block of rows, so the arrays are sized exactly and the order does not depend on the thread count).
#include "cell_list.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>

#include "parallel.hpp"

namespace pyani {
namespace {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;  // rows

Vec3 cross(const Vec3& a, const Vec3& b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

Vec3 normalized(const Vec3& a) {
    double n = std::sqrt(dot(a, a));
    return {a[0] / n, a[1] / n, a[2] / n};
}

Mat3 inverse(const Mat3& m) {
    // Columns of the inverse are the cross products of the rows divided by the determinant.
    Vec3 c0 = cross(m[1], m[2]), c1 = cross(m[2], m[0]), c2 = cross(m[0], m[1]);
    double det = dot(m[0], c0);
    Mat3 inv;
    for (int r = 0; r < 3; ++r) {
        inv[r] = {c0[r] / det, c1[r] / det, c2[r] / det};
    }
    return inv;
}

// The one distance test of both passes (NaN is outside): the filling pass must find exactly
// the pairs the counting pass counted.
inline bool within(const double* v, double cutoff2) { return v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < cutoff2; }

// Raised if a filling pass ever found other pairs than its counting pass (it never writes
// outside its rows even so): a compiler evaluating the test differently in the two loops.
constexpr const char* MISCOUNTED = "neighbour list: the filling pass found other pairs than the counting pass";

// Periodic images searched on each side at most: beyond it the search would take forever
// (lattice planes 0.1 Angstrom apart for a 5 Angstrom cutoff already mean 129^3 bins per atom).
constexpr int64_t MAX_REACH = 64;

// Fewer atoms per thread than this: thread start-up costs more than the search.
constexpr int64_t MIN_ATOMS_PER_THREAD = 64;
// Pairs per task when filtering a kept list (fixed, so the result does not depend on the thread count).
constexpr int64_t FILTER_CHUNK = 4096;

int threads_for(int n_threads, int64_t n_items, int64_t min_per_thread) {
    return static_cast<int>(
        std::min<int64_t>(resolve_threads(n_threads), std::max<int64_t>(1, n_items / min_per_thread)));
}

// ---------------------------------------------------------------- box and wrapping

// The box the bins live in: periodic rows are the user's lattice vectors; each
// non-periodic direction is replaced by a unit vector orthogonal to all other rows,
// scaled to the extent of the atoms along it, so fractional coordinates are well
// defined and lie in [0, 1] there whatever the user put in that row of the cell.
struct Box {
    Mat3 matrix;
    Mat3 inverse;
    Vec3 origin;
    std::array<bool, 3> periodic;
};

Box make_box(const double* positions, int64_t n_atoms, const double* cell, const bool* pbc, double cutoff) {
    Box box;
    std::array<int, 3> open;  // non-periodic directions
    int n_open = 0;
    for (int d = 0; d < 3; ++d) {
        box.periodic[d] = pbc[d];
        box.matrix[d] = {cell[3 * d], cell[3 * d + 1], cell[3 * d + 2]};
        if (!pbc[d]) open[n_open++] = d;
    }

    std::array<Vec3, 3> unit;
    if (n_open == 3) {
        unit = {Vec3{1, 0, 0}, Vec3{0, 1, 0}, Vec3{0, 0, 1}};
    } else if (n_open == 2) {
        int p = 3 - open[0] - open[1];
        Vec3 a = box.matrix[p];
        // Start from the Cartesian axis least aligned with the periodic vector.
        int axis = 0;
        for (int k = 1; k < 3; ++k) {
            if (std::fabs(a[k]) < std::fabs(a[axis])) axis = k;
        }
        Vec3 e{0, 0, 0};
        e[axis] = 1;
        unit[open[0]] = normalized(cross(a, e));
        unit[open[1]] = normalized(cross(a, unit[open[0]]));
    } else if (n_open == 1) {
        int d = open[0];
        unit[d] = normalized(cross(box.matrix[(d + 1) % 3], box.matrix[(d + 2) % 3]));
    }

    box.origin = {0, 0, 0};
    for (int k = 0; k < n_open; ++k) {
        const Vec3& u = unit[open[k]];
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n_atoms; ++i) {
            const double* r = positions + 3 * i;
            double s = r[0] * u[0] + r[1] * u[1] + r[2] * u[2];
            lo = std::min(lo, s);
            hi = std::max(hi, s);
        }
        if (n_atoms == 0) lo = hi = 0;
        // A little slack keeps the atoms at the far edge inside the last bin.
        double length = std::max(hi - lo, cutoff) * (1 + 1e-9) + 1e-9;
        for (int c = 0; c < 3; ++c) {
            box.matrix[open[k]][c] = u[c] * length;
            box.origin[c] += u[c] * lo;
        }
    }
    box.inverse = inverse(box.matrix);
    return box;
}

// Atoms moved into the box along periodic directions. `offset` remembers the lattice
// translation taken off each atom, so that shifts refer to the caller's positions.
struct WrappedAtoms {
    PooledArray<double> wrapped;     // [N, 3] Angstrom
    PooledArray<int32_t> offset;     // [N, 3]
    PooledArray<double> fractional;  // [N, 3] box coordinates, in [0, 1) along periodic rows
};

WrappedAtoms wrap_into_box(const Box& box, const double* positions, int64_t n_atoms, int n_threads,
                           const std::shared_ptr<Scratch>& pool) {
    WrappedAtoms atoms;
    atoms.wrapped = PooledArray<double>(pool, 3 * n_atoms);
    atoms.offset = PooledArray<int32_t>(pool, 3 * n_atoms);
    atoms.fractional = PooledArray<double>(pool, 3 * n_atoms);
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t i = 0; i < n_atoms; ++i) {
        Vec3 r;
        for (int c = 0; c < 3; ++c) r[c] = positions[3 * i + c] - box.origin[c];
        for (int d = 0; d < 3; ++d) {
            double s = r[0] * box.inverse[0][d] + r[1] * box.inverse[1][d] + r[2] * box.inverse[2][d];
            int32_t k = 0;
            if (box.periodic[d]) {
                double whole = std::floor(s);
                k = static_cast<int32_t>(whole);
                s -= whole;
            }
            atoms.offset[3 * i + d] = k;
            atoms.fractional[3 * i + d] = s;
        }
        for (int c = 0; c < 3; ++c) {
            double w = positions[3 * i + c];
            for (int d = 0; d < 3; ++d) w -= atoms.offset[3 * i + d] * box.matrix[d][c];
            atoms.wrapped[3 * i + c] = w;
        }
    }
    return atoms;
}

// ---------------------------------------------------------------- binning

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

struct Bins {
    std::array<int64_t, 3> count;  // bins along each box row
    std::array<int64_t, 3> reach;  // bins to visit on each side of an atom's own bin
    PooledArray<int64_t> of_atom;  // [N, 3] bin coordinates of each atom
    PooledArray<int64_t> start;    // [n_bins + 1] first slot of each bin in `atoms`
    PooledArray<int64_t> atoms;    // [N] atom indices grouped by bin, ascending within a bin
    // Wrapped positions in the order of `atoms`, one array per Cartesian component: contiguous
    // per bin, and the distance test over a bin vectorises.
    std::array<PooledArray<double>, 3> wrapped;
    // Along direction d, the bins within reach of bin o: near_bin[d][o * (2 reach + 1) + k] is
    // bin o + k - reach, wrapped when periodic (then near_image[d][...] is the image number
    // it was wrapped from), -1 when outside an open direction. Tables instead of a floor
    // division per visited bin and direction.
    std::array<PooledArray<int64_t>, 3> near_bin, near_image;

    int64_t index(int64_t b0, int64_t b1, int64_t b2) const { return (b0 * count[1] + b1) * count[2] + b2; }
};

Bins make_bins(const Box& box, const WrappedAtoms& atoms, int64_t n_atoms, double cutoff,
               const std::shared_ptr<Scratch>& pool) {
    Bins bins;
    // Bins at least `cutoff` wide (distance between lattice planes), capped in number
    // so that far-apart fragments cannot ask for more bins than there are atoms.
    std::array<double, 3> spacing;
    for (int d = 0; d < 3; ++d) {
        Vec3 column{box.inverse[0][d], box.inverse[1][d], box.inverse[2][d]};
        spacing[d] = 1.0 / std::sqrt(dot(column, column));
        bins.count[d] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(spacing[d] / cutoff)));
    }
    const int64_t max_bins = std::max<int64_t>(8, 2 * n_atoms);
    // The product in double: bins for atoms 1e8 A apart would overflow int64.
    while (static_cast<double>(bins.count[0]) * bins.count[1] * bins.count[2] > max_bins) {
        int d = static_cast<int>(std::max_element(bins.count.begin(), bins.count.end()) - bins.count.begin());
        bins.count[d] = (bins.count[d] + 1) / 2;
    }
    for (int d = 0; d < 3; ++d) {
        const double reach = std::ceil(cutoff * bins.count[d] / spacing[d]);
        if (box.periodic[d] && !(reach <= MAX_REACH)) {  // NaN too: a singular cell
            throw std::invalid_argument(
                "cell: the periodic rows must be linearly independent, with lattice planes at least cutoff / " +
                std::to_string(MAX_REACH) + " apart");
        }
        bins.reach[d] = box.periodic[d] ? static_cast<int64_t>(reach)
                                        : std::min<int64_t>(static_cast<int64_t>(std::min(reach, 1e18)),
                                                            bins.count[d] - 1);
    }

    for (int d = 0; d < 3; ++d) {
        const int64_t width = 2 * bins.reach[d] + 1;
        bins.near_bin[d] = PooledArray<int64_t>(pool, bins.count[d] * width);
        bins.near_image[d] = PooledArray<int64_t>(pool, bins.count[d] * width);
        for (int64_t o = 0; o < bins.count[d]; ++o) {
            for (int64_t k = 0; k < width; ++k) {
                int64_t b = o + k - bins.reach[d];
                int64_t image = 0;
                if (box.periodic[d]) {
                    image = floor_div(b, bins.count[d]);
                    b -= image * bins.count[d];
                } else if (b < 0 || b >= bins.count[d]) {
                    b = -1;
                }
                bins.near_bin[d][o * width + k] = b;
                bins.near_image[d][o * width + k] = image;
            }
        }
    }

    // Counting sort of atoms into bins; stable, so atoms ascend within each bin.
    const int64_t n_bins = bins.count[0] * bins.count[1] * bins.count[2];
    bins.of_atom = PooledArray<int64_t>(pool, 3 * n_atoms);
    bins.start = PooledArray<int64_t>(pool, n_bins + 1);
    std::fill(bins.start.data(), bins.start.data() + n_bins + 1, 0);
    for (int64_t i = 0; i < n_atoms; ++i) {
        int64_t* b = &bins.of_atom[3 * i];
        for (int d = 0; d < 3; ++d) {
            int64_t k = static_cast<int64_t>(std::floor(atoms.fractional[3 * i + d] * bins.count[d]));
            b[d] = std::min(std::max<int64_t>(k, 0), bins.count[d] - 1);
        }
        bins.start[bins.index(b[0], b[1], b[2]) + 1] += 1;
    }
    for (int64_t b = 0; b < n_bins; ++b) bins.start[b + 1] += bins.start[b];
    bins.atoms = PooledArray<int64_t>(pool, n_atoms);
    for (auto& w : bins.wrapped) w = PooledArray<double>(pool, n_atoms);
    PooledArray<int64_t> fill(pool, n_bins);
    std::copy(bins.start.data(), bins.start.data() + n_bins, fill.data());
    for (int64_t i = 0; i < n_atoms; ++i) {
        const int64_t* b = &bins.of_atom[3 * i];
        const int64_t slot = fill[bins.index(b[0], b[1], b[2])]++;
        bins.atoms[slot] = i;
        for (int c = 0; c < 3; ++c) bins.wrapped[c][slot] = atoms.wrapped[3 * i + c];
    }
    return bins;
}

// ---------------------------------------------------------------- pair search

// The slots of the bins around atom i that may hold partners: calls
// visit(first, last, translation, image) per neighbouring bin (image) in a fixed order,
// where [first, last) are the slots of bins.atoms that the half list allows (atoms j > i,
// and i itself through a positive image; atoms ascend within a bin, so the others are
// skipped without reading their positions) and translation = image @ box rows is to be
// added to their wrapped positions.
template <class Visit>
void for_each_neighbor_bin(const Box& box, const Bins& bins, int64_t i, Visit&& visit) {
    const int64_t* own = &bins.of_atom[3 * i];
    const int64_t* bin_atoms = bins.atoms.data();
    const int64_t* bin_along[3];
    const int64_t* image_along[3];
    for (int d = 0; d < 3; ++d) {
        const int64_t row = own[d] * (2 * bins.reach[d] + 1);
        bin_along[d] = bins.near_bin[d].data() + row;
        image_along[d] = bins.near_image[d].data() + row;
    }
    for (int64_t kx = 0; kx <= 2 * bins.reach[0]; ++kx) {
        if (bin_along[0][kx] < 0) continue;
        for (int64_t ky = 0; ky <= 2 * bins.reach[1]; ++ky) {
            if (bin_along[1][ky] < 0) continue;
            for (int64_t kz = 0; kz <= 2 * bins.reach[2]; ++kz) {
                if (bin_along[2][kz] < 0) continue;
                const std::array<int64_t, 3> image{image_along[0][kx], image_along[1][ky], image_along[2][kz]};
                Vec3 translation{0, 0, 0};
                for (int d = 0; d < 3; ++d) {
                    for (int c = 0; c < 3; ++c) translation[c] += image[d] * box.matrix[d][c];
                }
                const bool positive_image =
                    image[0] > 0 || (image[0] == 0 && (image[1] > 0 || (image[1] == 0 && image[2] > 0)));
                const int64_t bin = bins.index(bin_along[0][kx], bin_along[1][ky], bin_along[2][kz]);
                int64_t first = bins.start[bin];
                const int64_t last = bins.start[bin + 1];
                while (first < last && bin_atoms[first] < i) ++first;  // a bin holds a handful: no bisection
                // i itself comes first if here; it is its own partner only through a positive image.
                if (!positive_image && first < last && bin_atoms[first] == i) ++first;
                visit(first, last, translation, image);
            }
        }
    }
}

// Whether the atom in `slot` is within the cutoff of wrapped position ri once translated.
inline bool is_partner(const Bins& bins, const double* ri, double cutoff2, int64_t slot, const Vec3& translation) {
    double v[3];
    for (int c = 0; c < 3; ++c) v[c] = bins.wrapped[c][slot] + translation[c] - ri[c];
    return within(v, cutoff2);
}

// Partners of atom i (the counting pass): no branch on the distance, so the loop runs
// without mispredictions and the compiler may vectorise it.
int64_t count_partners(const Box& box, const Bins& bins, const double* ri, double cutoff2, int64_t i) {
    int64_t n = 0;
    for_each_neighbor_bin(box, bins, i, [&](int64_t first, int64_t last, const Vec3& t, const auto&) {
        for (int64_t slot = first; slot < last; ++slot) n += is_partner(bins, ri, cutoff2, slot, t);
    });
    return n;
}

// Calls found(j, image) for every partner j of atom i, in the order count_partners counts them.
template <class Found>
void for_each_partner(const Box& box, const Bins& bins, const double* ri, double cutoff2, int64_t i,
                      Found&& found) {
    for_each_neighbor_bin(box, bins, i, [&](int64_t first, int64_t last, const Vec3& t, const auto& image) {
        // Partners are collected without a branch, then handed over: a branch on the distance
        // would be mispredicted for a good part of the candidates.
        constexpr int64_t BATCH = 64;
        int64_t hits[BATCH];
        for (int64_t from = first; from < last; from += BATCH) {
            const int64_t to = std::min(last, from + BATCH);
            int64_t n = 0;
            for (int64_t slot = from; slot < to; ++slot) {
                hits[n] = slot;
                n += is_partner(bins, ri, cutoff2, slot, t);
            }
            for (int64_t k = 0; k < n; ++k) found(bins.atoms[hits[k]], image);
        }
    });
}

// ---------------------------------------------------------------- output

// vector = positions[j] - positions[i] + shift @ cell, summed in this order everywhere.
inline void pair_vector(const double* positions, const double* cell, int64_t i, int64_t j, const int32_t* shift,
                        double* out) {
    for (int c = 0; c < 3; ++c) {
        double vc = positions[3 * j + c] - positions[3 * i + c];
        for (int d = 0; d < 3; ++d) vc += shift[d] * cell[3 * d + c];
        out[c] = vc;
    }
}

PairList allocate_pairs(int64_t n_pairs, bool with_vectors, const std::shared_ptr<Scratch>& pool) {
    PairList list;
    list.size = n_pairs;
    list.pairs = PooledArray<int64_t>(pool, 2 * n_pairs);
    list.shifts = PooledArray<int32_t>(pool, 3 * n_pairs);
    list.vectors = PooledArray<double>(pool, with_vectors ? 3 * n_pairs : 0);
    return list;
}

// Exclusive prefix sum in place: counts[k + 1] (items of task k) -> counts[k] = first row of task k.
int64_t prefix_sum(PooledArray<int64_t>& counts) {
    counts[0] = 0;
    for (size_t k = 1; k < counts.size(); ++k) counts[k] += counts[k - 1];
    return counts[counts.size() - 1];
}

}  // namespace

PairList cell_list_pairs(const double* positions, int64_t n_atoms, const double* cell, const bool* pbc,
                         double cutoff, int n_threads, const std::shared_ptr<Scratch>& pool, bool with_vectors) {
    if (n_atoms == 0) return allocate_pairs(0, with_vectors, pool);
    n_threads = threads_for(n_threads, n_atoms, MIN_ATOMS_PER_THREAD);

    const Box box = make_box(positions, n_atoms, cell, pbc, cutoff);
    const WrappedAtoms atoms = wrap_into_box(box, positions, n_atoms, n_threads, pool);
    const Bins bins = make_bins(box, atoms, n_atoms, cutoff, pool);
    const double cutoff2 = cutoff * cutoff;

    // Counting pass: first[i + 1] = pairs of atom i; after the prefix sum, first[i] is the
    // first output row of atom i. Atoms own disjoint blocks of rows in index order, so any
    // schedule gives the same output; dynamic evens out uneven densities.
    PooledArray<int64_t> first(pool, n_atoms + 1);
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 64)
    for (int64_t i = 0; i < n_atoms; ++i) {
        first[i + 1] = count_partners(box, bins, &atoms.wrapped[3 * i], cutoff2, i);
    }
    PairList list = allocate_pairs(prefix_sum(first), with_vectors, pool);

    int64_t* pairs = list.pairs.data();
    int32_t* shifts = list.shifts.data();
    double* vectors = with_vectors ? list.vectors.data() : nullptr;
    const int32_t* offset = atoms.offset.data();
    std::atomic<bool> miscounted{false};
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 64)
    for (int64_t i = 0; i < n_atoms; ++i) {
        int64_t row = first[i];
        const int64_t end = first[i + 1];
        const double* ri = &atoms.wrapped[3 * i];
        for_each_partner(box, bins, ri, cutoff2, i, [&](int64_t j, const std::array<int64_t, 3>& image) {
            if (row == end) {  // never past atom i's block, whatever happens
                miscounted.store(true, std::memory_order_relaxed);
                return;
            }
            int32_t* shift = shifts + 3 * row;
            for (int d = 0; d < 3; ++d) {
                shift[d] = static_cast<int32_t>(image[d]) - offset[3 * j + d] + offset[3 * i + d];
            }
            pairs[2 * row] = i;
            pairs[2 * row + 1] = j;
            if (vectors) pair_vector(positions, cell, i, j, shift, vectors + 3 * row);
            ++row;
        });
        if (row != end) miscounted.store(true, std::memory_order_relaxed);
    }
    if (miscounted) throw std::runtime_error(MISCOUNTED);
    return list;
}

PairList pairs_within(const PairList& list, const double* positions, const double* cell, double cutoff,
                      int n_threads, const std::shared_ptr<Scratch>& pool) {
    const int64_t n_chunks = (list.size + FILTER_CHUNK - 1) / FILTER_CHUNK;
    n_threads = threads_for(n_threads, list.size, FILTER_CHUNK);
    const double cutoff2 = cutoff * cutoff;
    const int64_t* pairs = list.pairs.data();
    const int32_t* shifts = list.shifts.data();

    // Both passes recompute the vectors: cheaper than a mask as big as the list.
    PooledArray<int64_t> first(pool, n_chunks + 1);
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t chunk = 0; chunk < n_chunks; ++chunk) {
        int64_t n = 0;
        const int64_t end = std::min(list.size, (chunk + 1) * FILTER_CHUNK);
        for (int64_t p = chunk * FILTER_CHUNK; p < end; ++p) {
            double v[3];
            pair_vector(positions, cell, pairs[2 * p], pairs[2 * p + 1], shifts + 3 * p, v);
            n += within(v, cutoff2);
        }
        first[chunk + 1] = n;
    }
    PairList out = allocate_pairs(prefix_sum(first), true, pool);

    std::atomic<bool> miscounted{false};
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t chunk = 0; chunk < n_chunks; ++chunk) {
        int64_t row = first[chunk];
        const int64_t block_end = first[chunk + 1];
        const int64_t end = std::min(list.size, (chunk + 1) * FILTER_CHUNK);
        for (int64_t p = chunk * FILTER_CHUNK; p < end; ++p) {
            double v[3];
            pair_vector(positions, cell, pairs[2 * p], pairs[2 * p + 1], shifts + 3 * p, v);
            if (!within(v, cutoff2)) continue;
            if (row == block_end) {
                miscounted.store(true, std::memory_order_relaxed);
                break;
            }
            for (int k = 0; k < 2; ++k) out.pairs[2 * row + k] = pairs[2 * p + k];
            for (int k = 0; k < 3; ++k) out.shifts[3 * row + k] = shifts[3 * p + k];
            for (int k = 0; k < 3; ++k) out.vectors[3 * row + k] = v[k];
            ++row;
        }
        if (row != block_end) miscounted.store(true, std::memory_order_relaxed);
    }
    if (miscounted) throw std::runtime_error(MISCOUNTED);
    return out;
}

}  // namespace pyani
