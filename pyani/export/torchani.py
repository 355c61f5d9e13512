"""Read a TorchANI 2.x model (``torchani.arch.ANI``) into plain arrays (an ``Ensemble``).

What is read, and from where (TorchANI 2.9 module names)::

    elements          model.atomic_numbers, in the model's order
    AEV               potentials["nnp"].aev_computer: ANIRadial / ANIAngular terms (scalar eta,
                      zeta; shifts, sections), their cutoffs and cutoff function (CutoffCosine or
                      CutoffSmooth(order, eps))
    networks          an Ensemble of ANINetworks (its active members), or one ANINetworks (a
                      single member, ``model[i]``): per element an AtomicNetwork of Linear
                      layers (with or without biases) and one activation
    self energies     model.energy_shifter (SelfEnergy; zeros when disabled)
    pair potentials   RepulsionXTB and TwoBodyDispersionD3, from their buffers, in the order of
                      model.potentials (metadata "pair_potentials", spec/export.md)

Anything else (other containers, potentials, terms, activations, cutoffs, charge networks) is
refused with a ValueError naming it: an export never drops a part of the model silently.
Buffers are read as float64, exactly as TorchANI uses them; weights are stored in float32 (the
model files' precision), so a model trained in float64 is rounded to float32 weights.
"""

from __future__ import annotations

import math

import numpy as np

from .neurochem import AEVConstants, Ensemble


def _torch():
    try:
        import torch
        import torchani
    except ImportError as err:
        raise ImportError(
            f"exporting TorchANI models needs torch and torchani ({err}); pip install 'pyani-nn[export]'"
        ) from None
    return torch, torchani


