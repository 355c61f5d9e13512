"""pyani: ANI neural-network potentials (ANI-1x, ANI-1ccx, ANI-2x) without PyTorch.

>>> import pyani
>>> model = pyani.load("ani-1ccx")
>>> result = model.compute([6, 1, 1, 1, 1], positions)   # Angstrom -> Hartree
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._distribution import DISTRIBUTION
from .model import Model, Result, load

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["Model", "Result", "__version__", "load"]
