"""DPIR: plug-and-play image restoration with a denoiser prior, by half-quadratic splitting.

Zhang, Li, Zuo, Zhang, Van Gool, Timofte, "Plug-and-Play Image Restoration with Deep Denoiser Prior",
IEEE TPAMI 2021, eq. (6)-(7) and Sec. 5.1 (the sigma_k / rho_k schedule); official code:
github.com/cszn/DPIR (``main_dpir_deblur.py``, ``utils/utils_pnp.py``, ``get_rho_sigma``).

A diffusion prior is a denoiser at every noise level, so it plugs in where DPIR uses DRUNet. DPIR
estimates a MAP-like point, not a posterior sample: few denoiser calls, high PSNR, smoother detail.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import check_finite, check_inputs, gaussian_sigma, mark_point_estimate, real_part

#: Official: sigma_1 = 49/255 on [0, 1] images; the last sigma is the noise level, floored at 0.255/255.
SIGMA_FIRST, SIGMA_FLOOR = 49 / 255, 0.255 / 255


def dpir_sigmas(steps: int, sigma_y: float, sigma_first: float = SIGMA_FIRST, sigma_last: float | None = None) -> Tensor:
    """The denoiser's noise levels: log-uniform from ``sigma_first`` down to ``sigma_last``, by default
    ``max(sigma_y, 0.255/255)`` (the official deblurring ``modelSigma2``; SR uses ``max(sf, 255 sigma_y) / 255``)."""
    last = max(sigma_y, SIGMA_FLOOR) if sigma_last is None else sigma_last
    return torch.logspace(math.log10(sigma_first), math.log10(min(last, sigma_first)), steps, dtype=torch.float64)


def mean_level(op: Any, y: Tensor) -> Tensor:
    r"""The start :math:`x_0 = c\,\mathbf 1`, the constant image that best explains ``y``:
    :math:`c = \mathrm{Re}\langle A\mathbf 1, y\rangle / \|A\mathbf 1\|^2` per image.

    The first data step :math:`\arg\min_z \|y - Az\|^2 + \rho_1\|z - x_0\|^2` then gives a
    regularised inverse: inpainting holes start at the mean of the measured pixels rather than black,
    and a blur's weak directions stay at the mean instead of taking the pseudo-inverse's amplified noise.
    """
    one = torch.ones((1, *op.in_shape), dtype=y.real.dtype, device=y.device)
    a1 = op(one)
    c = (a1.conj() * y).real.flatten(1).sum(1) / (a1.conj() * a1).real.sum()
    return c.reshape(-1, *([1] * len(op.in_shape))) * one


@torch.no_grad()  # no autograd graph through the network: one plain forward per step
def dpir(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 8,
         generator: Generators = None, callback: Callable[[dict], None] | None = None,
         lam: float = 0.23, sigma_first: float = SIGMA_FIRST, sigma_last: float | None = None) -> Tensor:
    r"""Estimate ``x`` from ``y = A x + n`` with DPIR's half-quadratic splitting.

    For :math:`k = 1..K`, with :math:`\sigma_k` log-uniform from :math:`\sigma_1` to the noise level
    :math:`\sigma` and :math:`\rho_k = \lambda\sigma^2/\sigma_k^2` (eq. 6-7):

    1. :math:`z_k = \arg\min_z \|y - A z\|^2 + \rho_k \|z - x_{k-1}\|^2` (``op.prox``: closed form
       for masks, circular blur, box downsampling and Cartesian MRI; CG otherwise);
    2. :math:`x_k = D(z_k, \sigma_k)`, one denoiser call.

    The objective is :math:`\frac{1}{2\sigma^2}\|y - Ax\|^2 + \lambda\Phi(x)` where the denoiser is
    the proximal map of :math:`\Phi`: for a Gaussian prior :math:`D(\cdot, s)` is exactly
    :math:`\mathrm{prox}_{s^2\Phi}` with :math:`\Phi` the negative log-prior, so with :math:`\lambda = 1`
    and :math:`\sigma_k \to 0` the iterates reach the MAP estimate (= the posterior mean there).

    :param prior: denoiser ``D(x, sigma)`` in image units (sigma on [0, 1] images, as DPIR's).
    :param op: linear operator with ``op.prox`` (the start is :func:`mean_level`).
    :param y: measurement ``(B, *op.out_shape)``.
    :param noise: Gaussian noise model, its ``sigma`` or ``None``; image units.
    :param steps: K, the number of denoiser calls (official: 8 for deblurring, 24 for SR).
    :param generator: checked, then unused (DPIR is deterministic); accepted for the shared signature.
    :param lam: :math:`\lambda` (official 0.23).
    :param sigma_first: :math:`\sigma_1` (official 49/255).
    :param sigma_last: :math:`\sigma_K` (default the noise level floored at 0.255/255, as the official
        deblurring; the official SR x4 uses 4/255, see :func:`restore.official.official_hyper`).
    :returns: the estimate ``(B, *op.in_shape)`` in the real dtype of ``y``.
    :raises restore.SolverDiverged: the state became NaN/inf.
    """
    check_inputs(prior, op, y, noise, steps, generator=generator)
    if lam <= 0 or sigma_first <= 0:
        raise ValueError(f"lam and sigma_first: expected positive values, got {lam} and {sigma_first}")
    if sigma_last is not None and not sigma_last > 0:
        raise ValueError(f"sigma_last: expected a positive noise level, got {sigma_last}")
    sigma_y = gaussian_sigma(noise, "dpir")
    out_dtype = y.real.dtype
    op = op.to(dtype=torch.float64)
    y = y.to(torch.complex128 if y.is_complex() else torch.float64)
    sigmas = dpir_sigmas(steps, sigma_y, sigma_first, sigma_last)
    rhos = (lam * max(sigma_y, SIGMA_FLOOR) ** 2 / sigmas ** 2).tolist()
    sigmas = sigmas.to(y.device)
    x = mean_level(op, y)
    for k in range(steps):
        sigma = sigmas[k]
        z = real_part(op.prox(x, y, rhos[k]))
        x = prior.denoise(z, sigma)
        if callback is not None:
            callback(dict(i=k, x=z, sigma=sigma, x0_hat=x))
        check_finite(x, k, sigma)
    return x.to(out_dtype)


mark_point_estimate(dpir)
