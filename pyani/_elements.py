"""Chemical symbols of the elements (index = atomic number)."""

from __future__ import annotations

SYMBOLS = (
    "X",
    "H",
    "He",
    "Li",
    "Be",
    "B",
    "C",
    "N",
    "O",
    "F",
    "Ne",
    "Na",
    "Mg",
    "Al",
    "Si",
    "P",
    "S",
    "Cl",
    "Ar",
    "K",
    "Ca",
    "Sc",
    "Ti",
    "V",
    "Cr",
    "Mn",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Ga",
    "Ge",
    "As",
    "Se",
    "Br",
    "Kr",
    "Rb",
    "Sr",
    "Y",
    "Zr",
    "Nb",
    "Mo",
    "Tc",
    "Ru",
    "Rh",
    "Pd",
    "Ag",
    "Cd",
    "In",
    "Sn",
    "Sb",
    "Te",
    "I",
    "Xe",
    "Cs",
    "Ba",
    "La",
    "Ce",
    "Pr",
    "Nd",
    "Pm",
    "Sm",
    "Eu",
    "Gd",
    "Tb",
    "Dy",
    "Ho",
    "Er",
    "Tm",
    "Yb",
    "Lu",
    "Hf",
    "Ta",
    "W",
    "Re",
    "Os",
    "Ir",
    "Pt",
    "Au",
    "Hg",
    "Tl",
    "Pb",
    "Bi",
    "Po",
    "At",
    "Rn",
    "Fr",
    "Ra",
    "Ac",
    "Th",
    "Pa",
    "U",
    "Np",
    "Pu",
    "Am",
    "Cm",
    "Bk",
    "Cf",
    "Es",
    "Fm",
    "Md",
    "No",
    "Lr",
    "Rf",
    "Db",
    "Sg",
    "Bh",
    "Hs",
    "Mt",
    "Ds",
    "Rg",
    "Cn",
    "Nh",
    "Fl",
    "Mc",
    "Lv",
    "Ts",
    "Og",
)


def atomic_number(symbol: str) -> int:
    """Atomic number of a chemical symbol ("Cl" -> 17)."""
    try:
        return SYMBOLS.index(symbol, 1)
    except ValueError:
        raise ValueError(f"unknown chemical symbol {symbol!r}") from None


def symbol(number: int) -> str:
    """Chemical symbol of an atomic number (17 -> "Cl"), or "Z=<n>" when unknown."""
    return SYMBOLS[number] if 0 < number < len(SYMBOLS) else f"Z={number}"


#: Standard atomic weights (amu), IUPAC abridged values, H to Kr and I: the default masses
#: of normal-mode analysis (pyani.vibrations). Index = atomic number; 0 = unknown.
MASSES = (
    0.0,
    1.008, 4.0026, 6.94, 9.0122, 10.81, 12.011, 14.007, 15.999, 18.998, 20.180,
    22.990, 24.305, 26.982, 28.085, 30.974, 32.06, 35.45, 39.95, 39.098, 40.078,
    44.956, 47.867, 50.942, 51.996, 54.938, 55.845, 58.933, 58.693, 63.546, 65.38,
    69.723, 72.630, 74.922, 78.971, 79.904, 83.798,
)  # fmt: skip
IODINE, IODINE_MASS = 53, 126.90


def mass(number: int) -> float:
    """Standard atomic weight (amu) of an element; ValueError where pyani has none."""
    if number == IODINE:
        return IODINE_MASS
    if not 0 < number < len(MASSES):
        raise ValueError(f"masses: no standard atomic weight for Z={number} here; pass masses=")
    return MASSES[number]
