"""Screening: energies of millions of molecules on a Dask cluster, streamed to Parquet.

>>> from pyani.screen import screen
>>> screen(["library.sdf", "more.smi"], out="results.parquet")   # a directory of part files

The molecules are read lazily and sent in chunks of ``chunk_size`` to the workers, at most a
few chunks per worker at a time (memory is bounded for any input). Of XYZ and SDF files the
client only finds where each frame starts and sends the text: the workers parse it, so the
client, which shares the machine with the workers of a local cluster, stays light. Each
worker loads the model once (a worker-local cache) and batches its chunk by size; it returns
plain arrays and the client writes chunk k as ``part-<k>.parquet`` (atomically: a temporary
file, then a rename), so a rerun with the same ``out`` skips what is written and computes
only the rest (a part that cannot be read is computed again). The last chunk goes out in a
few smaller tasks so that the workers finish together. A molecule that fails is written with
its error, never dropped (in an XYZ or SDF file a frame whose atoms cannot be read fails
alone; in an XYZ file a line where an atom count should be ends the file there, with that
error). Workers need no access to the input files.

Columns: id (position in the input stream, from 0), source (file), index (frame or line in
it), formula, natoms, energy and energy_std (Hartree), forces (flattened [natoms*3],
Hartree/Angstrom; only with forces=True), error (None when fine).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _structures
from ._raw_frames import RawFrame, parse, scan_sdf, scan_xyz
from ._structures import Structure

MANIFEST = "_screen.json"

#: molecules per chunk (a task, and a part file) by default: of 12-40 atoms, ~0.7 s of one core;
#: Dask's cost per task (a few ms on the client and on the worker) is then under 1 %
CHUNK_SIZE = 2000

#: chunks in flight per worker: one computing, one queued behind it
IN_FLIGHT_PER_WORKER = 2


@dataclass
class _Smiles:
    """A SMILES string whose 3D structure the worker builds (RDKit)."""

    source: str
    index: int
    smiles: str


@dataclass
class _Chunk:
    """Molecules on their way to a worker, packed in a few arrays: pickling a thousand small
    objects one by one would cost the client more than reading them. XYZ frames travel as
    their text (the worker parses them: the client only finds where frames start), other
    readable molecules as numbers and positions, the rest (periodic, unreadable, SMILES) as
    they are."""

    ids: np.ndarray  # int64 [n]
    sources: list  # distinct source names
    source_of: np.ndarray  # int32 [n], into sources
    index: np.ndarray  # int64 [n], frame or line in the source
    natoms: np.ndarray  # int64 [n], atoms of the rows in numbers/positions, else 0
    numbers: np.ndarray  # int16 [sum natoms]
    positions: np.ndarray  # float64 [sum natoms, 3]
    text: np.ndarray  # uint8: the raw XYZ frames one after the other (an array pickles without a copy)
    text_ends: np.ndarray  # int64 [n], where each row's text ends (rows without text add nothing)
    sdf: np.ndarray  # bool [n], the row's text is an SDF record (else an XYZ frame)
    other: dict  # row -> Structure (periodic, or unreadable) or _Smiles, sent as they are

    @classmethod
    def pack(cls, items: list) -> _Chunk:
        """From [(id, RawFrame, Structure or _Smiles)]."""
        sources: dict = {}
        source_of, index, natoms, text_lengths, sdf = [], [], [], [], []  # lists: numpy item writes cost more
        molecules, texts, other = [], [], {}
        for row, (_, item) in enumerate(items):
            source_of.append(sources.setdefault(item.source, len(sources)))
            index.append(item.index)
            if isinstance(item, RawFrame):
                natoms.append(0)
                text_lengths.append(len(item.text))
                sdf.append(item.format == "sdf")
                texts.append(item.text)
                continue
            text_lengths.append(0)
            sdf.append(False)
            if isinstance(item, Structure) and item.error is None and item.cell is None:
                natoms.append(item.natoms)
                molecules.append(item)
            else:
                natoms.append(0)
                other[row] = item
        return cls(
            ids=np.array([i for i, _ in items], dtype=np.int64),
            sources=list(sources),
            source_of=np.array(source_of, dtype=np.int32),
            index=np.array(index, dtype=np.int64),
            natoms=np.array(natoms, dtype=np.int64),
            numbers=np.concatenate([m.numbers for m in molecules]).astype(np.int16) if molecules else np.zeros(0),
            positions=np.concatenate([m.positions for m in molecules]) if molecules else np.zeros((0, 3)),
            text=np.frombuffer(b"".join(texts), dtype=np.uint8),
            text_ends=np.cumsum(np.array(text_lengths, dtype=np.int64)),
            sdf=np.array(sdf, dtype=bool),
            other=other,
        )

    def rows(self) -> _Rows:
        """What the client keeps of a chunk while a worker computes it."""
        return _Rows(self.ids, self.sources, self.source_of, self.index)

    def unpack(self) -> list:
        """[Structure or _Smiles], one per row; XYZ frames parsed."""
        ends = np.cumsum(self.natoms).tolist()
        natoms = self.natoms.tolist()
        text_ends = self.text_ends.tolist()
        out = []
        text_start = 0
        for row in range(len(self.ids)):
            source = self.sources[self.source_of[row]]
            if row in self.other:
                out.append(self.other[row])
            elif text_ends[row] > text_start:
                text = self.text[text_start : text_ends[row]].tobytes()
                frame = RawFrame(source, int(self.index[row]), text, "sdf" if self.sdf[row] else "xyz")
                out.append(parse(frame))
            else:
                a, b = ends[row] - natoms[row], ends[row]
                numbers = self.numbers[a:b].astype(np.int64)
                out.append(Structure(source, int(self.index[row]), numbers, self.positions[a:b]))
            text_start = text_ends[row]
        return out


@dataclass
class _Rows:
    """Which molecules a chunk holds: ids, and where each came from."""

    ids: np.ndarray
    sources: list
    source_of: np.ndarray
    index: np.ndarray


@dataclass
class _Result:
    """A worker's answer for one chunk, in plain arrays (no pyarrow on the workers: its first
    table costs a worker a second of importing pandas)."""

    natoms: np.ndarray  # int32 [n]
    formula: list  # str [n], "" when unread
    energy: np.ndarray  # float64 [n], Hartree; NaN where error
    energy_std: np.ndarray  # float64 [n]
    forces: np.ndarray | None  # float64 [sum natoms of the rows without error, 3], Hartree/Angstrom
    error: list  # str or None [n]


@dataclass
class Summary:
    """What a screen with ``out`` did: molecules in the output, how many failed, how many
    were computed now (the rest were there from an earlier run), seconds, molecules/s."""

    path: str
    molecules: int
    failed: int
    computed: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else float("nan")


def screen(
    source,
    *,
    model: str = "ani-1ccx",
    client=None,
    chunk_size: int = CHUNK_SIZE,
    forces: bool = False,
    out: str | Path | None = None,
    format: str | None = None,
    backend: str = "auto",
    progress: bool | None = None,
):
    """Energies (Hartree) of every molecule of ``source`` computed on Dask workers.

    source: a file path or a list of them (anything ase.io reads, every frame; ``.smi``
        files of SMILES, one per line, embedded in 3D by RDKit on the workers), or an
        iterable of ase.Atoms.
    model: model name or .onnx/.info path (a path must be readable by the workers).
    client: a distributed.Client, a scheduler address ("tcp://host:8786"), or None for a
        local cluster of one single-threaded worker per core.
    chunk_size: molecules per chunk: a task (the worker batches it by size) and a part file.
    forces: also compute forces (Hartree/Angstrom).
    out: directory of Parquet part files (resumable); None returns a pandas DataFrame.
    format: ase.io format name when file suffixes do not tell.
    progress: a progress bar on stderr (None: when stderr is a terminal).

    Returns a Summary when ``out`` is given, else a DataFrame sorted by id.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    forces = bool(forces)
    sources = _sources(source)
    if out is not None:
        out = Path(out)
        done = _prepare_out(
            out,
            {
                "model": str(model),
                "forces": forces,
                "chunk_size": int(chunk_size),
                "sources": sources["names"],
                "format": format,
            },
        )
    else:
        done = {}
    # The empty table also imports pyarrow, which imports pandas on its first array (a second of
    # CPU): done now, before the workers start, it does not take a core from them.
    no_rows = _Rows(np.zeros(0, np.int64), [], np.zeros(0, np.int32), np.zeros(0, np.int64))
    empty = _table(no_rows, _failed(0, forces, None))
    own_client = None
    if client is None or isinstance(client, str):
        own_client = client = _client(client)
    try:
        return _run(sources, str(model), backend, client, int(chunk_size), forces, out, done, format, progress, empty)
    finally:
        if own_client is not None:
            cluster = own_client.cluster
            own_client.close()
            if cluster is not None:
                cluster.close()


