"""``pyani energy``: energies (and forces) of every structure of any number of files."""

from __future__ import annotations

import sys

from ._common import add_model_options, load_model, progress

#: structures read ahead and computed together (bounded memory for any file size)
CHUNK = 512


def register(commands) -> None:
    p = commands.add_parser(
        "energy",
        help="energies of every structure in the files",
        description="Energy (eV and Hartree) and ensemble spread of every frame of every file. "
        "Files of molecules are computed in padded batches.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="structure files (any format ase.io reads)")
    p.add_argument("--format", help="ase.io format name when the file suffix does not tell")
    p.add_argument("--forces", action="store_true", help="also print forces (eV/A in the table, Ha/A in JSON)")
    p.add_argument("--json", action="store_true", help="JSON lines: file, index, natoms, energy (Ha), energy_std (Ha)")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from pyani import _batch, _structures
    from pyani.units import HARTREE_TO_EV

    model = load_model(args)
    failures = 0
    if not args.json:
        print(f"{'file':<24} {'index':>5} {'natoms':>6} {'energy/eV':>18} {'energy/Ha':>16} {'std/eV':>10}")
    bar = progress(unit="structure", desc="energy")

    def flush(chunk):
        nonlocal failures
        for s, out in zip(chunk, _batch.evaluate(model, chunk, forces=args.forces)):
            if out.error is not None:
                failures += 1
                print(f"pyani energy: error: {out.error}", file=sys.stderr)
                continue
            _print(s, out, args, HARTREE_TO_EV)
        bar.update(len(chunk))

    chunk = []
    for path in args.files:
        for s in _structures.read(path, args.format):
            chunk.append(s)
            if len(chunk) == CHUNK:
                flush(chunk)
                chunk = []
    if chunk:
        flush(chunk)
    bar.close()
    return 1 if failures else 0  # each failure already has its line on stderr


def _print(s, out, args, ev: float) -> None:
    if args.json:
        import json

        record = {"file": s.source, "index": s.index, "natoms": s.natoms, "formula": s.formula}
        record.update(energy=out.energy, energy_std=out.energy_std)
        if args.forces:
            record["forces"] = out.forces.tolist()
        print(json.dumps(record))
        return
    print(
        f"{s.source:<24} {s.index:>5} {s.natoms:>6} {out.energy * ev:>18.6f} {out.energy:>16.8f} "
        f"{out.energy_std * ev:>10.5f}"
    )
    if args.forces:
        for z, f in zip(s.numbers, out.forces * ev):
            print(f"    {z:>3} {f[0]:>12.6f} {f[1]:>12.6f} {f[2]:>12.6f}")
