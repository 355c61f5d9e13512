"""Read NeuroChem ensembles (``.info`` + ``.params`` + ``sae_linfit.dat`` + ``.nnf``) into arrays.

NeuroChem is the original ANI training code; TorchANI's published ANI-1x, ANI-1ccx and
ANI-2x weights are in its format. Layout of one ensemble::

    ani-1x_8x.info              4 lines: constants file, self energies file, member prefix, size
    ani-1x_8x/rHCNO-...params   AEV constants (Rcr, Rca, EtaR, ShfR, Zeta, ShfZ, EtaA, ShfA, Atyp)
    ani-1x_8x/sae_linfit.dat    self energies, lines "H,0=-0.600952980000" (Hartree)
    ani-1x_8x/train{k}/networks/ANN-{element}.nnf   "<n>=\\n" then bz2 text describing layers
    ANN-H.nnf-l1.wparam / .bparam                   float32 weights [out, in] and biases [out]
"""

from __future__ import annotations

import bz2
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._layout import AEVLayout

#: NeuroChem activation codes this reader understands.
CELU, LINEAR = 9, 6
CELU_ALPHA = 0.1


@dataclass
class AEVConstants:
    """AEV hyper-parameters (Angstrom, Angstrom^-2, radians). cutoff_fn: "cosine" or
    "smooth"; cutoff_fn_params: {"order": int, "eps": float} of "smooth" (None: none written,
    TorchANI's defaults 2 and 1e-10 at load)."""

    radial_cutoff: float
    angular_cutoff: float
    eta_r: float
    shf_r: list[float]
    eta_a: float
    zeta: float
    shf_a: list[float]
    shf_z: list[float]
    cutoff_fn: str = "cosine"
    cutoff_fn_params: dict | None = None

    def length(self, n_species: int) -> int:
        """Number of AEV features for ``n_species`` elements."""
        return AEVLayout.of(vars(self), n_species).length


@dataclass
class Ensemble:
    """An ANI ensemble as plain arrays.

    ``networks[e][m]`` is the list of ``(weight [out, in], bias [out] or None)`` layers of
    member ``m`` for element ``elements[e]``; hidden layers use ``activation`` (NeuroChem's:
    CELU, alpha 0.1), the last is linear with one output (Hartree). ``prescaled``: the graph
    stores weights scaled by 1 / alpha for a faster CELU (CELU only; rounds the weights, so
    float64 runs lose ~5e-9 Ha/atom); otherwise the weights as given. ``pair_potentials``:
    the metadata entries of pair potentials added to the energy (export.md).
    """

    elements: list[str]
    aev: AEVConstants
    self_energies: list[float]
    networks: list[list[list[tuple[np.ndarray, np.ndarray | None]]]]
    provenance: dict = field(default_factory=dict)
    activation: dict = field(default_factory=lambda: {"hidden": "celu", "alpha": CELU_ALPHA})
    prescaled: bool = True
    pair_potentials: list[dict] = field(default_factory=list)

    @property
    def ensemble_size(self) -> int:
        return len(self.networks[0])


class NeuroChemError(ValueError):
    """A NeuroChem file is missing, malformed or uses a feature pyani does not support."""


def read_info(info_file: str | Path) -> Ensemble:
    """Read a NeuroChem ensemble from its ``.info`` file."""
    info_file = Path(info_file)
    if not info_file.is_file():
        raise FileNotFoundError(f"NeuroChem info file not found: {info_file}")
    lines = [ln.strip() for ln in info_file.read_text().splitlines() if ln.strip()]
    if len(lines) < 4:
        raise NeuroChemError(
            f"{info_file}: expected 4 lines (constants, self energies, prefix, size), got {len(lines)}"
        )
    base = info_file.parent
    elements, aev = read_constants(base / lines[0])
    self_energies = read_self_energies(base / lines[1], elements)
    try:
        size = int(lines[3])
    except ValueError:
        raise NeuroChemError(f"{info_file}: ensemble size {lines[3]!r} is not an integer") from None
    prefix = base / lines[2]
    members = [prefix.parent / f"{prefix.name}{k}" / "networks" for k in range(size)]
    networks = [[read_network(m / f"ANN-{el}.nnf") for m in members] for el in elements]
    n_in = aev.length(len(elements))
    for el, per_member in zip(elements, networks):
        shapes = [[w.shape for w, _ in layers] for layers in per_member]
        if any(s != shapes[0] for s in shapes):
            raise NeuroChemError(f"{info_file}: members of element {el} have different layer shapes")
        if shapes[0][0][1] != n_in:
            raise NeuroChemError(f"{info_file}: network of {el} takes {shapes[0][0][1]} inputs, AEV has {n_in}")
    provenance = {"source": "NeuroChem", "info_file": info_file.name}
    return Ensemble(elements, aev, self_energies, networks, provenance)