def _array(tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def _floats(tensor) -> list:
    return _array(tensor).tolist()


def _cutoff_function(fn, where: str) -> tuple[str, dict | None]:
    """(name, params) of a TorchANI cutoff function module."""
    from torchani import cutoffs

    if type(fn) is cutoffs.CutoffCosine:
        return "cosine", None
    if type(fn) is cutoffs.CutoffSmooth:
        order, eps = fn.order, float(fn.eps)
        if not (isinstance(order, int) and order > 0 and math.isfinite(eps) and eps > 0):
            raise ValueError(f"{where}: CutoffSmooth(order={order!r}, eps={eps!r}) needs an integer order > 0, eps > 0")
        return "smooth", {"order": order, "eps": eps}
    if type(fn) is cutoffs.CutoffDummy:
        return "dummy", None
    raise ValueError(f"{where}: cutoff function {type(fn).__name__} is not supported (cosine, smooth)")


def _activation(module) -> dict:
    torch, _ = _torch()
    from torchani.nn import TightCELU

    kind = type(module)
    if kind is TightCELU:
        return {"hidden": "celu", "alpha": 0.1}
    if kind is torch.nn.CELU:
        return {"hidden": "celu", "alpha": float(module.alpha)}
    if kind is torch.nn.GELU:
        if module.approximate not in ("none", "tanh"):
            raise ValueError(f"activation GELU(approximate={module.approximate!r}) is not supported")
        return {"hidden": "gelu" if module.approximate == "none" else "gelu_tanh"}
    if kind is torch.nn.SiLU:
        return {"hidden": "silu"}
    if kind is torch.nn.Tanh:
        return {"hidden": "tanh"}
    if kind is torch.nn.Softplus:
        if float(module.beta) != 1.0:
            raise ValueError(f"activation Softplus(beta={module.beta}) is not supported (beta = 1 only)")
        return {"hidden": "softplus", "threshold": float(module.threshold)}
    raise ValueError(
        f"activation {kind.__module__}.{kind.__name__} is not supported (TightCELU, CELU, GELU, SiLU, Tanh, Softplus)"
    )


def _aev(aev_computer) -> AEVConstants:
    from torchani.aev import AEVComputer
    from torchani.aev._terms import ANIAngular, ANIRadial

    if type(aev_computer) is not AEVComputer:
        raise ValueError(f"AEV computer {type(aev_computer).__name__} is not supported (AEVComputer only)")
    radial, angular = aev_computer.radial, aev_computer.angular
    if type(radial) is not ANIRadial:
        raise ValueError(f"radial AEV term {type(radial).__name__} is not supported (ANIRadial only)")
    if type(angular) is not ANIAngular:
        raise ValueError(f"angular AEV term {type(angular).__name__} is not supported (ANIAngular only)")
    for name, tensor in (("radial eta", radial.eta), ("angular eta", angular.eta), ("angular zeta", angular.zeta)):
        if tensor.numel() != 1:
            raise ValueError(f"{name} has {tensor.numel()} values: only a scalar is supported")
    fn, params = _cutoff_function(radial.cutoff_fn, "AEV radial term")
    if (fn, params) != _cutoff_function(angular.cutoff_fn, "AEV angular term"):
        raise ValueError("AEV radial and angular terms use different cutoff functions")
    if fn == "dummy":
        raise ValueError("AEV cutoff function CutoffDummy is not supported (cosine, smooth)")
    return AEVConstants(
        radial_cutoff=float(radial.cutoff),
        angular_cutoff=float(angular.cutoff),
        eta_r=_floats(radial.eta)[0],
        shf_r=_floats(radial.shifts),
        eta_a=_floats(angular.eta)[0],
        zeta=_floats(angular.zeta)[0],
        shf_a=_floats(angular.shifts),
        shf_z=_floats(angular.sections),
        cutoff_fn=fn,
        cutoff_fn_params=params,
    )


def _members(container) -> list:
    """The ANINetworks of each active member."""
    from torchani import nn

    if type(container) is nn.ANINetworks:
        return [container]
    if type(container) is nn.Ensemble:
        members = [m for j, m in enumerate(container.members) if j in container.active_members_idxs]
        for m in members:
            if type(m) is not nn.ANINetworks:
                raise ValueError(f"ensemble member container {type(m).__name__} is not supported (ANINetworks only)")
        if not members:
            raise ValueError("the ensemble has no active members")
        return members
    raise ValueError(
        f"network container {type(container).__name__} is not supported "
        "(Ensemble of ANINetworks, or ANINetworks; export before to_infer_model())"
    )


def _network(net, where: str) -> tuple[list, dict]:
    """([(weight [out, in], bias [out] or None)], activation spec) of an AtomicNetwork."""
    torch, _ = _torch()
    from torchani.nn import AtomicNetwork

    if type(net) is not AtomicNetwork:
        raise ValueError(f"{where}: atomic network {type(net).__name__} is not supported (AtomicNetwork only)")
    linears = [*net.layers, net.final_layer]
    layers = []
    for k, layer in enumerate(linears):
        if type(layer) is not torch.nn.Linear:
            raise ValueError(f"{where}: layer {k + 1} is a {type(layer).__name__}, not a torch.nn.Linear")
        bias = None if layer.bias is None else _array(layer.bias)
        layers.append((_array(layer.weight), bias))
    if layers[-1][0].shape[0] != 1:
        raise ValueError(f"{where}: the output layer has {layers[-1][0].shape[0]} outputs, not 1 (energy only)")
    return layers, _activation(net.activation)


def _networks(container, elements: list[str], aev_length: int) -> tuple[list, dict]:
    networks = [[] for _ in elements]
    activation = None
    for m, member in enumerate(_members(container)):
        if member.out_dim != 1:
            raise ValueError(f"member {m}: networks with {member.out_dim} outputs are not supported (energy only)")
        keys = list(member.atomics.keys())
        if keys != elements:
            raise ValueError(f"member {m}: networks for elements {keys}, the model has {elements}")
        for e, el in enumerate(elements):
            layers, act = _network(member.atomics[el], f"member {m}, element {el}")
            if activation is None:
                activation = act
            elif act != activation:
                raise ValueError(f"member {m}, element {el}: activation {act} differs from {activation}")
            if layers[0][0].shape[1] != aev_length:
                raise ValueError(
                    f"member {m}, element {el}: takes {layers[0][0].shape[1]} inputs, AEV has {aev_length}"
                )
            if networks[e] and [w.shape for w, _ in layers] != [w.shape for w, _ in networks[e][0]]:
                raise ValueError(f"member {m}, element {el}: layer shapes differ from member 0's")
            networks[e].append(layers)
    return networks, activation


def _pair_cutoff(pot, where: str) -> dict:
    cutoff = float(pot.cutoff)
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"{where}: cutoff {cutoff} is not supported (a finite cutoff > 0 is)")
    fn, params = _cutoff_function(pot.cutoff_fn, where)
    entry = {"cutoff": cutoff, "cutoff_fn": fn}
    if params is not None:
        entry["cutoff_fn_params"] = params
    entry["bohr_per_angstrom"] = float(pot.ANGSTROM_TO_BOHR)
    return entry


