"""The Gaussian-mixture testbed table for issue 16: every solver's sliced Wasserstein to the exact
posterior, beside the exact sampler's floor and the prior's own distance, at d = 8 and 80 and
d_y = 1, 2, 4, with 2000 samples per problem (for SMC solvers: one cloud of 2000 particles, MCGDiff's
protocol), NFE and wall time.

The problems are the benchmark ``gmm`` suite's: ``benchmarks.problems.gmm_prior`` (4 components at d = 8,
5 at d = 80, seed = d), ``benchmarks.problems.random_matrix`` (entries N(0, 1/d)), noise 0.1, ground
truths from ``benchmarks.datasets.gmm_points``. Run outside the benchmark runner (it counts denoiser
calls, not rows: see the report of issue 16)::

    .venv/bin/python scripts/smc_gmm_table.py [--steps 100] [--n 2000] [--points 3] [--solvers ...]

Columns: ``sw`` the mean over ground truths of SW2(solver, exact), ``floor`` SW2(exact, exact'),
``prior`` SW2(prior samples, exact), ``ratio = (sw - floor) / (prior - floor)`` (the share of the
prior-to-posterior distance the solver leaves; the goal is < 0.10), ``NFE/sample`` denoiser rows per
returned sample, ``wall s`` per problem.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import operators as ops  # noqa: E402
import restore  # noqa: E402
from benchmarks.datasets import gmm_points  # noqa: E402
from benchmarks.problems import gmm_prior, random_matrix  # noqa: E402
from priors import sliced_wasserstein  # noqa: E402

SOLVERS = ["dps", "red_diff", "ddrm", "pigdm", "ddnm", "diffpir", "daps", "mcgdiff", "fps", "tds"]
COMPONENTS = {8: 4, 80: 5}


def counted(prior, rows):
    """``prior`` with its ``denoise`` counting the rows it sees (the true NFE, particles included)."""
    base = type(prior)

    class Counting(base):
        def denoise(self, x, sigma):
            rows[0] += x.shape[0]
            return base.denoise(self, x, sigma)

    clone = object.__new__(Counting)
    clone.__dict__.update(prior.__dict__)
    return clone


def run(steps: int, n: int, points: int, solvers: list[str], dims=(8, 80), d_ys=(1, 2, 4), hyper=None):
    hyper = hyper or {}
    results = []
    for d in dims:
        prior = gmm_prior(d, COMPONENTS[d], seed=d, dtype=torch.float64)
        truths = gmm_points(d, COMPONENTS[d], seed=d, n=points)
        for m in d_ys:
            for k, (name, x) in enumerate(truths):
                g = torch.Generator().manual_seed(1000 * d + 10 * m + k)
                op = random_matrix((d,), generator=g, m=m)
                op = ops.Matrix(op.A.double())
                noise = ops.GaussianNoise(0.1)
                y = op(x[None].double()) + 0.1 * torch.randn(1, m, generator=g, dtype=torch.float64)
                post = prior.posterior(op, y, noise)
                ref = post.sample(n, generator=g)
                floor = sliced_wasserstein(post.sample(n, generator=g), ref, generator=torch.Generator().manual_seed(0))
                prior_sw = sliced_wasserstein(prior.sample(n, generator=g), ref,
                                              generator=torch.Generator().manual_seed(0))
                for s in solvers:
                    rows = [0]
                    base, _, opts = s.partition(":")  # "mcgdiff:sigma_on=5" runs mcgdiff with sigma_on=5
                    solver = restore.SOLVERS[base]
                    kw = dict(hyper.get(s, {}), **{k: float(v) for k, v in
                                                   (o.split("=") for o in opts.split(";") if o)})
                    gen = torch.Generator().manual_seed(k)
                    start = time.perf_counter()
                    if getattr(solver, "cloud", False):
                        out = solver(counted(prior, rows), op, y, noise, steps=steps, particles=n, return_cloud=True,
                                     generator=gen, **kw)[0]
                    else:
                        out = solver(counted(prior, rows), op, y.expand(n, -1), noise, steps=steps, generator=gen, **kw)
                    wall = time.perf_counter() - start
                    sw = sliced_wasserstein(out.double(), ref, generator=torch.Generator().manual_seed(0))
                    results.append(dict(d=d, m=m, point=k, solver=s, sw=sw, floor=floor, prior=prior_sw,
                                        nfe=rows[0] / n, wall=wall))
                    print(f"d={d} d_y={m} {name} {s:9s} sw {sw:.4f} floor {floor:.4f} prior {prior_sw:.4f} "
                          f"ratio {(sw - floor) / (prior_sw - floor):.3f} NFE/sample {rows[0] / n:.0f} "
                          f"wall {wall:.2f}s", flush=True)
    return results


def table(results, solvers):
    cells = list(dict.fromkeys((r["d"], r["m"]) for r in results))
    lines = ["| solver | " + " | ".join(f"d={d}, d_y={m}" for d, m in cells) + " | NFE/sample | wall s/problem |",
             "|" + "---|" * (len(cells) + 3)]

    def mean(xs):
        return sum(xs) / len(xs)

    for s in solvers:
        rs = [r for r in results if r["solver"] == s]
        vals = []
        for d, m in cells:
            c = [r for r in rs if (r["d"], r["m"]) == (d, m)]
            sw, fl, pr = mean([r["sw"] for r in c]), mean([r["floor"] for r in c]), mean([r["prior"] for r in c])
            vals.append(f"{sw:.3f} ({(sw - fl) / (pr - fl):.2f})")
        lines.append(f"| {s} | " + " | ".join(vals) + f" | {mean([r['nfe'] for r in rs]):.0f} | "
                     f"{mean([r['wall'] for r in rs]):.2f} |")
    for key in ("floor", "prior"):
        vals = []
        for d, m in cells:
            c = [r for r in results if (r["d"], r["m"]) == (d, m) and r["solver"] == solvers[0]]
            vals.append(f"{mean([r[key] for r in c]):.3f}")
        lines.append(f"| *{key}* | " + " | ".join(vals) + " | | |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--points", type=int, default=3)
    parser.add_argument("--solvers", default=",".join(SOLVERS))
    parser.add_argument("--dims", default="8,80")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    solvers = args.solvers.split(",")
    results = run(args.steps, args.n, args.points, solvers, dims=tuple(int(d) for d in args.dims.split(",")))
    print()
    print(f"SW2 to the exact posterior (share of the prior-to-posterior distance left, (sw - floor) / (prior - "
          f"floor)), {args.steps} steps, {args.n} samples per problem, mean over {args.points} ground truths:\n")
    print(table(results, solvers))


if __name__ == "__main__":
    main()