def _run(sources, model, backend, client, chunk_size, forces, out, done, fmt, progress, empty):
    from distributed import as_completed

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    limit = IN_FLIGHT_PER_WORKER * workers
    chunks = _chunks(_stream(sources["items"], fmt), chunk_size)
    bar = _progress_bar(progress)
    tables, computed, failed, molecules = [], 0, 0, 0
    started = time.perf_counter()
    pending = as_completed()
    in_flight = 0
    task_of = {}  # future key -> (chunk number, piece, _Rows): what to write, or to fail, when it ends
    parts = {}  # chunk number -> its pieces' tables (None until computed)

    def submit_more() -> None:
        nonlocal in_flight, molecules, failed
        while in_flight < limit:
            item = next(chunks, None)
            if item is None:
                return
            number, chunk, last = item
            if done.get(number, (None,))[0] == len(chunk):  # else the part is computed again
                molecules += len(chunk)
                failed += done[number][1]
                bar.update(len(chunk))
                continue
            pieces = _pieces(chunk) if last else [chunk]
            parts[number] = [None] * len(pieces)
            for piece, molecules_of_piece in enumerate(pieces):
                packed = _Chunk.pack(molecules_of_piece)
                future = client.submit(evaluate_chunk, model, backend, packed, forces, pure=False)
                task_of[future.key] = (number, piece, packed.rows())
                pending.add(future)
                in_flight += 1

    submit_more()
    while in_flight:
        future = next(pending)
        in_flight -= 1
        number, piece, rows = task_of.pop(future.key)
        try:
            result = future.result()
        except Exception as err:  # a worker died or a bug: the chunk's molecules get the error
            result = _failed(len(rows.ids), forces, f"chunk failed: {' '.join(str(err).split())}")
        future.release()
        parts[number][piece] = _table(rows, result)
        if all(t is not None for t in parts[number]):
            table = _concat(parts.pop(number))
            n_failed = table.num_rows - table.column("error").null_count
            molecules += table.num_rows
            computed += table.num_rows
            failed += n_failed
            if out is None:
                tables.append(table)
            else:
                _write_part(out, number, table)
            bar.update(table.num_rows)
            bar.set_postfix_str(f"{failed} failed")
        submit_more()
    bar.close()
    seconds = time.perf_counter() - started
    if out is None:
        return _concat([empty, *tables]).to_pandas().sort_values("id", ignore_index=True)
    return Summary(str(out), molecules, failed, computed, seconds)


