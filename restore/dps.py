"""DPS: Diffusion Posterior Sampling.

Chung, Kim, Mccann, Klasky, Ye, "Diffusion Posterior Sampling for General Noisy Inverse Problems",
ICLR 2023, Algorithm 1 (Gaussian noise) and Algorithm 2 (Poisson noise); official code:
github.com/DPS2022/diffusion-posterior-sampling (``guided_diffusion/condition_methods.py``,
``PosteriorSampling``; step sizes in ``configs/*_config.yaml``).

Each step is a DDPM ancestral step from ``x0_hat = D(x_i, sigma_i)`` followed by a gradient step on
the residual norm taken through the network (the paper's ``zeta_i = zeta / ||y - A(x0_hat)||``):

.. math::

    x_{i-1} = x'_{i-1} - \\zeta \\, \\nabla_{x_i} \\lVert y - \\mathcal{A}(\\hat x_0(x_i)) \\rVert .

Written in the VE parametrisation ``x = x_t / sqrt(abar)`` (image units) the ancestral step is the
DDPM posterior ``q(x_{i-1} | x_i, x0_hat)``; ``zeta`` keeps the official meaning (a step on the
VP state of a network on its own data range), converted exactly: see :func:`vp_step_scale`.

``official=True`` reproduces the official sampler (``guided_diffusion/gaussian_diffusion.py``) in every
detail that differs from our default, each a departure kept on purpose there:

* timesteps ``space_timesteps(1000, [steps])`` (``"respace"``, the stride accumulated in float64; ours
  rounds ``linspace(999, 0, steps)``: the same grid for 10, 20, 50, 100, 1000 steps, not for 15, 21, ...);
* start ``x_T ~ N(0, I)`` in the network's VP units (:func:`restore.official.official_start`; ours is
  ``sigma_T n`` in image units, centred on 0 rather than on the network's zero: 3e-3 after one step);
* the ancestral step's variance from the network's learned range where it has one
  (``model_var_type: learned_range``, the FFHQ and ImageNet checkpoints; ours is the DDPM posterior
  variance). On the equivalence harness's tiny eps-network (16 px, 4x box SR, 10 steps), our default
  (clipped) differs from the official code by 6.8e-4 without a variance head and by 0.14 with one;
  ``official=True``: 8e-8 (float32 on their side);
* ``x0_hat`` clipped to the data range (``clip_denoised: True``) unless ``clip`` says otherwise.

Kept in both modes: the official step takes the gradient of the residual norm *of the whole batch*
(``torch.linalg.norm(difference)``), which couples images; ours takes one norm per image, so each image
is solved as if alone (identical for batch size 1).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import check_finite, check_inputs, network_scale, randn, solver_generator, unit_norm_problem
from .official import grid_sigmas, learned_range_std, official_start

__all__ = ["dps", "vp_step_scale", "residual_norm", "ancestral_step"]

#: Official step sizes ``zeta`` per task (FFHQ/ImageNet configs of the DPS code); the same values, with
#: their sources, are in :mod:`restore.official` (``official_hyper("dps", task)``).
ZETA = {"super_resolution": 0.3, "gaussian_blur": 0.3, "motion_blur": 0.3, "inpainting": 0.5,
        "phase_retrieval": 1.0}


def vp_step_scale(sigma: float, sigma_next: float, scale: float) -> float:
    """Factor turning the official VP-space step ``zeta * grad`` into our VE image-unit step.

    The official update is ``x^vp_{i-1} -= zeta * grad_{x^vp_i} ||r_net||`` on network data
    (``x_net = lo + scale * x``, so ``r_net = scale * r``). With ``x^vp = sqrt(abar) x_net`` the chain
    rule gives ``x_{i-1} -= zeta / (scale * sqrt(abar_i * abar_{i-1})) * grad_{x_i} ||r||`` where
    ``abar = 1 / (1 + (scale * sigma)^2)`` is the network's own.
    """
    inv_abar = (1.0 + (scale * sigma) ** 2) * (1.0 + (scale * sigma_next) ** 2)
    return inv_abar**0.5 / scale


def residual_norm(noise: Any, y: Tensor, y_pred: Tensor) -> Tensor:
    """Per-sample ``||y - A(x0_hat)||`` (Alg. 1), or the Poisson-weighted ``||.||_Lambda`` (Alg. 2).

    Poisson (a noise model with ``gain`` and no Gaussian ``sigma``, ``y = gain * Poisson(A x / gain)``):
    ``Lambda_jj = 1 / (2 k_j)`` on the photon counts ``k = y / gain``, i.e.
    ``||r||_Lambda^2 = sum_j r_j^2 / (2 gain y_j)`` (counts below one photon are weighted as one).
    """
    r = (y - y_pred).reshape(y.shape[0], -1)
    gain = getattr(noise, "gain", None)
    if gain is not None and not getattr(noise, "sigma", 0.0):
        y_floor = y.reshape(y.shape[0], -1).clamp(min=gain)
        return (r.abs() ** 2 / (2 * gain * y_floor)).sum(1).sqrt()
    return torch.linalg.vector_norm(r, dim=1)


def ancestral_step(x: Tensor, x0: Tensor, sigma: float, sigma_next: float, z: Tensor | None,
                   std: Tensor | float | None = None) -> Tensor:
    """DDPM's ``q(x_{i-1} | x_i, x0)`` in VE form (Ho et al. 2020, eq. 7, divided by ``sqrt(abar)``).

    Mean ``x0 + (s'^2 / s^2) (x - x0)``, variance ``s'^2 (s^2 - s'^2) / s^2`` (or ``std**2``, e.g. a
    learned variance); ``z`` is unused at ``s' = 0``.
    """
    ratio = (sigma_next / sigma) ** 2
    x_next = x0 + ratio * (x - x0)
    if sigma_next > 0:
        std = (ratio * (sigma**2 - sigma_next**2)) ** 0.5 if std is None else std
        x_next = x_next + std * z
    return x_next


def dps(
    prior: Any,
    op: Callable[[Tensor], Tensor],
    y: Tensor,
    noise: Any,
    *,
    steps: int = 1000,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    zeta: float = 1.0,
    clip: tuple[float, float] | None = None,
    official: bool = False,
) -> Tensor:
    """Diffusion Posterior Sampling (Chung et al. 2023, Alg. 1 / Alg. 2).

    :param prior: a :class:`priors.Prior`; its native schedule ``prior.sigmas(steps)`` is used.
    :param op: a linear or nonlinear forward model (only ``op(x)`` is needed; its Jacobian comes
        from autograd).
    :param y: the measurement ``(B, *op.out_shape)``.
    :param noise: Gaussian (Alg. 1) or Poisson (Alg. 2, a model with ``gain``) noise.
    :param zeta: step size as in the official configs (:data:`ZETA`: 0.3 blur / SR, 0.5 inpainting,
        1.0 phase retrieval), defined on the network's own data range and VP state.
    :param clip: clamp ``x0_hat`` to this range before use (the official code clips to the data
        range, i.e. ``(0, 1)`` for images); ``None`` keeps the exact denoiser output (with
        ``official=True``: ``(0, 1)``).
    :param official: the official grid, start, learned variance and clipping (module docstring); needs
        a network prior on a discrete DDPM schedule.
    :returns: one posterior sample per measurement, in the precision of y (the state runs in float64).
    """
    check_inputs(prior, op, y, noise, steps)
    op, y, noise = unit_norm_problem(op, y, noise)
    scale = network_scale(prior)
    sigmas = (grid_sigmas(prior, steps, "respace") if official else prior.sigmas(steps)).tolist()
    if official and clip is None:
        clip = (0.0, 1.0)
    learned = official and getattr(prior, "learned_variance", False)
    generator = solver_generator(generator, y)
    n = randn(y.new_empty((y.shape[0], *op.in_shape), dtype=torch.float64), generator)
    x = official_start(prior, sigmas[0], n) if official else sigmas[0] * n
    work_dtype = y.real.dtype  # the operator runs in the measurement's (real) precision
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        with torch.enable_grad():  # the VJP through the network, also when called under no_grad
            x_i = x.requires_grad_(True)
            x0, v = prior.denoise_and_variance(x_i, sigma) if learned else (prior.denoise(x_i, sigma), None)
            if clip is not None:
                x0 = x0.clamp(*clip)
            norm = residual_norm(noise, y, op(x0.to(work_dtype)))
            (grad,) = torch.autograd.grad(norm.sum(), x_i)  # per-sample norms: sum keeps samples apart
        x0, x = x0.detach(), x_i.detach()
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x0))
        z = randn(x0, generator) if sigma_next > 0 else None
        std = learned_range_std(v.detach(), sigma, sigma_next, scale) if v is not None and sigma_next > 0 else None
        x = ancestral_step(x, x0, sigma, sigma_next, z, std)
        x = x - (zeta * vp_step_scale(sigma, sigma_next, scale)) * grad
        check_finite(x, i, sigma)
    return x.to(y.real.dtype)
