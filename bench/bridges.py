"""What the bridges cost: one molecular-dynamics step through ASE (and through i-PI) against
the raw ``Model.compute`` it wraps, with TorchANI's own ASE calculator beside it.

    python bench/bridges.py [--threads N] [--no-ipi] [--nve] [--json PATH]

Systems: aspirin in vacuum (21 atoms) and a 1536-atom water box (tests/oracles.py
water_box(rng, 8)). Figures are medians after warm-up (ms per call or step); the ANI-1ccx
energy and forces every time. "ASE step" is ``VelocityVerlet.step()`` through
ANICalculator; "i-PI step" the same with ASE's SocketIOCalculator talking to
``python -m pyani.ipi`` over a UNIX socket. TorchANI runs in its own process with the
reference Python ($REF_PYTHON from /work/shared/tools/setup_reference_env.sh) when that is
set: float32, cell list for the box, its ``model.ase()`` calculator.

--nve runs the NVE check of 64 waters (FIRE-relaxed to 0.05 eV/A, 300 K velocities from three
seeds, 1 ps of Langevin at 300 K, then 2 ps of velocity Verlet at 0.5 fs; --nve-timestep,
--nve-ps, --nve-equilibrate-ps) and reports the drift of the total energy in eV/atom/ps
(least-squares slope) per seed, with TorchANI's calculator through the same protocol when it
runs; minutes.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # oracles.water_box: the box the tests use


def timed(fn, budget=1.0, warmup=3, minimum=5):
    """Median seconds of fn() after warm-up, calls filling ~budget seconds."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < minimum or time.perf_counter() - start < budget:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def systems():
    from oracles import water_box

    with np.load(HERE.parent / "tests" / "data" / "ani-1ccx" / "aspirin.npz") as data:
        aspirin = (data["numbers"], data["positions"], None)
    return {"aspirin (21 atoms)": aspirin, "water box (1536 atoms)": water_box(np.random.default_rng(0), 8)}


def make_atoms(numbers, positions, cell, seed=1):
    from ase import Atoms
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=cell is not None)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    return atoms


def md_step_time(atoms, budget):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    return timed(dynamics.step, budget)


