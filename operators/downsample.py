r"""Downsampling (super-resolution forward model) as a separable linear map :math:`Y = W_h X W_w^T`."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from . import _validate as V
from .blur import _real_parts
from .linear import SVD, FunctionOperator, LinearOperator, real_dtype

__all__ = ["Downsample", "resize_matrix"]


def _cubic(d: Tensor, a: float = -0.5) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB imresize's 'bicubic')."""
    d = d.abs()
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return torch.where(d <= 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


def resize_matrix(n: int, factor: int, filter: str = "bicubic") -> Tensor:
    r"""The ``(n // factor, n)`` matrix of 1-D antialiased downsampling by an integer ``factor``.

    Output sample ``i`` sits at the centre of input block ``i``, :math:`u_i = f i + (f - 1)/2` (0-based),
    as in MATLAB's ``imresize`` (input coordinate :math:`u = x/s + (1 - 1/s)/2`, 1-based, scale
    :math:`s = 1/f`). Weights are the filter stretched by ``f`` (antialiasing), normalised per row;
    samples outside the signal are folded back symmetrically (``imresize``'s boundary rule).

    * ``"box"``: mean of the ``f`` pixels of the block (DDRM's averaging SR);
    * ``"bicubic"``: :math:`h((u_i - j)/f)/f` with Keys' cubic, a = -0.5, support :math:`4f`
      (``imresize(x, 1/f, 'bicubic')``, the DPS/DDRM SR protocol);
    * ``"gaussian"``: :math:`\exp(-(u_i - j)^2 / (2 f^2))` truncated at :math:`3f` (std = factor, as
      deepinv's ``Downsampling(filter="gaussian")``).
    """
    n = V.integer(n, "n", low=1)
    factor = V.integer(factor, "factor", low=1)
    if factor > n:
        raise ValueError(f"factor: expected at most n = {n}, got {factor}")
    m = n // factor
    centre = factor * torch.arange(m, dtype=torch.float64) + (factor - 1) / 2
    if filter == "box":
        A = torch.zeros(m, n, dtype=torch.float64)
        for i in range(m):
            A[i, i * factor:(i + 1) * factor] = 1.0 / factor
        return A
    if filter == "bicubic":
        half = 2.0 * factor
        weight = lambda d: _cubic(d / factor) / factor  # noqa: E731
    elif filter == "gaussian":
        half = 3.0 * factor
        weight = lambda d: torch.exp(-d ** 2 / (2.0 * factor ** 2))  # noqa: E731
    else:
        raise ValueError(f"filter must be 'box', 'bicubic' or 'gaussian', got {filter!r}")
    taps = torch.arange(math.floor(-half) - 1, math.ceil(half) + 2, dtype=torch.float64)
    j = torch.floor(centre)[:, None] + taps[None, :]
    w = weight(centre[:, None] - j)
    w = w / w.sum(1, keepdim=True)
    j = j.long() % (2 * n)
    j = torch.where(j >= n, 2 * n - 1 - j, j)  # symmetric fold: -1 -> 0, n -> n - 1
    A = torch.zeros(m, n, dtype=torch.float64)
    A.scatter_add_(1, j, w)
    return A


class Downsample(LinearOperator):
    r"""Antialiased downsampling by an integer ``factor``, :math:`A X = W_h X W_w^T` per channel, where
    :math:`W_h, W_w` are the 1-D matrices of :func:`resize_matrix`.

    Because the operator is a Kronecker product, its SVD is exact and cheap for every filter:
    :math:`W = U_1 S_1 V_1^T` per axis gives :math:`A = (U_h \otimes U_w)(S_h \otimes S_w)(V_h \otimes
    V_w)^T`. The prox and pinv use it (closed form, no CG). For ``filter="box"`` this is DDRM's averaging
    super-resolution (Kawar et al. 2022, App. A), with :math:`s = 1/f` on the block means.

    :param in_shape: ``(C, H, W)``, H and W divisible by ``factor``.
    :param factor: integer >= 2 (the protocols use 2, 4, 8).
    :param filter: ``"box"``, ``"bicubic"`` (MATLAB ``imresize``) or ``"gaussian"``.
    """

    def __init__(self, in_shape: Sequence[int], factor: int, filter: str = "bicubic"):
        in_shape = V.shape(in_shape, "in_shape", ndim=3, layout="(C, H, W)")
        factor = V.integer(factor, "factor", low=2)
        C, H, W = in_shape
        if H % factor or W % factor:
            raise ValueError(f"factor: expected a divisor of the image size {H}x{W}, got {factor}")
        filter = V.choice(filter, "filter", ("box", "bicubic", "gaussian"))
        super().__init__(in_shape, (C, H // factor, W // factor), f"Downsample[{filter}x{factor}]")
        self.factor, self.filter = factor, filter
        self.Wh = resize_matrix(H, factor, filter)
        self.Ww = self.Wh if W == H else resize_matrix(W, factor, filter)

    def _apply(self, x: Tensor) -> Tensor:
        if self.filter == "box":
            return _real_parts(lambda v: torch.nn.functional.avg_pool2d(v, self.factor), x)
        return _real_parts(lambda v: self._buf("Wh", v) @ v @ self._buf("Ww", v).mT, x)

    def _adjoint(self, y: Tensor) -> Tensor:
        if self.filter == "box":
            f = self.factor
            return _real_parts(lambda v: v.repeat_interleave(f, -2).repeat_interleave(f, -1) / f ** 2, y)
        return _real_parts(lambda v: self._buf("Wh", v).mT @ v @ self._buf("Ww", v), y)

    def _normal(self) -> LinearOperator:
        def gram(x):
            Gh = self._memo("Gh", x, lambda: self._buf("Wh", x).mT @ self._buf("Wh", x))
            Gw = self._memo("Gw", x, lambda: self._buf("Ww", x).mT @ self._buf("Ww", x))
            return _real_parts(lambda v: Gh @ v @ Gw, x)
        return FunctionOperator(gram, gram, self.in_shape, self.in_shape, name=f"{self.name}.N")

    def _svd(self) -> SVD:
        C, H, W = self.in_shape
        h, w = self.out_shape[1:]
        Uh, sh, Vh = torch.linalg.svd(self.Wh.double(), full_matrices=True)
        Uw, sw, Vw = torch.linalg.svd(self.Ww.double(), full_matrices=True)
        s2 = torch.zeros(H, W, dtype=torch.float64)
        s2[:h, :w] = sh[:, None] * sw[None, :]
        s = s2.expand(C, H, W).reshape(-1).to(real_dtype(self.Wh.dtype))
        mats = dict(Uh=Uh, Vh=Vh.mT, Uw=Uw, Vw=Vw.mT)  # V columns are right singular vectors
        n = C * H * W

        def M(name: str, like: Tensor) -> Tensor:
            return self._memo("svd_" + name, like, lambda: mats[name].to(like.device, real_dtype(like.dtype)))

        def Vt(x):
            return _real_parts(lambda v: M("Vh", v).mT @ v @ M("Vw", v), x).reshape(x.shape[0], n)

        def V(c):
            return _real_parts(lambda v: M("Vh", v) @ v @ M("Vw", v).mT, c.reshape(c.shape[0], C, H, W))

        def Ut(y):
            small = _real_parts(lambda v: M("Uh", v).mT @ v @ M("Uw", v), y)
            full = torch.zeros(y.shape[0], C, H, W, device=y.device, dtype=y.dtype)
            full[..., :h, :w] = small
            return full.reshape(y.shape[0], n)

        def U(c):
            small = c.reshape(c.shape[0], C, H, W)[..., :h, :w]
            return _real_parts(lambda v: M("Uh", v) @ v @ M("Uw", v).mT, small)

        return SVD(s, Vt, V, Ut, U)

