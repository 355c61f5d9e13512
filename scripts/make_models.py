"""Build pyani/models/ani-1x.onnx and ani-1ccx.onnx from the NeuroChem files of torchani==2.0.

The torchani 2.0 wheel (MIT licence) carries the original NeuroChem ensembles of ANI-1x and
ANI-1ccx under torchani/resources/. This script downloads that wheel with pip (no torch
needed), extracts the two ensembles and converts them with pyani.export.neurochem_to_onnx.

    python scripts/make_models.py            # needs pyani importable (not onnx) and pip + network
    python scripts/make_models.py --from DIR # DIR holds ani-1x_8x.info, ani-1ccx_8x.info, ...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from pyani.export import neurochem_to_onnx

MODELS = {"ani-1x": "ani-1x_8x.info", "ani-1ccx": "ani-1ccx_8x.info"}
OUT = Path(__file__).resolve().parent.parent / "pyani" / "models"


def fetch_resources(workdir: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "torchani==2.0", "-d", str(workdir)],
        check=True,
    )
    (wheel,) = workdir.glob("torchani-2.0-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(workdir / "wheel")
    return workdir / "wheel" / "torchani" / "resources"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, help="directory with the NeuroChem files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source or fetch_resources(Path(tmp))
        OUT.mkdir(parents=True, exist_ok=True)
        for name, info in MODELS.items():
            out = OUT / f"{name}.onnx"
            data = neurochem_to_onnx(source / info, out)
            print(f"{out}: {len(data) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
