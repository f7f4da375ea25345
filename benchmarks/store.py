"""Results store: one SQLite row per finished benchmark cell.

The store is the only state of a benchmark run. It is built so that a result, once written, is
never lost and never duplicated:

* the database runs in WAL mode, so readers (``restore-bench report``) never block a writer and a
  crash (even ``kill -9``) leaves the last committed row intact;
* a finished cell is written in *one* transaction (the cell row and its per-image rows together),
  so a reader sees either the whole cell or none of it;
* a cell is identified by ``key``, a hash of everything that determines its result; the key is
  the primary key and rows are inserted with ``ON CONFLICT(key) DO NOTHING``, so two runs that finish the
  same cell leave one row (the first);
* a store written before a column existed gains it when opened (old rows read it as NULL);
* ``claim`` lets concurrent runs share a grid without computing a cell twice: a claim held by a
  process that is gone (same host, pid dead) or that is older than ``stale_after`` seconds is
  taken over, so a killed run never blocks its successor.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key          TEXT PRIMARY KEY,
    suite        TEXT NOT NULL,
    config_hash  TEXT NOT NULL,
    task         INTEGER NOT NULL,
    prior        TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    operator     TEXT NOT NULL,
    solver       TEXT NOT NULL,
    seed         INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'diverged')),
    metrics      TEXT NOT NULL,     -- JSON {metric: {"mean":, "std":, "n":}}
    wall_s       REAL,              -- solver wall time per image, mean
    nfe          REAL,              -- denoiser evaluations per sample (particles included), mean over images
    peak_mem_mb  REAL,
    error        TEXT,
    spec         TEXT NOT NULL,     -- JSON of the resolved cell (what the key hashes)
    versions     TEXT NOT NULL,     -- JSON {package: version}
    device       TEXT,
    dtype        TEXT,
    host         TEXT,              -- the machine that ran the cell
    finished_at  REAL NOT NULL,
    worker       TEXT               -- the process that ran it: local:PID or ray:NODE:PID
);
CREATE TABLE IF NOT EXISTS images (
    cell_key  TEXT NOT NULL REFERENCES cells(key),
    image     TEXT NOT NULL,
    metrics   TEXT NOT NULL,        -- JSON {metric: value}
    wall_s    REAL,
    nfe       REAL,
    PRIMARY KEY (cell_key, image)
);
CREATE TABLE IF NOT EXISTS claims (
    key         TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,      -- host:pid
    claimed_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    suite        TEXT NOT NULL,
    config_hash  TEXT NOT NULL,
    command      TEXT,
    grid         TEXT NOT NULL,     -- JSON list of the cell keys of this run
    started_at   REAL NOT NULL,
    finished_at  REAL
);
"""

CELL_COLUMNS = ("key", "suite", "config_hash", "task", "prior", "dataset", "operator", "solver",
                "seed", "status", "metrics", "wall_s", "nfe", "peak_mem_mb", "error", "spec",
                "versions", "device", "dtype", "host", "finished_at", "worker")
JSON_COLUMNS = ("metrics", "spec", "versions")


