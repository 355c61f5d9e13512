"""The name pyani is installed under, and the pip command for each optional part.

"pyani" on PyPI is an unrelated genomics package (average nucleotide identity): this one is
distributed as pyani-nn and imported as ``pyani``.
"""

from __future__ import annotations

DISTRIBUTION = "pyani-nn"


def install_command(extra: str) -> str:
    """The one shell command that adds the optional dependencies ``extra`` (pyproject.toml)."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"
