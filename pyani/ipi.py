"""i-PI client: serve a pyani model to an i-PI server (or ASE's SocketIOCalculator).

    python -m pyani.ipi water.xyz --unix water --model ani-1ccx
    python -m pyani.ipi water.xyz --address localhost:31415

The protocol sends positions and cell only, so the elements (and which directions are
periodic) come from STRUCTURE, any file ``ase.io.read`` understands. The server's atom
count must match it. Replies carry energy, forces and virial (-V * stress, zero for a
non-periodic STRUCTURE) in atomic units, and as extras the JSON
``{"energy_std": Ha, "member_energies": [Ha, ...]}`` (the ensemble's spread).

Whatever goes wrong (no server, a server that sends garbage, the wrong atom count or
nothing at all) ends the client with one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

import numpy as np

from .units import BOHR

HEADER = 12  # bytes: an ASCII message name padded with spaces
MESSAGES = {"STATUS", "INIT", "POSDATA", "GETFORCE", "EXIT"}

#: Once a message has begun, the rest must come within this many seconds (or --timeout if
#: shorter): a server that stops half-way is broken (1 million atoms are 24 MB, well under a second on a network).
MESSAGE_TIMEOUT = 10.0

#: Largest INIT payload accepted (bytes); i-PI sends a short string.
MAX_INIT_BYTES = 1 << 20


class ProtocolError(Exception):
    """The server broke the i-PI protocol, or the connection failed."""


class Closed(ProtocolError):
    """The server closed the connection between messages (the end of a run)."""


class _Connection:
    """Exact-size reads with timeouts on a connected socket."""

    def __init__(self, sock: socket.socket, idle_timeout: float):
        self.sock = sock
        self.idle_timeout = idle_timeout
        self.message_timeout = min(MESSAGE_TIMEOUT, idle_timeout)

    def _read(self, n: int, timeout: float, what: str) -> bytes:
        chunks, left = [], n
        deadline = time.monotonic() + timeout
        while left:
            self.sock.settimeout(max(deadline - time.monotonic(), 1e-3))
            try:
                chunk = self.sock.recv(min(left, 1 << 20))
            except socket.timeout:
                raise ProtocolError(f"timed out after {timeout:g} s waiting for {what}") from None
            except OSError as err:
                raise ProtocolError(f"connection failed while reading {what}: {err}") from None
            if not chunk:
                if left == n and what == "a message":
                    raise Closed("the server closed the connection")
                raise ProtocolError(f"the server closed the connection in the middle of {what}")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def message(self) -> str:
        """The next message name; waits up to idle_timeout for it to start."""
        first = self._read(1, self.idle_timeout, "a message")
        raw = first + self._read(HEADER - 1, self.message_timeout, "a message header")
        name = raw.decode("ascii", errors="replace").strip()
        if name not in MESSAGES:
            raise ProtocolError(f"the server sent {raw!r}, not an i-PI message ({', '.join(sorted(MESSAGES))})")
        return name

    def array(self, dtype, count: int, what: str) -> np.ndarray:
        dtype = np.dtype(dtype).newbyteorder("=")
        data = self._read(dtype.itemsize * count, self.message_timeout, what)
        return np.frombuffer(data, dtype=dtype).copy()

    def send(self, *parts) -> None:
        payload = b"".join(p.encode("ascii").ljust(HEADER) if isinstance(p, str) else p.tobytes() for p in parts)
        try:
            self.sock.settimeout(self.message_timeout)
            self.sock.sendall(payload)
        except OSError as err:
            raise ProtocolError(f"could not send to the server: {err}") from None


def connect(address: str | None, unix: str | None, timeout: float) -> socket.socket:
    """Connect to an i-PI server at HOST:PORT or the UNIX socket /tmp/ipi_NAME (or a path
    starting with "/"), retrying until timeout seconds have passed (servers start late)."""
    if unix is not None:
        target = unix if unix.startswith("/") else f"/tmp/ipi_{unix}"
        family, where = socket.AF_UNIX, target
    else:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ProtocolError(f"--address must be HOST:PORT, got {address!r}")
        family, where, target = socket.AF_INET, (host, int(port)), address
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(max(min(deadline - time.monotonic(), 5.0), 0.1))
        try:
            sock.connect(where)
            return sock
        except OSError as err:
            sock.close()
            if time.monotonic() >= deadline:
                raise ProtocolError(f"could not connect to {target} within {timeout:g} s: {err}") from None
            time.sleep(0.1)


def serve(conn: _Connection, model, numbers: np.ndarray, pbc: np.ndarray) -> int:
    """Answer the server until it says EXIT or closes; returns how many forces were sent."""
    periodic = bool(pbc.any())
    state, reply, served = "READY", None, 0
    while True:
        try:
            name = conn.message()
        except Closed:
            return served
        if name == "EXIT":
            return served
        if name == "STATUS":
            conn.send(state)
        elif name == "INIT":
            _bead, length = conn.array(np.int32, 2, "the INIT message")
            if not 0 <= length <= MAX_INIT_BYTES:
                raise ProtocolError(f"the server's INIT message announces {length} bytes")
            conn.array(np.uint8, int(length), "the INIT message")
            state = "READY"
        elif name == "POSDATA":
            if state != "READY":
                raise ProtocolError("the server sent POSDATA before fetching the previous forces (GETFORCE)")
            reply = _compute(conn, model, numbers, pbc, periodic)
            state = "HAVEDATA"
        else:  # GETFORCE
            if state != "HAVEDATA":
                raise ProtocolError("the server asked for forces (GETFORCE) before sending positions (POSDATA)")
            conn.send(*reply)
            state, reply = "READY", None
            served += 1


def _compute(conn: _Connection, model, numbers, pbc, periodic):
    """Read POSDATA, compute, and return the FORCEREADY reply's parts (atomic units)."""
    cell = conn.array(np.float64, 9, "the cell").reshape(3, 3).T * BOHR  # sent with vectors as columns
    conn.array(np.float64, 9, "the inverse cell")
    (n_atoms,) = conn.array(np.int32, 1, "the atom count")
    if n_atoms != len(numbers):
        raise ProtocolError(f"the server sent {n_atoms} atoms but STRUCTURE has {len(numbers)}")
    positions = conn.array(np.float64, 3 * len(numbers), "the positions").reshape(-1, 3) * BOHR
    if not (np.all(np.isfinite(cell)) and np.all(np.isfinite(positions))):
        raise ProtocolError("the server sent positions or a cell that are not finite")
    if periodic:
        result = model.compute(numbers, positions, cell, pbc, stress=True)
        virial = -abs(np.linalg.det(cell)) * result.stress  # Hartree
    else:
        result = model.compute(numbers, positions)
        virial = np.zeros((3, 3))
    extras = json.dumps(
        {"energy_std": float(result.energy_std), "member_energies": [float(e) for e in result.member_energies]}
    ).encode()
    return (
        "FORCEREADY",
        np.array([result.energy], dtype=np.float64),
        np.array([len(numbers)], dtype=np.int32),
        np.ascontiguousarray(result.forces * BOHR, dtype=np.float64),  # Hartree/Bohr
        np.ascontiguousarray(virial.T, dtype=np.float64),
        np.array([len(extras)], dtype=np.int32),
        np.frombuffer(extras, dtype=np.uint8),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyani.ipi",
        description="Serve a pyani ANI model to an i-PI server (i-PI socket protocol).",
    )
    parser.add_argument("structure", metavar="STRUCTURE", help="file with the elements, in ase.io.read's formats")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--address", metavar="HOST:PORT", help="TCP address of the server")
    where.add_argument("--unix", metavar="NAME", help="UNIX socket /tmp/ipi_NAME (or a path starting with /)")
    parser.add_argument("--model", default="ani-1ccx", help="model name or .onnx/.info file (default: ani-1ccx)")
    parser.add_argument("--backend", default="auto", choices=("auto", "cpp", "numba"), help="kernels (default: auto)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="networks' device")
    parser.add_argument("--threads", type=int, default=0, help="threads (default 0: all cores)")
    parser.add_argument(
        "--skin", type=float, default=0.0, help="Verlet skin in Angstrom for MD (e.g. 1.0; default 0: no reuse)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the server to connect or to send its next message (default: 600)",
    )
    return parser


def main(argv=None) -> int:
    """Run the client (see the module docstring); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except (ProtocolError, OSError, ValueError, TypeError) as err:
        print(f"pyani.ipi: error: {err}", file=sys.stderr)
        return 1


def _run(args) -> int:
    import ase.io

    import pyani

    if not args.timeout > 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}")
    try:
        atoms = ase.io.read(args.structure, index=0)
    except Exception as err:  # ase.io raises many kinds; all mean the same to the user
        raise ValueError(f"could not read STRUCTURE {args.structure!r}: {err}") from None
    numbers = np.array(atoms.numbers, dtype=np.int64)
    model = pyani.load(args.model, backend=args.backend, device=args.device, n_threads=args.threads, skin=args.skin)
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(model.elements))
    if unknown:
        raise ValueError(f"STRUCTURE has elements the model lacks: {', '.join(unknown)}; it knows {model.elements}")
    with connect(args.address, args.unix, args.timeout) as sock:
        served = serve(_Connection(sock, args.timeout), model, numbers, np.array(atoms.pbc, dtype=bool))
    print(f"pyani.ipi: served {served} force calls; the server ended the run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
