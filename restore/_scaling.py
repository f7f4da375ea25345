"""Step sizes tuned on unit-norm operators, carried to operators of any norm.

The official DPS, DAPS and RED-Diff step sizes were tuned on operators with ``||A|| <= 1`` (masks,
normalised blurs, downsampling, orthonormal Fourier sampling). A CT projector or a random matrix has a
far larger norm, and the same step then overshoots. Dividing the whole measurement model by
``c = ||A||_2``,

    y = A x + n   <=>   y / c = (A / c) x + n / c,

changes nothing about the posterior, only the units the step sizes are read in. So these solvers solve
the rescaled problem whenever ``||A|| > 1``, and leave unit-norm problems exactly as the papers do.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from operators import GaussianNoise, LinearOperator

__all__ = ["operator_norm", "unit_norm_problem"]


def operator_norm(op: LinearOperator, like: Tensor, iters: int = 30) -> float:
    """``||A||_2``: the largest singular value, from the SVD where there is one, else by power
    iteration on ``A^H A`` from a fixed start (deterministic, no global RNG)."""
    svd = op.svd
    if svd is not None:
        return float(svd.s.max())
    dtype = like.real.dtype if like.is_complex() else like.dtype
    g = torch.Generator().manual_seed(0)
    v = torch.randn((1, *op.in_shape), generator=g, dtype=dtype).to(like.device)
    sigma_sq = 0.0
    for _ in range(iters):
        v = v / v.norm()
        w = op.H(op(v))
        w = w.real if w.is_complex() and not v.is_complex() else w
        sigma_sq = float((v * w).sum().real)
        v = w
    return max(sigma_sq, 0.0) ** 0.5


def unit_norm_problem(op: Any, y: Tensor, noise: Any) -> tuple[Any, Tensor, Any]:
    """``(A / c, y / c, noise / c)`` with ``c = ||A||_2`` when ``c > 1``; the problem unchanged otherwise,
    and for nonlinear operators or non-Gaussian noise (where the rescaling is not a change of units)."""
    if not isinstance(op, LinearOperator) or not isinstance(noise, GaussianNoise):
        return op, y, noise
    c = operator_norm(op, y)
    if c <= 1.0 + 1e-6:
        return op, y, noise
    return (1.0 / c) * op, y / c, GaussianNoise(noise.sigma / c)
