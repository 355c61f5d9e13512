"""``pyani models``, ``pyani info MODEL`` and ``pyani export``: what models there are and
converting them."""

from __future__ import annotations

from ._common import CLIError


def register(commands) -> None:
    p = commands.add_parser("models", help="list the models pyani knows", description="List the models pyani knows.")
    p.set_defaults(run=run_models)

    p = commands.add_parser(
        "info", help="elements, ensemble size, cutoff and provenance of a model", description="Describe a model."
    )
    p.add_argument("model", metavar="MODEL", help="model name (ani-1x, ani-1ccx) or .onnx/.info path")
    p.add_argument("--json", action="store_true", help="the model's metadata as JSON")
    p.set_defaults(run=run_info)

    p = commands.add_parser("export", help="convert models to pyani's .onnx", description="Convert a model.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", parser_class=type(p))
    kinds.required = True
    k = kinds.add_parser("neurochem", help="NeuroChem ensemble (.info) -> pyani .onnx")
    k.add_argument("info", metavar="INFO", help="the ensemble's .info file (e.g. ani-2x_8x.info)")
    k.add_argument("out", metavar="OUT.onnx", help="the model file to write")
    k.set_defaults(run=run_export_neurochem)
    k = kinds.add_parser("torchani", help="TorchANI model -> pyani .onnx (not available yet)")
    k.add_argument("rest", nargs="*", help=argparse_suppress())
    k.set_defaults(run=run_export_torchani)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def run_models(args) -> int:
    from pyani._model_files import SHIPPED

    print(f"{'name':<10} {'where':<10} notes")
    for name in SHIPPED:
        print(f"{name:<10} {'shipped':<10} pyani.load({name!r})")
    print(f"{'ani-2x':<10} {'external':<10} pass the NeuroChem file: pyani.load('path/to/ani-2x_8x.info'),")
    print(f"{'':<10} {'':<10} or convert it once: pyani export neurochem ani-2x_8x.info ani-2x.onnx")
    return 0


def run_info(args) -> int:
    import json

    import pyani

    try:
        model = pyani.load(args.model, device="cpu", n_threads=1)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        raise CLIError(f"{args.model}: {' '.join(str(err).split())}") from None
    meta = {k: v for k, v in model.metadata.items() if k != "first_layer_weights"}
    if args.json:
        print(json.dumps(meta, indent=1))
        return 0
    aev = meta["aev"]
    provenance = ", ".join(f"{k}={v}" for k, v in meta.get("provenance", {}).items()) or "unknown"
    print(f"model:       {model.source}")
    print(f"elements:    {' '.join(model.elements)}")
    print(f"members:     {model.ensemble_size}")
    print(f"cutoff:      radial {aev['radial_cutoff']} A, angular {aev['angular_cutoff']} A")
    print(f"AEV length:  {aev.get('length', '?')}")
    print("self energy: " + ", ".join(f"{e} {v:.8f} Ha" for e, v in zip(model.elements, model.self_energies)))
    print(f"provenance:  {provenance}")
    return 0


def run_export_neurochem(args) -> int:
    from pathlib import Path

    from pyani.export import neurochem_to_onnx

    if Path(args.out).suffix != ".onnx":
        raise CLIError(f"OUT.onnx: {args.out!r} must end in .onnx", status=2)
    try:
        data = neurochem_to_onnx(args.info, args.out)
    except (ValueError, OSError) as err:
        raise CLIError(f"{args.info}: {' '.join(str(err).split())}") from None
    print(f"wrote {args.out} ({len(data) / 1e6:.1f} MB)")
    return 0


def run_export_torchani(args) -> int:
    raise CLIError("exporting TorchANI models needs the models issue (not available yet)", status=2)
