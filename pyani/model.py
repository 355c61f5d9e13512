"""Model: prepare -> AEV forward -> networks -> AEV backward -> Result.

Each stage has its own module: pyani/_system.py (validated input and neighbour pairs),
the backend's AEVComputer (pyani/_backend.py), pyani/_networks.py (ONNX Runtime),
pyani/_result.py (energy sums).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from . import _backend, _hessian, _inputs, _model_files, _precision, _result, _runtime, _system, _validate
from ._networks import Networks
from ._result import Result

__all__ = ["Model", "Result", "load"]

#: load(precision=...) -> dtype of the AEV and the networks.
PRECISIONS = {"float32": np.float32, "float64": np.float64}


def load(
    name_or_path: str | Path = "ani-1ccx",
    *,
    backend: str = "auto",
    device: str = "auto",
    n_threads: int = 0,
    skin: float = 0.0,
    precision: str = "float32",
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
        more than skin / 2 (and the atom count, cell and pbc are unchanged); results equal
        those of a fresh list. 0 = rebuild on every call.
    precision: "float32" (default, fastest) or "float64": the networks and the AEV in double
        (for Hessians, vibrations and exact comparisons; the weights are the file's float32
        values in double).
    """
    n_threads = _validate.count(n_threads, "n_threads")
    skin = _validate.length(skin, "skin")
    source, model = _model_files.locate(name_or_path)
    return Model(model, source, backend=backend, device=device, n_threads=n_threads, skin=skin, precision=precision)


