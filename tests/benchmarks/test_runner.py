"""The runner: grid expansion, the pure cell task, failures as results, resume after kill -9,
concurrent runs on one store, and the exact-posterior metric."""
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from benchmarks import runner
from benchmarks.cell import run_cell
from benchmarks.registry import BenchmarkError
from benchmarks.suite import expand, load_suite
from benchmarks.store import Store

HERE = Path(__file__).parent
REPO = HERE.parent.parent

SUITE = {
    "name": "fake",
    "description": "fake components",
    "seeds": [0, 1],
    "noise": {"fn": "fake_components:noise", "sigma": 0.05},
    "metrics": "fake_components:metrics",
    "solvers": {
        "same": {"fn": "fake_components:solver", "steps": 3},
        "same_too": {"fn": "fake_components:solver", "steps": 5},
        "double": {"fn": "fake_components:solver", "steps": 1, "scale": 2.0},
        "boom": {"fn": "fake_components:failing_solver", "steps": 1},
        "nan": {"fn": "fake_components:nan_solver", "steps": 1},
    },
    "tasks": [{
        "prior": {"fn": "fake_components:prior"},
        "dataset": {"fake": {"fn": "fake_components:images", "n": 3}},
        "operators": {"half": {"fn": "fake_components:mask_op", "keep": 0.5},
                      "most": {"fn": "fake_components:mask_op", "keep": 0.9}},
        "solvers": ["same", "same_too", "double", "boom", "nan"],
    }],
}


