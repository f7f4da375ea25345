"""DDNM / DDNM+: zero-shot restoration by range-null space decomposition.

Wang, Yu, Zhang, "Zero-Shot Image Restoration Using Denoising Diffusion Null-Space Model", ICLR 2023,
Algorithm 1 (DDNM, noise-free) and Algorithm 2 / eq. (17)-(19) (DDNM+, noisy y, without time travel);
official code: github.com/wyhuai/DDNM (``functions/svd_ddnm.py``, ``functions/svd_operators.py``,
``Lambda`` / ``Lambda_noise``).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import check_finite, check_inputs, effective_rcond, float64_start, gaussian_sigma, randn, real_part


def spectral(op: Any, g: Callable[[Tensor], Tensor], v: Tensor, svd: Any = None) -> Tensor:
    r""":math:`V\,g(\Sigma)\,V^T v`, a function of the singular values applied to an image ``v``.

    Exact with ``op.svd``. Without one, the operator is treated as if every non-zero singular value
    were 1 (exact for masks, Cartesian MRI, ...): :math:`g(1) P v + g(0)(I - P) v` with the range
    projector :math:`P = A^+ A`, one ``op.pinv`` (CG) per call. ``svd`` replaces ``op.svd`` (e.g. a
    truncated one, :meth:`operators.linear.SVD.truncated`).
    """
    svd = svd if svd is not None else getattr(op, "svd", None)
    if svd is not None:
        return real_part(svd.V(g(svd.s.to(device=v.device, dtype=torch.float64)) * svd.Vt(v)))
    p = real_part(op.pinv(op(v)))
    one, zero = (g(torch.tensor(s, dtype=torch.float64, device=v.device)) for s in (1.0, 0.0))
    return one * p + zero * (v - p)


def range_scale(s: Tensor, sigma_next: Tensor, sigma_y: float, eta: float) -> Tensor:
    r""":math:`\lambda_i` of :math:`\Sigma_t`: 1 while y's component (noise :math:`\sigma_y/s_i`) is the
    noisier one, else :math:`\sqrt{1-\eta^2}\,\sigma_{t-1} s_i/\sigma_y` (official ``Lambda``)."""
    return torch.where(sigma_next * s >= sigma_y, 1.0, (1 - eta ** 2) ** 0.5 * sigma_next * s / sigma_y)


def fresh_std(s: Tensor, sigma_next: Tensor, sigma_y: float, eta: float) -> Tensor:
    r"""Std of the fresh noise per singular value (official ``Lambda_noise``, ``d1``):
    :math:`\sqrt{\sigma_{t-1}^2 - \sigma_y^2/s_i^2}` while y is noisier, else :math:`\eta\sigma_{t-1}`."""
    noisier = (sigma_next ** 2 - (sigma_y / torch.where(s > 0, s, 1.0)) ** 2).clamp_min(0).sqrt()
    return torch.where((s > 0) & (sigma_next * s >= sigma_y), noisier, eta * sigma_next)


def ddim_std(s: Tensor, sigma_next: Tensor, sigma_y: float, eta: float) -> Tensor:
    r"""Weight of :math:`\hat\epsilon` (``d2``): :math:`\sqrt{1-\eta^2}\,\sigma_{t-1}` in the null
    space, 0 on measured directions."""
    return torch.where(s > 0, 0.0, (1 - eta ** 2) ** 0.5 * sigma_next)


@torch.no_grad()  # no autograd graph through the network: one plain forward per step
def ddnm(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 100,
         generator: Generators = None, callback: Callable[[dict], None] | None = None,
         eta: float = 0.85, rcond: float | None = None) -> Tensor:
    r"""Sample ``x`` given ``y = A x (+ n)`` with DDNM (noise-free ``y``) or DDNM+ (Gaussian noise).

    Each step takes the denoiser's :math:`\hat x_0 = D(x_t, \sigma_t)` and keeps its null-space part
    while replacing its range-space part by the measurement's (eq. 12):

    .. math:: \hat x_0' = \hat x_0 - \Sigma_t A^+ (A \hat x_0 - y),

    then moves to :math:`\sigma_{t-1}` as in DDIM, :math:`x_{t-1} = \hat x_0' + \sigma_{t-1}(\eta z +
    \sqrt{1-\eta^2}\,\hat\epsilon)` with :math:`\hat\epsilon = (x_t - \hat x_0)/\sigma_t` (VE state
    :math:`x_t/\sqrt{\bar\alpha_t}`). Noise-free (Alg. 1) :math:`\Sigma_t = I`. With noise (DDNM+,
    Alg. 2, eq. 17-19, official ``Lambda``/``Lambda_noise``), per singular value :math:`s_i` with
    :math:`c_i = \sigma_y/s_i`: :math:`\lambda_i = 1` and fresh noise
    :math:`\sqrt{\sigma_{t-1}^2 - c_i^2}` while :math:`\sigma_{t-1} \ge c_i`, else
    :math:`\lambda_i = \sqrt{1-\eta^2}\,\sigma_{t-1}/c_i` and noise :math:`\eta\sigma_{t-1}`; the null
    space keeps the DDIM noise. This equals DDRM with :math:`\eta_b = 1`. The scaling uses ``op.svd``
    where the operator has one, else treats all non-zero singular values as 1 (see :func:`spectral`).

    :param prior: denoiser ``D(x, sigma)``; schedule from ``prior.sigmas``.
    :param op: linear operator with ``op.pinv`` (closed form or CG).
    :param y: measurement ``(B, *op.out_shape)``.
    :param noise: Gaussian noise model, its ``sigma`` or ``None``; image units.
    :param steps: number of denoiser evaluations (official ``T_sampling`` 100).
    :param eta: :math:`\eta` (official 0.85).
    :param rcond: with noisy ``y`` and ``op.svd``, singular values at or below ``rcond * max(s)`` count
        as null space (default 3e-2, as DDRM; see :func:`restore.ddrm.ddrm`).
    :returns: the sample ``(B, *op.in_shape)`` in the real dtype of ``y``; at zero noise
        ``A x == A A^+ y`` (``== y`` for ``y`` in the range of ``A``).
    :raises restore.SolverDiverged: the state became NaN/inf.
    """
    check_inputs(prior, op, y, noise, steps)
    sigma_y = gaussian_sigma(noise, "ddnm")
    out_dtype = y.real.dtype
    op, y, generator, sigmas, x = float64_start(prior, op, y, steps, generator)
    svd = getattr(op, "svd", None)  # truncated once here, not in every step's spectral calls
    svd = svd.truncated(effective_rcond(rcond, sigma_y)) if svd is not None else None
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0 = prior.denoise(x, sigma)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x0))
        eps = (x - x0) / sigma
        z = randn(x, generator)
        if sigma_y == 0:  # Algorithm 1
            x0 = x0 + real_part(op.pinv(y - op(x0)))  # A^+ (y - A x0), in the range of A^+
            x = x0 + sigma_next * (eta * z + (1 - eta ** 2) ** 0.5 * eps)
        else:  # Algorithm 2, eq. (17)-(19)
            args = (sigma_next, sigma_y, eta)
            residual = y - op(x0)
            correction = real_part(svd.pinv(residual) if svd is not None else op.pinv(residual))
            x0 = x0 + spectral(op, lambda s: range_scale(s, *args), correction, svd)
            x = (x0 + spectral(op, lambda s: fresh_std(s, *args), z, svd)
                 + spectral(op, lambda s: ddim_std(s, *args), eps, svd))
        check_finite(x, i, sigma)
    return x.to(out_dtype)
