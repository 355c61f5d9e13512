"""``pyani opt`` (geometry and cell optimisation) and ``pyani md`` (molecular dynamics)."""

from __future__ import annotations

from ._common import (
    CLIError,
    add_model_options,
    check_elements,
    load_model,
    plotting,
    progress,
    read_atoms,
)


def register(commands) -> None:
    p = commands.add_parser(
        "opt",
        help="optimise geometries (and cells)",
        description="Optimise every selected frame of FILE; writes the optimised frames to OUT.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="file for the optimised structures")
    p.add_argument("--fmax", type=float, default=0.01, help="force convergence (eV/A, default 0.01)")
    p.add_argument("--steps", type=int, default=1000, help="maximum optimiser steps per structure")
    p.add_argument("--optimizer", choices=("bfgs", "fire"), default="bfgs")
    p.add_argument("--cell", action="store_true", help="also relax the cell (FrechetCellFilter; periodic only)")
    p.add_argument("--index", default=":", help="frames to optimise (ase.io index, default all)")
    add_model_options(p)
    p.set_defaults(run=run_opt)

    p = commands.add_parser(
        "md",
        help="molecular dynamics",
        description="Molecular dynamics from one frame of FILE; writes an extxyz trajectory with energies.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--out", required=True, metavar="TRAJ", help="extxyz trajectory to write")
    p.add_argument("--steps", type=int, required=True, help="number of time steps")
    p.add_argument("--dt", type=float, default=0.5, help="time step (fs, default 0.5)")
    p.add_argument("--temperature", type=float, default=300.0, help="initial/bath temperature (K, default 300)")
    p.add_argument("--ensemble", choices=("nve", "langevin", "npt"), default="nve")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction (1/fs, default 0.01)")
    p.add_argument("--pressure", type=float, default=1.0, help="NPT pressure (bar, default 1)")
    p.add_argument("--interval", type=int, default=10, help="write every INTERVAL steps (default 10)")
    p.add_argument("--index", type=int, default=0, help="frame of FILE to start from (default 0)")
    p.add_argument("--seed", type=int, default=None, help="random seed (initial velocities, Langevin noise)")
    p.add_argument("--plot", metavar="PNG", help="plot energies and temperature against time")
    add_model_options(p)
    p.set_defaults(run=run_md)


def _positive(value, name: str, kind=float):
    if not value > 0:
        raise CLIError(f"{name} must be positive, got {value}", status=2)
    return kind(value)


def run_opt(args) -> int:
    import ase.io
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE


    _positive(args.fmax, "--fmax")
    _positive(args.steps, "--steps", int)
    frames = read_atoms(args.file, args.index)
    model = load_model(args)
    optimizer = {"bfgs": BFGS, "fire": FIRE}[args.optimizer]
    done, failed = [], 0
    print(f"{'index':>5} {'natoms':>6} {'steps':>5} {'energy/eV':>18} {'fmax/eV/A':>10} converged")
    for atoms in progress(frames, desc="opt", unit="structure"):
        i = atoms.info.pop("pyani_frame")
        check_elements(model, atoms, f"{args.file}[{i}]")
        if args.cell and not atoms.pbc.any():
            raise CLIError(f"--cell: {args.file}[{i}] is not periodic (no cell to relax)", status=2)
        atoms.calc = model.ase()
        target = FrechetCellFilter(atoms) if args.cell else atoms
        opt = optimizer(target, logfile=None)
        converged = opt.run(fmax=args.fmax, steps=args.steps)
        fmax = float((target.get_forces() ** 2).sum(axis=1).max() ** 0.5)
        energy = atoms.get_potential_energy()
        failed += not converged
        print(f"{i:>5} {len(atoms):>6} {opt.nsteps:>5} {energy:>18.6f} {fmax:>10.4f} {'yes' if converged else 'NO'}")
        done.append(atoms)
    ase.io.write(args.out, done)
    if failed:
        raise CLIError(f"{failed} structure(s) did not reach --fmax {args.fmax} in {args.steps} steps")
    return 0


def run_md(args) -> int:
    import ase.io
    import numpy as np
    from ase import units
    from ase.md import velocitydistribution
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet


    steps = _positive(args.steps, "--steps", int)
    dt = _positive(args.dt, "--dt") * units.fs
    interval = _positive(args.interval, "--interval", int)
    if args.temperature < 0:
        raise CLIError(f"--temperature must be >= 0 K, got {args.temperature}", status=2)
    atoms = read_atoms(args.file, str(args.index))[0]
    atoms.info.pop("pyani_frame")
    model = load_model(args, skin=1.0)  # a Verlet skin: the neighbour list is reused across steps
    check_elements(model, atoms, f"{args.file}[{args.index}]")
    periodic = bool(atoms.pbc.any())
    if args.ensemble == "npt" and not periodic:
        raise CLIError(f"--ensemble npt: {args.file}[{args.index}] is not periodic", status=2)
    atoms.calc = model.ase()
    # thermalize_momenta is ASE >= 3.29's name of MaxwellBoltzmannDistribution
    thermalize = getattr(velocitydistribution, "thermalize_momenta", None)
    if thermalize is None:
        thermalize = velocitydistribution.MaxwellBoltzmannDistribution
    rng = np.random.default_rng(args.seed)  # the velocities and the Langevin noise: --seed repeats a run
    thermalize(atoms, temperature_K=args.temperature, rng=rng)
    velocitydistribution.Stationary(atoms)
    if not periodic:
        velocitydistribution.ZeroRotation(atoms)
    if args.ensemble == "nve":
        dyn = VelocityVerlet(atoms, dt)
    elif args.ensemble == "langevin":
        from ase.constraints import FixCom

        atoms.set_constraint(FixCom())  # ASE's advice over Langevin(fixcm=True), which biases small systems
        dyn = Langevin(
            atoms, dt, temperature_K=args.temperature, friction=args.friction / units.fs, fixcm=False, rng=rng
        )
    else:
        from ase.md.nptberendsen import NPTBerendsen

        dyn = NPTBerendsen(
            atoms,
            dt,
            temperature_K=args.temperature,
            pressure_au=args.pressure * units.bar,
            taut=100 * units.fs,
            taup=1000 * units.fs,
            compressibility_au=4.57e-5 / units.bar,
        )
    log = []  # time (fs), potential, kinetic, total (eV), temperature (K)
    bar = progress(total=steps, desc="md", unit="step")
    with open(args.out, "w") as out:

        def record():
            epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
            time_fs = dyn.get_time() / units.fs
            log.append((time_fs, epot, ekin, epot + ekin, atoms.get_temperature()))
            frame = atoms.copy()
            frame.calc = None
            frame.info.update(time_fs=time_fs, energy=epot, kinetic_energy=ekin, total_energy=epot + ekin)
            frame.info["temperature_K"] = log[-1][4]
            frame.arrays["forces"] = atoms.get_forces()
            ase.io.write(out, frame, format="extxyz")
            bar.update(interval if dyn.nsteps else 0)

        dyn.attach(record, interval=interval)
        dyn.run(steps)
    bar.close()
    log = np.array(log)
    drift = log[-1, 3] - log[0, 3]
    print(f"{steps} steps of {args.dt} fs ({args.ensemble}): {len(log)} frames -> {args.out}")
    print(f"final: Epot {log[-1, 1]:.6f} eV, T {log[-1, 4]:.1f} K; total energy change {drift:+.6f} eV")
    if args.plot:
        _plot_md(log, args.plot, args.ensemble)
        print(f"plot -> {args.plot}")
    return 0


def _plot_md(log, path: str, ensemble: str) -> None:
    plt = plotting()
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
    t = log[:, 0]
    shift = log[0, 1]  # energies relative to the first potential energy: the scale of a few eV
    top.plot(t, log[:, 1] - shift, label="potential")
    top.plot(t, log[:, 2], label="kinetic")
    top.plot(t, log[:, 3] - shift, label="total")
    top.set_ylabel(f"energy - E_pot(0) (eV)\nE_pot(0) = {shift:.4f} eV")
    top.legend()
    top.set_title(f"pyani md ({ensemble})")
    bottom.plot(t, log[:, 4], color="tab:red")
    bottom.set_ylabel("temperature (K)")
    bottom.set_xlabel("time (fs)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
