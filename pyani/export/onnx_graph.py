"""Build the ONNX graph of an ANI ensemble, forward and backward, from plain weight arrays.

Graph interface (format version 2)::

    inputs   aev             float32 [n_atoms, n_features]  rows grouped by element, in
                                                            the model's element order
             counts          int64   [n_elements]           atoms of each element
             with_gradient   bool    []                     compute aev_gradient or not
    outputs  atomic_energies float32 [n_members, n_atoms]   network outputs (Hartree),
                                                            self energies NOT included
             aev_gradient    float32 [n_atoms, n_features]  d(mean over members of the
                                                            summed energy)/d(aev); shape
                                                            [0, aev_length] when not asked

n_features is the AEV length, or fewer: the first-layer weights ``<element>_w1``
[aev_length, n_members * hidden] are the only tensors that touch the feature axis (forward
and backward), so a session made with those initializers replaced by some of their rows
takes AEVs holding only those columns. pyani does that for big systems lacking some
elements, whose AEV columns are all zero.

ONNX Runtime has no autograd, so the backward pass of the MLPs is written out here. It sits
in the ``then`` branch of an ``If`` on ``with_gradient``: ONNX Runtime runs every node of a
graph whatever outputs are fetched, and energy-only calls must not pay for the gradient.

Per element, the first layers of all members are one GEMM (weights concatenated along the
output axis); deeper layers are batched MatMuls over the member axis. Layers may lack biases.

Hidden activations: pyani/export/activations.py (CELU, GELU, ..., each with its derivative).
Two forms of the weights:
- prescaled (NeuroChem's CELU, alpha 0.1; the shipped ANI-1x/1ccx files): pre-activations are
  scaled by 1 / alpha so that CELU costs three ops. The scaled weights are rounded to float32,
  which costs float64 runs ~5e-9 Ha/atom. ``<element>_wout_mean`` is output weights / M.
- unscaled (TorchANI exports): the weights as trained, so a float64 run
  (pyani/_precision.py) is exact. ``<element>_wout_mean`` holds the output weights and the
  backward pass divides by M after its first product (float32 W / M would round for M = 5).
Either way a session that replaces ``<element>_wout_mean`` by M times one member's output
weights (zeros for the others) gets that member's dE/dAEV (pyani/_networks.py member plans).
"""

from __future__ import annotations

import json

import numpy as np

from .. import _onnx_writer as onnx_writer
from .._onnx_writer import BOOL, FLOAT, INT64
from .activations import Activation
from .activations import check as check_activation
from .neurochem import Ensemble

FORMAT_VERSION = 2
OPSET = 17
METADATA_KEY = "pyani"


def ensemble_metadata(ens: Ensemble) -> dict:
    """The self-description stored in the model file (see ``pyani.model``)."""
    from .._elements import atomic_number

    aev = ens.aev
    meta = {
        "format": "pyani-ani",
        "format_version": FORMAT_VERSION,
        "elements": list(ens.elements),
        "atomic_numbers": [atomic_number(el) for el in ens.elements],
        "self_energies": [float(e) for e in ens.self_energies],
        "ensemble_size": ens.ensemble_size,
        "aev": {
            "radial_cutoff": aev.radial_cutoff,
            "angular_cutoff": aev.angular_cutoff,
            "eta_r": aev.eta_r,
            "shf_r": list(aev.shf_r),
            "eta_a": aev.eta_a,
            "zeta": aev.zeta,
            "shf_a": list(aev.shf_a),
            "shf_z": list(aev.shf_z),
            "cutoff_fn": aev.cutoff_fn,
            **({"cutoff_fn_params": dict(aev.cutoff_fn_params)} if aev.cutoff_fn_params else {}),
            "length": aev.length(len(ens.elements)),
        },
        "activation": {**check_activation(ens.activation), "output": "linear", "prescaled": ens.prescaled},
        "units": {"energy": "Hartree", "length": "Angstrom"},
        "provenance": ens.provenance,
    }
    if ens.pair_potentials:
        meta["pair_potentials"] = list(ens.pair_potentials)
    return meta


_SMALL_CONSTANTS = {"one": 1.0, "zero": 0.0, "half": 0.5}


