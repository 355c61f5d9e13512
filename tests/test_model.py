"""Whole models against stored float64 TorchANI numbers, and physical consistency checks."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import BACKENDS, MODELS, get_model, load_reference, reference_systems
from oracles import padded_batch, random_molecule, random_rotation, water_box

import pyani
import pyani._model_files
import pyani._networks
from pyani import _runtime

# The accuracy bars against float64 TorchANI.
ENERGY_PER_ATOM = 1e-6  # Hartree
FORCE = 5e-5  # Hartree/Angstrom, largest component
ATOMIC = 1e-5  # Hartree
STRESS = 1e-6  # Hartree/Angstrom^3

CASES = [(name, system) for name in MODELS for system in reference_systems(name)]


def test_reference_data_is_there():
    for name in ("ani-1x", "ani-1ccx", "ani-2x"):
        assert len(reference_systems(name)) >= 5, f"reference data for {name} is missing"


@pytest.mark.parametrize(("name", "system"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_matches_torchani(backend, name, system):
    model = get_model(name, backend)
    ref = load_reference(name, system)
    periodic = "cell" in ref
    r = model.compute(ref["numbers"], ref["positions"], ref.get("cell"), ref.get("pbc"), atomic=True, stress=periodic)
    n_atoms = np.count_nonzero(ref["numbers"] >= 0, axis=-1)
    assert np.all(np.abs(r.energy - ref["energy"]) / n_atoms <= ENERGY_PER_ATOM), r.energy - ref["energy"]
    member_error = np.abs(r.member_energies - ref["member_energies"]) / np.expand_dims(n_atoms, -1)
    assert member_error.max() <= ENERGY_PER_ATOM
    assert np.abs(r.forces - ref["forces"]).max() <= FORCE
    assert np.abs(r.atomic_energies - ref["atomic_energies"]).max() <= ATOMIC
    if "stress" in ref:  # fully periodic only: see tests/data/make_fixtures.py
        assert np.abs(r.stress - ref["stress"]).max() <= STRESS


def test_batch_equals_one_by_one(backend):
    model = get_model("ani-1x", backend)
    rng = np.random.default_rng(30)
    molecules = [random_molecule(rng, n) for n in (5, 9, 3)]
    numbers, positions = padded_batch(molecules)
    batch = model.compute(numbers, positions, atomic=True)
    assert batch.forces.shape == (3, 9, 3) and batch.member_energies.shape == (3, 8)
    for b, (z, p) in enumerate(molecules):
        one = model.compute(z, p, atomic=True)
        # Different GEMM shapes round float32 differently: agreement to float32 precision.
        assert abs(batch.energy[b] - one.energy) < 1e-7
        np.testing.assert_allclose(batch.forces[b, : len(z)], one.forces, atol=1e-6)
        np.testing.assert_allclose(batch.atomic_energies[b, : len(z)], one.atomic_energies, atol=1e-7)
        assert np.all(batch.forces[b, len(z) :] == 0) and np.all(batch.atomic_energies[b, len(z) :] == 0)


def test_energy_bookkeeping(backend):
    model = get_model("ani-1ccx", backend)
    numbers, pos = random_molecule(np.random.default_rng(31), 12)
    r = model.compute(numbers, pos, atomic=True)
    assert r.atomic_energies.sum() == pytest.approx(r.energy, abs=1e-9)
    assert r.member_energies.mean() == pytest.approx(r.energy, abs=1e-9)
    assert r.energy_std == pytest.approx(np.std(r.member_energies, ddof=1))
    assert r.energy_std > 0
    energy_only = model.compute(numbers, pos, forces=False)
    assert energy_only.forces is None and energy_only.stress is None and energy_only.atomic_energies is None
    assert energy_only.energy == r.energy


def test_translation_rotation_permutation(backend):
    model = get_model("ani-1x", backend)
    rng = np.random.default_rng(32)
    numbers, pos = random_molecule(rng, 14)
    base = model.compute(numbers, pos)
    rot = random_rotation(rng)
    moved = model.compute(numbers, pos @ rot.T + [10.0, -3.0, 2.5])
    assert abs(moved.energy - base.energy) < 2e-6
    np.testing.assert_allclose(moved.forces, base.forces @ rot.T, atol=2e-5)
    perm = rng.permutation(len(numbers))
    permuted = model.compute(numbers[perm], pos[perm])
    assert abs(permuted.energy - base.energy) < 2e-6
    np.testing.assert_allclose(permuted.forces, base.forces[perm], atol=2e-5)


def test_periodic_images_and_supercell(backend):
    model = get_model("ani-1x", backend)
    rng = np.random.default_rng(33)
    cell = np.array([[6.0, 0, 0], [1.0, 6.5, 0], [0.5, -0.8, 7.0]])
    numbers, frac = random_molecule(rng, 12, box=1.0, min_distance=0.15)
    pos = frac @ cell
    base = model.compute(numbers, pos, cell, stress=True)
    imaged = model.compute(numbers, pos + rng.integers(-2, 3, (12, 3)) @ cell, cell, stress=True)
    assert abs(imaged.energy - base.energy) < 2e-6
    np.testing.assert_allclose(imaged.forces, base.forces, atol=2e-5)
    np.testing.assert_allclose(imaged.stress, base.stress, atol=1e-7)
    # A 2x1x1 supercell holds twice the energy, the same forces and the same stress.
    super_cell = cell * [[2], [1], [1]]
    doubled = model.compute(np.tile(numbers, 2), np.concatenate([pos, pos + cell[0]]), super_cell, stress=True)
    assert abs(doubled.energy - 2 * base.energy) < 5e-6
    np.testing.assert_allclose(doubled.forces[:12], base.forces, atol=2e-5)
    np.testing.assert_allclose(doubled.stress, base.stress, atol=1e-7)
    np.testing.assert_allclose(base.stress, base.stress.T, atol=1e-7)


def test_compute_is_thread_safe(backend):
    model = get_model("ani-1x", backend)
    rng = np.random.default_rng(34)
    systems = [random_molecule(rng, n) for n in (6, 10, 14, 18)]
    expected = [model.compute(z, p).energy for z, p in systems]
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(5):
                z, p = systems[k % 4]
                results.setdefault(k, []).append(model.compute(z, p).energy)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, values in results.items():
        assert values == [expected[k % 4]] * 5


def test_shipped_models_describe_themselves():
    for name, first_self_energy in (("ani-1x", -0.60095298), ("ani-1ccx", -0.59915013)):
        model = pyani.load(name)
        assert model.elements == ("H", "C", "N", "O")
        assert model.ensemble_size == 8 and model.cutoff == pytest.approx(5.2)
        assert model.self_energies[0] == pytest.approx(first_self_energy)
        assert model.metadata["provenance"]["info_file"] == f"{name}_8x.info"


def test_device_choice(monkeypatch):
    assert _runtime.providers_for("cpu") == ["CPUExecutionProvider"]
    assert pyani.load("ani-1x", device="cpu").device == "cpu"
    if "CUDAExecutionProvider" not in _runtime.ort.get_available_providers():
        assert pyani.load("ani-1x", device="auto").device == "cpu"
        with pytest.raises(ValueError, match="device='cuda' needs ONNX Runtime's CUDAExecutionProvider"):
            pyani.load("ani-1x", device="cuda")
    # A CUDA provider that is listed but cannot start: auto falls back, explicit cuda fails.
    monkeypatch.setattr(
        _runtime.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(_runtime.ort, "InferenceSession", _SessionWithoutCuda)
    assert pyani.load("ani-1x", device="auto").device == "cpu"
    with pytest.raises(ValueError, match="on CUDA"):
        pyani.load("ani-1x", device="cuda")


_RealSession = _runtime.ort.InferenceSession


class _SessionWithoutCuda(_RealSession):
    def __init__(self, model, options=None, providers=None):
        if providers and "CUDAExecutionProvider" in providers:
            raise RuntimeError("CUDA driver not found")
        super().__init__(model, options, providers=providers)


@pytest.mark.gpu
@pytest.mark.skipif(
    "CUDAExecutionProvider" not in _runtime.ort.get_available_providers(), reason="needs a CUDA GPU and onnxruntime-gpu"
)
def test_cuda_matches_cpu():  # pragma: no cover - no GPU on the CI machines
    numbers, pos = random_molecule(np.random.default_rng(35), 12)
    gpu = pyani.load("ani-1x", device="cuda")
    assert gpu.device == "cuda"
    cpu = pyani.load("ani-1x", device="cpu")
    assert abs(gpu.compute(numbers, pos).energy - cpu.compute(numbers, pos).energy) < 1e-5


def test_auto_backend_prefers_the_cpp_core(monkeypatch):
    monkeypatch.delenv("PYANI_BACKEND", raising=False)
    if "cpp" in BACKENDS:
        assert pyani.load("ani-1x").backend == "cpp"
    else:
        with pytest.warns(RuntimeWarning, match="C.. extension is not available"):
            assert pyani.load("ani-1x").backend == "numba"


def test_networks_in_chunks_equal_one_call(backend, monkeypatch):
    """Big systems go through the networks in chunks; the result must not change."""
    model = get_model("ani-1x", backend)
    numbers, pos = random_molecule(np.random.default_rng(36), 40, box=8.0)
    whole = model.compute(numbers, pos, atomic=True)
    monkeypatch.setattr(pyani._networks, "NETWORK_CHUNK", 7)
    calls = []
    session = model.networks.default.session

    class Counting:
        def run(self, *args):
            calls.append(len(args[1]["aev"]))
            return session.run(*args)

    monkeypatch.setattr(model.networks, "default", pyani._networks.Plan(Counting(), None))
    chunked = model.compute(numbers, pos, atomic=True)
    assert calls == [7, 7, 7, 7, 7, 5]
    assert abs(chunked.energy - whole.energy) < 1e-7
    np.testing.assert_allclose(chunked.forces, whole.forces, atol=1e-6)
    np.testing.assert_allclose(chunked.atomic_energies, whole.atomic_energies, atol=1e-7)
    assert model.compute(numbers, pos, forces=False).energy == pytest.approx(whole.energy, abs=1e-7)


def test_verlet_skin_reuses_the_list_and_changes_nothing(backend):
    """MD-like steps: with a skin the list is rebuilt only after an atom moved > skin/2,
    and every result equals a fresh neighbour list's."""
    fresh = get_model("ani-1x", backend)
    md = pyani.load("ani-1x", backend=backend, skin=1.0)
    rng = np.random.default_rng(37)
    cell = np.array([[7.0, 0, 0], [1.0, 7.5, 0], [0.5, -0.5, 8.0]])
    numbers, frac = random_molecule(rng, 24, box=1.0, min_distance=0.12)
    pos = frac @ cell
    for step in range(12):
        pos = pos + rng.normal(scale=0.04, size=pos.shape)  # up to ~0.5 A in total per atom
        for c, pbc in ((cell, True), (None, None)):
            a = md.compute(numbers, pos, c, pbc, stress=c is not None)
            b = fresh.compute(numbers, pos, c, pbc, stress=c is not None)
            assert abs(a.energy - b.energy) < 1e-9, step
            np.testing.assert_allclose(a.forces, b.forces, atol=1e-9)
            if c is not None:
                np.testing.assert_allclose(a.stress, b.stress, atol=1e-11)
    # 24 calls alternate periodic / not, so each switch rebuilds; same system: reuse
    md2 = pyani.load("ani-1x", backend=backend, skin=1.0)
    for step in range(10):
        md2.compute(numbers, pos + step * 0.02, cell)
    assert md2.neighbor_list_builds == 1
    md2.compute(numbers, pos + 0.6, cell)  # every atom moved 1.04 A > skin/2
    assert md2.neighbor_list_builds == 2


