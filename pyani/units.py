"""Unit conversions for the edges of pyani (inside: Hartree and Angstrom).

>>> from pyani import units
>>> energy_ev = result.energy * units.HARTREE_TO_EV
>>> forces_ev_per_angstrom = result.forces * units.HARTREE_TO_EV
"""

from __future__ import annotations

#: eV per Hartree: ``ase.units.Hartree`` (from CODATA 2014), the value ASE and TorchANI
#: (``torchani.units.HARTREE_TO_EV``) both use, so that pyani's eV match theirs to the last
#: digit. CODATA 2018 gives 27.211386245988 (8e-9 relative more).
HARTREE_TO_EV = 27.211386024367243

#: kJ/mol per Hartree, CODATA 2018 (NIST): E_h = 4.3597447222071e-18 J times the exact
#: N_A = 6.02214076e23 /mol, over 1000. OpenMM's unit system uses this value.
HARTREE_TO_KJ_PER_MOL = 2625.4996394798254

#: kcal/mol per Hartree, CODATA 2018 as above, with the thermochemical calorie (4.184 J).
HARTREE_TO_KCAL_PER_MOL = 627.5094740630558

#: The Bohr radius in Angstrom: ``ase.units.Bohr`` (from CODATA 2014), for the same reason as
#: HARTREE_TO_EV; i-PI speaks Bohr. CODATA 2018 gives 0.529177210903.
BOHR = 0.5291772105638411
