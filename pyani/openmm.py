"""OpenMM through openmm-ml: pyani models as ``MLPotential``s, evaluated by ``openmm.PythonForce``.

Registered through the ``openmmml.potentials`` entry point, so after ``pip install 'pyani-nn[openmm]'``:

>>> from openmmml import MLPotential
>>> potential = MLPotential("pyani-ani1ccx")                # or "pyani-ani1x"
>>> potential = MLPotential("pyani-ani2x")                  # downloaded once, then cached
>>> potential = MLPotential("pyani", model="my.onnx", n_threads=2, skin=1.0)
>>> system = potential.createSystem(topology)
>>> mixed = potential.createMixedSystem(topology, mm_system, ligand_atoms)

OpenMM units (nm, kJ/mol) are converted here and only here; pyani works in Angstrom and Hartree.
No PyTorch is involved.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

try:
    import openmm
    import openmm.app
    from openmm import unit
    from openmmml.mlpotential import MLPotentialImpl
except ImportError as error:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "pyani.openmm needs OpenMM >= 8.5.2 and openmm-ml >= 1.8: "
        f"pip install 'pyani-nn[openmm]' (import failed: {error})"
    ) from error

from . import load  # the public entry point only
from ._openmm_entry import PyaniPotentialImplFactory
from .units import HARTREE_TO_KJ_PER_MOL

#: Angstrom per nanometre.
ANGSTROM_PER_NM = 10.0

#: Potential names registered by pyani -> the model each loads (None: given by ``model=``).
POTENTIALS = {"pyani-ani1ccx": "ani-1ccx", "pyani-ani1x": "ani-1x", "pyani-ani2x": "ani-2x", "pyani": None}

#: Keyword arguments of ``MLPotential(...)`` forwarded to ``pyani.load``.
LOAD_OPTIONS = ("backend", "device", "n_threads", "skin", "precision")

__all__ = ["HARTREE_TO_KJ_PER_MOL", "PyaniForceFunction", "PyaniPotentialImpl", "PyaniPotentialImplFactory"]


class PyaniPotentialImpl(MLPotentialImpl):
    """An ANI model run by pyani inside OpenMM (energy kJ/mol, forces kJ/mol/nm).

    name: "pyani-ani1ccx", "pyani-ani1x", "pyani-ani2x" (pyani's models by name: ANI-2x is
        downloaded on first use and cached) or "pyani" (``model=`` any name or path
        ``pyani.load`` accepts).
    model: see name.
    backend, device, n_threads, skin, precision: passed to ``pyani.load`` (skin in Angstrom).

    The model is loaded here, so a wrong name or path fails when the MLPotential is made.
    """

    def __init__(self, name: str, model=None, **options):
        if name not in POTENTIALS:
            raise ValueError(f"unknown pyani potential {name!r}; pyani registers {', '.join(POTENTIALS)}")
        unknown = sorted(set(options) - set(LOAD_OPTIONS))
        if unknown:
            raise TypeError(
                f"MLPotential({name!r}): unknown argument(s) {', '.join(unknown)}; "
                f"pyani takes model= and {', '.join(LOAD_OPTIONS)}"
            )
        shipped = POTENTIALS[name]
        if shipped is not None and model is not None:
            raise ValueError(
                f"MLPotential({name!r}) runs pyani's shipped {shipped} and takes no model=; "
                f"use MLPotential('pyani', model={model!r}) for another model"
            )
        if name == "pyani" and model is None:
            raise ValueError(
                "MLPotential('pyani') needs model=<name or path>: 'ani-1ccx', 'ani-1x', a .onnx or a NeuroChem .info"
            )
        self.name = name
        self.model_source = shipped if shipped is not None else model
        self.load_options = dict(options)
        try:
            self._spare_model = load(self.model_source, **self.load_options)
        except (ValueError, TypeError, FileNotFoundError) as error:
            raise type(error)(f"MLPotential({name!r}): {error}") from error
        self.elements = tuple(self._spare_model.elements)

    def addForces(
        self,
        topology: openmm.app.Topology,
        system: openmm.System,
        atoms: Iterable[int] | None,
        forceGroup: int,
        **args,
    ):
        """Add one ``openmm.PythonForce`` computing this model on ``atoms`` (all atoms if None)."""
        misplaced = sorted(set(args) & {"model", *LOAD_OPTIONS})
        if misplaced:
            raise TypeError(
                f"{', '.join(misplaced)}: pass to MLPotential({self.name!r}, ...), "
                "not to createSystem / createMixedSystem"
            )
        if not hasattr(openmm, "PythonForce"):
            raise RuntimeError(f"pyani needs openmm.PythonForce (OpenMM >= 8.5.2); this is OpenMM {openmm.__version__}")
        all_atoms = list(topology.atoms())
        indices = list(range(len(all_atoms))) if atoms is None else [int(i) for i in atoms]
        if not indices:
            raise ValueError("atoms: no atoms given for the ML potential")
        bad = [i for i in indices if not 0 <= i < len(all_atoms)]
        if bad:
            raise ValueError(f"atoms: index {bad[0]} is not an atom of the topology (0 to {len(all_atoms) - 1})")
        if len(set(indices)) != len(indices):
            twice = next(i for i in indices if indices.count(i) > 1)
            raise ValueError(f"atoms: atom {twice} is listed more than once")
        numbers = np.array([_atomic_number(all_atoms[i], self) for i in indices], dtype=np.int64)
        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()

        # Each force has its own pyani model: a model keeps per-system state (Verlet list, buffers).
        model, self._spare_model = self._spare_model, None
        function = PyaniForceFunction(self.model_source, self.load_options, numbers, periodic, model)
        force = openmm.PythonForce(function)
        force.setName(f"pyani {self.model_source}")
        force.setForceGroup(forceGroup)
        force.setUsesPeriodicBoundaryConditions(periodic)
        if atoms is not None:
            force.setParticles(indices)
        system.addForce(force)

    def getMLLongRange(self) -> bool:
        """ANI is local (the model's cutoff, 5.2 Angstrom for ANI-1x/1ccx/2x and 8 with D3): mechanical
        embedding needs no long-range correction."""
        return False


def _atomic_number(atom, impl: PyaniPotentialImpl) -> int:
    where = f"atom {atom.index} ({atom.name} in residue {atom.residue.name} {atom.residue.id})"
    if atom.element is None:
        raise ValueError(f"topology: {where} has no element; MLPotential({impl.name!r}) needs every ML atom's element")
    if atom.element.symbol not in impl.elements:
        raise ValueError(
            f"topology: {where} is {atom.element.symbol}, an element the model {impl.model_source} lacks "
            f"(it knows {', '.join(impl.elements)})"
        )
    return atom.element.atomic_number


class PyaniForceFunction:
    """The ``PythonForce`` callback: OpenMM state (nm) -> (energy kJ/mol, forces kJ/mol/nm).

    Picklable (OpenMM pickles it to copy or serialize a System): the model is reloaded from
    its name or path, with the same load options, on the first call after unpickling.
    """

    def __init__(self, model_source, load_options: dict, numbers: np.ndarray, periodic: bool, model=None):
        self.model_source = model_source
        self.load_options = dict(load_options)
        self.numbers = numbers
        self.periodic = periodic
        self._model = model

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def __call__(self, state: openmm.State):
        if self._model is None:
            self._model = load(self.model_source, **self.load_options)
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * ANGSTROM_PER_NM
        cell = None
        if self.periodic:
            cell = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) * ANGSTROM_PER_NM
        result = self._model.compute(self.numbers, positions, cell, forces=True)
        energy = result.energy * HARTREE_TO_KJ_PER_MOL
        forces = result.forces * (HARTREE_TO_KJ_PER_MOL * ANGSTROM_PER_NM)
        return energy, forces
