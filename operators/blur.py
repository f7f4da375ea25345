r"""Convolution blur :math:`y = k * x`, applied to every channel, with circular, zero or reflecting boundaries."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _validate as V
from .linear import SVD, FunctionOperator, LinearOperator, complex_dtype, real_dtype

__all__ = ["Blur"]


# zero-boundary blur: kernels with more taps than this use the FFT (direct convolution is faster only
# for small kernels on CPU and GPU alike)
_DIRECT_MAX_TAPS = 25


def _fast_len(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3 and 5 (fast FFT length)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _real_parts(fn, x: Tensor) -> Tensor:
    """Apply a real-coefficient linear map to a complex tensor through its real and imaginary parts
    (one call on the stacked batch)."""
    if not x.is_complex():
        return fn(x)
    out = fn(torch.cat([x.real, x.imag]))
    re, im = out.chunk(2)
    return torch.complex(re, im)


class Blur(LinearOperator):
    r"""Blur with kernel :math:`k` (a convolution, as ``scipy.ndimage.convolve``: the kernel centre is
    ``k.shape // 2``), applied channel-wise to ``(C, H, W)`` images.

    ``boundary="circular"``: periodic convolution via the FFT, :math:`A = F^{-1}\mathrm{diag}(\hat k) F`.
    Its SVD is exact (:math:`s = |\hat k|`, Fourier singular vectors) and the prox is closed form,
    :math:`x = F^{-1}\frac{\bar{\hat k}\,\hat y + \rho\,\hat z}{|\hat k|^2 + \rho}`.

    ``boundary="zeros"``: 'same'-size convolution with zero padding (``scipy.ndimage.convolve(mode=
    'constant')``); the adjoint is the matching correlation, exact. Small kernels run as direct
    convolutions, large ones through a zero-padded FFT (identical maps). Prox and pinv use CG.

    ``boundary="reflect"``: the image is padded by reflection about its edge pixels (``F.pad(mode=
    "reflect")``, ``torch.nn.ReflectionPad2d``, ``scipy.ndimage.convolve(mode='mirror')``), as the DPS
    and DiffPIR blur protocols do, then convolved ('valid'). The padding is a selection of pixels, so
    the adjoint is exact: the transposed convolution, then each padded pixel's value added back to the
    pixel it copied. Prox and pinv use CG.

    :param kernel: ``(kh, kw)`` real kernel (same for all channels) or ``(C, kh, kw)`` (one per channel).
    :param in_shape: ``(C, H, W)``.
    :param boundary: ``"circular"``, ``"zeros"`` or ``"reflect"``.

    >>> from operators import kernels
    >>> op = Blur(kernels.gaussian(5, 1.0), (1, 16, 16))
    >>> torch.allclose(op(torch.ones(2, 1, 16, 16)), torch.ones(2, 1, 16, 16), atol=1e-6)
    True
    """

    def __init__(self, kernel: Tensor, in_shape: Sequence[int], boundary: str = "circular"):
        kernel = V.tensor(kernel, "kernel", kind="float", ndim=(2, 3), layout="(kh, kw) or (C, kh, kw)")
        in_shape = V.shape(in_shape, "in_shape", ndim=3, layout="(C, H, W)")
        C, H, W = in_shape
        if kernel.ndim == 3 and kernel.shape[0] not in (1, C):
            raise ValueError(f"kernel: expected (kh, kw) or ({C}, kh, kw), got shape {tuple(kernel.shape)}")
        kh, kw = kernel.shape[-2:]
        if kh > H or kw > W:
            raise ValueError(f"kernel: expected a size that fits the image {H}x{W}, got {kh}x{kw}")
        total, mass = kernel.double().sum((-2, -1)), kernel.double().abs().sum((-2, -1))
        if bool((total.abs() <= 64 * torch.finfo(kernel.dtype).eps * mass).any()):
            raise ValueError("kernel: expected a non-zero sum (a blur keeps the mean), got a kernel summing to 0")
        if boundary not in ("circular", "zeros", "reflect"):
            raise ValueError(f"boundary must be 'circular', 'zeros' or 'reflect', got {boundary!r}")
        super().__init__(in_shape, in_shape, f"Blur[{boundary}]")
        kernel = kernel if kernel.dtype in (torch.float32, torch.float64) else kernel.float()  # no half FFT on CPUs
        self.kernel = kernel if kernel.ndim == 3 else kernel[None]
        self.boundary = boundary

    # --- circular: Fourier multiplier -------------------------------------------------------------
    def _otf(self, like: Tensor, half: bool) -> Tensor:
        """Transfer function :math:`\\hat k` (the kernel padded to (H, W) with its centre moved to (0, 0)),
        ``(Ck, H, W)`` or ``(Ck, H, W//2+1)`` for the real FFT; cached per device/dtype."""
        def make():
            H, W = self.in_shape[1:]
            k = self.kernel.to(device=like.device, dtype=real_dtype(like.dtype))
            kh, kw = k.shape[-2:]
            pad = torch.zeros(k.shape[0], H, W, device=k.device, dtype=k.dtype)
            pad[:, :kh, :kw] = k
            pad = torch.roll(pad, (-(kh // 2), -(kw // 2)), dims=(-2, -1))
            return torch.fft.rfft2(pad) if half else torch.fft.fft2(pad)
        return self._memo("otf_half" if half else "otf", like, make)

    def _multiply(self, x: Tensor, power: str) -> Tensor:
        """:math:`F^{-1}(g(\\hat k) F x)` with ``g`` = identity, conjugate or squared modulus."""
        half = not x.is_complex()
        K = self._otf(x, half)
        K = K if power == "k" else K.conj() if power == "kconj" else (K.real ** 2 + K.imag ** 2)
        if half:
            return torch.fft.irfft2(torch.fft.rfft2(x) * K, s=x.shape[-2:])
        return torch.fft.ifft2(torch.fft.fft2(x) * K)

    # --- zeros: direct 'same' convolution ---------------------------------------------------------
    def _conv(self, x: Tensor, adjoint: bool) -> Tensor:
        k = self._buf("kernel", x if not x.is_complex() else x.real)
        kh, kw = k.shape[-2:]
        ch, cw = kh // 2, kw // 2
        B, C = x.shape[:2]
        if adjoint:  # correlation with k, padded (c, k-1-c)
            weight, pad = k, (cw, kw - 1 - cw, ch, kh - 1 - ch)
        else:  # convolution = correlation with the flipped kernel, padded (k-1-c, c)
            weight, pad = k.flip(-2, -1), (kw - 1 - cw, cw, kh - 1 - ch, ch)
        if k.shape[0] == 1:
            out = F.conv2d(F.pad(x.reshape(B * C, 1, *x.shape[2:]), pad), weight[:, None])
        else:
            out = F.conv2d(F.pad(x, pad), weight[:, None], groups=C)
        return out.reshape(x.shape)

    def _conv_fft(self, x: Tensor, adjoint: bool) -> Tensor:
        r"""The same 'same'-size zero-boundary convolution through an FFT of size at least
        :math:`(H + k_h - 1, W + k_w - 1)`, where circular and linear convolution coincide (faster for
        large kernels). Forward: full convolution cropped at the kernel centre; adjoint: the input embedded
        at the kernel centre and correlated with the kernel."""
        H, W = self.in_shape[1:]
        kh, kw = self.kernel.shape[-2:]
        ch, cw = kh // 2, kw // 2
        size = (_fast_len(H + kh - 1), _fast_len(W + kw - 1))

        def make():
            k = self.kernel.to(device=x.device, dtype=real_dtype(x.dtype))
            return torch.fft.rfft2(k, s=size)
        K = self._memo("otf_linear", x, make)
        if adjoint:
            spectrum = torch.fft.rfft2(F.pad(x, (cw, size[1] - W - cw, ch, size[0] - H - ch))) * K.conj()
            return torch.fft.irfft2(spectrum, s=size)[..., :H, :W]
        return torch.fft.irfft2(torch.fft.rfft2(x, s=size) * K, s=size)[..., ch:ch + H, cw:cw + W]

    def _zeros(self, x: Tensor, adjoint: bool) -> Tensor:
        kh, kw = self.kernel.shape[-2:]
        fn = self._conv_fft if kh * kw > _DIRECT_MAX_TAPS else self._conv
        return _real_parts(lambda v: fn(v, adjoint=adjoint), x)

    # --- reflect: reflection padding, then a 'valid' convolution -------------------------------------
    def _reflect_index(self, n: int, before: int, after: int, device) -> Tensor:
        """Source pixel of each of the ``before + n + after`` padded positions (reflection about the edge
        pixels, which are not repeated)."""
        i = torch.arange(-before, n + after, device=device).abs()
        return torch.where(i > n - 1, 2 * (n - 1) - i, i)

    def _reflect(self, x: Tensor, adjoint: bool) -> Tensor:
        k = self._buf("kernel", x)
        kh, kw = k.shape[-2:]
        ch, cw = kh // 2, kw // 2
        H, W = self.in_shape[1:]
        rows = self._reflect_index(H, kh - 1 - ch, ch, x.device)  # convolution: (k - 1 - c, c)
        cols = self._reflect_index(W, kw - 1 - cw, cw, x.device)
        B, C = x.shape[:2]
        weight = k.flip(-2, -1)[:, None]
        per_channel = k.shape[0] != 1
        flat = x if per_channel else x.reshape(B * C, 1, *x.shape[2:])
        groups = C if per_channel else 1
        if not adjoint:
            padded = flat.index_select(-2, rows).index_select(-1, cols)
            return F.conv2d(padded, weight, groups=groups).reshape(x.shape)
        padded = F.conv_transpose2d(flat, weight, groups=groups)  # the adjoint of the 'valid' convolution
        out = flat.new_zeros((*flat.shape[:-2], H, padded.shape[-1])).index_add_(-2, rows, padded)
        return flat.new_zeros(flat.shape).index_add_(-1, cols, out).reshape(x.shape)

    # --- operator ---------------------------------------------------------------------------------
    def _apply(self, x: Tensor) -> Tensor:
        if self.boundary == "circular":
            return self._multiply(x, "k")
        if self.boundary == "reflect":
            return _real_parts(lambda v: self._reflect(v, adjoint=False), x)
        return self._zeros(x, adjoint=False)

    def _adjoint(self, y: Tensor) -> Tensor:
        if self.boundary == "circular":
            return self._multiply(y, "kconj")
        if self.boundary == "reflect":
            return _real_parts(lambda v: self._reflect(v, adjoint=True), y)
        return self._zeros(y, adjoint=True)

    def _normal(self) -> LinearOperator:
        if self.boundary != "circular":
            return super()._normal()
        f = lambda x: self._multiply(x, "abs2")  # noqa: E731
        return FunctionOperator(f, f, self.in_shape, self.in_shape, name=f"{self.name}.N")

    def _prox(self, z: Tensor, y: Tensor, rho, **cg_kwargs) -> Tensor:
        if self.boundary != "circular":
            return super()._prox(z, y, rho, **cg_kwargs)
        half = not (z.is_complex() or y.is_complex())
        K = self._otf(z if not y.is_complex() else y, half)
        fft = torch.fft.rfft2 if half else torch.fft.fft2
        num = K.conj() * fft(y) + rho * fft(z)
        den = K.real ** 2 + K.imag ** 2 + rho
        return torch.fft.irfft2(num / den, s=z.shape[-2:]) if half else torch.fft.ifft2(num / den)

    def _svd(self) -> SVD | None:
        if self.boundary != "circular":
            return None
        C, H, W = self.in_shape
        n = C * H * W
        K = self._otf(self.kernel, half=False).expand(C, H, W)
        s = K.abs().reshape(n)
        phase = torch.where(K.abs() > 0, K / K.abs().clamp_min(torch.finfo(s.dtype).tiny), 1)

        def ph(like: Tensor) -> Tensor:
            return phase.to(device=like.device, dtype=complex_dtype(real_dtype(like.dtype)))

        def Vt(x):
            return torch.fft.fft2(x, norm="ortho").reshape(x.shape[0], n)

        def V(c):
            return torch.fft.ifft2(c.reshape(c.shape[0], C, H, W), norm="ortho")

        def Ut(y):
            return (torch.fft.fft2(y, norm="ortho") * ph(y).conj()).reshape(y.shape[0], n)

        def U(c):
            return torch.fft.ifft2(c.reshape(c.shape[0], C, H, W) * ph(c), norm="ortho")

        return SVD(s, Vt, V, Ut, U, complex=True)

    def __repr__(self) -> str:
        return f"{self.name}(kernel {tuple(self.kernel.shape[-2:])}, {self.in_shape})"

