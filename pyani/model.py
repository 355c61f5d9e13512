"""Model: validate -> neighbour list -> AEV -> ONNX ensemble -> backward -> Result."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from . import _backend, _inputs, _runtime, _validate

#: Models shipped inside the package (pyani/models/*.onnx), by canonical name.
SHIPPED = {"ani-1x": "ani-1x.onnx", "ani-1ccx": "ani-1ccx.onnx"}

#: From this many atoms on, networks run in a session whose threads do not spin and whose
#: first layers skip the AEV columns of elements absent from the system (see _bulk_session).
BULK_ATOMS = 256

#: Bulk sessions kept, one per set of elements present (the oldest goes first).
BULK_SESSIONS = 4

#: Atoms per ONNX Runtime call: bounds the memory of the network activations and keeps them
#: in cache (a 24,000-atom water box took 652 ms per call with 8192, 558 ms with 1024).
NETWORK_CHUNK = 1024

#: Coincident atoms make the AEV gradient 0/0; closer than this (Angstrom) is an input error.
MIN_DISTANCE = 1e-6


@dataclass
class Result:
    """What ``Model.compute`` returns. Hartree and Angstrom throughout.

    For a batch every field gains a leading structure axis; padding atoms get zeros. For
    structures of different sizes (a list of ase.Atoms, ragged lists) forces and
    atomic_energies are lists of [N_b, ...] arrays instead, one per structure.
    """

    energy: float | np.ndarray
    """Total energy (Hartree): mean over ensemble members, self energies included."""
    member_energies: np.ndarray
    """Energy of each ensemble member (Hartree), [M] or [B, M]."""
    energy_std: float | np.ndarray
    """Standard deviation of the member energies (Hartree, ddof=1 as in TorchANI)."""
    forces: np.ndarray | None = None
    """-dE/dpositions (Hartree/Angstrom), [N, 3] or [B, N, 3]; None unless forces=True."""
    atomic_energies: np.ndarray | None = None
    """Per-atom energies (Hartree), self energies included, summing to ``energy``."""
    stress: np.ndarray | None = None
    """(1/V) dE/d(strain) (Hartree/Angstrom^3), [3, 3] or [B, 3, 3]; None unless stress=True."""


def _canonical_name(name: str) -> str | None:
    key = name.lower().replace("_", "").replace("-", "")
    for canonical in (*SHIPPED, "ani-2x"):
        if key == canonical.replace("-", ""):
            return canonical
    return None


def load(
    name_or_path: str | Path = "ani-1ccx",
    *,
    backend: str = "auto",
    device: str = "auto",
    n_threads: int = 0,
    skin: float = 0.0,
) -> Model:
    """Load an ANI model.

    name_or_path: "ani-1x" or "ani-1ccx" (shipped), a pyani ``.onnx`` file, or a NeuroChem
        ``.info`` file (converted in memory; e.g. ANI-2x's ``ani-2x_8x.info``).
    backend: "auto" | "cpp" | "numba" (kernels for the neighbour list and AEV).
    device: "auto" | "cpu" | "cuda" (ONNX Runtime provider for the networks; "auto"
        takes CUDA when available, else the CPU).
    n_threads: threads for the kernels and ONNX Runtime; 0 = all cores.
    skin: Verlet skin (Angstrom) for molecular dynamics. With skin > 0 the neighbour list of
        a single structure is built with cutoff + skin and reused while no atom has moved
        more than skin / 2 (and numbers, cell and pbc are unchanged); results equal those of
        a fresh list. 0 = rebuild on every call.
    """
    n_threads = _validate.count(n_threads, "n_threads")
    skin = _validate.length(skin, "skin")
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"name_or_path must be a model name or a path, got {type(name_or_path).__name__}")
    backend_name, kernels = _backend.resolve(backend)
    text = str(name_or_path)
    canonical = _canonical_name(text) if isinstance(name_or_path, str) else None
    if canonical in SHIPPED:
        source = f"pyani model {canonical!r}"
        model = str(files("pyani") / "models" / SHIPPED[canonical])
    elif canonical == "ani-2x":
        raise ValueError(
            "name_or_path: ANI-2x is not shipped with pyani; pass the path to its NeuroChem "
            "file ani-2x_8x.info (converted on the fly) or to a converted .onnx file"
        )
    else:
        path = Path(name_or_path)
        if path.suffix not in (".onnx", ".info"):
            known = ", ".join(repr(n) for n in SHIPPED)
            raise ValueError(f"name_or_path: {text!r} is neither a known model ({known}) nor a .onnx / .info path")
        if not path.is_file():
            raise FileNotFoundError(f"name_or_path: no such file: {path}")
        source = str(path)
        if path.suffix == ".info":
            from .export import neurochem_to_onnx

            model = neurochem_to_onnx(path)
        else:
            model = str(path)
    session, metadata, used_device = _runtime.create_session(model, device, n_threads, source)
    return Model(session, metadata, backend_name, kernels, used_device, n_threads, source, model, skin)


class Model:
    """An ANI ensemble ready to compute energies, forces and stress. Use ``pyani.load``."""

    def __init__(self, session, metadata, backend_name, kernels, device, n_threads, source, model, skin=0.0):
        self._session = session
        self.skin = skin
        self.neighbor_list_builds = 0
        """How many neighbour lists were built (with a skin, fewer than calls)."""
        self._verlet = None  # (key, reference positions, pairs, shifts) of the last list
        self._verlet_lock = threading.Lock()
        self._model = model  # bytes or path: bulk sessions are made from it on first need
        self._bulk_sessions = {}  # elements present (species indices) -> (session, AEV columns)
        self._first_layer = None  # {initializer name: weights}, read on first need
        self._bulk_lock = threading.Lock()
        self._kernels = kernels
        self._n_threads = n_threads
        self.metadata = metadata
        self.source = source
        self.backend = backend_name
        self.device = device
        self.elements = tuple(metadata["elements"])
        self.atomic_numbers = np.array(metadata["atomic_numbers"], dtype=np.int64)
        self.ensemble_size = int(metadata["ensemble_size"])
        self.self_energies = np.array(metadata["self_energies"], dtype=np.float64)
        self.cutoff = float(metadata["aev"]["radial_cutoff"])
        """Radial AEV cutoff (Angstrom): atoms further apart do not interact."""
        if metadata["aev"].get("cutoff_fn", "cosine") != "cosine":
            raise ValueError(f"{source}: unsupported cutoff function {metadata['aev']['cutoff_fn']!r}")
        self._params = kernels.make_params(metadata["aev"], len(self.elements))
        # Big kernel buffers kept for the next call (C++ core): about 2.6 KB per atom of the
        # largest system computed (water), freed with the model.
        self._scratch = kernels.make_scratch()
        self._species_of = np.full(max(self.atomic_numbers) + 1, -1, dtype=np.int32)
        self._species_of[self.atomic_numbers] = np.arange(len(self.elements), dtype=np.int32)

    def _verlet_pairs(self, numbers, positions, cell, pbc):
        """Pairs and vectors within the cutoff, from a list with cutoff + skin that is kept
        while no atom moves more than skin / 2 (then no pair can have entered the cutoff)."""
        key = (numbers.tobytes(), cell.tobytes(), pbc.tobytes())
        with self._verlet_lock:
            cached = self._verlet
        fresh = (
            cached is None or cached[0] != key or np.linalg.norm(positions - cached[1], axis=1).max() > self.skin / 2
        )
        if fresh:
            pairs, shifts, _ = self._kernels.neighbor_list(
                positions, cell, pbc, self.cutoff + self.skin, self._n_threads
            )
            cached = (key, positions.copy(), pairs, shifts)
            with self._verlet_lock:
                self._verlet = cached
                self.neighbor_list_builds += 1
        _, _, pairs, shifts = cached
        vectors = positions[pairs[:, 1]] - positions[pairs[:, 0]] + shifts @ cell
        inside = np.einsum("ij,ij->i", vectors, vectors) < self.cutoff**2
        return pairs[inside], vectors[inside]

    def _networks(self, session, aev: np.ndarray, counts: np.ndarray, want_gradient: bool):
        """Atomic energies [M, A] and dE/dAEV [A, D] (rows grouped by element), in chunks of
        at most NETWORK_CHUNK atoms so that the activations stay small for any system size.
        Several chunks: the gradient overwrites `aev` chunk by chunk (no second array of
        that size; 0.5 GB for a million waters)."""
        flag = np.array(want_gradient)
        if len(aev) <= NETWORK_CHUNK:
            return session.run(None, {"aev": aev, "counts": counts, "with_gradient": flag})
        energies = np.empty((self.ensemble_size, len(aev)), dtype=np.float32)
        grad = aev if want_gradient else np.empty((0, aev.shape[1]), dtype=np.float32)
        bounds = np.concatenate([[0], np.cumsum(counts)])  # element e owns rows bounds[e]:bounds[e+1]
        for start in range(0, len(aev), NETWORK_CHUNK):
            stop = min(start + NETWORK_CHUNK, len(aev))
            chunk_counts = np.clip(np.minimum(bounds[1:], stop) - np.maximum(bounds[:-1], start), 0, None)
            e, g = session.run(None, {"aev": aev[start:stop], "counts": chunk_counts, "with_gradient": flag})
            energies[:, start:stop] = e
            if want_gradient:
                grad[start:stop] = g
        return energies, grad

    def _session_for(self, counts: np.ndarray):
        """(session, AEV columns or None for all) for atoms with these element counts.

        Small inputs take the session with spinning threads (latency). Big systems take a
        session whose threads do not spin (they would fight the OpenMP kernels) and, when
        some elements are absent, whose first layers keep only the AEV columns that can be
        non-zero: for water, 128 of ANI-1x's 384, a third of the first layers' work."""
        if counts.sum() < BULK_ATOMS or self.device != "cpu":
            return self._session, None
        present = tuple(int(e) for e in np.flatnonzero(counts))
        with self._bulk_lock:
            if present not in self._bulk_sessions:
                self._bulk_sessions[present] = self._bulk_session(present)
                if len(self._bulk_sessions) > BULK_SESSIONS:
                    del self._bulk_sessions[next(iter(self._bulk_sessions))]
            return self._bulk_sessions[present]

    def _bulk_session(self, present: tuple[int, ...]):
        if len(present) == len(self.elements):
            columns, weights = None, None
        else:
            columns = self._aev_columns(present)
            if self._first_layer is None:
                names = self.metadata["first_layer_weights"]
                self._first_layer = _runtime.read_initializers(self._model, names)
            weights = {name: np.ascontiguousarray(w[columns]) for name, w in self._first_layer.items()}
        session = _runtime.create_session(
            self._model, self.device, self._n_threads, self.source, spinning=False, initializers=weights
        )[0]
        return session, columns

    def _aev_columns(self, present: tuple[int, ...]) -> np.ndarray:
        """Columns of the AEV layout (cpp/aev.hpp) that only elements in `present` (species
        indices) fill: their radial blocks and the angular blocks of their pairs."""
        aev = self.metadata["aev"]
        n_species, n_r = len(self.elements), len(aev["shf_r"])
        n_angular = len(aev["shf_a"]) * len(aev["shf_z"])
        blocks = [np.arange(s * n_r, (s + 1) * n_r) for s in present]
        pair = 0
        for a in range(n_species):
            for b in range(a, n_species):
                if a in present and b in present:
                    start = n_species * n_r + pair * n_angular
                    blocks.append(np.arange(start, start + n_angular))
                pair += 1
        return np.concatenate(blocks).astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"<pyani.Model {self.source}: elements={''.join(self.elements)}, "
            f"members={self.ensemble_size}, backend={self.backend}, device={self.device}>"
        )

    def ase(self, **kwargs):
        """An ASE calculator (eV, Angstrom) running this model: ``atoms.calc = model.ase()``."""
        from .ase import ANICalculator

        return ANICalculator(model=self, **kwargs)

    def compute(
        self,
        numbers,
        positions=None,
        cell=None,
        pbc=None,
        *,
        forces: bool = True,
        stress: bool = False,
        atomic: bool = False,
    ) -> Result:
        """Energy (Hartree) and, on request, forces (Hartree/Angstrom), stress
        (Hartree/Angstrom^3) and atomic energies of one structure or a padded batch.

        numbers: atomic numbers or chemical symbols ("C", "Cl") [N], or [B, N] padded with -1;
            or an ase.Atoms (then positions, cell and pbc come from it and must be None); or
            structures of different sizes: a list of ase.Atoms, or one list of numbers and
            one of positions per structure. Such lists give energies [B], member energies
            [B, M] and stress [B, 3, 3], and forces / atomic energies as lists of [N_b, ...].
        positions: Angstrom, [N, 3] or [B, N, 3].
        cell: [3, 3] (rows are lattice vectors, Angstrom) or [B, 3, 3]; None for molecules.
        pbc: bool or [3] bools; defaults to True in all directions when a cell is given.
        """
        numbers, positions, cell, pbc, lengths = _inputs.to_arrays(numbers, positions, cell, pbc)
        forces = _validate.flag(forces, "forces")
        stress = _validate.flag(stress, "stress")
        atomic = _validate.flag(atomic, "atomic")
        nums, batched = _validate.numbers(numbers, self._species_of)
        mask = nums >= 0
        pos = _validate.positions(positions, nums.shape, batched, mask)
        cells, pbc_ = _validate.cell_and_pbc(cell, pbc, nums.shape[0], batched)
        atom_counts = mask.sum(axis=1)
        _validate.density(atom_counts, cells, pbc_)
        _validate.image_counts(pos, mask, cells, pbc_)
        volumes = None
        if stress:
            if not pbc_.any():
                raise ValueError("stress=True needs a periodic system (a cell and pbc)")
            volumes = np.abs(np.linalg.det(cells))
            if np.any(volumes < 1e-9):
                raise ValueError("stress=True needs a cell with non-zero volume")

        k = self._kernels
        species = self._species_of[nums[mask]]
        n_atoms = species.size
        pairs, vectors, pair_counts = [], [], []
        offset = 0
        for b in range(nums.shape[0]):
            if self.skin > 0 and nums.shape[0] == 1:
                p, v = self._verlet_pairs(nums[0], pos[0][mask[0]], cells[0], pbc_)
            else:
                p, _, v = k.neighbor_list(pos[b][mask[b]], cells[b], pbc_, self.cutoff, self._n_threads)
                self.neighbor_list_builds += 1
            pairs.append(p + offset if offset else p)
            vectors.append(v)
            pair_counts.append(len(p))
            offset += atom_counts[b]
        pairs = np.concatenate(pairs) if len(pairs) > 1 else pairs[0]
        vectors = np.concatenate(vectors) if len(vectors) > 1 else vectors[0]
        if len(vectors):
            d2 = np.einsum("ij,ij->i", vectors, vectors)
            if d2.min() < MIN_DISTANCE**2:
                i, j = pairs[np.argmin(d2)]
                raise ValueError(f"positions: atoms {i} and {j} (or periodic images) are at the same place")

        # The networks want atoms grouped by element: row of atom i in the AEV matrix.
        order = np.argsort(species, kind="stable")
        rows = np.empty(n_atoms, dtype=np.int64)
        rows[order] = np.arange(n_atoms)
        counts = np.bincount(species, minlength=len(self.elements)).astype(np.int64)
        session, columns = self._session_for(counts)
        aev = k.aev(
            self._params, species, pairs, vectors, rows, n_atoms, self._n_threads, columns, scratch=self._scratch
        )
        want_gradient = forces or stress
        member_atomic, aev_grad = self._networks(session, aev, counts, want_gradient)
        del aev  # up to 1.5 KB per atom: free (when not reused for the gradient) before the backward

        # Float64 from here on: sums over many atoms keep their digits.
        member_atomic = member_atomic[:, rows].astype(np.float64)  # [M, A], atom order
        self_energy = self.self_energies[species]
        if len(atom_counts) == 1:
            members = member_atomic.sum(axis=1)[None, :] + self_energy.sum()  # [1, M]
        else:
            starts = np.concatenate([[0], np.cumsum(atom_counts)[:-1]])
            members = np.add.reduceat(member_atomic, starts, axis=1).T  # [B, M]
            members += np.add.reduceat(self_energy, starts)[:, None]
        # mean and std written out: numpy's own cost tens of microseconds per small molecule
        n_members = self.ensemble_size
        energy = members.sum(axis=1) / n_members
        deviation = members - energy[:, None]
        std = np.sqrt((deviation * deviation).sum(axis=1) / max(n_members - 1, 1))

        def scatter(values: np.ndarray) -> np.ndarray:
            out = np.zeros((*nums.shape, *values.shape[1:]))
            out[mask] = values
            return out if batched else out[0]

        result = Result(
            energy=energy if batched else float(energy[0]),
            member_energies=members if batched else members[0],
            energy_std=std if batched else float(std[0]),
        )
        if atomic:
            result.atomic_energies = scatter(member_atomic.mean(axis=0) + self_energy)
        if want_gradient:
            grad_vectors = k.aev_backward(
                self._params, species, pairs, vectors, rows, aev_grad, self._n_threads, columns, scratch=self._scratch
            )
            if forces:
                result.forces = scatter(k.pair_forces(n_atoms, pairs, grad_vectors))
            if stress:
                bounds = np.cumsum([0, *pair_counts])
                virial = np.stack([vectors[s:e].T @ grad_vectors[s:e] for s, e in zip(bounds[:-1], bounds[1:])])
                sigma = virial / volumes[:, None, None]
                result.stress = sigma if batched else sigma[0]
        return _inputs.split(result, lengths)
