"""pyani.screen on a 2-worker local Dask cluster: loses no molecule, keeps failures with their
error, equals the serial API, and resumes after an interruption to the same contents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_inputs import molecules, write_inputs
from conftest import get_model

import pyani.screen as screening
from pyani._structures import read
from pyani.cli import main
from pyani.screen import screen

distributed = pytest.importorskip("distributed")  # the [screen] extra


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """25 molecules in an extxyz with one bad element and one unreadable frame at the end,
    a periodic box, an SDF, and SMILES with one unparsable line."""
    import ase.io

    folder = tmp_path_factory.mktemp("library")
    paths = write_inputs(folder)
    mols = []
    for seed in range(4):
        mols += molecules(seed)
    ase.io.write(folder / "many.extxyz", mols)
    with open(folder / "many.extxyz", "a") as f:
        f.write("3\n\nFe 0 0 0\nH 0 0 1\nH 1 0 0\n")  # Fe: an element the model lacks
    with open(folder / "truncated.xyz", "w") as f:
        f.write("3\n\nO 0 0 0\nH 0 0 1\n")  # a frame that cannot be read
    (folder / "lib.smi").write_text("CCO ethanol\nc1ccccc1 benzene\nnot_a_smiles\nCC(=O)O\n")
    return [
        str(folder / "many.extxyz"),
        str(paths["box"]),
        str(paths["sdf"]),
        str(folder / "truncated.xyz"),
        str(folder / "lib.smi"),
    ]


def serial(paths) -> list[float]:
    """The serial API, one molecule per call; NaN where it fails."""
    model = get_model("ani-1ccx", "cpp" if "cpp" in _backends() else "numba")
    out = []
    for path in paths:
        if path.endswith(".smi"):
            continue
        for s in read(path):
            try:
                out.append(model.compute(s.numbers, s.positions, s.cell, s.pbc, forces=False).energy)
            except (ValueError, TypeError):
                out.append(float("nan"))
            if s.error is not None:
                out[-1] = float("nan")
    return out


def _backends():
    from conftest import BACKENDS

    return BACKENDS


def test_screen_loses_none_and_equals_serial(client, library):
    df = screen(library, client=client, chunk_size=4)
    n_files = 25 + 2 + 2 + 1  # + 4 SMILES
    assert list(df["id"]) == list(range(n_files + 4))  # every id exactly once, in order
    failed = df[df["error"].notna()]
    assert set(failed["id"]) == {24, 29, 32}
    assert "Fe" in failed.loc[failed["id"] == 24, "error"].item()
    assert "truncated.xyz" in failed.loc[failed["id"] == 29, "error"].item()
    assert "not_a_smiles" in failed.loc[failed["id"] == 32, "error"].item()
    assert failed["energy"].isna().all()
    expected = serial(library[:4])
    np.testing.assert_allclose(df["energy"][:n_files], expected, rtol=0, atol=2e-6)
    assert df.loc[df["id"] == 30, "formula"].item() == "C2H6O"  # CCO, embedded by RDKit
    assert df.loc[:23, "natoms"].tolist() == [len(s.numbers) for s in read(library[0])][:24]
    assert (df["source"][:25] == library[0]).all() and df["index"][:25].tolist() == list(range(25))


def test_screen_forces(client, library):
    df = screen(library[1], client=client, chunk_size=1, forces=True)
    model = get_model("ani-1ccx", _backends()[0])
    box = next(read(library[1]))
    expected = model.compute(box.numbers, box.positions, box.cell, box.pbc).forces
    np.testing.assert_allclose(np.asarray(df["forces"][0]).reshape(-1, 3), expected, atol=1e-5)


def test_resume_after_interruption_gives_the_same_file(client, library, tmp_path, monkeypatch):
    whole = screen(library, client=client, chunk_size=3, out=tmp_path / "whole.parquet")
    assert whole.molecules == 34 and whole.computed == 34 and whole.failed == 3
    reference = pd.read_parquet(tmp_path / "whole.parquet").sort_values("id", ignore_index=True)

    written = []
    original = screening._write_part

    def write_then_die(out, number, table):
        if len(written) == 4:
            raise KeyboardInterrupt  # killed halfway, between two parts
        original(out, number, table)
        written.append(number)

    monkeypatch.setattr(screening, "_write_part", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        screen(library, client=client, chunk_size=3, out=tmp_path / "resumed.parquet")
    monkeypatch.setattr(screening, "_write_part", original)
    (tmp_path / "resumed.parquet" / ".part-000009.parquet.tmp").write_bytes(b"half a file")  # a killed write
    parts = sorted(p.name for p in (tmp_path / "resumed.parquet").glob("part-*.parquet"))
    assert len(parts) == 4

    resumed = screen(library, client=client, chunk_size=3, out=tmp_path / "resumed.parquet")
    assert resumed.molecules == 34 and resumed.failed == 3
    assert resumed.computed == 34 - sum(len(pd.read_parquet(tmp_path / "resumed.parquet" / p)) for p in parts)
    again = pd.read_parquet(tmp_path / "resumed.parquet").sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(again, reference)

    nothing = screen(library, client=client, chunk_size=3, out=tmp_path / "resumed.parquet")
    assert nothing.computed == 0 and nothing.molecules == 34


def test_out_made_with_other_settings_is_refused(client, library, tmp_path):
    screen(library[2], client=client, chunk_size=2, out=tmp_path / "r.parquet")
    with pytest.raises(ValueError, match="chunk_size"):
        screen(library[2], client=client, chunk_size=5, out=tmp_path / "r.parquet")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        screen(library[2], client=client, chunk_size=0)


def test_streams_with_bounded_chunks_in_flight(client, monkeypatch, tmp_path):
    """A generator source is read lazily: when the first part is written, only the chunks in
    flight (IN_FLIGHT_PER_WORKER per worker) and one read ahead have been pulled from it."""
    from ase.build import molecule

    pulled = []

    def source():
        for i in range(60):
            pulled.append(i)
            yield molecule("CH4")

    pulled_at_write = []
    original = screening._write_part

    def spy(out, number, table):
        pulled_at_write.append(len(pulled))
        original(out, number, table)

    monkeypatch.setattr(screening, "_write_part", spy)
    summary = screen(source(), client=client, chunk_size=5, out=tmp_path / "gen.parquet")
    assert summary.molecules == 60 and len(pulled) == 60
    assert pulled_at_write[0] <= (screening.IN_FLIGHT_PER_WORKER * 2 + 1) * 5  # 2 workers, 5 per chunk
    df = pd.read_parquet(tmp_path / "gen.parquet")
    assert sorted(df["id"]) == list(range(60)) and np.ptp(df["energy"]) < 1e-9


def test_cli_screen_on_a_scheduler_address(client, library, tmp_path, capsys):
    out = tmp_path / "cli.parquet"
    status = main(["screen", *library, "--out", str(out), "--scheduler", client.scheduler.address, "--chunk-size", "7"])
    text, err = capsys.readouterr()
    assert status == 0, err
    assert "34 molecules" in text and "3 failed" in text
    df = pd.read_parquet(out).sort_values("id")
    assert df["id"].tolist() == list(range(34))
    status = main(["screen", "missing.xyz", "--out", str(out)])
    _, err = capsys.readouterr()
    assert status == 1 and err.count("\n") == 1 and "missing.xyz" in err


def test_a_damaged_or_foreign_part_is_computed_again(client, library, tmp_path):
    """Parts are renamed into place whole, but a part damaged afterwards, or one whose row count
    is not its chunk's, is not trusted: it is computed again, and no molecule is lost."""
    out = tmp_path / "damaged.parquet"
    screen(library, client=client, chunk_size=5, out=out)
    reference = pd.read_parquet(out).sort_values("id", ignore_index=True)
    (out / "part-000001.parquet").write_bytes(b"PAR1 and then nothing")  # damaged
    shorter = pd.read_parquet(out / "part-000002.parquet").iloc[:2]
    shorter.to_parquet(out / "part-000002.parquet", index=False)  # a part of some other screen
    again = screen(library, client=client, chunk_size=5, out=out)
    assert again.computed == 10 and again.molecules == 34 and again.failed == 3
    pd.testing.assert_frame_equal(pd.read_parquet(out).sort_values("id", ignore_index=True), reference)


