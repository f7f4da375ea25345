"""Compare two results folders cell by cell: the same cells, the same status, NFE and metrics (cell
summaries and per-image values) to a tolerance. For checking that a change to the benchmark or the
solvers leaves results alone.

``python -m benchmarks.studies.compare_runs BEFORE_DIR AFTER_DIR [--tol 1e-6]`` prints one line per
difference and a summary; exit code 0 when the two agree, 1 when they do not.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..store import Store

LABELS = ("suite", "task", "prior", "dataset", "operator", "solver", "seed")


def _cells(folder: Path) -> dict[tuple, dict]:
    with Store(folder / "results.sqlite") as store:
        out = {}
        for row in store.cells():
            row["images"] = {i["image"]: i for i in store.images(row["key"])}
            out[tuple(row[k] for k in LABELS)] = row
        return out


def _diff(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    if math.isnan(a) and math.isnan(b) or a == b:
        return 0.0
    return abs(a - b)


def compare(before: Path, after: Path, tol: float = 1e-6) -> tuple[list[str], dict]:
    """Differences (one line each) and a summary: cells compared, keys equal, the largest
    absolute metric difference."""
    a, b = _cells(before), _cells(after)
    problems = [f"only in {before}: {k}" for k in sorted(a.keys() - b.keys(), key=str)]
    problems += [f"only in {after}: {k}" for k in sorted(b.keys() - a.keys(), key=str)]
    worst, same_keys = 0.0, 0
    for label in sorted(a.keys() & b.keys(), key=str):
        ra, rb = a[label], b[label]
        same_keys += ra["key"] == rb["key"]
        if (ra["status"], ra["nfe"]) != (rb["status"], rb["nfe"]):
            problems.append(f"{label}: status/NFE {ra['status']}/{ra['nfe']} vs {rb['status']}/{rb['nfe']}")
        pairs = [(f"{m}.{s}", ra["metrics"].get(m, {}).get(s), rb["metrics"].get(m, {}).get(s))
                 for m in ra["metrics"].keys() | rb["metrics"].keys() for s in ("mean", "std", "n")]
        if ra["images"].keys() != rb["images"].keys():
            problems.append(f"{label}: images {sorted(ra['images'])} vs {sorted(rb['images'])}")
        for image in ra["images"].keys() & rb["images"].keys():
            ma, mb = ra["images"][image]["metrics"], rb["images"][image]["metrics"]
            if ma.keys() != mb.keys():
                problems.append(f"{label} {image}: metrics {sorted(ma)} vs {sorted(mb)}")
            pairs += [(f"{image}.{m}", ma.get(m), mb.get(m)) for m in ma.keys() & mb.keys()]
        for name, va, vb in pairs:
            d = _diff(va, vb)
            worst = max(worst, d)
            if d > tol:
                problems.append(f"{label} {name}: {va} vs {vb} (diff {d:.3g})")
    summary = dict(before=len(a), after=len(b), compared=len(a.keys() & b.keys()), same_keys=same_keys,
                   max_abs_diff=worst)
    return problems, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tol", type=float, default=1e-6, help="largest absolute metric difference")
    args = parser.parse_args(argv)
    problems, summary = compare(args.before, args.after, args.tol)
    for line in problems:
        print(line)
    print(", ".join(f"{k} {v}" for k, v in summary.items()))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
