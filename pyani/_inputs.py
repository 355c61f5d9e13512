"""The inputs people have, turned into the arrays ``Model.compute`` checks.

Accepted besides plain arrays: chemical symbols, an ``ase.Atoms`` (or anything with its
``get_*`` methods), a list of ``ase.Atoms``, and ragged lists of structures of different
sizes. ASE is never imported here: Atoms are recognised by their methods.

``to_arrays`` runs first in ``compute``; ``split`` turns the padded batch result of ragged
input back into one entry per structure.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._elements import SYMBOLS, atomic_number

_ATOMS_METHODS = ("get_atomic_numbers", "get_positions", "get_cell", "get_pbc")


def _is_atoms(value) -> bool:
    return all(callable(getattr(value, name, None)) for name in _ATOMS_METHODS)


def _is_sequence(value) -> bool:
    """A list of items, as opposed to a string or a number."""
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0)


def _ragged_path(value, name: str) -> str | None:
    """Where nested lists stop being rectangular: "positions[2] has 2 items, positions[0] has 3"."""
    if not _is_sequence(value) or len(value) == 0:
        return None
    items = list(value)
    nested = [_is_sequence(item) for item in items]
    if any(nested) and not all(nested):
        i = nested.index(not nested[0])
        return f"{name}[{i}] is {'a list' if nested[i] else 'a number'} but {name}[0] is not"
    if not nested[0]:
        return None
    lengths = [len(item) for item in items]
    for i, n in enumerate(lengths):
        if n != lengths[0]:
            return f"{name}[{i}] has {n} items but {name}[0] has {lengths[0]}"
    for i, item in enumerate(items):
        inner = _ragged_path(item, f"{name}[{i}]")
        if inner:
            return inner
    return None


def _float_array(value, name: str):
    """value as a float64 array, or an error that says where its nesting is ragged (NumPy's
    "inhomogeneous shape" names neither the argument nor the place). Values that are not
    numbers are passed on unchanged for compute's own message."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        where = _ragged_path(value, name)
        if where:
            raise ValueError(f"{name} is ragged: {where}") from None
        return value


def _symbols_to_numbers(value, name: str):
    """Chemical symbols ("C", "Cl"; case as in ASE) -> atomic numbers; anything else unchanged."""
    if isinstance(value, str):
        raise TypeError(
            f"{name} must be a list of atomic numbers or chemical symbols, got the string {value!r}; "
            "give one symbol per atom, e.g. ['C', 'H', 'H', 'H', 'H']"
        )
    if isinstance(value, np.ndarray) and value.dtype.kind not in "US":
        return value
    if not _is_sequence(value):
        return value
    items = list(value)
    is_symbol = [isinstance(item, (str, np.str_)) for item in items]
    if not any(is_symbol):
        return value
    if not all(is_symbol):
        raise TypeError(f"{name} mixes chemical symbols and atomic numbers; use one or the other")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(atomic_number(str(item)))
        except ValueError:
            hint = [s for s in SYMBOLS[1:] if s.lower() == str(item).lower()]
            also = f" (symbols are case-sensitive, as in ASE: {hint[0]!r})" if hint else ""
            raise ValueError(f"{name}[{i}] is an unknown chemical symbol {str(item)!r}{also}") from None
    return np.array(out, dtype=np.int64)


