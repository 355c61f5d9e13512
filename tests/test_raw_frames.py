"""XYZ frames found as raw bytes (the screen's client) and parsed elsewhere (its workers) give
what pyani's reader gives, errors included."""

from __future__ import annotations

import numpy as np
import pytest

from pyani._raw_frames import RawFrame, parse_xyz, scan_xyz
from pyani._structures import read

WATER = "3\n{comment}\nO 0.0 0.0 0.117\nH 0.0 0.757 -0.469\nH 0.0 -0.757 -0.469\n"
METHANE = "5\n\nC 0 0 0\nH 0.63 0.63 0.63\nH -0.63 -0.63 0.63\nH -0.63 0.63 -0.63\nH 0.63 -0.63 -0.63\n"
BOX = 'Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"'


def scanned(path) -> list:
    frames = scan_xyz(path)
    assert frames is not None
    return [parse_xyz(f) if isinstance(f, RawFrame) else f for f in frames]


def same(a, b) -> None:
    assert (a.source, a.index, a.error) == (b.source, b.index, b.error)
    for name in ("numbers", "positions", "cell", "pbc"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y)


def test_plain_extended_blank_lines_and_crlf_as_the_reader(tmp_path):
    path = tmp_path / "mixed.xyz"
    text = WATER.format(comment="plain") + "\n\n" + METHANE + WATER.format(comment=BOX) + WATER.format(comment="")
    path.write_bytes(text.replace("\n", "\r\n").encode())
    got, expected = scanned(path), list(read(path))
    assert len(got) == len(expected) == 4 and all(s.error is None for s in got)
    for a, b in zip(got, expected):
        same(a, b)
    assert got[2].cell is not None and got[2].pbc.all()


def test_a_frame_with_bad_atoms_keeps_the_frames_after_it(tmp_path):
    """The reader stops at a bad frame; the scanner knows the frame's length from its header,
    so only that frame fails."""
    path = tmp_path / "bad.xyz"
    path.write_text(WATER.format(comment="") + "3\n\nO 0 0 0\nXx 0 0 1\nH 1 0 0\n" + METHANE)
    got = scanned(path)
    assert [s.error is None for s in got] == [True, False, True]
    assert "bad.xyz: frame 1: unknown chemical symbol 'Xx' on atom line 2" in got[1].error
    assert got[1].error == list(read(path))[1].error
    assert got[2].index == 2 and got[2].natoms == 5


def test_a_header_that_is_not_an_atom_count_ends_the_file(tmp_path):
    path = tmp_path / "header.xyz"
    path.write_text(WATER.format(comment="") + "three\n\nO 0 0 0\n" + METHANE)
    got = scanned(path)
    assert len(got) == 2 and got[0].error is None
    assert got[1].error == f"{path}: frame 1: expected the atom count, got 'three'"


def test_a_short_last_frame_fails_as_in_the_reader(tmp_path):
    path = tmp_path / "short.xyz"
    path.write_text(WATER.format(comment="") + "3\n\nO 0 0 0\nH 0 0 1")  # no line end either
    got, expected = scanned(path), list(read(path))
    assert len(got) == 2 and got[1].error is not None
    same(got[1], expected[1])


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty: the reader says so
        "3\nProperties=Z:I:1:pos:R:3\n8 0 0 0\n1 0 0 1\n1 1 0 0\n",  # atomic numbers: ase.io
        "not an xyz file\n",
    ],
)
def test_files_the_fast_reader_does_not_take_are_left_to_the_reader(tmp_path, text):
    path = tmp_path / "other.xyz"
    path.write_text(text)
    assert scan_xyz(path) is None
    assert scan_xyz(tmp_path / "missing.xyz") is None


def test_undecodable_bytes_are_the_frames_error():
    frame = RawFrame("x.xyz", 4, b"1\n\xff\xfe\nH 0 0 0\n")
    s = parse_xyz(frame)
    assert s.error.startswith("x.xyz: frame 4: ") and s.numbers is None


def sdf_record(name: str, atoms: list, counts: str | None = None) -> str:
    lines = [name, "  pyani", "", counts or f"{len(atoms):3d}  0  0  0  0  0  0  0  0  0999 V2000"]
    lines += [f"{x:10.4f}{y:10.4f}{z:10.4f} {symbol:<3} 0  0  0  0  0  0" for symbol, x, y, z in atoms]
    return "\n".join([*lines, "M  END", "> <note>", "data", "", "$$$$"]) + "\n"


OH = [("O", 0.0, 0.0, 0.0), ("H", 0.0, 0.0, 0.97)]
NH3 = [("N", 0.0, 0.0, 0.0), ("H", 0.0, 0.94, 0.38), ("H", 0.81, -0.47, 0.38), ("H", -0.81, -0.47, 0.38)]


def scanned_sdf(path) -> list:
    from pyani._raw_frames import parse, scan_sdf

    return [parse(f) if isinstance(f, RawFrame) else f for f in scan_sdf(path)]


def test_sdf_records_as_the_reader(tmp_path):
    path = tmp_path / "lib.sdf"
    path.write_text(sdf_record("hydroxyl", OH) + sdf_record("ammonia", NH3) + "\n\n")  # trailing blank lines
    got, expected = scanned_sdf(path), list(read(path))
    assert len(got) == len(expected) == 2 and [s.natoms for s in got] == [2, 4]
    for a, b in zip(got, expected):
        same(a, b)


def test_a_bad_sdf_record_fails_alone(tmp_path):
    path = tmp_path / "bad.sdf"
    bad = sdf_record("bad", [("Xx", 0, 0, 0)])
    v3000 = sdf_record("new", OH, counts="  0  0  0     0  0            999 V3000")
    path.write_text(sdf_record("a", OH) + bad + v3000 + sdf_record("b", NH3).removesuffix("$$$$\n"))  # no last $$$$
    got = scanned_sdf(path)
    assert [s.error is None for s in got] == [True, False, False, True]
    assert got[1].error == list(read(path))[1].error == f"{path}: record 1: unknown chemical symbol 'Xx' on atom line 1"
    assert "V3000" in got[2].error and got[3].index == 3 and got[3].natoms == 4


def test_an_empty_sdf_file_says_so(tmp_path):
    from pyani._raw_frames import scan_sdf

    path = tmp_path / "empty.sdf"
    path.write_text("\n")
    assert [s.error for s in scanned_sdf(path)] == [s.error for s in read(path)] == [f"{path}: no structures in file"]
    assert scan_sdf(tmp_path / "missing.sdf") is None
