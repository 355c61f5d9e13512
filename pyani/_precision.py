"""A float64 copy of a float32 pyani model, made at load time (``pyani.load(precision="float64")``).

The model file stores its networks in float32. For float64 the serialized ONNX model is
rewritten field by field: every float32 tensor (initializers, Constant values) becomes a
float64 tensor with the same values, and every float32 type (graph inputs and outputs,
those of the ``If`` branches) becomes float64. Nothing else changes, so the graph computes
the same function in double, except ``Erf`` (no float64 kernel in ONNX Runtime): each such node
becomes the float64 subgraph of pyani/_erf_graph.py. Field numbers are those of onnx.proto (see _onnx_file.py).
"""

from __future__ import annotations

import numpy as np

from . import _erf_graph
from ._onnx_file import _BYTES, _FIXED32, _FIXED64, _VARINT, _fields
from ._onnx_writer import _bytes, _int, _varint

FLOAT, DOUBLE = 1, 11  # TensorProto.DataType

# Messages on the paths to float32 data: {message: {field number: message of that field}}.
_CHILDREN = {
    "model": {7: "graph"},
    "graph": {1: "node", 5: "tensor", 11: "value_info", 12: "value_info", 13: "value_info"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph"},
    "value_info": {2: "type"},
    "type": {1: "tensor_type"},
}
_TENSOR_TYPE, _TENSOR_FLOATS, _TENSOR_RAW, _TENSOR_DOUBLES = 2, 4, 9, 10
_ELEM_TYPE = 1  # TypeProto.Tensor.elem_type


def _field(number: int, wire: int, value) -> bytes:
    if wire == _VARINT:
        return _int(number, value)
    if wire == _BYTES:
        return _bytes(number, bytes(value))
    if wire in (_FIXED32, _FIXED64):
        return _varint(number << 3 | wire) + bytes(value)
    raise ValueError(f"unsupported protobuf wire type {wire}")


def _tensor(message: memoryview) -> bytes:
    fields = list(_fields(message))
    if not any(n == _TENSOR_TYPE and v == FLOAT for n, _, v in fields):
        return bytes(message)
    out = []
    for number, wire, value in fields:
        if number == _TENSOR_TYPE:
            out.append(_field(number, wire, DOUBLE))
        elif number == _TENSOR_RAW:
            out.append(_field(number, wire, np.frombuffer(value, "<f4").astype("<f8").tobytes()))
        elif number == _TENSOR_FLOATS:
            packed = value if wire == _BYTES else bytes(value)
            out.append(_field(_TENSOR_DOUBLES, _BYTES, np.frombuffer(packed, "<f4").astype("<f8").tobytes()))
        else:
            out.append(_field(number, wire, value))
    return b"".join(out)


_NODE_INPUT, _NODE_OUTPUT, _NODE_OP_TYPE = 1, 2, 4


def _erf_replacement(node: memoryview) -> list[bytes] | None:
    """The float64 nodes replacing an ``Erf`` node; None for any other node."""
    fields = list(_fields(node))
    if not any(n == _NODE_OP_TYPE and bytes(v) == b"Erf" for n, _, v in fields):
        return None
    (x,) = [bytes(v).decode() for n, _, v in fields if n == _NODE_INPUT]
    (y,) = [bytes(v).decode() for n, _, v in fields if n == _NODE_OUTPUT]
    return _erf_graph.erf_nodes(x, y)


def _message(kind: str, message: memoryview) -> bytes:
    if kind == "tensor":
        return _tensor(message)
    out = []
    for number, wire, value in _fields(message):
        if kind == "graph" and number == 1 and wire == _BYTES:
            replacement = _erf_replacement(value)
            if replacement is not None:
                out.extend(_field(number, wire, n) for n in replacement)
                continue
        if kind == "tensor_type" and number == _ELEM_TYPE and value == FLOAT:
            value = DOUBLE
        child = _CHILDREN.get(kind, {}).get(number)
        if child and wire == _BYTES:
            value = _message(child, value)
        out.append(_field(number, wire, value))
    return b"".join(out)


def float64_model(model: bytes) -> bytes:
    """The serialized ONNX model with all float32 data and types turned into float64."""
    return _message("model", memoryview(model))
