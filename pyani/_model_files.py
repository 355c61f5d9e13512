"""Where a model comes from: a shipped name, a pyani ``.onnx`` file or a NeuroChem ``.info`` file."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

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
    """The name of a shipped model given as its file path; None for any other model."""
    for name, file in SHIPPED.items():
        if isinstance(model, str) and model == str(files("pyani") / "models" / file):
            return name
    return None


def locate(name_or_path: str | Path) -> tuple[str, bytes | str]:
    """(a description for messages, the model as ONNX bytes or a file path)."""
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"name_or_path must be a model name or a path, got {type(name_or_path).__name__}")
    text = str(name_or_path)
    canonical = canonical_name(text) if isinstance(name_or_path, str) else None
    if canonical in SHIPPED:
        return f"pyani model {canonical!r}", str(files("pyani") / "models" / SHIPPED[canonical])
    if canonical == "ani-2x":
        raise ValueError(
            "name_or_path: ANI-2x is not shipped with pyani; pass the path to its NeuroChem "
            "file ani-2x_8x.info (converted on the fly) or to a converted .onnx file"
        )
    path = Path(name_or_path)
    if path.suffix not in (".onnx", ".info"):
        known = ", ".join(repr(n) for n in SHIPPED)
        raise ValueError(f"name_or_path: {text!r} is neither a known model ({known}) nor a .onnx / .info path")
    if not path.is_file():
        raise FileNotFoundError(f"name_or_path: no such file: {path}")
    if path.suffix == ".info":
        from .export import neurochem_to_onnx

        return str(path), neurochem_to_onnx(path)
    return str(path), str(path)
