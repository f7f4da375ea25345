"""Local worker processes (``restore-bench run --workers N``), with real processes: the same store
as one process, a prior loaded once per worker, a worker killed mid-cell (the cell is computed
again and stored once), the driver killed mid-run (the rerun resumes and computes no stored cell
again), the options' errors, and an old store gaining the worker column.

The helpers here serve test_ray.py too."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import cli, runner
from benchmarks.executors import LocalWorkers
from benchmarks.store import Store
from benchmarks.studies.compare_runs import compare
from benchmarks.suite import load_suite
from test_runner import REPO, SUITE, write_suite

pytestmark = pytest.mark.usefixtures("one_thread")
#: the kill tests read /proc, and a worker dies with its driver through Linux's PR_SET_PDEATHSIG
LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only (/proc, prctl)")


def process_suite(folder: Path) -> dict:
    """8 cells (2 operators x 2 solvers x 2 seeds, 3 images each) whose fake solver writes
    ``folder/started.txt`` as an image starts and ``folder/log.txt`` as it ends; the ``held``
    cells do not end before ``folder/go`` exists, so a test can kill a process mid-cell."""
    files = {k: str(folder / n) for k, n in (("started", "started.txt"), ("log", "log.txt"))}
    suite = json.loads(json.dumps(SUITE))
    suite["solvers"] = {
        "same": {"fn": "fake_components:solver", "steps": 1, "sleep": 0.05, "tag": "same", **files},
        "held": {"fn": "fake_components:solver", "steps": 2, "tag": "held",
                 "hold": str(folder / "go"), **files}}
    suite["tasks"][0]["solvers"] = ["same", "held"]
    suite["tasks"][0]["prior"] = {"fn": "fake_components:prior", "log": str(folder / "prior.txt")}
    return suite


def lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, what: str, timeout: float = 600.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def rows_of(out: Path) -> list[dict]:
    if not (out / "results.sqlite").exists():
        return []
    with Store(out / "results.sqlite") as store:
        return store.cells()


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped between open and read
        return False


def cli_run(suite_file: Path, out: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "run", str(suite_file), "--out", str(out), "--quiet",
         "--no-report", *options], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def assert_stored_once(out: Path, n: int) -> list[dict]:
    rows = rows_of(out)
    assert len(rows) == len({r["key"] for r in rows}) == n
    assert {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows if r["error"]]
    with Store(out / "results.sqlite") as store:
        assert all(len(store.images(r["key"])) == 3 for r in rows)
    return rows


def start_process_suite(tmp_path: Path, *options: str) -> tuple[Path, Path, Path, subprocess.Popen]:
    """The process suite's files folder, suite file and output folder, and its CLI run with ``options``."""
    folder = tmp_path / "files"
    folder.mkdir()
    suite_file = write_suite(tmp_path / "suite", process_suite(folder))
    out = tmp_path / "out"
    return folder, suite_file, out, cli_run(suite_file, out, *options)


def kill_worker_mid_cell(tmp_path: Path, *options: str) -> None:
    """Run the process suite with ``options``, kill -9 the process computing the first held cell,
    then let the cells go on: the cell is computed again elsewhere and every cell stored once."""
    folder, suite_file, out, proc = start_process_suite(tmp_path, *options)
    try:
        wait_for(lambda: any(tag == "held" for tag, *_ in lines(folder / "started.txt")),
                 "a held cell to start")
        victim = next(int(pid) for tag, _, pid in lines(folder / "started.txt") if tag == "held")
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), "the worker to die")
        (folder / "go").touch()
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    finally:
        proc.kill()
    rows = assert_stored_once(out, 8)
    ended = lines(folder / "log.txt")
    assert len(ended) == 8 * 3  # each image ended once: the killed attempt never did
    # the rows say who computed them: the victim's are the cells it ended before it was killed
    by_victim = sum(r["worker"].endswith(f":{victim}") for r in rows)
    assert 3 * by_victim == sum(pid == str(victim) for *_, pid in ended)
    # the image the killed process was on (tag and sum(y) name it) started again in another
    started = lines(folder / "started.txt")
    killed = [line[:2] for line in started if line[2] == str(victim)][-1]
    assert any(line[:2] == killed and line[2] != str(victim) for line in started)


