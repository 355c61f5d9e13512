"""Time per MD step of OpenMM driving ANI-1ccx through openmm-ml and a PythonForce: pyani
(MLPotential("pyani-ani1ccx")) against TorchANI (the same kind of PythonForce, registered here as
an MLPotential and run in the reference environment).

    python bench/openmm_step.py [--steps 1000] [--rounds 3] [--threads 1] [--solvated]

The ligand is alanine dipeptide (ACE-ALA-NME, 22 atoms), built as in the tests (tests/dipeptide.py)
and written once to a PDB that both engines read: in vacuum (createSystem), or with --solvated in a
TIP3P box with Amber14 and PME (createMixedSystem, mechanical embedding). Each engine runs in its own
process: CPU platform, LangevinMiddleIntegrator at 300 K, 1 fs, warm-up steps excluded; the engines
take turns for --rounds rounds and each reports its best (wall clock and the process's CPU time). TorchANI
runs where REF_PYTHON points (torch + torchani + openmm + openmmml; see
/work/shared/tools/setup_reference_env.sh) as openmm-ml runs it: float32, energy.backward(), no
periodic images for the ligand (pyani does look for them in the solvated box). Float32 totals are
rounded to ~0.1 kJ/mol at this size, hence the small difference in start energies.
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


def register_torchani(threads):
    """MLPotential("bench-torchani"): TorchANI's ANI-1ccx (NeuroChem files, works offline) in a
    PythonForce. Returns a function (numbers, positions A) -> energy kJ/mol for the bare timing."""
    import openmm
    import torch
    import torchani
    from openmmml.mlpotential import MLPotential, MLPotentialImpl, MLPotentialImplFactory

    torch.set_num_threads(threads)
    model = torchani.neurochem.load_model_from_name("ani1ccx")

    def energy_and_forces(species, positions):
        coords = torch.tensor(positions, dtype=torch.float32).unsqueeze(0).requires_grad_(True)
        energy = model((species, coords)).energies * HARTREE_TO_KJ_PER_MOL
        energy.backward()
        # the gradient is per Angstrom; OpenMM wants kJ/mol/nm (openmm-ml 1.8's own ANI omits this 10)
        return energy.item(), -10.0 * coords.grad[0].numpy()

    class TorchANIImpl(MLPotentialImpl):
        def addForces(self, topology, system, atoms, forceGroup, **args):
            chosen = list(topology.atoms())
            if atoms is not None:
                chosen = [chosen[i] for i in atoms]
            species = torch.tensor([[atom.element.atomic_number for atom in chosen]])

            def compute(state):
                positions = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.angstrom)
                return energy_and_forces(species, positions)

            force = openmm.PythonForce(compute)
            force.setForceGroup(forceGroup)
            if atoms is not None:
                force.setParticles(list(atoms))
            system.addForce(force)

        def getMLLongRange(self):
            return False

    class TorchANIFactory(MLPotentialImplFactory):
        def createImpl(self, name, **args):
            return TorchANIImpl()

    MLPotential.registerImplFactory("bench-torchani", TorchANIFactory())
    return lambda numbers, positions: energy_and_forces(torch.tensor([numbers]), positions)[0]


def run_engine(engine, pdb_path, steps, threads, solvated):
    """Build the System with one engine, time ``steps`` Langevin steps; a dict of figures."""
    import numpy as np
    import openmm
    import openmm.app as app
    from openmm import unit
    from openmmml import MLPotential

    pdb = app.PDBFile(str(pdb_path))
    ligand = [atom.index for atom in pdb.topology.atoms() if atom.residue.name != "HOH"]
    numbers = [atom.element.atomic_number for atom in pdb.topology.atoms()]
    ligand_numbers = [numbers[i] for i in ligand]
    if engine == "amber":  # the floor: the same system all in Amber14, no ML

        def energy_once(x):
            return 0.0

    elif engine == "pyani":
        import pyani

        potential = MLPotential("pyani-ani1ccx", n_threads=threads)
        direct = pyani.load("ani-1ccx", n_threads=threads)

        def energy_once(x):
            return direct.compute(ligand_numbers, x).energy * HARTREE_TO_KJ_PER_MOL

    else:
        energy_once_torchani = register_torchani(threads)
        potential = MLPotential("bench-torchani")

        def energy_once(x):
            return energy_once_torchani(ligand_numbers, x)

    if solvated:
        force_field = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
        mm = force_field.createSystem(
            pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, constraints=app.HBonds
        )
        system = mm if engine == "amber" else potential.createMixedSystem(pdb.topology, mm, ligand)
    else:
        system = potential.createSystem(pdb.topology)  # (no "amber" in vacuum)

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": str(threads)})
    context.setPositions(pdb.positions)
    start_energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(WARMUP)
    t0, c0 = time.perf_counter(), time.process_time()
    integrator.step(steps)
    per_step = (time.perf_counter() - t0) / steps
    cpu_per_step = (time.process_time() - c0) / steps  # all threads of the process
    state = context.getState(getEnergy=True, getPositions=True)
    final = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    # the ligand's energy and forces alone, outside OpenMM, on the final positions
    x = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)[ligand]
    energy_once(x)
    t0 = time.perf_counter()
    calls = max(50, steps // 4)
    for _ in range(calls):
        energy_once(x)
    per_call = (time.perf_counter() - t0) / calls
    return {
        "engine": engine,
        "atoms": len(numbers),
        "ligand_atoms": len(ligand),
        "steps": steps,
        "threads": threads,
        "ms_per_step": per_step * 1e3,
        "cpu_ms_per_step": cpu_per_step * 1e3,
        "ms_per_ligand_energy_and_forces": per_call * 1e3,
        "start_energy_kj_mol": start_energy,
        "final_energy_kj_mol": final,
        "finite": bool(np.isfinite(final)),
    }


def build_pdb(path, solvated):
    import openmm.app as app

    sys.path.insert(0, str(HERE.parent / "tests"))
    import dipeptide

    if solvated:
        topology, positions, _ = dipeptide.solvated_dipeptide(padding_nm=1.0)
    else:
        topology, positions = dipeptide.alanine_dipeptide()
    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology, positions, handle, keepIds=True)


def child(engine, pdb_path, args, python):
    """Run one engine in a fresh process (the reference env for TorchANI); its figures."""
    command = [python, __file__, "--engine", engine, "--pdb", str(pdb_path), "--steps", str(args.steps)]
    command += ["--threads", str(args.threads)] + (["--solvated"] if args.solvated else [])
    out = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), cwd=tempfile.gettempdir())
    if out.returncode:
        print(f"{engine} failed:\n{out.stderr[-3000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="runs per engine, taking turns; the best counts")
    parser.add_argument("--threads", type=int, default=1, help="threads for OpenMM, pyani and torch alike")
    parser.add_argument("--solvated", action="store_true", help="ML/MM: the ligand in TIP3P water (Amber14, PME)")
    parser.add_argument("--engine", choices=["pyani", "torchani", "amber"], help=argparse.SUPPRESS)
    parser.add_argument("--pdb", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.pdb, args.steps, args.threads, args.solvated)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        pdb_path = Path(tmp) / "alanine_dipeptide.pdb"
        build_pdb(pdb_path, args.solvated)
        engines = [("pyani", sys.executable)]
        ref_python = os.environ.get("REF_PYTHON")
        if ref_python:
            engines.append(("torchani", ref_python))
        else:
            print('REF_PYTHON not set: TorchANI not timed (eval "$(bash /work/shared/tools/setup_reference_env.sh)")')
        if args.solvated:
            engines.append(("amber", sys.executable))
        # engines take turns, and each keeps its best round: a shared machine's load varies
        runs = {engine: [] for engine, _ in engines}
        for _ in range(args.rounds):
            for engine, python in engines:
                runs[engine].append(child(engine, pdb_path, args, python))
    best = {engine: min(filter(None, r), key=lambda x: x["ms_per_step"], default=None) for engine, r in runs.items()}
    floor = best.pop("amber", None)
    results = [r for r in best.values() if r]
    if not results:
        sys.exit(1)
    where = f"in TIP3P water, {results[0]['atoms']} atoms (ML/MM, PME)" if args.solvated else "in vacuum"
    print(
        f"alanine dipeptide {where}, {args.steps} Langevin steps (1 fs) x {args.rounds} rounds (best), "
        f"{args.threads} thread(s), CPU platform"
    )
    print(f"{'engine':10} {'ms/step':>9} {'CPU ms/step':>12} {'ms/E+F':>9} {'E0 kJ/mol':>16} {'E_end kJ/mol':>16}")
    for r in results:
        print(
            f"{r['engine']:10} {r['ms_per_step']:9.3f} {r['cpu_ms_per_step']:12.3f} "
            f"{r['ms_per_ligand_energy_and_forces']:9.3f} "
            f"{r['start_energy_kj_mol']:16.4f} {r['final_energy_kj_mol']:16.4f}"
        )
    if floor:
        print(f"{'all Amber':10} {floor['ms_per_step']:9.3f} {floor['cpu_ms_per_step']:12.3f}   (MM alone, no ML)")
    if len(results) == 2:
        pyani_, torch_ = results
        wall = torch_["ms_per_step"] / pyani_["ms_per_step"]
        cpu = torch_["cpu_ms_per_step"] / pyani_["cpu_ms_per_step"]
        print(f"pyani per step is {wall:.1f}x faster than TorchANI ({cpu:.1f}x in CPU time)")
        difference = abs(pyani_["start_energy_kj_mol"] - torch_["start_energy_kj_mol"])
        print(f"start energies differ by {difference:.4f} kJ/mol")
    if args.json:
        Path(args.json).write_text(json.dumps(results + ([floor] if floor else []), indent=1))


if __name__ == "__main__":
    main()
