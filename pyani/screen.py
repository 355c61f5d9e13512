"""Screening: energies of millions of molecules on a Dask cluster, streamed to Parquet.

>>> from pyani.screen import screen
>>> screen(["library.sdf", "more.smi"], out="results.parquet")   # a directory of part files

The molecules are read lazily and sent in chunks of ``chunk_size`` to the workers, at most a
few chunks per worker at a time (memory is bounded for any input). Each worker loads the
model once (a worker-local cache) and batches its chunk by size. Chunk k is written as
``part-<k>.parquet`` (atomically: a temporary file, then a rename), so a rerun with the same
``out`` skips what is written and computes only the rest. A molecule that fails is written
with its error, never dropped.

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
from ._structures import Structure

MANIFEST = "_screen.json"

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
    structures one by one would cost the client more than reading them."""

    ids: np.ndarray  # int64 [n]
    sources: list  # distinct source names
    source_of: np.ndarray  # int32 [n], into sources
    index: np.ndarray  # int64 [n], frame or line in the source
    natoms: np.ndarray  # int64 [n], 0 for the rows in `other`
    numbers: np.ndarray  # int16 [sum natoms]
    positions: np.ndarray  # float64 [sum natoms, 3]
    other: dict  # row -> Structure (periodic, or unreadable) or _Smiles, sent as they are

    @classmethod
    def pack(cls, items: list) -> _Chunk:
        """From [(id, Structure or _Smiles)]."""
        n = len(items)
        sources: dict = {}
        source_of = np.empty(n, dtype=np.int32)
        index = np.empty(n, dtype=np.int64)
        natoms = np.zeros(n, dtype=np.int64)
        molecules, other = [], {}
        for row, (_, item) in enumerate(items):
            source_of[row] = sources.setdefault(item.source, len(sources))
            index[row] = item.index
            if isinstance(item, Structure) and item.error is None and item.cell is None:
                natoms[row] = item.natoms
                molecules.append(item)
            else:
                other[row] = item
        return cls(
            ids=np.array([i for i, _ in items], dtype=np.int64),
            sources=list(sources),
            source_of=source_of,
            index=index,
            natoms=natoms,
            numbers=np.concatenate([m.numbers for m in molecules]).astype(np.int16) if molecules else np.zeros(0),
            positions=np.concatenate([m.positions for m in molecules]) if molecules else np.zeros((0, 3)),
            other=other,
        )

    def unpack(self) -> list:
        """[Structure or _Smiles], one per row."""
        ends = np.cumsum(self.natoms)
        out = []
        for row in range(len(self.ids)):
            if row in self.other:
                out.append(self.other[row])
                continue
            a, b = ends[row] - self.natoms[row], ends[row]
            source = self.sources[self.source_of[row]]
            out.append(Structure(source, int(self.index[row]), self.numbers[a:b].astype(np.int64), self.positions[a:b]))
        return out


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
    chunk_size: int = 1000,
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
    chunk_size: molecules per task (each worker batches its chunk by size).
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
        done = set()
    own_client = None
    if client is None or isinstance(client, str):
        own_client = client = _client(client)
    try:
        return _run(sources, str(model), backend, client, int(chunk_size), forces, out, done, format, progress)
    finally:
        if own_client is not None:
            cluster = own_client.cluster
            own_client.close()
            if cluster is not None:
                cluster.close()


