"""Reports on a results folder: ``report.md`` (+ ``report_files/``) and a self-contained
``report.html`` (every figure embedded as base64 PNG), both made with matplotlib.

Per suite and task (prior, dataset, operator) the report shows a table of mean ± std over images
(and seeds) per solver, an overview table of the main metric, plots of PSNR against wall time and
against network evaluations (NFE), image grids (truth, measurement, baselines, each solver,
posterior std where a solver drew several samples) and the errors of failed or diverged cells.
When a cell was run several times with different settings, the newest row is shown.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from priors.files import write_bytes_atomic

from .artifacts import safe as _safe
from .fid import SET_METRICS
from .metrics import higher_is_better
from .store import Store

#: Metrics shown, in order, and whether higher is better (for the bold best entry).
METRICS = higher_is_better()


def _unranked(rows: list[dict]) -> bool:
    """A baseline (``baseline: true`` in the suite) or the exact sampler: shown, not ranked."""
    spec = rows[0]["spec"]["solver"]
    return bool(spec.get("baseline")) or spec.get("fn") == "exact"


def _latest(rows: list[dict]) -> list[dict]:
    newest: dict[tuple, dict] = {}
    for row in rows:  # rows come oldest first
        newest[(row["suite"], row["task"], row["prior"], row["dataset"], row["operator"],
                row["solver"], row["seed"])] = row
    return list(newest.values())


def _fmt(mean: float | None, std: float | None = None, digits: int = 3) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    if std is None:
        return f"{mean:.{digits}g}" if abs(mean) < 1e4 else f"{mean:.3e}"
    return f"{mean:.{digits}g} ± {std:.2g}"


def _cell(pooled: dict[str, tuple[float, float, int]], metric: str) -> str:
    """``mean ± std`` (just the mean for a single value), or a dash."""
    if metric not in pooled:
        return "–"
    mean, std, n = pooled[metric]
    return _fmt(mean, std if n > 1 else None)


def _image_values(store: Store, rows: list[dict]) -> dict[str, dict[tuple, float]]:
    """Metric -> {(seed, image): value} over the images of the ``ok`` rows among ``rows``."""
    values: dict[str, dict[tuple, float]] = defaultdict(dict)
    for row in rows:
        if row["status"] != "ok":  # a cell that failed part-way is not scored on its good images
            continue
        for image in store.images(row["key"]):
            for name, v in image["metrics"].items():
                if v is not None and math.isfinite(v):
                    values[name][(row["seed"], image["image"])] = v
    return values


def _pooled(store: Store, rows: list[dict]) -> dict[str, tuple[float, float, int]]:
    """Metric -> (mean, std, n) pooled over the images of ``rows`` (one per seed)."""
    values = _image_values(store, rows)
    return {k: (float(np.mean(list(v.values()))), float(np.std(list(v.values()))), len(v))
            for k, v in values.items()}


class _Doc:
    """Builds the Markdown and the HTML side by side."""

    def __init__(self, out: Path):
        self.out, self.md, self.html, self.figures = out, [], [], 0

    def heading(self, text: str, level: int) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str) -> None:
        self.md.append(text + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def pre(self, text: str) -> None:
        self.md.append("```\n" + text + "\n```\n")
        self.html.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, header: list[str], body: list[list[str]], bold: set[tuple[int, int]] = ()) -> None:
        def cell(i, j, v):
            return f"**{v}**" if (i, j) in bold else v
        self.md.append("| " + " | ".join(header) + " |")
        self.md.append("|" + "---|" * len(header))
        for i, r in enumerate(body):
            self.md.append("| " + " | ".join(cell(i, j, v) for j, v in enumerate(r)) + " |")
        self.md.append("")
        rows = "".join(
            "<tr>" + "".join(f"<td><b>{html.escape(v)}</b></td>" if (i, j) in bold
                             else f"<td>{html.escape(v)}</td>" for j, v in enumerate(r)) + "</tr>"
            for i, r in enumerate(body))
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")

    def figure(self, fig: Any, caption: str) -> None:
        import matplotlib.pyplot as plt
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        data = buf.getvalue()
        self.figures += 1
        name = f"report_files/fig{self.figures:03d}.png"
        write_bytes_atomic(self.out / name, data)
        self.md.append(f"![{caption}]({name})\n")
        b64 = base64.b64encode(data).decode()
        self.html.append(f'<figure><img alt="{html.escape(caption)}" '
                         f'src="data:image/png;base64,{b64}"/>'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def render_html(self, title: str) -> str:
        style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
                 "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
                 "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
                 "th{background:#eee}td:first-child{text-align:left}"
                 "img{max-width:100%}pre{background:#f6f6f6;padding:.5em;overflow-x:auto;"
                 "font-size:12px}figcaption{font-size:13px;color:#555}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                f"</title><style>{style}</style></head><body>" + "\n".join(self.html)
                + "</body></html>\n")


def _metric_names(groups: Iterable[dict]) -> list[str]:
    present = {m for g in groups for m in g}
    base = [m for m in METRICS if m in present] + sorted(m for m in present - set(METRICS) if "@best" not in m)
    # a best-of-N column right after its metric's mean
    return [c for m in base for c in [m] + sorted(p for p in present if p.partition("@best")[0] == m and p != m)]


def _set_scores(rows: list[dict]) -> dict[str, tuple[float, float, int]]:
    """Set metrics (FID, KID: one value per cell, in the row) -> (mean over seeds, std, images)."""
    values: dict[str, list[float]] = defaultdict(list)
    images: dict[str, int] = defaultdict(int)
    for row in rows:
        for name in SET_METRICS:
            entry = row["metrics"].get(name) if row["status"] == "ok" else None
            if entry is not None:
                values[name].append(entry["mean"])
                images[name] += entry["n"]
    return {k: (float(np.mean(v)), float(np.std(v)), images[k]) for k, v in values.items()}


def _header(metric: str) -> str:
    """A metric's column title: ``psnr@best4`` is "psnr best of 4" (see :func:`_best_of_note`)."""
    name, _, best = metric.partition("@best")
    return f"{name} best of {best}" if best else metric


