"""The C++ core (``pyani._core``) behind the backend interface of ``pyani._backend``."""

from __future__ import annotations

from ._core import AEVParams as _AEVParams
from ._core import NeighborList, aev, aev_backward, pair_forces
from ._core import Scratch as _Scratch


def make_params(aev: dict, n_species: int) -> _AEVParams:
    """Kernel parameters from a model's ``aev`` metadata."""
    return _AEVParams(
        n_species=n_species,
        radial_cutoff=aev["radial_cutoff"],
        angular_cutoff=aev["angular_cutoff"],
        eta_r=aev["eta_r"],
        shf_r=aev["shf_r"],
        eta_a=aev["eta_a"],
        zeta=aev["zeta"],
        shf_a=aev["shf_a"],
        shf_z=aev["shf_z"],
    )


def make_scratch() -> _Scratch:
    """A pool of big buffers that aev and aev_backward reuse from call to call: a model keeps
    one, so repeated calls on a big system do not fault in fresh memory each time."""
    return _Scratch()


__all__ = ["NeighborList", "aev", "aev_backward", "make_params", "make_scratch", "pair_forces"]
