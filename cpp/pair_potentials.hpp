// Pairwise potentials of TorchANI models, exactly as TorchANI 2.9 defines them, with their
// exact gradients (float64 throughout):
//   xTB repulsion   E_p = y_ab / d exp(-sqrt_alpha_ab d^k_rep_ab) fc(r)
//   D3(BJ) 2-body   E_p = -(s6 C6 / (d^6 + R^6) + s8 C8 / (d^8 + R^8)) fc(r),
//                   C6 interpolated from the coordination numbers CN_i, CN_j (pyani/_pair_potentials.py
//                   and /work/spec/export.md give the formulas), C8 = 3 C6 sqrt_charge_ab,
//                   R = a1 cutoff_radii_ab + a2
// with r the pair distance (Angstrom), d = r bohr_per_angstrom, a and b the species of the
// pair's first and second atom. Only pairs with r <= cutoff take part (in the CN too), as in
// TorchANI, whose neighbour lists keep r <= cutoff.
//
// One object per potential, built from its parameters; compute() takes a half pair list of
// one or more structures and returns energies per structure, atomic energies (half of each
// pair to each atom), forces and virials. With an atom mask (energy_mask) a pair counts with
// weight (m_i + m_j) / 2 in the energies, forces and virials; atomic energies are unweighted.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "large_buffer.hpp"

namespace pyani {

// Envelope applied to r (Angstrom) with the potential's cutoff (Angstrom).
struct PairCutoffFunction {
    enum Kind { Dummy, Cosine, Smooth };
    Kind kind = Smooth;
    double cutoff = 0;   // Angstrom
    int order = 2;       // smooth only
    double eps = 1e-10;  // smooth only
    // fc(r) and d fc / dr.
    void evaluate(double r, double& value, double& slope) const;
};

struct PairInputs {
    int64_t n_atoms = 0;
    const int32_t* species = nullptr;  // [n_atoms], checked in range
    int64_t n_pairs = 0;
    const int64_t* pairs = nullptr;   // [n_pairs, 2]
    const double* vectors = nullptr;  // [n_pairs, 3], r_j - r_i + image, Angstrom
    int64_t n_structures = 1;
    const int64_t* pair_bounds = nullptr;  // [n_structures + 1], or null: one structure
    const uint8_t* atom_mask = nullptr;    // [n_atoms] or null: every atom counts
};

// Outputs the caller wants; null = not wanted. Each is overwritten (not accumulated).
struct PairOutputs {
    double* energies = nullptr;  // [n_structures], Hartree
    double* atomic = nullptr;    // [n_atoms], Hartree
    double* forces = nullptr;    // [n_atoms, 3], Hartree/Angstrom
    double* virial = nullptr;    // [n_structures, 3, 3], sum of outer(vector, dE/dvector), Hartree
};

struct RepulsionXTBParams {
    int n_species = 0;
    PairCutoffFunction cutoff_fn;
    double bohr_per_angstrom = 0;
    std::vector<double> y_ab, sqrt_alpha_ab, k_rep_ab;  // [n_species, n_species]
};

struct DispersionD3Params {
    int n_species = 0;
    PairCutoffFunction cutoff_fn;
    double bohr_per_angstrom = 0;
    double s6 = 0, s8 = 0, a1 = 0, a2 = 0;  // a2 in Bohr
    double k1 = 16, k2 = 4.0 / 3.0, k3 = 4, eps = 1e-35;
    std::vector<double> cutoff_radii, sqrt_charge_ab;  // [n_species, n_species], Bohr / 1
    std::vector<double> covalent_radii;                // [n_species], Bohr
    std::vector<double> c6, cn_a, cn_b;                // [n_species, n_species, 5, 5]
};

constexpr int D3_REFERENCES = 5;

class RepulsionXTB {
public:
    RepulsionXTB(RepulsionXTBParams params, int n_threads);
    double cutoff() const { return params_.cutoff_fn.cutoff; }
    int n_species() const { return params_.n_species; }
    size_t retained_bytes() const { return pool_->retained_bytes(); }
    void compute(const PairInputs& in, const PairOutputs& out) const;

private:
    RepulsionXTBParams params_;
    int n_threads_;
    std::shared_ptr<Scratch> pool_ = std::make_shared<Scratch>();  // per-call buffers; locked
};

class DispersionD3 {
public:
    DispersionD3(DispersionD3Params params, int n_threads);
    double cutoff() const { return params_.cutoff_fn.cutoff; }
    int n_species() const { return params_.n_species; }
    size_t retained_bytes() const { return pool_->retained_bytes(); }
    void compute(const PairInputs& in, const PairOutputs& out) const;

private:
    // The references of each species pair with c6 > 0 (the others weigh 0), packed, with the
    // reference indices (p, q) of the first and second atom.
    struct References {
        int count = 0;
        double c6[D3_REFERENCES * D3_REFERENCES];
        double cn_a[D3_REFERENCES * D3_REFERENCES];
        double cn_b[D3_REFERENCES * D3_REFERENCES];
        int p[D3_REFERENCES * D3_REFERENCES];
        int q[D3_REFERENCES * D3_REFERENCES];
    };
    DispersionD3Params params_;
    std::vector<References> references_;  // [n_species * n_species]
    // Grimme's tables give each reference p of an element one CN, whatever the partner:
    // cn_a[a,b,p,q] = reference_cn[a,p] and cn_b[a,b,p,q] = reference_cn[b,q]. Then
    // exp(-k3 ((CN_i - cn_a)^2 + (CN_j - cn_b)^2)) is a product of per-atom factors, five
    // exponentials per atom instead of up to 25 per pair. Tables without that structure take
    // the general path.
    bool separable_ = false;
    std::vector<double> reference_cn_;  // [n_species, 5], NaN where an element has no such reference
    int n_threads_;
    std::shared_ptr<Scratch> pool_ = std::make_shared<Scratch>();  // per-call buffers; locked
};

}  // namespace pyani
