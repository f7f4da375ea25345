"""FPS: filtering posterior sampling (with sequential Monte Carlo, FPS-SMC).

Dou & Song, "Diffusion Posterior Sampling for Linear Inverse Problem Solving: A Filtering
Perspective", ICLR 2024: Algorithm 1 (FPS: a noisy measurement sequence :math:`y_{1:T}` from y, then
a backward filter) with the particle version of Section 3.3 (FPS-SMC: weights
:math:`p(y_{t-1} \\mid x_t)`, resampling).

In the VE parametrisation (:math:`x_t = x_0 + \\sigma_t n`, the paper's :math:`x_t/\\sqrt{\\bar\\alpha_t}`)
the paper's :math:`y_t = \\sqrt{\\bar\\alpha_t}\\,y + \\sqrt{1-\\bar\\alpha_t}\\,A\\epsilon_t` becomes
:math:`y_t = y + A w_t` with :math:`w_t` a path of the forward noise (variance :math:`\\sigma_t^2`).

Noisy measurements. The paper's observation model :math:`p(y_t \\mid x_t) = \\mathcal N(A x_t,
\\bar\\alpha_t\\sigma_y^2)` (VE: :math:`\\mathcal N(A x_t, \\sigma_y^2 I)`) draws a fresh noise for every
:math:`y_t`, while all of them carry the one noise of ``y``: the filter counts it once per step and is
overconfident along the measured directions, the more so the more steps (on a Gaussian prior, d_y = 1,
sigma_y = 0.1: the cloud's std along the measured direction 0.29 of the exact one at 50 steps, 0.17 at
200). FPS is exact for noiseless measurements, so here a noisy one is made noiseless first: in the
spectral coordinates :math:`\\bar y_i = \\bar x_{0,i} + c_i \\varepsilon_i` is an exact observation of
the diffusion at the level :math:`c_i = \\sigma_y / s_i` (MCGDiff's reduction, Cardoso et al. 2024,
Sec. 3.2). The path of coordinate i runs from :math:`c_i` up, :math:`\\bar y_{k,i} = \\bar y_i + \\bar
w_{k,i}` with variance :math:`\\sigma_k^2 - c_i^2`, and observes :math:`\\bar x_{k,i}` exactly while
:math:`\\sigma_k > c_i`; in the step that crosses :math:`c_i` the coordinate is set to :math:`\\bar y_i` at
:math:`c_i` (:func:`restore.mcgdiff.release`) and is free below. With ``sigma_y = 0`` this is the
paper's algorithm; with noise the target is the exact posterior of the diffusion model (same
measurement: 0.87 at 50 steps, 0.97 at 200, the kernel's discretisation).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import check_finite, check_inputs, randn, solver_generator
from ._smc import check_smc, cloud_randn, denoise_chunked, finish, kernel_variance, mark_cloud, resample
from .mcgdiff import _log_normal, release, spectral_problem

__all__ = ["fps"]


@torch.no_grad()
def fps(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 100,
        generator: Generators = None, callback: Callable[[dict], None] | None = None,
        particles: int = 16, chunk: int | None = None, ess_threshold: float = 0.5,
        resampling: str = "systematic", return_cloud: bool = False, kernel_var: float = 0.5) -> Tensor:
    r"""Sample ``x`` given ``y = A x + n`` with FPS-SMC (Dou & Song 2024, Alg. 1 with particles).

    In the spectral coordinates of ``A`` (:math:`\bar x = V^T x`, :math:`\bar y = S^+ U^T y`, measured
    coordinate ``i`` with noise :math:`c_i = \sigma_y / s_i`):

    1. The measurement path, one per measurement, generated backwards from :math:`\sigma_{max}` as the
       paper does with DDIM in measurement space (here with :math:`\eta = 1`, which makes it a path of
       the forward noise): a Brownian bridge from :math:`\bar w_0 \sim \mathcal N(0, \sigma_0^2 - c^2)`
       to 0 at the level :math:`c`, :math:`\bar y_k = \bar y + \bar w_k` (module docstring; at
       :math:`c = 0`, :math:`\bar w_{k+1} = (\sigma_{k+1}^2/\sigma_k^2)\,\bar w_k +
       \sqrt{\sigma_{k+1}^2(\sigma_k^2-\sigma_{k+1}^2)/\sigma_k^2}\, z`).
    2. The filter: from :math:`\sigma_k` to :math:`\sigma_{k+1}` each particle moves by the exact
       conditional of the backward kernel :math:`\mathcal N(m, v)` (DDPM's mean from
       :math:`\hat x_0 = D(x, \sigma_k)`, :math:`v` set by ``kernel_var``) given the noiseless
       :math:`\bar x_{k+1,i} = \bar y_{k+1,i}` (the paper's Gaussian step, closed form in the SVD), with
       weight :math:`p(\bar y_{k+1} \mid \bar x_k) = \mathcal N(\bar y_{k+1}; m, v)` (FPS-SMC).

    Departures from the paper: noisy measurements are made noiseless (module docstring); the state is
    VE and the steps follow the prior's own schedule; the measurement path uses :math:`\eta = 1` (the
    paper's :math:`c` is a free parameter); the kernel's variance is by default the midpoint between
    DDPM's (the paper's, ``kernel_var=0``) and Euler-Maruyama's (:mod:`restore._smc`). The last step's
    weight of a noiseless coordinate is degenerate (:math:`v = 0`), so it is set to :math:`\bar y` there
    without reweighting; a coordinate noisier than the start (:math:`c_i \ge \sigma_{max}`) is treated as
    unmeasured.

    :param op: linear operator with a real ``op.svd``.
    :param noise: Gaussian noise model, its sigma, or ``None``.
    :param callback: called before each step with ``dict(i, x, sigma, x0_hat, log_weights)``; ``x`` and
        ``x0_hat`` are the clouds ``(B, particles, *op.in_shape)``, ``log_weights`` ``(B, particles)``.
    :param particles, chunk, ess_threshold, resampling, return_cloud, kernel_var: as in
        :func:`restore.mcgdiff`.
    :returns: ``(B, *op.in_shape)``, or the cloud ``(B, particles, *op.in_shape)`` with ``return_cloud``.
    :raises ValueError: ``op`` nonlinear, without SVD or with a complex one; bad arguments.
    :raises TypeError: non-Gaussian ``noise``.
    """
    check_inputs(prior, op, y, noise, steps)
    check_smc(particles, chunk, ess_threshold, resampling, kernel_var)
    op, svd, y_bar, c, _ = spectral_problem(op, y, noise, "fps")
    generator = solver_generator(generator, y)
    sigmas = prior.sigmas(steps).to(device=y.device, dtype=torch.float64).tolist()
    batch, n = y_bar.shape
    shape = tuple(op.in_shape)
    # coordinates observed within the schedule; c is the level where y_bar observes the diffusion exactly
    measured = torch.isfinite(c) & (c < sigmas[0])
    c_m = torch.where(measured, c, 0.0)

    def to_image(xb: Tensor) -> Tensor:
        return svd.V(xb.reshape(-1, n)).reshape(batch, particles, *shape)

    def above(s: float) -> Tensor:
        """The variance of the path at level s: s^2 - c^2 on the coordinates still observed there."""
        return torch.where(measured, s ** 2 - c_m ** 2, 0.0).clamp_min(0)

    # the measurement path (one per measurement), then the start: N(0, sigma_0^2) given x = y_0 there
    w = above(sigmas[0]).sqrt() * randn(y_bar, generator)
    z = cloud_randn(batch, particles, (n,), generator, device=y.device)
    x_bar = torch.where(measured, (y_bar + w)[:, None, :], sigmas[0] * z)
    log_w = torch.zeros(batch, particles, dtype=torch.float64, device=y.device)
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        log_w, (x_bar,) = resample(log_w, [x_bar], generator, ess_threshold, resampling)
        x0 = denoise_chunked(prior, to_image(x_bar), sigma, chunk)
        x0_bar = svd.Vt(x0.reshape(-1, *shape)).reshape(batch, particles, n)
        if callback is not None:
            callback(dict(i=i, x=to_image(x_bar), sigma=sigma, x0_hat=x0, log_weights=log_w))
        ratio = sigma_next ** 2 / sigma ** 2
        v = kernel_variance(sigma, sigma_next, kernel_var)
        m = x0_bar + ratio * (x_bar - x0_bar)
        still = measured & (c_m < sigma_next)
        released = measured & (c_m < sigma) & ~still
        if sigma_next > 0:  # the path backwards: a Brownian bridge to 0 at the level c
            t, t_next = above(sigma), above(sigma_next)
            frac = torch.where(still, t_next / torch.where(still, t, 1.0), 0.0)
            w = frac * w + (frac * (t - t_next)).clamp_min(0).sqrt() * randn(w, generator)
        y_k = (y_bar + w)[:, None, :]
        # still observed: x' = y_k exactly, weight p(y_k | x) = N(y_k; m, v) (FPS-SMC)
        log_w = log_w + _log_normal(y_k - m, torch.full_like(c_m, v), still)
        z = cloud_randn(batch, particles, (n,), generator, device=y.device)
        x_rel, log_release = release(x_bar, x0_bar, y_bar[:, None, :], c_m, released, sigma, sigma_next,
                                     kernel_var, z)
        log_w = log_w + log_release
        x_bar = torch.where(still, y_k, torch.where(released, x_rel, m + v ** 0.5 * z))
        check_finite(x_bar, i, sigma)
    return finish(to_image(x_bar), log_w, generator, return_cloud, resampling).to(y.real.dtype)


mark_cloud(fps)
