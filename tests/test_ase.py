"""The ASE calculator against real ASE: units, finite differences, caching, and the ASE tools
people use it with (optimisers, dynamics, vibrations, cell filters)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.constraints import FixAtoms
from ase.filters import FrechetCellFilter
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS
from ase.vibrations import Vibrations
from conftest import BACKENDS, get_model, load_reference
from oracles import water_box

import pyani
from pyani.ase import ANICalculator


@pytest.fixture
def model(backend):
    return get_model("ani-1ccx", backend)


def water_box_atoms(per_side: int, seed: int = 7) -> Atoms:
    numbers, positions, cell = water_box(np.random.default_rng(seed), per_side)
    return Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)


def aspirin() -> Atoms:
    ref = load_reference("ani-1ccx", "aspirin")
    return Atoms(numbers=ref["numbers"], positions=ref["positions"])


def slab() -> Atoms:
    atoms = water_box_atoms(2, seed=8)
    atoms.pbc = [True, True, False]
    atoms.cell[2] = [0.0, 0.0, 15.0]  # a volume for the stress; the open direction ignores it
    return atoms


def test_results_are_compute_in_ev(model):
    for atoms, stress in [(molecule("CH3CH2OH"), False), (water_box_atoms(2), True), (slab(), True)]:
        atoms.calc = model.ase()
        cell, pbc = (atoms.cell.array, atoms.pbc) if stress else (None, None)
        want = model.compute(atoms.numbers, atoms.positions, cell, pbc, stress=stress, atomic=True)
        assert atoms.get_potential_energy() == want.energy * units.Hartree
        assert atoms.get_potential_energy(force_consistent=True) == want.energy * units.Hartree
        np.testing.assert_array_equal(atoms.get_forces(), want.forces * units.Hartree)
        np.testing.assert_array_equal(atoms.get_potential_energies(), want.atomic_energies * units.Hartree)
        assert atoms.calc.results["energy_std"] == want.energy_std * units.Hartree
        np.testing.assert_array_equal(atoms.calc.results["member_energies"], want.member_energies * units.Hartree)
        if stress:
            s = want.stress * units.Hartree
            voigt = [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
            np.testing.assert_allclose(atoms.get_stress(), voigt, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(atoms.get_stress(voigt=False), s, atol=1e-12)


@pytest.mark.parametrize("system", ["molecule", "water_box", "slab"])
def test_forces_and_stress_match_ase_finite_differences(model, system):
    atoms = {"molecule": lambda: molecule("CH3CH2OH"), "water_box": lambda: water_box_atoms(2), "slab": slab}[system]()
    atoms.calc = model.ase()
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 0.1
    # float32 networks: energies good to ~3e-6 eV, hence a 3e-3 A step and 2e-3 eV/A
    np.testing.assert_allclose(calculate_numerical_forces(atoms, eps=3e-3), forces, atol=2e-3)
    if system != "molecule":
        stress = atoms.get_stress()
        assert np.abs(stress).max() > 1e-3
        np.testing.assert_allclose(calculate_numerical_stress(atoms, eps=3e-3), stress, atol=2e-5)


def test_stress_of_a_molecule_is_not_implemented(model):
    atoms = molecule("H2O")
    atoms.calc = model.ase()
    with pytest.raises(PropertyNotImplementedError, match="stress needs a periodic system"):
        atoms.get_stress()
    flat = slab()
    flat.cell[2] = 0.0  # periodic in two directions, no volume
    flat.calc = model.ase()
    assert np.isfinite(flat.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="non-zero volume"):
        flat.get_stress()


def test_recomputes_only_when_atoms_change(model):
    atoms = water_box_atoms(2)
    atoms.calc = pyani.load("ani-1ccx", backend=model.backend).ase()
    counter = atoms.calc.model
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_potential_energy()
    assert counter.neighbor_list_builds == 1
    atoms.get_stress()  # not computed yet: one more call, same atoms
    atoms.get_stress()
    atoms.get_forces()
    assert counter.neighbor_list_builds == 2
    atoms.positions[0, 0] += 0.01
    atoms.get_forces()
    atoms.get_potential_energy()
    assert counter.neighbor_list_builds == 3
    atoms.set_cell(atoms.cell * 1.01, scale_atoms=True)
    atoms.get_potential_energy()
    assert counter.neighbor_list_builds == 4
    atoms.set_cell(atoms.cell * 1.01)  # the cell alone
    atoms.get_potential_energy()
    atoms.pbc = [True, True, False]
    atoms.get_potential_energy()
    atoms.numbers[0] = 7
    atoms.get_potential_energy()
    assert counter.neighbor_list_builds == 7
    atoms.set_initial_magnetic_moments(np.ones(len(atoms)))  # ANI has no spin: nothing to redo
    atoms.get_potential_energy()
    assert counter.neighbor_list_builds == 7
    want = model.compute(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc)
    assert atoms.get_potential_energy() == want.energy * units.Hartree


def test_constraints_are_applied_by_ase(model):
    atoms = molecule("CH3CH2OH")
    atoms.set_constraint(FixAtoms([0, 1]))
    atoms.calc = model.ase()
    free = model.compute(atoms.numbers, atoms.positions).forces * units.Hartree
    got = atoms.get_forces()
    np.testing.assert_array_equal(got[:2], 0.0)
    np.testing.assert_array_equal(got[2:], free[2:])
    np.testing.assert_array_equal(atoms.get_forces(apply_constraint=False), free)


def test_construction(backend):
    calc = ANICalculator("ani-1x", backend=backend, skin=0.5)
    assert calc.model.backend == backend and calc.model.skin == 0.5
    model = get_model("ani-1x", backend)
    assert model.ase().model is model
    assert ANICalculator(model).model is model
    with pytest.raises(TypeError, match=r"load options \(backend\) apply to a model name"):
        ANICalculator(model, backend=backend)
    with pytest.raises(ValueError, match="neither a known model"):
        ANICalculator("ani-3000")
    atoms = molecule("CH4")
    atoms.calc = ANICalculator(model)
    with pytest.raises(ValueError, match="lacks"):  # model errors pass through unchanged
        Atoms("SH2", positions=[[0, 0, 0], [1.3, 0, 0], [0, 1.3, 0]], calculator=model.ase()).get_potential_energy()


def test_bfgs_relaxes_aspirin(model):
    atoms = aspirin()
    atoms.calc = model.ase()
    start = atoms.get_potential_energy()
    optimizer = BFGS(atoms, logfile=None)
    assert optimizer.run(fmax=0.01, steps=300)
    assert np.linalg.norm(atoms.get_forces(), axis=1).max() < 0.01
    assert atoms.get_potential_energy() < start - 0.01


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_nve_conserves_energy(backend):
    """200 steps of 0.5 fs from a 64-water box at rest: the box heats to ~500 K as it leaves
    its grid, and the total energy stays within 3e-4 eV/atom (1% wrong forces: 7e-4).
    bench/bridges.py --nve runs 2 ps after 1 ps of Langevin at 300 K, with the work of the
    forces along the worst step: Verlet's error on hot O-H stretches, not the forces', sets the
    drift at 0.5 fs (README, Speed)."""
    atoms = water_box_atoms(4, seed=0)
    atoms.calc = get_model("ani-1ccx", backend).ase()
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    energies = [atoms.get_total_energy()]
    for _ in range(200):
        dynamics.run(1)
        energies.append(atoms.get_total_energy())
    per_atom = (np.array(energies) - energies[0]) / len(atoms)
    assert atoms.get_temperature() > 300
    assert np.abs(per_atom).max() < 3e-4
    assert abs(per_atom[-20:].mean()) < 1.5e-4


def test_vibrations_of_water(model, tmp_path):
    atoms = molecule("H2O")
    atoms.calc = model.ase()
    BFGS(atoms, logfile=None).run(fmax=1e-3)
    vibrations = Vibrations(atoms, name=str(tmp_path / "vib"), delta=0.01)
    vibrations.run()
    wavenumbers = np.sort(np.abs(vibrations.get_frequencies()))  # cm^-1
    assert np.all(wavenumbers[:6] < 100)  # translations and rotations
    bend, stretch1, stretch2 = wavenumbers[6:]
    assert 1500 < bend < 1800 and 3600 < stretch1 < stretch2 < 4100


def test_frechet_cell_filter_relaxes_a_box(model):
    atoms = water_box_atoms(2, seed=9)
    atoms.calc = model.ase()
    start_energy, start_stress = atoms.get_potential_energy(), np.abs(atoms.get_stress()).max()
    cell = atoms.cell.array.copy()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=0.05, steps=15)
    assert atoms.get_potential_energy() < start_energy - 0.1
    assert np.abs(atoms.cell.array - cell).max() > 0.02  # the cell moved (Angstrom)
    assert np.abs(atoms.get_stress()).max() < 0.5 * start_stress
