"""Calibration of posterior samplers on exact problems: do their credible intervals cover the truth?

On Gaussian-mixture priors (exact denoiser, exact posterior) in dimensions 2 to 80, draw ``x`` from the
prior and ``y = A x + sigma_y e`` many times; from ``n`` posterior samples per measurement take every
coordinate's central 50% and 90% credible intervals (empirical quantiles) and count how often the true
coordinate falls inside. A calibrated sampler covers 50% and 90%; the exact posterior sampler, with the
same ``n``, is the reference beside it (it sits slightly below the nominal level: ``n`` samples' quantiles
make the interval a little short). Coverage averaged over truths drawn from the prior is necessary, not
sufficient: a sampler that ignores y and returns prior draws covers at the nominal rate too; an
overconfident sampler (too narrow, e.g. a degenerate particle cloud) covers less, a too wide one more.
Read it beside the sliced-Wasserstein table (``scripts/smc_gmm_table.py``). Point estimators (:data:`POINT_ESTIMATORS`) have no intervals and are
listed as such.

Run ``python -m restore.calibration`` (``--help`` for options) to print the table.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

import operators as ops
import priors

__all__ = ["POINT_ESTIMATORS", "mixture_problem", "coverage", "draw_samples", "calibration", "format_table"]

#: solvers that return one estimate, not a posterior sample: no coverage row
POINT_ESTIMATORS = ("red_diff", "dpir", "pinv", "tv", "classical")
#: the samplers of the default table
SAMPLERS = ("dps", "ddrm", "ddnm", "pigdm", "diffpir", "daps", "mcgdiff", "fps", "tds")
#: (d, d_y) of the default problems
SHAPES = ((2, 1), (8, 2), (32, 4), (80, 4))


@dataclass
class Problem:
    """One calibration problem: prior, operator, noise; ``x`` (T, d) truths and ``y`` (T, d_y)."""

    prior: priors.GaussianMixture
    op: ops.Matrix
    noise: ops.GaussianNoise
    x: Tensor
    y: Tensor


def mixture_problem(dim: int, d_y: int, trials: int, *, components: int = 4, sigma_y: float = 0.1,
                    seed: int = 0) -> Problem:
    """A random mixture in ``dim`` dimensions (means of scale 2, covariances ``0.25 (F F^T / d + 0.1 I)``,
    the recipe of the benchmark's ``gmm`` suite), a Gaussian ``d_y x dim`` matrix with entries
    ``N(0, 1/dim)``, and ``trials`` pairs ``x ~ prior``, ``y = A x + sigma_y e``; deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(components, generator=g, dtype=torch.float64) + 0.5
    means = 2.0 * torch.randn(components, dim, generator=g, dtype=torch.float64)
    f = torch.randn(components, dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
    covs = 0.25 * (f @ f.transpose(1, 2) + 0.1 * torch.eye(dim, dtype=torch.float64))
    prior = priors.GaussianMixture(weights / weights.sum(), means, covs)
    op = ops.Matrix(torch.randn(d_y, dim, generator=g, dtype=torch.float64) / math.sqrt(dim))
    x = prior.sample(trials, generator=g)
    y = op(x) + sigma_y * torch.randn(trials, d_y, generator=g, dtype=torch.float64)
    return Problem(prior, op, ops.GaussianNoise(sigma_y), x, y)


def coverage(samples: Tensor, truth: Tensor, levels: Sequence[float] = (0.5, 0.9)) -> dict[float, float]:
    """Fraction of the true coordinates inside the samples' central credible intervals.

    :param samples: ``(n, T, d)``: ``n`` posterior samples for each of ``T`` measurements.
    :param truth: ``(T, d)``.
    :returns: ``{level: fraction}`` over all ``T * d`` coordinates.
    """
    samples, truth = samples.to(torch.float64), truth.to(torch.float64)
    out = {}
    for level in levels:
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
        lo, hi = torch.quantile(samples, q, dim=0)
        out[level] = float(((truth >= lo) & (truth <= hi)).double().mean())
    return out


def draw_samples(name: str, p: Problem, n: int, steps: int, seed: int) -> Tensor:
    """``n`` posterior samples ``(n, T, d)`` for every measurement of ``p``: the exact sampler
    (``name == "exact"``), one cloud of ``n`` particles per measurement for SMC solvers, or ``n``
    independent runs of any other solver (one batched call)."""
    import restore

    trials = p.y.shape[0]
    g = torch.Generator().manual_seed(seed)
    if name == "exact":
        return torch.stack([p.prior.posterior(p.op, p.y[t:t + 1], p.noise).sample(n, generator=g)
                            for t in range(trials)], 1).to(torch.float64)
    solver = restore.SOLVERS[name]
    if getattr(solver, "cloud", False):
        cloud = solver(p.prior, p.op, p.y, p.noise, steps=steps, particles=n, return_cloud=True, generator=g)
        return cloud.transpose(0, 1)
    y = p.y.repeat(n, 1)  # row k * T + t: sample k of measurement t
    x = solver(p.prior, p.op, y, p.noise, steps=steps, generator=g)
    return x.reshape(n, trials, -1)


def calibration(solvers: Sequence[str] = SAMPLERS, shapes: Sequence[tuple[int, int]] = SHAPES, *,
                trials: int = 20, n: int = 200, steps: int = 50, seed: int = 0,
                levels: Sequence[float] = (0.5, 0.9)) -> list[dict[str, Any]]:
    """Coverage of every solver (and of the exact sampler) on the mixture problems ``shapes``.

    :returns: one row per (solver, problem): ``solver``, ``d``, ``d_y``, ``kind`` ("exact",
        "sampler" or "point estimator"), ``coverage`` ({level: fraction}, None for point
        estimators), ``seconds``.
    """
    rows = []
    for i, (d, d_y) in enumerate(shapes):
        p = mixture_problem(d, d_y, trials, seed=seed + 1000 * i)
        for name in ("exact", *solvers):
            if name in POINT_ESTIMATORS:
                rows.append(dict(solver=name, d=d, d_y=d_y, kind="point estimator", coverage=None, seconds=None))
                continue
            start = time.perf_counter()
            samples = draw_samples(name, p, n, steps, seed + 7 * i + 1)
            rows.append(dict(solver=name, d=d, d_y=d_y, kind="exact" if name == "exact" else "sampler",
                             coverage=coverage(samples, p.x, levels), seconds=time.perf_counter() - start))
    return rows


def format_table(rows: list[dict[str, Any]], levels: Sequence[float] = (0.5, 0.9)) -> str:
    """A Markdown table: one row per solver, one column pair (50% / 90%) per problem."""
    shapes = list(dict.fromkeys((r["d"], r["d_y"]) for r in rows))
    names = list(dict.fromkeys(r["solver"] for r in rows))
    by = {(r["solver"], r["d"], r["d_y"]): r for r in rows}
    head = "| solver | " + " | ".join(f"d={d}, d_y={m}: " + " / ".join(f"{int(100 * l)}%" for l in levels)
                                      for d, m in shapes) + " |"
    lines = [head, "|" + "---|" * (len(shapes) + 1)]
    for name in names:
        cells = []
        for d, m in shapes:
            r = by.get((name, d, m))
            if r is None or r["coverage"] is None:
                cells.append("point estimator" if r is not None else "")
            else:
                cells.append(" / ".join(f"{r['coverage'][l]:.2f}" for l in levels))
        label = f"{name} (reference)" if name == "exact" else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m restore.calibration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--solvers", default=",".join((*SAMPLERS, *POINT_ESTIMATORS)),
                        help="comma-separated solver names (default: every sampler and point estimator)")
    parser.add_argument("--trials", type=int, default=20, help="measurements per problem (default 20)")
    parser.add_argument("--n", type=int, default=200, help="posterior samples per measurement (default 200)")
    parser.add_argument("--steps", type=int, default=50, help="solver steps (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = calibration([s for s in args.solvers.split(",") if s], trials=args.trials, n=args.n,
                       steps=args.steps, seed=args.seed)
    print(f"Coverage of central credible intervals ({args.trials} measurements per problem, {args.n} samples "
          f"each, {args.steps} steps; mixtures of 4 Gaussians, sigma_y = 0.1):\n")
    print(format_table(rows))


if __name__ == "__main__":
    main()
