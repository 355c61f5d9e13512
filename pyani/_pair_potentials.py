"""Pair potentials of a model (TorchANI's xTB repulsion and two-body D3(BJ) dispersion): built
once from the model file's "pair_potentials" metadata, checked at load, then computed per call.

Each entry of the metadata list is one potential (schema: /work/spec/export.md, "Model-file
metadata"); the backend's kernel objects (``RepulsionXTB``, ``DispersionD3``) compute them in
float64 over the model's neighbour pairs, each using the pairs with r <= its own cutoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _validate

#: Kinds pyani implements -> the backend kernel object computing them.
KERNELS = {"repulsion_xtb": "RepulsionXTB", "dispersion_d3bj": "DispersionD3"}
CUTOFF_FNS = ("smooth", "cosine", "dummy")
D3_REFERENCES = 5

_COMMON = ("kind", "cutoff", "cutoff_fn", "cutoff_fn_params", "bohr_per_angstrom")
#: Fields of each kind besides the common ones: name -> shape ("E" = number of elements), () a number.
_FIELDS = {
    "repulsion_xtb": {"y_ab": ("E", "E"), "sqrt_alpha_ab": ("E", "E"), "k_rep_ab": ("E", "E")},
    "dispersion_d3bj": {
        "s6": (),
        "s8": (),
        "a1": (),
        "a2": (),
        "k1": (),
        "k2": (),
        "k3": (),
        "eps": (),
        "cutoff_radii": ("E", "E"),
        "sqrt_charge_ab": ("E", "E"),
        "covalent_radii": ("E",),
        "c6": ("E", "E", D3_REFERENCES, D3_REFERENCES),
        "cn_a": ("E", "E", D3_REFERENCES, D3_REFERENCES),
        "cn_b": ("E", "E", D3_REFERENCES, D3_REFERENCES),
    },
}


@dataclass
class PairTerms:
    """What the pair potentials add to one call: float64, Hartree and Angstrom."""

    energies: np.ndarray  # [B]
    atomic: np.ndarray | None  # [A], half of each pair to each atom (no energy_mask)
    forces: np.ndarray | None  # [A, 3]
    virial: np.ndarray | None  # [B, 3, 3], sum of outer(vector, dE/dvector)


class PairPotentials:
    """The model's pair potentials (possibly none), in the file's order."""

    def __init__(self, metadata: dict, kernels, n_threads: int, source: str):
        """metadata: the model file's "pyani" metadata; kernels: the backend module."""
        entries = parse(metadata, source)
        n_species = len(metadata["elements"])
        self.kinds = tuple(e["kind"] for e in entries)
        """The kind of each potential ("repulsion_xtb", "dispersion_d3bj")."""
        self.cutoffs = tuple(e["cutoff"] for e in entries)
        """The cutoff of each potential (Angstrom)."""
        self._kernels = [getattr(kernels, KERNELS[e["kind"]])(e, n_species, n_threads) for e in entries]

    @property
    def cutoff(self) -> float:
        """The largest cutoff (Angstrom), 0 without potentials."""
        return max(self.cutoffs, default=0.0)

    @property
    def reach(self) -> float:
        """How far from an atom (Angstrom) the atoms its pair energies depend on can be: the
        cutoff, or twice the D3 cutoff (a neighbour's coordination number counts atoms a cutoff
        beyond it); 0 without potentials."""
        return max((2 * c if k == "dispersion_d3bj" else c for k, c in zip(self.kinds, self.cutoffs)), default=0.0)

    @property
    def has_dispersion(self) -> bool:
        """Whether a D3 term is present (its coordination numbers couple atoms two cutoffs apart)."""
        return "dispersion_d3bj" in self.kinds

    def compute(self, system, counted=None, *, atomic=False, forces=False, virial=False) -> PairTerms | None:
        """The potentials' sum over the system's pairs (None without potentials). counted: bool
        [A] (energy_mask), the atoms whose energies count: a pair then weighs (m_i + m_j) / 2 in
        energies, forces and virial (TorchANI's split of a pair's energy between its atoms)."""
        if not self._kernels:
            return None
        parts = [
            kernel.compute(
                system.species,
                system.pairs,
                system.vectors,
                system.pair_bounds,
                counted,
                atomic=atomic,
                forces=forces,
                virial=virial,
            )
            for kernel in self._kernels
        ]
        return PairTerms(*(None if terms[0] is None else sum(terms[1:], terms[0]) for terms in zip(*parts)))


def parse(metadata: dict, source: str) -> list[dict]:
    """The checked "pair_potentials" entries (tables as float64 arrays); ValueError naming the
    field at fault for anything malformed or not implemented."""
    entries = metadata.get("pair_potentials", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ValueError(f"{source}: pair_potentials must be a list, got {type(entries).__name__}")
    n_elements = len(metadata["elements"])
    return [_entry(entry, f"{source}: pair_potentials[{k}]", n_elements) for k, entry in enumerate(entries)]


def _entry(entry, where: str, n_elements: int) -> dict:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object, got {type(entry).__name__}")
    kind = entry.get("kind")
    if kind not in _FIELDS:
        raise ValueError(f"{where}.kind: {kind!r} is not implemented (pyani knows {', '.join(_FIELDS)})")
    fields = _FIELDS[kind]
    unknown = sorted(set(entry) - set(_COMMON) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} for kind {kind!r}")
    missing = [k for k in (*_COMMON, *fields) if k not in entry and k != "cutoff_fn_params"]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
    out = {"kind": kind}
    out["cutoff"] = _positive(entry["cutoff"], f"{where}.cutoff", "Angstrom")
    out.update(_cutoff_fn(entry, where))
    out["bohr_per_angstrom"] = _positive(entry["bohr_per_angstrom"], f"{where}.bohr_per_angstrom", "Bohr/Angstrom")
    for name, shape in fields.items():
        if shape == ():
            out[name] = _finite(entry[name], f"{where}.{name}")
        else:
            out[name] = _table(entry[name], f"{where}.{name}", tuple(n_elements if s == "E" else s for s in shape))
    if kind == "dispersion_d3bj":
        _check_d3(out, where)
    return out


def _cutoff_fn(entry: dict, where: str) -> dict:
    # the same names and parameters as the AEV's (TorchANI's defaults for smooth), plus "dummy";
    # no default name: TorchANI's pair potentials default to smooth, the AEV to cosine
    if entry["cutoff_fn"] is None:
        raise ValueError(f"{where}.cutoff_fn must name the cutoff function ({', '.join(CUTOFF_FNS)})")
    name, params = _validate.cutoff_function(entry["cutoff_fn"], entry.get("cutoff_fn_params"), where, CUTOFF_FNS)
    return {"cutoff_fn": name, "cutoff_fn_params": params} if params else {"cutoff_fn": name}


def _check_d3(params: dict, where: str) -> None:
    if params["k1"] <= 0 or params["k2"] <= 0 or params["k3"] <= 0:
        raise ValueError(f"{where}: k1, k2 and k3 must be positive")
    if params["eps"] <= 0:
        raise ValueError(f"{where}.eps must be positive (it keeps C6 = Z / W finite)")
    if np.any(params["covalent_radii"] <= 0):
        raise ValueError(f"{where}.covalent_radii must be positive (Bohr)")


def _finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _positive(value, name: str, unit: str) -> float:
    value = _finite(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be above 0{' ' + unit if unit else ''}, got {value}")
    return value


def _table(value, name: str, shape: tuple) -> np.ndarray:
    try:
        out = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a table of numbers") from None
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (elements in the model's order), got {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must hold finite numbers")
    return out
