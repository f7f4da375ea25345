r"""Fourier phase retrieval: :math:`y = |F(\mathrm{pad}(x))|`, the magnitude of an oversampled DFT.

This is the DPS / DAPS benchmark operator (Chung et al. 2023, Zhang et al. 2025, "Improving diffusion
inverse problem solving with decoupled noise annealing", code ``forward_operator``): the image is
zero-padded by ``int(oversample / 8 * H)`` pixels on each side (so ``oversample=2.0`` takes a 256 image
to 384) and the magnitude of the centred orthonormal 2-D DFT is measured. It is nonlinear; Jacobian
products come from autograd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from . import _validate as V
from .linear import Operator
from .mri import fft2c

__all__ = ["PhaseRetrieval"]


class PhaseRetrieval(Operator):
    r"""Magnitude of the oversampled Fourier transform, :math:`A(x) = |F P x|`.

    :param in_shape: ``(C, H, W)`` image shape.
    :param oversample: the DPS/DAPS protocol's parameter: ``pad = int(oversample / 8 * H)`` zeros on
        each side of rows (and ``int(oversample / 8 * W)`` of columns). Default 2.0.
    :param pad: explicit ``(pad_h, pad_w)`` per side (or an int), overriding ``oversample``; e.g.
        ``pad = H // 2`` gives the classical oversampling ratio 2 per axis.
    :return: magnitudes ``(B, C, H + 2 pad_h, W + 2 pad_w)``, real, non-negative.

    Example::

        >>> op = PhaseRetrieval((1, 16, 16))
        >>> op(torch.rand(2, 1, 16, 16)).shape
        torch.Size([2, 1, 24, 24])
    """

    def __init__(self, in_shape: Sequence[int], oversample: float = 2.0, pad: int | tuple[int, int] | None = None):
        in_shape = V.shape(in_shape, "in_shape", ndim=3, layout="(C, H, W)")
        C, H, W = in_shape
        oversample = V.number(oversample, "oversample", low=0.0)
        pad_given = pad
        if pad is None:
            pad = (int(oversample / 8.0 * H), int(oversample / 8.0 * W))
        elif isinstance(pad, (tuple, list)):
            if len(pad) != 2:
                raise ValueError(f"pad: expected a non-negative int or (pad_h, pad_w), got {pad}")
            pad = (V.integer(pad[0], "pad", low=0), V.integer(pad[1], "pad", low=0))
        else:
            pad = (V.integer(pad, "pad", low=0),) * 2
        out_shape = (C, H + 2 * pad[0], W + 2 * pad[1])
        if math.prod(out_shape) > 2 ** 31:
            raise ValueError(f"{'oversample' if pad_given is None else 'pad'}: expected a padded image of at most "
                             f"2**31 entries, got shape {out_shape}")
        self.oversample = oversample
        self.pad = pad
        super().__init__(in_shape, out_shape, name=f"PhaseRetrieval(pad={self.pad})")

    def _apply(self, x: Tensor) -> Tensor:
        ph, pw = self.pad
        return fft2c(torch.nn.functional.pad(x, (pw, pw, ph, ph))).abs()
