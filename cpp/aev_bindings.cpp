// Bindings of the AEV kernels (aev.hpp) and their buffer pool (large_buffer.hpp).
#include <pybind11/stl.h>

#include <memory>

#include "aev.hpp"
#include "bindings.hpp"
#include "large_buffer.hpp"

namespace pyani {
namespace {

void check_pairs(const Array<int64_t>& pairs, const Array<double>& vectors, int64_t n_atoms,
                 const char* vectors_name = "vectors") {
    require_shape(pairs, "pairs", {-1, 2});
    require_shape(vectors, vectors_name, {pairs.shape(0), 3});
    const int64_t* p = pairs.data();
    for (py::ssize_t k = 0; k < pairs.size(); ++k) {
        require(p[k] >= 0 && p[k] < n_atoms, "pairs contains an atom index out of range");
    }
}

void check_atoms(const AEVParams& prm, const Array<int32_t>& species, const Array<int64_t>& rows,
                 int64_t n_rows) {
    require_shape(species, "species", {-1});
    require_shape(rows, "rows", {species.shape(0)});
    for (py::ssize_t i = 0; i < species.shape(0); ++i) {
        require(species.data()[i] >= 0 && species.data()[i] < prm.n_species,
                "species contains an index out of range");
        require(rows.data()[i] >= 0 && rows.data()[i] < n_rows, "rows contains an index out of range");
    }
}

// The AEV columns to keep: all of them when `features` is None.
std::vector<int64_t> check_features(const AEVParams& prm, const py::object& features) {
    std::vector<int64_t> columns;
    if (features.is_none()) {
        columns.resize(prm.length());
        for (int64_t k = 0; k < prm.length(); ++k) columns[k] = k;
        return columns;
    }
    Array<int64_t> f = features.cast<Array<int64_t>>();
    require_shape(f, "features", {-1});
    std::vector<bool> seen(prm.length(), false);
    for (py::ssize_t k = 0; k < f.shape(0); ++k) {
        const int64_t c = f.data()[k];
        require(c >= 0 && c < prm.length(), "features contains a column out of range");
        require(!seen[c], "features contains a column twice");
        seen[c] = true;
        columns.push_back(c);
    }
    return columns;
}

}  // namespace

void bind_aev(py::module_& m) {
    py::class_<AEVParams>(m, "AEVParams")
        .def(py::init([](int n_species, double radial_cutoff, double angular_cutoff, double eta_r,
                         std::vector<double> shf_r, double eta_a, double zeta,
                         std::vector<double> shf_a, std::vector<double> shf_z) {
                 require(n_species > 0, "n_species must be positive");
                 require(angular_cutoff > 0 && angular_cutoff <= radial_cutoff,
                         "angular_cutoff must be in (0, radial_cutoff]");
                 require(!shf_r.empty() && !shf_a.empty() && !shf_z.empty(),
                         "shf_r, shf_a and shf_z must not be empty");
                 AEVParams p;
                 p.n_species = n_species;
                 p.radial_cutoff = radial_cutoff;
                 p.angular_cutoff = angular_cutoff;
                 p.eta_r = eta_r;
                 p.eta_a = eta_a;
                 p.zeta = zeta;
                 p.shf_r = std::move(shf_r);
                 p.shf_a = std::move(shf_a);
                 p.shf_z = std::move(shf_z);
                 return p;
             }),
             py::arg("n_species"), py::arg("radial_cutoff"), py::arg("angular_cutoff"),
             py::arg("eta_r"), py::arg("shf_r"), py::arg("eta_a"), py::arg("zeta"),
             py::arg("shf_a"), py::arg("shf_z"))
        .def_property_readonly("length", &AEVParams::length);

    py::class_<Scratch, std::shared_ptr<Scratch>>(
        m, "Scratch", "Big buffers that aev and aev_backward reuse from call to call (freed with it).")
        .def(py::init<>())
        .def_property_readonly("retained_bytes", &Scratch::retained_bytes,
                               "Bytes held, in use or free for the next call.");

    m.def(
        "aev",
        [](const AEVParams& prm, Array<int32_t> species, Array<int64_t> pairs, Array<double> vectors,
           Array<int64_t> rows, int64_t n_rows, int n_threads, py::object features, const std::string& isa,
           std::shared_ptr<Scratch> scratch) {
            const AEVKernels kernels = aev_kernels(isa);
            check_atoms(prm, species, rows, n_rows);
            check_pairs(pairs, vectors, species.shape(0));
            const std::vector<int64_t> columns = check_features(prm, features);
            const int64_t width = static_cast<int64_t>(columns.size());
            py::array_t<float> out({static_cast<py::ssize_t>(n_rows), static_cast<py::ssize_t>(width)});
            float* data = out.mutable_data();
            {
                py::gil_scoped_release release;
                ScratchScope scope(scratch.get());
                // Rows not named in `rows` (none in normal use) must not hold garbage.
                if (n_rows != species.shape(0)) std::fill(data, data + n_rows * width, 0.0f);
                kernels.forward(prm, species.shape(0), species.data(), pairs.shape(0), pairs.data(),
                                vectors.data(), rows.data(), columns.data(), width, data, n_threads);
            }
            return out;
        },
        py::arg("params"), py::arg("species"), py::arg("pairs"), py::arg("vectors"), py::arg("rows"),
        py::arg("n_rows"), py::arg("n_threads") = 0, py::arg("features") = py::none(), py::kw_only(),
        py::arg("isa") = "auto", py::arg("scratch") = nullptr,
        "AEVs [n_rows, len(features)] (float32; features: columns of the full layout to keep, "
        "default all); atom i goes to row rows[i]. isa: compiled variant (kernel_isas()). "
        "scratch: a Scratch whose big buffers this call reuses and returns.");

    m.def(
        "aev_backward",
        [](const AEVParams& prm, Array<int32_t> species, Array<int64_t> pairs, Array<double> vectors,
           Array<int64_t> rows, Array<float> grad_aev, int n_threads, py::object features,
           const std::string& isa, std::shared_ptr<Scratch> scratch) {
            const AEVKernels kernels = aev_kernels(isa);
            const std::vector<int64_t> columns = check_features(prm, features);
            const int64_t width = static_cast<int64_t>(columns.size());
            require_shape(grad_aev, "grad_aev", {-1, width});
            check_atoms(prm, species, rows, grad_aev.shape(0));
            check_pairs(pairs, vectors, species.shape(0));
            py::array_t<double> out({pairs.shape(0), static_cast<py::ssize_t>(3)});
            double* data = out.mutable_data();
            {
                py::gil_scoped_release release;
                ScratchScope scope(scratch.get());
                kernels.backward(prm, species.shape(0), species.data(), pairs.shape(0), pairs.data(),
                                 vectors.data(), rows.data(), columns.data(), width, grad_aev.data(), data,
                                 n_threads);
            }
            return out;
        },
        py::arg("params"), py::arg("species"), py::arg("pairs"), py::arg("vectors"), py::arg("rows"),
        py::arg("grad_aev"), py::arg("n_threads") = 0, py::arg("features") = py::none(), py::kw_only(),
        py::arg("isa") = "auto", py::arg("scratch") = nullptr,
        "dE/d(vectors) [P,3] from dE/dAEV [n_rows, len(features)]. scratch: as for aev.");

    m.def(
        "pair_forces",
        [](int64_t n_atoms, Array<int64_t> pairs, Array<double> grad_vectors) {
            require(n_atoms >= 0, "n_atoms must be non-negative");
            check_pairs(pairs, grad_vectors, n_atoms, "grad_vectors");
            py::array_t<double> forces({static_cast<py::ssize_t>(n_atoms), static_cast<py::ssize_t>(3)});
            double* f = forces.mutable_data();
            {
                py::gil_scoped_release release;
                pair_forces(n_atoms, pairs.shape(0), pairs.data(), grad_vectors.data(), f);
            }
            return forces;
        },
        py::arg("n_atoms"), py::arg("pairs"), py::arg("grad_vectors"),
        "Forces [N,3] = -dE/dr from dE/d(vector) [P,3] of each pair.");
}

}  // namespace pyani