#: the last chunk goes out in this many tasks, so that the workers finish together (a fixed
#: number, not one per worker: a chunk's energies depend, by float rounding, on how it is batched,
#: and a resumed run must write what an uninterrupted one does whatever the cluster)
TAIL_PIECES = 8


def _pieces(chunk: list) -> list:
    size = -(-len(chunk) // TAIL_PIECES)
    return [chunk[start : start + size] for start in range(0, len(chunk), size)]


def _concat(tables: list):
    import pyarrow as pa

    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


# --- on the workers ---------------------------------------------------------------------

_MODELS: dict = {}


def worker_model(model: str, backend: str):
    """The worker's model, loaded once per process (single-threaded: one worker per core)."""
    key = (model, backend)
    if key not in _MODELS:
        import pyani

        _MODELS[key] = pyani.load(model, backend=backend, device="cpu", n_threads=1)
    return _MODELS[key]


def evaluate_chunk(model: str, backend: str, chunk: _Chunk, forces: bool) -> _Result:
    """Energies (Hartree) and forces (Hartree/Angstrom) of one chunk's molecules, in its order."""
    from ._batch import evaluate

    structures = [_embed(item) if isinstance(item, _Smiles) else item for item in chunk.unpack()]
    outcomes = evaluate(worker_model(model, backend), structures, forces=forces)
    fine = [o.error is None for o in outcomes]
    return _Result(
        natoms=np.array([s.natoms for s in structures], dtype=np.int32),
        formula=[_formula(s) for s in structures],
        energy=np.array([o.energy if ok else np.nan for o, ok in zip(outcomes, fine)], dtype=np.float64),
        energy_std=np.array([o.energy_std if ok else np.nan for o, ok in zip(outcomes, fine)], dtype=np.float64),
        forces=np.concatenate([o.forces for o, ok in zip(outcomes, fine) if ok] or [np.zeros((0, 3))])
        if forces
        else None,
        error=[o.error for o in outcomes],
    )


_FORMULAS: dict = {}


def _formula(s: Structure) -> str:
    """Hill formula, remembered by element counts (a screen sees the same ones again and again)."""
    if s.numbers is None:
        return ""
    key = np.bincount(s.numbers).tobytes()
    formula = _FORMULAS.get(key)
    if formula is None:
        formula = _FORMULAS[key] = s.formula
    return formula


def _embed(item: _Smiles) -> Structure:
    """3D structure of a SMILES string (RDKit ETKDG, hydrogens added, fixed seed)."""
    s = Structure(item.source, item.index)
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import AllChem

        RDLogger.DisableLog("rdApp.*")  # a bad SMILES is reported in its row, not on the worker's stderr
    except ImportError:
        s.error = "SMILES input needs RDKit (pip install rdkit)"
        return s
    mol = Chem.MolFromSmiles(item.smiles)
    if mol is None:
        s.error = f"unparsable SMILES {item.smiles!r}"
        return s
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = 0x5EED
    if AllChem.EmbedMolecule(mol, params) != 0:
        s.error = f"RDKit found no 3D conformer for SMILES {item.smiles!r}"
        return s
    s.numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    s.positions = np.array(mol.GetConformer().GetPositions(), dtype=np.float64)
    return s


def _failed(n: int, forces: bool, error: str | None) -> _Result:
    """n rows that all failed with ``error``."""
    nan = np.full(n, np.nan)
    return _Result(np.zeros(n, np.int32), [""] * n, nan, nan, np.zeros((0, 3)) if forces else None, [error] * n)


def _table(rows: _Rows, result: _Result):
    """The Arrow table of one chunk (on the client: it writes the Parquet parts)."""
    import pyarrow as pa

    failed = np.array([e is not None for e in result.error], dtype=bool)
    columns = {
        "id": pa.array(rows.ids, pa.int64()),
        "source": pa.array(np.array(rows.sources, dtype=object)[rows.source_of] if rows.sources else [], pa.string()),
        "index": pa.array(rows.index, pa.int64()),
        "formula": pa.array(result.formula, pa.string()),
        "natoms": pa.array(result.natoms, pa.int32()),
        "energy": pa.array(result.energy, pa.float64(), mask=failed),
        "energy_std": pa.array(result.energy_std, pa.float64(), mask=failed),
    }
    if result.forces is not None:
        lengths = np.where(failed, 0, result.natoms.astype(np.int64) * 3)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        values = pa.array(result.forces.ravel(), pa.float64())
        columns["forces"] = pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(failed))
    columns["error"] = pa.array(result.error, pa.string())
    return pa.table(columns)


