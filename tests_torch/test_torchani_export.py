"""torchani_to_onnx: TorchANI 2.9 models (NeuroChem ANI-2x perturbed, simple_ani GELU / smooth
cutoff, a 5-element model of other shapes and activations, 2xr-like repulsion, 2dr-like
repulsion + dispersion) exported and run by pyani, against TorchANI in float64: energies per
atom, forces, stress on periodic boxes, on both backends and both precisions."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchani
from torch_reference import neurochem_dir, random_box, random_molecule, round_to_float32, torchani_reference
from torchani.arch import simple_ani
from torchani.nn import ANINetworks, AtomicNetwork, Ensemble

import pyani
from pyani.export import torchani_to_onnx

#: (energy Ha/atom, forces Ha/A, stress Ha/A^3) bounds by pyani precision, vs TorchANI float64
TOLERANCE = {"float32": (2e-6, 5e-5, 2e-6), "float64": (1e-10, 1e-8, 1e-10)}


def perturbed_ani2x():
    """TorchANI's NeuroChem ANI-2x with every weight and bias moved by ~2 % at random."""
    model = torchani.neurochem.load_model_from_name("ani2x")
    generator = torch.Generator().manual_seed(0)
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 0.02 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model


def gelu_smooth():
    """simple_ani: GELU, no biases, a smooth cutoff of unusual order and eps, 3 members, no
    pair potentials."""
    torch.manual_seed(1)
    cutoff = torchani.cutoffs.CutoffSmooth(order=3, eps=1e-8)
    return simple_ani(("H", "C", "N", "O"), "wb97x-631gd", ensemble_size=3, repulsion=False, cutoff_fn=cutoff)


def custom5(activation: torch.nn.Module):
    """Five elements in a non-standard order, other AEV sizes and cutoffs, cosine cutoff,
    5 members of networks with biases, different depths per element and `activation`."""
    torch.manual_seed(2)
    symbols = ("C", "H", "S", "O", "N")
    model = simple_ani(
        symbols,
        "wb97x-631gd",
        ensemble_size=1,
        repulsion=False,
        cutoff_fn="cosine",
        radial_cutoff=4.8,
        angular_cutoff=3.1,
        radial_shifts=10,
        angular_shifts=5,
        sections=6,
        radial_start=0.8,
        angular_start=0.85,
    )
    n_in = model.aev_computer.out_dim
    dims = {
        "C": (n_in, 40, 24, 16, 1),
        "H": (n_in, 32, 1),
        "S": (n_in, 24, 20, 1),
        "O": (n_in, 36, 12, 1),
        "N": (n_in, 28, 28, 1),
    }

    def member():
        return ANINetworks({el: AtomicNetwork(dims[el], activation=activation, bias=True) for el in symbols})

    model.potentials["nnp"].neural_networks = Ensemble([member() for _ in range(5)])
    return model


def like_2xr():
    """simple_ani with xTB repulsion (smooth cutoff, GELU), ANI-2x elements in ANI-2x order."""
    torch.manual_seed(3)
    return simple_ani(("H", "C", "N", "O", "S", "F", "Cl"), "wb97x-631gd", ensemble_size=2, repulsion=True)


def like_2dr():
    """simple_ani with xTB repulsion and D3(BJ) dispersion (B97-3c, 8 A cutoff), by atomic number."""
    torch.manual_seed(4)
    return simple_ani(
        ("H", "C", "N", "O", "F", "S", "Cl"), "b973c-def2mtzvp", ensemble_size=2, repulsion=True, dispersion=True
    )


MODELS = {
    "ani2x": (perturbed_ani2x, (1, 6, 7, 8, 9, 16, 17)),
    "gelu_smooth": (gelu_smooth, (1, 6, 7, 8)),
    "custom5_celu": (lambda: custom5(torch.nn.CELU(alpha=0.6)), (1, 6, 7, 8, 16)),
    "custom5_silu": (lambda: custom5(torch.nn.SiLU()), (1, 6, 7, 8, 16)),
    "custom5_tanh": (lambda: custom5(torch.nn.Tanh()), (1, 6, 7, 8, 16)),
    "custom5_softplus": (lambda: custom5(torch.nn.Softplus()), (1, 6, 7, 8, 16)),
    "custom5_gelu_tanh": (lambda: custom5(torch.nn.GELU(approximate="tanh")), (1, 6, 7, 8, 16)),
    "2xr": (like_2xr, (1, 6, 7, 8, 9, 16, 17)),
    "2dr": (like_2dr, (1, 6, 7, 8, 9, 16, 17)),
}