@pytest.mark.parametrize(("skin", "error"), [(-1.0, ValueError), (np.nan, ValueError), ("1", TypeError)])
def test_bad_skin(skin, error):
    with pytest.raises(error, match="skin must be"):
        pyani.load("ani-1x", skin=skin)


def test_big_systems_skip_the_columns_of_absent_elements(backend, monkeypatch):
    """From BULK_ATOMS atoms on, the networks see only the AEV columns that the elements
    present can fill (water: H and O blocks); results equal those of the full AEV."""
    model = pyani.load("ani-1x", backend=backend)
    numbers, positions, cell = water_box(np.random.default_rng(38), 5)  # 375 atoms
    assert len(numbers) >= pyani._networks.BULK_ATOMS
    compact = model.compute(numbers, positions, cell, stress=True, atomic=True)
    ((plan),) = model.networks.bulk_plans.values()
    session, columns = plan.session, plan.columns
    n_r, n_angular = 16, 32
    assert len(columns) == 2 * n_r + 3 * n_angular  # H, O radial; HH, HO, OO angular
    assert session.get_inputs()[0].name == "aev"
    monkeypatch.setattr(pyani._networks, "BULK_ATOMS", 10**9)  # everything through the full AEV
    full = model.compute(numbers, positions, cell, stress=True, atomic=True)
    assert compact.energy == pytest.approx(full.energy, abs=2e-6)
    np.testing.assert_allclose(compact.member_energies, full.member_energies, atol=2e-6)
    np.testing.assert_allclose(compact.forces, full.forces, atol=2e-6)
    np.testing.assert_allclose(compact.atomic_energies, full.atomic_energies, atol=1e-6)
    np.testing.assert_allclose(compact.stress, full.stress, atol=1e-8)
    assert np.abs(full.forces).max() > 1e-3