def bridge_overhead(atoms, model, budget):
    """Median seconds a VelocityVerlet step spends outside model.compute: the bridge's own
    cost (and the integrator's), measured step by step so that the noise of the compute
    itself on a busy machine cancels."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    inner = []
    compute = model.compute

    def timed_compute(*args, **kwargs):
        t = time.perf_counter()
        result = compute(*args, **kwargs)
        inner.append(time.perf_counter() - t)
        return result

    model.compute = timed_compute
    try:
        dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
        outside = []
        for _ in range(3):
            dynamics.step()
        start = time.perf_counter()
        while len(outside) < 20 or time.perf_counter() - start < budget:
            inner.clear()
            t = time.perf_counter()
            dynamics.step()
            outside.append(time.perf_counter() - t - sum(inner))
    finally:
        del model.compute
    return float(np.median(outside))


def pyani_figures(threads, budget, ipi):
    import ase.io
    from ase.calculators.socketio import SocketIOCalculator

    import pyani

    model = pyani.load("ani-1ccx", n_threads=threads)
    out = {}
    for name, (numbers, positions, cell) in systems().items():
        row = {"compute": timed(lambda: model.compute(numbers, positions, cell), budget)}  # noqa: B023
        atoms = make_atoms(numbers, positions, cell)
        atoms.calc = model.ase()
        row["ase_step"] = md_step_time(atoms, budget)
        row["bridge"] = bridge_overhead(atoms, model, budget)
        if ipi:
            atoms = make_atoms(numbers, positions, cell)
            with tempfile.TemporaryDirectory() as tmp:
                structure = Path(tmp) / "start.extxyz"
                ase.io.write(structure, atoms)
                socket_name = f"pyani_bench_{os.getpid()}"
                command = [sys.executable, "-m", "pyani.ipi", str(structure), "--unix", socket_name]
                client = subprocess.Popen([*command, "--threads", str(threads)], stderr=subprocess.DEVNULL)
                try:
                    with SocketIOCalculator(unixsocket=socket_name, timeout=120) as calc:
                        atoms.calc = calc
                        row["ipi_step"] = md_step_time(atoms, budget)
                finally:
                    client.wait(timeout=60)
        out[name] = row
    return out


def torchani_figures(threads, budget, nve):
    """Run this file under $REF_PYTHON with --torchani-worker; None when not set up."""
    python = os.environ.get("REF_PYTHON")
    if not python:
        print('TorchANI: $REF_PYTHON not set (eval "$(bash /work/shared/tools/setup_reference_env.sh)"); skipped\n')
        return None
    run = subprocess.run(
        [python, __file__, "--torchani-worker", "--threads", str(threads), "--budget", str(budget)]
        + (
            [
                "--nve",
                "--nve-timestep",
                str(nve[0]),
                "--nve-ps",
                str(nve[1]),
                "--nve-equilibrate-ps",
                str(nve[3]),
                "--nve-seeds",
                str(len(nve[2])),
            ]
            if nve
            else []
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        print(f"TorchANI worker failed:\n{run.stderr[-2000:]}")
        return None
    return json.loads(run.stdout.strip().splitlines()[-1])


def torchani_worker(threads, budget, nve):
    """Inside the reference Python (torch, torchani, ase; no pyani)."""
    import torch
    import torchani

    torch.set_num_threads(threads or os.cpu_count())
    model = torchani.neurochem.load_model_from_name("ani1ccx")
    out = {}
    for name, (numbers, positions, cell) in systems().items():
        if cell is not None:
            model.neighborlist = torchani.neighbors.CellList()
        species = torch.tensor(numbers[None])
        torch_cell = None if cell is None else torch.tensor(cell, dtype=torch.float32)
        pbc = None if cell is None else torch.tensor([True, True, True])

        def compute(species=species, torch_cell=torch_cell, pbc=pbc, positions=positions):
            coords = torch.tensor(positions[None], dtype=torch.float32, requires_grad=True)
            energy = model((species, coords), torch_cell, pbc).energies
            return -torch.autograd.grad(energy.sum(), coords)[0]

        row = {"compute": timed(compute, budget)}
        atoms = make_atoms(numbers, positions, cell)
        atoms.calc = model.ase()
        row["ase_step"] = md_step_time(atoms, budget)
        out[name] = row
    if nve:
        model.neighborlist = torchani.neighbors.CellList()
        out["nve"] = nve_drift(model.ase(), *nve)
    print(json.dumps(out))


def nve_drift(calculator, timestep_fs=0.5, picoseconds=2.0, seeds=(1, 2, 3), equilibrate_ps=1.0):
    """NVE of 64 waters with any ASE calculator, the way an MD run is checked: FIRE-relaxed,
    300 K velocities, ``equilibrate_ps`` of Langevin at 300 K (same time step), then
    ``picoseconds`` of velocity Verlet. Per velocity seed: the drift of the total energy
    (least-squares slope, eV/atom/ps), its largest deviation (eV/atom), the final temperature,
    and for the step that changed the total energy most, the potential energy's change
    against the work of the forces along that step (41-point Simpson): equal when the forces
    are the energy's gradient, so that what is left is the integrator's error."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import FIRE
    from oracles import water_box

    numbers, positions, cell = water_box(np.random.default_rng(0), 4)
    atoms = make_atoms(numbers, positions, cell)
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    atoms.calc = calculator
    FIRE(atoms, logfile=None).run(fmax=0.05, steps=1000)
    relaxed = atoms.positions.copy()
    dt = timestep_fs * units.fs
    runs, seconds, steps = [], 0.0, round(picoseconds * 1000 / timestep_fs)
    for seed in seeds:
        atoms = make_atoms(numbers, relaxed, cell, seed)
        atoms.calc = calculator
        # Without it the kinetic energy, all in the rigid-body and bending motions at the
        # start, spreads into the O-H stretches during the run, whose Verlet energy error is
        # largest: the total energy then moves by ~1e-5 eV/atom/ps either way (TorchANI alike).
        rng = np.random.default_rng(seed)
        Langevin(atoms, timestep=dt, temperature_K=300, friction=0.01 / units.fs, rng=rng).run(
            round(equilibrate_ps * 1000 / timestep_fs)
        )
        dynamics = VelocityVerlet(atoms, timestep=dt)
        energies = np.empty(steps + 1)
        energies[0] = atoms.get_total_energy()
        worst, before = (0.0, None, None), atoms.positions.copy()
        start = time.perf_counter()
        for i in range(steps):
            dynamics.step()
            energies[i + 1] = atoms.get_total_energy()
            if abs(energies[i + 1] - energies[i]) > worst[0]:
                worst = (abs(energies[i + 1] - energies[i]), before, atoms.positions.copy())
            before = atoms.positions.copy()
        seconds += time.perf_counter() - start
        per_atom = energies / len(atoms)
        times = np.arange(steps + 1) * timestep_fs * 1e-3
        runs.append(
            {
                "seed": seed,
                "drift_ev_per_atom_ps": float(np.polyfit(times, per_atom, 1)[0]),
                "max_deviation_ev_per_atom": float(np.abs(per_atom - per_atom[0]).max()),
                "final_temperature_k": float(atoms.get_temperature()),
                "worst_step_ev": worst[0],
                **dict(zip(("worst_step_du_ev", "worst_step_work_ev"), step_work(atoms, *worst[1:]))),
            }
        )
    return {
        "runs": runs,
        "largest_drift_ev_per_atom_ps": max(abs(r["drift_ev_per_atom_ps"]) for r in runs),
        "seconds_per_step": seconds / (steps * len(seeds)),
    }


