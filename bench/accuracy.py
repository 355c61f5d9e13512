"""Largest deviations from float64 TorchANI over the stored reference systems (tests/data).

python bench/accuracy.py            # every backend that loads
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import pyani
from pyani import _backend

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
ANI2X = Path(__file__).resolve().parents[2] / "shared" / "models" / "neurochem" / "ani-2x_8x.info"


def main() -> None:
    backends = [b for b in ("cpp", "numba") if b != "cpp" or _backend.cpp_available()]
    print(
        "| model | backend | systems | max dE/atom (Ha) | max dE member/atom (Ha) | max dF (Ha/A) "
        "| max d atomic (Ha) | max d stress (Ha/A^3) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in ("ani-1x", "ani-1ccx", "ani-2x"):
        source = ANI2X if name == "ani-2x" else name
        if name == "ani-2x" and not ANI2X.is_file():
            print(f"| {name} | skipped: {ANI2X} not found |")
            continue
        for backend in backends:
            model = pyani.load(source, backend=backend)
            worst = np.zeros(5)
            files = sorted((DATA / name).glob("*.npz"))
            for path in files:
                ref = dict(np.load(path))
                r = model.compute(
                    ref["numbers"],
                    ref["positions"],
                    ref.get("cell"),
                    ref.get("pbc"),
                    atomic=True,
                    stress="stress" in ref,
                )
                n = np.count_nonzero(ref["numbers"] >= 0, axis=-1)
                errors = [
                    np.max(np.abs(r.energy - ref["energy"]) / n),
                    np.max(np.abs(r.member_energies - ref["member_energies"]) / np.expand_dims(n, -1)),
                    np.abs(r.forces - ref["forces"]).max(),
                    np.abs(r.atomic_energies - ref["atomic_energies"]).max(),
                    np.abs(r.stress - ref["stress"]).max() if "stress" in ref else 0.0,
                ]
                worst = np.maximum(worst, errors)
            cells = " | ".join(f"{w:.1e}" for w in worst)
            print(f"| {name} | {backend} | {len(files)} | {cells} |")


if __name__ == "__main__":
    main()
