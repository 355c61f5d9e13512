"""pyani inside OpenMM through openmm-ml (pyani.openmm): energies and forces equal pyani's in
OpenMM units, periodic boxes, ML/MM mixed systems, dynamics, serialization and bad inputs.

Runs real OpenMM (Reference platform for comparisons in double precision). Needs
``pip install 'pyani-nn[openmm]'`` and the entry points of an installed pyani; skipped when openmm-ml is
missing unless PYANI_REQUIRE_OPENMM is set (CI sets it).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import BACKENDS, get_model, require_ani2x_files
from oracles import water_box

if importlib.util.find_spec("openmmml") is None:
    if os.environ.get("PYANI_REQUIRE_OPENMM"):
        raise ImportError("PYANI_REQUIRE_OPENMM is set but openmm-ml is not installed: pip install 'pyani-nn[openmm]'")
    pytest.skip("openmm-ml not installed (pip install 'pyani-nn[openmm]')", allow_module_level=True)

import dipeptide
import openmm
import openmm.app as app
from openmm import unit
from openmmml import MLPotential

from pyani.openmm import HARTREE_TO_KJ_PER_MOL, PyaniPotentialImplFactory

KJ = unit.kilojoule_per_mole
KJ_NM = unit.kilojoule_per_mole / unit.nanometer
#: the backend of tests that run one (pyani.load's "auto" picks the same)
DEFAULT_BACKEND = BACKENDS[0]
#: kJ/mol/nm per Hartree/Angstrom
FORCE_UNIT = HARTREE_TO_KJ_PER_MOL * 10.0


def reference_platform():
    return openmm.Platform.getPlatformByName("Reference")


def evaluate(system, positions_nm, box_nm=None, groups=-1):
    """(energy kJ/mol, forces kJ/mol/nm) of a System on the Reference platform."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), reference_platform())
    if box_nm is not None:
        context.setPeriodicBoxVectors(*box_nm)
    context.setPositions(positions_nm)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(KJ_NM)


def topology_of(numbers, residue_size, cell_angstrom=None):
    """A Topology of consecutive residues of ``residue_size`` atoms each (elements only)."""
    topology = app.Topology()
    chain = topology.addChain()
    for start in range(0, len(numbers), residue_size):
        residue = topology.addResidue("MOL", chain)
        for z in numbers[start : start + residue_size]:
            element = app.Element.getByAtomicNumber(int(z))
            topology.addAtom(element.symbol, element, residue)
    if cell_angstrom is not None:
        topology.setPeriodicBoxVectors(np.asarray(cell_angstrom) / 10.0 * unit.nanometer)
    return topology


def numbers_of(topology):
    return np.array([atom.element.atomic_number for atom in topology.atoms()])


def test_hartree_constant_is_codata_2018():
    # 1 Hartree = 4.3597447222071e-18 J (CODATA 2018), times Avogadro's number, in kJ/mol.
    codata_2018 = 4.3597447222071e-18 * 6.02214076e23 / 1000
    assert abs(HARTREE_TO_KJ_PER_MOL - codata_2018) < 1e-9


def test_entry_points_register_pyani():
    """openmm-ml found pyani's potentials through the installed entry points (reinstall if not)."""
    for name in ("pyani", "pyani-ani1ccx", "pyani-ani1x", "pyani-ani2x"):
        assert isinstance(MLPotential._implFactories.get(name), PyaniPotentialImplFactory), name


NO_TORCH_SCRIPT = """
import sys

class RecordTorch:  # records any attempt to import torch, installed or not
    attempts = []
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchani"):
            self.attempts.append(name)
        return None

sys.meta_path.insert(0, RecordTorch())
import numpy as np, openmm
from openmm import app
from openmmml import MLPotential
topology = app.Topology()
residue = topology.addResidue("HOH", topology.addChain())
for name, symbol in (("O", "O"), ("H1", "H"), ("H2", "H")):
    topology.addAtom(name, app.Element.getBySymbol(symbol), residue)
system = MLPotential("pyani-ani1ccx").createSystem(topology)
context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
context.setPositions(np.array([[0, 0, 0], [0.0957, 0, 0], [-0.024, 0.0927, 0]]))
print(context.getState(getEnergy=True).getPotentialEnergy())
print(RecordTorch.attempts)
"""