_exported: dict = {}


def _write(data: bytes, name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="pyani-export-")) / f"{name}.onnx"
    path.write_bytes(data)
    return path


def exported(name: str):
    """(TorchANI model in float64 with float32-exact weights, its exported .onnx bytes), once."""
    if name not in _exported:
        factory, _ = MODELS[name]
        model = factory().double()
        round_to_float32(model)
        model.requires_grad_(False)
        _exported[name] = (model, torchani_to_onnx(model))
    return _exported[name]


def structures(name: str):
    """Two molecules and one periodic box of the model's elements: (numbers, positions, cell)."""
    rng = np.random.default_rng(sum(map(ord, name)))
    elements = MODELS[name][1]
    out = [(*random_molecule(rng, n, elements), None) for n in (9, 17)]
    out.append(random_box(rng, 40, elements))
    return out


def deviations(name: str, backend: str, precision: str) -> tuple[float, float, float]:
    """Max |pyani - TorchANI| over the structures: energy per atom, forces, stress."""
    torch_model, data = exported(name)
    model = pyani.load(_write(data, name), backend=backend, precision=precision)
    worst = [0.0, 0.0, 0.0]
    for numbers, positions, cell in structures(name):
        periodic = cell is not None
        energy, forces, stress = torchani_reference(torch_model, numbers, positions, cell)
        r = model.compute(numbers, positions, cell, periodic, forces=True, stress=periodic)
        worst[0] = max(worst[0], abs(r.energy - energy) / len(numbers))
        worst[1] = max(worst[1], float(np.abs(r.forces - forces).max()))
        if periodic:
            worst[2] = max(worst[2], float(np.abs(r.stress - stress).max()))
    return tuple(worst)


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_matches_torchani(name, precision, backend, record_property):
    energy, forces, stress = deviations(name, backend, precision)
    record_property("deviations", (energy, forces, stress))
    print(f"\n{name} {backend} {precision}: energy {energy:.2e} Ha/atom, forces {forces:.2e} Ha/A, stress {stress:.2e}")
    bound = TOLERANCE[precision]
    assert energy <= bound[0] and forces <= bound[1] and stress <= bound[2], (energy, forces, stress)


@pytest.mark.parametrize("name", ["custom5_celu", "2dr"])
def test_atomic_energies_match_torchani(name, backend):
    """Per-atom energies (networks, self energies, half of each pair energy) as TorchANI's."""
    model, data = exported(name)
    numbers, positions, cell = structures(name)[2]
    species = torch.tensor(numbers[None])
    coords = torch.tensor(positions[None])
    pbc = torch.tensor([True, True, True])
    want = model.atomic_energies((species, coords), cell=torch.tensor(cell), pbc=pbc).energies[0].numpy()
    r = pyani.load(_write(data, name), backend=backend, precision="float64").compute(
        numbers, positions, cell, True, atomic=True, forces=False
    )
    assert np.abs(r.atomic_energies - want).max() < 1e-10


def test_metadata_describes_the_export():
    model, data = exported("2dr")
    meta = pyani.load(_write(data, "2dr")).metadata
    assert meta["elements"] == ["H", "C", "N", "O", "F", "S", "Cl"]
    assert meta["ensemble_size"] == 2
    assert meta["aev"]["cutoff_fn"] == "smooth" and meta["aev"]["cutoff_fn_params"] == {"order": 2, "eps": 1e-10}
    assert meta["activation"]["hidden"] == "gelu" and meta["activation"]["prescaled"] is False
    kinds = [p["kind"] for p in meta["pair_potentials"]]
    assert kinds == ["repulsion_xtb", "dispersion_d3bj"]
    from torchani.units import ANGSTROM_TO_BOHR

    assert all(p["bohr_per_angstrom"] == ANGSTROM_TO_BOHR for p in meta["pair_potentials"])
    d3 = meta["pair_potentials"][1]
    assert np.array(d3["c6"]).shape == (7, 7, 5, 5) and d3["cutoff"] == 8.0
    assert d3["k1"] == 16 and d3["k2"] == 4 / 3 and d3["k3"] == 4 and d3["eps"] == 1e-35
    xtb = meta["pair_potentials"][0]
    assert xtb["cutoff"] == 5.2 and np.allclose(xtb["y_ab"], model.potentials["repulsion_xtb"].y_ab.numpy())
    assert meta["self_energies"] == model.energy_shifter.self_energies.tolist()