class _Builder:
    """Collects serialized nodes and initializers with unique names."""

    def __init__(self):
        self.initializers: list[bytes] = []
        self.names: set[str] = set()
        self.scalars: dict[str, str] = {}
        self.main: list = []  # the main graph's nodes

    def name(self, base: str) -> str:
        k, name = 0, base
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def const(self, base: str, array) -> str:
        name = self.name(base)
        self.initializers.append(onnx_writer.tensor(name, np.asarray(array)))
        return name

    def node(self, nodes: list, op: str, inputs: list[str], base: str, **attrs) -> str:
        out = self.name(base)
        nodes.append(onnx_writer.node(op, inputs, [out], out, **attrs))
        return out

    def __getattr__(self, name: str) -> str:
        # one, zero, half: initializers made on first use (an unused one makes ONNX Runtime warn)
        if name not in _SMALL_CONSTANTS:
            raise AttributeError(name)
        value = self.const(name, np.float32(_SMALL_CONSTANTS[name]))
        setattr(self, name, value)
        return value

    def scalar(self, base: str, value: float) -> str:
        """A float constant as the sum of three float32 numbers, added in the main graph (the
        runtime folds it): float32 within an ulp, float64 (pyani/_precision.py) to double
        precision, where one float32 number would round 0.1 at 1.5e-9."""
        if base not in self.scalars:
            hi = np.float32(value)
            mid = np.float32(value - np.float64(hi))
            lo = np.float32(value - np.float64(hi) - np.float64(mid))
            total = self.const(f"{base}_hi", hi)
            for part, tag in ((mid, "mid"), (lo, "lo")):
                if part != 0:
                    total = self.node(self.main, "Add", [total, self.const(f"{base}_{tag}", part)], f"{base}_{tag}_sum")
            self.scalars[base] = total
        return self.scalars[base]


