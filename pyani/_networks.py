"""The networks: ONNX Runtime sessions of one model, chosen per system, run in chunks.

Graph interface: pyani/export/onnx_graph.py. Atomic energies come out per member
[M, A] (Hartree, self energies not included), dE/dAEV of the member mean [A, D] on request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from . import _runtime
from ._layout import AEVLayout

#: From this many atoms on, networks run in a session whose threads do not spin and whose
#: first layers skip the AEV columns of elements absent from the system.
BULK_ATOMS = 256

#: Bulk sessions kept, one per set of elements present (the oldest goes first).
BULK_SESSIONS = 4

#: Atoms per ONNX Runtime call: bounds the memory of the network activations and keeps them
#: in cache (a 24,000-atom water box took 652 ms per call with 8192, 558 ms with 1024).
NETWORK_CHUNK = 1024


@dataclass(frozen=True)
class Plan:
    """A session and the AEV columns it takes (None: all of them)."""

    session: object
    columns: np.ndarray | None

    def run(self, aev: np.ndarray, counts: np.ndarray, gradient: bool):
        """(atomic energies [M, A], dE/dAEV [A, D] or [0, D]; float32 or float64 as the AEV) of AEV rows
        grouped by element (counts [n_elements] atoms each), in chunks of NETWORK_CHUNK
        atoms. With several chunks the gradient is written over `aev`, chunk by chunk: no
        second array of that size (0.5 GB for a million waters)."""
        flag = np.array(gradient)
        if len(aev) <= NETWORK_CHUNK:
            return self.session.run(None, {"aev": aev, "counts": counts, "with_gradient": flag})
        energies = None
        grad = aev if gradient else np.empty((0, aev.shape[1]), dtype=aev.dtype)
        bounds = np.concatenate([[0], np.cumsum(counts)])  # element e owns rows bounds[e]:bounds[e+1]
        for start in range(0, len(aev), NETWORK_CHUNK):
            stop = min(start + NETWORK_CHUNK, len(aev))
            chunk_counts = np.clip(np.minimum(bounds[1:], stop) - np.maximum(bounds[:-1], start), 0, None)
            e, g = self.session.run(None, {"aev": aev[start:stop], "counts": chunk_counts, "with_gradient": flag})
            if energies is None:
                energies = np.empty((len(e), len(aev)), dtype=e.dtype)
            energies[:, start:stop] = e
            if gradient:
                grad[start:stop] = g
        return energies, grad


class Networks:
    """The sessions of one model file: the default one (spinning threads, lowest latency) and
    bulk ones for big systems, whose threads do not spin (they would fight the OpenMP
    kernels) and whose first layers keep only the AEV columns that the elements present
    can fill: for water, 128 of ANI-1x's 384, a third of the first layers' work."""

    def __init__(
        self, model: bytes | str, session, metadata: dict, device: str, n_threads: int, source: str, dtype=np.float32
    ):
        self.model = model  # bytes or path: bulk sessions are made from it on first need
        self.default = Plan(session, None)
        self.metadata = metadata
        self.device = device
        self.dtype = np.dtype(dtype)  # of the AEV and the networks
        self.layout = AEVLayout.of(metadata["aev"], len(metadata["elements"]))
        self._n_threads = n_threads
        self._source = source
        self._bulk: dict[tuple[int, ...], Plan] = {}  # species indices present -> plan
        self._first_layer = None  # {initializer name: weights}, read on first need
        self._output_layer = None  # likewise, for the member plans
        self._members: dict[int, Plan] = {}
        self._lock = threading.Lock()

    def member_plan(self, member: int) -> Plan:
        """A plan whose dE/dAEV is that of one member's energy, not of the member mean (its
        atomic energies are all members' as usual): the backward pass of the graph starts
        from ``<element>_wout_mean`` ([M, 1, H]: output weights / M, or output weights in
        unscaled graphs, which divide by M next), which this session replaces by M times
        member `member`'s output weights and zeros for the others (onnx_graph.py)."""
        with self._lock:
            if member not in self._members:
                names = [f"{el}_wout_mean" for el in self.metadata["elements"]]
                if self._output_layer is None:
                    self._output_layer = _runtime.read_initializers(self.model, names)
                n_members = int(self.metadata["ensemble_size"])
                weights = {}
                for name, w in self._output_layer.items():
                    one = np.zeros_like(w, dtype=self.dtype)
                    one[member] = w[member] * n_members
                    weights[name] = one
                session = _runtime.create_session(
                    self.model, self.device, self._n_threads, self._source, initializers=weights
                )[0]
                self._members[member] = Plan(session, None)
            return self._members[member]

    @property
    def bulk_plans(self) -> dict[tuple[int, ...], Plan]:
        """The bulk plans made so far, by species indices present, oldest first."""
        with self._lock:
            return dict(self._bulk)

    def plan(self, counts: np.ndarray) -> Plan:
        """The plan for atoms with these counts per element."""
        if counts.sum() < BULK_ATOMS or self.device != "cpu":
            return self.default
        present = tuple(int(e) for e in np.flatnonzero(counts))
        with self._lock:
            if present not in self._bulk:
                self._bulk[present] = self._bulk_plan(present)
                if len(self._bulk) > BULK_SESSIONS:
                    del self._bulk[next(iter(self._bulk))]
            return self._bulk[present]

    def _bulk_plan(self, present: tuple[int, ...]) -> Plan:
        if len(present) == self.layout.n_species:
            columns, weights = None, None
        else:
            columns = self.layout.columns(present)
            if self._first_layer is None:
                names = self.metadata["first_layer_weights"]
                self._first_layer = _runtime.read_initializers(self.model, names)
            weights = {name: np.ascontiguousarray(w[columns], self.dtype) for name, w in self._first_layer.items()}
        session = _runtime.create_session(
            self.model, self.device, self._n_threads, self._source, spinning=False, initializers=weights
        )[0]
        return Plan(session, columns)