def test_single_member_and_active_members(backend):
    """model[i] exports that member alone; set_active_members keeps only the active ones."""
    model, _ = exported("custom5_celu")
    numbers, positions, _ = structures("custom5_celu")[0]
    one = model[3]
    path = _write(torchani_to_onnx(one), "member3")
    m = pyani.load(path, backend=backend, precision="float64")
    assert m.ensemble_size == 1
    energy, forces, _ = torchani_reference(one, numbers, positions)
    r = m.compute(numbers, positions)
    assert abs(r.energy - energy) < 1e-10 * len(numbers) and np.abs(r.forces - forces).max() < 1e-8
    # member forces of the full ensemble (pyani's member plans) match TorchANI's member 3
    full = pyani.load(_write(exported("custom5_celu")[1], "full"), backend=backend, precision="float64")
    rm = full.compute(numbers, positions, member_forces=True)
    assert np.abs(rm.member_forces[3] - forces).max() < 1e-8
    model.neural_networks.set_active_members([0, 2])
    try:
        m = pyani.load(_write(torchani_to_onnx(model), "active"), backend=backend, precision="float64")
        energy, _, _ = torchani_reference(model, numbers, positions)
    finally:
        model.neural_networks.set_active_members([0, 1, 2, 3, 4])
    assert m.ensemble_size == 2 and abs(m.compute(numbers, positions).energy - energy) < 1e-9


def test_neurochem_load_exports_like_the_neurochem_converter():
    """ANI-2x through TorchANI equals pyani's own NeuroChem conversion (same weights): energies
    agree to float32 rounding of the prescaled weights, in float64."""
    model = torchani.neurochem.load_model_from_name("ani2x").double()
    via_torch = pyani.load(_write(torchani_to_onnx(model), "ani2x"), precision="float64")
    via_neurochem = pyani.load(neurochem_dir() / "ani-2x_8x.info", precision="float64")
    assert via_torch.elements == via_neurochem.elements
    assert np.allclose(via_torch.self_energies, via_neurochem.self_energies, rtol=0, atol=1e-12)
    rng = np.random.default_rng(5)
    numbers, positions = random_molecule(rng, 12, (1, 6, 7, 8, 9, 16, 17))
    a, b = via_torch.compute(numbers, positions), via_neurochem.compute(numbers, positions)
    assert abs(a.energy - b.energy) < 1e-7 * len(numbers)
    assert np.abs(a.forces - b.forces).max() < 1e-6


# --- refusals: every part pyani cannot run is named, never dropped ---------------------------


def _small():
    torch.manual_seed(7)
    return simple_ani(("H", "C"), "wb97x-631gd", ensemble_size=2, repulsion=False, cutoff_fn="cosine")


def _refused(model, *words):
    with pytest.raises(ValueError) as info:
        torchani_to_onnx(model)
    message = str(info.value)
    assert all(w in message for w in words), message


def test_refuses_unknown_activation():
    model = _small()
    for member in model.neural_networks.members:
        member.atomics["C"].activation = torch.nn.ReLU()
    _refused(model, "ReLU", "activation")


def test_refuses_softplus_beta():
    model = _small()
    for member in model.neural_networks.members:
        for el in ("H", "C"):
            member.atomics[el].activation = torch.nn.Softplus(beta=2.0)
    _refused(model, "Softplus", "beta")


def test_refuses_mixed_activations():
    model = _small()
    model.neural_networks.members[1].atomics["H"].activation = torch.nn.SiLU()
    _refused(model, "activation", "member 1")


def test_refuses_other_containers():
    _refused(_small().to_infer_model(), "BmmEnsemble")
    torch.manual_seed(8)
    shared = simple_ani(("H", "C"), "wb97x-631gd", repulsion=False, container="ANISharedNetworks")
    _refused(shared, "ANISharedNetworks")
    single = simple_ani(("H", "C"), "wb97x-631gd", repulsion=False, container="SingleNN")
    _refused(single, "SingleNN")


