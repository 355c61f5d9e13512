"""Screening bench: molecules/s of the serial batched API against pyani.screen on 1 and 2
local Dask workers, the 2-worker run killed halfway and resumed, and the CLI's cold start.

    python bench/screen.py [--molecules 100000] [--chunk-size 2000] [--repeat 3] [--skip-kill]

The serial figure reads and parses the file (pyani's XYZ reader) and computes chunk-size
molecules per call (as the workers do) on one thread; the screen's figures (Summary.rate) cover streaming the file, the
workers parsing and computing, and writing the Parquet parts; neither includes loading the
model or starting the cluster. Per CPU second rates add the CPU time of all processes (client,
scheduler, workers): on a shared machine they tell what wall-clock rates cannot.

Molecules: 12-40 atoms, H/C/N/O, perturbed copies of random acyclic drug-like molecules
(bench/systems.py), written once to bench/results/screen/molecules-N.xyz. Per-core rates divide
by the workers; the serial API runs single-threaded (one core). JSON: bench/results/screen.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import systems

HERE = Path(__file__).resolve().parent
WORK = HERE / "results" / "screen"


def generate(path: Path, n: int, seed: int = 0) -> None:
    """n molecules of 12-40 atoms: 300 random base molecules, each copy perturbed by 0.03 A."""
    rng = np.random.default_rng(seed)
    base = []
    while len(base) < 300:
        z, p = systems.drug_like(rng, int(rng.integers(4, 14)))
        if 12 <= len(z) <= 40:
            base.append((np.array([("H", "C", "N", "O")[[1, 6, 7, 8].index(k)] for k in z]), p))
    with open(path, "w") as f:
        for i in range(n):
            symbols, p = base[i % len(base)]
            p = p + rng.normal(0, 0.03, p.shape)
            lines = [f"{s} {x:.6f} {y:.6f} {w:.6f}" for s, (x, y, w) in zip(symbols, p)]
            f.write(f"{len(symbols)}\nmolecule {i}\n" + "\n".join(lines) + "\n")


def serial_rate(path: Path, limit: int, chunk_size: int):
    """(molecules/s of wall time, molecules per CPU second, energies) of the serial batched API
    on one thread: the file read and parsed (pyani's XYZ reader) and computed ``chunk_size``
    molecules at a time, as the screen's workers do (a batch sorted by size from more molecules
    pads less). Model loading and a warm-up are not timed."""
    import itertools

    import pyani
    from pyani import _batch, _structures

    model = pyani.load("ani-1ccx", n_threads=1)
    _batch.evaluate(model, list(itertools.islice(_structures.read(path), 200)))  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    energies = []
    frames = itertools.islice(_structures.read(path), limit)
    while chunk := list(itertools.islice(frames, chunk_size)):
        energies += [o.energy for o in _batch.evaluate(model, chunk)]
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(energies) / wall, len(energies) / cpu, np.array(energies)


def _warm(path: str) -> None:
    """Load the worker's model and run it once: the serial figure excludes loading too."""
    from pyani import _batch, _structures
    from pyani.screen import worker_model

    model = worker_model("ani-1ccx", "auto")
    _batch.evaluate(model, [s for _, s in zip(range(200), _structures.read(path))])


