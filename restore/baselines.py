"""Prior-free baselines: least squares by CGLS, TV-regularised least squares, the operator's classical
inverse. They share the solvers' signature; ``prior`` is ignored and may be ``None``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from operators.linear import rdot

from ._common import (check_finite, check_inputs, gaussian_sigma, mark_point_estimate, noise_sigma, operator_norm,
                      real_part)

#: methods an operator may offer for its classical reconstruction, in order of preference
CLASSICAL_METHODS = ("classical_inverse", "fbp", "zero_filled")


def _view(v: Tensor, like: Tensor) -> Tensor:
    return v.reshape(-1, *([1] * (like.ndim - 1)))


@torch.no_grad()
def pinv(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 50,
         generator: Generators = None, callback: Callable[[dict], None] | None = None,
         tau: float = 1.0, rtol: float = 1e-12) -> Tensor:
    r"""Least squares :math:`\min_x \|Ax - y\|^2` by CGLS, stopped early (per sample).

    CGLS (Hestenes & Stiefel 1952; Björck, *Numerical Methods for Least Squares Problems*, Alg.
    7.4.1) is CG on the normal equations without forming :math:`A^H A`; started at 0 it converges to
    the minimum-norm least-squares solution :math:`A^+ y`. Its iteration count regularises
    (semi-convergence): a sample stops at the discrepancy principle
    :math:`\|Ax - y\| \le \tau\,\sigma_y\sqrt{m}` (Morozov), once converged,
    :math:`\|A^H r\| \le \mathrm{rtol}\,\|A^H y\|` (past that point the ratios of rounding-level
    numbers only walk the iterate away from the solution), or after ``steps`` iterations.

    :param steps: maximum number of iterations (one ``op`` and one ``op.H`` each).
    :param tau: discrepancy safety factor (``tau * sigma_y * sqrt(m)``; zero noise: no early stop).
    :param rtol: convergence tolerance on the normal-equation residual, relative to its start.
    :param callback: called with ``dict(i, x, sigma=None, x0_hat=x)`` after each iteration.
    """
    check_inputs(None, op, y, noise, steps, needs_prior=False, generator=generator)
    out_dtype = y.real.dtype
    op = op.to(dtype=torch.float64)
    y = y.to(torch.complex128 if y.is_complex() else torch.float64)
    m = y[0].numel()
    target = (tau * noise_sigma(noise)) ** 2 * m  # squared discrepancy level
    x = torch.zeros((y.shape[0], *op.in_shape), dtype=torch.float64, device=y.device)
    r = y.clone()
    s = real_part(op.H(r))  # images are real: the gradient is Re(A^H r)
    p = s.clone()
    gamma = rdot(s, s)
    converged = rtol**2 * gamma
    for i in range(steps):
        active = (rdot(r, r) > target) & (gamma > converged)
        if not bool(active.any()):
            break
        q = op(p)
        alpha = torch.where(active, gamma / rdot(q, q).clamp_min(torch.finfo(torch.float64).tiny), 0.0)
        x = x + _view(alpha, x) * p
        r = r - _view(alpha, r) * q
        s = real_part(op.H(r))
        gamma_next = rdot(s, s)
        beta = torch.where(active, gamma_next / gamma.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
        p = torch.where(_view(active, p), s + _view(beta, p) * p, p)
        gamma = torch.where(active, gamma_next, gamma)
        check_finite(x, i, 0.0)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=None, x0_hat=x))
    return x.to(out_dtype)


def gradient(x: Tensor, ndim: int) -> Tensor:
    """Forward differences (Neumann boundary: zero at the far edge) over the last ``ndim`` axes,
    stacked on a new axis 1: ``(B, ...) -> (B, ndim, ...)``."""
    parts = []
    for axis in range(x.ndim - ndim, x.ndim):
        d = torch.diff(x, dim=axis)
        parts.append(torch.cat([d, torch.zeros_like(x.narrow(axis, 0, 1))], dim=axis))
    return torch.stack(parts, dim=1)


def gradient_adjoint(g: Tensor, ndim: int) -> Tensor:
    r"""The adjoint :math:`\nabla^T = -\mathrm{div}` of :func:`gradient`."""
    out = torch.zeros_like(g[:, 0])
    for k, axis in enumerate(range(out.ndim - ndim, out.ndim)):
        d, n = g[:, k], g.shape[axis + 1]
        if n == 1:  # no differences along a length-1 axis
            continue
        # (grad^T d)_j = d_{j-1} - d_j, with d_{-1} = 0 and the (zero) last difference dropped
        head = -d.narrow(axis, 0, 1)
        middle = d.narrow(axis, 0, n - 2) - d.narrow(axis, 1, n - 2)
        tail = d.narrow(axis, n - 2, 1)
        out = out + torch.cat([head, middle, tail], dim=axis)
    return out


def total_variation(x: Tensor, ndim: int) -> Tensor:
    """Isotropic TV per sample, ``(B,)``: sum over pixels of the gradient's Euclidean norm."""
    return gradient(x, ndim).pow(2).sum(1).sqrt().reshape(x.shape[0], -1).sum(1)


