"""Reference Hessians and harmonic frequencies from float64 TorchANI 2.9 (autograd Hessians).

    eval "$(bash ../shared/tools/setup_reference_env.sh)"
    $REF_PYTHON tests/data/make_vibrations.py

Each molecule is first relaxed with TorchANI itself (float64, ASE's BFGS to fmax 1e-6 eV/A),
so that the frequencies are those of a minimum; then the Hessian comes from double autograd
(torchani.grad.energies_forces_and_hessians) and the frequencies from
torchani.grad.vibrational_analysis (no projection of translations and rotations). Writes
tests/data/vibrations/<model>-<molecule>.npz: numbers, positions (A), masses (amu, TorchANI's
table), energy (Ha), hessian [3N, 3N] (Ha/A^2), frequencies [3N] (cm^-1, imaginary negative,
in eigenvalue order), reduced_masses (amu), force_constants (mDyne/A).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torchani
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.optimize import BFGS
from make_fixtures import ASPIRIN, INFO

torch.set_default_dtype(torch.float64)
HERE = Path(__file__).resolve().parent
EV = 27.211386024367243  # ase.units.Hartree (CODATA 2014), as TorchANI's HARTREE_TO_EV

MOLECULES = {
    "ani-1ccx": ["H2O", "CH4", "NH3", "H2CO", "CH3OH", "CH3CH2OH", "CH3CN", "CH3COOH", "C6H6", "aspirin"],
    "ani-2x": ["CH3SH", "CH3Cl", "H2O"],
}


def load(name):
    data = Path(os.environ["TORCHANI_DATA_DIR"]) / "Neurochem" / INFO[name]
    return torchani.neurochem.load_model_from_info_file(data).double()


def structure(name):
    if name == "aspirin":
        return Atoms(numbers=ASPIRIN[0], positions=ASPIRIN[1])
    return molecule(name)


class TorchANICalculator(Calculator):
    """Float64 TorchANI energy and forces in eV for ASE's optimiser."""

    implemented_properties = ("energy", "forces")

    def __init__(self, model):
        super().__init__()
        self.model = model

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        species = torch.tensor(atoms.numbers).unsqueeze(0)
        coords = torch.tensor(atoms.positions).unsqueeze(0).requires_grad_(True)
        energy = self.model((species, coords)).energies
        forces = -torch.autograd.grad(energy.sum(), coords)[0]
        self.results = {"energy": energy.item() * EV, "forces": forces[0].numpy() * EV}


def main():
    out = HERE / "vibrations"
    out.mkdir(exist_ok=True)
    for name, molecules in MOLECULES.items():
        model = load(name)
        for mol in molecules:
            atoms = structure(mol)
            atoms.calc = TorchANICalculator(model)
            BFGS(atoms, logfile=None).run(fmax=1e-6, steps=5000)
            fmax = np.abs(atoms.get_forces()).max()
            species = torch.tensor(atoms.numbers).unsqueeze(0)
            coords = torch.tensor(atoms.positions).unsqueeze(0).requires_grad_(True)
            energies, _, hessians = torchani.grad.energies_forces_and_hessians(model, species, coords)
            masses = torchani.utils.atomic_numbers_to_masses(species, dtype=torch.float64)
            vib = torchani.grad.vibrational_analysis(masses, hessians, mode_kind="mdu")
            np.savez(
                out / f"{name}-{mol}.npz",
                numbers=atoms.numbers,
                positions=atoms.positions,
                masses=masses[0].numpy(),
                energy=energies.item(),
                hessian=hessians[0].detach().numpy(),
                frequencies=vib.freqs.detach().numpy(),
                reduced_masses=vib.rmasses.detach().numpy(),
                force_constants=vib.fconstants.detach().numpy(),
            )
            print(f"{name} {mol}: fmax {fmax:.1e} eV/A, freqs {np.round(vib.freqs.detach().numpy()[-3:], 1)}")


if __name__ == "__main__":
    main()