def _pair_potential(name: str, pot, atomic_numbers: list[int]) -> dict:
    from torchani.potentials import RepulsionXTB, TwoBodyDispersionD3
    from torchani.potentials.dftd3 import BeckeJohnsonDamp

    where = f"potential {name!r} ({type(pot).__name__})"
    if type(pot) not in (RepulsionXTB, TwoBodyDispersionD3):
        raise ValueError(f"{where} is not supported (RepulsionXTB, TwoBodyDispersionD3 and the networks are)")
    if pot.atomic_numbers.tolist() != atomic_numbers:
        raise ValueError(f"{where}: its elements {pot.atomic_numbers.tolist()} differ from the model's")
    if type(pot) is RepulsionXTB:
        return {
            "kind": "repulsion_xtb",
            **_pair_cutoff(pot, where),
            "y_ab": _floats(pot.y_ab),
            "sqrt_alpha_ab": _floats(pot.sqrt_alpha_ab),
            "k_rep_ab": _floats(pot.k_rep_ab),
        }
    damp = pot._damp_fn
    if type(damp) is not BeckeJohnsonDamp:
        raise ValueError(f"{where}: damping {type(damp).__name__} is not supported (BeckeJohnsonDamp only)")
    return {
        "kind": "dispersion_d3bj",
        **_pair_cutoff(pot, where),
        "s6": float(pot._s6),
        "s8": float(pot._s8),
        "a1": float(damp._a1),
        "a2": float(damp._a2),
        "cutoff_radii": _floats(damp.cutoff_radii),
        "sqrt_charge_ab": _floats(pot.sqrt_charge_ab),
        "covalent_radii": _floats(pot.covalent_radii),
        "k1": float(pot._k1),
        "k2": float(pot._k2),
        "k3": float(pot._k3),
        "eps": float(pot._eps),
        "c6": _floats(pot.precalc_coeff6),
        "cn_a": _floats(pot.precalc_coordnums_a),
        "cn_b": _floats(pot.precalc_coordnums_b),
    }


def read_torchani(model) -> Ensemble:
    """The arrays of a TorchANI ``ANI`` model (see the module docstring); ValueError naming any
    part pyani cannot run."""
    _, torchani = _torch()
    from torchani.arch import ANI, ANIq
    from torchani.potentials import NNPotential
    from torchani.sae import SelfEnergy

    if isinstance(model, ANIq) or hasattr(model, "charge_networks"):
        raise ValueError(f"model: {type(model).__name__} has charge networks, which pyani does not run")
    if not isinstance(model, ANI):
        raise ValueError(
            f"model must be a torchani.arch.ANI (e.g. torchani.models.ANI2x()), got {type(model).__name__}"
        )
    atomic_numbers = [int(z) for z in model.atomic_numbers.tolist()]
    elements = list(model.symbols)

    nnp = model.potentials["nnp"]
    if type(nnp) is not NNPotential:
        raise ValueError(f"potential 'nnp' ({type(nnp).__name__}) is not supported (NNPotential only)")
    if not nnp._enabled:
        raise ValueError("potential 'nnp' is disabled: pyani runs the networks always")
    aev = _aev(nnp.aev_computer)
    if int(nnp.aev_computer.num_species) != len(elements):
        raise ValueError(f"the AEV computer has {nnp.aev_computer.num_species} elements, the model {len(elements)}")
    networks, activation = _networks(nnp.neural_networks, elements, aev.length(len(elements)))

    pair_potentials, disabled = [], []
    for name, pot in model.potentials.items():
        if name == "nnp":
            continue
        if not pot._enabled:  # TorchANI skips it too
            disabled.append(name)
            continue
        pair_potentials.append(_pair_potential(name, pot, atomic_numbers))

    shifter = model.energy_shifter
    if type(shifter) is not SelfEnergy:
        raise ValueError(f"energy shifter {type(shifter).__name__} is not supported (SelfEnergy only)")
    self_energies = _floats(shifter.self_energies) if shifter._enabled else [0.0] * len(elements)
    if len(self_energies) != len(elements):
        raise ValueError(f"{len(self_energies)} self energies for {len(elements)} elements")

    provenance = {"source": "TorchANI", "torchani_version": torchani.__version__, "class": type(model).__name__}
    if disabled:
        provenance["disabled_potentials"] = disabled
    if not shifter._enabled:
        provenance["self_energies"] = "disabled"
    return Ensemble(
        elements,
        aev,
        self_energies,
        networks,
        provenance,
        activation=activation,
        prescaled=False,
        pair_potentials=pair_potentials,
    )
