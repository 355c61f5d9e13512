// Bindings of AEVComputer and AEVPass (aev.hpp). Shapes are checked here, index ranges in
// aev.cpp; the kernels run without the GIL.
#include <pybind11/stl.h>

#include <cmath>
#include <memory>

#include "aev.hpp"
#include "bindings.hpp"

namespace pyani {
namespace {

// aev["cutoff_fn"]: "cosine" (also when absent or None) or "smooth" with aev["cutoff_fn_params"]
// {"order": int, "eps": number} (each TorchANI's default when absent); AEVComputer checks
// their ranges.
CutoffFunction cutoff_function_from(const py::dict& aev) {
    CutoffFunction fn;
    const py::object name = aev.contains("cutoff_fn") ? py::object(aev["cutoff_fn"]) : py::object(py::none());
    require(name.is_none() || py::isinstance<py::str>(name), "aev: cutoff_fn must be 'cosine' or 'smooth'");
    const std::string kind = name.is_none() ? "cosine" : name.cast<std::string>();
    // Absent, None and {} all mean: no parameters.
    bool has_params = aev.contains("cutoff_fn_params") && !aev["cutoff_fn_params"].is_none();
    if (has_params && py::isinstance<py::dict>(aev["cutoff_fn_params"])) {
        has_params = py::len(aev["cutoff_fn_params"]) > 0;
    }
    if (kind == "cosine") {
        require(!has_params, "aev: cutoff_fn_params belong to cutoff_fn 'smooth'; 'cosine' takes none");
        return fn;
    }
    require(kind == "smooth", ("aev: cutoff_fn must be 'cosine' or 'smooth', got '" + kind + "'").c_str());
    fn.kind = CutoffFunction::smooth;
    if (!has_params) return fn;
    const py::object params = aev["cutoff_fn_params"];
    require(py::isinstance<py::dict>(params), "aev: cutoff_fn_params must be a dict {order, eps}");
    const py::dict given = params.cast<py::dict>();
    for (const auto& item : given) {
        const std::string key = py::str(item.first);
        require(key == "order" || key == "eps", ("aev: cutoff_fn_params has an unknown entry '" + key + "'").c_str());
    }
    const char* bad_order = "aev: cutoff_fn_params order must be an integer in 1..1024";
    if (given.contains("order")) {
        const py::object order = given["order"];
        require(!py::isinstance<py::bool_>(order), bad_order);
        PyObject* index = PyNumber_Index(order.ptr());  // ints and NumPy integers, not floats
        if (!index) PyErr_Clear();
        require(index != nullptr, bad_order);
        int overflow = 0;
        const long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
        Py_DECREF(index);
        require(overflow == 0 && value >= 1 && value <= MAX_SMOOTH_ORDER, bad_order);
        fn.order = static_cast<int>(value);
    }
    if (given.contains("eps")) {
        const py::object eps = given["eps"];
        const char* bad_eps = "aev: cutoff_fn_params eps must be a number > 0";
        require(!py::isinstance<py::bool_>(eps) && !py::isinstance<py::str>(eps), bad_eps);
        try {
            fn.eps = eps.cast<double>();
        } catch (const py::cast_error&) {
            throw std::invalid_argument(bad_eps);
        }
    }
    return fn;
}

AEVParams params_from(const py::dict& aev, int n_species) {
    AEVParams p;
    p.n_species = n_species;
    try {
        p.radial_cutoff = aev["radial_cutoff"].cast<double>();
        p.angular_cutoff = aev["angular_cutoff"].cast<double>();
        p.eta_r = aev["eta_r"].cast<double>();
        p.eta_a = aev["eta_a"].cast<double>();
        p.zeta = aev["zeta"].cast<double>();
        p.shf_r = aev["shf_r"].cast<std::vector<double>>();
        p.shf_a = aev["shf_a"].cast<std::vector<double>>();
        p.shf_z = aev["shf_z"].cast<std::vector<double>>();
    } catch (const py::error_already_set& err) {
        if (!err.matches(PyExc_KeyError)) throw;
        throw std::invalid_argument("aev: missing key " + std::string(py::str(err.value())));
    } catch (const py::cast_error&) {
        throw std::invalid_argument("aev: cutoffs, eta and zeta must be numbers and the shifts sequences of numbers");
    }
    p.cutoff_fn = cutoff_function_from(aev);
    return p;
}

// The Python face of one pass: the C++ pass, its AEV as a NumPy array, and the vectors it
// reads in backward() (kept alive here).
struct PyAEVPass {
    std::unique_ptr<AEVPass> pass;
    py::array aev;  // float32, or float64 for a double-precision computer
    Array<double> vectors;
    bool double_precision = false;

    py::tuple backward(py::object grad_aev, py::object pair_bounds, bool forces, bool virial) {
        if (double_precision) return backward_in<double>(grad_aev, pair_bounds, forces, virial);
        return backward_in<float>(grad_aev, pair_bounds, forces, virial);
    }