class Model:
    """An ANI ensemble ready to compute energies, forces and stress. Use ``pyani.load``.

    Its stages, for those who need them one by one (tests, benchmarks): ``prepare``, then
    ``aev_computer.forward``, ``networks.plan(...).run`` and the forward pass's ``backward``.
    """

    def __init__(
        self,
        model: bytes | str,
        source: str,
        *,
        backend: str,
        device: str,
        n_threads: int,
        skin: float,
        precision: str = "float32",
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
        backend_name, kernels = _backend.resolve(backend)
        graph = model
        if precision == "float64":
            graph = _precision.float64_model(model if isinstance(model, bytes) else Path(model).read_bytes())
        session, metadata, used_device = _runtime.create_session(graph, device, n_threads, source)
        aev = metadata["aev"]
        _validate.aev_constants(aev, source)
        self.metadata = metadata
        self.source = source
        self.backend = backend_name
        self.device = used_device
        self.skin = skin
        self.elements = tuple(metadata["elements"])
        self.atomic_numbers = np.array(metadata["atomic_numbers"], dtype=np.int64)
        self.ensemble_size = int(metadata["ensemble_size"])
        self.self_energies = np.array(metadata["self_energies"], dtype=np.float64)
        self.cutoff = float(aev["radial_cutoff"])
        """Radial AEV cutoff (Angstrom): atoms further apart do not interact."""
        self.n_threads = n_threads
        """Threads for the kernels and ONNX Runtime (0 = all cores)."""
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        """NumPy dtype of the AEV and the networks."""
        self._load_arguments = {
            "backend": backend,
            "device": device,
            "n_threads": n_threads,
            "skin": skin,
            "precision": precision,
        }
        self._model = model

        self.neighbors = kernels.NeighborList(self.cutoff, skin, n_threads)
        """Neighbour list of single structures (keeps its Verlet list when skin > 0)."""
        self._batch_neighbors = kernels.NeighborList(self.cutoff, 0.0, n_threads)
        self.aev_computer = kernels.AEVComputer(aev, len(self.elements), n_threads, dtype=precision)
        """AEV forward and backward kernels; keeps their big buffers for the next call."""
        self.networks = Networks(graph, session, metadata, used_device, n_threads, source, self.dtype)
        """ONNX Runtime sessions of the networks."""
        self._species_of = np.full(max(self.atomic_numbers) + 1, -1, dtype=np.int32)
        self._species_of[self.atomic_numbers] = np.arange(len(self.elements), dtype=np.int32)

    @property
    def neighbor_list_builds(self) -> int:
        """How many neighbour lists were built (with a skin, fewer than calls)."""
        return self.neighbors.builds + self._batch_neighbors.builds

    def __repr__(self) -> str:
        return (
            f"<pyani.Model {self.source}: elements={''.join(self.elements)}, "
            f"members={self.ensemble_size}, backend={self.backend}, device={self.device}, precision={self.precision}>"
        )

    def __reduce__(self):
        # For multiprocessing: a shipped model reloads by name, any other from its ONNX bytes.
        shipped = _model_files.shipped_name(self._model)
        if shipped:
            return partial(load, **self._load_arguments), (shipped,)
        model = self._model if isinstance(self._model, bytes) else Path(self._model).read_bytes()
        return partial(Model, source=self.source, **self._load_arguments), (model,)

    def prepare(self, numbers, positions, cell=None, pbc=None) -> _system.System:
        """Validated input and its neighbour pairs (first stage of ``compute``; same arguments)."""
        return _system.prepare(numbers, positions, cell, pbc, self._species_of, self.neighbors, self._batch_neighbors)

    def ase(self, **kwargs):
        """An ASE calculator (eV, Angstrom) running this model: ``atoms.calc = model.ase()``."""
        from .ase import ANICalculator

        return ANICalculator(model=self, **kwargs)

    def hessian(self, numbers, positions, cell=None, pbc=None) -> np.ndarray:
        """Hessian [3N, 3N] (Hartree/Angstrom^2) of one structure: fourth-order central
        differences of the analytic forces, all displacements in one batch (pyani/_hessian.py)."""
        return _hessian.hessian(self, numbers, positions, cell, pbc)

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
        energy_mask=None,
        member_forces: bool = False,
    ) -> Result:
        """Energy (Hartree) and, on request, forces (Hartree/Angstrom), stress
        (Hartree/Angstrom^3) and atomic energies of one structure or a padded batch.

        numbers: atomic numbers or chemical symbols ("C", "Cl") [N], or [B, N] padded with -1;
            or an ase.Atoms (then positions, cell and pbc come from it and must be None); or
            structures of different sizes: a list of ase.Atoms, or one list of numbers and
            one of positions per structure. Such lists give energies [B], member energies
            [B, M] and stress [B, 3, 3], and per-atom fields as lists of [N_b, ...] arrays.
        positions: Angstrom, [N, 3] or [B, N, 3].
        cell: [3, 3] (rows are lattice vectors, Angstrom) or [B, 3, 3]; None for molecules.
        pbc: bool or [3] bools; defaults to True in all directions when a cell is given.
        energy_mask: bools [N] or [B, N], the atoms whose energies count: energy, member
            energies, forces and stress are then those of the sum of their atomic energies
            (a domain with ghost atoms, as in LAMMPS); atomic energies are given for all atoms.
        member_forces: also the forces of each ensemble member and their spread (one more
            network and backward pass per member).
        """
        numbers, positions, cell, pbc, lengths = _inputs.to_arrays(numbers, positions, cell, pbc)
        forces = _validate.flag(forces, "forces")
        stress = _validate.flag(stress, "stress")
        atomic = _validate.flag(atomic, "atomic")
        member_forces = _validate.flag(member_forces, "member_forces")
        system = self.prepare(numbers, positions, cell, pbc)
        counted = _validate.energy_mask(energy_mask, system.numbers.shape, system.batched, system.mask)
        volumes = system.volumes() if stress else None
        gradient = forces or stress  # of the member mean

        # member plans take the full AEV: so does the mean when they are wanted
        plan = self.networks.default if member_forces else self.networks.plan(system.counts)
        run = self.aev_computer.forward(
            system.species,
            system.pairs,
            system.vectors,
            system.rows,
            system.n_atoms,
            plan.columns,
            backward=gradient or member_forces,
        )
        if member_forces:  # before the mean's run, which may write its gradient over the AEV
            result_members = self._member_forces(system, run, counted)
        member_atomic, aev_gradient = plan.run(run.aev, system.counts, gradient)
        result = _result.energies(system, member_atomic, self.self_energies, atomic, counted)
        if gradient:
            f, virial = run.backward(
                _counted_rows(aev_gradient, system, counted), system.pair_bounds, forces=forces, virial=stress
            )
            if forces:
                result.forces = system.scatter(f)
            if stress:
                sigma = virial / volumes[:, None, None]
                result.stress = sigma if system.batched else sigma[0]
        if member_forces:
            result.member_forces, result.forces_std = result_members
        return _inputs.split(result, lengths)

    def _member_forces(self, system, run, counted) -> tuple[np.ndarray, np.ndarray]:
        """(forces of each member [(B,) M, N, 3], their standard deviation (ddof=1))."""
        members = []
        for m in range(self.ensemble_size):
            # a chunked run writes its gradient over the AEV: give it a copy
            _, grad = self.networks.member_plan(m).run(run.aev.copy(), system.counts, True)
            members.append(run.backward(_counted_rows(grad, system, counted), system.pair_bounds, forces=True)[0])
        stacked = np.stack(members)  # [M, A, 3]
        std = stacked.std(axis=0, ddof=1) if len(members) > 1 else np.zeros_like(stacked[0])
        per_structure = np.moveaxis(system.scatter(np.moveaxis(stacked, 0, 1)), -2, -3)  # M before N
        return per_structure, system.scatter(std)


def _counted_rows(aev_gradient: np.ndarray, system, counted) -> np.ndarray:
    """dE/dAEV of the counted atoms' energies only (energy_mask): each atom's energy depends on
    its own AEV row alone, so the other rows are zeroed (in place)."""
    if counted is not None:
        aev_gradient[system.rows[~counted]] = 0
    return aev_gradient
