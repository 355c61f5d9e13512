"""The networks' activations (pyani/export/activations.py) and unscaled, bias-free graphs, without
torch: random ensembles built from arrays, against a NumPy forward pass in float64 (energies to
1e-12) and finite differences (the hand-written backward pass), float32 and float64, both
backends. TorchANI itself is the oracle in tests_torch/."""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracles import random_molecule, reference_aev

import pyani
from pyani.export.neurochem import AEVConstants, Ensemble
from pyani.export.onnx_graph import build_model

AEV = AEVConstants(
    radial_cutoff=5.0,
    angular_cutoff=3.4,
    eta_r=16.0,
    shf_r=[0.9, 1.7, 2.6, 3.9],
    eta_a=8.0,
    zeta=14.1,
    shf_a=[0.9, 1.8, 2.7],
    shf_z=[0.3, 1.2, 2.2],
)
ELEMENTS = ["H", "C", "O"]
N_MEMBERS = 3  # not a power of two: the mean's 1/M is not exact in float32

_erf = np.vectorize(math.erf)


def numpy_activation(spec: dict, z: np.ndarray) -> np.ndarray:
    name = spec["hidden"]
    if name == "celu":
        a = spec["alpha"]
        return np.maximum(z, 0) + a * (np.exp(np.minimum(z, 0) / a) - 1)
    if name == "gelu":
        return 0.5 * z * (1 + _erf(z / math.sqrt(2)))
    if name == "gelu_tanh":
        return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
    if name == "silu":
        return z / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    assert name == "softplus"
    return np.where(z > spec.get("threshold", 20.0), z, np.log1p(np.exp(np.minimum(z, 50))))


def random_ensemble(spec: dict, bias: bool, seed: int = 0) -> Ensemble:
    """Float32-exact random weights, per element different depths; large enough pre-activations
    that every branch of each activation is visited (softplus above its threshold too)."""
    rng = np.random.default_rng(seed)
    n_in = AEV.length(len(ELEMENTS))
    shapes = {"H": [n_in, 12, 1], "C": [n_in, 10, 8, 1], "O": [n_in, 9, 7, 5, 1]}
    networks = []
    for el in ELEMENTS:
        dims = shapes[el]
        members = []
        for _ in range(N_MEMBERS):
            layers = []
            for n_a, n_b in zip(dims[:-1], dims[1:]):
                w = rng.normal(scale=1.5 / math.sqrt(n_a), size=(n_b, n_a)).astype(np.float32).astype(np.float64)
                b = rng.normal(scale=0.5, size=n_b).astype(np.float32).astype(np.float64) if bias else None
                layers.append((w, b))
            members.append(layers)
        networks.append(members)
    return Ensemble(
        list(ELEMENTS), AEV, [-0.5, -38.0, -75.0], networks, {"source": "test"}, activation=spec, prescaled=False
    )


def numpy_energy(ens: Ensemble, numbers, positions) -> float:
    species = np.array([ELEMENTS.index({1: "H", 6: "C", 8: "O"}[z]) for z in numbers])
    aev = reference_aev(positions, species, len(ELEMENTS), vars(ens.aev))
    total = 0.0
    for i, s in enumerate(species):
        for layers in ens.networks[s]:
            x = aev[i]
            for k, (w, b) in enumerate(layers):
                x = w @ x + (0 if b is None else b)
                if k < len(layers) - 1:
                    x = numpy_activation(ens.activation, x)
            total += x[0] / N_MEMBERS
        total += ens.self_energies[s]
    return total


# (activation, layers with biases or not)
CASES = [
    ({"hidden": "celu", "alpha": 0.1}, True),
    ({"hidden": "celu", "alpha": 0.7}, False),
    ({"hidden": "gelu"}, False),
    ({"hidden": "gelu_tanh"}, True),
    ({"hidden": "silu"}, False),
    ({"hidden": "tanh"}, True),
    ({"hidden": "softplus", "threshold": 1.5}, True),
]


@pytest.mark.parametrize(
    ("spec", "bias"), CASES, ids=lambda c: f"{c['hidden']}{c.get('alpha', '')}" if isinstance(c, dict) else f"bias={c}"
)
def test_activation_forward_and_backward(spec, bias, backend, tmp_path):
    ens = random_ensemble(spec, bias)
    path = tmp_path / "model.onnx"
    path.write_bytes(build_model(ens))
    rng = np.random.default_rng(1)
    numbers, positions = random_molecule(rng, 8, elements=(1, 6, 8), box=3.0)
    want = numpy_energy(ens, numbers, positions)
    for precision, tol in (("float64", 1e-12), ("float32", 2e-5)):
        model = pyani.load(path, backend=backend, precision=precision)
        assert model.metadata["activation"]["hidden"] == spec["hidden"]
        assert model.metadata["activation"]["prescaled"] is False
        r = model.compute(numbers, positions, member_forces=True)
        assert abs(r.energy - want) < tol * max(1.0, abs(want)), precision
        assert np.abs(r.member_forces.mean(axis=0) - r.forces).max() < 1e-6
        if precision == "float64":
            h = 1e-5
            for _ in range(1):
                u = rng.normal(size=positions.shape)
                fd = (numpy_energy(ens, numbers, positions + h * u) - numpy_energy(ens, numbers, positions - h * u)) / (
                    2 * h
                )
                assert abs(-np.sum(r.forces * u) - fd) < 1e-7 * max(1.0, abs(fd))


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation 'relu' is not supported"):
        build_model(random_ensemble({"hidden": "relu"}, True))
    with pytest.raises(ValueError, match="beta = 1"):
        build_model(random_ensemble({"hidden": "softplus", "beta": 2.0}, True))
    ens = random_ensemble({"hidden": "gelu"}, True)
    ens.prescaled = True
    with pytest.raises(ValueError, match="prescaled weights need a CELU"):
        build_model(ens)


def test_constants_are_exact_in_float64(tmp_path):
    """alpha = 0.1 enters as three float32 parts: a float64 run uses 0.1 to double precision
    (one float32 would be 1.5e-9 off), so a CELU network matches NumPy to 1e-12."""
    ens = random_ensemble({"hidden": "celu", "alpha": 0.1}, True, seed=3)
    path = tmp_path / "m.onnx"
    path.write_bytes(build_model(ens))
    rng = np.random.default_rng(4)
    numbers, positions = random_molecule(rng, 6, elements=(1, 6, 8), box=3.0)
    r = pyani.load(path, precision="float64").compute(numbers, positions, forces=False)
    assert abs(r.energy - numpy_energy(ens, numbers, positions)) < 1e-12
