#include "cell_list.hpp"

#include <algorithm>
#include <array>
#include <cmath>

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

Box make_box(const double* positions, int64_t n_atoms, const double* cell, const bool* pbc,
             double cutoff) {
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

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

}  // namespace

NeighborList neighbor_list(const double* positions, int64_t n_atoms, const double* cell,
                           const bool* pbc, double cutoff, int n_threads) {
    NeighborList result;
    if (n_atoms == 0) return result;
    n_threads = resolve_threads(n_threads);

    const Box box = make_box(positions, n_atoms, cell, pbc, cutoff);

    // Fractional coordinates, wrapped into [0, 1) along periodic directions; `offset`
    // remembers the lattice translation so shifts refer to the caller's positions.
    std::vector<double> wrapped(3 * n_atoms);
    std::vector<int32_t> offset(3 * n_atoms, 0);
    std::vector<double> fractional(3 * n_atoms);
    for (int64_t i = 0; i < n_atoms; ++i) {
        Vec3 r;
        for (int c = 0; c < 3; ++c) r[c] = positions[3 * i + c] - box.origin[c];
        for (int d = 0; d < 3; ++d) {
            double s = r[0] * box.inverse[0][d] + r[1] * box.inverse[1][d] + r[2] * box.inverse[2][d];
            if (box.periodic[d]) {
                double k = std::floor(s);
                offset[3 * i + d] = static_cast<int32_t>(k);
                s -= k;
            }
            fractional[3 * i + d] = s;
        }
        for (int c = 0; c < 3; ++c) {
            double w = positions[3 * i + c];
            for (int d = 0; d < 3; ++d) w -= offset[3 * i + d] * box.matrix[d][c];
            wrapped[3 * i + c] = w;
        }
    }

    // Bins at least `cutoff` wide (distance between lattice planes), capped in number
    // so that far-apart fragments cannot ask for more bins than there are atoms.
    std::array<int64_t, 3> n_bins, reach;
    std::array<double, 3> spacing;
    for (int d = 0; d < 3; ++d) {
        Vec3 column{box.inverse[0][d], box.inverse[1][d], box.inverse[2][d]};
        spacing[d] = 1.0 / std::sqrt(dot(column, column));
        n_bins[d] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(spacing[d] / cutoff)));
    }
    const int64_t max_bins = std::max<int64_t>(8, 2 * n_atoms);
    // The product in double: bins for atoms 1e8 A apart would overflow int64.
    while (static_cast<double>(n_bins[0]) * n_bins[1] * n_bins[2] > max_bins) {
        int d = static_cast<int>(std::max_element(n_bins.begin(), n_bins.end()) - n_bins.begin());
        n_bins[d] = (n_bins[d] + 1) / 2;
    }
    for (int d = 0; d < 3; ++d) {
        reach[d] = static_cast<int64_t>(std::ceil(cutoff * n_bins[d] / spacing[d]));
        if (!box.periodic[d]) reach[d] = std::min(reach[d], n_bins[d] - 1);
    }

    // Counting sort of atoms into bins.
    const int64_t total_bins = n_bins[0] * n_bins[1] * n_bins[2];
    std::vector<std::array<int64_t, 3>> bin_of(n_atoms);
    std::vector<int64_t> bin_start(total_bins + 1, 0), bin_atoms(n_atoms);
    for (int64_t i = 0; i < n_atoms; ++i) {
        for (int d = 0; d < 3; ++d) {
            int64_t b = static_cast<int64_t>(std::floor(fractional[3 * i + d] * n_bins[d]));
            bin_of[i][d] = std::min(std::max<int64_t>(b, 0), n_bins[d] - 1);
        }
        const auto& b = bin_of[i];
        bin_start[(b[0] * n_bins[1] + b[1]) * n_bins[2] + b[2] + 1] += 1;
    }
    for (int64_t b = 0; b < total_bins; ++b) bin_start[b + 1] += bin_start[b];
    {
        std::vector<int64_t> fill(bin_start.begin(), bin_start.end() - 1);
        for (int64_t i = 0; i < n_atoms; ++i) {
            const auto& b = bin_of[i];
            bin_atoms[fill[(b[0] * n_bins[1] + b[1]) * n_bins[2] + b[2]]++] = i;
        }
    }

    const double cutoff2 = cutoff * cutoff;
    // Thread start-up costs more than the search for small systems.
    n_threads = static_cast<int>(std::min<int64_t>(n_threads, std::max<int64_t>(1, n_atoms / 64)));
    std::vector<NeighborList> partial(n_threads);
    // Room for the expected number of pairs (from the mean density, with a margin), so the
    // lists do not grow by copying; reserved pages are not touched until written. Thread 0's
    // list becomes the result, so it gets room for all of them.
    const double volume = std::fabs(dot(box.matrix[0], cross(box.matrix[1], box.matrix[2])));
    const double sphere = 4.0 / 3.0 * 3.14159265358979323846 * cutoff * cutoff * cutoff;
    const double expected = 0.5 * n_atoms * std::min<double>(n_atoms, n_atoms * sphere / volume);
    const size_t room = static_cast<size_t>(std::min(1.25 * expected, 200.0 * n_atoms)) + 64;
    for (int t = 0; t < n_threads; ++t) {  // here, not in the parallel region: bad_alloc must reach Python
        const size_t my_room = t == 0 ? room : room / n_threads;
        partial[t].pairs.reserve(2 * my_room);
        partial[t].shifts.reserve(3 * my_room);
        partial[t].vectors.reserve(3 * my_room);
    }

    // The lists can still outgrow their room (atoms far denser than the mean density).
    FirstError errors;
