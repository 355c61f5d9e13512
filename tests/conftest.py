"""Shared fixtures: backends, models (loaded once), reference data."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# OpenBLAS's threads made the 3x3 LAPACK calls of ASE's BFGS and FrechetCellFilter (NumPy,
# SciPy) take 10-25 ms each instead of 0.03 ms on a busy machine (22 s instead of 1.5 s for
# 10 cell-filter steps). Set before NumPy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

import pyani
from pyani import _backend

DATA = Path(__file__).parent / "data"
#: ANI-2x NeuroChem files live only in ../shared (never in the project).
ANI2X_INFO = Path(__file__).resolve().parents[2] / "shared" / "models" / "neurochem" / "ani-2x_8x.info"


def available_backends() -> list[str]:
    names = []
    if _backend.cpp_available():
        names.append("cpp")
    if importlib.util.find_spec("numba") is not None and importlib.util.find_spec("pyani._numba"):
        names.append("numba")
    return names


BACKENDS = available_backends()
if not BACKENDS:
    raise pytest.UsageError(
        f"no pyani backend can be imported from {pyani.__file__}: run the installed package "
        "with `pytest` (not `python -m pytest`, which puts the source tree first on sys.path)"
    )
MODELS = ["ani-1x", "ani-1ccx", "ani-2x"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


_cache: dict = {}


def get_model(name: str, backend: str) -> pyani.Model:
    """Models are slow-ish to load (ANI-2x is converted from NeuroChem): load each once."""
    key = (name, backend)
    if key not in _cache:
        if name == "ani-2x":
            if not ANI2X_INFO.is_file():
                pytest.skip(f"ANI-2x NeuroChem files not found at {ANI2X_INFO} (they live in ../shared)")
            _cache[key] = pyani.load(ANI2X_INFO, backend=backend)
        else:
            _cache[key] = pyani.load(name, backend=backend)
    return _cache[key]


def reference_systems(model: str) -> list[str]:
    return sorted(p.stem for p in (DATA / model).glob("*.npz"))


def load_reference(model: str, system: str) -> dict:
    with np.load(DATA / model / f"{system}.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session", autouse=True)
def _required_backend():
    """CI sets PYANI_REQUIRE_BACKENDS so that a silently missing backend fails loudly."""
    for name in filter(None, os.environ.get("PYANI_REQUIRE_BACKENDS", "").split(",")):
        assert name in BACKENDS, f"backend {name!r} required by PYANI_REQUIRE_BACKENDS is not available"
