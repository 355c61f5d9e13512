// Helpers shared by the binding files (module.cpp, *_bindings.cpp): the only files that
// include pybind11. Python validates user input once (pyani/_validate.py); the checks here
// are the cheap shape and index checks memory safety needs, so that a wrong call from
// Python is a ValueError, never a crash.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pooled_array.hpp"

namespace pyani {
namespace py = pybind11;

template <typename T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

// A C string, not std::string: these checks may run once per atom or pair, and building a
// std::string each time cost more than the kernels they guard.
inline void require(bool ok, const char* message) {
    if (!ok) throw std::invalid_argument(message);
}

template <typename T>
void require_shape(const Array<T>& a, const char* name, std::vector<py::ssize_t> shape) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t d = 0; ok && d < shape.size(); ++d) ok = shape[d] < 0 || a.shape(d) == shape[d];
    if (!ok) {
        std::string want = "(";
        for (size_t d = 0; d < shape.size(); ++d) {
            want += (shape[d] < 0 ? std::string("n") : std::to_string(shape[d]));
            want += d + 1 < shape.size() ? ", " : ")";
        }
        throw std::invalid_argument(std::string(name) + " must have shape " + want);
    }
}

// A pooled block as a NumPy array without copying it; the block goes back to its pool when
// NumPy frees the array (the capsule keeps the pool alive).
template <typename T>
py::array_t<T> pooled_numpy(PooledArray<T> block, std::vector<py::ssize_t> shape) {
    auto* owner = new PooledArray<T>(std::move(block));
    py::capsule give_back(owner, [](void* p) { delete static_cast<PooledArray<T>*>(p); });
    return py::array_t<T>(shape, owner->data(), give_back);
}

void bind_neighbors(py::module_& m);  // neighbors_bindings.cpp
void bind_aev(py::module_& m);        // aev_bindings.cpp
void bind_pair_potentials(py::module_& m);  // pair_potentials_bindings.cpp

}  // namespace pyani
