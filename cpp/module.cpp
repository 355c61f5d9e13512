// The extension module pyani._core: one binding file per concept.
#include <pybind11/stl.h>

#include "aev.hpp"
#include "bindings.hpp"
#include "parallel.hpp"

PYBIND11_MODULE(_core, m) {
    using namespace pyani;
    m.doc() = "pyani C++ core: cell-list neighbour search, ANI AEV and its backward pass, pair potentials";
    m.attr("has_openmp") = has_openmp();
    m.def("kernel_isas", &kernel_isas,
          "Compiled variants of the AEV kernels this CPU can run, best first (auto takes the first).");
    bind_neighbors(m);
    bind_aev(m);
    bind_pair_potentials(m);
}
