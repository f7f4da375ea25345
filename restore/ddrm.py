"""DDRM: Denoising Diffusion Restoration Models.

Kawar, Elad, Ermon, Song, "Denoising Diffusion Restoration Models", NeurIPS 2022, eq. (7)-(8)
(the reverse process in the spectral space of A); official code: github.com/bahjat-kawar/ddrm
(``functions/denoising.py``, ``efficient_generalized_steps``).

``official=True`` reproduces the official sampler where our default departs from it on purpose:

* timesteps ``range(0, 1000, 1000 // steps)`` reversed (``runners/diffusion.py``, ``skip``; ours is
  ``linspace(999, 0, steps).round()``, shared by every solver); measured on the equivalence harness's tiny eps-network (16 px, 20 steps), grid
  and start together move the result by 5.7e-2 (4x box SR) and 9.3e-2 (50% inpainting), relative;
* the start in network units: unmeasured spectral coordinates centred on the network's zero (0.5 for a
  [-1, 1] network; ours on 0), and the whole start divided by ``sigma_T`` where the VP state needs
  ``sqrt(abar_T)`` (the official ``init_y / largest_sigmas``; a factor ``sqrt(1 + sigma_T^2) / sigma_T``,
  1 + 2e-5 at t = 950), see :func:`official_ddrm_start`.

With ``official=True`` the equivalence harness (a tiny random eps-network, 16 px, the official
``efficient_generalized_steps`` with the same noise) measures 7e-7 (4x box SR) and 9e-7 (50% inpainting)
at 20 steps against the official code, their float32 floor; 7e-16 with both sides in float64.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import (check_finite, check_inputs, effective_rcond, gaussian_sigma, network_scale, randn, real_part,
                      solver_generator)
from .official import grid_sigmas, network_zero

def require_svd(op: Any, solver: str) -> Any:
    """``op.svd``, or a ValueError that says what is missing and what to use instead."""
    svd = getattr(op, "svd", None)
    if svd is None:
        name = getattr(op, "name", type(op).__name__)
        raise ValueError(f"op: {solver} needs the operator's singular value decomposition, but "
                         f"{name!r} has op.svd = None; use ddnm, pigdm or diffpir, which need only "
                         "op.pinv / op.prox / op.H")
    return svd


def spectral_measurement(svd: Any, y: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(s, y_bar)``: singular values and ``y_bar = S^+ U^T y`` (zero where ``s == 0``)."""
    s = svd.s.to(torch.float64)
    uty = svd.Ut(y)
    y_bar = torch.where(s > 0, uty / torch.where(s > 0, s, 1.0), torch.zeros_like(uty))
    return s, y_bar


def official_ddrm_start(prior: Any, svd: Any, x: Tensor, measured: Tensor, sigma_T: float) -> Tensor:
    r"""Our start ``x`` (image units) turned into the official one.

    Officially the start is built in network units ``x_net = lo + w x``, where the unmeasured spectral
    coordinates carry no offset (the network's zero), and the VP state is ``V x_bar / sigma_T`` rather
    than ``sqrt(abar_T) V x_bar``. Seen in our VE image units that is
    ``k x + z (1 - k P 1)``, ``k = sqrt(1 + (w sigma_T)^2) / (w sigma_T)``, ``z = -lo / w`` and ``P`` the
    projector on the coordinates ``measured`` (those where y starts less noisy than ``x_T``).
    """
    w = network_scale(prior)
    k = (1.0 + (w * sigma_T) ** 2) ** 0.5 / (w * sigma_T)
    zero = network_zero(prior)
    one = torch.ones((1, *x.shape[1:]), dtype=x.dtype, device=x.device)
    p_one = real_part(svd.V(torch.where(measured, svd.Vt(one), torch.zeros_like(svd.Vt(one)))))
    return k * x + zero * (one - k * p_one)


