"""The AEV's cutoff function: TorchANI's smooth cutoff (aev.cutoff_fn = "smooth") in both
backends, against the NumPy oracle, TorchANI's own AEVs (tests/data/smooth_cutoff.npz) and
finite differences; model files that choose it; bad choices refused at load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, get_model
from oracles import cutoff_function, random_molecule, reference_aev, water_box
from test_export import numpy_energy, write_ensemble

import pyani
from pyani import _backend, _onnx_file
from pyani import _onnx_writer as w
from pyani._model_files import locate

SKEWED = np.array([[7.0, 0.0, 0.0], [2.1, 6.5, 0.0], [-1.3, 1.7, 8.0]])
#: TorchANI's CutoffSmooth defaults; a higher order; an eps so large that the clamp holds fc
#: constant (derivative 0) beyond r = sqrt(0.7) rc, a region random geometries visit.
SMOOTH_PARAMS = [None, {"order": 3, "eps": 1e-6}, {"order": 2, "eps": 0.3}]
PARAM_IDS = ["defaults", "order3", "clamped"]


def smooth(aev: dict, params=None) -> dict:
    """`aev` metadata with the smooth cutoff (params None: TorchANI's defaults, left out)."""
    out = {**aev, "cutoff_fn": "smooth"}
    if params is not None:
        out["cutoff_fn_params"] = params
    return out


def kernels(backend):
    return _backend.resolve(backend)[1]


def kernel_pass(backend, aev, n_species, species, positions, cell=None, pbc=None, dtype="float64", backward=False):
    """The backend's AEVPass of one structure (rows in atom order)."""
    k = kernels(backend)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    pbc = np.zeros(3, bool) if pbc is None else np.broadcast_to(pbc, 3).copy()
    pairs, _, vectors = k.NeighborList(aev["radial_cutoff"], 0.0, 0).compute(positions, cell, pbc)
    computer = k.AEVComputer(aev, n_species, dtype=dtype)
    n = len(species)
    return computer.forward(species.astype(np.int32), pairs, vectors, np.arange(n), n, backward=backward)


def test_oracle_cutoff_is_torchani_formula():
    """The oracle's smooth cutoff, written out: 1 at r = 0, 0 where the default eps clamps,
    exp(1 - 1/eps) where a large eps does."""
    r = np.array([0.0, 2.6, 5.2 * (1 - 1e-12)])
    got = cutoff_function(r, 5.2, "smooth")
    np.testing.assert_allclose(got[:2], [1.0, np.exp(1 - 1 / 0.75)], rtol=1e-15)
    assert got[2] == 0.0
    clamped = cutoff_function(r, 5.2, "smooth", {"order": 3, "eps": 0.9})
    np.testing.assert_allclose(clamped, [1.0, np.exp(1 - 1 / 0.9), np.exp(1 - 1 / 0.9)], rtol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("params", SMOOTH_PARAMS, ids=PARAM_IDS)
def test_smooth_aev_matches_oracle(backend, params, dtype):
    model = get_model("ani-1x", backend)
    aev = smooth(model.metadata["aev"], params)
    rng = np.random.default_rng(30)
    numbers, pos = random_molecule(rng, 14, box=4.5)
    species = np.searchsorted(model.atomic_numbers, numbers)
    tol = 2e-6 if dtype == "float32" else 1e-12
    for cell, pbc in ((None, None), (SKEWED, True), (SKEWED, [True, False, True]), (SKEWED * 0.5, True)):
        got = kernel_pass(backend, aev, 4, species, pos, cell, pbc, dtype).aev
        want = reference_aev(pos, species, 4, aev, cell, pbc)
        cosine = reference_aev(pos, species, 4, model.metadata["aev"], cell, pbc)
        assert got.dtype == dtype and got.shape == want.shape
        assert np.abs(want - cosine).max() > 1e-2  # the cutoff choice shows
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max(), err_msg=f"pbc={pbc}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("params", SMOOTH_PARAMS, ids=PARAM_IDS)
def test_smooth_backward_matches_finite_differences(backend, params, dtype):
    """Forces and virial of E = sum(weights * AEV) against central differences of the float64
    oracle; the clamped case checks the zero derivative where fc is held constant."""
    model = get_model("ani-1x", backend)
    aev = smooth(model.metadata["aev"], params)
    rng = np.random.default_rng(31)
    numbers, pos = random_molecule(rng, 10, box=4.0)
    species = np.searchsorted(model.atomic_numbers, numbers)
    weights = rng.normal(size=(10, 384)).astype(dtype).astype(np.float64)
    for cell, pbc in ((None, None), (SKEWED * 0.8, np.array([True, True, True]))):
        run = kernel_pass(backend, aev, 4, species, pos, cell, pbc, dtype, backward=True)
        forces, virial = run.backward(weights.astype(dtype), forces=True, virial=True)
        assert np.abs(forces).max() > 1e-2

        def energy(p, c=cell, pbc=pbc):
            return float(np.sum(weights * reference_aev(p, species, 4, aev, c, pbc)))

        h = 1e-5
        for _ in range(3):
            u = rng.normal(size=pos.shape)
            fd = (energy(pos + h * u) - energy(pos - h * u)) / (2 * h)
            np.testing.assert_allclose(-np.sum(forces * u), fd, rtol=1e-6, atol=1e-8)
        if cell is not None:
            eps = rng.normal(size=(3, 3))
            eps = 0.5 * (eps + eps.T)
            plus, minus = np.eye(3) + h * eps, np.eye(3) - h * eps
            fd = (energy(pos @ plus, cell @ plus) - energy(pos @ minus, cell @ minus)) / (2 * h)
            np.testing.assert_allclose(np.sum(virial[0] * eps), fd, rtol=1e-6, atol=1e-8)


def test_clamp_region_is_visited():
    """The "clamped" case of the tests above really has neighbours where u <= eps."""
    rng = np.random.default_rng(31)
    _, pos = random_molecule(rng, 10, box=4.0)
    r = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    for rc in (5.2, 3.5):
        close = r[(r > 0) & (r < rc)]
        assert np.count_nonzero(1 - (close / rc) ** 2 <= 0.3) >= 3


def torchani_cases():
    with np.load(DATA / "smooth_cutoff.npz") as data:
        arrays = {k: data[k] for k in data.files}
    cases = []
    for variant in sorted({k.split("__")[0] for k in arrays}):
        c = {k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith(variant + "__")}
        aev = {key: c[key].tolist() for key in ("radial_cutoff", "angular_cutoff", "eta_r", "eta_a", "zeta")}
        aev.update({key: c[key].tolist() for key in ("shf_r", "shf_a", "shf_z")})
        aev.update(cutoff_fn="smooth", cutoff_fn_params={"order": int(c["order"]), "eps": float(c["eps"])})
        elements = list(c["atomic_numbers"])
        for system in sorted({k.split("__")[0] for k in c if "__" in k}):
            s = {k.split("__")[1]: v for k, v in c.items() if k.startswith(system + "__")}
            cases.append((f"{variant}/{system}", aev, elements, s))
    return cases


def test_torchani_fixture_covers_the_cases():
    names = [name for name, *_ in torchani_cases()]
    assert len(names) == 9 and "2x/chloromethane" in names and "1x_order4/water_box" in names
    params = {name.split("/")[0]: aev["cutoff_fn_params"] for name, aev, *_ in torchani_cases()}
    assert params["1x"] == params["2x"] == {"order": 2, "eps": 1e-10}
    assert params["1x_order4"] == {"order": 4, "eps": 1e-3}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_smooth_aev_matches_torchani(backend, dtype):
    """TorchANI 2.9's own AEVComputer(cutoff_fn="smooth"), float64: molecules, a periodic box,
    ANI-1x and ANI-2x constants, and CutoffSmooth(order=4, eps=1e-3)."""
    for name, aev, elements, s in torchani_cases():
        species = np.array([elements.index(z) for z in s["numbers"]])
        cell = s.get("cell")
        got = kernel_pass(
            backend, aev, len(elements), species, s["positions"], cell, None if cell is None else True, dtype
        )
        want = s["aev"]
        assert got.aev.shape == want.shape and np.abs(want).max() > 0.5
        tol = 1e-12 if dtype == "float64" else 2e-6
        np.testing.assert_allclose(got.aev, want, rtol=tol, atol=tol * np.abs(want).max(), err_msg=name)
        # and the oracle agrees with TorchANI, so that the other tests check the same formula
        np.testing.assert_allclose(
            reference_aev(s["positions"], species, len(elements), aev, cell, cell is not None),
            want,
            rtol=1e-12,
            atol=1e-12 * np.abs(want).max(),
            err_msg=name,
        )


# ---------------------------------------------------------------------------------------
# Model files


def rewritten(path: Path, name: str, change) -> Path:
    """A copy of a shipped model with its metadata changed by change(meta) -> meta."""
    data = Path(locate(name)[1]).read_bytes()
    graph = next(bytes(v) for n, _, v in _onnx_file._fields(memoryview(data)) if n == 7)
    meta = change(json.loads(json.dumps(pyani.load(name).metadata)))
    path.write_bytes(w.model(graph, ir_version=8, opset=17, producer="test", metadata={"pyani": json.dumps(meta)}))
    return path


@pytest.fixture(scope="module")
def smooth_file(tmp_path_factory):
    """ANI-1x's networks behind AEVs with the smooth cutoff (order 3, eps 1e-6)."""
    path = tmp_path_factory.mktemp("smooth") / "ani-1x-smooth.onnx"
    return rewritten(path, "ani-1x", lambda m: {**m, "aev": smooth(m["aev"], {"order": 3, "eps": 1e-6})})


def structures():
    rng = np.random.default_rng(32)
    numbers, pos = random_molecule(rng, 12, box=4.0, min_distance=1.0)
    box_numbers, box_pos, box_cell = water_box(rng, 2, spacing=3.2)
    return {"molecule": (numbers, pos, None, None), "periodic": (box_numbers, box_pos, box_cell, True)}


def test_smooth_model_file_loads_and_backends_agree(smooth_file):
    backends = [b for b in ("cpp", "numba") if b == "numba" or _backend.cpp_available()]
    models = {b: pyani.load(smooth_file, backend=b, precision="float64") for b in backends}
    cosine = pyani.load("ani-1x", precision="float64")
    for model in models.values():
        assert model.metadata["aev"]["cutoff_fn"] == "smooth"
        assert model.metadata["aev"]["cutoff_fn_params"] == {"order": 3, "eps": 1e-6}
    for label, (numbers, pos, cell, pbc) in structures().items():
        results = {b: m.compute(numbers, pos, cell, pbc, stress=cell is not None) for b, m in models.items()}
        first = results[backends[0]]
        assert abs(first.energy - cosine.compute(numbers, pos, cell, pbc).energy) > 1e-3, label
        # The model's AEV is the smooth one.
        model = models[backends[0]]
        species = np.searchsorted(model.atomic_numbers, numbers)
        got = kernel_pass(model.backend, model.metadata["aev"], 4, species, pos, cell, pbc).aev
        want = reference_aev(pos, species, 4, model.metadata["aev"], cell, pbc)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
        for b, r in results.items():
            assert abs(r.energy - first.energy) / len(numbers) <= 1e-10, (label, b)
            np.testing.assert_allclose(r.forces, first.forces, atol=1e-8, err_msg=f"{label} {b}")
            if cell is not None:
                np.testing.assert_allclose(r.stress, first.stress, atol=1e-10, err_msg=f"{label} {b}")


@pytest.mark.parametrize("label", ["molecule", "periodic"])
def test_smooth_model_forces_and_stress_match_finite_differences(smooth_file, backend, label):
    model = pyani.load(smooth_file, backend=backend, precision="float64")
    numbers, pos, cell, pbc = structures()[label]
    r = model.compute(numbers, pos, cell, pbc, stress=cell is not None)
    rng = np.random.default_rng(33)

    def energy(p, c=cell):
        return model.compute(numbers, p, c, pbc, forces=False).energy

    h = 1e-5  # float64: truncation error ~h^2 (4e-7 in the stress at h = 1e-4), rounding ~1e-12 / h
    for _ in range(2):
        u = rng.normal(size=pos.shape)
        u /= np.linalg.norm(u)
        fd = (energy(pos + h * u) - energy(pos - h * u)) / (2 * h)
        assert abs(-np.sum(r.forces * u) - fd) < 1e-7 + 1e-6 * abs(fd), (fd, -np.sum(r.forces * u))
    if cell is not None:
        volume = abs(np.linalg.det(cell))
        eps = rng.normal(size=(3, 3))
        eps = 0.5 * (eps + eps.T) / np.linalg.norm(eps)
        plus, minus = np.eye(3) + h * eps, np.eye(3) - h * eps
        fd = (energy(pos @ plus, cell @ plus) - energy(pos @ minus, cell @ minus)) / (2 * h)
        got = volume * np.sum(r.stress * eps)
        assert abs(got - fd) < 1e-7 + 1e-6 * abs(fd), (got, fd)


def test_exported_smooth_ensemble_matches_numpy(tmp_path, backend):
    """NeuroChem constants given the smooth cutoff, through the exporter's metadata
    (AEVConstants.cutoff_fn_params) to a model whose energy and forces match NumPy."""
    from pyani.export.neurochem import read_info
    from pyani.export.onnx_graph import build_model

    info, weights = write_ensemble(tmp_path, n_members=2)
    ens = read_info(info)
    ens.aev.cutoff_fn, ens.aev.cutoff_fn_params = "smooth", {"order": 3, "eps": 1e-6}
    path = tmp_path / "tiny-smooth.onnx"
    path.write_bytes(build_model(ens))
    model = pyani.load(path, backend=backend, precision="float64")
    meta = model.metadata["aev"]
    assert meta["cutoff_fn"] == "smooth" and meta["cutoff_fn_params"] == {"order": 3, "eps": 1e-6}
    rng = np.random.default_rng(34)
    numbers, pos = random_molecule(rng, 7, elements=(1, 6), box=3.0)
    r = model.compute(numbers, pos)
    # The float64 graph's constants (CELU's alpha, ...) are float32 values: ~1e-10 relative.
    assert abs(r.energy - numpy_energy(weights, 2, numbers, pos, meta)) < 1e-7
    assert abs(r.energy - numpy_energy(weights, 2, numbers, pos, {**meta, "cutoff_fn": "cosine"})) > 1e-4
    h = 1e-5
    u = rng.normal(size=pos.shape)
    fd = (
        numpy_energy(weights, 2, numbers, pos + h * u, meta) - numpy_energy(weights, 2, numbers, pos - h * u, meta)
    ) / (2 * h)
    assert abs(-np.sum(r.forces * u) - fd) < 1e-7 * max(1.0, abs(fd))
    cosine = read_info(info)
    assert "cutoff_fn_params" not in pyani.load(info).metadata["aev"] and cosine.aev.cutoff_fn_params is None


def smooth_with(**params):
    return {"cutoff_fn": "smooth", "cutoff_fn_params": params}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"cutoff_fn": "gaussian"}, r"aev\.cutoff_fn must be one of 'cosine', 'smooth', got 'gaussian'"),
        ({"cutoff_fn": 1}, r"aev\.cutoff_fn must be one of"),
        ({"cutoff_fn": "cosine", "cutoff_fn_params": {"order": 2}}, r"aev\.cutoff_fn_params: .*takes no parameters"),
        ({"cutoff_fn": "smooth", "cutoff_fn_params": [2, 1e-10]}, r"aev\.cutoff_fn_params must be a dict"),
        (smooth_with(order=0), r"aev\.cutoff_fn_params\.order must be in 1\.\.1024"),
        (smooth_with(order=2.0), r"aev\.cutoff_fn_params\.order must be an integer"),
        (smooth_with(order=True), r"aev\.cutoff_fn_params\.order must be an integer"),
        (smooth_with(eps=0), r"aev\.cutoff_fn_params\.eps must be finite and > 0"),
        (smooth_with(eps=-1e-10), r"aev\.cutoff_fn_params\.eps must be finite"),
        (smooth_with(eps="small"), r"aev\.cutoff_fn_params\.eps must be a number"),
        (smooth_with(order=2, p=1), r"aev\.cutoff_fn_params: unknown .*'p'"),
    ],
)
def test_bad_cutoff_function_refused_at_load(tmp_path, change, match):
    """Named: the file and the metadata field, before any kernel sees them."""
    path = rewritten(tmp_path / "bad.onnx", "ani-1x", lambda m: {**m, "aev": {**m["aev"], **change}})
    with pytest.raises(ValueError, match=match) as err:
        pyani.load(path)
    assert str(path) in str(err.value)