def test_refuses_charge_networks():
    torch.manual_seed(9)
    _refused(torchani.arch.simple_aniq(("H", "C"), "wb97x-631gd", repulsion=False), "charge networks")


def test_refuses_vector_eta_and_other_terms():
    model = _small()
    model.aev_computer.radial.eta = torch.tensor([16.0, 8.0])
    _refused(model, "radial eta", "scalar")

    class MyRadial(torchani.aev.ANIRadial):
        def compute(self, distances):
            return super().compute(distances) * 2

    model = _small()
    old = model.aev_computer.radial
    model.aev_computer.radial = MyRadial(float(old.eta), old.shifts.tolist(), old.cutoff)
    _refused(model, "MyRadial")


def test_refuses_other_cutoff_functions():
    model = _small()
    fn = torchani.cutoffs.CutoffBiweight()
    model.aev_computer.radial.cutoff_fn = fn
    model.aev_computer.angular.cutoff_fn = fn
    _refused(model, "CutoffBiweight")


def test_refuses_other_potentials():
    model = _small()
    from torchani.potentials import RepulsionZBL

    model.potentials["zbl"] = RepulsionZBL(("H", "C"), cutoff=5.2)
    _refused(model, "zbl", "RepulsionZBL")


def test_refuses_infinite_pair_cutoff():
    torch.manual_seed(10)
    model = simple_ani(("H", "C"), "wb97x-631gd", repulsion=True, repulsion_cutoff=False)
    _refused(model, "repulsion_xtb", "cutoff inf")


def test_refuses_what_is_not_a_model():
    _refused(torch.nn.Linear(3, 1), "torchani.arch.ANI")
    with pytest.raises(ValueError, match=r"torchani\.arch\.ANI.*got Ensemble"):
        torchani_to_onnx(_small().neural_networks)


def test_disabled_pair_potential_is_left_out_and_recorded():
    model = like_2xr().double()
    round_to_float32(model)
    model.set_enabled("repulsion_xtb", False)
    meta = pyani.load(_write(torchani_to_onnx(model), "disabled")).metadata
    assert "pair_potentials" not in meta and meta["provenance"]["disabled_potentials"] == ["repulsion_xtb"]


def test_cli_exports_by_name_and_by_factory(tmp_path, monkeypatch):
    from pyani.cli import main

    out = tmp_path / "ani2x.onnx"
    assert main(["export", "torchani", "ani2x", str(out)]) == 0
    m = pyani.load(out)
    assert m.elements == ("H", "C", "N", "O", "S", "F", "Cl") and m.ensemble_size == 8
    (tmp_path / "mymodels.py").write_text(
        "import torch\nfrom torchani.arch import simple_ani\n"
        "def small():\n    torch.manual_seed(0)\n"
        "    return simple_ani(('H', 'O'), 'wb97x-631gd', ensemble_size=2, repulsion=False, cutoff_fn='cosine')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "small.onnx"
    assert main(["export", "torchani", "mymodels:small", str(out), "--member", "1"]) == 0
    m = pyani.load(out)
    assert m.elements == ("H", "O") and m.ensemble_size == 1
    assert main(["export", "torchani", "mymodels:nothing", str(tmp_path / "x.onnx")]) == 1
    assert main(["export", "torchani", "ani2x", str(tmp_path / "x.txt")]) == 2


def test_gelu_erf_float64_is_exact():
    """The float64 GELU's erf (pyani/_erf_graph.py) against math.erf."""
    import onnxruntime as ort

    from pyani import _onnx_writer as w
    from pyani._precision import float64_model

    g = w.graph(
        [w.node("Erf", ["x"], ["y"], "erf")],
        "g",
        [w.value_info("x", w.FLOAT, ["n"])],
        [w.value_info("y", w.FLOAT, ["n"])],
    )
    model = float64_model(w.model(g, ir_version=8, opset=17, producer="test", metadata={}))
    x = np.concatenate([np.linspace(-9, 9, 40001), [0.0, 1e-300, -1e-9, 0.4999999, 0.5, 40.0, -1e10]])
    y = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want = np.array([math.erf(v) for v in x])
    assert y.dtype == np.float64 and np.abs(y - want).max() < 3e-15
    assert np.all(np.abs(y - want) <= 3e-15 * np.maximum(np.abs(want), 1e-300) + 3e-16 * (np.abs(x) >= 0.5))
