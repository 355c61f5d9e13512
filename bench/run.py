"""pyani benchmarks, with TorchANI side by side in the same run when it is importable.

    python bench/run.py [--threads N] [--backends cpp,numba] [--sweep --max-atoms 30000]

ANI-1ccx, energy + forces unless said. Each figure is a median after warm-up (5 calls, then
as many as fill ~1 s, at least 5). Ratios are TorchANI time / pyani time (> 1: pyani faster).
JSON goes to --json (default bench/results/latest.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import systems

import pyani
from pyani import _backend, _onnx_file, _runtime

HERE = Path(__file__).resolve().parent


def timeit(fn, budget=1.0, warmup=5, minimum=5, maximum=10_000):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < minimum or (time.perf_counter() - start < budget and len(times) < maximum):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


class TorchANI:
    """TorchANI's fastest CPU set-up: float32 ANI-1ccx, cell list for periodic boxes."""

    def __init__(self, threads):
        import torch
        import torchani

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = torchani.neurochem.load_model_from_name("ani1ccx")
        self.cell_list = torchani.neighbors.CellList()
        self.all_pairs = self.model.neighborlist

    def compute(self, numbers, positions, cell=None, forces=True):
        torch = self.torch
        numbers = np.atleast_2d(numbers)
        species = torch.tensor(numbers)
        coords = torch.tensor(positions.reshape(*numbers.shape, 3), dtype=torch.float32, requires_grad=forces)
        kwargs = {}
        self.model.neighborlist = self.cell_list if cell is not None else self.all_pairs
        if cell is not None:
            kwargs = {"cell": torch.tensor(cell, dtype=torch.float32), "pbc": torch.tensor([True] * 3)}
        energy = self.model((species, coords), **kwargs).energies
        if forces:
            return -torch.autograd.grad(energy.sum(), coords)[0]
        return energy.detach()


def load_torchani(threads):
    try:
        return TorchANI(threads)
    except Exception as err:  # not installed, or no NeuroChem files (TORCHANI_DATA_DIR)
        print(f"TorchANI not available ({type(err).__name__}: {err}); pyani figures only\n")
        return None


def workloads():
    z, p = systems.aspirin()
    bz, bp = systems.drug_like_batch(100)
    wz, wp, wc = systems.water_box(512)
    return {
        "aspirin E+F": (z, p, None, True, 1, "ms"),
        "aspirin E": (z, p, None, False, 1, "ms"),
        "batch 100 molecules E+F": (bz, bp, None, True, 100, "molecules/s"),
        "water 1536 atoms E+F": (wz, wp, wc, True, len(wz), "atoms/s"),
    }


def figure(seconds, count, unit):
    return seconds * 1e3 if unit == "ms" else count / seconds


NETWORKS = "networks (ONNX, E and dE/dAEV)"


def profile(model, numbers, positions, cell):
    """Seconds per stage of one Model.compute (molecule, box or padded batch), through the
    model's own stages, plus the FLOPs of the networks (see network_flops)."""
    system = model.prepare(numbers, positions, cell)
    plan = model.networks.plan(system.counts)
    args = (system.species, system.pairs, system.vectors, system.rows, system.n_atoms, plan.columns)
    forward = lambda: model.aev_computer.forward(*args, backward=True)  # noqa: E731
    run = forward()
    x = run.aev.copy()
    work = x.copy()  # big inputs get the gradient written over them: time on a fresh copy
    refresh = lambda: np.copyto(work, x)  # noqa: E731
    grad = plan.run(work, system.counts, True)[1].copy()
    stages = {
        "checks + neighbour list": timeit(lambda: model.prepare(numbers, positions, cell)),
        "AEV": timeit(forward),
        NETWORKS: timeit(lambda: (refresh(), plan.run(work, system.counts, True))) - timeit(refresh),
        "AEV backward + forces": timeit(lambda: run.backward(grad, system.pair_bounds, forces=True)),
        "whole compute": timeit(lambda: model.compute(numbers, positions, cell)),
    }
    return stages, network_flops(model, system.counts, x.shape[1])


