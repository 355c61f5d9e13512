"""Alanine dipeptide (ACE-ALA-NME) built from internal coordinates, for the OpenMM tests and bench.

Heavy atoms come from textbook bond lengths and angles; OpenMM's Modeller adds the hydrogens
and Amber14 relaxes the molecule, so no structure file is needed.
"""

from __future__ import annotations

import random

import numpy as np
import openmm
import openmm.app as app
from openmm import unit

FORCE_FIELD_FILES = ("amber14-all.xml", "amber14/tip3p.xml")


def _place(a, b, c, bond, angle, torsion):
    """The point d with |cd| = bond (A), angle bcd = angle and dihedral abcd = torsion (degrees)."""
    angle, torsion = np.radians(angle), np.radians(torsion)
    bc = (c - b) / np.linalg.norm(c - b)
    normal = np.cross(b - a, bc)
    normal /= np.linalg.norm(normal)
    frame = np.array([bc, np.cross(normal, bc), normal]).T
    local = bond * np.array([-np.cos(angle), np.sin(angle) * np.cos(torsion), np.sin(angle) * np.sin(torsion)])
    return c + frame @ local


def _heavy_atoms(phi=-75.0, psi=145.0):
    """(residue, atom name, element, position A) of the 10 heavy atoms, backbone angles phi, psi."""
    ch3 = np.zeros(3)
    c0 = np.array([1.52, 0.0, 0.0])
    n1 = _place(np.array([0.0, 1.0, 0.0]), ch3, c0, 1.33, 116.0, 180.0)
    ca = _place(ch3, c0, n1, 1.46, 121.9, 180.0)
    c1 = _place(c0, n1, ca, 1.52, 111.0, phi)
    n2 = _place(n1, ca, c1, 1.33, 116.0, psi)
    ch3_2 = _place(ca, c1, n2, 1.46, 121.9, 180.0)
    return [
        ("ACE", "CH3", "C", ch3),
        ("ACE", "C", "C", c0),
        ("ACE", "O", "O", _place(ca, n1, c0, 1.23, 123.0, 0.0)),
        ("ALA", "N", "N", n1),
        ("ALA", "CA", "C", ca),
        ("ALA", "CB", "C", _place(c1, n1, ca, 1.53, 110.5, -122.0)),
        ("ALA", "C", "C", c1),
        ("ALA", "O", "O", _place(ch3_2, n2, c1, 1.23, 123.0, 0.0)),
        ("NME", "N", "N", n2),
        ("NME", "C", "C", ch3_2),  # hydrogens.xml calls the NME methyl carbon "C"
    ]


BONDS = [(0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (4, 6), (6, 7), (6, 8), (8, 9)]


def force_field() -> app.ForceField:
    return app.ForceField(*FORCE_FIELD_FILES)


def alanine_dipeptide():
    """ACE-ALA-NME in vacuum, 22 atoms: (Topology, positions Quantity in nm), relaxed with Amber14."""
    topology = app.Topology()
    chain = topology.addChain()
    residues, atoms, positions = {}, [], []
    for residue_name, name, symbol, position in _heavy_atoms():
        if residue_name not in residues:
            residues[residue_name] = topology.addResidue(residue_name, chain)
        atoms.append(topology.addAtom(name, app.Element.getBySymbol(symbol), residues[residue_name]))
        positions.append(position / 10.0)
    for i, j in BONDS:
        topology.addBond(atoms[i], atoms[j])
    ff = force_field()
    modeller = app.Modeller(topology, positions * unit.nanometer)
    # addHydrogens starts some hydrogens at random (Python's random): seeded, the geometry and
    # every test on it are the same in every run
    state = random.getstate()
    random.seed(0)
    try:
        modeller.addHydrogens(ff)
    finally:
        random.setstate(state)
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff, constraints=None)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 500)
    relaxed = context.getState(getPositions=True).getPositions(asNumpy=True)
    return modeller.topology, relaxed


def solvated_dipeptide(padding_nm=0.6):
    """Alanine dipeptide in a TIP3P box (Modeller.addSolvent): (Topology, positions nm, dipeptide atom indices)."""
    topology, positions = alanine_dipeptide()
    modeller = app.Modeller(topology, positions)
    modeller.addSolvent(force_field(), model="tip3p", padding=padding_nm * unit.nanometer)
    return modeller.topology, modeller.positions, list(range(topology.getNumAtoms()))
