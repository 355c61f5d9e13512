"""ANI-2x by name (pyani/_zoo.py) and the cache (pyani/_cache.py): the real download code
against a loopback HTTP server and file:// URLs serving archives built from ../shared,
corrupt and cut-short downloads, the lock between processes, offline mode, files placed by
hand, and .info files converted once by content."""

from __future__ import annotations

import http.server
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ANI2X_INFO, NEUROCHEM, ZOO_ARCHIVE, build_zoo_archive, require_ani2x_files
from test_export import write_ensemble

import pyani
from pyani import _cache, _zoo
from pyani._cache import _umask

#: A NeuroChem weight file of ANI-2x (any listed file would do).
WEIGHTS = "ani-2x_8x/train3/networks/ANN-S.nnf-l2.wparam"


@pytest.fixture(scope="module")
def session_model() -> Path:
    """The ANI-2x the session converted (from conftest's file:// mirror): the reference."""
    require_ani2x_files()
    pyani.load("ani-2x")
    return _zoo.model_path()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty cache directory, no URL override, online."""
    monkeypatch.setenv("PYANI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PYANI_MODEL_URL", raising=False)
    monkeypatch.delenv("PYANI_OFFLINE", raising=False)
    return tmp_path / "home"


def cached_files(home: Path) -> list[str]:
    """What the cache holds, apart from lock files and empty directories."""
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file() and p.suffix != ".lock")


class _Server:
    """http.server on 127.0.0.1 (a free port) serving ``root``; ``cut`` serves only the first
    half of every file while announcing its whole length."""

    def __init__(self, root: Path, cut: bool = False):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                pass

            def copyfile(self, source, outputfile):
                data = source.read()
                outputfile.write(data[: len(data) // 2] if cut else data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_download_over_http_then_cached(home, monkeypatch, session_model):
    leftover = home / "tmp" / "pyani-ani-2x-killed" / "resources"  # from a killed process
    leftover.mkdir(parents=True)
    with _Server(ZOO_ARCHIVE.parent) as server:
        monkeypatch.setenv("PYANI_MODEL_URL", f"{server.url}/{ZOO_ARCHIVE.name}")
        path = _zoo.ani2x()
    assert path == home / "models" / "ani-2x.onnx"
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # readable as any file the user writes
    assert path.read_bytes() == session_model.read_bytes()
    assert cached_files(home) == ["models/ani-2x.onnx"]  # archive and extracted files are gone
    assert not leftover.parent.exists()
    # the server is down and downloads are forbidden: the cache is enough
    monkeypatch.setenv("PYANI_OFFLINE", "1")
    model = pyani.load("ani-2x")
    assert model.elements == ("H", "C", "N", "O", "S", "F", "Cl")
    assert model.source == "pyani model 'ani-2x'"


def test_http_error_explains_manual_install(home, monkeypatch):
    with _Server(home.parent) as server:
        monkeypatch.setenv("PYANI_MODEL_URL", f"{server.url}/no-such-archive.zip")
        with pytest.raises(_zoo.ModelDownloadError) as err:
            pyani.load("ani-2x")
    text = str(err.value)
    assert "404" in text and "no-such-archive.zip" in text
    assert str(home / "downloads" / "ani-model-zoo-ani-2x.zip") in text
    assert str(home / "neurochem") in text and str(home / "models" / "ani-2x.onnx") in text
    assert "PYANI_MODEL_URL" in text and "PYANI_HOME" in text
    assert cached_files(home) == []


def test_cut_short_http_download_is_refused(home, monkeypatch):
    require_ani2x_files()
    with _Server(ZOO_ARCHIVE.parent, cut=True) as server:
        monkeypatch.setenv("PYANI_MODEL_URL", f"{server.url}/{ZOO_ARCHIVE.name}")
        with pytest.raises(_zoo.ModelDownloadError, match=r"cut short|IncompleteRead|incomplete"):
            _zoo.ani2x()
    assert cached_files(home) == []


def test_truncated_archive_is_refused(home, tmp_path, monkeypatch):
    require_ani2x_files()
    half = tmp_path / "half.zip"
    half.write_bytes(ZOO_ARCHIVE.read_bytes()[: ZOO_ARCHIVE.stat().st_size // 2])
    monkeypatch.setenv("PYANI_MODEL_URL", half.as_uri())
    with pytest.raises(_zoo.ModelDownloadError, match="not a complete zip archive"):
        _zoo.ani2x()
    assert cached_files(home) == []


def test_altered_file_is_refused(home, tmp_path, monkeypatch):
    """A well-formed archive whose weights differ from the shipped sums: nothing cached."""
    require_ani2x_files()

    def change(name, data):
        return data[:-4] + b"\0\0\0\0" if name == WEIGHTS else data

    monkeypatch.setenv("PYANI_MODEL_URL", build_zoo_archive(tmp_path / "bad.zip", change).as_uri())
    with pytest.raises(_zoo.ModelDownloadError, match=f"{WEIGHTS} does not match its SHA-256 sum"):
        _zoo.ani2x()
    assert cached_files(home) == []


def test_corrupted_bytes_are_refused(home, tmp_path, monkeypatch):
    """A byte flipped in transit inside a stored file: the zip's CRC or the SHA-256 refuses it."""
    require_ani2x_files()
    data = bytearray(ZOO_ARCHIVE.read_bytes())
    data[len(data) // 3] ^= 0xFF
    bad = tmp_path / "flipped.zip"
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("PYANI_MODEL_URL", bad.as_uri())
    with pytest.raises(_zoo.ModelDownloadError, match=r"not a complete zip archive|does not match its SHA-256"):
        _zoo.ani2x()
    assert cached_files(home) == []


def test_not_the_zoo_archive(home, tmp_path, monkeypatch):
    import zipfile

    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("something/else.txt", "hello")
    monkeypatch.setenv("PYANI_MODEL_URL", other.as_uri())
    with pytest.raises(_zoo.ModelDownloadError, match=r"holds no ani-2x_8x\.info"):
        _zoo.ani2x()


def test_offline_mode_and_files_placed_by_hand(home, monkeypatch, session_model):
    monkeypatch.setenv("PYANI_OFFLINE", "1")
    monkeypatch.setenv("PYANI_MODEL_URL", ZOO_ARCHIVE.as_uri())  # must not be used
    with pytest.raises(_zoo.ModelDownloadError, match="PYANI_OFFLINE is set") as err:
        pyani.load("ani-2x")
    assert str(home / "downloads" / "ani-model-zoo-ani-2x.zip") in str(err.value)
    assert cached_files(home) == []

    # 1. the archive, placed by hand where the message says
    placed = home / "downloads" / "ani-model-zoo-ani-2x.zip"
    placed.parent.mkdir(parents=True)
    shutil.copyfile(ZOO_ARCHIVE, placed)
    assert _zoo.ani2x().read_bytes() == session_model.read_bytes()
    assert placed.is_file()  # what the user placed is left alone

    # 2. the converted model, copied from another machine's cache
    shutil.rmtree(home)
    target = _zoo.model_path()
    target.parent.mkdir(parents=True)
    shutil.copyfile(session_model, target)
    assert _zoo.ani2x() == target

    # 3. the .info tree, checked against the sums: a damaged copy is refused
    shutil.rmtree(home)
    shutil.copytree(NEUROCHEM, home / "neurochem")
    weights = home / "neurochem" / WEIGHTS
    good = weights.read_bytes()
    weights.chmod(0o644)
    weights.write_bytes(good[:-4] + b"\0\0\0\0")
    with pytest.raises(_zoo.ModelDownloadError, match="does not match its SHA-256 sum"):
        _zoo.ani2x()
    assert not target.exists()
    weights.write_bytes(good)
    assert _zoo.ani2x().read_bytes() == session_model.read_bytes()


def _spawn(code: str, **env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_line(stream, timeout: float) -> str:
    """The next line of a child's pipe, or "" after ``timeout`` seconds (never hangs)."""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else ""


def test_second_process_waits_for_the_lock(home, session_model):
    """While this process holds the lock, another one waits; it then finds the model that
    was made meanwhile instead of converting again (offline: it could not download)."""
    target = _zoo.model_path()
    with _cache.file_lock(home / "locks" / "ani-2x.lock", "test"):
        child = _spawn("import pyani._zoo as z; print(z.ani2x())", PYANI_OFFLINE="1")
        assert "waiting for another process" in _read_line(child.stderr, 60)
        assert child.poll() is None
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(session_model, target)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == str(target)


def test_lock_of_a_killed_process_is_not_stale(home):
    """The OS releases a dead process's lock: no stale lock file blocks the next one."""
    lock = home / "locks" / "ani-2x.lock"
    code = (
        "import sys, time; from pathlib import Path; from pyani import _cache\n"
        f"with _cache.file_lock(Path({str(lock)!r}), 'test'):\n"
        "    print('locked', flush=True); time.sleep(60)\n"
    )
    with _spawn(code) as child:
        try:
            assert _read_line(child.stdout, 60).strip() == "locked"
        finally:
            child.send_signal(signal.SIGKILL)
    assert lock.exists()
    start = time.monotonic()
    with _cache.file_lock(lock, "test"):
        assert time.monotonic() - start < 2


def test_lock_timeout(home, monkeypatch):
    monkeypatch.setenv("PYANI_LOCK_TIMEOUT", "0.3")
    lock = home / "locks" / "x.lock"
    code = (
        "import time; from pathlib import Path; from pyani import _cache\n"
        f"with _cache.file_lock(Path({str(lock)!r}), 'test'):\n"
        "    print('locked', flush=True); time.sleep(30)\n"
    )
    with _spawn(code) as child:
        try:
            assert _read_line(child.stdout, 60).strip() == "locked"
            with pytest.raises(TimeoutError, match="PYANI_LOCK_TIMEOUT"), _cache.file_lock(lock, "converting x"):
                pass
        finally:
            child.kill()


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("PYANI_HOME", str(tmp_path / "h"))
    assert _cache.cache_dir() == tmp_path / "h"
    monkeypatch.delenv("PYANI_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert _cache.cache_dir() == tmp_path / "xdg" / "pyani"
    monkeypatch.delenv("XDG_CACHE_HOME")
    if sys.platform.startswith("linux"):
        assert _cache.cache_dir() == Path.home() / ".cache" / "pyani"


def test_info_converted_once_by_content(home, tmp_path, monkeypatch):
    root = tmp_path / "ens"
    root.mkdir()
    info, _ = write_ensemble(root)
    calls = []
    real = pyani.export.neurochem_to_onnx

    def counting(path, *args):
        calls.append(path)
        return real(path, *args)

    monkeypatch.setattr(pyani.export, "neurochem_to_onnx", counting)
    first = pyani.load(info)
    second = pyani.load(info)
    assert len(calls) == 1
    assert first._model == second._model and Path(first._model).parent == home / "converted"
    # a copy elsewhere has the same content: the same cached file
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert pyani.load(copy / "tiny.info")._model == first._model and len(calls) == 1
    # changed weights: converted anew
    weights = copy / "tiny" / "train1" / "networks" / "ANN-C.nnf-l1.wparam"
    data = bytearray(weights.read_bytes())
    data[0] ^= 1
    weights.write_bytes(bytes(data))
    changed = pyani.load(copy / "tiny.info")
    assert changed._model != first._model and len(calls) == 2
    assert len(list((home / "converted").glob("*.onnx"))) == 2


def test_info_conversion_without_a_usable_cache(tmp_path, monkeypatch):
    info, _ = write_ensemble(tmp_path)
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    monkeypatch.setenv("PYANI_HOME", str(not_a_directory))
    model = pyani.load(info)  # converted in memory
    assert isinstance(model.networks.model, bytes) and model.elements == ("H", "C")


def test_ani2x_pickles_by_name(session_model):
    import pickle

    model = pyani.load("ani-2x")
    data = pickle.dumps(model)
    assert len(data) < 10_000  # by name, not 55 MB of weights
    assert pickle.loads(data).elements == model.elements


def test_shipped_sums_cover_the_info_files():
    sums = _zoo.expected_sums()
    assert len(sums) == 507 and "ani-2x_8x.info" in sums
    if ANI2X_INFO.is_file():
        listed = {p.relative_to(NEUROCHEM).as_posix() for p in NEUROCHEM.rglob("*") if p.is_file()}
        assert set(sums) == listed - {"LICENSE-ani-model-zoo"}


def test_two_processes_at_once_convert_once(home, session_model):
    """Two fresh processes ask for ANI-2x together: one downloads and converts, the other
    waits for the lock and loads the result."""
    require_ani2x_files()
    code = "import pyani; print(pyani.load('ani-2x').elements)"
    children = [_spawn(code, PYANI_MODEL_URL=ZOO_ARCHIVE.as_uri()) for _ in range(2)]
    outputs = [child.communicate(timeout=300) for child in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
        assert "'Cl'" in out
    errs = "".join(err for _, err in outputs)
    assert errs.count("converted and cached") == 1 and errs.count("downloading") == 1
    assert _zoo.model_path().read_bytes() == session_model.read_bytes()


def test_missing_ani2x_files_fail_when_ci_requires_them(monkeypatch, tmp_path):
    import conftest

    monkeypatch.setattr(conftest, "ANI2X_INFO", tmp_path / "absent.info")
    monkeypatch.setenv("PYANI_REQUIRE_ANI2X", "1")
    with pytest.raises(pytest.fail.Exception, match="PYANI_REQUIRE_ANI2X"):
        conftest.require_ani2x_files()
    monkeypatch.delenv("PYANI_REQUIRE_ANI2X")
    with pytest.raises(pytest.skip.Exception, match="not found"):
        conftest.require_ani2x_files()
