"""Unit conversions at pyani's edges (inside, everything is Hartree and Angstrom)."""

HARTREE_TO_EV = 27.211386024367243
