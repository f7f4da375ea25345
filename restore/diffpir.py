"""DiffPIR: denoising diffusion models for plug-and-play image restoration.

Zhu, Zhang, Liang, Cao, Wen, Timofte, Van Gool, "Denoising Diffusion Models for Plug-and-Play Image
Restoration", CVPRW 2023, Algorithm 1; official code: github.com/yuanzhi-zhu/DiffPIR
(``main_ddpir.py`` with ``configs/*.yaml``; the per-task ``main_ddpir_{deblur,sisr,inpainting}.py``).

``official=True`` reproduces the official loop of ``main_ddpir.py`` (the script ``configs/*.yaml`` drive;
``skip_type='quad'``, ``eta = 0``, one inner iteration), where our default departs from it on purpose:

* timesteps: the ``"quad"`` grid (:meth:`priors.schedules.DiscreteVP.timesteps`), 999 down to 0,
  dense near 0; ours the shared ``linspace(999, 0, steps).round()``;
* start: ``x_T = sqrt(abar_T) u + sqrt(1 - abar_T) n`` on the network's VP scale, i.e. ``u + sigma_T n``
  here, from ``u`` = y itself (deblurring; inpainting, zeros in the holes), y resized bicubically to the
  image size (SR: ``F.interpolate(..., mode='bicubic', align_corners=False)``), or ``A^+ y`` for any
  other operator (:func:`official_diffpir_init`); ours is pure noise ``sigma_T n``. (The older per-task
  scripts differ here: ``main_ddpir_deblur.py`` and ``main_ddpir_inpainting.py`` diffuse y from the
  timestep of its own noise level, ``main_ddpir_sisr.py`` upsamples with OpenCV's bicubic: the start's
  y term is scaled by ``sqrt(abar_T)`` = 6e-3, and on the equivalence harness the first variant moves the
  result by 9e-12 for deblurring, the ``A^+ y`` start by 5e-8 for box SR, both sides in float64);
* ``x0_hat`` clipped to the data range (``clip_denoised=True`` in ``utils_model.model_fn``);
* the last iteration: the official code spends its denoiser call, skips the data step and returns the
  state ``x`` at t = 0 *on the VP scale* (``sqrt(abar_0) x``, not ``x0_hat``); ours takes the data
  step at every iteration and returns the data-consistent ``x0_hat`` (``A x == y`` up to ``rho`` at zero
  noise).

Measured on the equivalence harness (tiny eps-network, 16 px; ``main_ddpir.py`` run itself, same noise),
``official=True`` against the official code: 1.1e-6 to 1.6e-6 relative for deblurring (100 steps), 4x box
SR (100 steps, each lambda of the official sweep) and 50% inpainting (20 steps), their float32 floor;
6e-16 with both sides in float64. Our default against it: 0.12 to 0.16.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import check_finite, check_inputs, float64_start, gaussian_sigma, network_scale, randn, real_part
from .official import grid_sigmas, network_zero


def official_diffpir_init(op: Any, y: Tensor) -> Tensor:
    """The image the official start diffuses (``main_ddpir.py``): y itself when it has the image's shape
    (deblurring; inpainting, zeros in the holes), y resized bicubically to the image size when it is a
    smaller image with the same channels (SR: ``F.interpolate(y, size, mode='bicubic',
    align_corners=False)``), otherwise ``A^+ y``."""
    in_shape, out_shape = tuple(op.in_shape), tuple(y.shape[1:])
    if out_shape == in_shape:
        return y.real
    if len(in_shape) == 3 and len(out_shape) == 3 and out_shape[0] == in_shape[0] and not y.is_complex():
        return torch.nn.functional.interpolate(y, size=in_shape[1:], mode="bicubic", align_corners=False)
    return real_part(op.pinv(y))


def official_diffpir_start(op: Any, y: Tensor, sigma_T: float, n: Tensor) -> Tensor:
    """The official ``x_T = sqrt(abar_T) u + sqrt(1 - abar_T) n`` on the network's VP scale, which is
    ``u + sigma_T n`` in our VE image units (``u`` from :func:`official_diffpir_init`)."""
    return official_diffpir_init(op, y).to(n.dtype) + sigma_T * n


@torch.no_grad()  # no autograd graph through the network: one plain forward per step
def diffpir(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 100,
            generator: Generators = None, callback: Callable[[dict], None] | None = None,
            lam: float = 7.0, zeta: float = 0.3, official: bool = False) -> Tensor:
    r"""Sample ``x`` given ``y = A x + n`` with DiffPIR (half-quadratic splitting in diffusion time).

    Algorithm 1, in the VE state :math:`x_t/\sqrt{\bar\alpha_t}` at the prior's :math:`\sigma_t`:

    1. :math:`x_0^{(t)} = D(x_t, \sigma_t)` (the prior sub-problem, one denoiser call);
    2. :math:`\hat x_0^{(t)} = \arg\min_x \|y - A x\|^2 + \rho_t \|x - x_0^{(t)}\|^2` (data
       sub-problem, ``op.prox``: closed form where the operator has one, CG otherwise), with
       :math:`\rho_t = \lambda\,\sigma_n^2/\bar\sigma_t^2`;
    3. :math:`\hat\epsilon = (x_t - \hat x_0^{(t)})/\sigma_t` and
       :math:`x_{t-1} = \hat x_0^{(t)} + \sigma_{t-1}(\sqrt{1-\zeta}\,\hat\epsilon + \sqrt\zeta\, z)`.

    Units follow the official code, so its :math:`\lambda` carries over: :math:`\sigma_n` is the noise
    on [0, 1] images (image units, floored at 0.001 as there) and :math:`\bar\sigma_t` the diffusion
    noise on the network's own data range, :math:`\bar\sigma_t = w\,\sigma_t` with ``w`` its width
    (2 for [-1, 1], as in the official code; 1 for priors without a network, where
    :math:`\lambda = 1` gives :math:`\rho_t = \sigma_n^2/\sigma_t^2`). The
    official code skips the data step on its last iteration; here every iteration takes it, so at
    zero noise the result is data-consistent up to :math:`\rho`.

    Official settings (FFHQ/ImageNet, 100 steps): deblur :math:`\lambda = 7, \zeta = 0.3` (the
    defaults here); SR x4 :math:`\zeta = 0.25`, :math:`\lambda` swept over 2-12; inpainting
    (20 steps) :math:`\lambda = 1, \zeta = 1`.

    :param prior: denoiser ``D(x, sigma)``; schedule from ``prior.sigmas``.
    :param op: linear operator with ``op.prox``.
    :param y: measurement ``(B, *op.out_shape)``.
    :param noise: Gaussian noise model, its ``sigma`` or ``None``; image units.
    :param steps: number of denoiser evaluations (official 100).
    :param lam: :math:`\lambda`, the weight of the prior in :math:`\rho_t`.
    :param zeta: :math:`\zeta`, the share of fresh noise in each step (0: DDIM-like, 1: all fresh).
    :param official: the official grid, start, clipping and last step (module docstring); needs a
        DDPM network prior. :func:`restore.official.official_hyper` gives the official
        :math:`\lambda, \zeta` and steps per task.
    :returns: the sample ``(B, *op.in_shape)`` in the real dtype of ``y``.
    :raises restore.SolverDiverged: the state became NaN/inf.
    """
    check_inputs(prior, op, y, noise, steps)
    sigma_n = max(gaussian_sigma(noise, "diffpir"), 1e-3)
    out_dtype = y.real.dtype
    op, y, generator, sigmas, x = float64_start(prior, op, y, steps, generator)
    scale = network_scale(prior)
    if official:
        n = x / sigmas[0]  # float64_start's draw, x = sigmas[0] n
        sigmas = grid_sigmas(prior, steps, "quad").to(device=y.device, dtype=torch.float64)
        x = official_diffpir_start(op, y, float(sigmas[0]), n)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = prior.denoise(x, sigma)
        if official:
            x0 = x0.clamp(0.0, 1.0)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x0))
        if official and i == len(sigmas) - 2:  # the state at t = 0 on the VP scale, no data step
            x = (x - network_zero(prior)) / (1.0 + float(scale * sigma) ** 2) ** 0.5 + network_zero(prior)
            break
        rho = lam * sigma_n ** 2 / float(scale * sigma) ** 2
        x0 = real_part(op.prox(x0, y, rho))
        eps = (x - x0) / sigma
        x = x0 + sigma_next * ((1 - zeta) ** 0.5 * eps + zeta ** 0.5 * randn(x, generator))
        check_finite(x, i, sigma)
    return x.to(out_dtype)
