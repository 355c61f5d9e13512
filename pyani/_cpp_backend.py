"""The C++ core (``pyani._core``) behind the backend interface of ``pyani._backend``."""

from __future__ import annotations

from ._core import AEVComputer, AEVPass, DispersionD3, NeighborList, RepulsionXTB

__all__ = ["AEVComputer", "AEVPass", "DispersionD3", "NeighborList", "RepulsionXTB"]