@pytest.mark.parametrize("first", ["pyani.openmm", "openmmml", "pyani._openmm_entry"])
def test_any_import_order(first, tmp_path):
    """openmm-ml loads the entry points while it is being imported: importing pyani.openmm
    first must not make that a circular import."""
    script = f"import {first}\nfrom openmmml import MLPotential\nMLPotential('pyani-ani1x')\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.split() == ["ok"], out.stderr


def test_no_torch_anywhere(tmp_path):
    """openmm-ml + pyani: making a System and computing an energy never tries to import torch."""
    out = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"


# ---------------------------------------------------------------------------------------------
# createSystem: the System's energy and forces are pyani's, in kJ/mol and kJ/mol/nm


@pytest.mark.parametrize("skew", [False, True], ids=["cubic", "triclinic"])
def test_periodic_water_box_equals_pyani(backend, skew):
    numbers, positions, cell = water_box(np.random.default_rng(7), 3)
    if skew:  # a triclinic box in OpenMM's reduced form
        length = cell[0, 0]
        cell = np.array([[length, 0, 0], [0.2 * length, length, 0], [-0.1 * length, 0.15 * length, length]])
    potential = MLPotential("pyani-ani1ccx", backend=backend, n_threads=1)
    system = potential.createSystem(topology_of(numbers, 3, cell))
    assert system.usesPeriodicBoundaryConditions()
    # positions several boxes away from the cell: OpenMM may pass them unwrapped
    shifted = positions + np.array([2, -3, 1]) @ cell
    energy, forces = evaluate(system, shifted / 10.0, cell / 10.0)

    expected = get_model("ani-1ccx", backend).compute(numbers, positions, cell)
    assert energy == pytest.approx(expected.energy * HARTREE_TO_KJ_PER_MOL, rel=1e-12)
    np.testing.assert_allclose(forces, expected.forces * FORCE_UNIT, rtol=0, atol=1e-6)
    # the box really is periodic: the molecule alone would differ
    alone = get_model("ani-1ccx", backend).compute(numbers, positions)
    assert abs(alone.energy - expected.energy) * HARTREE_TO_KJ_PER_MOL > 1.0


def test_box_from_the_state_not_the_topology(backend):
    """A barostat changes the box: the force reads it from each state."""
    numbers, positions, cell = water_box(np.random.default_rng(3), 3)
    system = MLPotential("pyani-ani1x", backend=backend, n_threads=1).createSystem(topology_of(numbers, 3, cell))
    bigger = cell * 1.05
    energy, forces = evaluate(system, positions / 10.0, bigger / 10.0)
    expected = get_model("ani-1x", backend).compute(numbers, positions, bigger)
    assert energy == pytest.approx(expected.energy * HARTREE_TO_KJ_PER_MOL, rel=1e-12)
    np.testing.assert_allclose(forces, expected.forces * FORCE_UNIT, rtol=0, atol=1e-6)


def test_dipeptide_in_vacuum_equals_pyani(backend):
    topology, positions = dipeptide.alanine_dipeptide()
    system = MLPotential("pyani", model="ani-1ccx", backend=backend, n_threads=1).createSystem(topology)
    assert not system.usesPeriodicBoundaryConditions()
    energy, forces = evaluate(system, positions)
    expected = get_model("ani-1ccx", backend).compute(numbers_of(topology), np.array(positions) * 10.0)
    assert energy == pytest.approx(expected.energy * HARTREE_TO_KJ_PER_MOL, rel=1e-12)
    np.testing.assert_allclose(forces, expected.forces * FORCE_UNIT, rtol=0, atol=1e-6)


def test_ani2x_by_name():
    require_ani2x_files()
    # chloromethanethiol, ClCH2SH: two elements only ANI-2x knows
    numbers = np.array([17, 6, 16, 1, 1, 1])
    positions = np.array(
        [[1.77, 0, 0], [0, 0, 0], [-0.6, 1.7, 0], [-0.36, -0.52, 0.89], [-0.36, -0.52, -0.89], [-1.9, 1.5, 0.1]]
    )
    system = MLPotential("pyani-ani2x", backend=DEFAULT_BACKEND, n_threads=1).createSystem(
        topology_of(numbers, 6)
    )
    energy, forces = evaluate(system, positions / 10.0)
    expected = get_model("ani-2x", DEFAULT_BACKEND).compute(numbers, positions)
    assert energy == pytest.approx(expected.energy * HARTREE_TO_KJ_PER_MOL, rel=1e-12)
    np.testing.assert_allclose(forces, expected.forces * FORCE_UNIT, rtol=0, atol=1e-6)


