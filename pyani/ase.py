"""ASE calculator: pyani models inside ASE's optimisers, dynamics, filters and tools.

>>> from pyani.ase import ANICalculator
>>> atoms.calc = ANICalculator("ani-1ccx")      # or atoms.calc = pyani.load("ani-1ccx").ase()
>>> atoms.get_potential_energy()                 # eV
>>> atoms.calc.results["energy_std"]             # ensemble spread, eV

eV and Angstrom at this boundary (ASE's units); Hartree inside. Needs the ``ase`` package
(``pip install pyani[ase]``).
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from . import Model, _inputs, load
from .units import HARTREE_TO_EV


class ANICalculator(Calculator):
    """An ASE calculator running a pyani model.

    model: a model name ("ani-1ccx", "ani-1x"), a model file (.onnx / .info), or a loaded
        ``pyani.Model``.
    load_kwargs: passed to ``pyani.load`` (backend, device, n_threads, skin) when model is
        not already loaded; ``skin=1.0`` makes molecular dynamics rebuild fewer neighbour lists.

    Results (ASE units): energy and free_energy (eV), forces (eV/Angstrom), stress (Voigt
    xx yy zz yz xz xy, eV/Angstrom^3, ASE's sign; periodic systems only), energies (per atom,
    eV). Besides those, ``results`` holds the ensemble's ``energy_std`` (eV) and
    ``member_energies`` (eV, one per network of the ensemble) of the last calculation.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress", "energies")
    name = "pyani"

    def __init__(self, model: str | Model = "ani-1ccx", *, atoms=None, **load_kwargs):
        if isinstance(model, Model):
            if load_kwargs:
                names = ", ".join(sorted(load_kwargs))
                raise TypeError(f"load options ({names}) apply to a model name, not to an already loaded model")
            self.model = model
        else:
            self.model = load(model, **load_kwargs)
        super().__init__(atoms=atoms)

    def check_state(self, atoms, tol=1e-15):
        """What changed since the last calculation, in ASE's names. ASE's own check (allclose
        on eight arrays, twice per MD step) took 60-190 us, a tenth of an aspirin step; this
        compares only what the energy depends on, exactly (a tiny move recomputes)."""
        old = self.atoms
        if old is None:
            return list(all_changes)
        changes = []
        if not np.array_equal(old.numbers, atoms.numbers):
            changes.append("numbers")
        if not np.array_equal(old.positions, atoms.positions):
            changes.append("positions")
        if not np.array_equal(old.cell.array, atoms.cell.array):
            changes.append("cell")
        if not np.array_equal(old.pbc, atoms.pbc):
            changes.append("pbc")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Fill ``self.results`` for `atoms` (ASE calls this when the atoms changed)."""
        if atoms is not None and (self.atoms is None or self.check_state(atoms)):
            self.atoms = atoms.copy()  # (get_property has made this copy already)
        numbers, positions, cell, pbc = _inputs.from_atoms(self.atoms, "atoms", constraints_ok=True)
        want_stress = "stress" in properties
        if want_stress and (cell is None or abs(np.linalg.det(cell)) < 1e-9):
            raise PropertyNotImplementedError(
                "stress needs a periodic system whose cell has a non-zero volume (set atoms.cell and atoms.pbc)"
            )
        result = self.model.compute(
            numbers, positions, cell, pbc, forces=True, stress=want_stress, atomic="energies" in properties
        )
        energy = result.energy * HARTREE_TO_EV
        self.results.update(
            energy=energy,
            free_energy=energy,
            forces=result.forces * HARTREE_TO_EV,
            energy_std=result.energy_std * HARTREE_TO_EV,
            member_energies=result.member_energies * HARTREE_TO_EV,
        )
        if want_stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(result.stress * HARTREE_TO_EV)
        if result.atomic_energies is not None:
            self.results["energies"] = result.atomic_energies * HARTREE_TO_EV
