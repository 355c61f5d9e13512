"""Time per MD step of OpenMM driving ANI-1ccx through a PythonForce: pyani (through openmm-ml's
MLPotential) against TorchANI (the same kind of PythonForce, in the reference environment).

    python bench/openmm_step.py [--steps 1000] [--threads 1]

The system is alanine dipeptide (ACE-ALA-NME, 22 atoms) in vacuum, built as in the tests
(tests/dipeptide.py) and written once to a PDB that both engines read. Each engine runs in its own
process: OpenMM CPU platform, LangevinMiddleIntegrator at 300 K, 1 fs, warm-up steps excluded.
TorchANI runs where REF_PYTHON points (torch + torchani + openmm; see
/work/shared/tools/setup_reference_env.sh), as openmm-ml runs it: float32, energy.backward() (float32 totals are
rounded to ~0.1 kJ/mol at this size, hence the small difference in start energies).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARTREE_TO_KJ_PER_MOL = 2625.4996394799
WARMUP = 20


def torchani_force(threads):
    """A PythonForce evaluating TorchANI's ANI-1ccx (NeuroChem files, works offline)."""
    import openmm
    import torch
    import torchani

    torch.set_num_threads(threads)
    model = torchani.neurochem.load_model_from_name("ani1ccx")

    def compute(state, species=None):
        positions = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.angstrom)
        coords = torch.tensor(positions, dtype=torch.float32).unsqueeze(0).requires_grad_(True)
        energy = model((species, coords)).energies * HARTREE_TO_KJ_PER_MOL
        energy.backward()
        # the gradient is per Angstrom; OpenMM wants kJ/mol/nm (openmm-ml 1.8's own ANI omits this 10)
        return energy.item(), -10.0 * coords.grad[0].numpy()

    return model, compute


def run_engine(engine, pdb_path, steps, threads):
    """Build the System with one engine, time ``steps`` Langevin steps; a dict of figures."""
    import numpy as np
    import openmm
    import openmm.app as app
    from openmm import unit

    pdb = app.PDBFile(str(pdb_path))
    numbers = [atom.element.atomic_number for atom in pdb.topology.atoms()]
    if engine == "pyani":
        from openmmml import MLPotential

        import pyani

        system = MLPotential("pyani-ani1ccx", n_threads=threads).createSystem(pdb.topology)
        direct = pyani.load("ani-1ccx", n_threads=threads)

        def compute_once(x):
            return direct.compute(numbers, x).energy * HARTREE_TO_KJ_PER_MOL

    else:
        import torch

        _, compute = torchani_force(threads)
        species = torch.tensor([numbers])
        system = openmm.System()
        for atom in pdb.topology.atoms():
            system.addParticle(atom.element.mass)

        def function(state):
            return compute(state, species)

        system.addForce(openmm.PythonForce(function))
        system.addForce(openmm.CMMotionRemover())

        def compute_once(x):
            class State:  # the two calls compute() makes on an OpenMM State
                def getPositions(self, asNumpy=True):
                    return x * unit.angstrom

            return compute(State(), species)[0]

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": str(threads)})
    context.setPositions(pdb.positions)
    start_energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(WARMUP)
    t0 = time.perf_counter()
    integrator.step(steps)
    per_step = (time.perf_counter() - t0) / steps
    state = context.getState(getEnergy=True, getPositions=True)
    final = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    # the energy evaluation alone, outside OpenMM, on the final positions
    x = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    compute_once(x)
    t0 = time.perf_counter()
    calls = max(50, steps // 4)
    for _ in range(calls):
        compute_once(x)
    per_call = (time.perf_counter() - t0) / calls
    return {
        "engine": engine,
        "atoms": len(numbers),
        "steps": steps,
        "threads": threads,
        "ms_per_step": per_step * 1e3,
        "ms_per_energy_and_forces": per_call * 1e3,
        "start_energy_kj_mol": start_energy,
        "final_energy_kj_mol": final,
        "finite": bool(np.isfinite(final)),
    }


def build_pdb(path):
    import openmm.app as app

    sys.path.insert(0, str(HERE.parent / "tests"))
    import dipeptide

    topology, positions = dipeptide.alanine_dipeptide()
    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology, positions, handle, keepIds=True)


def child(engine, pdb_path, steps, threads, python):
    """Run one engine in a fresh process (the reference env for TorchANI); its JSON line."""
    command = [python, __file__, "--engine", engine, "--pdb", str(pdb_path), "--steps", str(steps)]
    command += ["--threads", str(threads)]
    out = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), cwd=tempfile.gettempdir())
    if out.returncode:
        print(f"{engine} failed:\n{out.stderr[-3000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="threads for OpenMM, pyani and torch alike")
    parser.add_argument("--engine", choices=["pyani", "torchani"], help=argparse.SUPPRESS)
    parser.add_argument("--pdb", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.pdb, args.steps, args.threads)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        pdb_path = Path(tmp) / "alanine_dipeptide.pdb"
        build_pdb(pdb_path)
        results = [child("pyani", pdb_path, args.steps, args.threads, sys.executable)]
        ref_python = os.environ.get("REF_PYTHON")
        if ref_python:
            results.append(child("torchani", pdb_path, args.steps, args.threads, ref_python))
        else:
            print('REF_PYTHON not set: TorchANI not timed (eval "$(bash /work/shared/tools/setup_reference_env.sh)")')
    results = [r for r in results if r]
    print(f"alanine dipeptide in vacuum, {args.steps} Langevin steps (1 fs), {args.threads} thread(s), CPU platform")
    print(f"{'engine':10} {'ms/step':>9} {'ms/E+F':>9} {'E0 kJ/mol':>16} {'E_end kJ/mol':>16}")
    for r in results:
        print(
            f"{r['engine']:10} {r['ms_per_step']:9.3f} {r['ms_per_energy_and_forces']:9.3f} "
            f"{r['start_energy_kj_mol']:16.4f} {r['final_energy_kj_mol']:16.4f}"
        )
    if len(results) == 2:
        pyani_, torch_ = results
        print(f"pyani per step is {torch_['ms_per_step'] / pyani_['ms_per_step']:.1f}x faster than TorchANI")
        difference = abs(pyani_["start_energy_kj_mol"] - torch_["start_energy_kj_mol"])
        print(f"start energies differ by {difference:.4f} kJ/mol")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
