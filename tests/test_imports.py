"""What a new process imports: never torch; numba only for the Numba backend; onnx only to
convert NeuroChem files (big systems read their first-layer weights with pyani._onnx_file).
The shipped models are inside the installed package, whose metadata asks for numba only
when the C++ core was not built, and a missing optional package names the pip command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import requires, version
from importlib.resources import files

import pytest
from conftest import BACKENDS

import pyani
from pyani import _backend
from pyani._distribution import DISTRIBUTION

SCRIPT = """
import json, sys
import pyani
model = pyani.load("ani-1ccx", backend="{backend}")
model.compute([6, 1, 1, 1, 1], [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])
print(json.dumps(sorted(m.split(".")[0] for m in sys.modules)))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_compute_imports_no_torch(backend, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(backend=backend)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    modules = set(json.loads(out.stdout.splitlines()[-1]))
    assert "torch" not in modules
    assert "onnx" not in modules
    assert ("numba" in modules) == (backend == "numba")


def test_shipped_models_are_installed():
    models = files("pyani") / "models"
    for name in ("ani-1x.onnx", "ani-1ccx.onnx", "LICENSE"):
        assert (models / name).is_file(), name
    assert (models / "ani-1ccx.onnx").stat().st_size > 5_000_000


@pytest.mark.parametrize(("user_value", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_passively_unless_the_user_says(user_value, expected, tmp_path):
    """Spinning OpenMP threads would slow the network evaluation that follows each kernel."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_value:
        env["OMP_WAIT_POLICY"] = user_value
    script = "import os, pyani; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path, env=env
    )
    assert out.stdout.split()[-1] == expected


def test_big_systems_lacking_elements_import_no_onnx(tmp_path):
    """A water box of >= BULK_ATOMS atoms gets first layers cut to its AEV columns, read
    from the model file without the onnx package."""
    script = """
import json, sys
import numpy as np
import pyani
k = np.arange(5)
grid = np.stack(np.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3) * 3.1
water = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.24, 0.9266, 0.0]])
positions = (grid[:, None] + water).reshape(-1, 3)
model = pyani.load("ani-1x")
model.compute([8, 1, 1] * 125, positions, np.eye(3) * 15.5)
assert len(model.networks.bulk_plans) == 1 and next(iter(model.networks.bulk_plans.values())).columns is not None
print(json.dumps(sorted(m.split(".")[0] for m in sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    modules = set(json.loads(out.stdout.splitlines()[-1]))
    assert "onnx" not in modules and "torch" not in modules


def test_version_is_the_installed_distributions():
    assert DISTRIBUTION == "pyani-nn"
    assert pyani.__version__ == version(DISTRIBUTION) != "0+unknown"


def test_numba_is_a_dependency_only_of_an_install_without_the_core():
    """pyproject.toml: the `if.failed` override adds numba to the wheel built without C++."""
    unconditional = {re.split(r"[^A-Za-z0-9_.-]", r, maxsplit=1)[0] for r in requires(DISTRIBUTION) if "extra" not in r}
    assert {"numpy", "onnxruntime"} <= unconditional
    assert "onnx" not in unconditional
    assert ("numba" in unconditional) == (not _backend.cpp_available())


def run_without(blocked: list[str], code: str, cwd) -> str:
    """Run ``code`` in a new process in which importing any of ``blocked`` fails; its stdout."""
    script = f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n{code}"
    env = {k: v for k, v in os.environ.items() if k != "PYANI_BACKEND"}  # "auto" means auto
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=cwd, env=env)
    return out.stdout


def test_info_file_converts_without_onnx(tmp_path):
    """A plain install has no onnx package: pyani writes the ONNX protobuf itself."""
    from test_export import write_ensemble

    info, _ = write_ensemble(tmp_path)
    code = f"""
import pyani
model = pyani.load({str(info)!r})
print(model.compute([1, 1], [[0, 0, 0], [0.74, 0, 0]]).energy)
"""
    energy = float(run_without(["onnx"], code, tmp_path).split()[-1])
    assert energy == pyani.load(info).compute([1, 1], [[0, 0, 0], [0.74, 0, 0]]).energy


@pytest.mark.parametrize("backend", ["auto", "numba"])
def test_no_backend_names_the_numba_extra(backend, tmp_path):
    code = f"""
import pyani
try:
    pyani.load("ani-1x", backend="{backend}")
except ImportError as err:
    print(err)
"""
    message = run_without(["numba", "pyani._core"], code, tmp_path)
    assert "numba" in message and f"pip install '{DISTRIBUTION}[numba]'" in message