def _cpu_seconds() -> float:
    """CPU seconds of the calling process (run on each worker by client.run)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def screen_run(path: Path, out: Path, workers: int, chunk_size: int):
    """(Summary, CPU seconds of the workers and the client together: the machine is shared,
    so wall-clock rates undercount what the screen would do on idle cores)."""
    import pyarrow

    from pyani.screen import local_client, screen

    pyarrow.array([0])  # its first array imports pandas: a process's start-up, like the cluster's, not timed

    client = local_client(workers)
    try:
        client.run(_warm, str(path))
        before = sum(client.run(_cpu_seconds).values()) + time.process_time()
        summary = screen(str(path), client=client, chunk_size=chunk_size, out=out)
        cpu = sum(client.run(_cpu_seconds).values()) + time.process_time() - before
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    return summary, cpu


def read_out(out: Path):
    import pandas as pd

    return pd.read_parquet(out).sort_values("id", ignore_index=True)


def kill_halfway_and_resume(path: Path, out: Path, chunk_size: int, n: int):
    """`pyani screen` killed (SIGKILL, its whole process group) once half the parts are written,
    then rerun to completion. Returns (parts when killed, molecules computed by the rerun)."""
    parts = -(-n // chunk_size)
    command = [sys.executable, "-m", "pyani", "screen", str(path), "--out", str(out), "--workers", "2"]
    command += ["--chunk-size", str(chunk_size)]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(list(out.glob("part-*.parquet"))) < parts // 2:
        if process.poll() is not None:
            raise RuntimeError("pyani screen ended before it could be killed")
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(out.glob("part-*.parquet")))
    summary, _ = screen_run(path, out, 2, chunk_size)
    return written, summary.computed


def cold_start(path: Path, runs: int = 5):
    """Median wall and CPU seconds of `pyani energy` on one molecule, as a new process."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pyani", "energy", str(path)], check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return float(np.median(walls)), float(np.median(cpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=20000)
    parser.add_argument("--chunk-size", type=int, default=2000, help="as pyani.screen.CHUNK_SIZE")
    parser.add_argument("--serial-limit", type=int, default=0, help="molecules for the serial rate (0: all)")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="serial and screen runs, back to back, this many times")
    args = parser.parse_args()
    import shutil

    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"molecules-{args.molecules}.xyz"
    if not path.exists():
        generate(path, args.molecules)
    one = WORK / "one.xyz"
    with open(path) as f:
        n = int(f.readline())
        one.write_text(f"{n}\n" + "".join(f.readline() for _ in range(n + 1)))
    report = {"molecules": args.molecules, "chunk_size": args.chunk_size, "cores": os.cpu_count()}

    if not args.skip_cold_start:
        wall, cpu = cold_start(one)
        report["cold_start_s"] = {"wall": wall, "cpu": cpu}
        print(f"CLI cold start, pyani energy one.xyz ({n} atoms): {wall:.2f} s wall, {cpu:.2f} s CPU (median of 5)")

    # The machine may be shared: each repeat measures the serial rate and both screens back to
    # back, and its ratios use its own serial rate.
    runs, reference = [], None
    for repeat in range(args.repeat):
        rate, rate_cpu, serial = serial_rate(path, args.serial_limit or args.molecules, args.chunk_size)
        run = {"serial_per_s": rate, "serial_per_cpu_s": rate_cpu}
        print(
            f"[{repeat + 1}/{args.repeat}] serial batched API, 1 thread, reading included: {rate:.0f} molecules/s, "
            f"{rate_cpu:.0f} per CPU second ({len(serial)} molecules)"
        )
        for workers in (1, 2):
            out = WORK / f"out-{workers}.parquet"
            shutil.rmtree(out, ignore_errors=True)
            summary, cpu = screen_run(path, out, workers, args.chunk_size)
            df = read_out(out)
            lost = args.molecules - df["id"].nunique()
            duplicated = len(df) - df["id"].nunique()
            difference = float(np.nanmax(np.abs(df["energy"].to_numpy()[: len(serial)] - serial)))
            per_core = summary.rate / workers
            run[f"screen_{workers}"] = {
                "per_s": summary.rate,
                "per_core_per_s": per_core,
                "of_serial_per_core": per_core / rate,
                "seconds": summary.seconds,
                "per_cpu_s": summary.computed / cpu,
                "of_serial_per_cpu_s": summary.computed / cpu / rate_cpu,
                "lost": lost,
                "duplicated": duplicated,
                "failed": summary.failed,
                "max_abs_energy_difference_Ha": difference,
            }
            print(
                f"  screen, {workers} worker(s): {summary.rate:.0f} molecules/s = {per_core:.0f}/core "
                f"({per_core / rate:.0%} of serial per core), {summary.seconds:.1f} s; "
                f"{summary.computed / cpu:.0f} per CPU second ({summary.computed / cpu / rate_cpu:.0%} of serial); "
                f"lost {lost}, duplicated {duplicated}, failed {summary.failed}; max |E - serial| {difference:.1e} Ha"
            )
            reference = df
        runs.append(run)
    report["runs"] = runs
    for workers in (1, 2):
        ratios = [run[f"screen_{workers}"]["of_serial_per_core"] for run in runs]
        report[f"screen_{workers}_of_serial_per_core_median"] = float(np.median(ratios))
        print(f"screen, {workers} worker(s), per core / serial: median {np.median(ratios):.0%} of {len(ratios)}")

    if not args.skip_kill:
        out = WORK / "killed.parquet"
        shutil.rmtree(out, ignore_errors=True)
        written, computed = kill_halfway_and_resume(path, out, args.chunk_size, args.molecules)
        same = read_out(out).equals(reference)
        report["kill_and_resume"] = {"parts_when_killed": written, "computed_on_resume": computed, "identical": same}
        print(f"killed with {written} parts written; the rerun computed {computed}; output identical: {same}")

    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "screen.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