def owner_id() -> str:
    """``host:pid`` of this process, the owner recorded in a claim."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # cannot probe another machine: rely on ``stale_after``
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class Store:
    """A results database at ``path`` (created if absent).

    :param path: the SQLite file, conventionally ``OUT/results.sqlite``.
    :param timeout: seconds a writer waits for the lock held by another process.
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a write transaction takes
        # the write lock up front and two writers serialise instead of deadlocking on upgrade.
        self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=%d" % int(timeout * 1000))
        with self._write():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._migrate()

    def _migrate(self) -> None:
        """Add the columns a store from an older version lacks (inside the opening transaction,
        so two processes opening one old store add each column once)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(cells)")}
        for column, kind in (("worker", "TEXT"),):
            if column not in have:
                self._db.execute(f"ALTER TABLE cells ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- cells ---------------------------------------------------------------------------------
    def done(self, key: str, retry_failed: bool = False) -> bool:
        """Whether cell ``key`` has a row (with ``retry_failed``: a row with status ``ok``)."""
        query = "SELECT status FROM cells WHERE key = ?"
        row = self._db.execute(query, (key,)).fetchone()
        return row is not None and (not retry_failed or row[0] == "ok")

    def put(self, row: dict[str, Any], images: list[dict[str, Any]] = ()) -> bool:
        """Write one finished cell and its per-image rows in one transaction.

        A row for the same key written earlier wins; with ``replace=True`` in ``row`` (used by
        ``--retry-failed``) the stored row and its images are replaced.

        :returns: True if this call wrote the row.
        """
        row = dict(row)
        replace = row.pop("replace", False)
        row.setdefault("host", socket.gethostname())
        row.setdefault("finished_at", time.time())
        values = [json.dumps(row[c]) if c in JSON_COLUMNS else row.get(c) for c in CELL_COLUMNS]
        with self._write() as db:
            if replace:
                db.execute("DELETE FROM images WHERE cell_key = ?", (row["key"],))
                db.execute("DELETE FROM cells WHERE key = ?", (row["key"],))
            # ON CONFLICT (not INSERT OR IGNORE, which would also swallow CHECK / NOT NULL
            # violations): only "this cell is already stored" is ignored.
            cursor = db.execute(
                f"INSERT INTO cells ({', '.join(CELL_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(CELL_COLUMNS))}) ON CONFLICT(key) DO NOTHING", values)
            wrote = cursor.rowcount == 1
            if wrote:
                db.executemany(
                    "INSERT OR REPLACE INTO images (cell_key, image, metrics, wall_s, nfe) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(row["key"], im["image"], json.dumps(im["metrics"]), im.get("wall_s"),
                      im.get("nfe")) for im in images])
            db.execute("DELETE FROM claims WHERE key = ?", (row["key"],))
        return wrote

    def cells(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        """All cell rows (or those with ``keys``), JSON columns decoded, oldest first."""
        query = f"SELECT {', '.join(CELL_COLUMNS)} FROM cells"
        rows = self._db.execute(query + " ORDER BY finished_at").fetchall()
        out = []
        wanted = None if keys is None else set(keys)
        for values in rows:
            row = dict(zip(CELL_COLUMNS, values))
            if wanted is not None and row["key"] not in wanted:
                continue
            for c in JSON_COLUMNS:
                row[c] = json.loads(row[c])
            out.append(row)
        return out

    def images(self, cell_key: str) -> list[dict[str, Any]]:
        query = "SELECT image, metrics, wall_s, nfe FROM images WHERE cell_key = ? ORDER BY image"
        return [dict(image=i, metrics=json.loads(m), wall_s=w, nfe=n)
                for i, m, w, n in self._db.execute(query, (cell_key,))]

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]

    # -- claims --------------------------------------------------------------------------------
    def claim(self, key: str, retry_failed: bool = False, stale_after: float = 6 * 3600.0) -> bool:
        """Try to take cell ``key`` for this process.

        :param retry_failed: a cell whose row says failed or diverged may be taken again.
        :returns: False if the cell is finished or another live process holds a fresh claim.
        """
        me, now = owner_id(), time.time()
        with self._write() as db:
            row = db.execute("SELECT status FROM cells WHERE key = ?", (key,)).fetchone()
            if row is not None and (not retry_failed or row[0] == "ok"):
                return False
            held = db.execute("SELECT owner, claimed_at FROM claims WHERE key = ?",
                              (key,)).fetchone()
            if held and held[0] != me and _owner_alive(held[0]) and now - held[1] < stale_after:
                return False
            db.execute("INSERT OR REPLACE INTO claims (key, owner, claimed_at) VALUES (?, ?, ?)",
                       (key, me, now))
        return True

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, suite: str, config_hash: str, grid: list[str], command: str) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (suite, config_hash, command, grid, started_at) "
                "VALUES (?, ?, ?, ?, ?)", (suite, config_hash, command, json.dumps(grid),
                                           time.time()))
            return cursor.lastrowid

    def finish_run(self, run_id: int) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (time.time(), run_id))

    def runs(self) -> list[dict[str, Any]]:
        cols = ("id", "suite", "config_hash", "command", "grid", "started_at", "finished_at")
        rows = self._db.execute(f"SELECT {', '.join(cols)} FROM runs ORDER BY id").fetchall()
        return [dict(zip(cols, r), grid=json.loads(r[4])) for r in rows]
