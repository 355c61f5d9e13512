"""Inputs people have (symbols, ase.Atoms, lists of structures of different sizes) give the
same numbers as the padded arrays, and every bad one is named."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.constraints import FixAtoms
from conftest import get_model
from oracles import padded_batch, water_box

METHANE_Z = [6, 1, 1, 1, 1]
METHANE_R = np.array(
    [[0.0, 0.0, 0.0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]
)
WATER_Z = [8, 1, 1]
WATER_R = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.24, 0.9266, 0.0]])
ETHANOL = molecule("CH3CH2OH")


@pytest.fixture
def model(backend):
    return get_model("ani-1ccx", backend)


def assert_same(got, want, atoms=True):
    np.testing.assert_array_equal(got.energy, want.energy)
    np.testing.assert_array_equal(got.member_energies, want.member_energies)
    np.testing.assert_array_equal(got.energy_std, want.energy_std)
    if atoms:
        np.testing.assert_array_equal(got.forces, want.forces)


def test_symbols_equal_numbers(model):
    want = model.compute(METHANE_Z, METHANE_R)
    assert_same(model.compute(["C", "H", "H", "H", "H"], METHANE_R), want)
    assert_same(model.compute(np.array(["C", "H", "H", "H", "H"]), METHANE_R), want)
    assert_same(model.compute(("C", "H", "H", "H", "H"), METHANE_R), want)


def test_atoms_equal_arrays(model):
    want = model.compute(ETHANOL.numbers, ETHANOL.positions, atomic=True)
    assert_same(model.compute(ETHANOL, atomic=True), want)
    numbers, positions, cell = water_box(np.random.default_rng(3), 2)
    box = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    want = model.compute(numbers, positions, cell, stress=True)
    got = model.compute(box, stress=True)
    assert_same(got, want)
    np.testing.assert_array_equal(got.stress, want.stress)
    # Partial pbc: the zero cell vector along the open direction is fine.
    slab = box.copy()
    slab.pbc = [True, True, False]
    slab.cell[2] = 0.0
    want = model.compute(numbers, positions, cell, [True, True, False])
    assert_same(model.compute(slab), want)


def test_ragged_lists_equal_padded_batch(model):
    ethanol = (ETHANOL.numbers, ETHANOL.positions)
    structures = [(METHANE_Z, METHANE_R), (WATER_Z, WATER_R), ethanol]
    padded_z, padded_r = padded_batch(structures)
    want = model.compute(padded_z, padded_r, atomic=True)
    got = model.compute([z for z, _ in structures], [r for _, r in structures], atomic=True)
    assert_same(got, want, atoms=False)
    assert isinstance(got.forces, list) and isinstance(got.atomic_energies, list)
    for b, (z, _) in enumerate(structures):
        n = len(z)
        assert got.forces[b].shape == (n, 3) and got.atomic_energies[b].shape == (n,)
        np.testing.assert_array_equal(got.forces[b], want.forces[b, :n])
        np.testing.assert_array_equal(got.atomic_energies[b], want.atomic_energies[b, :n])
    # Symbols, plain lists, tuples: the same again.
    symbols = [["C", "H", "H", "H", "H"], ["O", "H", "H"], list(ETHANOL.get_chemical_symbols())]
    again = model.compute(symbols, [r.tolist() for _, r in structures], atomic=True)
    assert_same(again, got, atoms=False)
    # Any integer type, even unsigned (padding is -1 inside).
    unsigned = model.compute([np.array(z, dtype=np.uint8) for z, _ in structures], [r for _, r in structures])
    assert_same(unsigned, got, atoms=False)
    # Equal sizes written as lists take the plain batch path: arrays, not lists.
    same = model.compute([METHANE_Z, METHANE_Z], [METHANE_R, METHANE_R + 0.01])
    assert same.forces.shape == (2, 5, 3)


def test_list_of_atoms_equals_padded_batch(model):
    water = Atoms(numbers=WATER_Z, positions=WATER_R)
    methane = Atoms(numbers=METHANE_Z, positions=METHANE_R)
    padded_z, padded_r = padded_batch([(water.numbers, water.positions), (methane.numbers, methane.positions)])
    want = model.compute(padded_z, padded_r, atomic=True)
    got = model.compute([water, methane], atomic=True)
    assert_same(got, want, atoms=False)
    np.testing.assert_array_equal(got.forces[0], want.forces[0, :3])
    np.testing.assert_array_equal(got.forces[1], want.forces[1])
    # A list of Atoms always gives one entry per structure, even of equal sizes.
    assert [f.shape for f in model.compute([water, water]).forces] == [(3, 3), (3, 3)]
    # Periodic structures keep their own cells; stress per structure.
    numbers, positions, cell = water_box(np.random.default_rng(4), 2)
    box = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    small = Atoms(numbers=WATER_Z, positions=WATER_R + 1.0, cell=np.eye(3) * 6.0, pbc=True)
    got = model.compute([box, small], stress=True)
    for b, atoms in enumerate([box, small]):
        one = model.compute(atoms.numbers, atoms.positions, atoms.cell.array, stress=True)
        # float32 networks: a batch and a single structure round differently
        assert abs(got.energy[b] - one.energy) < 1e-6
        np.testing.assert_allclose(got.stress[b], one.stress, atol=1e-8)
        np.testing.assert_allclose(got.forces[b], one.forces, atol=1e-5)


def test_user_inputs_are_not_modified(model):
    atoms = ETHANOL.copy()
    lists = [[6, 1, 1, 1, 1], [8, 1, 1]]
    positions = [METHANE_R.copy(), WATER_R.copy()]
    model.compute(atoms)
    model.compute(lists, positions)
    assert atoms == ETHANOL
    assert lists == [[6, 1, 1, 1, 1], [8, 1, 1]]
    np.testing.assert_array_equal(positions[0], METHANE_R)


def test_ase_is_imported_only_for_atoms():
    code = (
        "import sys, pyani\n"
        "m = pyani.load('ani-1x')\n"
        "m.compute(['O', 'H', 'H'], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])\n"
        "m.compute([[8, 1, 1], [8, 1]], [[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], [[0, 0, 0], [0.96, 0, 0]]])\n"
        "assert 'ase' not in sys.modules, 'ase imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _h2(**kwargs):
    return Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]], **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (
            (["C", "CL"], [[0, 0, 0], [1.7, 0, 0]]),
            {},
            ValueError,
            r"numbers\[1\] is an unknown chemical symbol 'CL'.*'Cl'",
        ),
        ((["C", "Xx"], [[0, 0, 0], [1.7, 0, 0]]), {}, ValueError, r"numbers\[1\] is an unknown chemical symbol 'Xx'$"),
        ((["C", 1], [[0, 0, 0], [1.1, 0, 0]]), {}, TypeError, "numbers mixes chemical symbols and atomic numbers"),
        (("CH4", METHANE_R), {}, TypeError, "numbers must be a list .* got the string 'CH4'"),
        ((["C", "H", "H", "H", "H"],), {}, TypeError, "positions is required"),
        ((["C", "H", "H", "H", "S"], METHANE_R), {}, ValueError, r"lacks: S \(Z=16\)"),
        (
            (METHANE_Z, [[0, 0, 0], [1, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]),
            {},
            ValueError,
            r"positions is ragged: positions\[1\] has 2 items but positions\[0\] has 3",
        ),
        (
            (METHANE_Z, METHANE_R),
            {"cell": [[8, 0, 0], [0, 8], [0, 0, 8]]},
            ValueError,
            r"cell is ragged: cell\[1\] has 2 items",
        ),
        (
            ([6, [1, 1]], METHANE_R),
            {},
            ValueError,
            r"numbers is ragged: numbers\[1\] is a list but numbers\[0\] is not",
        ),
        # ragged batches
        (
            ([METHANE_Z, WATER_Z], [METHANE_R, WATER_R[:2]]),
            {},
            ValueError,
            r"positions\[1\] must have shape \(3, 3\) to match numbers\[1\] \(3 atoms\), got \(2, 3\)",
        ),
        (([METHANE_Z, WATER_Z], [METHANE_R]), {}, ValueError, "positions has 1 structures but numbers has 2"),
        (([METHANE_Z, WATER_Z], METHANE_R[0]), {}, ValueError, "positions has 3 structures but numbers has 2"),
        (([METHANE_Z, WATER_Z], 1.0), {}, TypeError, "positions must hold one"),
        (
            ([METHANE_Z, ["O", "Q", "H"]], [METHANE_R, WATER_R]),
            {},
            ValueError,
            r"numbers\[1\]\[1\] is an unknown chemical symbol 'Q'",
        ),
        (([METHANE_Z, [8, 1, 1.5]], [METHANE_R, WATER_R]), {}, TypeError, "numbers must be integers"),
        (
            ([METHANE_Z, [[8, 1, 1]]], [METHANE_R, WATER_R]),
            {},
            ValueError,
            r"numbers must have shape .*: numbers\[1\] is not a flat list",
        ),
        (([METHANE_Z, [True] * 3], [METHANE_R, WATER_R]), {}, TypeError, r"numbers\[1\] must be integers"),
        (
            ([METHANE_Z, WATER_Z], [METHANE_R, [["a", "b", "c"]] * 3]),
            {},
            TypeError,
            r"positions\[1\] must be a numeric array-like",
        ),
        (
            ([METHANE_Z, WATER_Z], [METHANE_R, [[0, 0, 0], [1, 0], [0, 1, 0]]]),
            {},
            ValueError,
            r"positions\[1\] is ragged: positions\[1\]\[1\] has 2 items",
        ),
        (([METHANE_Z, WATER_Z], [METHANE_R, WATER_R * np.nan]), {}, ValueError, "positions contains NaN"),
        (([METHANE_Z, []], [METHANE_R, []]), {}, ValueError, r"numbers\[1\] has no atoms"),
        (([METHANE_Z, ETHANOL], [METHANE_R, WATER_R]), {}, TypeError, r"numbers\[1\] is an ase.Atoms but numbers\[0\]"),
        # ase.Atoms
        ((ETHANOL, ETHANOL.positions), {}, TypeError, "positions must be None when numbers is an ase.Atoms"),
        ((ETHANOL,), {"cell": np.eye(3) * 9}, TypeError, "cell must be None when numbers is an ase.Atoms"),
        ((ETHANOL,), {"pbc": True}, TypeError, "pbc must be None when numbers is an ase.Atoms"),
        ((_h2(pbc=True),), {}, ValueError, r"numbers is an ase.Atoms with pbc=\[True, True, True\] but its cell"),
        ((_h2(pbc=[True, False, False], cell=[0, 5, 5]),), {}, ValueError, r"cell vector\(s\) \[0\] are zero"),
        ((_h2(constraint=FixAtoms([0])),), {}, ValueError, r"numbers is an ase.Atoms with constraints \(FixAtoms\)"),
        ((_h2(cell=[[5, 0, 0], [10, 0, 0], [0, 0, 5]], pbc=True),), {}, ValueError, "cell is singular"),
        ((Atoms(),), {}, ValueError, "numbers must contain at least one atom"),
        (([ETHANOL, _h2()], ETHANOL.positions), {}, TypeError, "positions must be None when numbers is a list of"),
        (([ETHANOL, 7],), {}, TypeError, r"numbers\[1\] is a int, not an ase.Atoms"),
        (([ETHANOL, _h2(constraint=FixAtoms([0]))],), {}, ValueError, r"numbers\[1\] is an ase.Atoms with constraints"),
        (
            ([ETHANOL, _h2(pbc=True, cell=np.eye(3) * 5)],),
            {},
            ValueError,
            r"numbers\[1\] has pbc=\[True, True, True\] but numbers\[0\] has pbc=\[False, False, False\]",
        ),
        (([ETHANOL, _h2(pbc=True)],), {}, ValueError, r"numbers\[1\] is an ase.Atoms with pbc=.* cell vector"),
        (([ETHANOL],), {"stress": True}, ValueError, "stress=True needs a periodic system"),
    ],
)
def test_bad_inputs_are_named(model, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        model.compute(*args, **kwargs)


def test_numpy_inhomogeneous_message_never_reaches_the_user(model):
    """Every ragged shape we could think of: the message is ours, never NumPy's."""
    cases = [
        ([6, 1], [[0, 0, 0], [1, 0, 0, 0]]),
        ([[6, 1], [8]], [[[0, 0, 0], [1, 0, 0]], [[0, 0]]]),
        ([[6, 1], [8]], np.zeros((2, 2, 3))),
        ([[6, 1], [8, 1]], [[[0, 0, 0], [1, 0, 0]], [[0, 0, 0]]]),
        ([6, 1], [[0, 0, 0], [[1, 0, 0]]]),
    ]
    for numbers, positions in cases:
        with pytest.raises((TypeError, ValueError)) as info:
            model.compute(numbers, positions)
        assert "inhomogeneous" not in str(info.value) and "setting an array element" not in str(info.value)
        assert "positions" in str(info.value)
