"""A minimal ASE calculator over a pyani Model (eV, eV/A, eV/A^3), for the commands only.

Private stand-in for pyani.ase.ANICalculator: replace its one use in ``calculator()`` when
that lands.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from pyani.units import HARTREE_TO_EV


class ModelCalculator(Calculator):
    """Energy, forces and (periodic only) stress of a pyani Model, in ASE units."""

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        periodic = bool(np.any(atoms.pbc))
        want_stress = "stress" in properties
        if want_stress and not periodic:
            raise ValueError("stress needs a periodic structure (a cell and pbc)")
        result = self.model.compute(
            atoms.numbers,
            atoms.positions,
            atoms.cell[:] if periodic else None,
            atoms.pbc if periodic else None,
            forces=True,
            stress=want_stress,
        )
        energy = result.energy * HARTREE_TO_EV
        self.results = {"energy": energy, "free_energy": energy, "forces": result.forces * HARTREE_TO_EV}
        if want_stress:
            s = result.stress * HARTREE_TO_EV
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def calculator(model) -> Calculator:
    """The ASE calculator the commands use."""
    return ModelCalculator(model)
