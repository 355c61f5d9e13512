"""Hidden-layer activations of the ONNX networks: each one's forward nodes and its exact derivative
for the hand-written backward pass (pyani/export/onnx_graph.py).

An activation is described as in the model metadata, ``{"hidden": name, ...parameters}``:

    celu       max(z, 0) + alpha (exp(min(z, 0) / alpha) - 1)           {"alpha": a}
    gelu       z Phi(z), Phi(z) = (1 + erf(z / sqrt 2)) / 2              (PyTorch's exact GELU)
    gelu_tanh  z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) / 2          (approximate="tanh")
    silu       z sigmoid(z)
    tanh       tanh(z)
    softplus   log(1 + exp(z)), z itself above ``threshold``            {"threshold": 20.0}

Constants that float32 cannot hold exactly (alpha = 0.1, sqrt 2, ...) enter the graph as a sum
of three float32 numbers (``Builder.scalar``): a float64 copy of the graph (pyani/_precision.py)
then computes with the constant to double precision. ``Erf`` has no float64 kernel in ONNX
Runtime; pyani/_precision.py replaces it by a double-precision subgraph (pyani/_erf_graph.py).
"""

from __future__ import annotations

import math

#: Activation names this module builds.
NAMES = ("celu", "gelu", "gelu_tanh", "silu", "tanh", "softplus")

_GELU_TANH_CUBIC = 0.044715


def check(spec: dict) -> dict:
    """``spec`` validated and completed with its defaults; ValueError naming what is wrong."""
    name = spec.get("hidden")
    if name not in NAMES:
        raise ValueError(f"activation {name!r} is not supported (supported: {', '.join(NAMES)})")
    out = {"hidden": name}
    if name == "celu":
        alpha = float(spec.get("alpha", 1.0))
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"celu activation: alpha must be finite and > 0, got {alpha}")
        out["alpha"] = alpha
    if name == "softplus":
        if float(spec.get("beta", 1.0)) != 1.0:
            raise ValueError(f"softplus activation: only beta = 1 is supported, got {spec['beta']}")
        threshold = float(spec.get("threshold", 20.0))
        if not math.isfinite(threshold):
            raise ValueError(f"softplus activation: threshold must be finite, got {threshold}")
        out["threshold"] = threshold
    return out