def _run(sources, model, backend, client, chunk_size, forces, out, done, fmt, progress):
    from distributed import as_completed

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    limit = IN_FLIGHT_PER_WORKER * workers
    chunks = _chunks(_stream(sources["items"], fmt), chunk_size)
    bar = _progress_bar(progress)
    tables, computed, failed, molecules = [], 0, 0, 0
    started = time.perf_counter()
    pending = as_completed()
    in_flight = 0
    chunk_of = {}  # future key -> (chunk number, chunk): what to write, or to fail, when it ends

    def submit_more() -> None:
        nonlocal in_flight, molecules, failed
        while in_flight < limit:
            item = next(chunks, None)
            if item is None:
                return
            number, chunk = item
            if number in done:
                molecules += len(chunk)
                failed += done[number]
                bar.update(len(chunk))
                continue
            future = client.submit(evaluate_chunk, model, backend, _Chunk.pack(chunk), forces, pure=False)
            chunk_of[future.key] = (number, chunk)
            pending.add(future)
            in_flight += 1

    submit_more()
    while in_flight:
        future = next(pending)
        in_flight -= 1
        number, chunk = chunk_of.pop(future.key)
        try:
            table = future.result()
        except Exception as err:  # a worker died or a bug: the chunk's molecules get the error
            rows = [(i, m if isinstance(m, Structure) else Structure(m.source, m.index)) for i, m in chunk]
            table = _table(rows, [None] * len(rows), forces, f"chunk failed: {' '.join(str(err).split())}")
        future.release()
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
        import pyarrow as pa

        if not tables:
            return _table([], [], forces).to_pandas()
        return pa.concat_tables(tables).to_pandas().sort_values("id", ignore_index=True)
    return Summary(str(out), molecules, failed, computed, seconds)


# --- on the workers ---------------------------------------------------------------------

_MODELS: dict = {}


def worker_model(model: str, backend: str):
    """The worker's model, loaded once per process (single-threaded: one worker per core)."""
    key = (model, backend)
    if key not in _MODELS:
        import pyani

        _MODELS[key] = pyani.load(model, backend=backend, device="cpu", n_threads=1)
    return _MODELS[key]


def evaluate_chunk(model: str, backend: str, chunk: _Chunk, forces: bool):
    """The Arrow table of one chunk, one row per molecule."""
    from ._batch import evaluate

    structures = [_embed(item) if isinstance(item, _Smiles) else item for item in chunk.unpack()]
    outcomes = evaluate(worker_model(model, backend), structures, forces=forces)
    return _table(list(zip(chunk.ids.tolist(), structures)), outcomes, forces)


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


def _table(chunk, outcomes, forces: bool, error: str | None = None):
    import pyarrow as pa

    rows = list(zip(chunk, outcomes))
    columns = {
        "id": pa.array([i for (i, _), _ in rows], pa.int64()),
        "source": pa.array([s.source for (_, s), _ in rows], pa.string()),
        "index": pa.array([s.index for (_, s), _ in rows], pa.int64()),
        "formula": pa.array([s.formula for (_, s), _ in rows], pa.string()),
        "natoms": pa.array([s.natoms for (_, s), _ in rows], pa.int32()),
        "energy": pa.array([o.energy if o and o.error is None else None for _, o in rows], pa.float64()),
        "energy_std": pa.array([o.energy_std if o and o.error is None else None for _, o in rows], pa.float64()),
    }
    if forces:
        columns["forces"] = pa.array(
            [o.forces.ravel() if o and o.error is None else None for _, o in rows], pa.list_(pa.float64())
        )
    columns["error"] = pa.array([error if o is None else o.error for _, o in rows], pa.string())
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
    """(id, Structure or _Smiles) for every molecule of every source, in order."""
    ids = itertools.count()
    for item in items:
        if isinstance(item, str):
            if Path(item).suffix.lower() == ".smi" and fmt is None:
                molecules = _read_smiles(item)
            else:
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
    for number in itertools.count():
        chunk = list(itertools.islice(stream, size))
        if not chunk:
            return
        yield number, chunk


def _prepare_out(out: Path, manifest: dict) -> dict:
    """Create ``out`` or check it was made by the same screen; {chunk number: failures} of the
    parts already written."""
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
        table = pq.read_table(part, columns=["error"])
        done[int(part.stem.split("-")[1])] = table.num_rows - table.column("error").null_count
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
            dashboard_address=None,
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