    template <typename Real>
    py::tuple backward_in(py::object grad_object, py::object pair_bounds, bool forces, bool virial) {
        if (!pass->keeps_backward()) {
            throw std::invalid_argument("backward() needs a pass made by forward(..., backward=True)");
        }
        Array<Real> grad_aev = grad_object.cast<Array<Real>>();
        require_shape(grad_aev, "grad_aev", {pass->n_rows(), pass->n_features()});
        Array<int64_t> bounds;
        if (!pair_bounds.is_none()) {
            bounds = pair_bounds.cast<Array<int64_t>>();
            require_shape(bounds, "pair_bounds", {-1});
        }
        const int64_t n_bounds = pair_bounds.is_none() ? 2 : bounds.shape(0);
        const std::shared_ptr<Scratch>& pool = pass->pool();
        PooledArray<double> f, w;
        if (forces) f = take_pooled<double>(pool, 3 * pass->n_atoms());
        if (virial) w = take_pooled<double>(pool, 9 * std::max<int64_t>(n_bounds - 1, 0));
        {
            py::gil_scoped_release release;
            pass->backward(grad_aev.data(), pair_bounds.is_none() ? nullptr : bounds.data(), n_bounds, f.get(),
                           w.get());
        }
        py::object out_f = py::none(), out_w = py::none();
        if (forces) out_f = pooled_numpy(std::move(f), {pass->n_atoms(), 3});
        if (virial) out_w = pooled_numpy(std::move(w), {std::max<int64_t>(n_bounds - 1, 0), 3, 3});
        return py::make_tuple(out_f, out_w);
    }
};

}  // namespace

void bind_aev(py::module_& m) {
    py::class_<PyAEVPass>(m, "AEVPass",
                          "One forward pass of an AEVComputer: its AEV, and what backward() needs.")
        .def_readonly("aev", &PyAEVPass::aev, "AEV [n_rows, n_features] (float32 or float64); writable.")
        .def("backward", &PyAEVPass::backward, py::arg("grad_aev"), py::arg("pair_bounds") = py::none(),
             py::arg("forces") = true, py::arg("virial") = false,
             "(forces [N,3] = -dE/dr (Hartree/Angstrom) or None, virial [B,3,3] (Hartree) or None) from "
             "grad_aev = dE/dAEV [n_rows, n_features] (Hartree, the computer's precision). virial[b] sums "
             "outer(vector, dE/dvector) over pairs pair_bounds[b]:pair_bounds[b+1] (None: all pairs).");

    py::class_<AEVComputer, std::shared_ptr<AEVComputer>>(
        m, "AEVComputer", "ANI AEVs and their backward pass for one set of parameters; thread-safe.")
        .def(py::init([](py::dict aev, int n_species, int n_threads, const std::string& isa,
                         const std::string& dtype) {
                 require(dtype == "float32" || dtype == "float64", "dtype must be 'float32' or 'float64'");
                 return std::make_shared<AEVComputer>(params_from(aev, n_species), n_threads, isa,
                                                      dtype == "float64");
             }),
             py::arg("aev"), py::arg("n_species"), py::arg("n_threads") = 0, py::arg("isa") = "auto",
             py::arg("dtype") = "float32",
             "aev: a model's 'aev' metadata (cutoffs in Angstrom). isa: 'auto' or one of kernel_isas(). "
             "dtype: of the AEV and dE/dAEV, 'float32' or 'float64'.")
        .def_property_readonly(
            "dtype", [](const AEVComputer& self) { return self.double_precision() ? "float64" : "float32"; },
            "Precision of the AEV and dE/dAEV.")
        .def_property_readonly("length", &AEVComputer::length, "Length of a full AEV row.")
        .def_property_readonly("isa", &AEVComputer::isa, "The compiled kernel variant in use.")
        .def_property_readonly("retained_bytes", &AEVComputer::retained_bytes,
                               "Bytes of big buffers the pool holds, in use or kept for the next call.")
        .def(
            "forward",
            [](const AEVComputer& self, Array<int32_t> species, Array<int64_t> pairs, Array<double> vectors,
               Array<int64_t> rows, int64_t n_rows, py::object features, bool backward) {
                require_shape(species, "species", {-1});
                const int64_t n_atoms = species.shape(0);
                require_shape(pairs, "pairs", {-1, 2});
                require_shape(vectors, "vectors", {pairs.shape(0), 3});
                require_shape(rows, "rows", {n_atoms});
                std::vector<int64_t> columns;
                if (features.is_none()) {
                    columns.resize(self.length());
                    for (int64_t k = 0; k < self.length(); ++k) columns[k] = k;
                } else {
                    Array<int64_t> f = features.cast<Array<int64_t>>();
                    require_shape(f, "features", {-1});
                    columns.assign(f.data(), f.data() + f.shape(0));
                }
                auto result = std::make_unique<PyAEVPass>();
                {
                    py::gil_scoped_release release;
                    result->pass = self.forward(n_atoms, species.data(), pairs.shape(0), pairs.data(),
                                                vectors.data(), rows.data(), n_rows, std::move(columns), backward);
                }
                AEVPass& pass = *result->pass;
                result->double_precision = self.double_precision();
                if (self.double_precision()) {
                    result->aev = pooled_numpy(pass.take_aev64(), {pass.n_rows(), pass.n_features()});
                } else {
                    result->aev = pooled_numpy(pass.take_aev(), {pass.n_rows(), pass.n_features()});
                }
                if (backward) result->vectors = std::move(vectors);
                return result;
            },
            py::arg("species"), py::arg("pairs"), py::arg("vectors"), py::arg("rows"), py::arg("n_rows"),
            py::arg("features") = py::none(), py::arg("backward") = false,
            "AEVPass of atoms species [N] (0..n_species-1) over the half list pairs [P,2], vectors [P,3] "
            "(Angstrom); atom i's AEV goes to row rows[i] of n_rows; features: the columns of the full "
            "layout to keep (None: all); backward: keep what backward() needs.");
}

}  // namespace pyani
