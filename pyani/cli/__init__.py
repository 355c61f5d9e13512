"""The ``pyani`` command line: energies, optimisation, dynamics, frequencies, scans and
screening of any structure file ase.io reads.

Each command group lives in its own module and imports what it needs (ase, matplotlib,
dask) only when it runs, so that ``pyani --help`` and ``pyani energy mol.xyz`` start fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from ._common import CLIError, Parser

#: command group modules, in the order ``pyani --help`` lists them
_GROUPS = ("energy", "simulate", "freq", "scan", "models", "screen")


def build_parser() -> Parser:
    """The argument parser of every command (importing no heavy module)."""
    from importlib import import_module

    parser = Parser(prog="pyani", description="ANI neural-network potentials on any structure file ase.io reads.")
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for group in _GROUPS:
        import_module(f"pyani.cli.{group}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed, 2 bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CLIError as err:
        return _fail(args.command, str(err), err.status)
    except KeyboardInterrupt:
        return _fail(args.command, "interrupted", 130)
    except BrokenPipeError:  # `pyani energy big.xyz | head`: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        if os.environ.get("PYANI_DEBUG"):
            raise
        return _fail(args.command, _message(err), 1)


def _fail(command: str, message: str, status: int) -> int:
    print(f"pyani {command}: error: {message}", file=sys.stderr)
    return status


def _message(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, (ValueError, TypeError, FileNotFoundError, CLIError)) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class _Version(argparse.Action):
    """--version, looking the version up only when asked (importlib.metadata is slow)."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(0, _version() + "\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"pyani {version('pyani')}"
    except PackageNotFoundError:
        return "pyani (not installed)"


__all__ = ["build_parser", "main"]