def test_forces_are_minus_the_energy_gradient_in_openmm_units():
    """The derivative of the System's energy (kJ/mol) along its force (kJ/mol/nm), by central
    differences: catches a wrong unit factor at the boundary (the kernels have their own tests)."""
    topology, positions = dipeptide.alanine_dipeptide()
    # float64 networks: the float32 ones round a total of 1.3e6 kJ/mol to ~0.1 kJ/mol
    system = MLPotential("pyani-ani1ccx", n_threads=1, precision="float64").createSystem(topology)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), reference_platform())
    x = np.array(positions.value_in_unit(unit.nanometer))
    context.setPositions(x)
    forces = context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(KJ_NM)
    direction = forces / np.linalg.norm(forces)
    h = 1e-5  # nm along a unit vector of all coordinates
    energies = []
    for sign in (1, -1):
        context.setPositions(x + sign * h * direction)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ))
    assert (energies[0] - energies[1]) / (2 * h) == pytest.approx(-np.linalg.norm(forces), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# createMixedSystem (ML/MM, mechanical embedding)


@pytest.fixture(scope="module")
def solvated():
    return dipeptide.solvated_dipeptide(padding_nm=0.8)


def mm_system(topology, nonbonded):
    kwargs = {"nonbondedMethod": nonbonded, "constraints": None, "rigidWater": True}
    if nonbonded == app.PME:
        kwargs.update(nonbondedCutoff=0.8 * unit.nanometer, ewaldErrorTolerance=1e-6)
    return dipeptide.force_field().createSystem(topology, **kwargs)


@pytest.mark.parametrize("nonbonded", [app.NoCutoff, app.PME], ids=["NoCutoff", "PME"])
def test_mixed_system_replaces_the_ligand_internal_terms(solvated, backend, nonbonded):
    """E(mixed) = E_MM(all) - E_MM(ligand alone) + E_pyani(ligand); forces likewise."""
    topology, positions, ligand = solvated
    full = mm_system(topology, nonbonded)
    potential = MLPotential("pyani-ani1ccx", backend=backend, n_threads=1)
    mixed = potential.createMixedSystem(topology, full, ligand, forceGroup=1)
    box = topology.getPeriodicBoxVectors()

    x = np.array(positions.value_in_unit(unit.nanometer))
    ml_energy, ml_forces = evaluate(mixed, x, box, groups={1})
    expected = get_model("ani-1ccx", backend).compute(
        numbers_of(topology)[ligand],
        x[ligand] * 10.0,
        np.array(box.value_in_unit(unit.nanometer)) * 10.0 if nonbonded == app.PME else None,
    )
    assert ml_energy == pytest.approx(expected.energy * HARTREE_TO_KJ_PER_MOL, rel=1e-12)
    np.testing.assert_allclose(ml_forces[ligand], expected.forces * FORCE_UNIT, rtol=0, atol=1e-6)
    assert not np.any(np.delete(ml_forces, ligand, axis=0))

    ligand_topology = app.Modeller(topology, positions)
    ligand_topology.delete([r for r in topology.residues() if r.name == "HOH"])
    ligand_alone = mm_system(ligand_topology.topology, app.NoCutoff)
    total, total_forces = evaluate(mixed, x, box)
    mm_all, mm_all_forces = evaluate(full, x, box)
    mm_ligand, mm_ligand_forces = evaluate(ligand_alone, x[ligand])
    want = mm_all - mm_ligand + ml_energy
    want_forces = mm_all_forces.copy()
    want_forces[ligand] += ml_forces[ligand] - mm_ligand_forces
    assert total == pytest.approx(want, abs=1e-6)
    np.testing.assert_allclose(total_forces, want_forces, rtol=0, atol=1e-6)


def test_mixed_system_with_link_atoms(solvated):
    """ML region = the ALA residue only: openmm-ml caps the cut bonds with hydrogen virtual
    sites, which pyani sees as hydrogens at the sites' positions."""
    topology, positions, _ = solvated
    ala = [atom.index for atom in topology.atoms() if atom.residue.name == "ALA"]
    mixed = MLPotential("pyani-ani1ccx", backend=DEFAULT_BACKEND, n_threads=1).createMixedSystem(
        topology, mm_system(topology, app.NoCutoff), ala, forceGroup=1
    )
    assert mixed.getNumParticles() == topology.getNumAtoms() + 2  # two caps
    caps = [mixed.getNumParticles() - 2, mixed.getNumParticles() - 1]
    assert all(mixed.isVirtualSite(i) for i in caps)

    context = openmm.Context(mixed, openmm.VerletIntegrator(0.001), reference_platform())
    context.setPositions(list(positions) + [openmm.Vec3(0, 0, 0)] * 2)
    context.computeVirtualSites()
    state = context.getState(getEnergy=True, getPositions=True, groups={1})
    x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    region = ala + caps
    expected = get_model("ani-1ccx", DEFAULT_BACKEND).compute(
        [*numbers_of(topology)[ala], 1, 1],
        x[region] * 10.0,
        np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)) * 10.0,
    )
    assert state.getPotentialEnergy().value_in_unit(KJ) == pytest.approx(
        expected.energy * HARTREE_TO_KJ_PER_MOL, rel=1e-12
    )


