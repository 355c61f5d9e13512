"""Properties of the compiled core that no computation would show.

The AEV kernels exist twice in one translation unit (cpp/aev_dispatch.cpp): for any x86-64
CPU, and inside a region that gives the functions defined there the AVX2 target. Functions
with vague linkage (std templates, inline helpers) are merged by the linker, and the
baseline kernels may call the kept copy: no such function may hold AVX2 code, whatever the
link order. The construction makes it so; this test checks the built module: every exported
function (merged ones are exported) outside the namespace pyani::avx2 is free of VEX
instructions, and the functions of pyani::avx2 do use them.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess

import pytest

from pyani import _backend

VEX = re.compile(r"\t(v[a-z0-9]+)\s|%[yz]mm")
# Mangled names of functions in pyani::avx2, their const members and their local entities
# (lambdas): _ZN5pyani4avx2..., _ZNK5pyani4avx2..., _ZZN5pyani4avx2...
AVX2_NAMESPACE = re.compile(r"^_ZZ?NK?5pyani4avx2")


def exported_functions(path: str) -> list[tuple[int, int, str]]:
    """(address, size, mangled name) of the functions in the module's dynamic symbol table."""
    table = subprocess.run(["objdump", "-T", path], capture_output=True, text=True, check=True).stdout
    functions = []
    for line in table.splitlines():
        fields = line.split()
        if " DF .text" in line and int(fields[-3], 16) > 0:
            functions.append((int(fields[0], 16), int(fields[-3], 16), fields[-1]))
    return functions


def uses_vex(path: str, start: int, size: int) -> bool:
    code = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", f"--start-address={start}", f"--stop-address={start + size}", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return VEX.search(code) is not None


@pytest.mark.skipif(not _backend.cpp_available(), reason="the C++ core is not built")
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="AVX2 variants exist on x86-64 only")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_avx2_code_stays_in_its_namespace():
    from pyani import _core

    path = _core.__file__
    functions = exported_functions(path)
    avx2 = [f for f in functions if AVX2_NAMESPACE.match(f[2])]
    shared = [f for f in functions if not AVX2_NAMESPACE.match(f[2])]
    # Both kernel variants, the std templates they instantiate and the bindings are exported:
    # a module built with hidden symbols would leave nothing to check.
    assert any("8baseline" in name for _, _, name in shared), "baseline kernels not exported"
    assert len(shared) > 50
    if avx2:
        assert sum(uses_vex(path, start, size) for start, size, _ in avx2) >= 5, "the AVX2 variant has no AVX2 code"
    offenders = [name for start, size, name in shared if uses_vex(path, start, size)]
    assert not offenders, f"AVX instructions outside pyani::avx2: {offenders}"
