"""energy_mask: the energy of some atoms only (a spatial domain with ghost atoms)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import get_model
from oracles import random_molecule, water_box


def test_masked_energy_is_the_sum_of_the_masked_atomic_energies(backend):
    model = get_model("ani-1x", backend)
    numbers, pos = random_molecule(np.random.default_rng(50), 12)
    mask = np.zeros(12, bool)
    mask[[0, 3, 4, 9]] = True
    full = model.compute(numbers, pos, atomic=True)
    part = model.compute(numbers, pos, atomic=True, energy_mask=mask)
    assert part.energy == pytest.approx(full.atomic_energies[mask].sum(), abs=1e-9)
    np.testing.assert_array_equal(part.atomic_energies, full.atomic_energies)
    assert part.member_energies.shape == full.member_energies.shape
    # Forces are -d(masked energy)/dr: the two halves of the energy add up to the whole, and
    # so do their forces (finite differences of the float32 networks would be too noisy).
    rest = model.compute(numbers, pos, energy_mask=~mask)
    assert part.energy + rest.energy == pytest.approx(full.energy, abs=1e-9)
    np.testing.assert_allclose(part.forces + rest.forces, full.forces, atol=1e-9)
    assert np.abs(part.forces).max() > 1e-3 and np.abs(part.forces - full.forces).max() > 1e-3
    everything = model.compute(numbers, pos, energy_mask=np.ones(12, bool))
    assert everything.energy == full.energy
    np.testing.assert_array_equal(everything.forces, full.forces)


def test_a_domain_with_ghosts_gives_the_periodic_forces_of_its_atoms(backend):
    """A slab of a periodic water box, with every image within 2 cutoffs as explicit ghost
    atoms, no periodicity: counting the energies of the slab and of the ghosts within one
    cutoff gives the periodic forces on the slab's atoms exactly; the slab's atomic
    energies are the periodic ones."""
    model = get_model("ani-1x", backend)
    numbers, pos, cell = water_box(np.random.default_rng(52), 4)  # 12.4 A box
    periodic = model.compute(numbers, pos, cell, atomic=True)
    local = pos[:, 0] < cell[0, 0] / 2
    images = [np.array(s) @ cell for s in itertools.product((-1, 0, 1), repeat=3) if any(s)]
    ghost_pos = np.concatenate([pos + t for t in images])
    ghost_numbers = np.tile(numbers, len(images))
    all_pos = np.concatenate([pos, ghost_pos])
    all_numbers = np.concatenate([numbers, ghost_numbers])
    # the domain: the slab's atoms; ghosts are all other atoms (and images) near it
    slab = all_pos[np.flatnonzero(local)]
    distance = np.min(np.linalg.norm(all_pos[:, None] - slab[None], axis=-1), axis=1)
    is_local = np.zeros(len(all_pos), bool)
    is_local[np.flatnonzero(local)] = True
    keep = is_local | (distance < 2 * model.cutoff)
    near = (distance < model.cutoff)[keep]
    r = model.compute(all_numbers[keep], all_pos[keep], atomic=True, energy_mask=near)
    n_local = np.count_nonzero(local)
    mine = np.flatnonzero(is_local[keep])
    assert len(mine) == n_local
    np.testing.assert_allclose(r.forces[mine], periodic.forces[local], atol=2e-6)
    np.testing.assert_allclose(r.atomic_energies[mine], periodic.atomic_energies[local], atol=1e-6)


@pytest.mark.parametrize(
    ("mask", "error", "match"),
    [([True, False], ValueError, "energy_mask must have shape"), ([1, 0, 1], TypeError, "energy_mask must be bools")],
)
def test_bad_energy_mask(backend, mask, error, match):
    model = get_model("ani-1x", backend)
    with pytest.raises(error, match=match):
        model.compute([6, 1, 1], [[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0]], energy_mask=mask)
