// Bindings of the neighbour list object (neighbor_list.hpp).
#include "bindings.hpp"
#include "neighbor_list.hpp"

namespace pyani {

void bind_neighbors(py::module_& m) {
    py::class_<NeighborList>(m, "NeighborList",
                             "Half neighbour list within a cutoff (Angstrom), optionally kept between calls "
                             "with a Verlet skin (Angstrom).")
        .def(py::init<double, double, int>(), py::arg("cutoff"), py::arg("skin") = 0.0, py::arg("n_threads") = 0)
        .def_property_readonly("cutoff", &NeighborList::cutoff, "Cutoff, Angstrom.")
        .def_property_readonly("skin", &NeighborList::skin, "Verlet skin, Angstrom.")
        .def_property_readonly("builds", &NeighborList::builds, "Lists built from scratch so far.")
        .def_property_readonly("retained_bytes", &NeighborList::retained_bytes,
                               "Bytes of big buffers its pool holds (in use or kept for reuse).")
        .def(
            "compute",
            [](NeighborList& self, Array<double> positions, Array<double> cell, Array<bool> pbc) {
                require_shape(positions, "positions", {-1, 3});
                require_shape(cell, "cell", {3, 3});
                require_shape(pbc, "pbc", {3});
                PairList list;
                {
                    py::gil_scoped_release release;
                    list = self.compute(positions.data(), positions.shape(0), cell.data(), pbc.data());
                }
                const py::ssize_t n = list.size;
                return py::make_tuple(pooled_numpy(std::move(list.pairs), {n, 2}),
                                      pooled_numpy(std::move(list.shifts), {n, 3}),
                                      pooled_numpy(std::move(list.vectors), {n, 3}));
            },
            py::arg("positions"), py::arg("cell"), py::arg("pbc"),
            "(pairs int64 [P,2], shifts int32 [P,3], vectors float64 [P,3] Angstrom) of positions [N,3] "
            "(Angstrom) in cell [3,3] (rows = lattice vectors) with periodicity pbc [3].");
}

}  // namespace pyani