def test_bulk_sessions_are_bounded(backend, monkeypatch):
    """One bulk session per set of elements present, at most BULK_SESSIONS of them."""
    monkeypatch.setattr(pyani._networks, "BULK_ATOMS", 8)
    model = pyani.load("ani-1x", backend=backend)
    rng = np.random.default_rng(39)
    for elements in ((1,), (1, 6), (1, 8), (6, 8), (1, 6, 7, 8), (1, 7)):
        numbers, pos = random_molecule(rng, 12, elements=elements, box=5.0)
        got = model.compute(numbers, pos)
        monkeypatch.setattr(pyani._networks, "BULK_ATOMS", 10**9)
        want = model.compute(numbers, pos)
        monkeypatch.setattr(pyani._networks, "BULK_ATOMS", 8)
        assert got.energy == pytest.approx(want.energy, abs=1e-6), elements
        np.testing.assert_allclose(got.forces, want.forces, atol=1e-6)
    assert len(model.networks.bulk_plans) == pyani._networks.BULK_SESSIONS
    assert list(model.networks.bulk_plans)[-1] == (0, 2)  # species indices of H, N


def test_model_pickles_for_multiprocessing(backend, tmp_path):
    """A Model pickles: a shipped one by name, any other with its ONNX bytes (the file
    may be gone when it is unpickled, e.g. on another machine)."""
    import pickle
    import shutil

    numbers, pos = random_molecule(np.random.default_rng(40), 9)
    shipped = pyani.load("ani-1x", backend=backend, skin=0.5)
    copy = pickle.loads(pickle.dumps(shipped))
    assert (copy.backend, copy.skin, copy.source) == (shipped.backend, 0.5, shipped.source)
    assert copy.compute(numbers, pos).energy == shipped.compute(numbers, pos).energy
    assert len(pickle.dumps(shipped)) < 1000  # by name, not the 7 MB file
    path = tmp_path / "model.onnx"
    shutil.copy(pyani._model_files.locate("ani-1x")[1], path)
    from_file = pyani.load(path, backend=backend)
    data = pickle.dumps(from_file)
    path.unlink()
    again = pickle.loads(data)
    assert again.compute(numbers, pos).energy == shipped.compute(numbers, pos).energy


