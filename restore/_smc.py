r"""What the sequential Monte Carlo solvers (:mod:`restore.mcgdiff`, :mod:`restore.fps`, :mod:`restore.tds`)
share: particle clouds as a batch dimension, log-weights in float64, ESS-triggered resampling driven by
the solver's generator(s), chunked denoiser calls, and the choice of the returned sample(s).

A cloud is a tensor ``(B, P, *shape)``: ``B`` measurements, ``P`` particles each. Log-weights are
``(B, P)`` float64 and only their differences within a row matter (constants common to a row's
particles are dropped). With one generator per measurement (a sequence), every draw of row ``b`` --
Gaussian noise, resampling uniforms, the final pick -- comes from ``generator[b]`` alone, and is drawn
only when row ``b`` needs it, so a row's cloud is the same whatever the other rows.

Resampling (Douc, Cappe, Moulines 2005): ``systematic`` (one uniform per resampling, low variance, the
default) or ``multinomial`` (``P`` uniforms), applied to a row when its effective sample size
``ESS = (sum w)^2 / sum w^2`` falls below ``ess_threshold * P``.

The backward kernel. Each SMC solver is exact, as particles grow, for the posterior of a discrete
backward chain :math:`p(x' \mid x) = \mathcal N(m, v)` from :math:`\sigma` to :math:`\sigma' < \sigma`, with
DDPM's mean :math:`m = \hat x_0 + r (x - \hat x_0)`, :math:`r = \sigma'^2/\sigma^2`, :math:`\hat x_0 = D(x, \sigma)`.
Its bias is that chain's. The exact transition's first two moments are :math:`m` and
:math:`r\Delta + (1-r)^2 \mathrm{Var}[x_0 \mid x]`, :math:`\Delta = \sigma^2 - \sigma'^2`; ``kernel_var``
(:func:`kernel_variance`) is the guess :math:`\mathrm{Var}[x_0 \mid x] = \lambda \sigma^2`. DDPM's
:math:`\tilde\beta` (:math:`\lambda = 0`, the MCGDiff and FPS papers' kernel) ignores it and
under-disperses, Euler-Maruyama's (:math:`\lambda = 1`, the TDS paper's) takes its upper bound and
over-disperses; their midpoint (:math:`\lambda = 1/2`, the default; Nichol & Dhariwal 2021, Eq. 15,
interpolate between :math:`\tilde\beta` and :math:`\beta` too, in the logs, with a learned weight) is exact
where :math:`\mathrm{Var}[x_0 \mid x] = \sigma^2/2`, i.e. at noise levels near the data's own scale,
where the steps set the posterior's modes and widths. Measured on the gmm-testbed's d = 80 mixture,
100 steps of the prior's schedule, the unconditional chain: each component's std along a random
direction comes out 0.90-0.93 of the exact one with :math:`\lambda = 0` (0.94-0.97 at 200 steps),
1.09-1.14 with 1, 1.00-1.04 with 1/2; the d_y = 1 posterior's mode weights follow (one problem: 0.83 /
0.04 / 0.13 with :math:`\lambda = 0`, 0.76 / 0.07 / 0.17 with 1/2, exact 0.78 / 0.06 / 0.16). In the
gmm-testbed suite at 100 steps, d = 80, d_y = 1, the share of the prior-to-posterior distance TDS
leaves fell from 0.13 to 0.05. On a very coarse grid the midpoint over-disperses where
:math:`\sigma \gg` the data (its excess there is :math:`(1-r)^2/2r` of the variance): on a 2-d Gaussian
at 10 steps its std is 1.5 times the exact one, DDPM's 0.6; from 25 steps on it is the closer.
"""
from __future__ import annotations

from numbers import Real
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ._common import positive_int, randn

__all__ = ["check_smc", "cloud_randn", "ess", "resample", "denoise_chunked", "finish", "RESAMPLING",
           "mark_cloud", "kernel_variance"]

RESAMPLING = ("systematic", "multinomial")


def mark_cloud(solver: Callable) -> Callable:
    """Mark ``solver`` as an SMC solver: ``restore.posterior`` then draws its ``n`` samples from one cloud
    of ``n`` particles per measurement (``particles=n, return_cloud=True``)."""
    solver.cloud = True
    return solver


def check_smc(particles: int, chunk: int | None, ess_threshold: float, resampling: str,
              kernel_var: float = 0.0) -> None:
    """Validate the SMC hyper-parameters; every error names its argument."""
    positive_int(particles, "particles")
    if not isinstance(kernel_var, Real) or not 0 <= float(kernel_var) <= 1:
        raise ValueError(f"kernel_var: expected a fraction in [0, 1], got {kernel_var!r}")
    if chunk is not None:
        positive_int(chunk, "chunk")
    if not isinstance(ess_threshold, Real) or not 0 <= float(ess_threshold) <= 1:
        raise ValueError(f"ess_threshold: expected a fraction in [0, 1], got {ess_threshold!r}")
    if resampling not in RESAMPLING:
        raise ValueError(f"resampling: expected one of {RESAMPLING}, got {resampling!r}")


