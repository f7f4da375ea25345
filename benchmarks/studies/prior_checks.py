"""Checks of the exact priors and the unconditional samplers, printed as Markdown tables.

``python -m benchmarks.studies.prior_checks [--n 4000] [--mc 400000]``

1. ``denoise`` of a Gaussian and of a mixture against a Monte-Carlo estimate of E[x0 | x] (prior samples
   weighted by N(x; x0, sigma^2 I)) at 4 sigmas: the largest |exact - MC| in units of the MC standard error.
2. ``posterior(op, y, noise)`` mean against importance sampling from the prior (weights exp(-nll)), for
   a real and a complex matrix.
3. ``priors.sample`` (Heun, DDIM, DDPM at several step counts) on a 2-D and a 16-D mixture: sliced
   Wasserstein-2 distance to exact samples, next to the floor (the distance between two exact sets of
   the same size; mean and spread over independent pairs).
4. The same samplers on a diagonal Gaussian, where the output law is Gaussian and known exactly: its
   variance (per eigenvalue) and mean, obtained without Monte Carlo by differentiating the sampler
   through its noise inputs.
"""
from __future__ import annotations

import argparse
import time

import torch

import operators as ops
from priors.exact import Gaussian, GaussianMixture
from priors.sample import output_moments, sample, sliced_wasserstein

from ..problems import gmm_prior

F64 = torch.float64


def mixture(d: int, k: int, seed: int = 0) -> GaussianMixture:
    """The exact-posterior suite's random mixture (:func:`benchmarks.problems.gmm_prior`), in float64."""
    return gmm_prior(d, k, seed, spread=1.5, scale=0.5, dtype=F64)


def gaussian(d: int, seed: int = 1) -> Gaussian:
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(d, d, generator=g, dtype=F64)
    return Gaussian(torch.randn(d, generator=g, dtype=F64), f @ f.T / d + 0.1 * torch.eye(d, dtype=F64))


