"""``pyani screen``: energies of many molecules on a Dask cluster, to a Parquet directory."""

from __future__ import annotations

from ._common import CLIError

CHUNK_SIZE = 2000  # pyani.screen.CHUNK_SIZE (importing pyani.screen here would slow every command's start)


def register(commands) -> None:
    p = commands.add_parser(
        "screen",
        help="energies of many molecules on a Dask cluster, to Parquet",
        description="Stream every molecule of the files (any ase.io format; .smi files of SMILES need RDKit) "
        "in chunks to Dask workers and write a directory of Parquet part files (id, source, index, formula, "
        "natoms, energy and energy_std in Hartree, forces in Ha/A with --forces, error). Rerunning with the "
        "same --out resumes: written chunks are skipped.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="structure files or .smi files")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory, e.g. results.parquet")
    p.add_argument("--model", "-m", default="ani-1ccx", help="model name or .onnx/.info path (default ani-1ccx)")
    p.add_argument("--backend", default="auto", choices=("auto", "cpp", "numba"), help="AEV kernels")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (default: a local cluster, 1 worker/core)")
    p.add_argument("--workers", type=int, help="workers of the local cluster (default: one per core)")
    p.add_argument(
        "--chunk-size", type=int, default=CHUNK_SIZE, help=f"molecules per task and part file (default {CHUNK_SIZE})"
    )
    p.add_argument("--forces", action="store_true", help="also store forces (Ha/A)")
    p.add_argument("--format", help="ase.io format name when the file suffix does not tell")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    import pyani

    if args.chunk_size < 1:
        raise CLIError(f"--chunk-size must be positive, got {args.chunk_size}", status=2)
    if args.workers is not None and (args.workers < 1 or args.scheduler):
        raise CLIError("--workers must be positive, and only for the local cluster (not with --scheduler)", status=2)
    for path in args.files:
        if not Path(path).is_file():
            raise CLIError(f"{path}: no such file")
    try:
        pyani.load(args.model, backend=args.backend, device="cpu", n_threads=1)  # a bad model fails here, once
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        raise CLIError(f"--model {args.model}: {' '.join(str(err).split())}") from None
    try:
        import distributed  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise CLIError(f"pyani screen needs the [screen] extra (pip install 'pyani-nn[screen]'): {err}") from None
    from pyani.screen import screen

    client = args.scheduler
    if args.workers is not None:
        from pyani.screen import local_client

        client = local_client(args.workers)
    try:
        summary = screen(
            args.files,
            model=args.model,
            backend=args.backend,
            client=client,
            chunk_size=args.chunk_size,
            forces=args.forces,
            out=args.out,
            format=args.format,
        )
    except ValueError as err:
        raise CLIError(" ".join(str(err).split())) from None
    finally:
        if args.workers is not None:
            cluster = client.cluster
            client.close()
            cluster.close()
    skipped = summary.molecules - summary.computed
    print(
        f"{summary.molecules} molecules -> {summary.path} ({summary.failed} failed; "
        f"{summary.computed} computed in {summary.seconds:.1f} s, {summary.rate:.0f} molecules/s"
        + (f"; {skipped} already there" if skipped else "")
        + ")"
    )
    return 0  # failed molecules are data (their rows hold the errors), not a failed command
