"""``pyani scan``: relaxed torsion scan (the dihedral held, everything else optimised)."""

from __future__ import annotations

from ._common import CLIError, add_model_options, check_elements, load_model, plotting, progress, read_atoms


def register(commands) -> None:
    p = commands.add_parser(
        "scan",
        help="relaxed torsion scan",
        description="Rotate the dihedral a-b-c-d (0-based atom indices) in STEPS equal steps over --range degrees, "
        "optimising all else at each angle with the dihedral held (FixInternals).",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--torsion", nargs=4, type=int, required=True, metavar=("A", "B", "C", "D"))
    p.add_argument("--steps", type=int, default=36, help="number of angles (default 36)")
    p.add_argument("--range", type=float, default=360.0, dest="span", help="degrees scanned (default 360)")
    p.add_argument("--fmax", type=float, default=0.02, help="force convergence at each angle (eV/A)")
    p.add_argument("--max-steps", type=int, default=500, help="optimiser steps at each angle")
    p.add_argument("--index", type=int, default=0, help="frame of FILE (default 0)")
    p.add_argument("-o", "--out", metavar="OUT", help="write the optimised structure of every angle")
    p.add_argument("--plot", metavar="PNG", help="plot energy against angle")
    add_model_options(p)
    p.set_defaults(run=run)


def rotating_side(atoms, b: int, c: int) -> list[int]:
    """Atoms bonded (covalent radii) to c's side once the b-c bond is cut; c included, b not."""
    import numpy as np
    from ase.data import covalent_radii

    radii = covalent_radii[atoms.numbers] * 1.2  # bonded: closer than 1.2 x the sum of covalent radii
    if atoms.pbc.any():
        from ase.neighborlist import neighbor_list

        i, j = neighbor_list("ij", atoms, radii / 1.0)
    else:
        d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
        i, j = np.nonzero((d < radii[:, None] + radii[None]) & (d > 0))
    bonds = {k: set() for k in range(len(atoms))}
    for x, y in zip(i, j):
        if {int(x), int(y)} != {b, c}:
            bonds[int(x)].add(int(y))
    side, todo = {c}, [c]
    while todo:
        for y in bonds[todo.pop()] - side:
            side.add(y)
            todo.append(y)
    if b in side:
        raise CLIError(f"--torsion: atoms {b} and {c} are in a ring; the torsion cannot rotate freely", status=2)
    return sorted(side)


def run(args) -> int:
    import ase.io
    import numpy as np
    from ase.constraints import FixInternals
    from ase.optimize import BFGS


    atoms = read_atoms(args.file, str(args.index))[0]
    atoms.info.pop("pyani_frame")
    a, b, c, d = args.torsion
    if len({a, b, c, d}) < 4 or not all(0 <= k < len(atoms) for k in args.torsion):
        raise CLIError(f"--torsion {a} {b} {c} {d}: need 4 distinct atom indices in 0..{len(atoms) - 1}", status=2)
    if args.steps < 1:
        raise CLIError(f"--steps must be positive, got {args.steps}", status=2)
    model = load_model(args)
    check_elements(model, atoms, f"{args.file}[{args.index}]")
    side = rotating_side(atoms, b, c)
    if d not in side or a in side:
        raise CLIError(f"--torsion {a} {b} {c} {d}: not a chain of bonded atoms a-b-c-d (b-c must be a bond)", status=2)
    start = atoms.get_dihedral(a, b, c, d)
    span = args.span if abs(args.span) < 360 else 360.0 * (1 - 1 / args.steps)  # 360 would repeat the start
    angles = start + np.linspace(0.0, span, args.steps) if args.steps > 1 else np.array([start])
    results, frames, unconverged = [], [], 0
    for angle in progress(angles, desc="scan", unit="angle"):
        atoms.set_constraint()
        atoms.set_dihedral(a, b, c, d, angle, indices=side)
        atoms.set_constraint(FixInternals(dihedrals_deg=[[atoms.get_dihedral(a, b, c, d), [a, b, c, d]]]))
        atoms.calc = model.ase()
        converged = BFGS(atoms, logfile=None).run(fmax=args.fmax, steps=args.max_steps)
        unconverged += not converged
        results.append((atoms.get_dihedral(a, b, c, d), atoms.get_potential_energy()))
        frame = atoms.copy()
        frame.set_constraint()
        frame.info.update(dihedral_deg=results[-1][0], energy=results[-1][1])
        frames.append(frame)
    results = np.array(results)
    lowest = results[:, 1].min()
    print(f"{'dihedral/deg':>12} {'energy/eV':>18} {'relative/kcal/mol':>18}")
    from ase.units import kcal, mol

    for angle, energy in results:
        print(f"{angle:>12.2f} {energy:>18.6f} {(energy - lowest) / (kcal / mol):>18.3f}")
    if args.out:
        ase.io.write(args.out, frames)
    if args.plot:
        _plot(results, lowest, args.plot, (a, b, c, d))
        print(f"plot -> {args.plot}")
    if unconverged:
        raise CLIError(f"{unconverged} angle(s) did not reach --fmax {args.fmax} in {args.max_steps} steps")
    return 0


def _plot(results, lowest, path: str, torsion) -> None:
    import numpy as np
    from ase.units import kcal, mol

    plt = plotting()
    order = np.argsort(results[:, 0])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(results[order, 0], (results[order, 1] - lowest) / (kcal / mol), "o-")
    ax.set_xlabel("dihedral {}-{}-{}-{} (degrees)".format(*torsion))
    ax.set_ylabel("relative energy (kcal/mol)")
    ax.set_title("pyani relaxed torsion scan")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