def _best_of_note(by_solver: dict[str, list[dict]]) -> str | None:
    """Says which solvers drew N samples per image and what their columns hold."""
    parts = []
    for solver, rows in by_solver.items():
        spec = rows[0]["spec"]["solver"]
        if spec.get("best_of"):
            rule = spec.get("best_by", "psnr")
            rule = "each metric's own best sample" if rule == "each" else f"the sample with the best {rule}"
            parts.append(f"{solver} drew {spec['best_of']} samples per image: its plain columns are the mean "
                         f"over them, its 'best of {spec['best_of']}' columns {rule}")
    return "; ".join(parts) + "." if parts else None


def _task_table(doc: _Doc, store: Store, by_solver: dict[str, list[dict]]) -> dict[str, dict]:
    pooled = {s: _pooled(store, rows) | _set_scores(rows) for s, rows in by_solver.items()}
    # forward-model evaluations are a cost, shown beside NFE, not a metric column
    op_evals = {s: p.pop("nfe_op", None) for s, p in pooled.items()}
    # references, said once: floor and prior beside this table, the exact coverage in the calibration table
    names = [m for m in _metric_names(pooled.values())
             if m not in ("sw_floor", "sw_prior") and not m.startswith("exact_")]
    header = ["solver", "status"] + [_header(m) for m in names] + ["wall s/img", "NFE/img", "op evals/img",
                                                                   "peak MB", "images"]
    body = []
    for solver, rows in by_solver.items():
        status = ", ".join(sorted({r["status"] for r in rows}))
        p = pooled[solver]
        n = max((v[2] for v in p.values()), default=0)
        walls = [r["wall_s"] for r in rows if r["wall_s"] is not None]
        nfes = [r["nfe"] for r in rows if r["nfe"] is not None]
        mems = [r["peak_mem_mb"] for r in rows if r["peak_mem_mb"] is not None]
        body.append([solver, status] + [_cell(p, m) for m in names]
                    + [_fmt(np.mean(walls) if walls else None),
                       _fmt(np.mean(nfes) if nfes else None),
                       _fmt(op_evals[solver][0] if op_evals[solver] else None),
                       _fmt(max(mems) if mems else None, digits=4), str(n)])
    bold = set()
    for j, m in enumerate(names):
        better = METRICS.get(m.partition("@best")[0], SET_METRICS.get(m))
        scored = [(pooled[s][m][0], i) for i, s in enumerate(by_solver)
                  if m in pooled[s] and not _unranked(by_solver[s])]
        if better is not None and len(scored) > 1:
            bold.add(((max if better else min)(scored)[1], j + 2))
    doc.table(header, body, bold)
    note = _best_of_note(by_solver)
    if note:
        doc.para(note)
    asked = {m for rows in by_solver.values() for r in rows for m in r["spec"].get("set_metrics", [])}
    missing = sorted(asked - set(names))
    if missing:
        doc.para(f"{', '.join(missing)}: not computed (no Inception weights where the cells ran; "
                 f"benchmarks.fid says which file to put where).")
    floor, prior = (_reference_mean(pooled.values(), name) for name in ("sw_floor", "sw_prior"))
    if floor is not None:
        doc.para(f"Exact-sampler floor (sw between two exact posterior samples of the same size): "
                 f"{_fmt(floor)}."
                 + (f" Prior (sw of as many prior samples, which ignore y): {_fmt(prior)}."
                    if prior is not None else ""))
    return pooled


