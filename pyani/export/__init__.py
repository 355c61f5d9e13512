"""Convert trained ANI ensembles into pyani's self-describing ``.onnx`` model files."""

from __future__ import annotations

from pathlib import Path

from .._distribution import install_command
from .neurochem import read_info


def require_onnx() -> None:
    """Raise ImportError with the command to run when the ``onnx`` package is missing.

    onnx is an optional dependency (the ``export`` extra): the compute path never needs it.
    """
    try:
        import onnx  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"converting NeuroChem files (.info) to ONNX needs the onnx package ({err}): {install_command('export')}"
        ) from None


def neurochem_to_onnx(info_file: str | Path, out_path: str | Path | None = None) -> bytes:
    """Convert a NeuroChem ensemble (its ``.info`` file) to a pyani ``.onnx`` model.

    Returns the serialized model; also writes it to ``out_path`` when given. Needs the
    ``onnx`` package (the ``export`` extra; ImportError naming the command without it).
    """
    require_onnx()
    from .onnx_graph import build_model

    data = build_model(read_info(info_file)).SerializeToString()
    if out_path is not None:
        Path(out_path).write_bytes(data)
    return data


__all__ = ["neurochem_to_onnx", "require_onnx"]
