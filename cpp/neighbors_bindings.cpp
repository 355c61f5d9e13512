// Bindings of the cell-list neighbour search (cell_list.hpp).
#include "bindings.hpp"
#include "cell_list.hpp"

namespace pyani {

void bind_neighbors(py::module_& m) {
    m.def(
        "neighbor_list",
        [](Array<double> positions, Array<double> cell, Array<bool> pbc, double cutoff, int n_threads) {
            require_shape(positions, "positions", {-1, 3});
            require_shape(cell, "cell", {3, 3});
            require_shape(pbc, "pbc", {3});
            require(cutoff > 0, "cutoff must be positive");
            const int64_t n = positions.shape(0);
            NeighborList nl;
            {
                py::gil_scoped_release release;
                nl = neighbor_list(positions.data(), n, cell.data(), pbc.data(), cutoff, n_threads);
            }
            const py::ssize_t n_pairs = nl.size();
            return py::make_tuple(to_numpy(std::move(nl.pairs), {n_pairs, 2}),
                                  to_numpy(std::move(nl.shifts), {n_pairs, 3}),
                                  to_numpy(std::move(nl.vectors), {n_pairs, 3}));
        },
        py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("cutoff"),
        py::arg("n_threads") = 0,
        "Half neighbour list within cutoff (Angstrom): (pairs [P,2], shifts [P,3], vectors [P,3]).");
}

}  // namespace pyani
