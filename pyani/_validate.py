"""Convert and check user input once, at the boundary. Every error names the argument."""

from __future__ import annotations

import operator

import numpy as np

from ._elements import symbol

#: Coordinates beyond this (Angstrom) are certainly a unit or data error, and would
#: overflow the integer image counters of the cell list.
MAX_COORDINATE = 1e8


def _as_array(value, name: str, dtype) -> np.ndarray:
    try:
        return np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array-like: {err}") from None


def numbers(value, species_of: np.ndarray) -> tuple[np.ndarray, bool]:
    """Atomic numbers -> int64 [B, N] (-1 = padding) and whether the input was a batch.

    species_of: the model's lookup from atomic number to species index, -1 where unknown.
    """
    raw = np.asarray(value)
    if raw.dtype == object or raw.dtype.kind not in "iuf":
        raise TypeError(f"numbers must be integers (atomic numbers), got dtype {raw.dtype}")
    if raw.ndim not in (1, 2):
        raise ValueError(f"numbers must have shape (n_atoms,) or (n_structures, n_atoms), got {raw.shape}")
    if raw.dtype.kind == "f" and (not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw))):
        raise TypeError("numbers must be integers (atomic numbers); got non-integer values")
    if raw.size == 0:
        raise ValueError("numbers must contain at least one atom")
    out = raw.astype(np.int64).reshape(-1, raw.shape[-1])
    if out.min() > 0 and out.max() < len(species_of) and species_of[out].min() >= 0:
        return out, raw.ndim == 2  # the common case: no padding, all elements known
    bad = out[(out < -1) | (out == 0)]
    if bad.size:
        raise ValueError(f"numbers must be positive atomic numbers (-1 marks padding), got {bad[0]}")
    real = out[out > 0]
    if real.size and (real.max() >= len(species_of) or np.any(species_of[real] < 0)):
        known = np.flatnonzero(species_of >= 0)
        known = known[np.argsort(species_of[known])]  # the model's element order
        unknown = np.setdiff1d(real, known)
        names = ", ".join(f"{symbol(int(z))} (Z={z})" for z in unknown)
        have = ", ".join(symbol(int(z)) for z in known)
        raise ValueError(f"numbers contains elements the model lacks: {names}; it knows {have}")
    if np.all(out < 0, axis=1).any():
        raise ValueError("numbers: every structure must have at least one atom (not only padding)")
    return out, raw.ndim == 2


def positions(value, shape: tuple[int, int], batched: bool, mask: np.ndarray) -> np.ndarray:
    """Positions (Angstrom) -> float64 [B, N, 3], a private copy."""
    out = _as_array(value, "positions", np.float64)
    want = (*shape, 3) if batched else (shape[1], 3)
    if out.shape != want:
        raise ValueError(f"positions must have shape {want} to match numbers, got {out.shape}")
    out = out.reshape(*shape, 3)
    real = out if mask.all() else out[mask]
    if not np.all(np.isfinite(real)):
        raise ValueError("positions contains NaN or infinite values")
    if real.size and np.abs(real).max() > MAX_COORDINATE:
        raise ValueError(f"positions contains coordinates beyond {MAX_COORDINATE:g} Angstrom")
    return out