def step_work(atoms, start, end, points=41):
    """(potential energy change, -integral of F.dx) in eV along the straight path start -> end."""
    from scipy.integrate import simpson

    path = np.linspace(0.0, 1.0, points)
    energies, work = [], []
    for t in path:
        atoms.positions = start + t * (end - start)
        energies.append(atoms.get_potential_energy())
        work.append(np.sum(atoms.get_forces() * (end - start)))
    return float(energies[-1] - energies[0]), float(-simpson(work, x=path))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="threads (0: all cores)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timing per figure")
    parser.add_argument("--no-ipi", action="store_true", help="skip the i-PI round trip")
    parser.add_argument("--nve", action="store_true", help="also run the NVE drift check (minutes)")
    parser.add_argument("--nve-timestep", type=float, default=0.5, help="NVE time step, fs (default 0.5)")
    parser.add_argument("--nve-ps", type=float, default=2.0, help="NVE length, ps (default 2)")
    parser.add_argument("--nve-seeds", type=int, default=3, help="NVE runs (velocity seeds 1..N, default 3)")
    parser.add_argument("--nve-equilibrate-ps", type=float, default=1.0, help="Langevin before NVE, ps (default 1)")
    parser.add_argument("--json", default=str(HERE / "results" / "bridges.json"))
    parser.add_argument("--torchani-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seeds = tuple(range(1, args.nve_seeds + 1))
    nve = (args.nve_timestep, args.nve_ps, seeds, args.nve_equilibrate_ps) if args.nve else None
    if args.torchani_worker:
        return torchani_worker(args.threads, args.budget, nve)

    # TorchANI first: once, run after pyani's figures, its aspirin came out at 30 ms instead of
    # 6 (cause not found: this process burns no CPU while idle; measured).
    torchani = torchani_figures(args.threads, args.budget, nve)
    results = {"pyani": pyani_figures(args.threads, args.budget, not args.no_ipi), "torchani": torchani}
    header = f"{'ms per call / step':<24}{'compute':>10}{'ASE step':>10}{'bridge':>9}{'(% of compute)':>15}"
    header += f"{'i-PI step':>11}" if not args.no_ipi else ""
    header += f"{'TorchANI compute':>18}{'TorchANI ASE step':>19}" if results["torchani"] else ""
    print(header)
    for name, row in results["pyani"].items():
        line = f"{name:<24}{row['compute'] * 1e3:>10.3f}{row['ase_step'] * 1e3:>10.3f}"
        line += f"{row['bridge'] * 1e3:>9.3f}{100 * row['bridge'] / row['compute']:>14.1f}%"
        if "ipi_step" in row:
            line += f"{row['ipi_step'] * 1e3:>11.3f}"
        if results["torchani"]:
            other = results["torchani"][name]
            line += f"{other['compute'] * 1e3:>18.3f}{other['ase_step'] * 1e3:>19.3f}"
        print(line)
    print(
        "bridge: median time of a VelocityVerlet step outside Model.compute (ANICalculator, ASE's caching and "
        "the integrator), step by step"
    )
    if args.nve:
        import pyani

        runs = {"pyani": nve_drift(pyani.load("ani-1ccx", n_threads=args.threads, skin=1.0).ase(), *nve)}
        if results["torchani"]:
            runs["TorchANI"] = results["torchani"].pop("nve")
        results["nve"] = runs
        print(
            f"\nNVE, 64 waters: relaxed, 300 K, {args.nve_equilibrate_ps:g} ps Langevin, then {args.nve_ps:g} ps "
            f"at {args.nve_timestep:g} fs (drift per velocity seed):"
        )
        for who, run in runs.items():
            drifts = ", ".join(f"{r['drift_ev_per_atom_ps']:+.1e}" for r in run["runs"])
            deviation = max(r["max_deviation_ev_per_atom"] for r in run["runs"])
            print(
                f"  {who:<9} drift {drifts} eV/atom/ps (largest |drift| {run['largest_drift_ev_per_atom_ps']:.1e}), "
                f"max deviation {deviation:.1e} eV/atom, {run['seconds_per_step'] * 1e3:.1f} ms/step"
            )
            for r in run["runs"]:
                print(
                    f"    seed {r['seed']}: {r['final_temperature_k']:.0f} K at the end; worst step changed the "
                    f"total energy by {r['worst_step_ev']:.1e} eV, the potential by {r['worst_step_du_ev']:+.4f} eV "
                    f"= work of the forces {r['worst_step_work_ev']:+.4f} eV"
                )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
