"""i-PI client: a round trip through ASE's SocketIOCalculator (the real server side of the
protocol), and fake servers that misbehave. UNIX sockets only (loopback)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.socketio import SocketIOCalculator
from conftest import BACKENDS, get_model
from oracles import water_box

from pyani import ipi
from pyani.units import BOHR

#: Client start-up (imports, model load) on a busy 2-core machine.
START = 60


def client(structure, name, backend, *extra):
    """The client as a process. Should it die before connecting, a dummy connection wakes the
    server (ASE's waits in accept() without a timeout), so that the test fails, not hangs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyani.ipi", str(structure), "--unix", name, "--backend", backend, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def wake_the_server():
        if proc.wait() != 0:
            with socket.socket(socket.AF_UNIX) as dummy, contextlib.suppress(OSError):
                dummy.connect(f"/tmp/ipi_{name}")

    threading.Thread(target=wake_the_server, daemon=True).start()
    return proc


def socket_name(tag: str) -> str:
    return f"pyani_test_{os.getpid()}_{tag}"


@pytest.mark.parametrize("periodic", [True, False])
def test_round_trip_through_ase_socketio(backend, tmp_path, periodic):
    model = get_model("ani-1ccx", backend)
    if periodic:
        numbers, positions, cell = water_box(np.random.default_rng(5), 2)
        atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    else:
        atoms = molecule("CH3CH2OH")
    structure = tmp_path / "start.extxyz"
    ase.io.write(structure, atoms)
    name = socket_name(f"{backend}_{periodic}")
    proc = None
    try:
        with SocketIOCalculator(unixsocket=name, timeout=START) as calc:
            proc = client(structure, name, backend)
            atoms.calc = calc
            for step in range(3):  # several messages on one connection, atoms moving
                want = model.compute(
                    atoms.numbers,
                    atoms.positions,
                    atoms.cell.array if periodic else None,
                    atoms.pbc if periodic else None,
                    stress=periodic,
                )
                assert atoms.get_potential_energy() == pytest.approx(want.energy * units.Hartree, rel=1e-14)
                np.testing.assert_allclose(atoms.get_forces(), want.forces * units.Hartree, rtol=1e-12, atol=1e-12)
                extras = json.loads(bytes(calc.results["morebytes"]))
                assert extras["energy_std"] == pytest.approx(want.energy_std, rel=1e-12)
                np.testing.assert_allclose(extras["member_energies"], want.member_energies, rtol=1e-14)
                if periodic:
                    s = want.stress * units.Hartree
                    voigt = [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
                    np.testing.assert_allclose(atoms.get_stress(), voigt, rtol=1e-10, atol=1e-14)
                    atoms.set_cell(atoms.cell * 1.002, scale_atoms=True)
                atoms.positions[step] += 0.05
        _, err = proc.communicate(timeout=START)
        assert proc.returncode == 0, err
        assert "served 3 force calls" in err
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()


def _water_file(tmp_path):
    structure = tmp_path / "water.xyz"
    ase.io.write(structure, molecule("H2O"))
    return structure


def _status(conn):
    conn.sendall(b"STATUS".ljust(12))
    return conn.recv(12)


def _posdata(conn, n_atoms, positions=None):
    positions = np.zeros((n_atoms, 3)) if positions is None else positions
    conn.sendall(b"POSDATA".ljust(12))
    conn.sendall(np.eye(3).tobytes() * 2 + np.int32(n_atoms).tobytes() + positions.tobytes())


def _garbage_header(conn):
    conn.sendall(b"HELLO WORLD!")


def _half_a_header(conn):
    conn.sendall(b"STAT")


def _wrong_atom_count(conn):
    assert _status(conn).strip() == b"READY"
    _posdata(conn, 4)


def _half_the_positions(conn):
    assert _status(conn).strip() == b"READY"
    conn.sendall(b"POSDATA".ljust(12) + np.eye(3).tobytes() * 2 + np.int32(3).tobytes() + np.zeros(4).tobytes())


def _nan_positions(conn):
    _posdata(conn, 3, np.full((3, 3), np.nan))


def _forces_first(conn):
    conn.sendall(b"GETFORCE".ljust(12))


def _silence(conn):
    pass


def _huge_init(conn):
    conn.sendall(b"INIT".ljust(12) + np.int32(0).tobytes() + np.int32(2**31 - 1).tobytes())


def _overlapping_atoms(conn):
    _posdata(conn, 3)  # all three atoms at the origin: compute's own error


class InProcessClient:
    """main(argv) in a thread: the same code path as the command without a new Python's
    start-up (seconds on a busy machine); its stderr is what capsys captures."""

    def __init__(self, argv):
        self.returncode = None
        self.thread = threading.Thread(target=self._run, args=(argv,), daemon=True)
        self.thread.start()

    def _run(self, argv):
        self.returncode = ipi.main(argv)

    def wait(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the client hangs"
        return self.returncode


@pytest.mark.parametrize(
    ("server", "message", "as_process"),
    [
        (_garbage_header, r"the server sent b'HELLO WORLD!', not an i-PI message", True),
        (_wrong_atom_count, "the server sent 4 atoms but STRUCTURE has 3", True),
        (_half_a_header, "timed out after 2 s waiting for a message header", False),
        (_half_the_positions, "timed out after 2 s waiting for the positions", False),
        (_nan_positions, "positions or a cell that are not finite", False),
        (_forces_first, r"asked for forces \(GETFORCE\) before sending positions", False),
        (_silence, "timed out after 2 s waiting for a message$", False),
        (_huge_init, "INIT message announces 2147483647 bytes", False),
        (_overlapping_atoms, "positions: atoms 0 and 1 .* at the same place", False),
    ],
)
def test_misbehaving_server_ends_the_client_cleanly(tmp_path, capsys, server, message, as_process):
    name = socket_name(server.__name__)
    path = f"/tmp/ipi_{name}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    argv = [str(_water_file(tmp_path)), "--unix", name, "--backend", BACKENDS[0], "--timeout", "2"]
    proc = None
    try:
        listener.listen(1)
        listener.settimeout(START)
        proc = client(argv[0], name, BACKENDS[0], "--timeout", "2") if as_process else InProcessClient(argv)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            start = time.monotonic()
            server(conn)
            if as_process:
                _, err = proc.communicate(timeout=30)
            else:
                proc.wait(timeout=30)
                err = capsys.readouterr().err
            elapsed = time.monotonic() - start
    finally:
        listener.close()
        os.unlink(path)
        if as_process and proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert elapsed < 8
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("pyani.ipi: error: ")
    assert re.search(message, lines[0]), lines[0]


def test_command_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.xyz"
    bad.write_text("not a structure\n")
    sulfur = tmp_path / "h2s.xyz"
    ase.io.write(sulfur, molecule("SH2"))
    water = _water_file(tmp_path)
    cases = [
        ([str(bad), "--unix", "x"], "could not read STRUCTURE"),
        ([str(tmp_path / "missing.xyz"), "--unix", "x"], "could not read STRUCTURE"),
        ([str(sulfur), "--unix", "x"], "STRUCTURE has elements the model lacks: S"),
        ([str(water), "--address", "localhost"], "--address must be HOST:PORT"),
        ([str(water), "--address", "localhost:http"], "--address must be HOST:PORT"),
        ([str(water), "--unix", socket_name("nobody"), "--timeout", "1"], "could not connect to /tmp/ipi_pyani_test"),
        ([str(water), "--unix", "x", "--timeout", "0"], "--timeout must be > 0"),
        ([str(water), "--unix", "x", "--model", "ani-3000"], "neither a known model"),
        ([str(water), "--unix", "x", "--skin", "-1"], "skin must be a finite length >= 0"),
    ]
    for argv, message in cases:
        assert ipi.main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
    # The command itself: one line and status 1 for an error, argparse's usage and 2 for bad arguments.
    run = subprocess.run(
        [sys.executable, "-m", "pyani.ipi", str(bad), "--unix", "x"], capture_output=True, text=True, timeout=START
    )
    assert run.returncode == 1 and run.stderr.startswith("pyani.ipi: error: could not read STRUCTURE")
    assert run.stderr.count("\n") == 1
    with pytest.raises(SystemExit) as usage:
        ipi.main([str(water)])
    assert usage.value.code == 2
    assert "one of the arguments --address --unix is required" in capsys.readouterr().err


IPI_INPUT = """<simulation verbosity="low">
  <output prefix="sim">
    <properties stride="1" filename="out">[step, potential]</properties>
    <trajectory filename="for" stride="1" format="xyz">forces</trajectory>
  </output>
  <total_steps>3</total_steps>
  <prng><seed>1</seed></prng>
  <ffsocket name="pyani" mode="unix" pbc="false"><address>{name}</address><latency>1e-3</latency></ffsocket>
  <system>
    <initialize nbeads="1">
      <file mode="xyz">init.xyz</file>
      <velocities mode="thermal" units="kelvin">300</velocities>
    </initialize>
    <forces><force forcefield="pyani"/></forces>
    <ensemble><temperature units="kelvin">300</temperature></ensemble>
    <motion mode="dynamics"><dynamics mode="nve"><timestep units="femtosecond">0.5</timestep></dynamics></motion>
  </system>
</simulation>
"""


def test_real_ipi_server_runs_md_with_the_client(tmp_path):
    """i-PI itself (the `ipi` package) drives 3 NVE steps of a water box through the client;
    its first energy and forces (atomic units, printed to ~6 digits) are compute's."""
    numbers, positions, cell = water_box(np.random.default_rng(5), 2)
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    ase.io.write(tmp_path / "start.extxyz", atoms)
    side = cell[0, 0]
    lines = [str(len(atoms)), f"# CELL(abcABC): {side} {side} {side} 90 90 90 cell{{angstrom}} positions{{angstrom}}"]
    lines += [f"{s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(atoms.get_chemical_symbols(), positions)]
    (tmp_path / "init.xyz").write_text("\n".join(lines) + "\n")
    name = socket_name("ipi")
    (tmp_path / "input.xml").write_text(IPI_INPUT.format(name=name))
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "i-pi"), "input.xml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = None
    try:
        proc = client(tmp_path / "start.extxyz", name, BACKENDS[0], "--timeout", str(START))
        _, err = proc.communicate(timeout=START)
        server.communicate(timeout=START)
    finally:
        for p in (proc, server):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
    assert proc.returncode == 0 and "served 4 force calls" in err, err
    want = get_model("ani-1ccx", BACKENDS[0]).compute(numbers, positions, cell)
    steps = np.loadtxt(tmp_path / "sim.out")
    assert steps[0, 0] == 0 and steps[0, 1] == pytest.approx(want.energy, abs=2e-6)
    frame = (tmp_path / "sim.for_0.xyz").read_text().splitlines()[2 : 2 + len(atoms)]
    forces = np.array([[float(v) for v in line.split()[1:]] for line in frame])  # Hartree/Bohr
    np.testing.assert_allclose(forces, want.forces * BOHR, rtol=1e-4, atol=1e-7)