def from_atoms(atoms, name: str, constraints_ok: bool = False):
    """(numbers, positions, cell or None, pbc or None) of an ase.Atoms; its zero cell vectors
    along periodic directions are an error naming `name`. Constraints are one too unless
    constraints_ok (ASE's own calculators leave applying them to Atoms.get_forces)."""
    constraints = getattr(atoms, "constraints", None)
    if constraints and not constraints_ok:
        kinds = ", ".join(sorted({type(c).__name__ for c in constraints}))
        raise ValueError(
            f"{name} is an ase.Atoms with constraints ({kinds}); compute returns unconstrained forces. "
            "Remove them (atoms.set_constraint()) or use the ASE calculator (model.ase()), which honours them"
        )
    numbers = np.array(atoms.get_atomic_numbers(), dtype=np.int64)
    positions = np.array(atoms.get_positions(), dtype=np.float64)
    pbc = np.array(atoms.get_pbc(), dtype=bool)
    if not pbc.any():
        return numbers, positions, None, None
    cell = np.array(atoms.get_cell(), dtype=np.float64)
    empty = [int(d) for d in np.flatnonzero(pbc) if not np.any(cell[d])]
    if empty:
        raise ValueError(
            f"{name} is an ase.Atoms with pbc={pbc.tolist()} but its cell vector(s) {empty} are zero; "
            "set a cell (atoms.set_cell) or turn periodicity off (atoms.pbc = False)"
        )
    return numbers, positions, cell, pbc


def _must_be_none(given: dict, what: str) -> None:
    for name, value in given.items():
        if value is not None:
            raise TypeError(f"{name} must be None when numbers is {what}: the structure carries its own {name}")


def _pad(numbers: list, positions: list):
    """Padded batch (-1 / zeros) of per-structure arrays."""
    width = max(len(z) for z in numbers)
    dtype = np.result_type(np.int8, *numbers)  # signed, for the -1 (uint8 numbers are fine)
    out_z = np.full((len(numbers), width), -1, dtype=dtype)
    out_r = np.zeros((len(numbers), width, 3))
    for b, (z, r) in enumerate(zip(numbers, positions)):
        out_z[b, : len(z)] = z
        out_r[b, : len(z)] = r
    return out_z, out_r


def _list_of_atoms(structures):
    numbers, positions, cells, pbcs = [], [], [], []
    for b, atoms in enumerate(structures):
        if not _is_atoms(atoms):
            raise TypeError(
                f"numbers[{b}] is a {type(atoms).__name__}, not an ase.Atoms: a list of structures "
                "given as Atoms must hold only Atoms"
            )
        z, r, c, p = from_atoms(atoms, f"numbers[{b}]")
        numbers.append(z)
        positions.append(r)
        cells.append(c)
        pbcs.append(np.zeros(3, dtype=bool) if p is None else p)
    for b, p in enumerate(pbcs):
        if not np.array_equal(p, pbcs[0]):
            raise ValueError(
                f"numbers[{b}] has pbc={p.tolist()} but numbers[0] has pbc={pbcs[0].tolist()}: "
                "a batch shares one pbc; compute these structures in separate calls"
            )
    if len(numbers) == 0:
        raise ValueError("numbers is an empty list of structures")
    padded_z, padded_r = _pad(numbers, positions)
    if not pbcs[0].any():
        return padded_z, padded_r, None, None
    return padded_z, padded_r, np.stack(cells), pbcs[0]


def _structure_numbers(numbers) -> list:
    """numbers[b] of each structure as a 1-D array of atomic numbers (or of what compute's
    own checks will reject with their message)."""
    out = []
    for b, z in enumerate(numbers):
        if _is_atoms(z):
            raise TypeError(f"numbers[{b}] is an ase.Atoms but numbers[0] is not: give only Atoms, or only lists")
        z = _symbols_to_numbers(z, f"numbers[{b}]")
        if _ragged_path(z, f"numbers[{b}]") or np.ndim(z) != 1:
            raise ValueError(
                f"numbers must have shape (n_atoms,) or (n_structures, n_atoms): numbers[{b}] is not a flat "
                "list of atomic numbers or chemical symbols"
            )
        z = np.asarray(z)
        if len(z) == 0:
            raise ValueError(f"numbers[{b}] has no atoms: every structure needs at least one")
        if z.dtype.kind not in "iuf":
            raise TypeError(f"numbers[{b}] must be integers (atomic numbers) or chemical symbols, got dtype {z.dtype}")
        out.append(z)
    return out


