"""Four runs started at once on one ``--out`` folder (a fresh store they all create): the grid is
shared, each cell is computed and stored exactly once, and lock contention never becomes an error row."""
import os

from benchmarks.store import Store
from test_runner import _run_cli, _slow_suite, write_suite


def test_four_processes_on_one_fresh_store_store_each_cell_once(tmp_path):
    suite_file = write_suite(tmp_path / "suite", _slow_suite())
    log = tmp_path / "log.txt"
    env = dict(os.environ, FAKE_SOLVER_LOG=str(log))
    out = tmp_path / "shared"
    procs = [_run_cli(suite_file, out, env) for _ in range(4)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    with Store(out / "results.sqlite") as store:
        rows = store.cells()
        assert len(rows) == len({r["key"] for r in rows}) == 8
        assert {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows if r["error"]]
        assert all(len(store.images(r["key"])) == 3 for r in rows)
    lines = log.read_text().splitlines()
    assert len(lines) == 8 * 3  # every cell's 3 images solved once, in whichever process claimed it