# --- on the client ------------------------------------------------------------------------


def _sources(source) -> dict:
    """{"names": what the manifest records, "items": what the stream reads}."""
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    if isinstance(source, (list, tuple)) and all(isinstance(s, (str, os.PathLike)) for s in source):
        if not source:
            raise ValueError("source: no files given")
        paths = [str(s) for s in source]
        return {"names": paths, "items": paths}
    if isinstance(source, Iterable):
        return {"names": ["<iterable>"], "items": [source]}
    raise TypeError(f"source must be a path, a list of paths or an iterable of ase.Atoms, got {type(source).__name__}")


def _stream(items: list, fmt: str | None) -> Iterator:
    """(id, RawFrame, Structure or _Smiles) for every molecule of every source, in order."""
    ids = itertools.count()
    for item in items:
        if isinstance(item, str):
            suffix = Path(item).suffix.lower()
            molecules = None
            if fmt is None and suffix == ".smi":
                molecules = _read_smiles(item)
            elif fmt is None and suffix in (".xyz", ".extxyz"):
                molecules = scan_xyz(item)  # None when the file needs ase.io
            elif fmt is None and suffix in (".sdf", ".mol", ".sd"):
                molecules = scan_sdf(item)
            if molecules is None:
                molecules = _structures.read(item, fmt)
        else:
            molecules = (_structures.from_atoms(atoms, "<iterable>", k) for k, atoms in enumerate(item))
        for molecule in molecules:
            yield next(ids), molecule


