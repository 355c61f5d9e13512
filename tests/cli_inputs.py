"""Structure files the CLI and screening tests read, written with ase.io."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MOLECULES = ("H2O", "CH4", "C6H6", "CH3CH2OH", "NH3", "HCOOH")


def molecules(seed: int = 0) -> list:
    """Small H/C/N/O molecules, slightly perturbed (so that none is exactly at its minimum)."""
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    out = []
    for name in MOLECULES:
        atoms = molecule(name)
        atoms.positions += rng.normal(0, 0.02, atoms.positions.shape)
        out.append(atoms)
    return out


def periodic_box():
    """Two methanes in a periodic 6 Angstrom box (closer than the cutoff to their images)."""
    from ase import Atoms
    from ase.build import molecule

    first, second = molecule("CH4"), molecule("CH4")
    second.positions += (3.0, 3.0, 3.0)
    box = Atoms(first + second, cell=np.eye(3) * 6.0, pbc=True)
    box.positions += 0.5
    return box


def write_inputs(folder: Path) -> dict[str, Path]:
    """mols.extxyz (6 frames), box.extxyz (2 periodic frames), mols.sdf (2 records), water.xyz."""
    import ase.io

    paths = {
        "mols": folder / "mols.extxyz",
        "box": folder / "box.extxyz",
        "sdf": folder / "mols.sdf",
        "water": folder / "water.xyz",
    }
    mols = molecules()
    ase.io.write(paths["mols"], mols)
    box = periodic_box()
    squeezed = box.copy()
    squeezed.set_cell(box.cell * 0.98, scale_atoms=True)
    ase.io.write(paths["box"], [box, squeezed])
    records = []
    for atoms in (mols[3], mols[5]):  # ase writes one molecule per SDF (ending in $$$$): join them
        single = folder / "one.sdf"
        ase.io.write(single, atoms, format="sdf")
        records.append(single.read_text())
        single.unlink()
    paths["sdf"].write_text("".join(records))
    ase.io.write(paths["water"], mols[0], format="xyz")
    return paths