def _parse_value(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        return [v.strip() for v in text.strip("[]").split(",") if v.strip()]
    return [text]


def read_constants(path: Path) -> tuple[list[str], AEVConstants]:
    """Read a ``.params`` file: the element list and the AEV constants."""
    if not path.is_file():
        raise FileNotFoundError(f"NeuroChem constants file not found: {path}")
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = _parse_value(value)
    needed = ["Rcr", "Rca", "EtaR", "ShfR", "Zeta", "ShfZ", "EtaA", "ShfA", "Atyp"]
    missing = [k for k in needed if k not in values]
    if missing:
        raise NeuroChemError(f"{path}: missing constants {missing}")

    def number(key: str) -> float:
        if len(values[key]) != 1:
            raise NeuroChemError(f"{path}: {key} must hold exactly one value, got {values[key]}")
        return float(values[key][0])

    aev = AEVConstants(
        radial_cutoff=number("Rcr"),
        angular_cutoff=number("Rca"),
        eta_r=number("EtaR"),
        shf_r=[float(v) for v in values["ShfR"]],
        eta_a=number("EtaA"),
        zeta=number("Zeta"),
        shf_a=[float(v) for v in values["ShfA"]],
        shf_z=[float(v) for v in values["ShfZ"]],
    )
    return values["Atyp"], aev


def read_self_energies(path: Path, elements: list[str]) -> list[float]:
    """Read ``sae_linfit.dat`` (lines ``symbol,index=energy``), in the order of ``elements``."""
    if not path.is_file():
        raise FileNotFoundError(f"NeuroChem self energies file not found: {path}")
    energies: dict[str, float] = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            energies[key.split(",")[0].strip()] = float(value)
    missing = [el for el in elements if el not in energies]
    if missing:
        raise NeuroChemError(f"{path}: no self energy for {missing}")
    return [energies[el] for el in elements]


_LAYER = re.compile(r"layer\s*\[(.*?)\n\s*\]", re.S)
_FILE = re.compile(r"FILE:([^\[;]+)\[(\d+)\]")


def read_network(nnf: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read one atomic network: a list of ``(weight [out, in], bias [out])`` float32 layers."""
    if not nnf.is_file():
        raise FileNotFoundError(f"NeuroChem network file not found: {nnf}")
    raw = nnf.read_bytes()
    try:
        # "<byte count>=\n" then a bz2 stream.
        text = bz2.decompress(raw[raw.index(b"=") + 2 :]).decode("ascii")
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise NeuroChemError(f"{nnf}: not a bz2-compressed NeuroChem network ({err})") from None
    layers = []
    blocks = _LAYER.findall(text)
    if not blocks:
        raise NeuroChemError(f"{nnf}: no layers found")
    for k, block in enumerate(blocks):
        fields = {}
        for item in block.split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                fields[key.strip()] = value.strip()
        try:
            n_out, n_in = int(fields["nodes"]), int(fields["blocksize"])
            activation = int(fields["activation"])
            (w_file, w_size), (b_file, b_size) = (_FILE.match(fields[key]).groups() for key in ("weights", "biases"))
        except (KeyError, AttributeError, ValueError):
            raise NeuroChemError(f"{nnf}: layer {k + 1} is malformed") from None
        last = k == len(blocks) - 1
        if activation != (LINEAR if last else CELU):
            raise NeuroChemError(
                f"{nnf}: layer {k + 1} has activation {activation}; pyani supports CELU (9) "
                "hidden layers and a linear (6) output layer"
            )
        if int(w_size) != n_out * n_in or int(b_size) != n_out:
            raise NeuroChemError(f"{nnf}: layer {k + 1} parameter sizes do not match its shape")
        weight = _read_floats(nnf.parent / w_file, n_out * n_in).reshape(n_out, n_in)
        bias = _read_floats(nnf.parent / b_file, n_out)
        if layers and layers[-1][0].shape[0] != n_in:
            raise NeuroChemError(f"{nnf}: layer {k + 1} input size does not match the layer before")
        layers.append((weight, bias))
    if layers[-1][0].shape[0] != 1:
        raise NeuroChemError(f"{nnf}: the output layer must have one node")
    return layers


def _read_floats(path: Path, count: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"NeuroChem parameter file not found: {path}")
    data = np.fromfile(path, dtype="<f4")
    if data.size != count:
        raise NeuroChemError(f"{path}: expected {count} float32 values, found {data.size}")
    return data.astype(np.float32)
