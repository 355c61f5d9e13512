"""Reference values of TorchANI 2.9's pair potentials alone (float64), for pyani's tests.

    TORCHANI_DATA_DIR=... $REF_PYTHON tests/data/make_pair_potentials.py

Writes tests/data/pair_potentials.npz:
  metadata: JSON text {"elements": [...], "pair_potentials": [...]}, the parameters of
      RepulsionXTB(symbols, cutoff=5.2) and TwoBodyDispersionD3.from_functional(symbols,
      "b973c", cutoff=8.0) for H C N O S F Cl in the "pair_potentials" schema of pyani's
      model files (each table as TorchANI holds it: its float32 buffers widened exactly);
  systems: the names of the systems, in order;
  <system>/numbers [N], <system>/positions [N, 3] (Angstrom), periodic ones also
      <system>/cell [3, 3] and <system>/pbc [3];
  <system>/<potential>/energy [], .../atomic_energies [N] (Hartree), .../forces [N, 3]
      (Hartree/Angstrom), periodic ones also .../stress [3, 3] ((1/V) dE/dstrain, Ha/A^3),
  with <potential> "repulsion_xtb" or "dispersion_d3bj".
Geometries are those of tests/data/ani-2x (molecules with S, F, Cl; two water boxes) plus a
squeezed ethanol (short contacts: large repulsion, coordination numbers away from the
references); the triclinic box is stretched by 2 % (self-image pairs within both cutoffs, no
pair at a cutoff). Deterministic: reruns give the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torchani.neighbors import adaptive_list
from torchani.potentials import RepulsionXTB, TwoBodyDispersionD3

torch.set_default_dtype(torch.float64)
HERE = Path(__file__).resolve().parent
SYMBOLS = ["H", "C", "N", "O", "S", "F", "Cl"]
NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "S": 16, "F": 9, "Cl": 17}


def table(t: torch.Tensor):
    return t.detach().to(torch.float64).numpy().tolist()


def cutoff_fn_entry(pot) -> dict:
    name = type(pot.cutoff_fn).__name__
    if name == "CutoffSmooth":
        return {"cutoff_fn": "smooth", "cutoff_fn_params": {"order": pot.cutoff_fn.order, "eps": pot.cutoff_fn.eps}}
    if name == "CutoffCosine":
        return {"cutoff_fn": "cosine"}
    if name == "CutoffDummy":
        return {"cutoff_fn": "dummy"}
    raise ValueError(f"no pyani name for {name}")


def repulsion_entry(pot: RepulsionXTB) -> dict:
    return {
        "kind": "repulsion_xtb",
        "cutoff": pot.cutoff,
        **cutoff_fn_entry(pot),
        "bohr_per_angstrom": pot.ANGSTROM_TO_BOHR,
        "y_ab": table(pot.y_ab),
        "sqrt_alpha_ab": table(pot.sqrt_alpha_ab),
        "k_rep_ab": table(pot.k_rep_ab),
    }


def dispersion_entry(pot: TwoBodyDispersionD3) -> dict:
    return {
        "kind": "dispersion_d3bj",
        "cutoff": pot.cutoff,
        **cutoff_fn_entry(pot),
        "bohr_per_angstrom": pot.ANGSTROM_TO_BOHR,
        "s6": pot._s6,
        "s8": pot._s8,
        "a1": pot._damp_fn._a1,
        "a2": pot._damp_fn._a2,
        "cutoff_radii": table(pot._damp_fn.cutoff_radii),
        "sqrt_charge_ab": table(pot.sqrt_charge_ab),
        "covalent_radii": table(pot.covalent_radii),
        "k1": pot._k1,
        "k2": pot._k2,
        "k3": pot._k3,
        "eps": pot._eps,
        "c6": table(pot.precalc_coeff6),
        "cn_a": table(pot.precalc_coordnums_a),
        "cn_b": table(pot.precalc_coordnums_b),
    }


def systems() -> dict:
    """name -> (numbers, positions, cell or None)."""
    out = {}

    def reference(name):
        with np.load(HERE / "ani-2x" / f"{name}.npz") as data:
            return {k: data[k] for k in data.files}

    d = reference("aspirin")
    out["aspirin"] = (d["numbers"], d["positions"], None)
    d = reference("ani2x_molecules")
    for b, (z, p) in enumerate(zip(d["numbers"], d["positions"])):
        real = z >= 0
        out[f"ani2x_molecule_{b}"] = (z[real], p[real], None)
    d = reference("ethanol")
    out["squeezed_ethanol"] = (d["numbers"], d["positions"] * 0.72, None)
    d = reference("water_box")
    out["water_box"] = (d["numbers"], d["positions"], d["cell"])
    # Stretched: its first lattice vector is exactly 8 Angstrom, the dispersion cutoff, and at
    # such a tie which pairs count depends on the rounding of each library's vectors.
    d = reference("triclinic")
    out["triclinic"] = (d["numbers"], d["positions"] * 1.02, d["cell"] * 1.02)
    return out


def evaluate(pot, numbers, positions, cell):
    """energy, atomic energies, forces, stress (None for molecules) of one structure."""
    species = torch.tensor(numbers[None], dtype=torch.long)
    coords = torch.tensor(positions[None], requires_grad=True)
    strain = torch.zeros(3, 3, requires_grad=True)
    deform = torch.eye(3) + strain
    pbc = None if cell is None else torch.tensor([True, True, True])
    box = None if cell is None else torch.tensor(cell) @ deform
    energy = pot(species, coords @ deform, box, pbc)
    # Potential.forward passes its atomic flag on in the charge slot: ask compute_from_neighbors
    elem_idxs = pot._conv_tensor[species]
    plain_cell = None if cell is None else torch.tensor(cell)
    neighbors = adaptive_list(pot.cutoff, elem_idxs, torch.tensor(positions[None]), plain_cell, pbc)
    atomic = pot.compute_from_neighbors(elem_idxs, coords.detach(), neighbors, atomic=True).energies
    grad_coords, grad_strain = torch.autograd.grad(energy.sum(), [coords, strain])
    stress = None if cell is None else grad_strain.numpy() / abs(np.linalg.det(cell))
    return float(energy.item()), atomic[0].detach().numpy(), -grad_coords[0].numpy(), stress


def main() -> None:
    repulsion = RepulsionXTB(SYMBOLS, cutoff=5.2)
    dispersion = TwoBodyDispersionD3.from_functional(SYMBOLS, "b973c", cutoff=8.0)
    metadata = {
        "elements": SYMBOLS,
        "atomic_numbers": [NUMBERS[s] for s in SYMBOLS],
        "pair_potentials": [repulsion_entry(repulsion), dispersion_entry(dispersion)],
    }
    out = {"metadata": np.array(json.dumps(metadata))}
    found = systems()
    out["systems"] = np.array(list(found))
    for name, (numbers, positions, cell) in found.items():
        out[f"{name}/numbers"] = np.asarray(numbers, dtype=np.int64)
        out[f"{name}/positions"] = np.asarray(positions, dtype=np.float64)
        if cell is not None:
            out[f"{name}/cell"] = np.asarray(cell, dtype=np.float64)
            out[f"{name}/pbc"] = np.ones(3, dtype=bool)
        for key, pot in (("repulsion_xtb", repulsion), ("dispersion_d3bj", dispersion)):
            energy, atomic, forces, stress = evaluate(pot, numbers, positions, cell)
            assert abs(atomic.sum() - energy) < 1e-12 * max(1.0, abs(energy))
            out[f"{name}/{key}/energy"] = np.array(energy)
            out[f"{name}/{key}/atomic_energies"] = atomic
            out[f"{name}/{key}/forces"] = forces
            if stress is not None:
                out[f"{name}/{key}/stress"] = stress
            print(f"{name:20s} {key:16s} E = {energy:+.12f} Ha  |F|max = {np.abs(forces).max():.3e}")
    np.savez_compressed(HERE / "pair_potentials.npz", **out)


if __name__ == "__main__":
    main()
