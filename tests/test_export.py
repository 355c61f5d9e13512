"""NeuroChem -> ONNX: a tiny synthetic ensemble checked against a NumPy forward pass (energy)
and finite differences (the backward pass written into the graph), plus reader errors."""

from __future__ import annotations

import bz2
import json
from importlib.resources import files

import numpy as np
import pytest
from conftest import ANI2X_INFO, get_model
from oracles import random_molecule, reference_aev

import pyani
from pyani.export import neurochem_to_onnx
from pyani.export.neurochem import NeuroChemError

ELEMENTS = ["H", "C"]
SHAPES = [(16, 6), (6, 4), (4, 1)]  # AEV length 2*2 + 3*2*2 = 16
SELF_ENERGIES = [-0.5, -38.0]


def write_ensemble(root, n_members=2, activation=9, seed=0):
    """Write a NeuroChem ensemble with random weights; return (info path, weights)."""
    rng = np.random.default_rng(seed)
    (root / "tiny").mkdir()
    (root / "tiny" / "consts.params").write_text(
        "TM = 1\nRcr = 5.2000e+00\nRca = 3.5000e+00\nEtaR = [1.6000000e+01]\n"
        "ShfR = [9.0000000e-01,2.0000000e+00]\nZeta = [3.2000000e+01]\n"
        "ShfZ = [1.9634954e-01,1.1780972e+00]\nEtaA = [8.0000000e+00]\n"
        "ShfA = [9.0000000e-01,1.5500000e+00]\nAtyp = [H,C]\n"
    )
    (root / "tiny" / "sae.dat").write_text(
        "".join(f"{el},{k}={e}\n" for k, (el, e) in enumerate(zip(ELEMENTS, SELF_ENERGIES)))
    )
    weights = {}
    for m in range(n_members):
        net = root / "tiny" / f"train{m}" / "networks"
        net.mkdir(parents=True)
        for el in ELEMENTS:
            layers, text = [], f"inputsize=16;\natom_net {el} $\n"
            for k, (n_in, n_out) in enumerate(SHAPES):
                w = rng.normal(scale=0.3, size=(n_out, n_in)).astype(np.float32)
                b = rng.normal(scale=0.1, size=n_out).astype(np.float32)
                stem = f"ANN-{el}.nnf-l{k + 1}"
                w.tofile(net / f"{stem}.wparam")
                b.tofile(net / f"{stem}.bparam")
                act = 6 if k == len(SHAPES) - 1 else activation
                text += (
                    f"layer [\nnodes={n_out};\nactivation={act};\ntype=0;\nblocksize={n_in};\n"
                    f"weights=FILE:{stem}.wparam[{n_in * n_out}];\n"
                    f"biases=FILE:{stem}.bparam[{n_out}];\n]\n"
                )
                layers.append((w.astype(np.float64), b.astype(np.float64)))
            body = bz2.compress(text.encode("ascii"))
            (net / f"ANN-{el}.nnf").write_bytes(f"{len(body)}=\n".encode() + body)
            weights[m, el] = layers
    info = root / "tiny.info"
    info.write_text(f"tiny/consts.params\ntiny/sae.dat\ntiny/train\n{n_members}\n")
    return info, weights


def numpy_energy(weights, n_members, numbers, positions, aev_constants):
    species = np.array([ELEMENTS.index({1: "H", 6: "C"}[z]) for z in numbers])
    aev = reference_aev(positions, species, 2, aev_constants)
    total = 0.0
    for i, s in enumerate(species):
        for m in range(n_members):
            x = aev[i]
            layers = weights[m, ELEMENTS[s]]
            for w, b in layers[:-1]:
                z = w @ x + b
                x = np.where(z > 0, z, 0.1 * (np.exp(z / 0.1) - 1))
            total += (layers[-1][0] @ x + layers[-1][1])[0] / n_members
        total += SELF_ENERGIES[s]
    return total


def test_synthetic_ensemble_round_trip(tmp_path, backend):
    info, weights = write_ensemble(tmp_path, n_members=3)
    out = tmp_path / "tiny.onnx"
    data = neurochem_to_onnx(info, out)
    assert out.read_bytes() == data
    for source in (info, out):
        model = pyani.load(source, backend=backend)
        assert model.elements == ("H", "C") and model.ensemble_size == 3
        meta = model.metadata
        assert meta["aev"]["length"] == 16 and meta["self_energies"] == SELF_ENERGIES
        rng = np.random.default_rng(1)
        numbers, pos = random_molecule(rng, 7, elements=(1, 6), box=3.0)
        r = model.compute(numbers, pos, atomic=True)
        want = numpy_energy(weights, 3, numbers, pos, meta["aev"])
        assert abs(r.energy - want) < 1e-5
        assert abs(r.atomic_energies.sum() - r.energy) < 1e-9
        h = 1e-4
        for _ in range(2):
            u = rng.normal(size=pos.shape)
            fd = (
                numpy_energy(weights, 3, numbers, pos + h * u, meta["aev"])
                - numpy_energy(weights, 3, numbers, pos - h * u, meta["aev"])
            ) / (2 * h)
            assert abs(-np.sum(r.forces * u) - fd) < 1e-4 * max(1.0, abs(fd))