def test_smooth_defaults_and_cosine_spellings_load(tmp_path):
    """cutoff_fn absent = "cosine" (old files); "smooth" without parameters = TorchANI's
    defaults; an eps given as an integer is a number."""
    numbers, pos = random_molecule(np.random.default_rng(35), 8)
    base = pyani.load("ani-1x").compute(numbers, pos).energy

    def without_cutoff_fn(m):
        return {**m, "aev": {k: v for k, v in m["aev"].items() if k != "cutoff_fn"}}

    old = pyani.load(rewritten(tmp_path / "old.onnx", "ani-1x", without_cutoff_fn))
    assert old.compute(numbers, pos).energy == base
    defaults = pyani.load(rewritten(tmp_path / "d.onnx", "ani-1x", lambda m: {**m, "aev": smooth(m["aev"])}))
    explicit = pyani.load(
        rewritten(tmp_path / "e.onnx", "ani-1x", lambda m: {**m, "aev": smooth(m["aev"], {"order": 2, "eps": 1e-10})})
    )
    assert defaults.compute(numbers, pos).energy == explicit.compute(numbers, pos).energy != base
    pyani.load(rewritten(tmp_path / "i.onnx", "ani-1x", lambda m: {**m, "aev": smooth(m["aev"], {"eps": 1})}))
