"""TorchANI export tests: pyani runs models exported from TorchANI 2.9 and is compared with
TorchANI itself in float64 (helpers in torch_reference.py). Needs torch + torchani (see
.ci/torch); the default suite (tests/) never imports torch."""

from __future__ import annotations

import importlib.util
import os
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
os.environ.setdefault("PYANI_HOME", tempfile.mkdtemp(prefix="pyani-torch-tests-"))

import pytest
import torch

from pyani import _backend

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)


def _backends() -> list[str]:
    names = ["cpp"] if _backend.cpp_available() else []
    if importlib.util.find_spec("numba") is not None:
        names.append("numba")
    return names


BACKENDS = _backends()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session", autouse=True)
def _required_backend():
    for name in filter(None, os.environ.get("PYANI_REQUIRE_BACKENDS", "").split(",")):
        assert name in BACKENDS, f"backend {name!r} required by PYANI_REQUIRE_BACKENDS is not available"
