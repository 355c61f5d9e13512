"""Harmonic vibrations of a molecule: frequencies, normal modes, reduced masses, force constants.

Translations and rotations are projected out of the mass-weighted Hessian before it is
diagonalised, so the 3N - 6 (3N - 5 if linear) vibrations are clean of them at any geometry
that is near a minimum. Conventions follow Gaussian's and TorchANI's: frequencies in cm^-1,
imaginary ones negative; normal modes mass-deweighted and normalised; reduced masses in amu;
force constants in mDyne/Angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _elements

#: sqrt(Hartree / (amu Angstrom^2)) / (2 pi c) in cm^-1 (CODATA 2018: Hartree energy, atomic
#: mass constant, speed of light).
_HARTREE = 4.3597447222071e-18  # J
_AMU = 1.66053906660e-27  # kg
_C_CM = 2.99792458e10  # cm/s
TO_WAVENUMBER = np.sqrt(_HARTREE / (_AMU * 1e-20)) / (2 * np.pi * _C_CM)
#: mDyne/Angstrom per Hartree/Angstrom^2: 1 Ha/A^2 = 435.97 N/m, and 1 mDyne/A = 100 N/m.
TO_MDYNE_PER_ANGSTROM = _HARTREE / 1e-20 / 100


@dataclass
class Vibrations:
    """Normal modes of one structure (see ``vibrations``)."""

    frequencies: np.ndarray
    """[K] cm^-1, ascending, imaginary ones negative (K = 3N - 6, or 3N - 5 if linear)."""
    modes: np.ndarray
    """[K, N, 3] Cartesian displacements, mass-deweighted and normalised."""
    reduced_masses: np.ndarray
    """[K] amu."""
    force_constants: np.ndarray
    """[K] mDyne/Angstrom."""
    rigid_frequencies: np.ndarray
    """[6 or 5] cm^-1 of the translations and rotations in the unprojected Hessian: how far
    from zero they are tells how close the geometry is to a stationary point."""
    hessian: np.ndarray
    """[3N, 3N] Hartree/Angstrom^2, as computed (not projected)."""
    numbers: np.ndarray
    positions: np.ndarray
    masses: np.ndarray
    """[N] amu."""

    def zero_point_energy(self) -> float:
        """Harmonic zero-point energy (Hartree) of the real frequencies."""
        real = self.frequencies[self.frequencies > 0]
        return _zpe(real)

    def ase(self):
        """The same Hessian as an ``ase.vibrations.VibrationsData`` (eV/Angstrom^2), for ASE's
        thermochemistry (``IdealGasThermo``, ``HarmonicThermo``)."""
        from ase import Atoms
        from ase.units import Hartree
        from ase.vibrations import VibrationsData

        atoms = Atoms(numbers=self.numbers, positions=self.positions, masses=self.masses)
        n = len(self.numbers)
        return VibrationsData(atoms, (self.hessian * Hartree).reshape(n, 3, n, 3))


def _zpe(wavenumbers: np.ndarray) -> float:
    """sum(h c nu) / 2 in Hartree, nu in cm^-1 (CODATA 2018 h and c)."""
    planck = 6.62607015e-34  # J s
    return float(0.5 * np.sum(wavenumbers) * planck * _C_CM / _HARTREE)


def rigid_motions(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Orthonormal basis [3N, 6 or 5] of the mass-weighted translations and rotations."""
    sqrt_m = np.sqrt(masses)
    centred = positions - (masses[:, None] * positions).sum(0) / masses.sum()
    vectors = []
    for axis in np.eye(3):
        vectors.append((sqrt_m[:, None] * axis).ravel())  # translation
        vectors.append((sqrt_m[:, None] * np.cross(axis, centred)).ravel())  # rotation
    basis, singular, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    # a linear molecule has one rotation fewer: its vector is (numerically) zero
    return basis[:, singular > 1e-6 * singular.max()]


def vibrations(model, numbers, positions, *, masses=None, hessian=None) -> Vibrations:
    """Harmonic normal-mode analysis of a molecule (Angstrom) with ``model``.

    masses: amu [N] (default: standard atomic weights). hessian: [3N, 3N] Hartree/Angstrom^2
    to use instead of ``model.hessian(numbers, positions)``.
    """
    numbers = np.asarray(numbers)
    positions = np.asarray(positions, dtype=np.float64)
    if masses is None:
        masses = np.array([_elements.mass(int(z)) for z in numbers])
    masses = np.asarray(masses, dtype=np.float64)
    if masses.shape != numbers.shape or not np.all(masses > 0):
        raise ValueError(f"masses must be {len(numbers)} positive values (amu)")
    h = model.hessian(numbers, positions) if hessian is None else np.asarray(hessian, dtype=np.float64)
    n = 3 * len(numbers)
    if h.shape != (n, n):
        raise ValueError(f"hessian must have shape ({n}, {n}), got {h.shape}")
    inv_sqrt_m = np.repeat(1 / np.sqrt(masses), 3)
    weighted = h * inv_sqrt_m[:, None] * inv_sqrt_m[None, :]
    rigid = rigid_motions(positions, masses)
    # The vibrations live in the complement of the rigid motions: diagonalise there.
    complement = np.linalg.svd(np.eye(n) - rigid @ rigid.T)[0][:, : n - rigid.shape[1]]
    eigenvalues, vectors = np.linalg.eigh(complement.T @ weighted @ complement)
    mw_modes = (complement @ vectors).T  # [K, 3N], orthonormal, mass-weighted
    deweighted = mw_modes * inv_sqrt_m
    norms = np.linalg.norm(deweighted, axis=1)
    reduced = 1 / norms**2
    rigid_values = np.linalg.eigvalsh(rigid.T @ weighted @ rigid)
    return Vibrations(
        frequencies=_wavenumbers(eigenvalues),
        modes=(deweighted / norms[:, None]).reshape(-1, len(numbers), 3),
        reduced_masses=reduced,
        force_constants=eigenvalues * reduced * TO_MDYNE_PER_ANGSTROM,
        rigid_frequencies=_wavenumbers(rigid_values),
        hessian=h,
        numbers=numbers,
        positions=positions,
        masses=masses,
    )


def _wavenumbers(eigenvalues: np.ndarray) -> np.ndarray:
    """cm^-1 of mass-weighted Hessian eigenvalues (Ha/(amu A^2)); negative ones as negative."""
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * TO_WAVENUMBER