def kill_driver_then_resume(tmp_path: Path, *options: str) -> None:
    """Kill -9 the driver while its workers hold cells, then rerun the same command: the grid
    completes, no stored cell is computed again, and no worker of the killed driver lives on."""
    folder, suite_file, out, proc = start_process_suite(tmp_path, *options)
    try:
        # the held cells cannot finish before "go" exists: the run is mid-grid
        wait_for(lambda: len(rows_of(out)) >= 2 and any(
            tag == "held" for tag, *_ in lines(folder / "started.txt")), "two rows and a held cell")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    stored = {r["key"] for r in rows_of(out)}
    assert 2 <= len(stored) < 8
    workers = {int(pid) for *_, pid in lines(folder / "started.txt")}
    wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to die with the driver",
             timeout=60)
    ended_before = len(lines(folder / "log.txt"))
    (folder / "go").touch()
    rerun = cli_run(suite_file, out, *options)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    assert_stored_once(out, 8)
    # the rerun ended exactly the images of the cells not stored before: none stored was redone
    assert len(lines(folder / "log.txt")) - ended_before == (8 - len(stored)) * 3


# ---------------------------------------------------------------------------------------------
def test_workers_store_what_one_process_stores_and_load_a_prior_once(tmp_path):
    suite = json.loads(json.dumps(SUITE))  # 20 cells, failed and diverged ones among them
    suite["tasks"][0]["prior"] = {"fn": "fake_components:prior", "log": str(tmp_path / "prior.txt")}
    loaded = load_suite(str(write_suite(tmp_path / "suite", suite)))
    one = runner.run(loaded, tmp_path / "map", progress=False)
    with LocalWorkers(2) as workers:
        two = runner.run(loaded, tmp_path / "workers", progress=False, executor=workers)
    assert one.status == two.status == {"ok": 12, "failed": 4, "diverged": 4}
    problems, summary = compare(tmp_path / "map", tmp_path / "workers", tol=1e-6)
    assert problems == [] and summary["compared"] == summary["same_keys"] == 20
    images = sorted(p.relative_to(tmp_path / "map") for p in (tmp_path / "map").rglob("*.png"))
    assert images and images == sorted(
        p.relative_to(tmp_path / "workers") for p in (tmp_path / "workers").rglob("*.png"))
    pids = {r["worker"] for r in rows_of(tmp_path / "workers")}
    assert all(w.startswith("local:") and w != f"local:{os.getpid()}" for w in pids)
    assert {r["worker"] for r in rows_of(tmp_path / "map")} == {f"local:{os.getpid()}"}
    # every process loaded the prior once: this one (the checks before the run) and each worker
    loads = Counter(pid for _, pid in lines(tmp_path / "prior.txt"))
    assert set(loads.values()) == {1}
    assert {f"local:{pid}" for pid in loads} >= pids


@LINUX
def test_worker_killed_mid_cell_is_computed_again_and_stored_once(tmp_path):
    kill_worker_mid_cell(tmp_path, "--workers", "2")


@LINUX
def test_driver_killed_mid_run_resumes_without_computing_a_stored_cell_again(tmp_path):
    kill_driver_then_resume(tmp_path, "--workers", "2")


@pytest.mark.parametrize("options, message", [
    (["--workers", "0"], "expected a positive integer"),
    (["--threads", "2"], "--threads is per worker"),
    (["--num-gpus", "1"], "--num-gpus is a Ray resource"),
])
def test_parallel_options_are_checked(tmp_path, capsys, options, message):
    suite_file = write_suite(tmp_path / "suite")
    code = cli.main(["run", str(suite_file), "--out", str(tmp_path / "out"), *options])
    assert code == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_ray_option_without_ray_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" fails as if it were not installed
    suite_file = write_suite(tmp_path / "suite")
    code = cli.main(["run", str(suite_file), "--out", str(tmp_path / "out"), "--ray"])
    assert code == cli.EXIT_USAGE
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_store_without_the_worker_column_gains_it(tmp_path):
    path = tmp_path / "old.sqlite"
    with Store(path) as store:
        store._db.execute("ALTER TABLE cells DROP COLUMN worker")  # as an older version wrote it
    row = dict(key="k1", suite="s", config_hash="c", task=0, prior="p", dataset="d", operator="o",
               solver="v", seed=0, status="ok", metrics={}, spec={}, versions={})
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO cells (key, suite, config_hash, task, prior, dataset, operator, "
                   "solver, seed, status, metrics, spec, versions, finished_at) VALUES "
                   "('k0', 's', 'c', 0, 'p', 'd', 'o', 'v', 0, 'ok', '{}', '{}', '{}', 0)")
    with Store(path) as store:
        assert store.put(dict(row, worker="local:7"))
        assert {r["key"]: r["worker"] for r in store.cells()} == {"k0": None, "k1": "local:7"}
