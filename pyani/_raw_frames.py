"""XYZ frames and SDF records as raw bytes: located cheaply by one process, parsed by another.

The screen's client only needs to know where each frame starts and ends (an XYZ atom count,
then that many lines plus the comment; an SDF record's $$$$ line): it ships the bytes, and
the worker that computes a frame parses it. Finding the frames costs a few microseconds a
frame, parsing them several times that, so the client stays far from being the bottleneck
of many workers.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._structures import Structure, _NotPlainXYZ, _xyz_frame, sdf_record


@dataclass
class RawFrame:
    """One frame's text, not yet parsed: an XYZ frame (header, comment and atom lines) or an
    SDF record (up to and with its $$$$ line)."""

    source: str
    index: int
    text: bytes
    format: str = "xyz"  # or "sdf"


def parse(frame: RawFrame) -> Structure:
    """The Structure of a RawFrame, or one holding the error (worded as ``_structures.read``)."""
    if frame.format == "sdf":
        try:
            text = frame.text.decode()
        except UnicodeDecodeError as err:
            return Structure(frame.source, frame.index, error=f"{frame.source}: record {frame.index}: {err}")
        return sdf_record(text, frame.source, frame.index)
    return parse_xyz(frame)


def scan_sdf(path: str | Path) -> Iterator[RawFrame | Structure] | None:
    """Every record of an SDF file as a RawFrame, in order (a record that cannot be read fails
    alone when parsed: the $$$$ lines say where the next one starts); None when there is no
    such file."""
    path = Path(path)
    if not path.is_file():
        return None
    return _records(path, str(path))


def _records(path: Path, source: str) -> Iterator[RawFrame | Structure]:
    index, record = 0, []
    with open(path, "rb") as lines:
        for line in lines:
            record.append(line)
            if line.startswith(b"$$$$"):
                yield RawFrame(source, index, b"".join(record), "sdf")
                index, record = index + 1, []
    if any(line.strip() for line in record):  # a last record without its $$$$
        yield RawFrame(source, index, b"".join(record), "sdf")
        index += 1
    if index == 0:
        yield Structure(source, 0, error=f"{source}: no structures in file")


def scan_xyz(path: str | Path) -> Iterator[RawFrame | Structure] | None:
    """Every frame of a plain or extended XYZ file as a RawFrame, in order; None when the
    first frame needs ase.io (then read it with ``_structures.read``). A file whose frame
    boundaries cannot be followed (a header that is not an atom count) ends with a Structure
    holding the error, as ``_structures.read`` does. A frame whose atoms are bad has its own
    error when parsed; the frames after it are still read, since its length was known."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        return None
    with open(path, "rb") as lines:
        first = _next_frame(lines)
    if first is None:
        return None  # empty file: _structures.read says so
    if isinstance(first, str) or _needs_ase(first.decode("utf-8", "replace"), source):
        return None
    return _frames(path, source)


def parse_xyz(frame: RawFrame) -> Structure:
    """The Structure of a RawFrame; a frame that cannot be parsed gives a Structure with the
    error, worded as ``_structures.read`` words it."""
    source, index = frame.source, frame.index
    try:
        lines = io.StringIO(frame.text.decode())
        return _xyz_frame(lines.readline(), lines, source, index)
    except _NotPlainXYZ:
        return Structure(source, index, error=f"{source}: frame {index}: extended XYZ layout not supported")
    except ValueError as err:  # UnicodeDecodeError too
        return Structure(source, index, error=f"{source}: frame {index}: {' '.join(str(err).split())}")


def _frames(path: Path, source: str) -> Iterator[RawFrame | Structure]:
    with open(path, "rb") as lines:
        for index in itertools.count():
            text = _next_frame(lines)
            if text is None:
                return
            if isinstance(text, str):
                yield Structure(source, index, error=f"{source}: frame {index}: {text}")
                return
            yield RawFrame(source, index, text)


def _next_frame(lines) -> bytes | str | None:
    """The next frame's bytes, None at the end of the file, or what is wrong with its header."""
    header = lines.readline()
    while header and not header.strip():  # blank lines between frames
        header = lines.readline()
    if not header:
        return None
    try:
        n = int(header.split()[0])
    except (ValueError, IndexError):
        return f"expected the atom count, got {header.decode('utf-8', 'replace').strip()[:40]!r}"
    if n <= 0:
        return f"atom count must be positive, got {n}"
    return header + b"".join(itertools.islice(lines, n + 1))  # a short last frame fails when parsed


def _needs_ase(text: str, source: str) -> bool:
    """Whether the fast reader gives the first frame up to ase.io (as _structures.read does)."""
    lines = io.StringIO(text)
    header = lines.readline()
    try:
        _xyz_frame(header, lines, source, 0)
    except _NotPlainXYZ:
        return True
    except ValueError:
        return not header.strip().isdigit()
    return False