@torch.no_grad()  # no autograd graph through the network: one plain forward per step
def ddrm(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 20,
         generator: Generators = None, callback: Callable[[dict], None] | None = None,
         eta: float = 0.85, eta_b: float = 1.0, rcond: float | None = None, official: bool = False) -> Tensor:
    r"""Sample ``x`` given ``y = A x + n``, ``n ~ N(0, sigma_y^2 I)``, with DDRM.

    In the spectral coordinates :math:`\bar x = V^T x`, :math:`\bar y = \Sigma^+ U^T y` every
    coordinate ``i`` takes, from :math:`\hat{\bar x}_0 = V^T D(x_t, \sigma_t)`, one of eq. (8):

    * unobserved (:math:`s_i = 0`): :math:`\hat{\bar x}_0 + \sqrt{1-\eta^2}\,\sigma_{t-1}\,\bar\epsilon
      + \eta\,\sigma_{t-1} z` (DDIM, :math:`\bar\epsilon = (\bar x_t - \hat{\bar x}_0)/\sigma_t`);
    * less noisy than y (:math:`\sigma_{t-1} < \sigma_y / s_i`): :math:`\hat{\bar x}_0 +
      \sqrt{1-\eta^2}\,\sigma_{t-1} (\bar y - \hat{\bar x}_0) s_i / \sigma_y + \eta\,\sigma_{t-1} z`;
    * noisier than y: :math:`\eta_b \bar y + (1-\eta_b)\hat{\bar x}_0 +
      \sqrt{\sigma_{t-1}^2 - \eta_b^2\sigma_y^2/s_i^2}\; z`.

    The VE state ``x`` is the paper's :math:`x_t/\sqrt{\bar\alpha_t}`, so the paper's
    :math:`\sigma_t = \sqrt{1-\bar\alpha_t}/\sqrt{\bar\alpha_t}` is the prior's own sigma. The boundary
    :math:`\sigma_{t-1} s_i = \sigma_y` counts as "noisier", so at zero noise the last step returns
    :math:`\bar y` on the measured coordinates and ``A x == y`` holds exactly.

    :param prior: denoiser ``D(x, sigma)`` (:class:`priors.Prior`), schedule from ``prior.sigmas``.
    :param op: linear operator with ``op.svd``.
    :param y: measurement ``(B, *op.out_shape)``.
    :param noise: Gaussian noise model, its ``sigma`` or ``None``; image units.
    :param steps: number of denoiser evaluations (official: 20).
    :param eta: :math:`\eta` (official 0.85), the stochasticity on unobserved / low-noise coordinates.
    :param eta_b: :math:`\eta_b` (official 1.0), how much of ``y`` enters on high-noise coordinates.
    :param rcond: singular values at or below ``rcond * max(s)`` count as unmeasured (default: the
        official 3e-2 for noisy ``y``, 0 for exact ``y``). Without it, a direction with a tiny
        :math:`s_i` takes y's residual amplified by :math:`1/s_i` at every step, and its samples
        collapse instead of following the prior (blur kernels have many such directions).
    :param official: the official grid and start (module docstring); needs a DDPM network prior.
    :returns: the sample, shape ``(B, *op.in_shape)``, in the real dtype of ``y``.
    :raises ValueError: ``op`` has no SVD; bad input (see :func:`restore._common.check_inputs`).
    :raises restore.SolverDiverged: the state became NaN/inf.
    """
    check_inputs(prior, op, y, noise, steps)
    sigma_y = gaussian_sigma(noise, "ddrm")
    op = op.to(dtype=torch.float64)
    svd = require_svd(op, "ddrm").truncated(effective_rcond(rcond, sigma_y))
    generator = solver_generator(generator, y)
    s, y_bar = spectral_measurement(svd, y.to(torch.complex128 if y.is_complex() else torch.float64))
    measured = s > 0
    # sigma_y / s_i: the noise level of y_bar_i (inf where unmeasured)
    c = torch.where(measured, sigma_y / torch.where(measured, s, 1.0), torch.full_like(s, float("inf")))
    c_safe = torch.where(c > 0, c, 1.0)  # where c == 0, y is never the less noisy one
    sigmas = grid_sigmas(prior, steps, "stride") if official else prior.sigmas(steps)
    sigmas = sigmas.to(device=y.device, dtype=torch.float64)
    shape = (y.shape[0], *op.in_shape)
    z = torch.zeros(shape, dtype=torch.float64, device=y.device)

    # x_T ~ q(x_T | y): y_bar plus the missing noise where y_bar is less noisy than x_T (official init)
    z_bar = svd.Vt(randn(z, generator))
    start = measured & (c < sigmas[0])
    x_bar = torch.where(start, y_bar + (sigmas[0] ** 2 - c ** 2).clamp_min(0).sqrt() * z_bar,
                        sigmas[0] * z_bar)
    x = real_part(svd.V(x_bar))
    if official:
        x = official_ddrm_start(prior, svd, x, start, float(sigmas[0]))
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = prior.denoise(x, sigma)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x0))
        x0_bar, z_bar = svd.Vt(x0), svd.Vt(randn(z, generator))
        # DDIM direction: eps on unobserved coordinates, y's scaled residual where y is less noisy
        direction = torch.where(measured, (y_bar - x0_bar) / c_safe, (svd.Vt(x) - x0_bar) / sigma)
        ddim = x0_bar + ((1 - eta ** 2) ** 0.5 * sigma_next) * direction + (eta * sigma_next) * z_bar
        noisier = (eta_b * y_bar + (1 - eta_b) * x0_bar
                   + (sigma_next ** 2 - eta_b ** 2 * c ** 2).clamp_min(0).sqrt() * z_bar)
        x_bar = torch.where(measured & (sigma_next >= c), noisier, ddim)
        x = real_part(svd.V(x_bar))
        check_finite(x, i, sigma)
    return x.to(y.real.dtype)
