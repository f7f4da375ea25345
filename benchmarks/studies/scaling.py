"""Wall time of a benchmark grid on local workers and on Ray, side by side in one sitting, and what
each executor costs per cell.

1. **Scaling.** The suite (default ``quick``) runs once per mode, each as its own ``restore-bench
   run`` command into a fresh folder: ``--workers 1`` (all cores' threads in one process),
   ``--workers 1 --threads 1``, ``--workers 2`` and ``--ray`` (a local Ray instance, one actor per
   core; these two give each cell one thread). The wall time is the command's, start-up included;
   ratios are against ``--workers 1``. "cores busy" is the machine's CPU time over the run (every
   process, from ``/proc/stat``) divided by its wall time. Each store is compared cell by cell (keys,
   status, NFE, every cell and per-image metric to ``--tol``, :mod:`benchmarks.studies.compare_runs`)
   with the one-thread ``--workers 1`` run: a cell's numbers depend on its torch thread count (oneDNN
   and BLAS split a sum by thread), not on where it runs, so equal thread counts must agree exactly.
2. **Per-cell cost.** On a suite of many small cells (default ``gmm``): the same commands with
   ``--workers 2`` and ``--ray``, and the steady-state interval between stored cells (the first
   to the last row's ``finished_at``, over the cells between them). Then the executor's round trip
   alone: every cell of that grid sent through :class:`~benchmarks.executors.LocalWorkers` and
   :class:`~benchmarks.executors.RayWorkers` (two workers each, started and warmed first) to
   :func:`dispatch_only`, which returns at once; the time per cell is pickling a cell and its
   result and the queue or Ray's scheduler, not the work.

The machine's 1-minute load average is recorded before and after each run: other processes on a
shared machine slow a run.

Usage::

    python -m benchmarks.studies.scaling --out runs/scaling             # quick, then gmm
    python -m benchmarks.studies.scaling --out runs/scaling --limit 1   # one image per dataset
    python -m benchmarks.studies.scaling --out runs/scaling --small-solvers exact,ddrm,diffpir
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from ..cell import CellResult, lost_result
from ..executors import LocalWorkers, RayWorkers
from ..store import Store
from ..suite import Cell, expand, load_suite
from .compare_runs import compare

MODES = {"workers1": ["--workers", "1"], "workers1-1thread": ["--workers", "1", "--threads", "1"],
         "workers2": ["--workers", "2"], "ray": ["--ray"]}
REFERENCE = "workers1-1thread"  # the agreement check's reference: one thread per cell, as workers2 and ray


def dispatch_only(cell: Cell) -> CellResult:
    """A cell's ``failed`` row, at once: what an executor carries, without the work."""
    return lost_result(cell, "dispatch only")


def timed_run(suite: str, out: Path, options: list[str], extra: list[str]) -> dict[str, Any]:
    """Run ``restore-bench run SUITE --out OUT OPTIONS EXTRA`` in a fresh folder; its wall time,
    the load around it, and the stored rows' count, workers and steady-state interval."""
    if out.exists():
        raise SystemExit(f"{out} exists: give another --out (each run starts from an empty folder)")
    command = [sys.executable, "-m", "benchmarks", "run", suite, "--out", str(out), "--quiet",
               "--no-report", *options, *extra]
    load_before, busy_before = os.getloadavg()[0], busy_cpu_seconds()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    load_after, busy_after = os.getloadavg()[0], busy_cpu_seconds()
    # 1: some cells failed (a result), unless it is Python's exit on an exception (no store)
    if done.returncode not in (0, 1) or not (out / "results.sqlite").exists():
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    with Store(out / "results.sqlite") as store:
        rows = store.cells()
    finished = sorted(r["finished_at"] for r in rows)
    interval = (finished[-1] - finished[0]) / (len(rows) - 1) if len(rows) > 1 else None
    return dict(command="restore-bench " + " ".join(command[3:]), wall_s=wall, cells=len(rows),
                status={s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}},
                workers=len({r["worker"] for r in rows}), interval_s=interval,
                cores_busy=None if busy_before is None else (busy_after - busy_before) / wall,
                load_before=load_before, load_after=load_after)


