"""TDS: the twisted diffusion sampler.

Wu, Trippe, Naesseth, Blei, Cunningham, "Practical and Asymptotically Exact Conditional Sampling in
Diffusion Models", NeurIPS 2023, Algorithm 1: sequential Monte Carlo over the reverse diffusion with
twisting functions :math:`\\tilde p_k(y \\mid x_k)` built from the denoiser, a twisted proposal that
follows their gradient, and weights that make the sampler asymptotically exact for any twist.

Here the twist is the DPS-style likelihood at the denoised estimate with the variance of the
inpainting twist of the paper's Section 4 (:math:`1-\\bar\\alpha_k`, in VE units
:math:`r_k^2 = \\sigma_k^2 v_d / (\\sigma_k^2 + v_d)` for data of variance :math:`v_d`):

.. math::

    \\tilde p_k(y \\mid x_k) = \\mathcal N\\big(y;\\ \\mathcal A(\\hat x_0(x_k)),\\ (\\sigma_y^2 + r_k^2) I\\big),
    \\qquad \\hat x_0(x_k) = D(x_k, \\sigma_k),

so any forward model ``op(x)`` works (linear or not): the gradient comes from autograd through the
denoiser and the operator.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import check_finite, check_inputs, gaussian_sigma, solver_generator
from ._smc import check_smc, cloud_randn, finish, kernel_variance, mark_cloud, resample

__all__ = ["tds"]


def _twist(prior: Any, op: Any, y: Tensor, x: Tensor, sigma: float, var: float, chunk: int | None
           ) -> tuple[Tensor, Tensor, Tensor]:
    """``(x0_hat, log p~(y | x), grad_x log p~)`` on a cloud ``x`` ``(B, P, *shape)``, at most ``chunk``
    particles per denoiser call; ``y`` is ``(B, *out_shape)``."""
    batch, p = x.shape[:2]
    flat = x.reshape(batch * p, *x.shape[2:])
    y_rep = y[:, None].expand(batch, p, *y.shape[1:]).reshape(batch * p, *y.shape[1:])
    size = flat.shape[0] if chunk is None else int(chunk)
    x0s, logs, grads = [], [], []
    for start in range(0, flat.shape[0], size):
        with torch.enable_grad():
            xc = flat[start:start + size].detach().requires_grad_(True)
            x0 = prior.denoise(xc, sigma)
            r = (y_rep[start:start + size] - op(x0)).reshape(xc.shape[0], -1)
            log_p = -0.5 * (r.abs() ** 2).sum(1) / var
            (grad,) = torch.autograd.grad(log_p.sum(), xc)  # per-particle terms: the sum keeps them apart
        x0s.append(x0.detach())
        logs.append(log_p.detach())
        grads.append(grad)
    return (torch.cat(x0s).reshape(x.shape), torch.cat(logs).reshape(batch, p).to(torch.float64),
            torch.cat(grads).reshape(x.shape))


def tds(prior: Any, op: Callable[[Tensor], Tensor], y: Tensor, noise: Any, *, steps: int = 100,
        generator: Generators = None, callback: Callable[[dict], None] | None = None,
        particles: int = 16, chunk: int | None = None, ess_threshold: float = 0.5,
        resampling: str = "systematic", return_cloud: bool = False, data_var: float = 1.0,
        kernel_var: float = 0.5) -> Tensor:
    r"""Sample ``x`` given ``y = A(x) + n``, ``n ~ N(0, sigma_y^2 I)``, ``sigma_y > 0``, with TDS (Alg. 1).

    From :math:`\sigma = \sigma_k` to :math:`\sigma' = \sigma_{k+1}` the reverse kernel is
    :math:`p(x' \mid x) = \mathcal N(m, v)`, :math:`m = \hat x_0 + (\sigma'^2/\sigma^2)(x - \hat x_0)` (DDPM's
    mean), :math:`v` set by ``kernel_var`` (:mod:`restore._smc`). The twisted proposal shifts its mean along the
    twist's gradient, :math:`\tilde p(x' \mid x, y) = \mathcal N(m + (\sigma^2-\sigma'^2)\nabla_x \log
    \tilde p_k(y \mid x),\ v)` (the conditional-score form of DDPM's mean), and the weight is

    .. math::

        w_k = \frac{p(x' \mid x)\, \tilde p_{k+1}(y \mid x')}{\tilde p(x' \mid x, y)\, \tilde p_k(y \mid x)},

    with :math:`w = \tilde p_0(y \mid x_0)` at the start (:math:`x \sim \mathcal N(0, \sigma_{max}^2)`).
    The last step (to :math:`\sigma = 0`) is DDPM's deterministic :math:`x_0 = \hat x_0`, weighted by the
    true likelihood :math:`p(y \mid x_0) / \tilde p(y \mid x)`, so the target is exactly the
    diffusion model's posterior.

    Departures from the paper: the state is VE and the schedule the prior's; the kernel's variance is
    by default the midpoint between DDPM's and the paper's Euler-Maruyama one (``kernel_var=1``; the
    drift is the same, :math:`\sigma^2 - \sigma'^2`): DDPM's under-disperses and Euler-Maruyama's
    over-disperses at a hundred steps (:mod:`restore._smc`); resampling is adaptive (ESS) instead of at
    every step.

    :param op: any forward model ``op(x)`` (linear or not), differentiable by autograd.
    :param noise: Gaussian noise with ``sigma_y > 0`` (the final weight is the likelihood).
    :param data_var: :math:`v_d`, the data variance in the twist's :math:`r_k^2` (1: the paper's
        :math:`1 - \bar\alpha_k`).
    :param kernel_var: the backward kernel's variance, :math:`\lambda` in :func:`restore._smc.kernel_variance`:
        0 DDPM's, 1 Euler-Maruyama's (the paper's), 0.5 (default) their midpoint.
    :param callback: called before each step with ``dict(i, x, sigma, x0_hat, log_weights)``; ``x`` and
        ``x0_hat`` are the clouds ``(B, particles, *op.in_shape)``, ``log_weights`` ``(B, particles)``.
    :param particles, chunk, ess_threshold, resampling, return_cloud: as in :func:`restore.mcgdiff`.
    :returns: ``(B, *op.in_shape)``, or the cloud ``(B, particles, *op.in_shape)`` with ``return_cloud``.
        The network runs ``steps * particles`` times per measurement, each with a backward pass.
    :raises TypeError: non-Gaussian ``noise``. :raises ValueError: ``sigma_y = 0``; bad arguments.
    """
    check_inputs(prior, op, y, noise, steps)
    check_smc(particles, chunk, ess_threshold, resampling, kernel_var)
    sigma_y = gaussian_sigma(noise, "tds")
    if not sigma_y > 0:
        raise ValueError("noise: tds needs a positive Gaussian noise level (its final weight is the "
                         "likelihood p(y | x0)); for noiseless linear problems use mcgdiff or fps")
    if not data_var > 0:
        raise ValueError(f"data_var: expected a positive variance, got {data_var!r}")
    if hasattr(op, "to"):
        op = op.to(dtype=torch.float64)
    y = y.to(torch.complex128 if y.is_complex() else torch.float64)
    generator = solver_generator(generator, y)
    sigmas = prior.sigmas(steps).to(device=y.device, dtype=torch.float64).tolist()
    batch = y.shape[0]
    shape = tuple(op.in_shape)

    def variance(s: float) -> float:
        return sigma_y ** 2 + s ** 2 * data_var / (s ** 2 + data_var)

    x = sigmas[0] * cloud_randn(batch, particles, shape, generator, device=y.device)
    x0, log_twist, grad = _twist(prior, op, y, x, sigmas[0], variance(sigmas[0]), chunk)
    log_w = log_twist.clone()
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        log_w, (x, x0, log_twist, grad) = resample(log_w, [x, x0, log_twist, grad], generator,
                                                   ess_threshold, resampling)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x0, log_weights=log_w))
        ratio = sigma_next ** 2 / sigma ** 2
        m = x0 + ratio * (x - x0)
        if sigma_next > 0:
            v = kernel_variance(sigma, sigma_next, kernel_var)
            mean = m + (sigma ** 2 - sigma_next ** 2) * grad
            x = mean + v ** 0.5 * cloud_randn(batch, particles, shape, generator, device=y.device)
            dims = tuple(range(2, x.ndim))
            log_kernel = -0.5 * (((x - m) ** 2).sum(dims) - ((x - mean) ** 2).sum(dims)) / v
            x0, new_twist, grad = _twist(prior, op, y, x, sigma_next, variance(sigma_next), chunk)
            log_w = log_w + log_kernel + new_twist - log_twist
            log_twist = new_twist
        else:  # the last step: x0 = x0_hat, weighed by the true likelihood
            x = m
            r = (y[:, None] - op(x.reshape(-1, *shape)).reshape(batch, particles, *y.shape[1:]))
            log_lik = -0.5 * (r.abs() ** 2).reshape(batch, particles, -1).sum(-1) / sigma_y ** 2
            log_w = log_w + log_lik - log_twist
        check_finite(x, i, sigma)
    return finish(x.detach(), log_w, generator, return_cloud, resampling).to(y.real.dtype)


mark_cloud(tds)