def _list_of_structures(numbers, positions):
    """Per-structure numbers and positions (lists, maybe of different sizes) -> padded batch
    and the sizes, or the stacked batch and None when all sizes agree."""
    per_z = _structure_numbers(numbers)
    if not _is_sequence(positions):
        raise TypeError(f"positions must hold one [n_atoms, 3] array per structure of numbers, got {positions!r}")
    if len(positions) != len(numbers):
        raise ValueError(f"positions has {len(positions)} structures but numbers has {len(numbers)}")
    per_r = []
    for b, (z, r) in enumerate(zip(per_z, positions)):
        r = _float_array(r, f"positions[{b}]")
        try:
            r = np.array(r, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"positions[{b}] must be a numeric array-like: {err}") from None
        if r.shape != (len(z), 3):
            raise ValueError(
                f"positions[{b}] must have shape ({len(z)}, 3) to match numbers[{b}] ({len(z)} atoms), got {r.shape}"
            )
        per_r.append(r)
    lengths = [len(z) for z in per_z]
    if len(set(lengths)) == 1:
        return np.stack(per_z), np.stack(per_r), None
    padded_z, padded_r = _pad(per_z, per_r)
    return padded_z, padded_r, lengths


def _structure_list(numbers) -> list | None:
    """The structures of numbers given as a list of lists (a NumPy array of numbers takes
    compute's batch path unchanged), else None."""
    if isinstance(numbers, np.ndarray):
        if numbers.dtype == object and numbers.ndim == 1 and len(numbers) and _is_sequence(numbers[0]):
            return list(numbers)
        return None
    if isinstance(numbers, (list, tuple)) and len(numbers) and _is_sequence(numbers[0]):
        return list(numbers)
    return None


def to_arrays(numbers, positions, cell, pbc):
    """(numbers, positions, cell, pbc, lengths) for ``compute``'s own checks.

    lengths is None unless numbers held a list of ase.Atoms or structures of different
    sizes: then numbers / positions are a batch padded with -1 / 0 and lengths lists the
    true sizes, for ``split``.
    """
    if _is_atoms(numbers):
        _must_be_none({"positions": positions, "cell": cell, "pbc": pbc}, "an ase.Atoms")
        z, r, c, p = from_atoms(numbers, "numbers")
        return z, r, c, p, None
    if isinstance(numbers, (list, tuple)) and numbers and _is_atoms(numbers[0]):
        _must_be_none({"positions": positions, "cell": cell, "pbc": pbc}, "a list of ase.Atoms")
        z, r, c, p = _list_of_atoms(numbers)
        return z, r, c, p, [len(atoms) for atoms in numbers]
    if positions is None:
        raise TypeError("positions is required (Angstrom) unless numbers is an ase.Atoms or a list of them")
    structures = _structure_list(numbers)
    if structures is not None:
        numbers, positions, lengths = _list_of_structures(structures, positions)
    else:
        numbers = _symbols_to_numbers(numbers, "numbers")
        where = _ragged_path(numbers, "numbers") if isinstance(numbers, (list, tuple)) else None
        if where:
            raise ValueError(f"numbers is ragged: {where}")
        positions, lengths = _float_array(positions, "positions"), None
    if cell is not None:
        cell = _float_array(cell, "cell")
    return numbers, positions, cell, pbc, lengths


def split(result, lengths):
    """Result of a padded batch -> per-structure result: energies stay arrays [B] / [B, M],
    stress [B, 3, 3]; per-atom fields become lists of [N_b, ...] arrays without padding.
    The identity when lengths is None."""
    if lengths is None:
        return result
    changes = {}
    for name in ("forces", "atomic_energies", "forces_std"):
        values = getattr(result, name)
        if values is not None:
            changes[name] = [values[b, :n].copy() for b, n in enumerate(lengths)]
    if result.member_forces is not None:  # [B, M, N, 3]
        changes["member_forces"] = [result.member_forces[b, :, :n].copy() for b, n in enumerate(lengths)]
    return dataclasses.replace(result, **changes)
