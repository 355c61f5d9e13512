"""Chemical symbols of the elements (index = atomic number)."""

from __future__ import annotations

SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge "
    "As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm "
    "Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U "
    "Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()


def atomic_number(symbol: str) -> int:
    """Atomic number of a chemical symbol ("Cl" -> 17)."""
    try:
        return SYMBOLS.index(symbol, 1)
    except ValueError:
        raise ValueError(f"unknown chemical symbol {symbol!r}") from None


def symbol(number: int) -> str:
    """Chemical symbol of an atomic number (17 -> "Cl"), or "Z=<n>" when unknown."""
    return SYMBOLS[number] if 0 < number < len(SYMBOLS) else f"Z={number}"