def test_interpolated_mixed_system(solvated):
    """interpolate=True: lambda_interpolate = 1 is the mixed system, 0 the MM one."""
    topology, positions, ligand = solvated
    full = mm_system(topology, app.NoCutoff)
    potential = MLPotential("pyani-ani1ccx", n_threads=1)
    mixed = potential.createMixedSystem(topology, full, ligand)
    interpolated = potential.createMixedSystem(topology, full, ligand, interpolate=True)
    context = openmm.Context(interpolated, openmm.VerletIntegrator(0.001), reference_platform())
    context.setPositions(positions)
    energies = {}
    for value in (0.0, 1.0):
        context.setParameter("lambda_interpolate", value)
        energies[value] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ)
    assert energies[1.0] == pytest.approx(evaluate(mixed, positions)[0], abs=1e-4)
    assert energies[0.0] == pytest.approx(evaluate(full, positions)[0], abs=1e-4)


# ---------------------------------------------------------------------------------------------
# dynamics, copies, serialization


def test_langevin_dynamics_of_the_dipeptide():
    """200 Langevin steps (the bench runs 1000): finite energies, bonds intact, a sane temperature."""
    topology, positions = dipeptide.alanine_dipeptide()
    system = MLPotential("pyani-ani1ccx", backend=DEFAULT_BACKEND, n_threads=1, skin=1.0).createSystem(topology)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 0.5 * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    cpu = openmm.Platform.getPlatformByName("CPU")
    simulation = app.Simulation(topology, system, integrator, cpu, {"Threads": "1"})
    simulation.context.setPositions(positions)
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    simulation.step(200)
    state = simulation.context.getState(getEnergy=True, getPositions=True, getForces=True)
    x = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    energy = state.getPotentialEnergy().value_in_unit(KJ)

    # the Verlet list (skin 1 A) gives the energy of a fresh list at the final positions
    fresh = get_model("ani-1ccx", DEFAULT_BACKEND).compute(numbers_of(topology), x)
    assert energy == pytest.approx(fresh.energy * HARTREE_TO_KJ_PER_MOL, rel=1e-12)
    bonds = np.array([np.linalg.norm(x[b.atom1.index] - x[b.atom2.index]) for b in topology.bonds()])
    assert bonds.min() > 0.85 and bonds.max() < 1.75, bonds
    kinetic = state.getKineticEnergy().value_in_unit(KJ)
    temperature = 2 * kinetic / (3 * len(x) - 3) / (unit.MOLAR_GAS_CONSTANT_R.value_in_unit(KJ / unit.kelvin))
    assert 100 < temperature < 600


