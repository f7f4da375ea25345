r"""Inpainting: :math:`y = m \odot x` with a binary mask :math:`m` (1 = observed)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from . import _validate as V
from .linear import SVD, LinearOperator

__all__ = ["Inpainting"]


class Inpainting(LinearOperator):
    r"""Pixel mask :math:`A x = m \odot x`, with ``out_shape == in_shape`` (missing entries are 0).

    The operator is a diagonal projection, so everything is closed form:
    :math:`A^H = A = A^H A`, singular values :math:`s = m` in the pixel basis, prox
    :math:`x = (m y + \rho z) / (m + \rho)` and pinv :math:`m y`.

    :param mask: binary tensor (0/1 or bool) that broadcasts to ``in_shape`` (e.g. ``(H, W)`` or
        ``(1, H, W)`` for all channels of a ``(C, H, W)`` image).
    :param in_shape: image shape, default ``mask.shape``.

    >>> from operators import masks
    >>> op = Inpainting(masks.box(8, 4), in_shape=(3, 8, 8))
    >>> op(torch.ones(1, 3, 8, 8)).sum().item()
    144.0
    """

    def __init__(self, mask: Tensor, in_shape: Sequence[int] | None = None):
        mask = V.tensor(mask, "mask", kind="real", check_finite=False)  # binary() below rejects NaN/inf
        if mask.ndim == 0:
            raise ValueError("mask: expected at least one dimension, got a 0-d tensor")
        in_shape = tuple(mask.shape) if in_shape is None else V.shape(in_shape, "in_shape")
        try:
            full = torch.broadcast_shapes(mask.shape, in_shape)
        except RuntimeError:
            full = None
        if full != in_shape:
            raise ValueError(f"mask: expected a shape that broadcasts to in_shape {in_shape}, got {tuple(mask.shape)}")
        mask = V.binary(mask, "mask")
        super().__init__(in_shape, in_shape, "Inpainting")
        self.mask = mask

    def _apply(self, x: Tensor) -> Tensor:
        return self._buf("mask", x) * x

    _adjoint = _apply

    def _normal(self) -> LinearOperator:
        return self

    def _prox(self, z: Tensor, y: Tensor, rho, **_) -> Tensor:
        m = self._buf("mask", z)
        return (m * y + rho * z) / (m + rho)

    def _pinv(self, y: Tensor, **_) -> Tensor:
        return self._apply(y)

    def _svd(self) -> SVD:
        n = math.prod(self.in_shape)
        shape = self.in_shape
        flat = lambda t: t.reshape(t.shape[0], n)  # noqa: E731
        unflat = lambda c: c.reshape(c.shape[0], *shape)  # noqa: E731
        s = self.mask.expand(shape).reshape(n).abs()
        return SVD(s, flat, unflat, lambda y: flat(self._apply(y)), lambda c: self._apply(unflat(c)))
