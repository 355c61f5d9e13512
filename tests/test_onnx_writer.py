"""pyani writes ONNX protobuf itself (pyani/_onnx_writer.py): the bytes must be what the
real onnx package reads, validates and would write itself, and conversion must not need
onnx at all."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ANI2X_INFO, get_model, require_ani2x_files
from oracles import random_molecule
from test_export import write_ensemble

import pyani
from pyani import _onnx_writer as w
from pyani.export import neurochem_to_onnx


def check_with_onnx(data: bytes):
    """Parsed by onnx, valid for its checker, and byte-for-byte onnx's own serialization."""
    onnx = _onnx()
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto)
    assert proto.SerializeToString() == data
    return proto


def _onnx():
    return pytest.importorskip("onnx", reason="the optional onnx package (pip install onnx)")


def test_conversion_needs_no_onnx(tmp_path, monkeypatch):
    info, _ = write_ensemble(tmp_path)
    with_onnx = neurochem_to_onnx(info)
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(ImportError):
        import onnx as _  # noqa: F401
    assert neurochem_to_onnx(info) == with_onnx


def test_synthetic_model_is_valid_onnx(tmp_path):
    info, _ = write_ensemble(tmp_path, n_members=3)
    proto = check_with_onnx(neurochem_to_onnx(info))
    assert proto.ir_version == 8 and proto.opset_import[0].version == 17
    assert proto.producer_name == "pyani"
    assert [i.name for i in proto.graph.input] == ["aev", "counts", "with_gradient"]
    assert [o.name for o in proto.graph.output] == ["atomic_energies", "aev_gradient"]
    (meta,) = proto.metadata_props
    assert meta.key == "pyani" and '"ensemble_size": 3' in meta.value
    if_node = proto.graph.node[-1]
    assert if_node.op_type == "If" and {a.name for a in if_node.attribute} == {"then_branch", "else_branch"}
    # the empty gradient of energy-only calls: a [0, 16] float tensor without data
    (constant,) = next(a.g for a in if_node.attribute if a.name == "else_branch").node
    assert list(constant.attribute[0].t.dims) == [0, 16]


def test_writer_matches_onnx_helper_field_by_field():
    """Each message kind, against onnx.helper building the same message."""
    _onnx()
    from onnx import TensorProto, helper, numpy_helper

    arrays = [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([0, -1, 5]),
        np.float32(2.5),
        np.array(True),
        np.array([0.1, -2.0]),  # float64: the erf constants of float64 models (pyani/_erf_graph.py)
    ]
    for k, array in enumerate(arrays):
        assert w.tensor(f"t{k}", array) == numpy_helper.from_array(np.asarray(array), f"t{k}").SerializeToString()
    empty = helper.make_tensor("e", TensorProto.FLOAT, [0, 4], [])
    assert w.empty_tensor("e", w.FLOAT, [0, 4]) == empty.SerializeToString()
    for shape in ([], [3], ["n", 7]):
        want = helper.make_tensor_value_info("x", TensorProto.INT64, shape).SerializeToString()
        assert w.value_info("x", w.INT64, shape) == want
    want = helper.make_node("Transpose", ["a", ""], ["b"], name="n", perm=[1, -1, 0], axis=-3)
    assert w.node("Transpose", ["a", ""], ["b"], "n", perm=[1, -1, 0], axis=-3) == want.SerializeToString()
    want = helper.make_node("Constant", [], ["c"], value=empty)
    assert w.node("Constant", [], ["c"], None, value=w.Tensor(empty.SerializeToString())) == want.SerializeToString()
    with pytest.raises(TypeError, match="float16"):
        w.tensor("bad", np.zeros(2, dtype=np.float16))
    with pytest.raises(TypeError, match="attribute 'flag'"):
        w.node("Op", [], [], "n", flag=True)


def test_ani2x_conversion_is_valid_onnx_and_loads(backend):
    require_ani2x_files()
    data = neurochem_to_onnx(ANI2X_INFO)
    check_with_onnx(data)
    model = get_model("ani-2x", backend)
    assert model.elements == ("H", "C", "N", "O", "S", "F", "Cl")
    assert Path(model.networks.model).read_bytes() == data  # the cached conversion is this one, byte for byte
    numbers, positions = random_molecule(np.random.default_rng(3), 9, elements=(1, 6, 7, 8, 9, 16, 17), box=4.0)
    from_bytes = pyani.Model(data, "bytes", backend=backend, device="cpu", n_threads=1, skin=0.0)
    a, b = model.compute(numbers, positions), from_bytes.compute(numbers, positions)
    assert a.energy == b.energy
    np.testing.assert_array_equal(a.forces, b.forces)
