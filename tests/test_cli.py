"""The `pyani` command line on multi-frame extxyz (molecules and a periodic box) and SDF files:
every command, its plots, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.util import find_spec

import numpy as np
import pytest
from cli_inputs import write_inputs
from conftest import get_model

from pyani._structures import read
from pyani.cli import main
from pyani.units import HARTREE_TO_EV

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("inputs"))


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status: int, err: str, *names: str) -> None:
    """A failure is a non-zero status and exactly one stderr line naming what is wrong."""
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, lines[0])


def reference_energies(model, paths) -> list[float]:
    """Serial, one structure per compute call."""
    return [model.compute(s.numbers, s.positions, s.cell, s.pbc, forces=False).energy for p in paths for s in read(p)]


# --- energy -------------------------------------------------------------------------------


def test_energy_json_equals_the_api(inputs, capsys, backend):
    paths = [inputs["mols"], inputs["box"], inputs["sdf"]]
    status, out, err = run(capsys, "energy", *paths, "--json", "--forces", "--backend", backend)
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["file"], r["index"]) for r in records] == [
        (str(p), i) for p, n in zip(paths, (6, 2, 2)) for i in range(n)
    ]
    model = get_model("ani-1ccx", backend)
    expected = reference_energies(model, paths)
    # molecules go through padded batches: equal to single calls up to float32 network sums
    np.testing.assert_allclose([r["energy"] for r in records], expected, rtol=0, atol=2e-6)
    first = next(read(inputs["mols"]))
    direct = model.compute(first.numbers, first.positions)
    np.testing.assert_allclose(records[0]["forces"], direct.forces, atol=1e-5)
    assert records[0]["natoms"] == 3 and records[0]["formula"] == "H2O"
    assert all(r["energy_std"] >= 0 for r in records)


def test_energy_table_in_ev_and_hartree(inputs, capsys):
    status, out, _ = run(capsys, "energy", inputs["mols"])
    assert status == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert len(rows) == 6
    ev, ha = float(rows[2][3]), float(rows[2][4])
    assert ev == pytest.approx(ha * HARTREE_TO_EV, abs=2e-6)
    assert rows[2][2] == "12"


def test_fast_readers_equal_ase(inputs):
    import ase.io

    for key in ("mols", "box", "sdf"):
        ours = list(read(inputs[key]))
        theirs = ase.io.read(inputs[key], index=":") if key != "sdf" else None
        if key == "sdf":  # ase reads the first record only: compare record by record
            assert len(ours) == 2
            theirs = [ase.io.read(inputs[key])]
        for s, atoms in zip(ours, theirs):
            assert s.error is None
            np.testing.assert_array_equal(s.numbers, atoms.numbers)
            np.testing.assert_allclose(s.positions, atoms.positions, atol=1e-4 if key == "sdf" else 1e-12)
            if atoms.pbc.any():
                np.testing.assert_allclose(s.cell, atoms.cell[:])
                np.testing.assert_array_equal(s.pbc, atoms.pbc)
            else:
                assert s.cell is None


def test_energy_reads_other_formats_through_ase(inputs, tmp_path, capsys):
    import ase.io

    path = tmp_path / "box.cif"
    ase.io.write(path, ase.io.read(inputs["box"], index=0))
    status, out, err = run(capsys, "energy", path, "--json")
    assert status == 0, err
    (record,) = [json.loads(line) for line in out.splitlines()]
    model = get_model("ani-1ccx", _default_backend())
    (expected,) = reference_energies(model, [inputs["box"]])[:1]
    assert record["energy"] == pytest.approx(expected, abs=1e-5)  # cif keeps 4-5 decimals


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "suffix", "name"),
    [
        ("3\n\nO 0 0 0\nH 0 0 1\nXx 1 0 0\n", ".xyz", "'Xx'"),
        ("3\n\nFe 0 0 0\nH 0 0 1\nH 1 0 0\n", ".xyz", "Fe"),
        ("3\n\nO 0 0 0\nH 0 0 1\n", ".xyz", "frame 0"),
        ("not a structure\n", ".cif", "bad.cif"),
        ("x\n", ".sdf", "record 0"),
    ],
)
def test_energy_bad_file_is_one_line(tmp_path, capsys, content, suffix, name):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    status, _, err = run(capsys, "energy", path)
    one_line_error(status, err, str(path), name)


def test_bad_frame_among_good_ones_fails_alone(inputs, tmp_path, capsys):
    bad = tmp_path / "fe.xyz"
    bad.write_text("3\n\nFe 0 0 0\nH 0 0 1\nH 1 0 0\n")
    status, out, err = run(capsys, "energy", inputs["water"], bad, "--json")
    one_line_error(status, err, "fe.xyz", "Fe")
    assert len(out.splitlines()) == 1  # the water's energy is still printed


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["energy", "missing.xyz"], "missing.xyz"),
        (["energy", "{water}", "--bogus"], "--bogus"),
        (["energy", "{water}", "--model", "ani-9z"], "ani-9z"),
        (["opt", "{water}", "-o", "{tmp}/o.xyz", "--fmax", "-1"], "--fmax"),
        (["opt", "{water}", "-o", "{tmp}/o.xyz", "--cell"], "--cell"),
        (["md", "{water}", "-o", "{tmp}/t.extxyz", "--steps", "0"], "--steps"),
        (["md", "{water}", "-o", "{tmp}/t.extxyz", "--steps", "2", "--ensemble", "npt"], "npt"),
        (["md", "{water}", "-o", "{tmp}/t.extxyz", "--steps", "2", "--ensemble", "nvt"], "--ensemble"),
        (["scan", "{water}", "--torsion", "0", "1", "2", "9"], "--torsion"),
        (["scan", "{mols}", "--index", "3", "--torsion", "3", "1", "0", "2"], "--torsion"),
        (["freq", "{water}", "--temperature", "-5"], "--temperature"),
        (["info", "nothing.onnx"], "nothing.onnx"),
        (["export", "neurochem", "missing.info", "{tmp}/x.onnx"], "missing.info"),
        # "torch" where torch is missing (tests_torch/ runs the export), else the unknown MODEL
        (["export", "torchani", "whatever", "{tmp}/x.onnx"], "torch" if find_spec("torch") is None else "whatever"),
        (["export", "torchani", "ani2x", "{tmp}/x.txt"], "OUT.onnx"),
        (["nonsense"], "nonsense"),
    ],
)
def test_bad_input_is_one_line(inputs, tmp_path, capsys, monkeypatch, argv, name):
    monkeypatch.setenv("TORCHANI_NO_WARN_EXTENSIONS", "1")  # its import warning is an error under pytest
    argv = [a.format(water=inputs["water"], mols=inputs["mols"], tmp=tmp_path) for a in argv]
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse usage errors
        status = exit.code
    _, err = capsys.readouterr()
    one_line_error(status, err, name)


# --- opt, md, freq, scan ------------------------------------------------------------------


def test_opt_every_frame_of_molecules_and_sdf(inputs, tmp_path, capsys):
    import ase.io

    for key, n in (("mols", 6), ("sdf", 2)):
        out = tmp_path / f"{key}-opt.extxyz"
        status, _, err = run(capsys, "opt", inputs[key], "-o", out, "--fmax", "0.05")
        assert status == 0, err
        frames = ase.io.read(out, index=":")
        assert len(frames) == n
        before = list(read(inputs[key]))
        for atoms, s in zip(frames, before):
            assert np.abs(atoms.get_forces()).max() < 0.05 * 1.01  # written with their forces
            model = get_model("ani-1ccx", _default_backend())
            assert atoms.get_potential_energy() <= model.compute(s.numbers, s.positions).energy * HARTREE_TO_EV


def _default_backend() -> str:
    from pyani import _backend

    return "cpp" if _backend.cpp_available() else "numba"


def test_opt_cell_of_periodic_box(inputs, tmp_path, capsys):
    import ase.io

    out = tmp_path / "box-opt.extxyz"
    status, _, err = run(capsys, "opt", inputs["box"], "-o", out, "--cell", "--fmax", "0.05", "--index", "1")
    assert status == 0, err
    (atoms,) = ase.io.read(out, index=":")
    before = ase.io.read(inputs["box"], index=1)
    assert not np.allclose(atoms.cell[:], before.cell[:])  # the squeezed cell relaxed
    assert atoms.get_potential_energy() < _energy_ev(before)


def _energy_ev(atoms) -> float:
    model = get_model("ani-1ccx", _default_backend())
    periodic = atoms.pbc.any()
    cell = atoms.cell[:] if periodic else None
    return model.compute(atoms.numbers, atoms.positions, cell, atoms.pbc if periodic else None).energy * HARTREE_TO_EV


@pytest.mark.parametrize(("key", "ensemble"), [("mols", "nve"), ("sdf", "langevin"), ("box", "npt"), ("box", "nve")])
def test_md_trajectory_and_plot(inputs, tmp_path, capsys, key, ensemble):
    import ase.io

    out, plot = tmp_path / "traj.extxyz", tmp_path / "md.png"
    argv = ["md", inputs[key], "-o", out, "--steps", "20", "--dt", "0.25", "--temperature", "200"]
    status, _, err = run(capsys, *argv, "--ensemble", ensemble, "--interval", "5", "--plot", plot, "--seed", "1")
    assert status == 0, err
    frames = ase.io.read(out, index=":")
    assert len(frames) == 5  # steps 0, 5, ..., 20
    times = [f.info["time_fs"] for f in frames]
    np.testing.assert_allclose(times, [0, 1.25, 2.5, 3.75, 5.0])
    for f in frames:  # ase.io puts the energy in a calculator
        assert f.get_potential_energy() == pytest.approx(_energy_ev(f), abs=1e-6)
        assert f.info["total_energy"] == pytest.approx(f.get_potential_energy() + f.info["kinetic_energy"])
    if ensemble == "nve":  # a short NVE run keeps its total energy
        totals = [f.info["total_energy"] for f in frames]
        assert max(totals) - min(totals) < 1e-2
    assert plot.read_bytes()[:8] == PNG


def test_freq_of_water_and_periodic_box(inputs, tmp_path, capsys):
    import ase.io
    from ase.optimize import BFGS

    water = ase.io.read(inputs["water"])
    water.calc = get_model("ani-1ccx", _default_backend()).ase()
    BFGS(water, logfile=None).run(fmax=1e-4, steps=200)
    path = tmp_path / "water-opt.extxyz"
    ase.io.write(path, water)
    plot = tmp_path / "spectrum.png"
    status, out, err = run(capsys, "freq", path, "--plot", plot, "--temperature", "300")
    assert status == 0, err
    numbers = [float(w) for line in out.splitlines() if line.startswith("   ") for w in line.split()]
    modes = sorted(numbers)[-3:]  # bend and two stretches
    assert 1400 < modes[0] < 1900 and 3500 < modes[1] < 4100
    zpe = float(next(line for line in out.splitlines() if "zero-point" in line).split()[-2])
    assert zpe == pytest.approx(sum(modes) / 2 * 1.239841984e-4, rel=1e-3)  # (h c / 2) sum of wavenumbers, eV
    assert "Gibbs energy G(300.0 K" in out
    assert plot.read_bytes()[:8] == PNG
    status, out, err = run(capsys, "freq", inputs["box"], "--index", "0")
    assert status == 0, err
    assert "Helmholtz energy" in out


def test_freq_hessian_is_symmetric_and_matches_forces(inputs):
    import ase.io

    from pyani.cli.freq import hessian

    atoms = ase.io.read(inputs["mols"], index=1)
    model = get_model("ani-1ccx", _default_backend())
    h = hessian(atoms, model)
    assert h.shape == (15, 15)
    np.testing.assert_allclose(h, h.T)
    # translations cost nothing: the sum over atoms vanishes (up to the finite difference error)
    np.testing.assert_allclose(h.reshape(15, 5, 3).sum(axis=1), 0, atol=0.02)
    assert np.abs(h).max() > 10  # ... which is small beside the C-H stretch (eV/A^2)


def test_scan_torsion_and_plot(inputs, tmp_path, capsys):
    import ase.io

    plot, out = tmp_path / "scan.png", tmp_path / "scan.extxyz"
    # ethanol (frame 3): H-O-C-C, the hydroxyl rotor
    status, text, err = run(
        capsys,
        "scan",
        inputs["mols"],
        "--index",
        "3",
        "--torsion",
        "3",
        "2",
        "1",
        "0",
        "--steps",
        "3",
        "--plot",
        plot,
        "-o",
        out,
        "--fmax",
        "0.05",
    )
    assert status == 0, err
    frames = ase.io.read(out, index=":")
    angles = [f.get_dihedral(3, 2, 1, 0) for f in frames]
    start = angles[0]
    np.testing.assert_allclose(np.mod(np.array(angles) - start, 360), [0, 120, 240], atol=0.5)
    rows = [line.split() for line in text.splitlines()[1:4]]
    assert min(float(r[2]) for r in rows) == 0.0
    assert plot.read_bytes()[:8] == PNG


# --- models -------------------------------------------------------------------------------


def test_models_info_and_export(tmp_path, capsys):
    status, out, _ = run(capsys, "models")
    assert status == 0 and "ani-1x" in out and "ani-1ccx" in out and "ani-2x" in out
    status, out, _ = run(capsys, "info", "ani-1x")
    assert status == 0
    assert "H C N O" in out and "members:     8" in out and "5.2" in out and "NeuroChem" in out
    status, out, _ = run(capsys, "info", "ani-1ccx", "--json")
    assert json.loads(out)["ensemble_size"] == 8


def test_export_neurochem(tmp_path, capsys):
    from conftest import ANI2X_INFO

    if not ANI2X_INFO.is_file():
        pytest.skip("ANI-2x NeuroChem files live only in ../shared")
    out = tmp_path / "ani-2x.onnx"
    status, text, err = run(capsys, "export", "neurochem", ANI2X_INFO, out)
    assert status == 0, err
    status, text, _ = run(capsys, "info", out)
    assert "S" in text.split("elements:")[1].splitlines()[0]


# --- start-up -----------------------------------------------------------------------------


def test_help_imports_nothing_heavy():
    script = (
        "import sys; from pyani.cli import build_parser; build_parser().format_help(); print(' '.join(sys.modules))"
    )
    modules = set(
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    )
    for heavy in ("ase", "matplotlib", "dask", "distributed", "pandas", "pyarrow", "tqdm"):
        assert heavy not in modules, heavy


def test_entry_point_energy_of_one_molecule(inputs):
    env = dict(os.environ, PYANI_DEBUG="")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pyani", "energy", inputs["water"]], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert "water.xyz" in done.stdout
    script = "import sys; from pyani.cli import main; main(['energy', sys.argv[1]]); print(' '.join(sys.modules))"
    modules = subprocess.run(
        [sys.executable, "-c", script, str(inputs["water"])], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "ase" not in modules  # the fast XYZ reader: no second spent importing ase.io
    assert seconds < 10  # generous: the 0.5 s figure is measured by bench/screen.py, not on a loaded CI


def test_freq_names_the_frame_of_the_file(inputs, capsys):
    status, out, err = run(capsys, "freq", inputs["mols"], "--index", "1")
    assert status == 0, err
    assert out.startswith(f"{inputs['mols']}[1]: 5 atoms")
    assert "pyani_frame" not in out
