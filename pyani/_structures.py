"""Structures read from files, one frame at a time (never the whole file in memory).

Plain and extended XYZ files have a fast reader here (importing ase.io alone costs about a
second, more than a whole ``pyani energy`` run should), and so do SDF files, of which
ase.io reads only the first record; every other format, and any XYZ or SDF file these
readers cannot follow, goes through ``ase.io.iread``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._elements import SYMBOLS

_NUMBER_OF = {s.lower(): z for z, s in enumerate(SYMBOLS) if z > 0}
_KEY_VALUE = re.compile(r'(\w+)=("[^"]*"|\S+)')


@dataclass
class Structure:
    """One frame of a file: Angstrom; cell None and pbc None for a molecule.

    error is set (and the arrays may be None) when the frame could not be read.
    """

    source: str
    index: int
    numbers: np.ndarray | None = None
    positions: np.ndarray | None = None
    cell: np.ndarray | None = None
    pbc: np.ndarray | None = None
    error: str | None = None

    @property
    def natoms(self) -> int:
        return 0 if self.numbers is None else len(self.numbers)

    @property
    def formula(self) -> str:
        """Hill formula ("C2H6O"); empty when unread."""
        if self.numbers is None:
            return ""
        counts = np.bincount(self.numbers)
        symbols = {SYMBOLS[z] if 0 < z < len(SYMBOLS) else f"Z{z}": int(c) for z, c in enumerate(counts) if c}
        order = ["C", "H"] if "C" in symbols else []
        order += sorted(s for s in symbols if s not in order)
        return "".join(s + (str(symbols[s]) if symbols[s] > 1 else "") for s in order if s in symbols)


class _NotPlainXYZ(Exception):
    """The fast XYZ reader cannot follow this file: hand it to ase.io."""


def read(path: str | Path, fmt: str | None = None) -> Iterator[Structure]:
    """Every frame of a file, in order. A file or frame that cannot be read is yielded as a
    Structure with its error (reading the file then stops), never raised."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        yield Structure(source, 0, error=f"no such file: {source}")
        return
    if fmt is None and path.suffix.lower() in (".xyz", ".extxyz"):
        frames = _read_xyz(path)
        try:
            first = next(frames, None)
        except _NotPlainXYZ:
            first = "ase"
        if first != "ase":
            if first is None:
                yield Structure(source, 0, error=f"{source}: no structures in file")
                return
            yield first
            yield from frames
            return
    if fmt is None and path.suffix.lower() in (".sdf", ".mol", ".sd"):
        yield from _read_sdf(path)
        return
    yield from _read_ase(path, fmt)


def _read_sdf(path: Path) -> Iterator[Structure]:
    """Every record of an SDF file (V2000 molblocks separated by $$$$); V3000 goes to ase.io."""
    source = str(path)
    with open(path) as lines:
        index = 0
        while True:
            header = [lines.readline() for _ in range(4)]  # name, program, comment, counts
            if not header[0]:
                break
            if not any(line.strip() for line in header) and not lines.readline():
                break  # trailing blank lines
            try:
                numbers, positions = _sdf_atoms(header[3], lines)
            except ValueError as err:
                yield Structure(source, index, error=f"{source}: record {index}: {_one_line(err)}")
                return
            yield Structure(source, index, numbers, positions)
            index += 1
            for line in lines:  # bonds, properties, data items: up to the record's end
                if line.startswith("$$$$"):
                    break
    if index == 0:
        yield Structure(source, 0, error=f"{source}: no structures in file")


def sdf_record(text: str, source: str, index: int) -> Structure:
    """The Structure of one SDF record's text; its error when it cannot be read."""
    lines = io.StringIO(text)
    header = [lines.readline() for _ in range(4)]
    try:
        numbers, positions = _sdf_atoms(header[3], lines)
    except ValueError as err:
        return Structure(source, index, error=f"{source}: record {index}: {_one_line(err)}")
    return Structure(source, index, numbers, positions)


def _sdf_atoms(counts: str, lines) -> tuple[np.ndarray, np.ndarray]:
    """Numbers and positions from a V2000 counts line and the atom block that follows it."""
    if "V3000" in counts:
        raise ValueError("V3000 molblocks are not supported; convert to V2000")
    n = int(counts[:3])
    if n <= 0:
        raise ValueError(f"atom count must be positive, got {n}")
    numbers = np.empty(n, dtype=np.int64)
    positions = np.empty((n, 3), dtype=np.float64)
    for i in range(n):
        fields = lines.readline().split()
        if len(fields) < 4:
            raise ValueError(f"atom line {i + 1} of {n} is missing or short")
        z = _NUMBER_OF.get(fields[3].lower())
        if z is None:
            raise ValueError(f"unknown chemical symbol {fields[3]!r} on atom line {i + 1}")
        numbers[i] = z
        positions[i] = fields[:3]
    return numbers, positions


def _read_ase(path: Path, fmt: str | None) -> Iterator[Structure]:
    import ase.io  # slow: only for formats the fast reader does not take

    source = str(path)
    index = 0
    try:
        for atoms in ase.io.iread(source, index=":", format=fmt):
            yield from_atoms(atoms, source, index)
            index += 1
    except Exception as err:  # ase raises anything from a malformed file
        yield Structure(source, index, error=f"{source}: cannot read frame {index}: {_one_line(err)}")
        return
    if index == 0:
        yield Structure(source, 0, error=f"{source}: no structures in file")