class Activation:
    """Builds one activation's nodes. ``forward`` returns (h, saved): ``saved`` holds the
    forward values its ``derivative`` (nodes of the backward branch) needs."""

    def __init__(self, spec: dict, b):
        self.spec = check(spec)
        self.b = b
        self.name = self.spec["hidden"]

    def forward(self, nodes: list, z: str, tag: str) -> tuple[str, tuple]:
        b, name = self.b, self.name
        if name == "celu":
            # h = max(z, alpha (e - 1)), e = exp(min(z, 0) / alpha): alpha (e - 1) is 0 for z > 0
            # and above z for z < 0 (exp(x) >= 1 + x); e is also the derivative (1 for z > 0).
            alpha = b.scalar("celu_alpha", self.spec["alpha"])
            neg = b.node(nodes, "Clip", [z, "", b.zero], f"{tag}_neg")
            scaled = b.node(nodes, "Mul", [neg, b.scalar("celu_inv_alpha", 1.0 / self.spec["alpha"])], f"{tag}_negs")
            e = b.node(nodes, "Exp", [scaled], f"{tag}_exp")
            tail = b.node(nodes, "Sub", [b.node(nodes, "Mul", [e, alpha], f"{tag}_ae"), alpha], f"{tag}_tail")
            return b.node(nodes, "Max", [z, tail], f"{tag}_h"), (e,)
        if name == "gelu":
            u = b.node(nodes, "Mul", [z, b.scalar("inv_sqrt2", math.sqrt(0.5))], f"{tag}_u")
            erf = b.node(nodes, "Erf", [u], f"{tag}_erf")
            cdf = b.node(nodes, "Mul", [b.node(nodes, "Add", [erf, b.one], f"{tag}_erf1"), b.half], f"{tag}_cdf")
            return b.node(nodes, "Mul", [z, cdf], f"{tag}_h"), (z, cdf)
        if name == "gelu_tanh":
            z2 = b.node(nodes, "Mul", [z, z], f"{tag}_z2")
            cubic = b.scalar("gelu_cubic", _GELU_TANH_CUBIC)
            inner = b.node(nodes, "Add", [b.node(nodes, "Mul", [z2, cubic], f"{tag}_cz2"), b.one], f"{tag}_in1")
            arg = b.node(
                nodes,
                "Mul",
                [b.node(nodes, "Mul", [z, inner], f"{tag}_zin"), b.scalar("sqrt_2_over_pi", math.sqrt(2 / math.pi))],
                f"{tag}_arg",
            )
            t = b.node(nodes, "Tanh", [arg], f"{tag}_t")
            half1t = b.node(nodes, "Mul", [b.node(nodes, "Add", [t, b.one], f"{tag}_t1"), b.half], f"{tag}_ht")
            return b.node(nodes, "Mul", [z, half1t], f"{tag}_h"), (z, z2, t, half1t)
        if name == "silu":
            s = b.node(nodes, "Sigmoid", [z], f"{tag}_sig")
            return b.node(nodes, "Mul", [z, s], f"{tag}_h"), (z, s)
        if name == "tanh":
            t = b.node(nodes, "Tanh", [z], f"{tag}_h")
            return t, (t,)
        # softplus: relu(z) + log(1 + exp(-|z|)) does not overflow; z itself above the threshold
        # as PyTorch does (log(1 + exp(20)) - 20 = 2e-9)
        small = b.node(
            nodes, "Exp", [b.node(nodes, "Neg", [b.node(nodes, "Abs", [z], f"{tag}_abs")], f"{tag}_nabs")], f"{tag}_e"
        )
        log = b.node(nodes, "Log", [b.node(nodes, "Add", [small, b.one], f"{tag}_e1")], f"{tag}_log")
        soft = b.node(nodes, "Add", [b.node(nodes, "Relu", [z], f"{tag}_relu"), log], f"{tag}_soft")
        above = b.node(nodes, "Greater", [z, b.scalar("softplus_threshold", self.spec["threshold"])], f"{tag}_above")
        return b.node(nodes, "Where", [above, z, soft], f"{tag}_h"), (z, above)

    def derivative(self, nodes: list, saved: tuple, tag: str) -> str:
        b, name = self.b, self.name
        if name == "celu":
            return saved[0]
        if name == "gelu":
            z, cdf = saved  # Phi(z) + z phi(z), phi(z) = exp(-z^2 / 2) / sqrt(2 pi)
            z2h = b.node(nodes, "Mul", [b.node(nodes, "Mul", [z, z], f"{tag}_z2"), b.half], f"{tag}_z2h")
            pdf = b.node(nodes, "Exp", [b.node(nodes, "Neg", [z2h], f"{tag}_nz2h")], f"{tag}_gauss")
            pdf = b.node(nodes, "Mul", [pdf, b.scalar("inv_sqrt_2pi", 1 / math.sqrt(2 * math.pi))], f"{tag}_pdf")
            return b.node(nodes, "Add", [cdf, b.node(nodes, "Mul", [z, pdf], f"{tag}_zpdf")], f"{tag}_dh")
        if name == "gelu_tanh":
            # (1 + t)/2 + z/2 (1 - t^2) sqrt(2/pi) (1 + 3 c z^2)
            z, z2, t, half1t = saved
            sech2 = b.node(nodes, "Sub", [b.one, b.node(nodes, "Mul", [t, t], f"{tag}_t2")], f"{tag}_sech2")
            c3 = b.scalar("gelu_cubic3", 3 * _GELU_TANH_CUBIC)
            dinner = b.node(nodes, "Add", [b.node(nodes, "Mul", [z2, c3], f"{tag}_c3z2"), b.one], f"{tag}_din")
            darg = b.node(
                nodes, "Mul", [dinner, b.scalar("half_sqrt_2_over_pi", 0.5 * math.sqrt(2 / math.pi))], f"{tag}_darg"
            )
            second = b.node(nodes, "Mul", [b.node(nodes, "Mul", [z, sech2], f"{tag}_zs"), darg], f"{tag}_sec")
            return b.node(nodes, "Add", [half1t, second], f"{tag}_dh")
        if name == "silu":
            z, s = saved  # s (1 + z (1 - s))
            oms = b.node(nodes, "Sub", [b.one, s], f"{tag}_oms")
            inner = b.node(nodes, "Add", [b.node(nodes, "Mul", [z, oms], f"{tag}_zoms"), b.one], f"{tag}_in")
            return b.node(nodes, "Mul", [s, inner], f"{tag}_dh")
        if name == "tanh":
            (t,) = saved
            return b.node(nodes, "Sub", [b.one, b.node(nodes, "Mul", [t, t], f"{tag}_t2")], f"{tag}_dh")
        z, above = saved  # sigmoid(z), 1 above the threshold
        return b.node(nodes, "Where", [above, b.one, b.node(nodes, "Sigmoid", [z], f"{tag}_sig")], f"{tag}_dh")
