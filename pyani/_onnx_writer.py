"""Write the ONNX subset pyani's model files use, without the ``onnx`` package (an optional
extra), so a plain install can convert NeuroChem ensembles.

Each function returns the serialized protobuf message as bytes; messages nest as bytes
fields. Field numbers are those of onnx.proto (proto2: repeated scalars unpacked, set
optional fields written even when empty). Fields are written in field-number order, as
protobuf's own serializer does, so the bytes equal those of ``onnx.helper`` for the same
model (tests/test_onnx_writer.py checks that).
"""

from __future__ import annotations

import numpy as np

_VARINT, _BYTES = 0, 2

# TensorProto.DataType
FLOAT, INT64, BOOL, DOUBLE = 1, 7, 9, 11
_DATA_TYPES = {
    np.dtype("float32"): FLOAT,
    np.dtype("int64"): INT64,
    np.dtype("bool"): BOOL,
    np.dtype("float64"): DOUBLE,
}

# AttributeProto.AttributeType
_ATTR_INT, _ATTR_TENSOR, _ATTR_GRAPH, _ATTR_INTS = 2, 4, 5, 7


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 as ten-byte two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3 | _VARINT) + _varint(int(value))


def _bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _BYTES) + _varint(len(payload)) + payload


def _str(number: int, text: str) -> bytes:
    return _bytes(number, text.encode())


def tensor(name: str, array) -> bytes:
    """TensorProto: dims (1), data_type (2), name (8), raw_data (9, little-endian)."""
    array = np.asarray(array)
    if array.dtype not in _DATA_TYPES:
        raise TypeError(f"tensor {name!r}: dtype {array.dtype} is not one of {sorted(map(str, _DATA_TYPES))}")
    raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    dims = b"".join(_int(1, d) for d in array.shape)
    return dims + _int(2, _DATA_TYPES[array.dtype]) + _str(8, name) + _bytes(9, raw)


def empty_tensor(name: str, elem_type: int, dims) -> bytes:
    """TensorProto with ``dims`` (one of them 0) and no data field at all."""
    return b"".join(_int(1, d) for d in dims) + _int(2, elem_type) + _str(8, name)


def value_info(name: str, elem_type: int, shape) -> bytes:
    """ValueInfoProto of a tensor: name (1), type (2) = TypeProto.tensor_type (1) = elem_type
    (1), shape (2) of Dimensions (1): dim_value (1) for ints, dim_param (2) for names."""
    dims = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in shape)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def _attribute(name: str, value) -> bytes:
    """AttributeProto: name (1), i (3), t (5), g (6), ints (8), type (20)."""
    out = _str(1, name)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"attribute {name!r}: booleans are not ONNX attributes")
    if isinstance(value, (int, np.integer)):
        return out + _int(3, value) + _int(20, _ATTR_INT)
    if isinstance(value, Tensor):
        return out + _bytes(5, value.data) + _int(20, _ATTR_TENSOR)
    if isinstance(value, Graph):
        return out + _bytes(6, value.data) + _int(20, _ATTR_GRAPH)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, np.integer)) for v in value):
        return out + b"".join(_int(8, v) for v in value) + _int(20, _ATTR_INTS)
    raise TypeError(f"attribute {name!r}: unsupported value {value!r}")


class Tensor:
    """A serialized TensorProto given as an attribute value (Constant's ``value``)."""

    def __init__(self, data: bytes):
        self.data = data


class Graph:
    """A serialized GraphProto given as an attribute value (If's branches)."""

    def __init__(self, data: bytes):
        self.data = data


def node(op_type: str, inputs, outputs, name: str | None, **attributes) -> bytes:
    """NodeProto: input (1), output (2), name (3, left out when None), op_type (4),
    attribute (5, sorted by name)."""
    out = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    out += (b"" if name is None else _str(3, name)) + _str(4, op_type)
    return out + b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(attributes.items()))


def graph(nodes, name: str, inputs, outputs, initializers=()) -> bytes:
    """GraphProto: node (1), name (2), initializer (5), input (11), output (12)."""
    out = b"".join(_bytes(1, n) for n in nodes) + _str(2, name)
    out += b"".join(_bytes(5, t) for t in initializers)
    return out + b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs)


def model(graph_data: bytes, *, ir_version: int, opset: int, producer: str, metadata: dict[str, str]) -> bytes:
    """ModelProto: ir_version (1), producer_name (2), graph (7), opset_import (8) of the
    default domain, metadata_props (14) as key (1) / value (2) entries."""
    out = _int(1, ir_version) + _str(2, producer) + _bytes(7, graph_data)
    out += _bytes(8, _str(1, "") + _int(2, opset))
    return out + b"".join(_bytes(14, _str(1, k) + _str(2, v)) for k, v in metadata.items())
