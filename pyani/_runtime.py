"""ONNX Runtime sessions: providers (CPU / CUDA), threads, and the model's metadata."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import onnxruntime as ort

from . import _onnx_file

METADATA_KEY = "pyani"
FORMAT_VERSION = 2
DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def _installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def providers_for(device: str) -> list[str]:
    """Execution providers to ask for; raises when ``device="cuda"`` cannot be had."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        hint = "install onnxruntime-gpu (pip install 'pyani-nn[gpu]')"
        if _installed("onnxruntime") and _installed("onnxruntime-gpu"):
            hint = (
                "onnxruntime and onnxruntime-gpu are both installed; uninstall both, then install only onnxruntime-gpu"
            )
        raise ValueError(
            f"device='cuda' needs ONNX Runtime's CUDAExecutionProvider, which is not available "
            f"(available: {available}); {hint}, or use device='cpu'"
        )
    return [CPU]


def session_options(n_threads: int, spinning: bool) -> ort.SessionOptions:
    """Spinning worker threads halve the latency of small inputs, but they keep spinning
    after a run and then fight the OpenMP threads of the AEV kernels on big systems."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return options


def create_session(
    model: bytes | str, device: str, n_threads: int, source: str, spinning: bool = True, initializers=None
):
    """Return ``(session, metadata, device)`` for a model given as bytes or a file path.

    initializers: optional {name: float32 array} replacing the model's own initializers.
    """
    providers = providers_for(device)
    options = session_options(n_threads, spinning)
    # ONNX Runtime uses these buffers without copying: they must live as long as the session.
    values = {name: ort.OrtValue.ortvalue_from_numpy(array) for name, array in (initializers or {}).items()}
    for name, value in values.items():
        options.add_initializer(name, value)
    try:
        session = ort.InferenceSession(model, options, providers=providers)
    except Exception as err:  # ONNX Runtime raises its own exception types
        if device == "auto" and CUDA in providers:
            # An installed CUDA provider that cannot start: "auto" falls back to the CPU.
            return create_session(model, "cpu", n_threads, source, spinning, initializers)
        where = " on CUDA" if device == "cuda" else ""
        raise ValueError(f"{source} could not be loaded{where}: is it a valid ONNX model? {err}") from None
    session.pyani_initializers = values
    used = "cuda" if CUDA in session.get_providers() else "cpu"
    if device == "cuda" and used != "cuda":
        raise ValueError(f"device='cuda' was asked for but ONNX Runtime could not start CUDA for {source}")
    metadata = read_metadata(session, source)
    return session, metadata, used


def read_metadata(session, source: str) -> dict:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ValueError(f"{source} is an ONNX model but not a pyani model (no '{METADATA_KEY}' metadata)")
    try:
        data = json.loads(meta[METADATA_KEY])
        version = data["format_version"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{source}: the '{METADATA_KEY}' metadata is corrupt") from None
    if version != FORMAT_VERSION:
        raise ValueError(f"{source} has model format version {version}; this pyani reads version {FORMAT_VERSION}")
    return data


def read_initializers(model: bytes | str, names: list[str]) -> dict:
    """The named float32 initializers of a model (bytes or path) as NumPy arrays."""
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    found = _onnx_file.read_initializers(data, names)
    missing = set(names) - set(found)
    if missing:
        raise ValueError(f"model has no float32 initializers {sorted(missing)} named in its metadata")
    return found
