"""pyani's cache of converted models: where it is, a file lock so that one process
converts while the others wait, and NeuroChem ``.info`` files converted once by content.

Layout of the cache directory (``cache_dir()``)::

    models/ani-2x.onnx          ANI-2x, converted from the model zoo's files (pyani/_zoo.py)
    neurochem/ani-2x_8x.info    (optional, placed by hand) the zoo's ANI-2x files
    downloads/ani-model-zoo-ani-2x.zip   (optional, placed by hand) the zoo's archive
    converted/<sha256>.onnx     any other .info, keyed by the hash of its files
    locks/*.lock                held while a process downloads or converts
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HOME_VARIABLE = "PYANI_HOME"
LOCK_TIMEOUT_VARIABLE = "PYANI_LOCK_TIMEOUT"
LOCK_TIMEOUT = 1800.0  # seconds: a download on a slow link, then a conversion


def cache_dir() -> Path:
    """$PYANI_HOME, else the platform's cache directory: $XDG_CACHE_HOME/pyani or
    ~/.cache/pyani (Linux), ~/Library/Caches/pyani (macOS), %LOCALAPPDATA%/pyani (Windows)."""
    home = os.environ.get(HOME_VARIABLE)
    if home:
        return Path(home).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pyani"


def _try_lock(handle) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def file_lock(path: Path, what: str):
    """Hold an exclusive lock on ``path`` (created if needed) while the block runs.

    The operating system releases the lock when its process ends, so a crashed process
    leaves no stale lock behind. Waits at most $PYANI_LOCK_TIMEOUT seconds (default 1800).
    """
    timeout = float(os.environ.get(LOCK_TIMEOUT_VARIABLE) or LOCK_TIMEOUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        deadline = time.monotonic() + timeout
        told = False
        while not _try_lock(handle):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"pyani: gave up {what} after waiting {timeout:.0f} s for the lock {path}, held by "
                    f"another process (set {LOCK_TIMEOUT_VARIABLE} to wait longer)"
                )
            if not told:
                print(f"pyani: waiting for another process {what} (lock {path})", file=sys.stderr)
                told = True
            time.sleep(0.1)
        yield  # closing the file releases the lock


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a
    rename, so that no reader ever sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared cache from others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def neurochem_files(info_file: Path) -> list[Path]:
    """The ``.info`` file and every file of its ensemble: constants, self energies and all
    files in each member's ``networks/`` directory (a superset of those the networks read)."""
    lines = [ln.strip() for ln in info_file.read_text().splitlines() if ln.strip()]
    if len(lines) < 4 or not lines[3].isdigit():
        return [info_file]  # malformed: the converter gives the error
    base = info_file.parent
    prefix = base / lines[2]
    found = [info_file, base / lines[0], base / lines[1]]
    for k in range(int(lines[3])):
        networks = prefix.parent / f"{prefix.name}{k}" / "networks"
        if networks.is_dir():
            found += sorted(p for p in networks.iterdir() if p.is_file())
    return [p for p in found if p.is_file()]


def content_key(info_file: Path) -> str:
    """SHA-256 over the converter's format version and the paths (relative to the .info's
    directory) and contents of the ensemble's files."""
    from .export.onnx_graph import FORMAT_VERSION

    digest = hashlib.sha256(f"pyani-format-{FORMAT_VERSION}\n".encode())
    for path in neurochem_files(info_file):
        digest.update(os.path.relpath(path, info_file.parent).replace(os.sep, "/").encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def converted_info(info_file: Path) -> bytes | str:
    """A NeuroChem ensemble as a pyani ONNX model: the cached conversion of files with the
    same content, else converted now and cached (as bytes when the cache is not writable)."""
    from .export import neurochem_to_onnx

    info_file = Path(info_file)
    key = content_key(info_file)
    home = cache_dir()
    target = home / "converted" / f"{key}.onnx"
    if target.is_file():
        return str(target)
    if not _writable(home / "converted") or not _writable(home / "locks"):
        return neurochem_to_onnx(info_file)
    with file_lock(home / "locks" / f"{key}.lock", f"converting {info_file}"):
        if not target.is_file():
            write_atomic(target, neurochem_to_onnx(info_file))
    return str(target)


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)
