"""pyproject.toml: the light default install and the extras the error messages point to.

The dependencies are set twice (tool.scikit-build.metadata and its `if.failed` override, for
the wheel built without the C++ core): the two lists must differ by numba only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyani._distribution import DISTRIBUTION

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in requirements}


def test_distribution_name_matches_the_package_code():
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    assert "dependencies" in PYPROJECT["project"]["dynamic"]


def test_dependencies_with_and_without_the_core_differ_by_numba_only():
    with_core = PYPROJECT["tool"]["scikit-build"]["metadata"]["dependencies"]["result"]
    (failed,) = [o for o in PYPROJECT["tool"]["scikit-build"]["overrides"] if o["if"] == {"failed": True}]
    without_core = failed["metadata"]["dependencies"]["result"]
    assert names(with_core) == {"numpy", "onnxruntime"}
    numba = PYPROJECT["project"]["optional-dependencies"]["numba"]
    assert without_core == with_core + numba


def test_extras_named_by_error_messages_exist_and_test_covers_them():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert names(extras["numba"]) == {"numba"}
    assert set(extras["numba"]) <= set(extras["test"])