def kernel_variance(sigma: float | Tensor, sigma_next: float | Tensor, kernel_var: float) -> float | Tensor:
    r"""The backward kernel's variance from ``sigma`` to ``sigma_next`` (numbers or tensors of levels):
    :math:`\Delta (r + \lambda (1 - r))` (module docstring), 0 at ``sigma_next = 0`` (the last step
    returns the denoiser's estimate)."""
    r = sigma_next ** 2 / sigma ** 2
    return (sigma ** 2 - sigma_next ** 2) * (r + kernel_var * (1 - r)) * (sigma_next > 0)


def cloud_randn(batch: int, particles: int, shape: Sequence[int], generator, *, device=None) -> Tensor:
    """Standard normal ``(B, P, *shape)`` float64; row ``b`` from ``generator[b]`` when given a sequence."""
    like = torch.empty((batch, particles, *shape), dtype=torch.float64, device=device)
    return randn(like, generator)


def _uniforms(generator, rows: list[int], batch: int, k: int, device) -> Tensor:
    """``(len(rows), k)`` float64 uniforms; from ``generator[b]`` for row ``b`` with a sequence, else one
    ``(batch, k)`` draw of the single generator, restricted to ``rows``."""
    if isinstance(generator, torch.Generator):
        u = torch.rand((batch, k), generator=generator, dtype=torch.float64, device=generator.device)
        return u[rows].to(device)
    return torch.stack([torch.rand(k, generator=generator[b], dtype=torch.float64, device=generator[b].device)
                        for b in rows]).to(device)


def ess(log_w: Tensor) -> Tensor:
    """Effective sample size per row, ``(B,)``: ``exp(2 lse(log w) - lse(2 log w))``."""
    return torch.exp(2 * torch.logsumexp(log_w, 1) - torch.logsumexp(2 * log_w, 1))


def _indices(log_w: Tensor, u: Tensor, scheme: str) -> Tensor:
    """Ancestor indices ``(R, P)`` from normalised weights and uniforms ``u`` ((R, 1) systematic, (R, P)
    multinomial), by inverting the weights' cumulative sum."""
    p = log_w.shape[1]
    cdf = torch.softmax(log_w, 1).cumsum(1)
    cdf = cdf / cdf[:, -1:]  # exactly 1 at the end, so every position finds an ancestor
    if scheme == "systematic":
        positions = (u + torch.arange(p, dtype=torch.float64, device=u.device)) / p
    else:
        positions = u
    return torch.searchsorted(cdf, positions.contiguous()).clamp_(max=p - 1)


def resample(log_w: Tensor, state: Sequence[Tensor], generator, threshold: float, scheme: str
             ) -> tuple[Tensor, list[Tensor]]:
    """Resample the rows whose ESS is below ``threshold * P``; their log-weights become 0.

    :param state: tensors ``(B, P, ...)`` moved with their particles.
    :returns: ``(log_w, state)``, new tensors where a row was resampled.
    """
    batch, p = log_w.shape
    rows = torch.nonzero(ess(log_w) < threshold * p).flatten().tolist()
    if not rows:
        return log_w, list(state)
    u = _uniforms(generator, rows, batch, 1 if scheme == "systematic" else p, log_w.device)
    idx = _indices(log_w[rows], u, scheme)  # (R, P)
    rows_t = torch.tensor(rows, device=log_w.device)
    out = []
    for t in state:
        t = t.clone()
        picked = torch.gather(t[rows_t], 1, idx.reshape(*idx.shape, *([1] * (t.ndim - 2))).expand(
            len(rows), p, *t.shape[2:]))
        t[rows_t] = picked
        out.append(t)
    log_w = log_w.clone()
    log_w[rows_t] = 0.0
    return log_w, out


def denoise_chunked(prior: Any, x: Tensor, sigma: Tensor | float, chunk: int | None) -> Tensor:
    """``prior.denoise`` on a cloud ``(B, P, *shape)``, at most ``chunk`` particles per call."""
    flat = x.reshape(-1, *x.shape[2:])
    size = flat.shape[0] if chunk is None else int(chunk)
    out = [prior.denoise(flat[i:i + size], sigma) for i in range(0, flat.shape[0], size)]
    return torch.cat(out).reshape(x.shape)


def finish(x: Tensor, log_w: Tensor, generator, return_cloud: bool, scheme: str) -> Tensor:
    """The solver's result from the final weighted cloud ``x`` ``(B, P, *shape)``.

    ``return_cloud=False``: one particle per row, drawn with probability its weight (one uniform of the
    row's generator). ``return_cloud=True``: the whole cloud ``(B, P, *shape)``, resampled once more
    with ``scheme`` so its particles are equally weighted samples.
    """
    batch, p = log_w.shape
    if return_cloud:
        _, (x,) = resample(log_w, [x], generator, 1.0 + 1e-9, scheme)  # threshold > 1: every row
        return x
    u = _uniforms(generator, list(range(batch)), batch, 1, log_w.device)
    idx = _indices(log_w, u, "multinomial")[:, 0]
    return x[torch.arange(batch, device=x.device), idx]
