"""What every command shares: one-line errors, model options, progress bars, output units."""

from __future__ import annotations

import argparse
import sys


class CLIError(Exception):
    """A user error: printed as one line, exit status ``status`` (no traceback)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (naming the option) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default="ani-1ccx", help="model name or .onnx/.info path (default ani-1ccx)")
    parser.add_argument("--backend", default="auto", choices=("auto", "cpp", "numba"), help="AEV kernels")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="network device")
    parser.add_argument("--threads", type=int, default=0, help="threads (default 0 = all cores)")


def load_model(args, **kwargs):
    """The model the options name; any failure becomes a one-line CLIError."""
    import pyani

    try:
        return pyani.load(args.model, backend=args.backend, device=args.device, n_threads=args.threads, **kwargs)
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as err:
        raise CLIError(f"--model {args.model}: {' '.join(str(err).split())}") from None


def progress(iterable=None, **kwargs):
    """A tqdm bar on stderr that shows after a second, and never when stderr is not a terminal
    (or tqdm is not installed)."""
    quiet = not sys.stderr.isatty()
    if not quiet:
        try:
            from tqdm import tqdm
        except ImportError:
            quiet = True
    if quiet:
        return _Silent(iterable)
    return tqdm(iterable, delay=1.0, file=sys.stderr, dynamic_ncols=True, **kwargs)


class _Silent:
    """The bit of tqdm's interface the commands use, doing nothing."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_atoms(path: str, index: str = ":"):
    """ase.Atoms of a file (a list, one per selected frame); a bad file is a one-line CLIError.

    SDF files are read by pyani's reader: ase.io reads only their first record."""
    from pathlib import Path

    from ase.io.formats import string2index

    if not Path(path).is_file():
        raise CLIError(f"{path}: no such file")
    try:
        selection = string2index(index)
    except ValueError:
        raise CLIError(f"--index {index!r}: not an ase.io index (e.g. 0, -1, ':', '2:5')", status=2) from None
    if Path(path).suffix.lower() in (".sdf", ".mol", ".sd"):
        frames = _sdf_atoms(path)
        try:
            frames = frames[selection]
        except IndexError:
            raise CLIError(f"--index {index}: {path} has {len(frames)} structures") from None
    else:
        import ase.io

        try:
            frames = ase.io.read(path, index=index)
        except IndexError:
            raise CLIError(f"--index {index}: out of range for {path}") from None
        except Exception as err:  # ase raises anything from a malformed file
            raise CLIError(f"{path}: cannot read: {' '.join(str(err).split()) or type(err).__name__}") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise CLIError(f"{path}: no structures selected by --index {index}")
    for k, atoms in enumerate(frames):  # the frame's number in the file, for messages and tables
        atoms.info["pyani_frame"] = _frame_number(selection, k)
    return frames


def _frame_number(selection, k: int):
    if isinstance(selection, int):
        return selection
    start, step = selection.start or 0, selection.step or 1
    return start + k * step if start >= 0 and step > 0 else k


def frame_name(path: str, atoms) -> str:
    """ "file.xyz[3]": where a structure came from."""
    return f"{path}[{atoms.info.get('pyani_frame', 0)}]"


def _sdf_atoms(path: str) -> list:
    from ase import Atoms

    from pyani._structures import read

    frames = []
    for s in read(path):
        if s.error is not None:
            raise CLIError(s.error)
        frames.append(Atoms(numbers=s.numbers, positions=s.positions))
    return frames


def check_elements(model, atoms, where: str) -> None:
    """Refuse a structure with elements the model lacks, naming them."""
    known = set(int(z) for z in model.atomic_numbers)
    unknown = sorted(set(int(z) for z in atoms.numbers) - known)
    if unknown:
        from ase.data import chemical_symbols

        names = ", ".join(chemical_symbols[z] for z in unknown)
        raise CLIError(f"{where}: elements the model lacks: {names} (it knows {', '.join(model.elements)})")


def plotting():
    """matplotlib.pyplot on a file-only backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