def build_model(ens: Ensemble) -> bytes:
    """The serialized ONNX model of ``ens`` (forward + gradient, metadata included)."""
    meta = ensemble_metadata(ens)
    n_members = ens.ensemble_size
    n_features = meta["aev"]["length"]
    b = _Builder()
    for reserved in ("aev", "counts", "with_gradient", "atomic_energies", "aev_gradient"):
        b.names.add(reserved)
    main = b.main  # forward nodes (main graph)
    grad: list = []  # backward nodes (then-branch)
    prescaled = ens.prescaled
    if prescaled and (ens.activation.get("hidden") != "celu" or not ens.activation.get("alpha", 0) > 0):
        raise ValueError(f"prescaled weights need a CELU activation with alpha > 0, not {ens.activation}")
    act = None if prescaled else Activation(ens.activation, b)

    perm = {"perm": [1, 0, 2]}

    if prescaled:  # (in this order: the shipped files' bytes)
        one, zero = b.one, b.zero
    else:
        # Unscaled graphs divide the output weights by M in the graph (exact in float64).
        mean_divisor = b.const("n_members", np.float32(n_members))

    def activation(z: str, tag: str) -> tuple[str, tuple]:
        if act is not None:
            return act.forward(main, z, tag)
        # h = relu(z) + exp(min(z, 0)) = celu(alpha z)/alpha + 1, from ops ONNX Runtime
        # vectorises (its Celu is scalar: 1.7 ms vs ~0.55 ms on 8 x 1024 x 160 floats).
        # min(z, 0) as Clip: ONNX Runtime's Min broadcasts a scalar at half Clip's speed.
        relu = b.node(main, "Relu", [z], f"{tag}_relu")
        neg = b.node(main, "Exp", [b.node(main, "Clip", [z, "", zero], f"{tag}_neg")], f"{tag}_exp")
        h = b.node(main, "Add", [relu, neg], f"{tag}_h")
        return h, (h,)

    def derivative(saved: tuple, tag: str) -> str:
        if act is not None:
            return act.derivative(grad, saved, tag)
        # d h / d z = 1 for z > 0 (h > 1), exp(z) = h otherwise: min(h, 1)
        return b.node(grad, "Clip", [saved[0], "", one], f"{tag}_dh")

    def add_bias(z: str, bias, k: int) -> str:
        if bias is None:
            return z
        return b.node(main, "Add", [z, b.const(f"{el}_b{k}", bias)], f"{el}_z{k}b")

    chunks = [b.name(f"aev_{el}") for el in ens.elements]
    main.append(onnx_writer.node("Split", ["aev", "counts"], chunks, "split_by_element", axis=0))
    energies, gradients, first_layer = [], [], []
    for el, x, members in zip(ens.elements, chunks, ens.networks):
        n_layers = len(members[0])
        weights = [np.stack([m[k][0] for m in members]).astype(np.float64) for k in range(n_layers)]  # [M, out, in]
        has_bias = [members[0][k][1] is not None for k in range(n_layers)]
        if any(any((m[k][1] is not None) != has_bias[k] for m in members) for k in range(n_layers)):
            raise ValueError(f"networks of {el}: members differ in which layers have biases")
        biases = [
            np.stack([m[k][1] for m in members]).astype(np.float64) if has_bias[k] else None for k in range(n_layers)
        ]  # [M, out]
        h1 = weights[0].shape[1]
        if prescaled:
            # The network in scaled pre-activations z' = z / alpha and h = celu(z)/alpha + 1 (see
            # activation): layer 1 takes W1 / alpha, b1 / alpha; hidden layers W, b / alpha - sum_in W;
            # the output layer alpha W, b - alpha sum_in W. The same function, fewer passes.
            alpha = ens.activation["alpha"]
            biases = [np.zeros(w.shape[:2]) if v is None else v for w, v in zip(weights, biases)]
            weights[0], biases[0] = weights[0] / alpha, biases[0] / alpha
            for k in range(1, n_layers):
                column_sums = weights[k].sum(axis=2)  # [M, out]
                if k < n_layers - 1:
                    biases[k] = biases[k] / alpha - column_sums
                else:
                    biases[k] = biases[k] - alpha * column_sums
                    weights[k] = weights[k] * alpha
        weights = [w.astype(np.float32) for w in weights]
        biases = [None if v is None else v.astype(np.float32) for v in biases]

        # Layer 1, all members in one GEMM: [n, D] @ [D, M*H1].
        w1 = b.const(f"{el}_w1", weights[0].reshape(n_members * h1, -1).T.copy())
        first_layer.append(w1)
        z = b.node(main, "MatMul", [x, w1], f"{el}_z1")
        z = add_bias(z, None if biases[0] is None else biases[0].reshape(-1), 1)
        z = b.node(main, "Reshape", [z, b.const(f"{el}_shape1", np.array([0, n_members, h1]))], f"{el}_z1r")
        z = b.node(main, "Transpose", [z], f"{el}_z1t", **perm)  # [M, n, H1]
        acts = [activation(z, f"{el}_a1")]
        transposed = []  # W_k^T per layer, [M, out, in]: folded to constants by the runtime
        for k in range(1, n_layers):
            w = b.const(f"{el}_w{k + 1}", weights[k].transpose(0, 2, 1).copy())  # [M, in, out]
            z = b.node(main, "MatMul", [acts[-1][0], w], f"{el}_z{k + 1}")
            z = add_bias(z, None if biases[k] is None else biases[k][:, None, :], k + 1)
            if k < n_layers - 1:
                acts.append(activation(z, f"{el}_a{k + 1}"))
                transposed.append(b.node(main, "Transpose", [w], f"{el}_w{k + 1}t", perm=[0, 2, 1]))
        axes = b.const(f"{el}_axes", np.array([2]))
        energies.append(b.node(main, "Squeeze", [z, axes], f"{el}_energy"))  # [M, n]

        # Backward of the member mean: start from the output weights / M, [M, 1, H_last].
        g = b.const(f"{el}_wout_mean", (weights[-1] / n_members if prescaled else weights[-1]).astype(np.float32))
        for k in range(n_layers - 2, -1, -1):
            g = b.node(grad, "Mul", [g, derivative(acts[k][1], f"{el}_l{k + 1}")], f"{el}_g{k + 1}")
            if k == n_layers - 2 and not prescaled:
                # not on the initializer itself: the runtime would fold that Div into a constant
                # before a member plan replaces the initializer
                g = b.node(grad, "Div", [g, mean_divisor], f"{el}_g{k + 1}_mean")
            if k > 0:
                g = b.node(grad, "MatMul", [g, transposed[k - 1]], f"{el}_g{k + 1}w")
        g = b.node(grad, "Transpose", [g], f"{el}_g1t", **perm)  # [n, M, H1]
        g = b.node(grad, "Reshape", [g, b.const(f"{el}_shape_back", np.array([0, n_members * h1]))], f"{el}_g1r")
        gradients.append(b.node(grad, "Gemm", [g, w1], f"{el}_aev_grad", transB=1))  # g @ w1^T

    meta["first_layer_weights"] = first_layer  # what a session may replace by some of its rows
    main.append(onnx_writer.node("Concat", energies, ["atomic_energies"], "concat_energies", axis=1))
    grad.append(onnx_writer.node("Concat", gradients, ["grad_out"], "concat_gradients", axis=0))
    empty = onnx_writer.empty_tensor("empty", FLOAT, [0, n_features])
    out_info = onnx_writer.value_info("grad_out", FLOAT, ["n_rows", "n_features"])
    then_graph = onnx_writer.graph(grad, "gradient", [], [out_info])
    constant = onnx_writer.node("Constant", [], ["grad_out"], None, value=onnx_writer.Tensor(empty))
    else_graph = onnx_writer.graph([constant], "no_gradient", [], [out_info])
    main.append(
        onnx_writer.node(
            "If",
            ["with_gradient"],
            ["aev_gradient"],
            "maybe_gradient",
            then_branch=onnx_writer.Graph(then_graph),
            else_branch=onnx_writer.Graph(else_graph),
        )
    )
    graph = onnx_writer.graph(
        main,
        "ani_ensemble",
        [
            onnx_writer.value_info("aev", FLOAT, ["n_atoms", "n_features"]),
            onnx_writer.value_info("counts", INT64, [len(ens.elements)]),
            onnx_writer.value_info("with_gradient", BOOL, []),
        ],
        [
            onnx_writer.value_info("atomic_energies", FLOAT, [n_members, "n_atoms"]),
            onnx_writer.value_info("aev_gradient", FLOAT, ["n_rows", "n_features"]),
        ],
        b.initializers,
    )
    # IR version 8: readable by onnxruntime >= 1.14.
    return onnx_writer.model(
        graph, ir_version=8, opset=OPSET, producer="pyani", metadata={METADATA_KEY: json.dumps(meta)}
    )
