"""Convert trained ANI ensembles into pyani's self-describing ``.onnx`` model files."""

from __future__ import annotations

from pathlib import Path

from .neurochem import read_info


def neurochem_to_onnx(info_file: str | Path, out_path: str | Path | None = None) -> bytes:
    """Convert a NeuroChem ensemble (its ``.info`` file) to a pyani ``.onnx`` model.

    Returns the serialized model; also writes it to ``out_path`` when given. Needs no
    ``onnx`` package: pyani writes the protobuf itself (pyani/_onnx_writer.py).
    """
    from .onnx_graph import build_model

    data = build_model(read_info(info_file))
    if out_path is not None:
        Path(out_path).write_bytes(data)
    return data


__all__ = ["neurochem_to_onnx"]
