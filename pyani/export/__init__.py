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


def torchani_to_onnx(model, path: str | Path | None = None) -> bytes:
    """Convert a TorchANI 2.x model (``torchani.arch.ANI``: ``torchani.models.ANI2x()``,
    ``torchani.arch.simple_ani(...)``, a NeuroChem load, one member ``model[i]``, ...) to a
    pyani ``.onnx`` model: its AEV, networks, self energies and pair potentials (xTB
    repulsion, D3(BJ) dispersion). Energies Hartree, lengths Angstrom, as in TorchANI.

    Returns the serialized model; also writes it to ``path`` when given. Needs torch and
    torchani (``pip install 'pyani-nn[export]'``) here only, never to run the model. Any part of
    the model pyani cannot run raises ValueError naming it (see pyani/export/torchani.py).
    """
    from .onnx_graph import build_model
    from .torchani import read_torchani

    data = build_model(read_torchani(model))
    if path is not None:
        Path(path).write_bytes(data)
    return data


__all__ = ["neurochem_to_onnx", "torchani_to_onnx"]
