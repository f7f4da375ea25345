r"""Fourier phase retrieval: :math:`y = |F(\mathrm{pad}(x))|`, the magnitude of an oversampled DFT.

This is the DPS / DAPS benchmark operator (Chung et al. 2023, Zhang et al. 2025, "Improving diffusion
inverse problem solving with decoupled noise annealing", code ``forward_operator``): the image is
zero-padded by ``int(oversample / 8 * H)`` pixels on each side (so ``oversample=2.0`` takes a 256 image
to 384) and the magnitude of the centred orthonormal 2-D DFT is measured. It is nonlinear; Jacobian
products come from autograd.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

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
        in_shape = tuple(int(d) for d in in_shape)
        if len(in_shape) != 3:
            raise ValueError(f"PhaseRetrieval: in_shape must be (C, H, W), got {in_shape}")
        C, H, W = in_shape
        if pad is None:
            if not oversample >= 0:
                raise ValueError(f"PhaseRetrieval: oversample must be >= 0, got {oversample}")
            pad = (int(oversample / 8.0 * H), int(oversample / 8.0 * W))
        elif isinstance(pad, int):
            pad = (pad, pad)
        if len(pad) != 2 or min(pad) < 0:
            raise ValueError(f"PhaseRetrieval: pad must be a non-negative int or (pad_h, pad_w), got {pad}")
        self.oversample = float(oversample)
        self.pad = tuple(int(p) for p in pad)
        out_shape = (C, H + 2 * self.pad[0], W + 2 * self.pad[1])
        super().__init__(in_shape, out_shape, name=f"PhaseRetrieval(pad={self.pad})")

    def _apply(self, x: Tensor) -> Tensor:
        ph, pw = self.pad
        return fft2c(torch.nn.functional.pad(x, (pw, pw, ph, ph))).abs()