def test_member_forces_average_to_the_forces(backend):
    """Each member's forces are -dE_m/dr: their mean is the forces, and each member's
    forces match its energy's directional derivative."""
    model = get_model("ani-1x", backend)
    rng = np.random.default_rng(41)
    numbers, pos = random_molecule(rng, 11)
    r = model.compute(numbers, pos, member_forces=True)
    assert r.member_forces.shape == (8, 11, 3) and r.forces_std.shape == (11, 3)
    np.testing.assert_allclose(r.member_forces.mean(axis=0), r.forces, atol=1e-6)
    np.testing.assert_allclose(r.forces_std, r.member_forces.std(axis=0, ddof=1), atol=1e-12)
    assert r.forces_std.max() > 1e-4  # the members disagree
    step = rng.normal(size=pos.shape)
    step /= np.linalg.norm(step)
    h = 1e-3
    plus = model.compute(numbers, pos + h * step, forces=False).member_energies
    minus = model.compute(numbers, pos - h * step, forces=False).member_energies
    slope = -np.einsum("mij,ij->m", r.member_forces, step)
    np.testing.assert_allclose((plus - minus) / (2 * h), slope, atol=2e-4)
    # batches: a leading structure axis, zeros on padding
    batch = padded_batch([(numbers, pos), (numbers[:5], pos[:5])])
    rb = model.compute(*batch, member_forces=True)
    assert rb.member_forces.shape == (2, 8, 11, 3)
    np.testing.assert_allclose(rb.member_forces[0], r.member_forces, atol=1e-6)
    assert np.all(rb.member_forces[1, :, 5:] == 0)


@pytest.mark.parametrize(("name", "system"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_float64_matches_torchani_closer(backend, name, system):
    """precision="float64": the AEV and the networks in double. What remains against float64
    TorchANI is the file's weights, pre-scaled for the CELU rewrite and rounded to float32."""
    model = get_model(name, backend, "float64")
    ref = load_reference(name, system)
    r = model.compute(ref["numbers"], ref["positions"], ref.get("cell"), ref.get("pbc"))
    n_atoms = np.count_nonzero(ref["numbers"] >= 0, axis=-1)
    assert np.all(np.abs(r.energy - ref["energy"]) / n_atoms <= 2e-8)
    assert np.abs(r.forces - ref["forces"]).max() <= 5e-7


def test_bad_precision():
    with pytest.raises(ValueError, match="precision must be one of"):
        pyani.load("ani-1x", precision="half")
