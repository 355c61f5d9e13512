"""The ``openmmml.potentials`` entry point: pyani's factory for openmm-ml's ``MLPotential``.

Kept apart from pyani.openmm, and free of openmm-ml imports, because openmm-ml loads every entry
point while it is itself being imported: had ``import pyani.openmm`` started that import, a factory
living in pyani.openmm would not exist yet (a circular import). openmm-ml only calls ``createImpl``.
"""

from __future__ import annotations


class PyaniPotentialImplFactory:
    """Creates a ``pyani.openmm.PyaniPotentialImpl`` for each ``MLPotential("pyani...")``."""

    def createImpl(self, name: str, **args):
        from .openmm import PyaniPotentialImpl

        return PyaniPotentialImpl(name, **args)
