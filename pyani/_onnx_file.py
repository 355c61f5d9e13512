"""Read named float32 initializers out of a serialized ONNX model, without the ``onnx``
package (pyani imports it only to export models).

An ONNX file is a protobuf message: ModelProto.graph (field 7) is a GraphProto whose
``initializer`` entries (field 5) are TensorProtos with ``dims`` (1), ``data_type`` (2),
``float_data`` (4), ``name`` (8) and ``raw_data`` (9). Only those fields are decoded.
"""

from __future__ import annotations

import numpy as np

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_FLOAT, _DOUBLE = 1, 11  # TensorProto.DataType
_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_FLOATS, _TENSOR_NAME, _TENSOR_RAW, _TENSOR_DOUBLES = 1, 2, 4, 8, 9, 10


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or corrupt protobuf varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: memoryview):
    """(field number, wire type, value) of each field of one message; bytes fields as views."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _BYTES:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated protobuf field")
            value, pos = data[pos : pos + length], pos + length
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _tensor(message: memoryview) -> tuple[str, np.ndarray | None]:
    name, dims, dtype, raw, floats = "", [], None, None, []
    for number, wire, value in _fields(message):
        if number == _TENSOR_NAME:
            name = bytes(value).decode()
        elif number == _TENSOR_DIMS:
            if wire == _BYTES:  # packed
                pos = 0
                while pos < len(value):
                    dim, pos = _varint(value, pos)
                    dims.append(dim)
            else:
                dims.append(value)
        elif number == _TENSOR_TYPE:
            dtype = value
        elif number == _TENSOR_RAW:
            raw = value
        elif number in (_TENSOR_FLOATS, _TENSOR_DOUBLES):
            floats.append(value)
    if dtype not in (_FLOAT, _DOUBLE):
        return name, None
    kind = "<f4" if dtype == _FLOAT else "<f8"
    flat = np.frombuffer(raw if raw is not None else b"".join(bytes(f) for f in floats), dtype=kind)
    return name, flat.astype(np.float32 if dtype == _FLOAT else np.float64).reshape(dims)


def read_initializers(model: bytes, names) -> dict[str, np.ndarray]:
    """The float32 and float64 initializers of the main graph named in ``names`` (missing ones are left
    out), as arrays that own their memory."""
    wanted, found = set(names), {}
    for number, wire, graph in _fields(memoryview(model)):
        if number != _MODEL_GRAPH or wire != _BYTES:
            continue
        for field, kind, tensor in _fields(graph):
            if field == _GRAPH_INITIALIZER and kind == _BYTES:
                name, array = _tensor(tensor)
                if name in wanted and array is not None:
                    found[name] = array
    return found