def _read_smiles(path: str) -> Iterator:
    if not Path(path).is_file():
        yield Structure(path, 0, error=f"no such file: {path}")
        return
    with open(path) as lines:
        index = 0
        for line in lines:
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            yield _Smiles(path, index, words[0])
            index += 1


def _chunks(stream: Iterator, size: int) -> Iterator:
    """(number, chunk, whether it is the last) for consecutive chunks of the stream: one chunk
    is read ahead to tell."""
    chunk = list(itertools.islice(stream, size))
    for number in itertools.count():
        if not chunk:
            return
        after = list(itertools.islice(stream, size))
        yield number, chunk, not after
        chunk = after


def _prepare_out(out: Path, manifest: dict) -> dict:
    """Create ``out`` or check it was made by the same screen; {chunk number: (molecules,
    failures)} of the readable parts already written."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} exists and is not a directory of part files")
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    if path.exists():
        before = json.loads(path.read_text())
        if before != manifest:
            changed = sorted(k for k in manifest if before.get(k) != manifest[k])
            raise ValueError(
                f"out: {out} holds a screen with other settings ({', '.join(changed)}); "
                "use another directory to start afresh"
            )
    else:
        if any(out.glob("part-*.parquet")):
            raise ValueError(f"out: {out} holds part files but no {MANIFEST}: not a pyani screen")
        _atomic_write(path, json.dumps(manifest, indent=1).encode())
    import pyarrow.parquet as pq

    done = {}
    for part in out.glob("part-*.parquet"):
        try:
            table = pq.read_table(part, columns=["error"])
        except (OSError, ValueError):  # damaged (parts are renamed into place whole): computed again
            part.unlink()
            continue
        done[int(part.stem.split("-")[1])] = (table.num_rows, table.num_rows - table.column("error").null_count)
    return done


def _write_part(out: Path, number: int, table) -> None:
    import pyarrow.parquet as pq

    final = out / f"part-{number:06d}.parquet"
    temporary = out / f".part-{number:06d}.parquet.tmp"
    pq.write_table(table, temporary)
    os.replace(temporary, final)  # atomic: a killed run leaves whole parts only


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name("." + path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _client(address: str | None):
    if address is not None:
        from distributed import Client

        return Client(address)
    return local_client()


#: Dask settings of the local cluster: its statistical profiler (a stack sample every 10 ms)
#: and its monitors cost the workers ~3% of a core each, idle or not; screening needs neither.
QUIET_DASK = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.profile.interval": "1s",
    "distributed.worker.profile.cycle": "10s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "5s",
    "distributed.admin.tick.interval": "1s",
}


def local_client(workers: int | None = None):
    """A Client of a new local cluster: ``workers`` single-threaded worker processes (default:
    one per core), on the loopback interface, no dashboard, no profiler."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(QUIET_DASK):
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            # its HTTP server (metrics, health) would take port 8787, and warn when that is taken
            dashboard_address=":0",
            host="127.0.0.1",
        )
        return Client(cluster)


def _progress_bar(show: bool | None):
    import sys

    from .cli._common import _Silent

    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return _Silent(None)
    try:
        from tqdm import tqdm
    except ImportError:
        return _Silent(None)
    return tqdm(desc="screen", unit="mol", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


__all__ = ["Summary", "evaluate_chunk", "local_client", "screen"]