def busy_cpu_seconds() -> float | None:
    """CPU seconds this machine has spent busy since boot, all processes (Linux ``/proc/stat``)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def dispatch_cost(executor: Callable[[Callable, Iterable[Cell]], Iterable[CellResult]],
                  cells: list[Cell], repeats: int = 3) -> float:
    """Seconds per cell of the executor's round trip to :func:`dispatch_only` (best of
    ``repeats`` passes over ``cells``, after a warm-up pass that starts the workers)."""
    assert sum(1 for _ in executor(dispatch_only, cells)) == len(cells)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        n = sum(1 for _ in executor(dispatch_only, cells))
        best = min(best, (time.perf_counter() - start) / n)
    return best


def scaling(args: argparse.Namespace) -> dict[str, Any]:
    extra = (["--limit", str(args.limit)] if args.limit else []) + (
        ["--solvers", args.solvers] if args.solvers else [])
    folder = args.out / "scaling" / Path(args.suite).stem
    runs = {mode: timed_run(args.suite, folder / mode, MODES[mode], extra) for mode in MODES}
    for mode, run in runs.items():
        run["ratio"] = run["wall_s"] / runs["workers1"]["wall_s"]
        if mode != REFERENCE:
            problems, summary = compare(folder / REFERENCE, folder / mode, args.tol)
            run["agrees"] = dict(summary, differences=len(problems))
    return runs


def per_cell(args: argparse.Namespace) -> dict[str, Any]:
    folder = args.out / "per_cell" / Path(args.small).stem
    extra = ["--solvers", args.small_solvers] if args.small_solvers else []
    runs = {mode: timed_run(args.small, folder / mode, MODES[mode], extra)
            for mode in ("workers2", "ray")}
    problems, summary = compare(folder / "workers2", folder / "ray", args.tol)
    runs["ray"]["agrees"] = dict(summary, differences=len(problems))
    for run in runs.values():
        run["ratio"] = run["wall_s"] / runs["workers2"]["wall_s"]
    cells = expand(load_suite(args.small), solvers=extra[1].split(",") if extra else None)
    with LocalWorkers(2) as workers:
        runs["workers2"]["dispatch_s"] = dispatch_cost(workers, cells)
    with RayWorkers(num_cpus=1, actors=2) as actors:
        runs["ray"]["dispatch_s"] = dispatch_cost(actors, cells)
    return runs


def _table(title: str, runs: dict[str, dict]) -> str:
    header = ["mode", "wall s", "ratio", "cores busy", "cells", "status", "processes", "s between rows",
              "dispatch ms/cell", "agrees (max abs diff)", "load before → after"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mode, r in runs.items():
        agree = r.get("agrees")
        cells = [mode, f"{r['wall_s']:.1f}", f"{r['ratio']:.2f}" if "ratio" in r else "–",
                 "–" if r.get("cores_busy") is None else f"{r['cores_busy']:.2f}",
                 str(r["cells"]), ", ".join(f"{n} {s}" for s, n in sorted(r["status"].items())),
                 str(r["workers"]), "–" if r["interval_s"] is None else f"{r['interval_s']:.3f}",
                 f"{r['dispatch_s'] * 1e3:.2f}" if "dispatch_s" in r else "–",
                 "reference" if agree is None else
                 f"{'yes' if agree['differences'] == 0 else 'NO'} ({agree['max_abs_diff']:.1e})",
                 f"{r['load_before']:.2f} → {r['load_after']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {mode}: `{r['command']}`" for mode, r in runs.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and scaling.md")
    parser.add_argument("--suite", default="quick", help="the suite timed per mode (default quick)")
    parser.add_argument("--limit", type=int, help="images per dataset of --suite")
    parser.add_argument("--solvers", help="solver labels of --suite, comma-separated")
    parser.add_argument("--small", default="gmm", help="a suite of many small cells (default gmm)")
    parser.add_argument("--small-solvers", help="solver labels of --small, comma-separated")
    parser.add_argument("--skip-small", action="store_true", help="no per-cell measurement")
    parser.add_argument("--tol", type=float, default=1e-6, help="largest metric difference allowed")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"cores": len(os.sched_getaffinity(0)), "scaling": scaling(args)}
    report = [f"## Scaling on {results['cores']} cores", "",
              _table(f"{args.suite}: --workers 1, --workers 2, --ray (agreement against {REFERENCE})",
                     results["scaling"])]
    if not args.skip_small:
        results["per_cell"] = per_cell(args)
        report += ["", _table(f"{args.small}: per-cell cost (ratio against --workers 2)",
                                  results["per_cell"])]
    (args.out / "scaling.json").write_text(json.dumps(results, indent=1))
    (args.out / "scaling.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
