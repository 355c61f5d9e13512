"""``pyani freq``: harmonic frequencies, zero-point energy and thermochemistry."""

from __future__ import annotations

from ._common import (
    CLIError,
    add_model_options,
    check_elements,
    frame_name,
    load_model,
    plotting,
    progress,
    read_atoms,
)

#: finite-difference displacement (Angstrom) of the Hessian: C-H stretches move by ~1 cm^-1
#: between 0.0005 and 0.001, by ~6 cm^-1 at 0.005 (third-derivative error)


def register(commands) -> None:
    p = commands.add_parser(
        "freq",
        help="vibrational frequencies and thermochemistry",
        description="Harmonic frequencies (cm^-1), zero-point energy and thermochemistry of every selected frame "
        "(ideal gas for molecules, harmonic for periodic structures). Optimise first (pyani opt).",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--index", default=":", help="frames (ase.io index, default all)")
    p.add_argument("--temperature", type=float, default=298.15, help="temperature (K, default 298.15)")
    p.add_argument("--pressure", type=float, default=101325.0, help="ideal-gas pressure (Pa, default 101325)")
    p.add_argument("--symmetry", type=int, default=1, help="rotational symmetry number (default 1)")
    p.add_argument("--spin", type=float, default=0.0, help="total spin (default 0)")
    p.add_argument("--plot", metavar="PNG", help="plot the spectrum of frequencies")
    add_model_options(p)
    p.set_defaults(run=run)


def hessian(atoms, model):
    """The Hessian d2E/dx_i dx_j (eV/A^2), [3N, 3N]: ``Model.hessian`` (central differences of
    analytic float64 forces with a 1e-6 A step, all displacements in one batch)."""
    from pyani.units import HARTREE_TO_EV

    periodic = bool(atoms.pbc.any())
    cell, pbc = (atoms.cell[:], atoms.pbc) if periodic else (None, None)
    return model.hessian(atoms.numbers, atoms.positions, cell, pbc) * HARTREE_TO_EV


def run(args) -> int:
    from ase.thermochemistry import HarmonicThermo, IdealGasThermo
    from ase.units import invcm
    from ase.vibrations import VibrationsData

    if args.temperature <= 0:
        raise CLIError(f"--temperature must be positive, got {args.temperature}", status=2)
    frames = read_atoms(args.file, args.index)
    model = load_model(args, precision="float64")  # frequencies to 0.01 cm^-1 of TorchANI's
    spectra = []
    for atoms in progress(frames, desc="freq", unit="structure"):
        where = frame_name(args.file, atoms)
        check_elements(model, atoms, where)
        vib = VibrationsData.from_2d(atoms, hessian(atoms, model))
        energies = vib.get_energies()  # eV, complex for imaginary modes

        atoms.calc = model.ase()
        potential = atoms.get_potential_energy()
        periodic = bool(atoms.pbc.any())
        T = args.temperature
        print(f"{where}: {len(atoms)} atoms, E = {potential:.6f} eV")
        if periodic or len(atoms) == 1:
            shown = [e for e in energies if abs(e) > 1e-4]  # drop the zero (acoustic) modes
            kept = [e.real for e in shown if abs(e.imag) <= 1e-9]
            thermo = HarmonicThermo(kept, potentialenergy=potential)
            lines = [
                ("zero-point energy", sum(kept) / 2 if kept else 0.0, "eV"),
                (f"internal energy U({T} K)", thermo.get_internal_energy(T, verbose=False), "eV"),
                (f"entropy S({T} K)", thermo.get_entropy(T, verbose=False), "eV/K"),
                (f"Helmholtz energy F({T} K)", thermo.get_helmholtz_energy(T, verbose=False), "eV"),
            ]
        else:
            geometry = "linear" if _linear(atoms) else "nonlinear"
            thermo = IdealGasThermo(
                energies,
                geometry,
                potentialenergy=potential,
                atoms=atoms,
                symmetrynumber=args.symmetry,
                spin=args.spin,
                ignore_imag_modes=True,
            )
            shown = thermo.vib_energies
            p = args.pressure
            lines = [
                ("zero-point energy", thermo.get_ZPE_correction(), "eV"),
                (f"enthalpy H({T} K)", thermo.get_enthalpy(T, verbose=False), "eV"),
                (f"entropy S({T} K, {p:g} Pa)", thermo.get_entropy(T, p, verbose=False), "eV/K"),
                (f"Gibbs energy G({T} K, {p:g} Pa)", thermo.get_gibbs_energy(T, p, verbose=False), "eV"),
            ]
        wavenumbers = sorted(_wavenumber(e, invcm) for e in energies)
        n_imag = sum(1 for e in shown if abs(complex(e).imag) > 1e-9)
        print("  frequencies (cm^-1; negative = imaginary):")
        for start in range(0, len(wavenumbers), 8):
            print("   " + "".join(f"{w:>9.1f}" for w in wavenumbers[start : start + 8]))
        if n_imag:
            print(f"  warning: {n_imag} imaginary mode(s) among the vibrations: optimise the structure first")
        for name, value, unit in lines:
            print(f"  {name:<36} {value:>16.6f} {unit}")
        spectra.append((where, sorted(_wavenumber(complex(e), invcm) for e in shown)))  # vibrations only
    if args.plot:
        _plot(spectra, args.plot)
        print(f"plot -> {args.plot}")
    return 0


def _wavenumber(energy: complex, invcm: float) -> float:
    """cm^-1 of a mode energy (eV); an imaginary mode as a negative number."""
    return -energy.imag / invcm if abs(energy.imag) > abs(energy.real) else energy.real / invcm


def _linear(atoms) -> bool:
    """All atoms on one line (a linear molecule has 3N-5 vibrations)."""
    import numpy as np

    if len(atoms) <= 2:
        return True
    x = atoms.positions - atoms.positions.mean(axis=0)
    return bool(np.linalg.svd(x, compute_uv=False)[1] < 1e-3)


def _plot(spectra, path: str) -> None:
    """Lorentzian-broadened lines of unit height at each frequency (no intensities: pyani has no dipoles)."""
    import numpy as np

    plt = plotting()
    fig, ax = plt.subplots(figsize=(8, 4))
    top = max((max(w) for _, w in spectra if w), default=4000.0)
    low = min((min(w) for _, w in spectra if w), default=0.0)
    grid = np.linspace(min(0.0, low) - 50, top + 200, 4000)
    width = 10.0  # cm^-1, half width at half maximum
    for where, lines in spectra:
        curve = sum(width**2 / ((grid - w) ** 2 + width**2) for w in lines) if lines else np.zeros_like(grid)
        ax.plot(grid, curve, label=where)
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("modes (Lorentzian, 10 cm$^{-1}$ HWHM)")
    ax.set_title("pyani harmonic frequencies")
    if len(spectra) <= 10:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