def cell_and_pbc(cell, pbc, n_structures: int, batched: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cell [B, 3, 3] (rows = lattice vectors, Angstrom) and pbc [3] bool.

    No cell means no periodicity. A cell without pbc means periodic in all directions.
    """
    if pbc is None:
        pbc_out = np.full(3, cell is not None)
    else:
        raw = np.asarray(pbc)
        if raw.dtype != bool:
            raise TypeError(f"pbc must be a bool or 3 bools, got dtype {raw.dtype}")
        if raw.shape not in ((), (3,)):
            raise ValueError(f"pbc must be a bool or have shape (3,), got {raw.shape}")
        pbc_out = np.broadcast_to(raw, (3,)).copy()
    if cell is None:
        if pbc_out.any():
            raise ValueError("pbc is True in some direction but no cell was given")
        return np.zeros((n_structures, 3, 3)), pbc_out
    out = _as_array(cell, "cell", np.float64)
    if out.shape == (3, 3):
        out = np.broadcast_to(out, (n_structures, 3, 3)).copy()
    elif not (batched and out.shape == (n_structures, 3, 3)):
        want = "(3, 3)" + (f" or ({n_structures}, 3, 3)" if batched else "")
        raise ValueError(f"cell must have shape {want}, got {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError("cell contains NaN or infinite values")
    periodic = out[:, pbc_out, :]
    if periodic.shape[1]:
        # The periodic lattice vectors must span as many dimensions as there are of them.
        gram = np.linalg.det(periodic @ periodic.transpose(0, 2, 1))
        scale = np.prod(np.einsum("bij,bij->bi", periodic, periodic), axis=1)
        if np.any(~(gram > 1e-12 * scale)) or np.any(scale == 0):
            raise ValueError("cell is singular: its periodic lattice vectors are zero or linearly dependent")
    return out, pbc_out


#: Less volume per atom than this (Angstrom^3) is denser than any matter (diamond: 5.7), and
#: the number of periodic images within the cutoff, hence memory, grows as its inverse.
MIN_VOLUME_PER_ATOM = 1.0


def density(atoms_per_structure: np.ndarray, cells: np.ndarray, pbc: np.ndarray) -> None:
    """Reject fully periodic cells far too small for the atoms they hold."""
    if not pbc.all():
        return
    volume_per_atom = np.abs(np.linalg.det(cells)) / atoms_per_structure
    if np.any(volume_per_atom < MIN_VOLUME_PER_ATOM):
        raise ValueError(
            f"cell is too small: {volume_per_atom.min():.3g} Angstrom^3 per atom "
            f"(less than {MIN_VOLUME_PER_ATOM} is denser than any matter; are the units Angstrom?)"
        )


#: The cell list counts periodic images in int32 (as do the shifts); stay well inside that.
MAX_IMAGE_INDEX = 2**30


def image_counts(positions: np.ndarray, mask: np.ndarray, cells: np.ndarray, pbc: np.ndarray) -> None:
    """Reject periodic lattice planes so close, for coordinates so far out, that an atom's
    image index (coordinate / plane spacing) would overflow the kernels' int32 counters;
    the answer would be silently wrong."""
    if not pbc.any():
        return
    periodic = cells[:, pbc, :]  # [B, P, 3]
    gram = periodic @ periodic.transpose(0, 2, 1)
    # Spacing of the planes of lattice vector d within the periodic lattice: (P-volume) /
    # ((P-1)-volume of the others), from Gram determinants.
    full = np.linalg.det(gram)
    reach = 2 * np.sqrt(3) * np.where(mask[..., None], np.abs(positions), 0).max(axis=(1, 2))
    reach += np.sqrt(np.einsum("bij,bij->b", cells, cells))
    for d in range(periodic.shape[1]):
        others = [k for k in range(periodic.shape[1]) if k != d]
        rest = np.linalg.det(gram[:, others][:, :, others]) if others else np.ones(len(cells))
        spacing = np.sqrt(full / rest)
        if np.any(reach > MAX_IMAGE_INDEX * spacing):
            b = int(np.argmax(reach / spacing))
            axis = int(np.flatnonzero(pbc)[d])
            raise ValueError(
                f"cell: lattice planes along periodic direction {axis} are {spacing[b]:.3g} Angstrom apart, "
                f"too close for coordinates up to {np.abs(positions[b][mask[b]]).max():.3g} Angstrom "
                "(more than 2^30 periodic images away); wrap the positions into the cell or check its units"
            )


def energy_mask(value, shape: tuple[int, int], batched: bool, mask: np.ndarray) -> np.ndarray | None:
    """The atoms whose energies count -> bool [A] over the real atoms, or None for all."""
    if value is None:
        return None
    raw = np.asarray(value)
    if raw.dtype != bool:
        raise TypeError(f"energy_mask must be bools (one per atom), got dtype {raw.dtype}")
    want = shape if batched else (shape[1],)
    if raw.shape != want:
        raise ValueError(f"energy_mask must have shape {want} to match numbers, got {raw.shape}")
    return raw.reshape(shape)[mask]


def flag(value, name: str) -> bool:
    """A keyword flag that must really be a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def length(value, name: str) -> float:
    """A finite, non-negative length in Angstrom."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number (Angstrom), got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite length >= 0 Angstrom, got {value}")
    return float(value)


def count(value, name: str, minimum: int = 0) -> int:
    """A non-negative integer argument such as a thread count."""
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return n


#: TorchANI's CutoffSmooth defaults, used for the parameters a "smooth" cutoff_fn leaves out.
SMOOTH_CUTOFF_DEFAULTS = {"order": 2, "eps": 1e-10}
#: Far beyond any model; keeps (r / cutoff)^order cheap in the kernels (cpp/aev.hpp).
MAX_SMOOTH_ORDER = 1024


def cutoff_function(name, params, field: str = "aev", names=("cosine", "smooth")) -> tuple[str, dict]:
    """A cutoff function named in model metadata -> (name, parameters).

    name: ``cutoff_fn`` (None = "cosine"); params: ``cutoff_fn_params`` (None or {} = none),
    for "smooth" {"order": int in 1..1024, "eps": finite float > 0}, each TorchANI's default
    when left out. field names the metadata entry in the ValueError for anything else.
    """
    name = "cosine" if name is None else name
    if not isinstance(name, str) or name not in names:
        allowed = ", ".join(repr(n) for n in names)
        raise ValueError(f"{field}.cutoff_fn must be one of {allowed}, got {name!r}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError(f"{field}.cutoff_fn_params must be a dict, got {params!r}")
    if name != "smooth":
        if params:
            raise ValueError(f"{field}.cutoff_fn_params: cutoff_fn {name!r} takes no parameters, got {params!r}")
        return name, {}
    unknown = sorted(set(map(str, params)) - set(SMOOTH_CUTOFF_DEFAULTS))
    if unknown:
        raise ValueError(f"{field}.cutoff_fn_params: unknown entries {unknown} (smooth takes order and eps)")
    order = params.get("order", SMOOTH_CUTOFF_DEFAULTS["order"])
    eps = params.get("eps", SMOOTH_CUTOFF_DEFAULTS["eps"])
    if isinstance(order, (bool, np.bool_)) or not isinstance(order, (int, np.integer)):
        raise ValueError(f"{field}.cutoff_fn_params.order must be an integer, got {order!r}")
    if not 1 <= order <= MAX_SMOOTH_ORDER:
        raise ValueError(f"{field}.cutoff_fn_params.order must be in 1..{MAX_SMOOTH_ORDER}, got {order}")
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field}.cutoff_fn_params.eps must be a number, got {eps!r}")
    try:
        eps = float(eps)
    except OverflowError:  # an int beyond the doubles
        eps = float("inf")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"{field}.cutoff_fn_params.eps must be finite and > 0, got {params['eps']}")
    return name, {"order": int(order), "eps": eps}


def aev_constants(aev: dict, source: str) -> None:
    """The AEV constants of a model file: finite, cutoffs positive, shifts non-empty, a known
    cutoff function with valid parameters."""
    try:
        cutoffs = float(aev["radial_cutoff"]), float(aev["angular_cutoff"])
        scalars = [float(aev[k]) for k in ("eta_r", "eta_a", "zeta")]
        shifts = [np.asarray(aev[k], dtype=np.float64) for k in ("shf_r", "shf_a", "shf_z")]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: the model's AEV constants are incomplete or not numbers ({err})") from None
    if not all(np.isfinite([*cutoffs, *scalars])) or not all(np.all(np.isfinite(x)) for x in shifts):
        raise ValueError(f"{source}: the model's AEV constants contain NaN or infinite values")
    if not 0 < cutoffs[1] <= cutoffs[0]:
        raise ValueError(
            f"{source}: the model's cutoffs must satisfy 0 < angular_cutoff <= radial_cutoff, got {cutoffs}"
        )
    if any(x.ndim != 1 or x.size == 0 for x in shifts):
        raise ValueError(f"{source}: the model's AEV shifts (shf_r, shf_a, shf_z) must be non-empty lists")
    try:
        cutoff_function(aev.get("cutoff_fn"), aev.get("cutoff_fn_params"))
    except ValueError as err:
        raise ValueError(f"{source}: the model's {err}") from None
