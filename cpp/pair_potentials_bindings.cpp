// Bindings of RepulsionXTB and DispersionD3 (pair_potentials.hpp). Parameters come from a model's
// "pair_potentials" metadata entry, validated by pyani/_pair_potentials.py; the checks here
// are those memory safety needs. The kernels run without the GIL.
#include <pybind11/stl.h>

#include <string>

#include "bindings.hpp"
#include "pair_potentials.hpp"

namespace pyani {
namespace {

py::object entry(const py::dict& params, const char* key) {
    if (!params.contains(key)) throw std::invalid_argument(std::string("pair potential: missing key ") + key);
    return params[key];
}

double number(const py::dict& params, const char* key) {
    try {
        return entry(params, key).cast<double>();
    } catch (const py::cast_error&) {
        throw std::invalid_argument(std::string("pair potential: ") + key + " must be a number");
    }
}

// A table of float64 values of the given shape, row-major.
std::vector<double> table(const py::dict& params, const char* key, std::vector<py::ssize_t> shape) {
    Array<double> a;
    try {
        a = entry(params, key).cast<Array<double>>();
    } catch (const py::cast_error&) {
        throw std::invalid_argument(std::string("pair potential: ") + key + " must be an array of numbers");
    }
    require_shape(a, key, shape);
    return std::vector<double>(a.data(), a.data() + a.size());
}

PairCutoffFunction cutoff_function(const py::dict& params) {
    PairCutoffFunction fn;
    fn.cutoff = number(params, "cutoff");
    const std::string name = params.contains("cutoff_fn") ? params["cutoff_fn"].cast<std::string>() : "smooth";
    if (name == "dummy") {
        fn.kind = PairCutoffFunction::Dummy;
    } else if (name == "cosine") {
        fn.kind = PairCutoffFunction::Cosine;
    } else if (name == "smooth") {
        fn.kind = PairCutoffFunction::Smooth;
        if (params.contains("cutoff_fn_params")) {
            py::dict extra = params["cutoff_fn_params"].cast<py::dict>();
            if (extra.contains("order")) fn.order = extra["order"].cast<int>();
            if (extra.contains("eps")) fn.eps = extra["eps"].cast<double>();
        }
        require(fn.order >= 1 && fn.eps > 0, "pair potential: smooth cutoff needs order >= 1 and eps > 0");
    } else {
        throw std::invalid_argument("pair potential: cutoff_fn must be 'dummy', 'cosine' or 'smooth'");
    }
    return fn;
}

RepulsionXTBParams repulsion_params(const py::dict& params, int n_species) {
    require(n_species > 0, "n_species must be positive");
    RepulsionXTBParams p;
    p.n_species = n_species;
    p.cutoff_fn = cutoff_function(params);
    p.bohr_per_angstrom = number(params, "bohr_per_angstrom");
    p.y_ab = table(params, "y_ab", {n_species, n_species});
    p.sqrt_alpha_ab = table(params, "sqrt_alpha_ab", {n_species, n_species});
    p.k_rep_ab = table(params, "k_rep_ab", {n_species, n_species});
    return p;
}

DispersionD3Params dispersion_params(const py::dict& params, int n_species) {
    require(n_species > 0, "n_species must be positive");
    DispersionD3Params p;
    p.n_species = n_species;
    p.cutoff_fn = cutoff_function(params);
    p.bohr_per_angstrom = number(params, "bohr_per_angstrom");
    p.s6 = number(params, "s6");
    p.s8 = number(params, "s8");
    p.a1 = number(params, "a1");
    p.a2 = number(params, "a2");
    p.k1 = number(params, "k1");
    p.k2 = number(params, "k2");
    p.k3 = number(params, "k3");
    p.eps = number(params, "eps");
    p.cutoff_radii = table(params, "cutoff_radii", {n_species, n_species});
    p.sqrt_charge_ab = table(params, "sqrt_charge_ab", {n_species, n_species});
    p.covalent_radii = table(params, "covalent_radii", {n_species});
    const py::ssize_t refs = D3_REFERENCES;
    p.c6 = table(params, "c6", {n_species, n_species, refs, refs});
    p.cn_a = table(params, "cn_a", {n_species, n_species, refs, refs});
    p.cn_b = table(params, "cn_b", {n_species, n_species, refs, refs});
    return p;
}

// compute() of either potential: shapes checked here, indices in the kernel.
template <class Potential>
py::tuple compute(const Potential& self, Array<int32_t> species, Array<int64_t> pairs, Array<double> vectors,
                  py::object pair_bounds, py::object atom_mask, bool atomic, bool forces, bool virial) {
    require_shape(species, "species", {-1});
    require_shape(pairs, "pairs", {-1, 2});
    require_shape(vectors, "vectors", {pairs.shape(0), 3});
    PairInputs in;
    in.n_atoms = species.shape(0);
    in.species = species.data();
    in.n_pairs = pairs.shape(0);
    in.pairs = pairs.data();
    in.vectors = vectors.data();
    Array<int64_t> bounds;
    if (!pair_bounds.is_none()) {
        bounds = pair_bounds.cast<Array<int64_t>>();
        require_shape(bounds, "pair_bounds", {-1});
        require(bounds.shape(0) >= 2, "pair_bounds needs at least two entries");
        in.n_structures = bounds.shape(0) - 1;
        in.pair_bounds = bounds.data();
    }
    Array<bool> mask;
    if (!atom_mask.is_none()) {
        mask = atom_mask.cast<Array<bool>>();
        require_shape(mask, "atom_mask", {in.n_atoms});
        in.atom_mask = reinterpret_cast<const uint8_t*>(mask.data());
    }
    py::array_t<double> energies(in.n_structures);
    py::object out_atomic = py::none(), out_forces = py::none(), out_virial = py::none();
    PairOutputs out;
    out.energies = energies.mutable_data();
    if (atomic) {
        py::array_t<double> a(in.n_atoms);
        out.atomic = a.mutable_data();
        out_atomic = a;
    }
    if (forces) {
        py::array_t<double> f({in.n_atoms, static_cast<int64_t>(3)});
        out.forces = f.mutable_data();
        out_forces = f;
    }
    if (virial) {
        py::array_t<double> w({in.n_structures, static_cast<int64_t>(3), static_cast<int64_t>(3)});
        out.virial = w.mutable_data();
        out_virial = w;
    }
    {
        py::gil_scoped_release release;
        self.compute(in, out);
    }
    return py::make_tuple(energies, out_atomic, out_forces, out_virial);
}

constexpr const char* COMPUTE_DOC =
    "(energies [B], atomic energies [A] or None, forces [A,3] or None, virial [B,3,3] or None), float64, "
    "Hartree and Angstrom, of atoms species [A] (int32) over the half list pairs [P,2] (int64, indices "
    "into the A atoms) with vectors [P,3] (r_j - r_i + image, Angstrom); structure b owns pairs "
    "pair_bounds[b]:pair_bounds[b+1] (None: one structure). atom_mask [A] (bool, None: all): the atoms "
    "whose energies count; a pair then counts with weight (m_i + m_j) / 2 in energies, forces and "
    "virial (atomic energies are unweighted, half of each pair to each atom). virial[b] sums "
    "outer(vector, dE/dvector) over its pairs.";

}  // namespace

void bind_pair_potentials(py::module_& m) {
    py::class_<RepulsionXTB>(m, "RepulsionXTB",
                             "TorchANI's xTB repulsion, y_ab / d exp(-sqrt_alpha_ab d^k_rep_ab) fc(r), "
                             "d in Bohr; thread-safe.")
        .def(py::init([](py::dict params, int n_species, int n_threads) {
                 return RepulsionXTB(repulsion_params(params, n_species), n_threads);
             }),
             py::arg("params"), py::arg("n_species"), py::arg("n_threads") = 0,
             "params: a 'repulsion_xtb' entry of a model's 'pair_potentials' metadata.")
        .def_property_readonly("cutoff", &RepulsionXTB::cutoff, "Cutoff, Angstrom.")
        .def_property_readonly("retained_bytes", &RepulsionXTB::retained_bytes,
                               "Bytes of per-call buffers its pool holds (in use or kept for reuse).")
        .def("compute", &compute<RepulsionXTB>, py::arg("species"), py::arg("pairs"), py::arg("vectors"),
             py::arg("pair_bounds") = py::none(), py::arg("atom_mask") = py::none(), py::arg("atomic") = false,
             py::arg("forces") = false, py::arg("virial") = false, COMPUTE_DOC);

    py::class_<DispersionD3>(m, "DispersionD3",
                             "TorchANI's two-body D3(BJ) dispersion with coordination-number-dependent C6; "
                             "thread-safe.")
        .def(py::init([](py::dict params, int n_species, int n_threads) {
                 return DispersionD3(dispersion_params(params, n_species), n_threads);
             }),
             py::arg("params"), py::arg("n_species"), py::arg("n_threads") = 0,
             "params: a 'dispersion_d3bj' entry of a model's 'pair_potentials' metadata.")
        .def_property_readonly("cutoff", &DispersionD3::cutoff, "Cutoff, Angstrom.")
        .def_property_readonly("retained_bytes", &DispersionD3::retained_bytes,
                               "Bytes of per-call buffers its pool holds (in use or kept for reuse).")
        .def("compute", &compute<DispersionD3>, py::arg("species"), py::arg("pairs"), py::arg("vectors"),
             py::arg("pair_bounds") = py::none(), py::arg("atom_mask") = py::none(), py::arg("atomic") = false,
             py::arg("forces") = false, py::arg("virial") = false, COMPUTE_DOC);
}

}  // namespace pyani