def test_metadata_describes_the_model(tmp_path):
    info, _ = write_ensemble(tmp_path)
    model = pyani.load(info)
    meta = model.metadata
    for key in (
        "format_version",
        "elements",
        "atomic_numbers",
        "self_energies",
        "ensemble_size",
        "aev",
        "activation",
        "provenance",
    ):
        assert key in meta
    assert meta["atomic_numbers"] == [1, 6]
    assert meta["aev"]["cutoff_fn"] == "cosine"
    assert json.loads(json.dumps(meta)) == meta


def test_energy_only_call_skips_the_gradient(tmp_path):
    info, _ = write_ensemble(tmp_path)
    model = pyani.load(info)
    aev = np.zeros((3, 16), dtype=np.float32)
    _, grad = model.networks.default.run(aev, np.array([2, 1]), gradient=False)
    assert grad.shape == (0, 16)
    _, grad = model.networks.default.run(aev, np.array([2, 1]), gradient=True)
    assert grad.shape == (3, 16)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda root: (root / "tiny" / "train1" / "networks" / "ANN-C.nnf").unlink(), "network file not found"),
        (
            lambda root: (root / "tiny" / "train0" / "networks" / "ANN-H.nnf-l2.wparam").write_bytes(b"\0" * 8),
            "expected 24 float32 values",
        ),
        (
            lambda root: (root / "tiny" / "train0" / "networks" / "ANN-H.nnf").write_bytes(b"12=\nnot bz2"),
            "not a bz2-compressed NeuroChem network",
        ),
        (lambda root: (root / "tiny" / "sae.dat").write_text("H,0=-0.5\n"), r"no self energy for \['C'\]"),
        (lambda root: (root / "tiny.info").write_text("tiny/consts.params\n"), "expected 4 lines"),
        (lambda root: (root / "tiny" / "consts.params").write_text("Rcr = 5.2\n"), "missing constants"),
    ],
)
def test_reader_errors(tmp_path, damage, match):
    info, _ = write_ensemble(tmp_path)
    damage(tmp_path)
    with pytest.raises((NeuroChemError, FileNotFoundError), match=match):
        neurochem_to_onnx(info)


def test_unsupported_activation(tmp_path):
    info, _ = write_ensemble(tmp_path, activation=5)
    with pytest.raises(NeuroChemError, match="activation 5"):
        neurochem_to_onnx(info)


def test_ani2x_from_neurochem_info(backend):
    """ANI-2x loads by name with its own constants: nothing is sized for ANI-1x."""
    model = get_model("ani-2x", backend)
    assert model.elements == ("H", "C", "N", "O", "S", "F", "Cl")
    assert model.metadata["aev"]["length"] == 1008
    assert model.cutoff == pytest.approx(5.1)
    assert model.metadata["provenance"]["info_file"] == ANI2X_INFO.name


def test_initializers_read_without_onnx_match_onnx(tmp_path):
    """pyani reads first-layer weights with its own protobuf reader (pyani._onnx_file)."""
    onnx = pytest.importorskip("onnx", reason="the optional onnx package (pip install onnx)")
    from onnx import numpy_helper

    from pyani import _onnx_file

    path = files("pyani") / "models" / "ani-1x.onnx"
    data = path.read_bytes()
    proto = onnx.load_model_from_string(data)
    want = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    names = [*want, "not_there"]
    got = _onnx_file.read_initializers(data, names)
    assert set(got) == set(want) and len(got) > 20
    for name, array in want.items():
        assert got[name].dtype == np.float32
        np.testing.assert_array_equal(got[name], array, err_msg=name)
    # float_data instead of raw_data, unpacked dims
    tensor = onnx.helper.make_tensor("w", onnx.TensorProto.FLOAT, [2, 3], [1, 2, 3, 4, 5, 6.5])
    graph = onnx.helper.make_graph([], "g", [], [], initializer=[tensor])
    small = onnx.helper.make_model(graph).SerializeToString()
    np.testing.assert_array_equal(_onnx_file.read_initializers(small, ["w"])["w"], [[1, 2, 3], [4, 5, 6.5]])
    with pytest.raises(ValueError, match="truncated"):
        _onnx_file.read_initializers(data[: len(data) // 2], ["H_w1"])
