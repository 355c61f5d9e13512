"""``python -m pyani``: the pyani command line."""

from pyani.cli import main

raise SystemExit(main())
