"""Where a model comes from: a shipped name, ANI-2x (downloaded once and cached, see
pyani/_zoo.py), a pyani ``.onnx`` file or a NeuroChem ``.info`` file (converted once and
cached by content, see pyani/_cache.py)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from . import _cache, _zoo

#: Models shipped inside the package (pyani/models/*.onnx), by canonical name.
SHIPPED = {"ani-1x": "ani-1x.onnx", "ani-1ccx": "ani-1ccx.onnx"}


def canonical_name(name: str) -> str | None:
    """ "ANI1ccx", "ani_1ccx", ... -> "ani-1ccx"; None for what is no known model name."""
    key = name.lower().replace("_", "").replace("-", "")
    for canonical in (*SHIPPED, "ani-2x"):
        if key == canonical.replace("-", ""):
            return canonical
    return None


def shipped_name(model: bytes | str) -> str | None:
    """The name of a model loadable by name given as its file path (shipped, or the cached
    ANI-2x); None for any other model."""
    if not isinstance(model, str):
        return None
    for name, file in SHIPPED.items():
        if model == str(files("pyani") / "models" / file):
            return name
    return "ani-2x" if model == str(_zoo.model_path()) else None


def locate(name_or_path: str | Path) -> tuple[str, bytes | str]:
    """(a description for messages, the model as ONNX bytes or a file path)."""
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"name_or_path must be a model name or a path, got {type(name_or_path).__name__}")
    text = str(name_or_path)
    canonical = canonical_name(text) if isinstance(name_or_path, str) else None
    if canonical in SHIPPED:
        return f"pyani model {canonical!r}", str(files("pyani") / "models" / SHIPPED[canonical])
    if canonical == "ani-2x":
        return f"pyani model {canonical!r}", str(_zoo.ani2x())
    path = Path(name_or_path)
    if path.suffix not in (".onnx", ".info"):
        known = ", ".join(repr(n) for n in (*SHIPPED, "ani-2x"))
        raise ValueError(f"name_or_path: {text!r} is neither a known model ({known}) nor a .onnx / .info path")
    if not path.is_file():
        raise FileNotFoundError(f"name_or_path: no such file: {path}")
    if path.suffix == ".info":
        return str(path), _cache.converted_info(path)
    return str(path), str(path)