#pragma omp parallel num_threads(n_threads)
    {
        NeighborList& mine = partial[thread_index()];
        // schedule(static) hands each thread one contiguous block of atoms, so the
        // concatenated output has the same order whatever the thread count.
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n_atoms; ++i) {
            errors.guard([&] {
                const auto& bi = bin_of[i];
                for (int64_t dx = -reach[0]; dx <= reach[0]; ++dx)
                for (int64_t dy = -reach[1]; dy <= reach[1]; ++dy)
                for (int64_t dz = -reach[2]; dz <= reach[2]; ++dz) {
                    std::array<int64_t, 3> b{bi[0] + dx, bi[1] + dy, bi[2] + dz};
                    std::array<int64_t, 3> image{0, 0, 0};
                    bool inside = true;
                    for (int d = 0; d < 3; ++d) {
                        if (box.periodic[d]) {
                            image[d] = floor_div(b[d], n_bins[d]);
                            b[d] -= image[d] * n_bins[d];
                        } else if (b[d] < 0 || b[d] >= n_bins[d]) {
                            inside = false;
                        }
                    }
                    if (!inside) continue;
                    Vec3 translation{0, 0, 0};
                    for (int d = 0; d < 3; ++d) {
                        for (int c = 0; c < 3; ++c) translation[c] += image[d] * box.matrix[d][c];
                    }
                    const bool positive_image =
                        image[0] > 0 || (image[0] == 0 && (image[1] > 0 || (image[1] == 0 && image[2] > 0)));
                    const int64_t bin = (b[0] * n_bins[1] + b[1]) * n_bins[2] + b[2];
                    for (int64_t k = bin_start[bin]; k < bin_start[bin + 1]; ++k) {
                        const int64_t j = bin_atoms[k];
                        if (j < i || (j == i && !positive_image)) continue;
                        Vec3 v;
                        for (int c = 0; c < 3; ++c) {
                            v[c] = wrapped[3 * j + c] + translation[c] - wrapped[3 * i + c];
                        }
                        if (dot(v, v) >= cutoff2) continue;
                        std::array<int32_t, 3> shift;
                        for (int d = 0; d < 3; ++d) {
                            shift[d] = static_cast<int32_t>(image[d]) - offset[3 * j + d] + offset[3 * i + d];
                        }
                        mine.pairs.push_back(i);
                        mine.pairs.push_back(j);
                        for (int c = 0; c < 3; ++c) {
                            double vc = positions[3 * j + c] - positions[3 * i + c];
                            for (int d = 0; d < 3; ++d) vc += shift[d] * cell[3 * d + c];
                            mine.vectors.push_back(vc);
                            mine.shifts.push_back(shift[c]);
                        }
                    }
                }
            });
        }
    }
    errors.rethrow();

    size_t n_total = 0;
    for (const auto& p : partial) n_total += p.pairs.size();
    result = std::move(partial[0]);
    result.pairs.reserve(n_total);
    result.shifts.reserve(n_total / 2 * 3);
    result.vectors.reserve(n_total / 2 * 3);
    for (size_t t = 1; t < partial.size(); ++t) {
        const NeighborList& p = partial[t];
        result.pairs.insert(result.pairs.end(), p.pairs.begin(), p.pairs.end());
        result.shifts.insert(result.shifts.end(), p.shifts.begin(), p.shifts.end());
        result.vectors.insert(result.vectors.end(), p.vectors.begin(), p.vectors.end());
    }
    return result;
}

}  // namespace pyani