def importance_mean(samples: torch.Tensor, log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Self-normalised IS estimate of E[x], its standard error, and the effective sample size."""
    w = torch.softmax(log_w, 0)
    est = w @ samples
    se = ((w[:, None] ** 2) * (samples - est) ** 2).sum(0).sqrt()
    return est, se, float(1 / (w**2).sum())


def denoise_table(n_mc: int) -> None:
    print("## 1. denoise vs Monte Carlo E[x0 | x]\n")
    print(f"{n_mc} prior samples per estimate; 5 query points x = x0 + sigma n per sigma; "
          "sigma in units of the data scale (RMS std per coordinate).\n")
    print("| prior | sigma/scale | min ESS | max abs diff | max SE | max abs diff / SE |")
    print("|---|---|---|---|---|---|")
    for name, prior in (("Gaussian d=3", gaussian(3)), ("mixture d=2, K=4", mixture(2, 4))):
        g = torch.Generator().manual_seed(2)
        x0 = prior.sample(n_mc, generator=g)
        scale = prior.covariance.diagonal().mean().sqrt().item()
        for rel in (0.2, 0.5, 1.0, 3.0):
            sigma = rel * scale
            x = prior.sample(5, generator=g) + sigma * torch.randn(5, prior.dim, generator=g, dtype=F64)
            exact = prior.denoise(x, sigma)
            diffs, ses, zs, ess = [], [], [], []
            for xi, ei in zip(x, exact):
                est, se, n_eff = importance_mean(x0, -((xi - x0) ** 2).sum(1) / (2 * sigma**2))
                diffs.append((ei - est).abs().max().item())
                ses.append(se.max().item())
                zs.append(((ei - est).abs() / se).max().item())
                ess.append(n_eff)
            print(f"| {name} | {rel} | {min(ess):.0f} | {max(diffs):.2e} | {max(ses):.2e} | {max(zs):.2f} |")
    print()


def posterior_table(n_mc: int) -> None:
    print("## 2. exact posterior mean vs importance sampling from the prior\n")
    print("| prior | operator | sigma_y | ESS | max abs diff | max abs diff / SE |")
    print("|---|---|---|---|---|---|")
    cases = [
        ("mixture d=2, K=4", mixture(2, 4), torch.tensor([[1.0, 0.5]], dtype=F64), 0.3),
        ("mixture d=4, K=3", mixture(4, 3, seed=5),
         torch.randn(2, 4, generator=torch.Generator().manual_seed(6), dtype=F64) / 2, 0.3),
        ("Gaussian d=3", gaussian(3), torch.randn(1, 3, generator=torch.Generator().manual_seed(8),
                                                  dtype=torch.complex128), 0.4),
    ]
    for name, prior, a, sigma_y in cases:
        g = torch.Generator().manual_seed(7)
        op, noise = ops.Matrix(a), ops.GaussianNoise(sigma_y)
        y = noise(op(prior.sample(1, generator=g)), generator=g)
        post = prior.posterior(op, y, noise)
        x0 = prior.sample(n_mc, generator=g)
        est, se, ess = importance_mean(x0, -noise.nll(y.expand(n_mc, *y.shape[1:]), op(x0)))
        diff = (post.mean - est).abs()
        kind = "complex" if a.is_complex() else "real"
        print(f"| {name} | {kind} {a.shape[0]}x{a.shape[1]} Matrix | {sigma_y} | {ess:.0f} | "
              f"{diff.max().item():.2e} | {(diff / se).max().item():.2f} |")
    print()


def sampler_table(n: int, n_floor: int, seeds: int) -> None:
    print("## 3. priors.sample: sliced Wasserstein-2 to exact samples\n")
    print(f"n = {n} samples per set, 256 random projections (the same for every row). Floor: SW2 between "
          f"the reference set and {n_floor} other exact sets (mean, min-max). Sampler rows: the same over "
          f"{seeds} seeds. "
          f"Schedule: the prior's Karras schedule (sigma_max = 100x the data scale, sigma_min = 1e-3x the finest "
          "component standard deviation).\n")
    configs = [("heun", s, {}) for s in (10, 20, 40, 80)] + [("heun churn=10", 40, {"churn": 10.0})]
    configs += [("ddim", s, {}) for s in (20, 50, 100, 200)] + [("ddim eta=1", 100, {"eta": 1.0})]
    configs += [("ddpm", s, {}) for s in (20, 50, 100, 200)]
    for d, k in ((2, 4), (16, 5)):
        prior = mixture(d, k)
        proj = torch.Generator().manual_seed(99)
        seed_state = proj.get_state()

        def sw(a, b):
            proj.set_state(seed_state)
            return sliced_wasserstein(a, b, n_proj=256, generator=proj)

        reference = prior.sample(n, generator=torch.Generator().manual_seed(1))
        floors = torch.tensor([sw(prior.sample(n, generator=torch.Generator().manual_seed(s)), reference)
                               for s in range(2, 2 + n_floor)])
        print(f"### {d}-D mixture, K={k}: exact floor {floors.mean():.4f} "
              f"(min {floors.min():.4f}, max {floors.max():.4f})\n")
        print("| sampler | steps | NFE | SW2 mean (min-max) | mean / floor | seconds per run |")
        print("|---|---|---|---|---|---|")
        for label, steps, hyper in configs:
            method = label.split()[0]
            t0 = time.perf_counter()
            runs = (sample(prior, n, steps, method=method, generator=torch.Generator().manual_seed(s), **hyper)
                    for s in range(10, 10 + seeds))
            dists = torch.tensor([sw(x, reference) for x in runs])
            seconds = (time.perf_counter() - t0) / seeds
            nfe = 2 * steps - 1 if method == "heun" else steps
            print(f"| {label} | {steps} | {nfe} | {dists.mean():.4f} ({dists.min():.4f}-{dists.max():.4f}) | "
                  f"{dists.mean() / floors.mean():.2f} | {seconds:.2f} |")
        print()


def gaussian_moment_table() -> None:
    lam = torch.tensor([1e-4, 1e-2, 1.0, 4.0], dtype=F64)
    prior = Gaussian(torch.full((4,), 0.5, dtype=F64), lam)
    print("## 4. exact output law on a Gaussian N(0.5, diag(lam))\n")
    print(f"lam = {lam.tolist()}; schedule: prior.sigmas(steps), sigma_min {prior.sigma_min:.2e}, "
          f"sigma_max {prior.sigma_max:.0f}. Output variance / lam - 1 per eigenvalue, and the largest "
          "|mean - 0.5| (the start N(0, sigma_max^2) is not quite p_sigma_max: |mu| sqrt(lam)/sigma_max "
          "= 5e-3 survives the ODE; the ancestral samplers forget it).\n")
    print("| sampler | steps | " + " | ".join(f"var err lam={v:g}" for v in lam.tolist()) + " | mean err |")
    print("|---|---|" + "---|" * len(lam) + "---|")
    for method in ("heun", "ddim", "ddpm"):
        for steps in (10, 20, 50, 100, 200, 400, 1000):
            mean, var = output_moments(prior, method, steps)
            errs = " | ".join(f"{e:+.2e}" for e in (var / lam - 1).tolist())
            print(f"| {method} | {steps} | {errs} | {(mean - 0.5).abs().max().item():.1e} |")
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="samples per set for the sliced Wasserstein table")
    parser.add_argument("--floor-sets", type=int, default=8, help="exact sets used for the floor")
    parser.add_argument("--mc", type=int, default=400_000, help="prior samples for the Monte-Carlo estimates")
    parser.add_argument("--seeds", type=int, default=4, help="sampler runs per row")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-sw", action="store_true", help="skip the (slow) sliced Wasserstein table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    denoise_table(args.mc)
    posterior_table(args.mc)
    gaussian_moment_table()
    if not args.skip_sw:
        sampler_table(args.n, args.floor_sets, args.seeds)


if __name__ == "__main__":
    main()
