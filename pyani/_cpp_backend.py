"""The C++ core (``pyani._core``) behind the backend interface of ``pyani._backend``."""

from __future__ import annotations

from ._core import AEVComputer, AEVPass, NeighborList

__all__ = ["AEVComputer", "AEVPass", "NeighborList"]