def from_atoms(atoms, source: str, index: int) -> Structure:
    """A Structure from an ase.Atoms (a cell only when some direction is periodic)."""
    pbc = np.array(atoms.pbc, dtype=bool)
    periodic = bool(pbc.any())
    return Structure(
        source,
        index,
        numbers=np.array(atoms.numbers, dtype=np.int64),
        positions=np.array(atoms.positions, dtype=np.float64),
        cell=np.array(atoms.cell[:], dtype=np.float64) if periodic else None,
        pbc=pbc if periodic else None,
    )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if text else f"ase.io could not parse it ({type(err).__name__})"


def _read_xyz(path: Path) -> Iterator[Structure]:
    """Plain XYZ and the common extended XYZ (species and pos columns, Lattice, pbc).
    Raises _NotPlainXYZ on the first frame if the file needs ase.io."""
    source = str(path)
    with open(path) as lines:
        index = 0
        while True:
            header = lines.readline()
            while header and not header.strip():  # blank lines between frames
                header = lines.readline()
            if not header:
                return
            try:
                yield _xyz_frame(header, lines, source, index)
            except _NotPlainXYZ:
                if index == 0:
                    raise
                yield Structure(source, index, error=f"{source}: frame {index}: extended XYZ layout not supported")
                return
            except ValueError as err:
                if index == 0 and not header.strip().isdigit():
                    raise _NotPlainXYZ from None
                yield Structure(source, index, error=f"{source}: frame {index}: {err}")
                return
            index += 1


def _xyz_frame(header: str, lines, source: str, index: int) -> Structure:
    try:
        n = int(header.split()[0])
    except (ValueError, IndexError):
        raise ValueError(f"expected the atom count, got {header.strip()[:40]!r}") from None
    if n <= 0:
        raise ValueError(f"atom count must be positive, got {n}")
    comment = lines.readline()
    info = dict(_KEY_VALUE.findall(comment)) if "=" in comment else {}
    info = {k.lower(): v.strip('"') for k, v in info.items()}
    symbol_column, position_column = 0, 1
    if "properties" in info:
        symbol_column, position_column = _columns(info["properties"])
    cell = pbc = None
    if "lattice" in info:
        cell = np.array(info["lattice"].split(), dtype=np.float64).reshape(3, 3)
        flags = info.get("pbc", "T T T").split()
        if len(flags) != 3 or any(f not in "TFtf" for f in flags):
            raise _NotPlainXYZ
        pbc = np.array([f in "Tt" for f in flags])
        if not pbc.any():
            cell = pbc = None
    atom_lines = [lines.readline() for _ in range(n)]
    parsed = _atoms_fast(atom_lines, n, symbol_column, position_column)
    numbers, positions = parsed if parsed is not None else _atoms_checked(atom_lines, n, symbol_column, position_column)
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions are not finite")
    return Structure(source, index, numbers, positions, cell, pbc)


def _atoms_fast(atom_lines, n: int, symbol_column: int, position_column: int):
    """Numbers and positions of well-formed atom lines (all with the same column count), in
    a few bulk operations; None when anything is off (the checked path then says what)."""
    words = "".join(atom_lines).split()
    width, rest = divmod(len(words), n)
    if rest or width < position_column + 3:
        return None
    try:
        numbers = np.array([_NUMBER_OF[w.lower()] for w in words[symbol_column::width]], dtype=np.int64)
        table = np.array(words, dtype=object).reshape(n, width)
        positions = table[:, position_column : position_column + 3].astype(np.float64)
    except (KeyError, ValueError):
        return None
    return numbers, positions


def _atoms_checked(atom_lines, n: int, symbol_column: int, position_column: int):
    """Line by line, naming the first bad line."""
    numbers = np.empty(n, dtype=np.int64)
    positions = np.empty((n, 3), dtype=np.float64)
    for i, line in enumerate(atom_lines):
        fields = line.split()
        if len(fields) < position_column + 3:
            raise ValueError(f"atom line {i + 1} of {n} is missing or short")
        name = fields[symbol_column]
        z = _NUMBER_OF.get(name.lower())
        if z is None:
            if not name.isdigit():
                raise ValueError(f"unknown chemical symbol {name!r} on atom line {i + 1}")
            z = int(name)
        numbers[i] = z
        try:
            positions[i] = fields[position_column : position_column + 3]
        except ValueError:
            raise ValueError(f"atom line {i + 1}: coordinates are not numbers: {line.strip()[:60]!r}") from None
    return numbers, positions


def _columns(properties: str) -> tuple[int, int]:
    """Word offsets of the species and pos columns in an extended XYZ Properties string."""
    parts = properties.split(":")
    if len(parts) % 3:
        raise _NotPlainXYZ
    column, found = 0, {}
    for name, kind, width in zip(parts[::3], parts[1::3], parts[2::3]):
        found[name.lower()] = (column, kind.upper(), width)
        column += int(width)
    species, pos = found.get("species"), found.get("pos")
    if species is None or pos is None or species[1:] != ("S", "1") or pos[1:] != ("R", "3"):
        raise _NotPlainXYZ
    return species[0], pos[0]
