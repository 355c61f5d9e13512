"""Shared fixtures: backends, models (loaded once), reference data."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import zipfile
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
NEUROCHEM = Path(__file__).resolve().parents[2] / "shared" / "models" / "neurochem"
ANI2X_INFO = NEUROCHEM / "ani-2x_8x.info"

# The tests never touch the user's cache: a fresh PYANI_HOME for the session, and ANI-2x
# comes from a file:// mirror of the model zoo's archive built from ../shared, through the
# same download, check and conversion as pyani.load("ani-2x") after a plain install.
# (Test modules import conftest a second time, as a plain module: both share one directory.)
if "_PYANI_TESTS_DIR" not in os.environ:
    os.environ["_PYANI_TESTS_DIR"] = tempfile.mkdtemp(prefix="pyani-tests-")
_SESSION_DIR = Path(os.environ["_PYANI_TESTS_DIR"])
os.environ["PYANI_HOME"] = str(_SESSION_DIR / "home")
os.environ.pop("PYANI_OFFLINE", None)
ZOO_ARCHIVE = _SESSION_DIR / "mirror" / "ani-2x.zip"


def build_zoo_archive(out: Path, change=None) -> Path:
    """A zip laid out as GitHub's archive of aiqm/ani-model-zoo at tag ani-2x, from the
    files in ../shared; ``change(relative path, bytes) -> bytes`` alters file contents."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("ani-model-zoo-ani-2x/README.md", "mirror for tests\n")
        for path in sorted([ANI2X_INFO, *(NEUROCHEM / "ani-2x_8x").rglob("*")]):
            if path.is_file():
                name = path.relative_to(NEUROCHEM).as_posix()
                data = path.read_bytes()
                zf.writestr(f"ani-model-zoo-ani-2x/resources/{name}", change(name, data) if change else data)
    return out


def require_ani2x_files() -> None:
    """Skip without ../shared's ANI-2x files; fail instead when CI sets PYANI_REQUIRE_ANI2X=1."""
    if ANI2X_INFO.is_file():
        if not ZOO_ARCHIVE.is_file():
            build_zoo_archive(ZOO_ARCHIVE)
        os.environ["PYANI_MODEL_URL"] = ZOO_ARCHIVE.as_uri()
        return
    message = f"ANI-2x NeuroChem files not found at {ANI2X_INFO} (they live in ../shared)"
    if os.environ.get("PYANI_REQUIRE_ANI2X", "") not in ("", "0"):
        pytest.fail(message + "; PYANI_REQUIRE_ANI2X is set")
    pytest.skip(message)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


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


def get_model(name: str, backend: str, precision: str = "float32") -> pyani.Model:
    """Models by name, each loaded once (ANI-2x from the test mirror: see require_ani2x_files)."""
    key = (name, backend, precision)
    if key not in _cache:
        if name == "ani-2x":
            require_ani2x_files()
        _cache[key] = pyani.load(name, backend=backend, precision=precision)
    return _cache[key]


def reference_systems(model: str) -> list[str]:
    return sorted(p.stem for p in (DATA / model).glob("*.npz"))


def load_reference(model: str, system: str) -> dict:
    with np.load(DATA / model / f"{system}.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session", autouse=True)
def _outside_the_source_tree():
    """Subprocesses (python -c, python -m) put their working directory first on sys.path:
    from the repository root they would import the source tree, which has no compiled core,
    instead of the installed package. The tests run from a directory of their own (after
    collection, which reads testpaths relative to where pytest started)."""
    start = os.getcwd()
    os.chdir(_SESSION_DIR)
    yield
    os.chdir(start)


@pytest.fixture(scope="session", autouse=True)
def _required_backend():
    """CI sets PYANI_REQUIRE_BACKENDS so that a silently missing backend fails loudly."""
    for name in filter(None, os.environ.get("PYANI_REQUIRE_BACKENDS", "").split(",")):
        assert name in BACKENDS, f"backend {name!r} required by PYANI_REQUIRE_BACKENDS is not available"
