"""Benchmark runs: schedule a suite's cells, claim them in the store, write their results.

This is the driver, and the only writer. :func:`run` expands the grid, skips finished cells,
claims the others in the store, feeds them to an *executor* and writes each result as it arrives
(artifacts atomically, then one row in one transaction). The work of a cell is
:func:`benchmarks.cell.run_cell`, a pure function ``Cell -> CellResult``; the executor is the seam
where local processes or a Ray cluster plug in: any ``executor(run_cell, cells)`` that yields the
results, in any order, gives the same store as a one-process run.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from priors.files import write_bytes_atomic

from .build import prepare
from .cell import CellResult, run_cell
from .store import Store
from .suite import Cell, expand


@dataclass
class RunSummary:
    suite: str
    out: Path
    cells: int
    skipped: int
    ran: int
    status: dict[str, int]
    wall_s: float

    @property
    def failed(self) -> int:
        return self.status.get("failed", 0) + self.status.get("diverged", 0)


def save_result(out: Path, store: Store, result: CellResult, replace: bool = False) -> bool:
    """Persist a cell: artifacts (atomically) first, then the row, so a stored row always has its
    files. Returns whether the row was written (False: another run wrote it first)."""
    for rel, data in result.artifacts.items():
        write_bytes_atomic(out / rel, data)
    return store.put(dict(result.row, replace=replace), result.images)


def _claimed(cells: Iterable[Cell], store: Store, deferred: list[Cell],
             retry_failed: bool) -> Iterator[Cell]:
    for cell in cells:
        if store.claim(cell.key, retry_failed=retry_failed):
            yield cell
        elif not store.done(cell.key, retry_failed):
            deferred.append(cell)


def run(suite: dict[str, Any], out: str | os.PathLike, *, limit: int | None = None,
        solvers: Sequence[str] | None = None, device: str = "cpu", dtype: str = "float32",
        retry_failed: bool = False, progress: bool = True, command: str = "",
        executor: Callable[[Callable, Iterable[Cell]], Iterable[CellResult]] = map,
        poll_s: float = 1.0) -> RunSummary:
    """Run the grid of ``suite`` into folder ``out`` (``out/results.sqlite`` and ``out/images``).

    Finished cells are skipped, so rerunning after a crash resumes. Cells another live run has
    claimed are left to it and waited for at the end.

    :param executor: ``executor(run_cell, cells)`` yields results; ``map`` runs them here, one
        at a time. Any mapping that returns results in any order works: local worker processes
        or Ray actors (:mod:`benchmarks.executors`; the run does not stop them, as it may call
        the executor again for cells another run held). With another executor than ``map`` the
        priors are only checked here, on the CPU.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = Path(out)
    cells = expand(suite, limit=limit, solvers=solvers, device=device, dtype=dtype)
    prepare(cells, device=None if executor is map else "cpu")
    out.mkdir(parents=True, exist_ok=True)
    with Store(out / "results.sqlite") as store:
        keys = [c.key for c in cells]
        run_id = store.start_run(suite["name"], cells[0].config_hash if cells else "", keys,
                                 command)
        todo = [c for c in cells if not store.done(c.key, retry_failed)]
        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), disable=not progress,
                   desc=suite["name"], unit="cell", file=sys.stderr)
        ran = 0
        pending = todo
        while pending:
            deferred: list[Cell] = []
            for result in executor(run_cell, _claimed(pending, store, deferred, retry_failed)):
                result.row.setdefault("worker", f"local:{os.getpid()}")  # map: computed here
                save_result(out, store, result, replace=retry_failed)
                ran += 1
                bar.set_postfix_str(f"{result.row['solver']}: {result.row['status']}")
                bar.update(1)
            if deferred:  # held by another live run: wait for it to finish or vanish
                time.sleep(poll_s)
                bar.update(sum(store.done(c.key) for c in deferred))
                deferred = [c for c in deferred if not store.done(c.key)]
            pending = deferred
        bar.close()
        store.finish_run(run_id)
        status: dict[str, int] = {}
        for row in store.cells(keys):
            status[row["status"]] = status.get(row["status"], 0) + 1
    return RunSummary(suite["name"], out, len(cells), len(cells) - len(todo), ran, status,
                      time.perf_counter() - start)