@torch.no_grad()
def tv(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 200,
       generator: Generators = None, callback: Callable[[dict], None] | None = None,
       lam: float | None = None, nonneg: bool = False) -> Tensor:
    r"""TV-regularised least squares :math:`\min_x \tfrac12\|Ax - y\|^2 + \lambda\,\mathrm{TV}(x)`.

    Primal-dual hybrid gradient (Chambolle & Pock 2011, Alg. 1, :math:`\theta = 1`) on
    :math:`K = [A; \nabla]`, with dual variables ``p`` (data) and ``q`` (gradient):

    .. math:: p \leftarrow \frac{p + \sigma(A\bar x - y)}{1 + \sigma},\quad
              q \leftarrow \Pi_{\|\cdot\|\le\lambda}(q + \sigma\nabla\bar x),\quad
              x \leftarrow x - \tau(A^H p + \nabla^T q),\quad \bar x = 2x - x_\text{old}.

    Step sizes :math:`\sigma = \tau = 0.99/L` with :math:`L^2 = \|A\|^2 + 4d` (power iteration for
    :math:`\|A\|`; :math:`\|\nabla\|^2 \le 4d` for ``d`` spatial axes). TV is isotropic over the last
    two axes of images (``in_shape`` of length >= 2) or 1-D over vectors.

    :param steps: number of primal-dual iterations (one ``op`` and one ``op.H`` each).
    :param lam: TV weight; default :math:`\max(\sigma_y, 10^{-3})` (heuristic, image units).
    :param nonneg: project ``x`` onto :math:`x \ge 0` (the primal prox of the indicator).
    """
    check_inputs(None, op, y, noise, steps, needs_prior=False, generator=generator)
    sigma_y = gaussian_sigma(noise, "tv")
    lam = max(sigma_y, 1e-3) if lam is None else float(lam)
    if lam < 0:
        raise ValueError(f"lam: expected a non-negative TV weight, got {lam}")
    out_dtype = y.real.dtype
    op = op.to(dtype=torch.float64)
    y = y.to(torch.complex128 if y.is_complex() else torch.float64)
    x = torch.zeros((y.shape[0], *op.in_shape), dtype=torch.float64, device=y.device)
    ndim = 1 if len(op.in_shape) == 1 else 2
    step = 0.99 / ((1.01 * operator_norm(op, x)) ** 2 + 4 * ndim) ** 0.5  # 1% margin for the power iteration
    x_bar, p, q = x, torch.zeros_like(y), gradient(x, ndim)
    for i in range(steps):
        p = (p + step * (op(x_bar) - y)) / (1 + step)
        q = q + step * gradient(x_bar, ndim)
        q = q / (q.pow(2).sum(1, keepdim=True).sqrt() / lam).clamp_min(1.0) if lam > 0 else torch.zeros_like(q)
        x_old = x
        x = x - step * (real_part(op.H(p)) + gradient_adjoint(q, ndim))
        if nonneg:
            x = x.clamp_min(0)
        x_bar = 2 * x - x_old
        check_finite(x, i, 0.0)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=None, x0_hat=x))
    return x.to(out_dtype)


def classical(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 50,
              generator: Generators = None, callback: Callable[[dict], None] | None = None,
              **hyper: Any) -> Tensor:
    """The operator's own classical reconstruction where it offers one, else :func:`pinv`.

    Looks for a method ``op.classical_inverse(y)``, ``op.fbp(y)`` (filtered back-projection for CT)
    or ``op.zero_filled(y)`` (zero-filled inverse FFT for MRI), in that order; ``hyper`` is passed to
    it. Otherwise CGLS least squares with early stopping (``steps`` iterations at most).
    """
    check_inputs(None, op, y, noise, steps, needs_prior=False, generator=generator)
    for name in CLASSICAL_METHODS:
        method = getattr(op, name, None)
        if callable(method):
            return method(y, **hyper)
    return pinv(prior, op, y, noise, steps=steps, callback=callback, **hyper)


mark_point_estimate(pinv)
mark_point_estimate(tv)
mark_point_estimate(classical)
