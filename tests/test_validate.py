"""Every bad input gives a clear exception naming the argument; no input is modified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import get_model

import pyani

METHANE_Z = [6, 1, 1, 1, 1]
METHANE_R = np.array(
    [[0.0, 0.0, 0.0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]
)
CELL = np.diag([8.0, 8.0, 8.0])


@pytest.fixture
def model(backend):
    return get_model("ani-1x", backend)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"numbers": [6, 1, 1, 1, 92]}, ValueError, r"numbers contains elements the model lacks: U \(Z=92\)"),
        ({"numbers": [6, 1, 1, 1, 16]}, ValueError, r"lacks: S \(Z=16\); it knows H, C, N, O"),
        ({"numbers": [6, 1, 1, 1, 1.5]}, TypeError, "numbers must be integers"),
        ({"numbers": [6, 1, 1, 1, -3]}, ValueError, "numbers must be positive atomic numbers"),
        ({"numbers": [6, 1, 1, 1, 0]}, ValueError, "numbers must be positive atomic numbers"),
        ({"numbers": ["C", "H", "H", "H", "X"]}, ValueError, "unknown chemical symbol .X."),
        ({"numbers": [True] * 5}, TypeError, "numbers must be integers"),
        ({"numbers": [[[6]]]}, ValueError, r"numbers must have shape \(n_atoms,\)"),
        ({"numbers": []}, ValueError, "numbers must contain at least one atom"),
        ({"numbers": [-1, -1, -1, -1, -1]}, ValueError, "at least one atom"),
        ({"numbers": [6, 1, 1, 1]}, ValueError, r"positions must have shape \(4, 3\) to match numbers"),
        ({"positions": METHANE_R[:, :2]}, ValueError, r"positions must have shape \(5, 3\).*got \(5, 2\)"),
        ({"positions": [["a", "b", "c"]] * 5}, TypeError, "positions must be a numeric array-like"),
        ({"positions": np.where(np.eye(5, 3) > 0, np.nan, METHANE_R)}, ValueError, "positions contains NaN"),
        ({"positions": METHANE_R + [np.inf, 0, 0]}, ValueError, "positions contains NaN or infinite"),
        ({"positions": METHANE_R * 1e9}, ValueError, "positions contains coordinates beyond"),
        ({"positions": np.zeros((5, 3))}, ValueError, "positions: atoms 0 and 1 .* at the same place"),
        ({"pbc": True}, ValueError, "pbc is True in some direction but no cell was given"),
        ({"pbc": [True, False]}, ValueError, r"pbc must be a bool or have shape \(3,\)"),
        ({"pbc": "yes"}, TypeError, "pbc must be a bool or 3 bools"),
        ({"cell": np.eye(2)}, ValueError, r"cell must have shape \(3, 3\)"),
        ({"cell": np.zeros((3, 3))}, ValueError, "cell is singular"),
        ({"cell": [[8, 0, 0], [16, 0, 0], [0, 0, 8]]}, ValueError, "cell is singular"),
        ({"cell": CELL * np.nan}, ValueError, "cell contains NaN"),
        ({"cell": CELL / 8}, ValueError, "cell is too small: 0.2 Angstrom.3 per atom"),
        (  # image indices beyond int32 gave a wrong energy (113 Ha instead of 264 Ha)
            {"cell": np.diag([0.04, 10, 10]), "pbc": [True, False, False], "positions": METHANE_R + [9e7, 0, 0]},
            ValueError,
            "cell: lattice planes along periodic direction 0 are 0.04 Angstrom apart, too close for coordinates",
        ),
        ({"cell": CELL, "positions": METHANE_R + 5e7}, None, None),
        ({"cell": CELL, "pbc": [True, True, False], "stress": True}, None, None),
        ({"stress": True}, ValueError, "stress=True needs a periodic system"),
        (
            {"cell": [[8, 0, 0], [0, 8, 0], [0, 0, 0]], "pbc": [True, True, False], "stress": True},
            ValueError,
            "stress=True needs a cell with non-zero volume",
        ),
        ({"forces": "yes"}, TypeError, "forces must be True or False"),
        ({"atomic": 1}, TypeError, "atomic must be True or False"),
    ],
)
def test_bad_input_is_named(model, kwargs, error, match):
    args = {"numbers": METHANE_Z, "positions": METHANE_R, **kwargs}
    if error is None:  # a valid neighbour of the bad cases, so the table cannot drift
        model.compute(**args)
        return
    with pytest.raises(error, match=match):
        model.compute(**args)


def test_batch_shapes_are_checked(model):
    numbers = np.array([METHANE_Z, [8, 1, 1, -1, -1]])
    positions = np.stack([METHANE_R, METHANE_R])
    with pytest.raises(ValueError, match=r"positions must have shape \(2, 5, 3\)"):
        model.compute(numbers, METHANE_R)
    with pytest.raises(ValueError, match=r"cell must have shape \(3, 3\) or \(2, 3, 3\)"):
        model.compute(numbers, positions, np.stack([CELL] * 3))
    # Padding positions are ignored, even NaN.
    positions[1, 3:] = np.nan
    assert np.isfinite(model.compute(numbers, positions).energy).all()


def test_inputs_are_not_modified(model):
    numbers = np.array(METHANE_Z, dtype=np.int32)
    positions = METHANE_R + 20.0  # outside the cell, so wrapping would show
    cell = CELL.copy()
    pbc = np.array([True, True, True])
    copies = [a.copy() for a in (numbers, positions, cell, pbc)]
    model.compute(numbers, positions, cell, pbc, stress=True, atomic=True)
    for before, after in zip(copies, (numbers, positions, cell, pbc)):
        np.testing.assert_array_equal(before, after)
        assert before.dtype == after.dtype


def test_accepted_input_kinds(model):
    """Lists, float32, int positions, non-contiguous views all give the same energy."""
    ref = model.compute(METHANE_Z, METHANE_R).energy
    wide = np.zeros((5, 6))
    wide[:, ::2] = METHANE_R
    for numbers, positions in [
        (list(METHANE_Z), METHANE_R.tolist()),
        (np.array(METHANE_Z, dtype=np.uint8), METHANE_R.astype(np.float32)),
        (np.array(METHANE_Z)[::-1][::-1], wide[:, ::2]),
        (np.array(METHANE_Z, dtype=float), METHANE_R),
    ]:
        e = model.compute(numbers, positions).energy
        assert abs(e - ref) < 1e-5  # float32 positions lose ~1e-7 A


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("ani-3000", ValueError, "neither a known model"),
        ("/no/such/model.onnx", FileNotFoundError, "no such file"),
        ("/no/such/model.info", FileNotFoundError, "no such file"),
        (42, TypeError, "name_or_path must be a model name or a path"),
    ],
)
def test_bad_model_names(name, error, match):
    with pytest.raises(error, match=match):
        pyani.load(name)


def test_bad_model_files(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ValueError, match="could not be loaded"):
        pyani.load(corrupt)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="could not be loaded"):
        pyani.load(empty)
    from pyani import _onnx_writer as w

    graph = w.graph(
        [w.node("Neg", ["x"], ["y"], "neg")],
        "foreign",
        [w.value_info("x", w.FLOAT, [1])],
        [w.value_info("y", w.FLOAT, [1])],
    )
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(w.model(graph, ir_version=8, opset=17, producer="test", metadata={}))
    with pytest.raises(ValueError, match="not a pyani model"):
        pyani.load(foreign)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"backend": "fortran"}, ValueError, "backend must be one of"),
        ({"device": "tpu"}, ValueError, "device must be one of"),
        ({"n_threads": -1}, ValueError, "n_threads must be >= 0"),
        ({"n_threads": 1.5}, TypeError, "n_threads must be an integer"),
    ],
)
def test_bad_load_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        pyani.load("ani-1x", **kwargs)


def test_bad_backend_environment(monkeypatch):
    monkeypatch.setenv("PYANI_BACKEND", "fortran")
    with pytest.raises(ValueError, match="PYANI_BACKEND must be one of"):
        pyani.load("ani-1x")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"radial_cutoff": float("nan")}, "NaN or infinite"),
        ({"angular_cutoff": 9.0}, "0 < angular_cutoff <= radial_cutoff"),
        ({"shf_a": []}, "must be non-empty"),
        ({"eta_r": "fast"}, "not numbers"),
    ],
)
def test_model_file_with_bad_aev_constants(tmp_path, change, match):
    """A model file's AEV constants are checked once, at load, before any kernel sees them."""
    import json

    from pyani import _onnx_file
    from pyani import _onnx_writer as w
    from pyani._model_files import locate

    data = Path(locate("ani-1x")[1]).read_bytes()
    graph = next(bytes(v) for n, _, v in _onnx_file._fields(memoryview(data)) if n == 7)
    meta = pyani.load("ani-1x").metadata
    meta = {**meta, "aev": {**meta["aev"], **change}}
    path = tmp_path / "bad.onnx"
    path.write_bytes(w.model(graph, ir_version=8, opset=17, producer="test", metadata={"pyani": json.dumps(meta)}))
    with pytest.raises(ValueError, match=match):
        pyani.load(path)
