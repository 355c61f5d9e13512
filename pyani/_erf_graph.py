"""erf(x) in float64 from elementary ONNX ops: ONNX Runtime has no float64 ``Erf`` kernel, so the
float64 copy of a model (pyani/_precision.py) replaces each ``Erf`` node by these nodes.

    |x| < 0.5:  x * sum_n a_n x^(2n)       Taylor series of erf, 14 terms (relative 1e-17)
    otherwise:  sign(x) (1 - exp(-x^2) erfcx(|x|))
    erfcx(u) = 2 / (1 + 2u) * sum_k c_k T_k(y),  y = (u - K) / (u + K) in [-1, 1)

The map y(u) takes [0, inf) onto [-1, 1) with erfcx(u) (1 + 2u) / 2 smooth in y (it tends to
1/sqrt(pi) as u -> inf), so a degree-24 Chebyshev series in y, interpolated here from
``math.erfc`` once, gives erf within ~5e-15 absolute everywhere (Clenshaw's recurrence).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from . import _onnx_writer as onnx_writer

_K = 3.0
_DEGREE = 24
_SMALL = 0.5
_TAYLOR_TERMS = 14


def _scaled_erfc(u: float) -> float:
    """exp(u^2) erfc(u), from math.erfc while it does not underflow, else its asymptotic series."""
    if u < 26.0:
        return math.exp(u * u) * math.erfc(u)
    total, term = 1.0, 1.0
    for n in range(1, 10):
        term *= -(2 * n - 1) / (2 * u * u)
        total += term
    return total / (u * math.sqrt(math.pi))


@lru_cache(maxsize=1)
def chebyshev_coefficients() -> np.ndarray:
    """c_k of erfcx(u) (1 + 2u) / 2 = sum_k c_k T_k(y), y = (u - K) / (u + K)."""

    def target(y):
        u = _K * (1 + y) / (1 - y)
        return np.array([_scaled_erfc(v) * (1 + 2 * v) / 2 for v in np.atleast_1d(u)])

    return np.polynomial.chebyshev.chebinterpolate(target, _DEGREE)


def taylor_coefficients() -> np.ndarray:
    """a_n of erf(x) = x sum_n a_n x^(2n)."""
    n = np.arange(_TAYLOR_TERMS)
    signs = np.where(n % 2 == 0, 1.0, -1.0)
    factorials = np.array([math.factorial(k) for k in n], dtype=np.float64)
    return 2 / math.sqrt(math.pi) * signs / (factorials * (2 * n + 1))


def erf_nodes(x: str, out: str) -> list[bytes]:
    """Serialized float64 nodes computing ``out`` = erf(``x``); their names start with ``out``."""
    nodes: list[bytes] = []
    count = [0]

    def name(tag: str) -> str:
        count[0] += 1
        return f"{out}__erf64_{count[0]}_{tag}"

    def const(value) -> str:
        n = name("c")
        data = onnx_writer.tensor(n, np.asarray(value, dtype=np.float64))
        nodes.append(onnx_writer.node("Constant", [], [n], n, value=onnx_writer.Tensor(data)))
        return n

    def op(kind: str, *inputs: str, result: str | None = None) -> str:
        n = result or name(kind.lower())
        nodes.append(onnx_writer.node(kind, list(inputs), [n], n))
        return n

    one = const(1.0)
    u = op("Abs", x)
    # large |x|: sign(x) (1 - exp(-u^2) erfcx(u)); u clipped so that y stays finite
    uc = op("Min", u, const(30.0))
    y = op("Div", op("Sub", uc, const(_K)), op("Add", uc, const(_K)))
    two_y = op("Add", y, y)
    c = chebyshev_coefficients()
    b1, b2 = const(c[-1]), None
    for ck in c[-2:0:-1]:  # Clenshaw: b_k = 2y b_(k+1) - b_(k+2) + c_k
        t = op("Mul", two_y, b1)
        if b2 is not None:
            t = op("Sub", t, b2)
        b1, b2 = op("Add", t, const(ck)), b1
    series = op("Add", op("Sub", op("Mul", y, b1), b2), const(c[0]))
    erfcx = op("Div", op("Add", series, series), op("Add", op("Add", uc, uc), one))
    erfc = op("Mul", op("Exp", op("Neg", op("Mul", u, u))), erfcx)
    large = op("Mul", op("Sign", x), op("Sub", one, erfc))
    # small |x|: Taylor series in x^2 (Horner)
    x2 = op("Mul", x, x)
    a = taylor_coefficients()
    acc = const(a[-1])
    for an in a[-2::-1]:
        acc = op("Add", op("Mul", acc, x2), const(an))
    small = op("Mul", acc, x)
    op("Where", op("Less", u, const(_SMALL)), small, large, result=out)
    return nodes
