"""Pair potentials (xTB repulsion, D3(BJ) dispersion): the kernels of both backends against float64
TorchANI 2.9 (tests/data/pair_potentials.npz) and an independent NumPy implementation of the
formulas written here; forces and stress against finite differences; invariances; batches and
ragged lists; energy_mask; the model integration and its metadata checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKENDS, DATA
from oracles import brute_force_pairs, padded_batch, random_molecule, random_rotation, water_box

import pyani
from pyani import _backend

with np.load(DATA / "pair_potentials.npz") as _data:
    FIXTURE = {k: _data[k] for k in _data.files}
METADATA = json.loads(str(FIXTURE["metadata"]))
SYSTEMS = [str(s) for s in FIXTURE["systems"]]
SYMBOLS = METADATA["elements"]  # H C N O S F Cl
ENTRIES = {e["kind"]: e for e in METADATA["pair_potentials"]}
KINDS = ["repulsion_xtb", "dispersion_d3bj"]
KERNEL_NAMES = {"repulsion_xtb": "RepulsionXTB", "dispersion_d3bj": "DispersionD3"}
NUMBER_OF = dict(zip(SYMBOLS, METADATA["atomic_numbers"]))


def kernels(backend):
    return _backend.resolve(backend)[1]


def subset(entry: dict, symbols) -> dict:
    """The entry for a model whose elements are `symbols` (tables reindexed)."""
    index = [SYMBOLS.index(s) for s in symbols]
    out = {}
    for key, value in entry.items():
        if isinstance(value, list):
            table = np.array(value)
            table = table[index] if table.ndim == 1 else table[np.ix_(index, index)]
            out[key] = table.tolist()
        else:
            out[key] = value
    return json.loads(json.dumps(out))  # a deep copy: tests may change it


def make_kernel(backend, kind, symbols=SYMBOLS, **changes):
    return getattr(kernels(backend), KERNEL_NAMES[kind])({**subset(ENTRIES[kind], symbols), **changes}, len(symbols))


def species_of(numbers, symbols=SYMBOLS):
    z_to_species = {NUMBER_OF[s]: k for k, s in enumerate(symbols)}
    return np.array([z_to_species[int(z)] for z in numbers], dtype=np.int32)


def pair_list(positions, cell=None, pbc=None, cutoff=8.0):
    """Brute-force half list (oracles.py): pairs [P, 2], vectors [P, 3]."""
    found = brute_force_pairs(positions, cell, pbc, cutoff)
    pairs = np.array([k[:2] for k in found], dtype=np.int64).reshape(-1, 2)
    vectors = np.array(list(found.values()), dtype=np.float64).reshape(-1, 3)
    return pairs, vectors


# --- an independent NumPy implementation of the formulas (export.md), per pair -------------------


def fc_numpy(entry, r):
    rc = entry["cutoff"]
    if entry["cutoff_fn"] == "dummy":
        return np.ones_like(r)
    if entry["cutoff_fn"] == "cosine":
        return 0.5 * np.cos(np.pi * r / rc) + 0.5
    params = entry.get("cutoff_fn_params", {})
    order, eps = params.get("order", 2), params.get("eps", 1e-10)
    return np.exp(1 - 1 / np.maximum(eps, 1 - (r / rc) ** order))


def pair_energies_numpy(entry, species, pairs, vectors) -> np.ndarray:
    """E_p of each pair (0 beyond the cutoff), straight from the formulas."""
    r = np.linalg.norm(vectors, axis=1)
    inside = r <= entry["cutoff"]
    a, b = species[pairs[:, 0]], species[pairs[:, 1]]
    d = r * entry["bohr_per_angstrom"]
    if entry["kind"] == "repulsion_xtb":
        y, sa, k = (np.array(entry[n])[a, b] for n in ("y_ab", "sqrt_alpha_ab", "k_rep_ab"))
        e = y / d * np.exp(-sa * d**k)
    else:
        rcov = np.array(entry["covalent_radii"])
        count = 1 / (1 + np.exp(-entry["k1"] * (entry["k2"] * (rcov[a] + rcov[b]) / d - 1))) * inside
        cn = np.zeros(len(species))
        np.add.at(cn, pairs[:, 0], count)
        np.add.at(cn, pairs[:, 1], count)
        c6_ref = np.array(entry["c6"])[a, b].reshape(-1, 25)
        cna = np.array(entry["cn_a"])[a, b].reshape(-1, 25)
        cnb = np.array(entry["cn_b"])[a, b].reshape(-1, 25)
        g = np.exp(-entry["k3"] * ((cn[pairs[:, 0], None] - cna) ** 2 + (cn[pairs[:, 1], None] - cnb) ** 2))
        g = np.where(c6_ref > 0, g, 0.0)
        c6 = ((c6_ref * g).sum(1) + entry["eps"]) / (g.sum(1) + entry["eps"])
        c8 = 3 * c6 * np.array(entry["sqrt_charge_ab"])[a, b]
        radius = entry["a1"] * np.array(entry["cutoff_radii"])[a, b] + entry["a2"]
        e = -(entry["s6"] * c6 / (d**6 + radius**6) + entry["s8"] * c8 / (d**8 + radius**8))
    return np.where(inside, e * fc_numpy(entry, r), 0.0)


def atomic_numpy(n_atoms, pairs, e):
    out = np.zeros(n_atoms)
    np.add.at(out, pairs[:, 0], e / 2)
    np.add.at(out, pairs[:, 1], e / 2)
    return out


# --- kernels against TorchANI ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_kernels_match_torchani(backend, kind):
    """Energies <= 1e-10 Ha/atom, forces <= 1e-8 Ha/A of float64 TorchANI on molecules with H C N O
    S F Cl and two periodic boxes; atomic energies and stress too."""
    kernel = make_kernel(backend, kind)
    neighbors = kernels(backend).NeighborList(kernel.cutoff)
    for name in SYSTEMS:
        numbers, positions = FIXTURE[f"{name}/numbers"], FIXTURE[f"{name}/positions"]
        periodic = f"{name}/cell" in FIXTURE
        cell = FIXTURE[f"{name}/cell"] if periodic else np.zeros((3, 3))
        pairs, _, vectors = neighbors.compute(positions, cell, np.full(3, periodic))
        energies, atomic, forces, virial = kernel.compute(
            species_of(numbers), pairs, vectors, atomic=True, forces=True, virial=True
        )
        ref = f"{name}/{kind}"
        n = len(numbers)
        assert abs(energies[0] - FIXTURE[f"{ref}/energy"]) <= 1e-10 * n, name
        np.testing.assert_allclose(atomic, FIXTURE[f"{ref}/atomic_energies"], rtol=0, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(forces, FIXTURE[f"{ref}/forces"], rtol=0, atol=1e-8, err_msg=name)
        if periodic:
            stress = virial[0] / abs(np.linalg.det(cell))
            np.testing.assert_allclose(stress, FIXTURE[f"{ref}/stress"], rtol=0, atol=1e-10, err_msg=name)
        assert abs(FIXTURE[f"{ref}/energy"]) > 1e-4  # the fixture tests something


def test_fixture_tables_are_symmetric():
    """c6[a,b,p,q] = c6[b,a,q,p] and cn_a[a,b,p,q] = cn_b[b,a,q,p]: a pair's energy does not depend on
    which atom comes first (the kernels do not rely on it: they read the tables in pair order)."""
    c6, cna, cnb = (np.array(ENTRIES["dispersion_d3bj"][k]) for k in ("c6", "cn_a", "cn_b"))
    np.testing.assert_array_equal(c6, c6.transpose(1, 0, 3, 2))
    np.testing.assert_array_equal(cna, cnb.transpose(1, 0, 3, 2))


# --- kernels against the NumPy formulas ------------------------------------------------------------


def _numpy_cases():
    rng = np.random.default_rng(7)
    numbers, positions = random_molecule(rng, 14, elements=(1, 6, 7, 8, 16, 9, 17), box=5.0)
    yield "molecule", numbers, positions, None, None
    numbers, positions, cell = water_box(rng, 3)
    yield "water_box", numbers, positions, cell, np.ones(3, bool)
    # a small skewed cell: self-image pairs, several images of each neighbour
    numbers, positions = random_molecule(rng, 5, elements=(1, 6, 8, 16), box=3.0, min_distance=1.0)
    cell = np.array([[5.5, 0, 0], [1.2, 5.0, 0], [0.4, -0.8, 6.0]])
    yield "small_cell", numbers, positions, cell, np.ones(3, bool)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cutoff_fn", ["smooth", "cosine", "dummy"])
def test_kernels_match_numpy_formulas(backend, kind, cutoff_fn):
    changes = {"cutoff_fn": cutoff_fn}
    if cutoff_fn != "smooth":
        changes["cutoff_fn_params"] = None
    entry = {**ENTRIES[kind], **changes}
    kernel = make_kernel(backend, kind, **changes)
    for name, numbers, positions, cell, pbc in _numpy_cases():
        pairs, vectors = pair_list(positions, cell, pbc, cutoff=9.0)  # some pairs beyond the cutoff
        species = species_of(numbers)
        expected = pair_energies_numpy(entry, species, pairs, vectors)
        energies, atomic, _, _ = kernel.compute(species, pairs, vectors, atomic=True)
        assert energies[0] == pytest.approx(expected.sum(), rel=1e-12, abs=1e-15), name
        np.testing.assert_allclose(atomic, atomic_numpy(len(numbers), pairs, expected), rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dispersion_with_general_tables(backend):
    """Grimme's tables give each element's reference one CN whatever the partner, and the
    kernels then take the Gaussian weights as products of per-atom factors; tables without that
    structure take the general path: both against the formulas, its forces against finite
    differences."""
    rng = np.random.default_rng(23)
    entry = subset(ENTRIES["dispersion_d3bj"], SYMBOLS)
    for key in ("cn_a", "cn_b"):
        table = np.array(entry[key])
        entry[key] = (table + rng.uniform(0, 0.3, table.shape) * (np.array(entry["c6"]) > 0)).tolist()
    kernel = kernels(backend).DispersionD3(entry, len(SYMBOLS))
    grimme = make_kernel(backend, "dispersion_d3bj")
    for name, numbers, positions, cell, pbc in _numpy_cases():
        pairs, vectors = pair_list(positions, cell, pbc, cutoff=8.0)
        species = species_of(numbers)
        expected = pair_energies_numpy(entry, species, pairs, vectors).sum()
        energy = kernel.compute(species, pairs, vectors)[0][0]
        assert energy == pytest.approx(expected, rel=1e-12), name
        assert abs(energy - grimme.compute(species, pairs, vectors)[0][0]) > 1e-6 * abs(energy)  # the tables matter
    _, _, forces, _ = kernel.compute(species, pairs, vectors, forces=True)
    h = 1e-5
    for atom, c in [(0, 0), (2, 1), (4, 2)]:
        step = np.zeros_like(positions)
        step[atom, c] = h
        fd = -(
            _energy(kernel, backend, species, positions + step, cell, pbc)
            - _energy(kernel, backend, species, positions - step, cell, pbc)
        ) / (2 * h)
        assert abs(fd - forces[atom, c]) <= 1e-7 * np.abs(forces).max() + 1e-11, (atom, c)


# --- gradients against finite differences ------------------------------------------------------------


def _energy(kernel, backend, species, positions, cell, pbc, mask=None):
    nl = kernels(backend).NeighborList(kernel.cutoff)
    pairs, _, vectors = nl.compute(
        positions, np.zeros((3, 3)) if cell is None else cell, np.full(3, False) if pbc is None else pbc
    )
    return kernel.compute(species, pairs, vectors, atom_mask=mask)[0][0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_forces_and_stress_match_finite_differences(backend, kind):
    rng = np.random.default_rng(3)
    numbers, positions, cell = water_box(rng, 2, spacing=2.9)
    numbers[:2] = (16, 17)  # a few more elements
    pbc = np.ones(3, bool)
    species = species_of(numbers)
    kernel = make_kernel(backend, kind)
    nl = kernels(backend).NeighborList(kernel.cutoff)
    pairs, _, vectors = nl.compute(positions, cell, pbc)
    _, _, forces, virial = kernel.compute(species, pairs, vectors, forces=True, virial=True)
    h = 1e-5
    scale = np.abs(forces).max()
    for atom in rng.choice(len(numbers), 5, replace=False):
        for c in range(3):
            step = np.zeros_like(positions)
            step[atom, c] = h
            fd = -(
                _energy(kernel, backend, species, positions + step, cell, pbc)
                - _energy(kernel, backend, species, positions - step, cell, pbc)
            ) / (2 * h)
            assert abs(fd - forces[atom, c]) <= 1e-7 * scale + 1e-11, (atom, c)
    # virial = dE/dstrain: strain positions and cell alike
    for x, y in [(0, 0), (1, 2), (2, 1), (0, 1)]:
        strain = np.zeros((3, 3))
        strain[x, y] = h
        up, down = np.eye(3) + strain, np.eye(3) - strain
        fd = (
            _energy(kernel, backend, species, positions @ up, cell @ up, pbc)
            - _energy(kernel, backend, species, positions @ down, cell @ down, pbc)
        ) / (2 * h)
        assert abs(fd - virial[0, x, y]) <= 1e-7 * np.abs(virial).max() + 1e-11, (x, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_forces_are_the_gradient_of_the_masked_energy(backend):
    """energy_mask: the pair weight (m_i + m_j) / 2 in the energy, and forces its exact gradient
    (through D3's coordination numbers too)."""
    rng = np.random.default_rng(5)
    numbers, positions = random_molecule(rng, 12, elements=(1, 6, 8, 17), box=4.5)
    species = species_of(numbers)
    mask = rng.random(len(numbers)) < 0.5
    for kind in KINDS:
        kernel = make_kernel(backend, kind)
        pairs, vectors = pair_list(positions, cutoff=kernel.cutoff)
        energies, atomic, forces, _ = kernel.compute(species, pairs, vectors, atom_mask=mask, atomic=True, forces=True)
        assert energies[0] == pytest.approx(atomic[mask].sum(), rel=1e-12)
        h = 1e-5
        for atom in range(len(numbers)):
            for c in range(3):
                step = np.zeros_like(positions)
                step[atom, c] = h
                fd = -(
                    _energy(kernel, backend, species, positions + step, None, None, mask)
                    - _energy(kernel, backend, species, positions - step, None, None, mask)
                ) / (2 * h)
                assert abs(fd - forces[atom, c]) <= 1e-7 * np.abs(forces).max() + 1e-11, (kind, atom, c)


# --- batches, invariances ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_ragged_batch_equals_single_structures(backend, kind):
    kernel = make_kernel(backend, kind)
    rng = np.random.default_rng(11)
    structures = [random_molecule(rng, n, elements=(1, 6, 7, 8, 9), box=4.0) for n in (3, 9, 1, 6)]
    all_species, all_pairs, all_vectors, bounds, offset = [], [], [], [0], 0
    singles = []
    for numbers, positions in structures:
        pairs, vectors = pair_list(positions, cutoff=kernel.cutoff)
        species = species_of(numbers)
        singles.append(kernel.compute(species, pairs, vectors, atomic=True, forces=True, virial=True))
        all_species.append(species)
        all_pairs.append(pairs + offset)
        all_vectors.append(vectors)
        bounds.append(bounds[-1] + len(pairs))
        offset += len(numbers)
    energies, atomic, forces, virial = kernel.compute(
        np.concatenate(all_species),
        np.concatenate(all_pairs),
        np.concatenate(all_vectors),
        np.array(bounds),
        atomic=True,
        forces=True,
        virial=True,
    )
    np.testing.assert_allclose(energies, [s[0][0] for s in singles], rtol=1e-14, atol=1e-18)
    np.testing.assert_allclose(atomic, np.concatenate([s[1] for s in singles]), rtol=1e-14, atol=1e-18)
    np.testing.assert_allclose(forces, np.concatenate([s[2] for s in singles]), rtol=1e-14, atol=1e-18)
    np.testing.assert_allclose(virial, np.concatenate([s[3] for s in singles]), rtol=1e-14, atol=1e-18)
    assert energies[2] == 0.0  # one atom, no pairs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_invariance(backend, kind):
    """Translation, rotation and permutation leave the energy alone and carry the forces along."""
    kernel = make_kernel(backend, kind)
    rng = np.random.default_rng(13)
    numbers, positions = random_molecule(rng, 10, elements=(1, 6, 7, 8, 16, 17), box=4.0)

    def run(z, p):
        pairs, vectors = pair_list(p, cutoff=kernel.cutoff)
        energies, _, forces, _ = kernel.compute(species_of(z), pairs, vectors, forces=True)
        return energies[0], forces

    e, f = run(numbers, positions)
    rotation = random_rotation(rng)
    e2, f2 = run(numbers, positions @ rotation.T + np.array([3.0, -7.0, 11.0]))
    assert e2 == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(f2, f @ rotation.T, rtol=0, atol=1e-12 * np.abs(f).max())
    order = rng.permutation(len(numbers))
    e3, f3 = run(numbers[order], positions[order])
    assert e3 == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(f3, f[order], rtol=0, atol=1e-13 * np.abs(f).max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_refuse_bad_calls(backend):
    kernel = make_kernel(backend, "dispersion_d3bj")
    species = np.zeros(3, dtype=np.int32)
    pairs = np.array([[0, 1], [1, 2]])
    vectors = np.ones((2, 3))
    with pytest.raises(ValueError, match="pairs"):
        kernel.compute(species, np.array([[0, 3], [1, 2]]), vectors)
    with pytest.raises(ValueError, match="species"):
        kernel.compute(np.array([0, 9, 0], dtype=np.int32), pairs, vectors)
    with pytest.raises(ValueError, match="vectors"):
        kernel.compute(species, pairs, np.ones((3, 3)))
    with pytest.raises(ValueError, match="vectors must be finite"):
        kernel.compute(species, pairs, np.array([[1.0, 0, 0], [np.nan, 0, 0]]))
    with pytest.raises(ValueError, match="pair_bounds"):
        kernel.compute(species, pairs, vectors, np.array([0, 1]))
    with pytest.raises(ValueError, match="atom_mask"):
        kernel.compute(species, pairs, vectors, atom_mask=np.ones(2, bool))
    with pytest.raises(ValueError, match="c6"):
        make_kernel(backend, "dispersion_d3bj", c6=[[1.0]])
    with pytest.raises(ValueError, match="cutoff_fn"):
        make_kernel(backend, "repulsion_xtb", cutoff_fn="biweight")


# --- the model -----------------------------------------------------------------------------------------

HCNO = ["H", "C", "N", "O"]
_models: dict = {}


def model_file(kinds: tuple, tmp_dir: Path, change=None) -> Path:
    """ani-1ccx's file with a "pair_potentials" list of `kinds` (fixture parameters) in its metadata;
    change(metadata) may alter the metadata first."""
    from pyani import _onnx_file
    from pyani import _onnx_writer as w
    from pyani._model_files import locate

    data = Path(locate("ani-1ccx")[1]).read_bytes()
    graph = next(bytes(v) for n, _, v in _onnx_file._fields(memoryview(data)) if n == 7)
    meta = pyani.load("ani-1ccx").metadata
    assert meta["elements"] == HCNO
    meta = {**meta, "pair_potentials": [subset(ENTRIES[k], HCNO) for k in kinds]}
    if change is not None:
        change(meta)
    path = tmp_dir / f"ani-1ccx-{'-'.join(kinds) or 'none'}.onnx"
    path.write_bytes(w.model(graph, ir_version=8, opset=17, producer="test", metadata={"pyani": json.dumps(meta)}))
    return path


def model_with(kinds: tuple, backend: str, tmp_path_factory, precision="float64") -> pyani.Model:
    key = (kinds, backend, precision)
    if key not in _models:
        path = model_file(kinds, tmp_path_factory.mktemp("models"))
        _models[key] = pyani.load(path, backend=backend, precision=precision)
    return _models[key]


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_adds_torchani_pair_energies(backend, tmp_path_factory):
    """A model with both potentials: energy, forces, atomic energies and stress are the plain
    model's plus TorchANI's pair terms (H C N O systems of the fixture)."""
    plain = model_with((), backend, tmp_path_factory)
    full = model_with(tuple(KINDS), backend, tmp_path_factory)
    assert full.cutoff == 8.0 and plain.cutoff == pytest.approx(5.2)
    assert full.neighbors.cutoff == 8.0
    done = 0
    for name in SYSTEMS:
        numbers = FIXTURE[f"{name}/numbers"]
        if not set(numbers) <= {1, 6, 7, 8}:
            continue
        positions = FIXTURE[f"{name}/positions"]
        cell = FIXTURE.get(f"{name}/cell")
        stress = cell is not None
        a = plain.compute(numbers, positions, cell, stress=stress, atomic=True)
        b = full.compute(numbers, positions, cell, stress=stress, atomic=True)
        pair_energy = sum(FIXTURE[f"{name}/{k}/energy"] for k in KINDS)
        pair_forces = sum(FIXTURE[f"{name}/{k}/forces"] for k in KINDS)
        pair_atomic = sum(FIXTURE[f"{name}/{k}/atomic_energies"] for k in KINDS)
        n = len(numbers)
        assert abs(b.energy - a.energy - pair_energy) <= 1e-10 * n, name
        np.testing.assert_allclose(b.member_energies - a.member_energies, pair_energy, rtol=0, atol=1e-10 * n)
        assert b.energy_std == pytest.approx(a.energy_std, rel=1e-9)
        np.testing.assert_allclose(b.forces - a.forces, pair_forces, rtol=0, atol=1e-8, err_msg=name)
        np.testing.assert_allclose(b.atomic_energies - a.atomic_energies, pair_atomic, rtol=0, atol=1e-10)
        assert b.atomic_energies.sum() == pytest.approx(b.energy, abs=1e-10 * n)
        if stress:
            pair_stress = sum(FIXTURE[f"{name}/{k}/stress"] for k in KINDS)
            np.testing.assert_allclose(b.stress - a.stress, pair_stress, rtol=0, atol=1e-10)
        done += 1
    assert done >= 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_forces_stress_mask_and_members(backend, tmp_path_factory):
    """Through Model.compute: forces and stress against finite differences of the energy, the
    energy_mask sum rule and gradient, member forces and batches (padded and ragged)."""
    model = model_with(tuple(KINDS), backend, tmp_path_factory)
    assert model.cutoff == 8.0 and model.pair_potentials.reach == 16.0  # D3: two cutoffs
    rng = np.random.default_rng(17)
    numbers, positions, cell = water_box(rng, 2, spacing=2.9)
    r = model.compute(numbers, positions, cell, stress=True, atomic=True, member_forces=True)
    np.testing.assert_allclose(r.member_forces.mean(axis=0), r.forces, rtol=0, atol=1e-10)
    h = 1e-4
    for atom, c in [(0, 0), (5, 2), (10, 1)]:
        step = np.zeros_like(positions)
        step[atom, c] = h
        fd = -(
            model.compute(numbers, positions + step, cell).energy
            - model.compute(numbers, positions - step, cell).energy
        )
        assert fd / (2 * h) == pytest.approx(r.forces[atom, c], abs=2e-6)
    strain = np.zeros((3, 3))
    strain[0, 1] = h
    up, down = np.eye(3) + strain, np.eye(3) - strain
    fd = (
        model.compute(numbers, positions @ up, cell @ up).energy
        - model.compute(numbers, positions @ down, cell @ down).energy
    )
    volume = abs(np.linalg.det(cell))
    assert fd / (2 * h) / volume == pytest.approx(r.stress[0, 1], abs=1e-7)

    mask = np.zeros(len(numbers), bool)
    mask[::3] = True
    m = model.compute(numbers, positions, cell, energy_mask=mask, atomic=True)
    assert m.energy == pytest.approx(r.atomic_energies[mask].sum(), abs=1e-9)
    for atom, c in [(0, 0), (1, 1)]:
        step = np.zeros_like(positions)
        step[atom, c] = h
        fd = -(
            model.compute(numbers, positions + step, cell, energy_mask=mask).energy
            - model.compute(numbers, positions - step, cell, energy_mask=mask).energy
        )
        assert fd / (2 * h) == pytest.approx(m.forces[atom, c], abs=2e-6)

    molecules = [random_molecule(rng, n, box=4.0) for n in (4, 7)]
    singles = [model.compute(z, p) for z, p in molecules]
    batch = model.compute(*padded_batch(molecules))
    ragged = model.compute([z for z, _ in molecules], [p for _, p in molecules])
    for b, single in enumerate(singles):
        assert batch.energy[b] == pytest.approx(single.energy, abs=1e-9)
        assert ragged.energy[b] == pytest.approx(single.energy, abs=1e-9)
        np.testing.assert_allclose(ragged.forces[b], single.forces, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_repulsion_only_model(backend, tmp_path_factory):
    model = model_with(("repulsion_xtb",), backend, tmp_path_factory, precision="float32")
    assert model.cutoff == 5.2 and not model.pair_potentials.has_dispersion
    assert model.pair_potentials.reach == 5.2
    plain = pyani.load("ani-1ccx", backend=backend)
    numbers = FIXTURE["squeezed_ethanol/numbers"]
    positions = FIXTURE["squeezed_ethanol/positions"]
    difference = model.compute(numbers, positions).energy - plain.compute(numbers, positions).energy
    assert difference == pytest.approx(float(FIXTURE["squeezed_ethanol/repulsion_xtb/energy"]), abs=1e-5)


def _set(path: str, value):
    """A change(meta) that sets pair_potentials[k].<path> (dots between keys; value None deletes)."""
    first, *rest = path.split(".")

    def change(meta):
        target = meta["pair_potentials"][int(first)]
        for key in rest[:-1]:
            target = target[key]
        if value is None:
            del target[rest[-1]]
        else:
            target[rest[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.update(pair_potentials={"kind": "repulsion_xtb"}), "pair_potentials must be a list"),
        (_set("0.kind", "lennard_jones"), r"pair_potentials\[0\]\.kind: 'lennard_jones' is not implemented"),
        (_set("1.cutoff", -1.0), r"pair_potentials\[1\]\.cutoff must be above 0"),
        (_set("1.cutoff", float("inf")), r"pair_potentials\[1\]\.cutoff must be finite"),
        (_set("0.cutoff_fn", "biweight"), r"pair_potentials\[0\]\.cutoff_fn must be one of .*'biweight'"),
        (_set("0.cutoff_fn_params.order", 2.5), r"cutoff_fn_params\.order must be an integer"),
        (_set("0.cutoff_fn", None), r"pair_potentials\[0\]: missing field\(s\) 'cutoff_fn'"),
        (_set("0.cutoff_fn_params.width", 1), r"pair_potentials\[0\]\.cutoff_fn_params: unknown entries \['width'\]"),
        (_set("0.y_ab", [[1.0, 2.0]]), r"pair_potentials\[0\]\.y_ab must have shape \(4, 4\)"),
        (_set("1.c6", [[[[0.0] * 5] * 5] * 4] * 3), r"pair_potentials\[1\]\.c6 must have shape \(4, 4, 5, 5\)"),
        (_set("1.covalent_radii", [1.0, "x", 1.0, 1.0]), r"covalent_radii must be a table of numbers"),
        (_set("1.s6", None), r"pair_potentials\[1\]: missing field\(s\) 's6'"),
        (_set("1.s8", "1.5"), r"pair_potentials\[1\]\.s8 must be a number"),
        (_set("1.damping", "zero"), r"pair_potentials\[1\]: unknown field\(s\) 'damping'"),
        (_set("0.bohr_per_angstrom", 0), r"bohr_per_angstrom must be above 0"),
    ],
)
def test_bad_pair_potential_metadata_is_refused(tmp_path, change, match):
    path = model_file(tuple(KINDS), tmp_path, change)
    with pytest.raises(ValueError, match=match):
        pyani.load(path)


@pytest.mark.parametrize(
    ("ranks", "kinds"),
    [
        (2, ("repulsion_xtb", "dispersion_d3bj")),  # ghosts out to twice the D3 cutoff
        (2, ("repulsion_xtb",)),
        (1, ("repulsion_xtb", "dispersion_d3bj")),
    ],
)
def test_lammps_bridge_with_pair_potentials(tmp_path, ranks, kinds):
    """pyani.lammps on 1 and 2 MPI ranks (real LAMMPS, tests/lammps_driver.py) equals the periodic
    compute: each rank's masked energy needs its ghosts' coordination numbers right, so ghosts
    reach twice the dispersion cutoff (pyani.lammps._reach)."""
    import lammps_driver
    from test_lammps import result_of, run

    from pyani.lammps import _reach

    backend = BACKENDS[0]
    path = model_file(kinds, tmp_path)
    out = result_of(run("first_step", ranks, tmp_path, model=str(path), backend=backend, precision="float64"))
    numbers, positions, cell = lammps_driver.box(0.0)
    model = pyani.load(path, backend=backend, precision="float64")
    assert _reach(model) == (16.0 if "dispersion_d3bj" in kinds else 5.2)
    reference = model.compute(numbers, positions, cell, stress=True)
    # float64 throughout: ghosts reaching only the cutoff (not twice the D3 cutoff) are off by
    # 2e-10 Ha/atom and 2e-9 Ha/A here, the right reach by 1e-14
    assert abs(out["energy"] - reference.energy) / len(numbers) < 1e-12
    np.testing.assert_allclose(out["forces"], reference.forces, rtol=0, atol=1e-11)
    s = reference.stress
    np.testing.assert_allclose(out["stress"], [s[0, 0], s[1, 1], s[2, 2], s[0, 1], s[0, 2], s[1, 2]], atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_kernel_object_serves_several_threads(backend):
    """compute() keeps no state between calls (C++: a locked buffer pool): threads sharing one
    object get what serial calls give."""
    from concurrent.futures import ThreadPoolExecutor

    kernel = make_kernel(backend, "dispersion_d3bj")
    rng = np.random.default_rng(29)
    cases = []
    for n in (3, 4, 5):
        numbers, positions, cell = water_box(rng, n)
        cases.append(
            (species_of(numbers), *kernels(backend).NeighborList(8.0).compute(positions, cell, np.ones(3, bool)))
        )

    def run(case):
        species, pairs, _, vectors = case
        return kernel.compute(species, pairs, vectors, forces=True, virial=True)

    serial = [run(c) for c in cases]
    assert kernel.retained_bytes >= 0
    with ThreadPoolExecutor(3) as pool:
        threaded = list(pool.map(run, cases * 3))
    for k, got in enumerate(threaded):
        want = serial[k % len(cases)]
        for a, b in zip(got, want):
            if a is not None:
                np.testing.assert_array_equal(a, b)


def test_cli_info_names_the_pair_terms(tmp_path, capsys):
    from pyani.cli import main

    path = model_file(("repulsion_xtb", "dispersion_d3bj"), tmp_path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pair term:   repulsion_xtb, cutoff" in out
    assert "pair term:   dispersion_d3bj, cutoff 8.0 A" in out