def test_verlet_dynamics_conserves_energy():
    """NVE: OpenMM integrating pyani's forces conserves pyani's energy, with the error of the
    integrator falling as dt^2 (forces consistent with the energy in OpenMM's units)."""
    topology, positions = dipeptide.alanine_dipeptide()
    system = MLPotential("pyani-ani1ccx", n_threads=1).createSystem(topology, removeCMMotion=False)
    spreads = []
    for dt in (0.5, 0.25):  # fs, over the same 25 fs
        context = openmm.Context(system, openmm.VerletIntegrator(dt * unit.femtosecond), reference_platform())
        context.setPositions(positions)
        context.setVelocitiesToTemperature(300 * unit.kelvin, 2)
        totals = []
        for _ in range(10):
            context.getIntegrator().step(round(2.5 / dt))
            state = context.getState(getEnergy=True)
            totals.append((state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(KJ))
        spreads.append(np.ptp(totals))
    assert spreads[1] < 0.1  # kJ/mol, with ~50 kJ/mol of kinetic energy
    assert 2.5 < spreads[0] / spreads[1] < 6


def test_systems_copy_and_serialize(tmp_path):
    """OpenMM pickles the force's function to copy or save a System: the copy reloads the model."""
    topology, positions = dipeptide.alanine_dipeptide()
    system = MLPotential("pyani-ani1x", n_threads=1, backend=DEFAULT_BACKEND).createSystem(topology)
    energy = evaluate(system, positions)[0]
    assert evaluate(copy.deepcopy(system), positions)[0] == energy
    path = tmp_path / "system.xml"
    path.write_text(openmm.XmlSerializer.serialize(system))
    assert evaluate(openmm.XmlSerializer.deserialize(path.read_text()), positions)[0] == energy


# ---------------------------------------------------------------------------------------------
# bad inputs: clear errors when the System is made, naming the problem


def test_element_the_model_lacks_is_named_at_create_system():
    numbers = np.array([6, 17, 1, 1, 1])  # CH3Cl: ANI-1ccx has no chlorine
    with pytest.raises(ValueError, match=r"atom 1 .* is Cl, an element the model ani-1ccx lacks \(it knows H, C, N, O"):
        MLPotential("pyani-ani1ccx").createSystem(topology_of(numbers, 5))


def test_element_outside_the_ml_region_is_fine():
    """Only ML atoms need elements the model knows (here a chloride ion in the MM region)."""
    topology = topology_of(np.array([8, 1, 1, 17]), 3)
    system = openmm.System()
    for _ in range(4):
        system.addParticle(1.0)
    mixed = MLPotential("pyani-ani1ccx").createMixedSystem(topology, system, [0, 1, 2])
    with pytest.raises(ValueError, match="Cl"):
        MLPotential("pyani-ani1ccx").createMixedSystem(topology, system, [0, 1, 2, 3])
    assert mixed.getNumForces() == 1


def test_bad_atom_subsets():
    topology = topology_of(np.array([8, 1, 1, 8, 1, 1]), 3)
    system = openmm.System()
    for _ in range(6):
        system.addParticle(1.0)
    potential = MLPotential("pyani-ani1ccx")
    for atoms, message in [
        ([0, 1, 6], "index 6 is not an atom"),
        ([-1, 0], "index -1"),
        ([0, 1, 1], "atom 1 is listed"),
    ]:
        with pytest.raises(ValueError, match=message):
            potential.createMixedSystem(topology, system, atoms, removeConstraints=False)


def test_atom_without_element():
    topology = topology_of(np.array([8, 1, 1]), 3)
    atom = list(topology.atoms())[2]
    atom.element = None
    with pytest.raises(ValueError, match=r"atom 2 .* has no element"):
        MLPotential("pyani-ani1ccx").createSystem(topology)


def test_model_name_typos():
    with pytest.raises(ValueError, match=r"MLPotential\('pyani'\).*'ani-1cx' is neither a known model"):
        MLPotential("pyani", model="ani-1cx")
    with pytest.raises(FileNotFoundError, match="no such file"):
        MLPotential("pyani", model="/nonexistent/ani.onnx")
    with pytest.raises(KeyError, match="pyani-ani1cx"):  # openmm-ml's own lookup of the potential name
        MLPotential("pyani-ani1cx")


def test_missing_or_misplaced_arguments():
    with pytest.raises(ValueError, match=r"MLPotential\('pyani'\) needs model="):
        MLPotential("pyani")
    with pytest.raises(ValueError, match="takes no model="):
        MLPotential("pyani-ani1x", model="ani-1ccx")
    with pytest.raises(ValueError, match="takes no model="):
        MLPotential("pyani-ani2x", model="ani-1x")
    with pytest.raises(TypeError, match=r"unknown argument.*n_thread"):
        MLPotential("pyani-ani1ccx", n_thread=1)
    with pytest.raises(ValueError, match="backend"):
        MLPotential("pyani-ani1ccx", backend="fortran")
    with pytest.raises(TypeError, match=r"skin: pass to MLPotential"):
        MLPotential("pyani-ani1ccx").createSystem(topology_of(np.array([8, 1, 1]), 3), skin=1.0)


def test_bad_positions_reach_the_caller_as_an_error():
    """Two atoms at one place: pyani's ValueError surfaces through OpenMM, no NaN."""
    system = MLPotential("pyani-ani1ccx").createSystem(topology_of(np.array([8, 1, 1]), 3))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), reference_platform())
    context.setPositions(np.zeros((3, 3)))
    with pytest.raises(Exception, match="same place"):
        context.getState(getEnergy=True)
