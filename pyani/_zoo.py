"""ANI-2x by name: fetched from the ANI model zoo (aiqm/ani-model-zoo, MIT, Copyright (c)
2020 AIQM) on first use, checked file by file against SHA-256 sums shipped with pyani
(pyani/models/ani-2x.sha256), converted once and cached as ``models/ani-2x.onnx`` in
pyani's cache directory (pyani/_cache.py). As TorchANI does, the archive is the zoo's
``ani-2x`` tag on GitHub; ``$PYANI_MODEL_URL`` replaces it (a mirror: http(s):// or
file://), ``PYANI_OFFLINE=1`` forbids downloading.

Sources, in order: the cached .onnx; the zoo's files placed by hand under
``neurochem/``; the archive placed by hand as ``downloads/ani-model-zoo-ani-2x.zip``;
a download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from ._cache import cache_dir, file_lock, write_atomic

ANI2X_URL = "https://github.com/aiqm/ani-model-zoo/archive/ani-2x.zip"
URL_VARIABLE = "PYANI_MODEL_URL"
OFFLINE_VARIABLE = "PYANI_OFFLINE"
INFO = "ani-2x_8x.info"
ARCHIVE = "ani-model-zoo-ani-2x.zip"
MODEL = "ani-2x.onnx"
TIMEOUT = 60.0  # seconds without data before a download is abandoned
_CHUNK = 1 << 20


class ModelDownloadError(RuntimeError):
    """ANI-2x could not be had: no cached copy, no files placed by hand, no download."""


def model_path(home: Path | None = None) -> Path:
    """Where the converted ANI-2x lives in the cache."""
    return (home or cache_dir()) / "models" / MODEL


def archive_url() -> str:
    return os.environ.get(URL_VARIABLE) or ANI2X_URL


def offline() -> bool:
    return os.environ.get(OFFLINE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def expected_sums() -> dict[str, str]:
    """{path relative to the zoo's resources/ directory: SHA-256 hex digest}."""
    text = (files("pyani") / "models" / "ani-2x.sha256").read_text()
    sums = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            sums[name.strip()] = digest
    return sums


def ani2x() -> Path:
    """The path of the converted ANI-2x ``.onnx``, made on first use (see module doc)."""
    home = cache_dir()
    target = model_path(home)
    if target.is_file():
        return target
    with file_lock(home / "locks" / "ani-2x.lock", "preparing ANI-2x"):
        if not target.is_file():  # another process may have made it while we waited
            _prepare(home, target)
    return target


def _prepare(home: Path, target: Path) -> None:
    from .export import neurochem_to_onnx

    placed_tree = home / "neurochem" / INFO
    placed_archive = home / "downloads" / ARCHIVE
    if placed_tree.is_file():
        _verify_tree(placed_tree.parent)
        write_atomic(target, neurochem_to_onnx(placed_tree))
        return
    with tempfile.TemporaryDirectory(prefix="pyani-ani-2x-", dir=_scratch(home)) as tmp:
        if placed_archive.is_file():
            archive = placed_archive
        elif offline():
            raise ModelDownloadError(_instructions(home, f"{OFFLINE_VARIABLE} is set, so pyani does not download"))
        else:
            archive = Path(tmp) / ARCHIVE
            _download(archive_url(), archive, home)
        tree = Path(tmp) / "resources"
        try:
            _extract_verified(archive, tree)
        except ModelDownloadError as err:
            raise ModelDownloadError(_instructions(home, str(err))) from None
        write_atomic(target, neurochem_to_onnx(tree / INFO))
    print(f"pyani: ANI-2x converted and cached as {target}", file=sys.stderr)


def _scratch(home: Path) -> Path:
    """tmp/ beside the cache (not /tmp: the archive and its files need ~150 MB), emptied of
    what a killed process left there (the caller holds the lock: nobody else uses it)."""
    path = home / "tmp"
    for leftover in path.glob("pyani-ani-2x-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _download(url: str, out: Path, home: Path) -> None:
    """Stream ``url`` to ``out``; refuses a transfer shorter than its Content-Length."""
    import http.client  # here: they cost import pyani ~20 ms
    import urllib.error
    import urllib.request

    print(f"pyani: downloading the ANI-2x files (first use) from {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(out, "wb") as sink:
            expected = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            received = 0
            while chunk := response.read(_CHUNK):
                sink.write(chunk)
                received += len(chunk)
    except (OSError, ValueError, http.client.HTTPException) as err:  # URLError, timeouts, cut transfers
        if isinstance(err, urllib.error.HTTPError):
            err.close()  # it holds the connection open
        raise ModelDownloadError(_instructions(home, f"downloading {url} failed: {err}")) from None
    if expected is not None and expected.isdigit() and received != int(expected):
        raise ModelDownloadError(
            _instructions(home, f"the download of {url} was cut short: {received} of {expected} bytes")
        )


def _extract_verified(archive: Path, tree: Path) -> None:
    """Write the ANI-2x files of the zoo's archive under ``tree``, each checked against
    its shipped SHA-256. Only the listed files are read: no path comes from the archive."""
    import zipfile

    sums = expected_sums()
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            info = [n for n in names if n == INFO or n.endswith("/" + INFO)]
            if not info:
                raise ModelDownloadError(f"{archive} holds no {INFO}: not the ANI model zoo's ani-2x archive")
            prefix = min(info, key=len)[: -len(INFO)]
            present = set(names)
            for name, digest in sums.items():
                if prefix + name not in present:
                    raise ModelDownloadError(f"{archive} lacks {prefix + name}")
                data = zf.read(prefix + name)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ModelDownloadError(f"{archive}: {prefix + name} does not match its SHA-256 sum")
                path = tree / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise ModelDownloadError(f"{archive} is not a complete zip archive ({err})") from None


def _verify_tree(root: Path) -> None:
    for name, digest in expected_sums().items():
        path = root / name
        if not path.is_file():
            raise ModelDownloadError(f"{root} holds {INFO} but not {name}: copy the whole ani-2x_8x/ directory")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise ModelDownloadError(f"{path} does not match its SHA-256 sum: copy the zoo's original file")


def _instructions(home: Path, reason: str) -> str:
    url = archive_url()
    return (
        f"ANI-2x is not in pyani's cache and could not be prepared: {reason}.\n"
        f"To install it by hand (e.g. on a cluster node without internet), do one of:\n"
        f"  1. copy {MODEL} from the cache of a machine where pyani.load('ani-2x') worked "
        f'(`python -c "import pyani._zoo as z; print(z.model_path())"` prints it) to {model_path(home)};\n'
        f"  2. download {url} and save it as {home / 'downloads' / ARCHIVE};\n"
        f"  3. put the archive's resources/{INFO} and resources/ani-2x_8x/ directory in {home / 'neurochem'}/.\n"
        f"The cache directory is $PYANI_HOME (now {home}); ${URL_VARIABLE} sets another download "
        f"URL (http://, https:// or file:// mirror of the zoo's archive); files are checked against "
        f"SHA-256 sums shipped with pyani."
    )
