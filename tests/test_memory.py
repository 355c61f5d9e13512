"""Inputs whose neighbour data cannot fit in memory raise MemoryError, never abort the process.

Both cases allocate inside the kernels' parallel regions, where an escaping C++ exception
would end in std::terminate. Each runs in a child process whose address space is capped a
little above what it already uses, so the allocation fails at once instead of swapping.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import BACKENDS

CHILD = """
import resource
import numpy as np
import pyani
from pyani import _backend

model = pyani.load("ani-1ccx", backend="{backend}")
model.compute([8, 1, 1], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])  # JIT, threads, arenas
rng = np.random.default_rng(0)
{setup}
with open("/proc/self/status") as status:
    used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), resource.RLIM_INFINITY))
try:
    {call}
except MemoryError:
    print("MemoryError")
else:
    print("no error")
"""


def run_child(backend: str, setup: str, call: str, cwd) -> subprocess.CompletedProcess:
    script = CHILD.format(backend=backend, setup=setup, call=call)
    # cwd: not the source tree, whose pyani/ has no compiled core
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cluster_denser_than_its_box_raises_memory_error(backend, tmp_path):
    # 20,000 atoms in a ball 5 A across, alone in a periodic box of 1e9 A^3: the mean density
    # promises no pairs, the ball has 2e8 (10 GB of pair data).
    setup = """
direction = rng.normal(size=(20000, 3))
ball = direction / np.linalg.norm(direction, axis=1)[:, None] * 2.5 * rng.random((20000, 1)) ** (1 / 3)
"""
    call = "model.compute(np.full(20000, 6), ball + 500.0, cell=np.eye(3) * 1000.0)"
    out = run_child(backend, setup, call, tmp_path)
    assert out.returncode == 0, f"child died (signal {-out.returncode}): {out.stderr[-2000:]}"
    assert out.stdout.split()[-1] == "MemoryError"


@pytest.mark.skipif("cpp" not in BACKENDS, reason="the C++ core is not built")
def test_atom_with_too_many_angular_neighbours_raises_memory_error(tmp_path):
    # One atom with 20,000 neighbours inside the angular cutoff has 2e8 neighbour pairs;
    # the C++ kernel lays out per-atom arrays over them (Numba loops over them unbuffered).
    setup = """
n = 20001
species = np.zeros(n, dtype=np.int32)
pairs = np.stack([np.zeros(n - 1, dtype=np.int64), np.arange(1, n)], axis=1)
direction = rng.normal(size=(n - 1, 3))
vectors = direction / np.linalg.norm(direction, axis=1)[:, None] * rng.uniform(1.0, 3.4, (n - 1, 1))
"""
    call = "model.aev_computer.forward(species, pairs, vectors, np.arange(n), n)"
    out = run_child("cpp", setup, call, tmp_path)
    assert out.returncode == 0, f"child died (signal {-out.returncode}): {out.stderr[-2000:]}"
    assert out.stdout.split()[-1] == "MemoryError"
