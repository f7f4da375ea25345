"""FPS: filtering posterior sampling (with sequential Monte Carlo, FPS-SMC).

Dou & Song, "Diffusion Posterior Sampling for Linear Inverse Problem Solving: A Filtering
Perspective", ICLR 2024: Algorithm 1 (FPS: a noisy measurement sequence :math:`y_{1:T}` from y, then
a backward filter) with the particle version of Section 3.3 (FPS-SMC: weights
:math:`p(y_{t-1} \\mid x_t)`, resampling).

In the VE parametrisation (:math:`x_t = x_0 + \\sigma_t n`, the paper's :math:`x_t/\\sqrt{\\bar\\alpha_t}`)
the paper's :math:`y_t = \\sqrt{\\bar\\alpha_t}\\,y + \\sqrt{1-\\bar\\alpha_t}\\,A\\epsilon_t` becomes
:math:`y_t = y + A w_t` with :math:`w_t` a path of the forward noise (variance :math:`\\sigma_t^2`), and the
observation model :math:`p(y_t \\mid x_t) = \\mathcal N(A x_t, \\bar\\alpha_t\\sigma_y^2)` becomes
:math:`\\mathcal N(A x_t, \\sigma_y^2 I)`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import check_finite, check_inputs, randn, solver_generator
from ._smc import check_smc, cloud_randn, denoise_chunked, finish, mark_cloud, resample
from .mcgdiff import _log_normal, spectral_problem

__all__ = ["fps"]


@torch.no_grad()
def fps(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 100,
        generator: Generators = None, callback: Callable[[dict], None] | None = None,
        particles: int = 16, chunk: int | None = None, ess_threshold: float = 0.5,
        resampling: str = "systematic", return_cloud: bool = False) -> Tensor:
    r"""Sample ``x`` given ``y = A x + n`` with FPS-SMC (Dou & Song 2024, Alg. 1 with particles).

    In the spectral coordinates of ``A`` (:math:`\bar x = V^T x`, :math:`\bar y = S^+ U^T y`, measured
    coordinate ``i`` with noise :math:`c_i = \sigma_y / s_i`):

    1. The measurement path, one per measurement, generated backwards from :math:`\sigma_{max}` as the
       paper does with DDIM in measurement space (here with :math:`\eta = 1`, which makes it a path of
       the forward noise): :math:`\bar w_0 \sim \mathcal N(0, \sigma_0^2)`, :math:`\bar w_{k+1} =
       (\sigma_{k+1}^2/\sigma_k^2)\,\bar w_k + \sqrt{\sigma_{k+1}^2(\sigma_k^2-\sigma_{k+1}^2)/\sigma_k^2}\, z`,
       and :math:`\bar y_k = \bar y + \bar w_k` on the measured coordinates (so :math:`\bar y_K = \bar y`).
    2. The filter: from :math:`\sigma_k` to :math:`\sigma_{k+1}` each particle moves by the exact
       conditional of the backward kernel :math:`\mathcal N(m, v)` (DDPM, from
       :math:`\hat x_0 = D(x, \sigma_k)`) given :math:`\bar y_{k+1} \sim \mathcal N(\bar x_{k+1}, c^2)`
       (the paper's Gaussian step, closed form in the SVD), with weight
       :math:`p(\bar y_{k+1} \mid \bar x_k) = \mathcal N(\bar y_{k+1}; m, v + c^2)` (FPS-SMC).

    Departures from the paper: the state is VE and the steps follow the prior's own schedule; the
    measurement path uses :math:`\eta = 1` (the paper's :math:`c` is a free parameter). At zero noise
    the last step's weight is degenerate (:math:`v = 0`), so measured coordinates are set to
    :math:`\bar y` there without reweighting. With noisy ``y`` the filter treats the noise of every
    :math:`y_k` as independent, as the paper does: this is the paper's model, not the exact posterior
    (at ``sigma_y = 0`` the filter's target is the exact posterior of the diffusion model).

    :param op: linear operator with a real ``op.svd``.
    :param noise: Gaussian noise model, its sigma, or ``None``.
    :param callback: called before each step with ``dict(i, x, sigma, x0_hat, log_weights)``; ``x`` and
        ``x0_hat`` are the clouds ``(B, particles, *op.in_shape)``, ``log_weights`` ``(B, particles)``.
    :param particles, chunk, ess_threshold, resampling, return_cloud: as in :func:`restore.mcgdiff`.
    :returns: ``(B, *op.in_shape)``, or the cloud ``(B, particles, *op.in_shape)`` with ``return_cloud``.
    :raises ValueError: ``op`` nonlinear, without SVD or with a complex one; bad arguments.
    :raises TypeError: non-Gaussian ``noise``.
    """
    check_inputs(prior, op, y, noise, steps)
    check_smc(particles, chunk, ess_threshold, resampling)
    op, svd, y_bar, c, _ = spectral_problem(op, y, noise, "fps")
    generator = solver_generator(generator, y)
    sigmas = prior.sigmas(steps).to(device=y.device, dtype=torch.float64).tolist()
    batch, n = y_bar.shape
    shape = tuple(op.in_shape)
    measured = torch.isfinite(c)
    c2 = torch.where(measured, c ** 2, 0.0)

    def to_image(xb: Tensor) -> Tensor:
        return svd.V(xb.reshape(-1, n)).reshape(batch, particles, *shape)

    def condition(m: Tensor, v: float, y_k: Tensor, z: Tensor) -> Tensor:
        """A draw of N(m, v) conditioned on y_k ~ N(x, c^2) on the measured coordinates."""
        gain = torch.where(measured, v / torch.where(measured, v + c2, 1.0), 0.0)
        gain = torch.where(measured & (v + c2 == 0), 1.0, gain)
        return m + gain * (y_k - m) + ((1 - gain) * v).clamp_min(0).sqrt() * z

    # the measurement path w (one per measurement), then the start: N(0, sigma_0^2) given y_0
    w = sigmas[0] * randn(y_bar, generator)
    y_k = (y_bar + w)[:, None, :]
    z = cloud_randn(batch, particles, (n,), generator, device=y.device)
    x_bar = condition(torch.zeros_like(z), sigmas[0] ** 2, y_k, z)
    log_w = torch.zeros(batch, particles, dtype=torch.float64, device=y.device)
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        log_w, (x_bar,) = resample(log_w, [x_bar], generator, ess_threshold, resampling)
        x0 = denoise_chunked(prior, to_image(x_bar), sigma, chunk)
        x0_bar = svd.Vt(x0.reshape(-1, *shape)).reshape(batch, particles, n)
        if callback is not None:
            callback(dict(i=i, x=to_image(x_bar), sigma=sigma, x0_hat=x0, log_weights=log_w))
        ratio = sigma_next ** 2 / sigma ** 2
        v = ratio * (sigma ** 2 - sigma_next ** 2)
        m = x0_bar + ratio * (x_bar - x0_bar)
        w = ratio * w + v ** 0.5 * randn(w, generator) if sigma_next > 0 else torch.zeros_like(w)
        y_k = (y_bar + w)[:, None, :]
        weigh = measured & (v + c2 > 0)  # zero noise at sigma' = 0: degenerate, not reweighted
        log_w = log_w + _log_normal(y_k - m, v + c2, weigh)
        x_bar = condition(m, v, y_k, cloud_randn(batch, particles, (n,), generator, device=y.device))
        check_finite(x_bar, i, sigma)
    return finish(to_image(x_bar), log_w, generator, return_cloud, resampling).to(y.real.dtype)


mark_cloud(fps)