def write_suite(folder: Path, suite: dict = SUITE, name: str = "fake.yaml") -> Path:
    """The suite YAML with ``fake_components.py`` beside it, as a user would lay them out."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "fake_components.py", folder / "fake_components.py")
    path = folder / name
    path.write_text(yaml.safe_dump(suite))
    return path


def run_suite(tmp_path, out, suite=SUITE, **kw):
    suite_file = write_suite(tmp_path / "suite", suite)
    return runner.run(load_suite(str(suite_file)), out, progress=False, **kw)


def test_grid_is_the_product_of_operators_solvers_seeds(tmp_path):
    cells = expand(load_suite(str(write_suite(tmp_path, SUITE))))
    assert len(cells) == 2 * 5 * 2
    assert len({c.key for c in cells}) == len(cells)
    only = expand(load_suite(str(write_suite(tmp_path, SUITE))), solvers=["same"])
    assert {c.solver for c in only} == {"same"} and len(only) == 4
    with pytest.raises(BenchmarkError, match="nope"):
        expand(load_suite(str(write_suite(tmp_path, SUITE))), solvers=["nope"])
    # a changed hyperparameter is a different cell; an unchanged suite gives the same keys
    changed = json.loads(json.dumps(SUITE))
    changed["solvers"]["same"]["steps"] = 4
    again = expand(load_suite(str(write_suite(tmp_path, changed))))
    assert {c.key for c in again} & {c.key for c in cells} == {
        c.key for c in cells if c.solver != "same"}


def test_run_records_metrics_failures_and_divergence(tmp_path):
    summary = run_suite(tmp_path, tmp_path / "out")
    assert summary.cells == summary.ran == 20
    assert summary.status == {"ok": 12, "failed": 4, "diverged": 4}
    with Store(tmp_path / "out" / "results.sqlite") as store:
        rows = {(r["operator"], r["solver"], r["seed"]): r for r in store.cells()}
        assert len(rows) == 20
        boom = rows[("half", "boom", 0)]
        assert boom["status"] == "failed" and "boom: fake failure" in boom["error"]
        assert rows[("half", "nan", 0)]["status"] == "diverged"
        assert "NaN" in rows[("half", "nan", 0)]["error"]
        same, same_too = rows[("half", "same", 0)], rows[("half", "same_too", 0)]
        assert same["nfe"] == 3 and same_too["nfe"] == 5
        # every solver sees the same measurement: x_hat = y gives identical per-image PSNR
        a = store.images(same["key"])
        b = store.images(same_too["key"])
        assert [i["metrics"]["psnr"] for i in a] == [i["metrics"]["psnr"] for i in b]
        assert len(a) == 3
        # another seed draws another mask and noise
        c = store.images(rows[("half", "same", 1)]["key"])
        assert a[0]["metrics"]["psnr"] != c[0]["metrics"]["psnr"]
        # the cell summary is the mean and std of the per-image rows
        values = np.array([i["metrics"]["psnr"] for i in a])
        assert same["metrics"]["psnr"]["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert same["metrics"]["psnr"]["std"] == pytest.approx(values.std(), rel=1e-12)
        # the stored reconstruction is what the metric saw
        truth = dict(importlib.import_module("fake_components").images(3))
        folder = tmp_path / "out" / "images" / "fake_components_prior" / "fake" / "half" / "seed0"
        x_hat = np.load(folder / "img0" / "same.npz")["x_hat"]
        psnr = 10 * math.log10(1 / float(((torch.from_numpy(x_hat) - truth["img0"]) ** 2).mean()))
        assert psnr == pytest.approx(a[0]["metrics"]["psnr"], abs=1e-4)
        assert (folder / "img0" / "truth.png").exists()
        assert (folder / "img0" / "measurement.png").exists()
        assert not (folder / "img2").exists()  # save_images defaults to 2


def test_rerun_skips_finished_cells(tmp_path, monkeypatch):
    log = tmp_path / "log.txt"
    monkeypatch.setenv("FAKE_SOLVER_LOG", str(log))
    first = run_suite(tmp_path, tmp_path / "out", solvers=["same"])
    calls = log.read_text().count("\n")
    assert first.ran == 4 and calls == 4 * 3
    second = run_suite(tmp_path, tmp_path / "out", solvers=["same"])
    assert second.ran == 0 and second.skipped == 4
    assert log.read_text().count("\n") == calls
    retried = run_suite(tmp_path, tmp_path / "out", solvers=["boom"], retry_failed=True)
    again = run_suite(tmp_path, tmp_path / "out", solvers=["boom"], retry_failed=True)
    assert retried.ran == again.ran == 4
    with Store(tmp_path / "out" / "results.sqlite") as store:
        assert store.count() == 8


def _run_cli(suite_file, out, env, solvers="same,double"):
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "run", str(suite_file), "--out", str(out),
         "--solvers", solvers, "--quiet", "--no-report"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _slow_suite():
    suite = json.loads(json.dumps(SUITE))
    for name in ("same", "double"):
        suite["solvers"][name]["sleep"] = 0.15
        suite["solvers"][name]["tag"] = name
    return suite


def _wait_for_rows(out: Path, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (out / "results.sqlite").exists():
            with Store(out / "results.sqlite") as store:
                if store.count() >= n:
                    return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} rows after {timeout} s")


def test_kill_9_mid_grid_then_resume_equals_uninterrupted(tmp_path):
    suite_file = write_suite(tmp_path / "suite", _slow_suite())
    env = dict(os.environ, FAKE_SOLVER_LOG=str(tmp_path / "log.txt"))
    out = tmp_path / "killed"
    proc = _run_cli(suite_file, out, env)
    _wait_for_rows(out, 2)  # kill as soon as some, not all, cells are stored
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(out / "results.sqlite") as store:
        before = store.count()
    assert 2 <= before < 8
    # the same command again (in this process, to save a start-up) finishes the grid
    suite = load_suite(str(suite_file))
    resumed = runner.run(suite, out, solvers=["same", "double"], progress=False)
    assert resumed.ran == 8 - before
    reference = runner.run(suite, tmp_path / "reference", solvers=["same", "double"],
                           progress=False)
    assert reference.ran == 8
    with Store(out / "results.sqlite") as a, Store(tmp_path / "reference" / "results.sqlite") as b:
        rows_a, rows_b = a.cells(), b.cells()
        assert len(rows_a) == len({r["key"] for r in rows_a}) == 8
        assert {r["key"]: r["metrics"] for r in rows_a} == {r["key"]: r["metrics"] for r in rows_b}


def test_two_concurrent_runs_share_the_grid_without_duplicates(tmp_path):
    suite_file = write_suite(tmp_path / "suite", _slow_suite())
    log = tmp_path / "log.txt"
    env = dict(os.environ, FAKE_SOLVER_LOG=str(log))
    out = tmp_path / "shared"
    proc = _run_cli(suite_file, out, env)  # one run in a subprocess ...
    _wait_for_rows(out, 1)
    os.environ["FAKE_SOLVER_LOG"] = str(log)
    try:  # ... and one here, on the same store, at the same time
        mine = runner.run(load_suite(str(suite_file)), out, solvers=["same", "double"],
                          progress=False, poll_s=0.1)
    finally:
        del os.environ["FAKE_SOLVER_LOG"]
    assert proc.wait() == 0, proc.stderr.read()
    assert 0 < mine.ran < 8
    with Store(out / "results.sqlite") as store:
        rows = store.cells()
        assert len(rows) == len({r["key"] for r in rows}) == 8
        assert all(len(store.images(r["key"])) == 3 for r in rows)
    # each cell ran in exactly one process: 8 cells x 3 images solver calls, no more
    lines = log.read_text().splitlines()
    assert len(lines) == 8 * 3
    assert {line.split()[-1] for line in lines} == {str(proc.pid), str(os.getpid())}


def test_posterior_std_saved_for_multi_sample_solvers(tmp_path):
    suite = json.loads(json.dumps(SUITE))
    suite["solvers"] = {"post": {"fn": "fake_components:sampler", "steps": 1, "samples": 4}}
    suite["tasks"][0]["solvers"] = ["post"]
    suite["seeds"] = [0]
    run_suite(tmp_path, tmp_path / "out", suite)
    folder = tmp_path / "out" / "images" / "fake_components_prior" / "fake" / "half" / "seed0"
    saved = np.load(folder / "img0" / "post.npz")
    assert (folder / "img0" / "post_std.png").exists()
    # std of 4 draws of N(0, 0.1^2) per pixel: mean close to 0.1 * c4 (0.921), 64 pixels
    assert 0.06 < saved["std"].mean() < 0.12


def test_cell_is_picklable_and_run_cell_is_pure(tmp_path):
    import pickle
    cells = expand(load_suite(str(write_suite(tmp_path, SUITE))), solvers=["same"])
    cell = pickle.loads(pickle.dumps(cells[0]))
    first, second = run_cell(cell), run_cell(cell)
    assert first.row["metrics"] == second.row["metrics"]
    assert first.artifacts.keys() == second.artifacts.keys()
    assert not (tmp_path / "images").exists()  # run_cell writes nothing