def test_workers_import_neither_pandas_nor_pyarrow(client, library):
    """Their first Arrow array would cost each worker a second of importing pandas."""
    screen(library[0], client=client, chunk_size=4)
    imported = client.run(lambda: [m for m in ("pandas", "pyarrow") if m in __import__("sys").modules])
    assert all(modules == [] for modules in imported.values()), imported


def test_the_last_chunk_is_split_so_the_workers_finish_together():
    chunks = [(number, len(chunk), last) for number, chunk, last in screening._chunks(iter(range(23)), 10)]
    assert chunks == [(0, 10, False), (1, 10, False), (2, 3, True)]
    for n in (1, 3, 4, 10, 1000, 1001):
        pieces = screening._pieces(list(range(n)))
        assert len(pieces) <= screening.TAIL_PIECES and [i for piece in pieces for i in piece] == list(range(n))
        assert max(map(len, pieces)) <= -(-n // screening.TAIL_PIECES)


def test_the_cli_default_chunk_size_is_the_librarys():
    from pyani.cli.screen import CHUNK_SIZE

    assert CHUNK_SIZE == screening.CHUNK_SIZE


def test_local_cluster_starts_when_port_8787_is_taken(tmp_path, library):
    """Another Dask (or anything) on the default dashboard port must not stop a screen with
    the local cluster (client=None): Dask's port warning is an error under pytest."""
    import socket

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass  # already taken by something else: the case under test all the same
        summary = screen(library[:1], out=tmp_path / "out", chunk_size=50)
    assert summary.molecules > 0 and summary.computed == summary.molecules
