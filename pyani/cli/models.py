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
    k = kinds.add_parser(
        "torchani",
        help="TorchANI model -> pyani .onnx (needs torch + torchani)",
        description="Convert a TorchANI 2.x model to pyani's .onnx. MODEL is a NeuroChem model TorchANI "
        "reads from its data directory (ani1x, ani1ccx, ani2x), another torchani.models name (ANI2xr, "
        "ANI2dr, ...: TorchANI downloads its weights), or module:factory, a Python callable returning the "
        "model (e.g. mymodels:trained, mymodels.py importable from the current directory).",
    )
    k.add_argument("model", metavar="MODEL", help="ani1x, ani1ccx, ani2x, a torchani.models name, or module:factory")
    k.add_argument("out", metavar="OUT.onnx", help="the model file to write")
    k.add_argument("--member", type=int, metavar="I", help="export ensemble member I alone (model[I])")
    k.set_defaults(run=run_export_torchani)


def run_models(args) -> int:
    from pyani._model_files import SHIPPED

    print(f"{'name':<10} {'where':<10} notes")
    for name in SHIPPED:
        print(f"{name:<10} {'shipped':<10} pyani.load({name!r})")
    print(f"{'ani-2x':<10} {'external':<10} pass the NeuroChem file: pyani.load('path/to/ani-2x_8x.info'),")
    print(f"{'':<10} {'':<10} or convert it once: pyani export neurochem ani-2x_8x.info ani-2x.onnx")
    print(f"{'torchani':<10} {'export':<10} TorchANI 2.x models: pyani export torchani ani2x ani2x.onnx (needs torch)")
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
    cutoff_fn = aev.get("cutoff_fn") or "cosine"
    params = ", ".join(f"{k} {v}" for k, v in (aev.get("cutoff_fn_params") or {}).items())
    print(
        f"cutoff:      radial {aev['radial_cutoff']} A, angular {aev['angular_cutoff']} A, {cutoff_fn}"
        + (f" ({params})" if params else "")
    )
    print(f"AEV length:  {aev.get('length', '?')}")
    activation = meta.get("activation", {}).get("hidden")
    if activation:
        print(f"activation:  {activation}")
    for pot in meta.get("pair_potentials") or []:
        print(f"pair term:   {pot['kind']}, cutoff {pot['cutoff']} A ({pot['cutoff_fn']})")
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


#: NeuroChem models TorchANI reads from its own data directory (no download of state dicts).
NEUROCHEM_NAMES = {"ani1x": "ani1x", "ani1ccx": "ani1ccx", "ani2x": "ani2x"}


def run_export_torchani(args) -> int:
    from pathlib import Path

    if Path(args.out).suffix != ".onnx":
        raise CLIError(f"OUT.onnx: {args.out!r} must end in .onnx", status=2)
    model = _torchani_model(args.model)
    if args.member is not None:
        try:
            model = model[args.member]
        except (IndexError, ValueError) as err:
            raise CLIError(f"--member {args.member}: {err}", status=2) from None
    from pyani.export import torchani_to_onnx

    try:
        data = torchani_to_onnx(model, args.out)
    except (ValueError, OSError) as err:
        raise CLIError(f"{args.model}: {' '.join(str(err).split())}") from None
    print(f"wrote {args.out} ({len(data) / 1e6:.1f} MB)")
    return 0


def _torchani_model(spec: str):
    """The TorchANI model named by MODEL (see the export torchani help)."""
    import importlib

    try:
        import torchani
    except ImportError as err:
        raise CLIError(
            f"exporting TorchANI models needs torch and torchani ({err}): pip install 'pyani-nn[export]'"
        ) from None
    if ":" in spec:
        import os
        import sys

        module_name, _, attr = spec.partition(":")
        if os.getcwd() not in sys.path:  # the console script's path starts at its own directory
            sys.path.insert(0, os.getcwd())
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise CLIError(f"MODEL {spec!r}: {err}") from None
        return factory()
    key = spec.lower().replace("-", "").replace("_", "")
    if key in NEUROCHEM_NAMES:
        return torchani.neurochem.load_model_from_name(NEUROCHEM_NAMES[key])
    factory = getattr(torchani.models, spec, None)
    if not callable(factory) or spec.startswith("_"):
        raise CLIError(f"MODEL {spec!r}: not ani1x, ani1ccx, ani2x, a torchani.models name or module:factory", status=2)
    return factory()
