"""The results store: one row per cell, written whole or not at all; concurrent writers; claims."""
import multiprocessing
import os
import subprocess
import sys

import pytest

from benchmarks.store import Store, owner_id


def _row(key, status="ok", psnr=20.0):
    return dict(key=key, suite="s", config_hash="h", task=0, prior="p", dataset="d",
                operator="o", solver="x", seed=0, status=status,
                metrics={"psnr": {"mean": psnr, "std": 0.0, "n": 1}}, wall_s=1.0, nfe=10,
                peak_mem_mb=1.0, error=None if status == "ok" else "err", spec={"k": key},
                versions={"torch": "x"}, device="cpu", dtype="float32")


def test_put_once_per_key_with_its_images(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        images = [dict(image="a", metrics={"psnr": 19.0}), dict(image="b", metrics={"psnr": 21.0})]
        assert store.put(_row("k1"), images)
        assert not store.put(_row("k1", psnr=99.0), images)  # first writer wins
        assert store.count() == 1
        assert store.cells()[0]["metrics"]["psnr"]["mean"] == 20.0
        assert [i["metrics"]["psnr"] for i in store.images("k1")] == [19.0, 21.0]
        assert store.done("k1") and not store.done("k2")
        mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_a_failing_write_leaves_nothing(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        bad_images = [dict(image="a", metrics={"psnr": 1.0}), dict(image="b", metrics=object())]
        with pytest.raises(TypeError):
            store.put(_row("k1"), bad_images)
        assert store.count() == 0 and store.images("k1") == []
        with pytest.raises(Exception):  # CHECK constraint on status
            store.put(_row("k2", status="weird"))
        assert store.count() == 0


def test_retry_replaces_a_failed_row(tmp_path):
    with Store(tmp_path / "r.sqlite") as store:
        store.put(_row("k", status="failed"), [dict(image="a", metrics={})])
        assert store.done("k") and not store.done("k", retry_failed=True)
        assert not store.claim("k") and store.claim("k", retry_failed=True)
        assert store.put(dict(_row("k"), replace=True), [dict(image="b", metrics={"psnr": 1.0})])
        assert store.cells()[0]["status"] == "ok"
        assert [i["image"] for i in store.images("k")] == ["b"]


def _writer(path, keys, barrier):
    barrier.wait()
    with Store(path) as store:
        for key in keys:
            store.put(_row(key), [dict(image=f"{key}-{i}", metrics={"psnr": i}) for i in range(3)])


def test_two_processes_writing_overlapping_keys(tmp_path):
    path = tmp_path / "r.sqlite"
    Store(path).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    shared = [f"s{i}" for i in range(40)]
    procs = [ctx.Process(target=_writer, args=(path, shared + [f"{p}{i}" for i in range(20)], barrier))
             for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with Store(path) as store:
        assert store.count() == 80
        assert store._db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 240
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_claims_respect_live_owners_and_take_over_dead_ones(tmp_path):
    path = tmp_path / "r.sqlite"
    with Store(path) as store:
        assert store.claim("k")
        assert store.claim("k")  # re-claiming one's own cell is fine
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
        host = owner_id().rpartition(":")[0]
        store._db.execute("INSERT INTO claims VALUES ('gone', ?, 1e12)", (f"{host}:{dead}",))
        store._db.execute("INSERT INTO claims VALUES ('live', ?, 1e12)", (f"{host}:1",))
        store._db.execute("INSERT INTO claims VALUES ('old', 'elsewhere:5', 0)")
        store._db.execute("INSERT INTO claims VALUES ('fresh', 'elsewhere:5', 1e12)")
        assert store.claim("gone")        # its process has exited
        assert not store.claim("live")    # pid 1 is alive
        assert store.claim("old")         # another host, but stale
        assert not store.claim("fresh")   # another host, recent
        store.put(_row("k"))
        assert not store.claim("k")       # finished cells are never claimed
        assert store._db.execute("SELECT COUNT(*) FROM claims WHERE key='k'").fetchone()[0] == 0