def network_flops(model, counts, n_columns):
    """Floating-point operations of the networks for E and dE/dAEV: per atom and member,
    2 * in * out for each layer forward and each layer but the output one backward (the
    output layer's backward is a constant), with n_columns AEV columns in the first layer."""
    names = [f"{el}_w{k}" for el in model.elements for k in range(1, 10)]
    source = model.networks.model
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    weights = _onnx_file.read_initializers(data, names)
    members, total = model.ensemble_size, 0
    for el, count in zip(model.elements, counts):
        sizes = [weights[f"{el}_w1"].shape[1] // members]  # w1 is [D, M * H1]
        k = 2
        while f"{el}_w{k}" in weights:
            sizes.append(weights[f"{el}_w{k}"].shape[2])  # hidden / output: [M, in, out]
            k += 1
        widths = [n_columns, *sizes]
        forward = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        backward = sum(a * b for a, b in zip(widths[:-2], widths[1:-1]))
        total += 2 * members * (forward + backward) * int(count)
    return total


def sgemm_peak(threads):
    """FLOP/s of one 2048^3 float32 MatMul in ONNX Runtime with these threads: the most the
    networks could reach on this machine."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    size = 2048
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "sgemm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [size, size]) for x in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    options = _runtime.session_options(threads, spinning=True)
    session = ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    seconds = timeit(lambda: session.run(None, {"a": a, "b": a}), budget=2.0)
    return 2 * size**3 / seconds


COLD = """
import pyani
m = pyani.load("ani-1ccx", backend="{backend}")
m.compute([6, 1, 1, 1, 1], [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
          [0.63, -0.63, -0.63]])
print(peak_rss_kb())
"""
COLD_TORCHANI = """
import torch, torchani
m = torchani.neurochem.load_model_from_name("ani1ccx")
c = torch.tensor([[[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63],
                   [0.63, -0.63, -0.63]]], requires_grad=True)
e = m((torch.tensor([[6, 1, 1, 1, 1]]), c)).energies
torch.autograd.grad(e.sum(), c)
print(peak_rss_kb())
"""
# A cached ANI-2x: the time of load() alone (issue 12: <= 0.3 s), after the imports.
LOAD_ANI2X = """
import time, pyani
t = time.perf_counter()
pyani.load("ani-2x")
print(time.perf_counter() - t, peak_rss_kb())
"""
# ru_maxrss would include the memory of the benchmark process the child was forked from;
# VmHWM starts afresh at exec.
PEAK_RSS = """
def peak_rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
"""


def cold_start(script, runs=5):
    walls, rss = [], []
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", PEAK_RSS + script], capture_output=True, text=True, check=True, cwd="/"
        )
        walls.append(time.perf_counter() - t)
        rss.append(int(out.stdout.split()[-1]) / 1024)
    return float(np.median(walls)), float(np.median(rss))


def one_box(n_molecules, backend, threads):
    """Run in a fresh process by --sweep: atoms/s and peak RSS (MB) of one water box."""
    z, p, c = systems.water_box(n_molecules)
    model = pyani.load("ani-1ccx", backend=backend, n_threads=threads)
    model.compute(z, p, c)
    t = timeit(lambda: model.compute(z, p, c), budget=2.0, warmup=1, minimum=2)
    namespace = {}
    exec(PEAK_RSS, namespace)
    rss = namespace["peak_rss_kb"]() / 1024
    kept = model.aev_computer.retained_bytes / 2**20  # kernel buffers kept for reuse
    print(json.dumps({"atoms": len(z), "atoms_per_s": len(z) / t, "peak_rss_mb": rss, "kept_mb": kept}))


#: Waters per box of the size sweep (cubes of 3 to 70): 81 to 1,029,000 atoms.
SWEEP_MOLECULES = (27, 125, 512, 2197, 8000, 32768, 132651, 343000)


def sweep(backend, threads, max_atoms):
    rows = []
    for n in (n for n in SWEEP_MOLECULES if 3 * n <= max_atoms):
        out = subprocess.run(
            [sys.executable, __file__, "--one-box", str(n), "--backends", backend, "--threads", str(threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.splitlines()[-1]))
        per_atom = {r["atoms"]: 1 / r["atoms_per_s"] for r in rows}
        relative = per_atom[rows[-1]["atoms"]] / per_atom[1536] if 1536 in per_atom else float("nan")
        rows[-1]["time_per_atom_vs_1536"] = relative
        versus = f"time/atom {relative:.2f}x the 1536-atom box's" if relative == relative else ""
        print(
            f"  {rows[-1]['atoms']:>9d} atoms  {rows[-1]['atoms_per_s']:>10.0f} atoms/s  "
            f"{rows[-1]['peak_rss_mb']:>8.0f} MB peak  {rows[-1]['kept_mb']:>7.0f} MB kept  {versus}"
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no plot)")
        return rows
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    atoms = [r["atoms"] for r in rows]
    a.semilogx(atoms, [r["atoms_per_s"] for r in rows], "o-")
    a.set(xlabel="atoms", ylabel="atoms/s", title=f"pyani ({backend}) water E+F")
    b.loglog(atoms, [r["peak_rss_mb"] for r in rows], "o-")
    b.set(xlabel="atoms", ylabel="peak RSS (MB)")
    fig.tight_layout()
    out = HERE / "results" / "sweep.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"  plot: {out}")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--backends", default="cpp,numba")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--max-atoms", type=int, default=30000)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--one-box", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b != "cpp" or _backend.cpp_available()]
    if args.one_box:
        return one_box(args.one_box, backends[0], args.threads)

    results = {"threads": args.threads, "workloads": {}, "profile": {}, "cold_start": {}}
    torchani = load_torchani(args.threads)
    loads = workloads()
    models = {b: pyani.load("ani-1ccx", backend=b, n_threads=args.threads) for b in backends}
    # the cost of load(precision="float64"), on the first backend
    models[f"{backends[0]} f64"] = pyani.load(
        "ani-1ccx", backend=backends[0], n_threads=args.threads, precision="float64"
    )
    columns = list(models)
    header = f"{'workload':<26}{'unit':>13}" + "".join(f"{b:>12}" for b in columns)
    if torchani:
        header += f"{'TorchANI':>12}" + "".join(f"{'ratio ' + b:>14}" for b in columns)
    print(f"ANI-1ccx, {args.threads} threads\n{header}")
    for name, (z, p, c, forces, count, unit) in loads.items():
        row = {}
        for b, m in models.items():
            row[b] = figure(timeit(partial(m.compute, z, p, c, forces=forces)), count, unit)
        if torchani:
            row["torchani"] = figure(timeit(partial(torchani.compute, z, p, c, forces=forces)), count, unit)
        line = f"{name:<26}{unit:>13}" + "".join(f"{row[b]:>12.4g}" for b in columns)
        if torchani:
            line += f"{row['torchani']:>12.4g}"
            for b in columns:
                ratio = row["torchani"] / row[b] if unit == "ms" else row[b] / row["torchani"]
                row[f"ratio_{b}"] = ratio
                line += f"{ratio:>13.2f}x"
        print(line)
        results["workloads"][name] = {"unit": unit, **row}

    profiled = {
        "aspirin": (*systems.aspirin(), None, 1, "ms"),
        "batch 100 molecules": (*systems.drug_like_batch(100), None, 100, "molecules/s"),
        "1536-atom water box": (*systems.water_box(512), 1536, "atoms/s"),
    }
    floors = {}
    for b in backends:
        m = models[b]
        for label, (z, p, c, _, _) in profiled.items():
            stages, flops = profile(m, z, p, c)
            results["profile"][f"{b}, {label}"] = stages
            floors.setdefault(label, (flops, {}))[1][b] = stages
            print(f"\nprofile, {b}, {label} E+F (ms):")
            for stage, seconds in stages.items():
                print(f"  {stage:<32}{seconds * 1e3:>8.2f}")

    peak = sgemm_peak(args.threads)
    results["sgemm_peak_flops"] = peak
    best = backends[0]
    print(
        f"\narithmetic floor: network FLOPs at ONNX Runtime's 2048^3 sgemm rate ({peak / 1e9:.0f} GFLOP/s), "
        f"then plus the measured {best} kernels (checks + neighbour list, AEV, backward + forces); E+F"
    )
    print(f"{'workload':<22}{'GFLOP':>8}{'networks':>10}{'+ kernels':>11}{'best figure':>14}{'measured':>11}  unit")
    for label, (flops, stages) in floors.items():
        _, _, _, count, unit = profiled[label]
        kernels = sum(v for k, v in stages[best].items() if k not in ("whole compute", NETWORKS))
        networks_floor = flops / peak
        measured = stages[best]["whole compute"]
        results.setdefault("floor", {})[label] = {
            "network_flops": flops,
            "networks_s": networks_floor,
            "kernels_s": kernels,
            "best_figure": figure(networks_floor + kernels, count, unit),
        }
        print(
            f"{label:<22}{flops / 1e9:>8.3f}{networks_floor * 1e3:>8.2f}ms{(networks_floor + kernels) * 1e3:>9.2f}ms"
            f"{figure(networks_floor + kernels, count, unit):>14.4g}{figure(measured, count, unit):>11.4g}  {unit}"
        )

    print("\ncold start (new process: import, load ani-1ccx, methane E+F; median of 5):")
    for b in backends:
        wall, rss = cold_start(COLD.format(backend=b))
        results["cold_start"][b] = {"wall_s": wall, "peak_rss_mb": rss}
        print(f"  pyani {b:<8}{wall:>7.2f} s {rss:>7.0f} MB")
    if torchani:
        wall, rss = cold_start(COLD_TORCHANI)
        results["cold_start"]["torchani"] = {"wall_s": wall, "peak_rss_mb": rss}
        print(f"  TorchANI    {wall:>7.2f} s {rss:>7.0f} MB")

    from pyani._zoo import model_path

    if model_path().is_file():
        loads = []
        for _ in range(5):
            script = PEAK_RSS + LOAD_ANI2X
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
            loads.append(float(out.stdout.split()[0]))
        results["cold_start"]["ani2x_cached_load_s"] = float(np.median(loads))
        print(f"  pyani.load('ani-2x') from the cache, in a new process: {np.median(loads):.3f} s (median of 5)")
    else:
        print("  (ANI-2x is not cached here: no figure for its load)")

    if args.sweep:
        print(f"\nsize sweep (water boxes, fresh process per size, {backends[0]}):")
        results["sweep"] = sweep(backends[0], args.threads, args.max_atoms)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
