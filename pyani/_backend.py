"""Pick the kernel backend: the C++ core ("cpp") or its Numba twin ("numba").

Both expose the same kernel objects with the same signatures and outputs: ``NeighborList``
(pairs, shifts, vectors; a Verlet skin) and ``AEVComputer`` (``forward`` -> ``AEVPass``,
whose ``backward`` gives forces and virials).
The choice is the ``backend`` argument, else the ``PYANI_BACKEND`` environment variable,
else "auto": the C++ core when its extension imports, Numba otherwise (with a warning).
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

from ._distribution import DISTRIBUTION, install_command

BACKENDS = ("auto", "cpp", "numba")

# The kernels' OpenMP threads and ONNX Runtime's threads take turns on the same cores. With
# OpenMP's default waiting policy its idle threads spin after each kernel, through the
# network evaluation that follows: a 1536-atom water box took 40-48 ms per call instead of
# 34-39. OpenMP reads this when it is first loaded (with the C++ core, or Numba's omp
# layer); a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _import_cpp() -> ModuleType:
    return importlib.import_module("pyani._cpp_backend")


def _import_numba() -> ModuleType:
    return importlib.import_module("pyani._numba")


def cpp_available() -> bool:
    """True when the compiled C++ core imports."""
    try:
        _import_cpp()
    except ImportError:
        return False
    return True


def resolve(name: str | None) -> tuple[str, ModuleType]:
    """Return ``(name, module)`` of the backend to use."""
    if name is None or name == "auto":
        name = os.environ.get("PYANI_BACKEND", "auto") or "auto"
        source = "PYANI_BACKEND"
    else:
        source = "backend"
    if name not in BACKENDS:
        raise ValueError(f"{source} must be one of {BACKENDS}, got {name!r}")
    if name == "cpp":
        try:
            return "cpp", _import_cpp()
        except ImportError as err:
            raise ImportError(
                f"backend='cpp' but pyani's C++ extension is not available ({err}); "
                f"reinstall {DISTRIBUTION} with a C++ compiler and CMake, or use backend='numba'"
            ) from None
    if name == "numba":
        try:
            return "numba", _import_numba()
        except ImportError as err:
            raise ImportError(f"backend='numba' needs the numba package ({err}): {install_command('numba')}") from None
    try:
        return "cpp", _import_cpp()
    except ImportError as err:
        reason = err
    try:
        module = _import_numba()
    except ImportError as err:
        raise ImportError(
            f"no pyani backend available: the C++ extension failed to import ({reason}) "
            f"and numba is not installed ({err}); add the Numba backend: {install_command('numba')}"
        ) from None
    warnings.warn(
        f"pyani's C++ extension is not available ({reason}); using the slower Numba backend",
        RuntimeWarning,
        stacklevel=3,
    )
    return "numba", module
