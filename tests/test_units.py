"""pyani.units: the ecosystem's values, with their sources."""

from __future__ import annotations

import pytest
from ase import units as ase_units

from pyani import units


def test_ase_values_exactly():
    """ASE (and TorchANI) convert with CODATA 2014: pyani's eV and Bohr are theirs to the bit."""
    assert ase_units.Hartree == units.HARTREE_TO_EV
    assert ase_units.Bohr == units.BOHR


def test_molar_energies_are_codata_2018():
    hartree_joule, avogadro = 4.3597447222071e-18, 6.02214076e23  # CODATA 2018 (NIST)
    assert pytest.approx(hartree_joule * avogadro / 1e3, rel=1e-15) == units.HARTREE_TO_KJ_PER_MOL
    assert pytest.approx(hartree_joule * avogadro / 4184.0, rel=1e-15) == units.HARTREE_TO_KCAL_PER_MOL
    # ASE's CODATA 2014 constants agree to the precision of the 2014 values (3e-10 relative).
    assert pytest.approx(ase_units.Hartree / (ase_units.kJ / ase_units.mol), rel=1e-9) == units.HARTREE_TO_KJ_PER_MOL
    assert (
        pytest.approx(ase_units.Hartree / (ase_units.kcal / ase_units.mol), rel=1e-9) == units.HARTREE_TO_KCAL_PER_MOL
    )
    # ASE's own CODATA 2018 set derives E_h from other constants: equal to 1e-11 relative
    codata_2018 = ase_units.create_units("2018")
    assert (
        pytest.approx(codata_2018["Hartree"] / (codata_2018["kJ"] / codata_2018["mol"]), rel=1e-10)
        == units.HARTREE_TO_KJ_PER_MOL
    )