def _scatter(doc: _Doc, tasks: dict[tuple, dict[str, dict]], metric: str, suite: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    solvers = sorted({s for t in tasks.values() for s in t})
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(solvers)}
    for xkey, xlabel in (("wall_s", "wall time per image (s)"), ("nfe", "network evaluations (NFE)")):
        n = len(tasks)
        cols = min(n, 3)
        fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(4.2 * cols, 3.3 * math.ceil(n / cols)),
                                 squeeze=False)
        for ax, ((prior, dataset, operator), entries) in zip(axes.flat, tasks.items()):
            for solver, e in entries.items():
                if metric in e["pooled"] and e[xkey]:
                    ax.scatter(e[xkey], e["pooled"][metric][0], color=colours[solver], s=40,
                               label=solver)
                    ax.errorbar(e[xkey], e["pooled"][metric][0], yerr=e["pooled"][metric][1],
                                color=colours[solver], alpha=0.5)
                    ax.annotate(solver, (e[xkey], e["pooled"][metric][0]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
            if any(e[xkey] for e in entries.values()):
                ax.set_xscale("log")
            ax.set_title(f"{dataset} / {operator}", fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel(metric.upper(), fontsize=8)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        fig.tight_layout()
        doc.figure(fig, f"{suite}: {metric.upper()} against {xlabel}")


def _grid(doc: _Doc, out: Path, folder: Path, solvers: list[str], baselines: set[str],
          title: str) -> None:
    """One row per saved image: truth, measurement, baselines, solvers, std maps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    images = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []
    if not images:
        return
    ordered = sorted(solvers, key=lambda s: (s not in baselines, solvers.index(s)))
    columns = ["truth", "measurement"] + ordered + [f"{s}_std" for s in ordered]
    columns = [c for c in columns if any((im / f"{_safe(c)}.png").exists() for im in images)]
    fig, axes = plt.subplots(len(images), len(columns), squeeze=False,
                             figsize=(1.7 * len(columns), 1.8 * len(images)))
    for r, im in enumerate(images):
        for c, col in enumerate(columns):
            ax = axes[r, c]
            ax.axis("off")
            path = im / f"{_safe(col)}.png"
            if path.exists():
                a = np.asarray(Image.open(path))
                ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255,
                          interpolation="nearest")
            if r == 0:
                ax.set_title(col.replace("_std", " std"), fontsize=8)
        axes[r, 0].text(-0.05, 0.5, im.name, transform=axes[r, 0].transAxes, fontsize=7,
                        rotation=90, ha="right", va="center")
    fig.tight_layout()
    doc.figure(fig, title)


def write_report(out: str | Path) -> list[Path]:
    """Write ``out/report.md`` and ``out/report.html`` from ``out/results.sqlite``.

    :returns: the two paths.
    """
    out = Path(out)
    doc = _Doc(out)
    with Store(out / "results.sqlite") as store:
        rows = _latest(store.cells())
        runs = store.runs()
        doc.heading("Benchmark report", 1)
        doc.para(f"{len(rows)} cells in {out}. Values are mean ± std over images (and seeds); "
                 "wall time and NFE (denoiser evaluations; one DPS step with its backward pass "
                 "counts 1) are per image (per sample for a solver that draws several); op evals: "
                 "forward-model evaluations per sample (forwards, adjoints, backward passes through the "
                 "operator, SVD transforms, closed-form solves); bold is the best solver per column (baselines and the "
                 "exact sampler are not ranked). Peak MB: the GPU's peak allocation on CUDA, the process's "
                 "peak resident memory (a high-water mark over the run) on CPU.")
        if runs:
            doc.pre("\n".join(f"run {r['id']}: {r['command'] or r['suite']} "
                              f"({len(r['grid'])} cells{'' if r['finished_at'] else ', unfinished'})"
                              for r in runs[-10:]))
        if rows:
            doc.pre("versions: " + ", ".join(f"{k} {v}" for k, v in rows[-1]["versions"].items()))
            _workers(doc, rows)
        for suite in dict.fromkeys(r["suite"] for r in rows):
            _suite_section(doc, out, store, [r for r in rows if r["suite"] == suite], suite)
    md_path, html_path = out / "report.md", out / "report.html"
    write_bytes_atomic(md_path, "\n".join(doc.md).encode())
    write_bytes_atomic(html_path, doc.render_html(f"Benchmark report: {out.name}").encode())
    return [md_path, html_path]


def _workers(doc: _Doc, rows: list[dict]) -> None:
    """Which processes (``--workers``, ``--ray``) computed the cells, on how many machines."""
    counts = Counter(r["worker"] for r in rows if r.get("worker"))
    if not counts:
        return
    hosts = {r["host"] for r in rows if r.get("worker")}
    shown = ", ".join(f"{w} ({n})" for w, n in counts.most_common(12))
    more = f", {len(counts) - 12} more" if len(counts) > 12 else ""
    doc.pre(f"cells computed by {len(counts)} process(es) on {len(hosts)} machine(s): {shown}{more}")


def _suite_section(doc: _Doc, out: Path, store: Store, rows: list[dict], suite: str) -> None:
    doc.heading(f"Suite {suite}", 2)
    tasks: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(rows, key=lambda r: (r["task"], r["seed"])):
        tasks[(r["prior"], r["dataset"], r["operator"])][r["solver"]].append(r)
    summary: dict[tuple, dict[str, dict]] = {}
    for (prior, dataset, operator), by_solver in tasks.items():
        doc.heading(f"{dataset} / {operator} (prior {prior})", 3)
        pooled = _task_table(doc, store, by_solver)
        summary[(prior, dataset, operator)] = {
            s: dict(pooled=pooled[s], status=sorted({r["status"] for r in rs}), ranked=not _unranked(rs),
                    wall_s=_mean_of(r["wall_s"] for r in rs), nfe=_mean_of(r["nfe"] for r in rs))
            for s, rs in by_solver.items()}
    metric = "psnr" if any("psnr" in e["pooled"] for t in summary.values() for e in t.values()) \
        else "sw"
    _overview(doc, summary, metric)
    _calibration(doc, store, tasks)
    if metric == "psnr":
        _scatter(doc, summary, metric, suite)
    grids = []
    for (prior, dataset, operator), by_solver in tasks.items():
        seed = min(r["seed"] for rs in by_solver.values() for r in rs)
        folder = out / "images" / _safe(prior) / _safe(dataset) / _safe(operator) / f"seed{seed}"
        if folder.exists():
            baselines = {s for s, rs in by_solver.items() if _unranked(rs)}
            grids.append((folder, list(by_solver), baselines, f"{dataset} / {operator}, seed {seed}"))
    if grids:
        doc.heading("Image grids", 3)
        doc.para("Per row one image: truth, measurement (sinograms and k-space min-max scaled, "
                 "k-space as log-magnitude), baselines, each solver, and the pixelwise posterior "
                 "std (scaled to its maximum) for solvers that drew several samples.")
    for folder, solvers, baselines, title in grids:
        _grid(doc, out, folder, solvers, baselines, title)
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        doc.heading("Failed or diverged cells", 3)
        for r in failed:
            doc.para(f"{r['dataset']} / {r['operator']} / {r['solver']} / seed {r['seed']}: "
                     f"{r['status']}")
            doc.pre((r["error"] or "").strip())


def _mean_of(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _by_task(summary: dict[tuple, dict[str, dict]]) -> dict[tuple, dict[str, dict]]:
    """One row per (dataset, operator): a task run with several priors keeps its first prior's
    solvers under their names, and the others' as ``solver on prior`` (DPIR on FFDNet beside DPIR)."""
    merged: dict[tuple, dict[str, dict]] = {}
    first_prior: dict[tuple, str] = {}
    for (prior, dataset, operator), entries in summary.items():
        key = (dataset, operator)
        first_prior.setdefault(key, prior)
        row = merged.setdefault(key, {})
        for solver, entry in entries.items():
            row[solver if prior == first_prior[key] else f"{solver} on {prior}"] = entry
    return merged


def _overview(doc: _Doc, summary: dict[tuple, dict[str, dict]], metric: str) -> None:
    merged = _by_task(summary)
    solvers = list(dict.fromkeys(s for t in merged.values() for s in t))
    doc.heading(f"Overview: {metric.upper()} per task and solver", 3)
    body, bold = [], set()
    for i, ((dataset, operator), entries) in enumerate(merged.items()):
        row = [f"{dataset} / {operator}"]
        scored = []
        for j, s in enumerate(solvers):
            p = entries.get(s, {}).get("pooled", {})
            status = [x for x in entries.get(s, {}).get("status", []) if x != "ok"]
            row.append(_cell(p, metric) if metric in p or not status else "/".join(status))
            if metric in p and entries[s]["ranked"]:
                scored.append((p[metric][0], j + 1))
        if len(scored) > 1:
            bold.add((i, (max if METRICS[metric] else min)(scored)[1]))
        if metric == "sw":
            row += [_fmt(_reference_mean((e["pooled"] for e in entries.values()), name))
                    for name in ("sw_floor", "sw_prior")]
        body.append(row)
    header = ["task"] + solvers + (["exact floor", "prior"] if metric == "sw" else [])
    doc.table(header, body, bold)
    if metric == "sw":
        _share_left_table(doc, merged, solvers)


def _reference_mean(pools: Iterable[dict], name: str) -> float | None:
    """The mean of a reference distance (``sw_floor``, ``sw_prior``: the same in every solver's cells of
    a task) over pooled scores, or None where none has it."""
    return _mean_of(p[name][0] if name in p else None for p in pools)


def share_left(pooled: dict[str, tuple[float, float, int]]) -> float | None:
    """``(sw - sw_floor) / (sw_prior - sw_floor)`` of one solver on one task, from its pooled means: the
    share of the distance between the prior and the exact posterior that the solver leaves (0: as close
    as a second exact sample, 1: as far as the prior; MCGDiff's testbed measure, Cardoso et al. 2024).
    None without the three, or when the prior is no farther than the floor."""
    if not all(k in pooled for k in ("sw", "sw_floor", "sw_prior")):
        return None
    sw, floor, prior = (pooled[k][0] for k in ("sw", "sw_floor", "sw_prior"))
    return (sw - floor) / (prior - floor) if prior > floor else None


def _share_left_table(doc: _Doc, merged: dict[tuple, dict[str, dict]], solvers: list[str]) -> None:
    """The overview of an exact-posterior suite as shares of the prior-to-posterior distance left, per
    task and solver (best ranked solver bold), with each solver's NFE per sample and wall time per
    problem (means over tasks) below."""
    doc.heading("Overview: share of the prior-to-posterior distance left", 3)
    doc.para("(sw - floor) / (prior - floor) per task and solver, from the means over the task's problems: "
             "0 is as close as a second exact sample, 1 as far as the prior. NFE: denoiser evaluations per "
             "sample (an SMC solver's particles included); wall: seconds per problem (all its samples); "
             "both means over the tasks.")
    body, bold = [], set()
    for i, ((dataset, operator), entries) in enumerate(merged.items()):
        row, scored = [f"{dataset} / {operator}"], []
        for j, s in enumerate(solvers):
            ratio = share_left(entries[s]["pooled"]) if s in entries else None
            row.append("–" if ratio is None else f"{ratio:.3f}")
            if ratio is not None and entries[s]["ranked"]:
                scored.append((ratio, j + 1))
        if len(scored) > 1:
            bold.add((i, min(scored)[1]))
        body.append(row)
    for label, key in (("NFE/sample", "nfe"), ("wall s/problem", "wall_s")):
        body.append([label] + [_fmt(_mean_of(t[s][key] for t in merged.values() if s in t)) for s in solvers])
    doc.table(["task"] + solvers, body, bold)


#: the credible levels of the calibration table, as in the metric names ``coverage_50`` ...
COVERAGE_LEVELS = (50, 90)

#: per task, per solver: metric -> {(seed, image): value}
_Values = dict[tuple, dict[str, dict[str, dict[tuple, float]]]]


def _calibration(doc: _Doc, store: Store, tasks: dict[tuple, dict[str, list[dict]]]) -> None:
    """The calibration section of an exact-posterior suite (nothing when no row has coverage).

    Per solver: the fraction of true coordinates inside its central 50% / 90% credible intervals, the
    mean over every (x, y) pair of every problem, beside the exact posterior's own coverage on the
    same pairs with the same number of samples (``exact_coverage_*``, the reference); then per
    problem. A solver whose pairs carry the reference but no coverage of its own is a point estimator
    (the runner gives none to a solver marked ``point_estimate``): it is listed, not tabled.
    """
    values: _Values = {t: {s: _image_values(store, rows) for s, rows in by_solver.items()}
                       for t, by_solver in tasks.items()}
    has = lambda s, metric: any(metric in t[s] for t in values.values() if s in t)  # noqa: E731
    solvers = list(dict.fromkeys(s for t in values.values() for s in t))
    samplers = [s for s in solvers if has(s, "coverage_50")]
    point = [s for s in solvers if has(s, "exact_coverage_50") and not has(s, "coverage_50")]
    if not samplers and not point:
        return
    doc.heading("Calibration: coverage of central credible intervals", 3)
    doc.para("The fraction of the true coordinates inside each solver's central 50% and 90% credible "
             "intervals (empirical quantiles of its posterior samples), mean ± standard error over every "
             "(x, y) pair of every problem (x drawn from the prior, y from x); beside each, the exact "
             "posterior's coverage on the same pairs with as many samples (the reference: a calibrated "
             "sampler matches it). Below it: too narrow (overconfident); above: too wide. Necessary, not "
             "sufficient: draws from the prior that ignore y cover at the nominal rate too, so read it "
             "beside sw and std_ratio.")
    _coverage_table(doc, values, samplers)
    if point:
        doc.para("Point estimators (one estimate, no credible intervals, so no coverage): "
                 + ", ".join(point) + ".")
    _coverage_per_problem(doc, values, samplers)


def _coverage_table(doc: _Doc, values: _Values, samplers: list[str]) -> None:
    """One row per sampler: coverage and the exact reference per level, pooled over all pairs."""
    names = [f"{p}coverage_{lv}" for lv in COVERAGE_LEVELS for p in ("", "exact_")]
    header = ["solver"] + [f"{'exact ' if n.startswith('exact') else ''}{n.rsplit('_', 1)[1]}%"
                           for n in names] + ["pairs"]
    body = []
    for s in samplers:
        pooled = {n: [v for t in values.values() for v in t.get(s, {}).get(n, {}).values()] for n in names}
        body.append([s] + [_mean_se(pooled[n]) for n in names] + [str(len(pooled["coverage_50"]))])
    doc.table(header, body)


def _coverage_per_problem(doc: _Doc, values: _Values, samplers: list[str]) -> None:
    """One column per problem, ``50% / 90%`` per sampler, the exact reference first (the same pairs and
    reference samples are in every solver's cells of a problem, so any of them gives it)."""
    levels = " / ".join(f"{lv}%" for lv in COVERAGE_LEVELS)
    header, reference = ["solver"], ["exact posterior (reference)"]
    for (_, dataset, operator), by_solver in values.items():
        header.append(f"{dataset} / {operator}: {levels}")
        pairs = {lv: {} for lv in COVERAGE_LEVELS}
        for v in by_solver.values():
            for lv in COVERAGE_LEVELS:
                pairs[lv].update(v.get(f"exact_coverage_{lv}", {}))
        reference.append(" / ".join(_fraction(pairs[lv].values()) for lv in COVERAGE_LEVELS))
    body = [reference] + [
        [s] + [" / ".join(_fraction(by_solver.get(s, {}).get(f"coverage_{lv}", {}).values())
                          for lv in COVERAGE_LEVELS) for by_solver in values.values()]
        for s in samplers]
    doc.para(f"Per problem, coverage at {levels}:")
    doc.table(header, body)


def _fraction(values: Iterable[float]) -> str:
    """The mean of ``values`` to two decimals, or a dash."""
    mean = _mean_of(values)
    return "–" if mean is None else f"{mean:.2f}"


def _mean_se(values: list[float]) -> str:
    """``mean ± standard error`` of ``values``, or a dash."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) / math.sqrt(len(values)):.3f}"
