"""Properties of the compiled core that no computation would show.

cpp/aev.cpp is compiled twice, for any x86-64 CPU and with AVX2 (CMakeLists.txt). C++
templates both copies use (std::vector members and the like) are merged by the linker into
one copy, which the baseline kernels call too: it must be the baseline one, or a CPU without
AVX2 would die on an illegal instruction. The link order makes it so; this test checks it.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess

import pytest

from pyani import _backend

VEX = re.compile(r"\t(v[a-z0-9]+)\s|%[yz]mm")


@pytest.mark.skipif(not _backend.cpp_available(), reason="the C++ core is not built")
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="AVX2 variants exist on x86-64 only")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_code_shared_by_both_kernel_variants_has_no_avx_instructions():
    from pyani import _core

    table = subprocess.run(["objdump", "-T", _core.__file__], capture_output=True, text=True, check=True).stdout
    functions = []
    for line in table.splitlines():
        fields = line.split()
        if " DF .text" in line and "avx2" not in fields[-1]:
            functions.append((int(fields[0], 16), int(fields[-3], 16), fields[-1]))
    assert len(functions) > 10  # the kernels' entry points and the std templates they share
    offenders = []
    for start, size, name in functions:
        code = subprocess.run(
            [
                "objdump",
                "-d",
                "--no-show-raw-insn",
                f"--start-address={start}",
                f"--stop-address={start + size}",
                _core.__file__,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if VEX.search(code):
            offenders.append(name)
    assert not offenders, f"AVX instructions outside pyani::avx2: {offenders}"
