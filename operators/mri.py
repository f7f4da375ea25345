r"""Cartesian MRI: single-coil :math:`y = M F x` and multi-coil SENSE :math:`y_k = M F (S_k x)`.

:math:`F` is the centred orthonormal 2-D DFT (``fftshift(fft2(ifftshift(x), norm="ortho"))``, the
fastMRI / deepinv convention), :math:`M` a Cartesian sampling mask and :math:`S_k` the coil
sensitivity maps (Pruessmann et al., "SENSE: sensitivity encoding for fast MRI", MRM 1999). The
SENSE operator is composed from three primitives, sigpy style: :class:`Multiply` (coil maps),
:class:`FFT2`, :class:`Multiply` (mask) — see :func:`sense`.

Images are real ``(B, C, H, W)`` by default: k-space is complex and the adjoint is
:math:`\mathrm{Re}(A^H y)` (DESIGN §2). Build with ``complex_images=True`` for complex-valued images
(complex dtype), where the adjoint is the plain :math:`A^H y`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from . import _validate as V
from .linear import SVD, FunctionOperator, LinearOperator

__all__ = ["MRI", "FFT2", "Multiply", "sense", "fft2c", "ifft2c", "estimate_coil_maps", "rss"]

_DIMS = (-2, -1)


def fft2c(x: Tensor) -> Tensor:
    """Centred orthonormal 2-D DFT over the last two axes (k-space centre at index ``N // 2``)."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=_DIMS), norm="ortho"), dim=_DIMS)


def ifft2c(y: Tensor) -> Tensor:
    """Inverse (and adjoint) of :func:`fft2c`."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(y, dim=_DIMS), norm="ortho"), dim=_DIMS)


def rss(x: Tensor, dim: int = 1) -> Tensor:
    """Root sum of squares over the coil axis ``dim`` (kept, size 1): the magnitude coil combination."""
    return torch.sqrt((x.abs() ** 2).sum(dim, keepdim=True))


def _reflect_frequencies(d: Tensor) -> Tensor:
    """``d(-k)`` for a centred k-space array ``d(k)`` (last two axes), for even and odd sizes."""
    u = torch.fft.ifftshift(d, dim=_DIMS)
    u = torch.roll(torch.flip(u, dims=_DIMS), shifts=(1, 1), dims=_DIMS)
    return torch.fft.fftshift(u, dim=_DIMS)


class FFT2(LinearOperator):
    """Centred orthonormal 2-D DFT on ``shape = (..., H, W)``; unitary, so ``H`` is the inverse DFT.

    :param shape: per-sample shape.
    :param real_input: the domain is real: the adjoint returns ``Re(F^H y)``.
    """

    def __init__(self, shape: Sequence[int], real_input: bool = False):
        super().__init__(shape, shape, name="FFT2")
        self.real_input = bool(real_input)

    def _apply(self, x: Tensor) -> Tensor:
        return fft2c(x)

    def _adjoint(self, y: Tensor) -> Tensor:
        x = ifft2c(y)
        return x.real if self.real_input else x


class Multiply(LinearOperator):
    """Pointwise product with fixed ``weights``, broadcast against ``in_shape`` (the output takes the
    broadcast shape, e.g. an image ``(1, H, W)`` times coil maps ``(K, H, W)``). The adjoint multiplies
    by ``conj(weights)`` and sums over the broadcast axes.

    :param weights: real or complex tensor broadcastable with ``in_shape``.
    :param in_shape: per-sample input shape.
    :param real_input: the domain is real: the adjoint returns the real part.
    """

    def __init__(self, weights: Tensor, in_shape: Sequence[int], real_input: bool = False, name: str = "Multiply"):
        if not isinstance(weights, Tensor):
            raise TypeError(f"{name}: weights must be a torch.Tensor, got {type(weights).__name__}")
        try:
            out_shape = torch.broadcast_shapes(tuple(in_shape), tuple(weights.shape))
        except RuntimeError:
            raise ValueError(f"{name}: weights of shape {tuple(weights.shape)} do not broadcast with "
                             f"in_shape {tuple(in_shape)}") from None
        if len(out_shape) != len(in_shape):
            raise ValueError(f"{name}: weights {tuple(weights.shape)} may not add axes to in_shape {tuple(in_shape)}")
        super().__init__(in_shape, out_shape, name=name)
        self.weights = weights if (weights.is_complex() or weights.is_floating_point()) else weights.float()
        self.real_input = bool(real_input)

    def _apply(self, x: Tensor) -> Tensor:
        return self._buf("weights", x) * x

    def _adjoint(self, y: Tensor) -> Tensor:
        w = self._buf("weights", y)
        x = (w.conj() * y if w.is_complex() else w * y).sum_to_size(y.shape[0], *self.in_shape)
        return x.real if (self.real_input and x.is_complex()) else x


def sense(mask: Tensor, coil_maps: Tensor | None, image_shape: Sequence[int], real_input: bool = True) -> LinearOperator:
    r"""SENSE forward operator :math:`A = M F S` composed from primitives (sigpy's factory style).

    :param mask: ``(H, W)`` sampling mask (real weights, usually 0/1).
    :param coil_maps: ``(K, H, W)`` sensitivities, or None for single coil (:math:`A = M F`).
    :param image_shape: ``(C, H, W)``; C must be 1 with coil maps.
    :param real_input: images are real (adjoint ``Re(A^H y)``).
    """
    shape = tuple(image_shape)
    if coil_maps is None:
        return Multiply(mask, shape, name="Mask") @ FFT2(shape, real_input=real_input)
    coils = Multiply(coil_maps, shape, real_input=real_input, name="CoilMaps")
    return Multiply(mask, coils.out_shape, name="Mask") @ FFT2(coils.out_shape) @ coils


class MRI(LinearOperator):
    r"""Cartesian MRI, single-coil :math:`y = M F x` or multi-coil SENSE :math:`y_k = M F S_k x`.

    Single-coil has an exact SVD (Fourier basis, singular values :math:`|M|`), hence closed-form
    ``prox``, ``pinv`` and ``N``. For real images the operator is only real-linear: its normal
    operator is :math:`F^H D F` with the mask power symmetrised over :math:`\pm k`,
    :math:`D(k) = (|M(k)|^2 + |M(-k)|^2)/2`, and the SVD uses :math:`s = \sqrt{D}`. Multi-coil uses
    the generic CG prox (there is no closed form once lines are skipped, even for maps with
    :math:`\sum_k |S_k|^2 = 1`, which only bound :math:`\|A\| \le 1` and keep CG fast).

    :param mask: ``(H, W)`` (or ``(1, H, W)``) real sampling mask, see :mod:`operators.masks`.
    :param coil_maps: ``(K, H, W)`` complex coil sensitivities, or None for single coil.
    :param image_shape: ``(C, H, W)`` or ``(H, W)``; default ``(1, H, W)``.
    :param complex_images: images are complex (complex dtype); default False: real images, adjoint
        ``Re(A^H y)``.
    :return: k-space ``(B, C, H, W)`` single-coil or ``(B, K, H, W)`` multi-coil, complex.

    Example::

        >>> mask = torch.zeros(8, 8); mask[:, ::2] = 1
        >>> op = MRI(mask)
        >>> x = torch.rand(2, 1, 8, 8)
        >>> torch.allclose(op.pinv(op(x)), op.H(op(x)), atol=1e-6)
        True
    """

    def __init__(self, mask: Tensor, coil_maps: Tensor | None = None, image_shape: Sequence[int] | None = None,
                 complex_images: bool = False):
        mask = V.tensor(mask, "mask", kind="real", ndim=(2, 3), layout="(H, W) or (1, H, W)")
        if mask.ndim == 3:
            if mask.shape[0] != 1:
                raise ValueError(f"mask: expected (H, W) or (1, H, W), got shape {tuple(mask.shape)}")
            mask = mask[0]
        if not bool(mask.any()):
            raise ValueError("mask: expected at least one sampled k-space point (a non-zero entry), got all zeros")
        H, W = mask.shape
        if image_shape is None:
            image_shape = (1, H, W)
        image_shape = V.shape(image_shape, "image_shape", ndim=(2, 3), layout="(C, H, W) or (H, W)")
        if len(image_shape) == 2:
            image_shape = (1, *image_shape)
        if image_shape[1:] != (H, W):
            raise ValueError(f"mask: expected the image's size {image_shape[1:]} (image_shape {image_shape}), "
                             f"got shape {(H, W)}")
        complex_images = V.flag(complex_images, "complex_images")
        if coil_maps is not None:
            coil_maps = V.tensor(coil_maps, "coil_maps", kind="inexact", ndim=3, layout=f"(K, {H}, {W})")
            if tuple(coil_maps.shape[1:]) != (H, W):
                raise ValueError(f"coil_maps: expected shape (K, {H}, {W}) to match mask, got {tuple(coil_maps.shape)}")
            if image_shape[0] != 1:
                raise ValueError(f"image_shape: multi-coil images must have one channel, got {image_shape}")
        self.mask = mask if mask.is_floating_point() else mask.float()
        self.coil_maps = coil_maps
        self.real_input = not complex_images
        self.chain = sense(self.mask, coil_maps, image_shape, real_input=self.real_input)
        coils = "single-coil" if coil_maps is None else f"{coil_maps.shape[0]} coils"
        super().__init__(image_shape, self.chain.out_shape, name=f"MRI({coils})")

    @property
    def n_coils(self) -> int:
        return 1 if self.coil_maps is None else int(self.coil_maps.shape[0])

    @property
    def acceleration(self) -> float:
        """Measured acceleration ``H W / sum(mask != 0)``."""
        return self.mask.numel() / max(int((self.mask != 0).sum()), 1)

    def _apply(self, x: Tensor) -> Tensor:
        return self.chain._apply(x)

    def _adjoint(self, y: Tensor) -> Tensor:
        return self.chain._adjoint(y)

    # --- closed forms for single coil -------------------------------------------------------
    def _power(self, like: Tensor) -> Tensor:
        r"""Eigenvalues :math:`D(k)` of the normal operator in the Fourier basis, ``(H, W)``."""
        def make():
            m = self._buf("mask", like)
            d = m * m
            return (d + _reflect_frequencies(d)) / 2 if self.real_input else d
        return self._memo("power", like, make)

    def _normal(self) -> LinearOperator:
        if self.coil_maps is not None:
            return super()._normal()

        def normal(x: Tensor) -> Tensor:
            out = ifft2c(self._power(x) * fft2c(x))
            return out.real if self.real_input else out
        return FunctionOperator(normal, normal, self.in_shape, self.in_shape, name=f"{self.name}.N",
                                real_input=self.real_input, real_output=self.real_input)

    def _svd(self) -> SVD | None:
        r"""Single coil: :math:`V = F^H`, :math:`s = \sqrt{D}`, :math:`U = M/s` on the sampled set.

        Coefficients are complex (Fourier); for real images they are Hermitian-symmetric and
        ``V(c).real`` is exact (``SVD.complex``, see :class:`operators.linear.SVD`).
        """
        if self.coil_maps is not None:
            return None
        shape, n = self.in_shape, self.mask.numel() * self.in_shape[0]
        s = self._power(self.mask.double()).sqrt().expand(shape).reshape(n)

        def flat(t: Tensor) -> Tensor:
            return t.reshape(t.shape[0], -1)

        def shaped(c: Tensor) -> Tensor:
            return c.reshape(c.shape[0], *shape)

        def inv_s(like: Tensor) -> Tensor:
            def make():
                d = self._power(like)
                return torch.where(d > 0, torch.where(d > 0, d, 1).rsqrt(), 0)
            return self._memo("inv_s", like, make)

        def Ut(y: Tensor) -> Tensor:
            # F(A^H y) / s: for real images A^H y = Re(F^H M y) mixes k and -k, as s does
            return flat(fft2c(self._adjoint(y)) * inv_s(y))

        def U(c: Tensor) -> Tensor:
            return self._buf("mask", c) * inv_s(c) * shaped(c)

        # complex=True asks the base class to drop the (zero) imaginary part for real images only; on
        # complex images M F is a complex matrix and the solution stays complex.
        return SVD(s, lambda x: flat(fft2c(x)), lambda c: ifft2c(shaped(c)), Ut, U, complex=self.real_input)

    # --- classical reconstruction ---------------------------------------------------------------
    def zero_filled(self, y: Tensor, combine: str = "rss") -> Tensor:
        r"""Zero-filled reconstruction, the classical inverse.

        Single coil: :math:`A^H y` (``Re`` for real images). Multi-coil: ``combine="rss"`` gives the
        root sum of squares of the coil images :math:`|F^H M y_k|` (a magnitude image),
        ``combine="sense"`` gives :math:`A^H y / \sum_k |S_k|^2`.

        :param y: k-space ``(B, *out_shape)``.
        :return: ``(B, *in_shape)``.
        """
        if combine not in ("rss", "sense"):
            raise ValueError(f"MRI.zero_filled: combine must be 'rss' or 'sense', got {combine!r}")
        x = self.H(y)
        if self.coil_maps is None:
            return x
        if combine == "rss":
            return rss(ifft2c(self._buf("mask", y) * y))
        power = (self._buf("coil_maps", y).abs() ** 2).sum(0)
        return x / torch.where(power > 0, power, 1)


def estimate_coil_maps(kspace: Tensor, calib: int | tuple[int, int] = 24, window: bool = True,
                       threshold: float = 0.0) -> Tensor:
    r"""Coil sensitivities from the fully sampled k-space centre, normalised by the RSS image.

    The calibration block (the central ``calib`` rows x columns, Hann-tapered to limit ringing) of
    each coil is inverse-transformed into a low-resolution coil image :math:`c_k`, and
    :math:`\hat S_k = c_k / \sqrt{\sum_j |c_j|^2}`, so :math:`\sum_k |\hat S_k|^2 = 1` wherever the
    RSS is non-zero (the simple "low-resolution ratio" estimate; ESPIRiT refines it).

    :param kspace: ``(K, H, W)`` or ``(B, K, H, W)`` complex k-space whose centre is fully sampled.
    :param calib: calibration size, an int (square) or ``(rows, cols)``; fastMRI 1-D masks use
        ``(H, n_centre_lines)``.
    :param window: taper the block with a separable Hann window.
    :param threshold: zero the maps where the RSS is below ``threshold * max(RSS)`` (background).
    :return: maps of the shape of ``kspace``, complex.
    """
    kspace = V.tensor(kspace, "kspace", kind="complex", ndim=(3, 4), layout="(K, H, W) or (B, K, H, W)")
    H, W = kspace.shape[-2:]
    ch, cw = V.size2(calib, "calib")
    if not (ch <= H and cw <= W):
        raise ValueError(f"calib: expected a size in [1, {H}] x [1, {W}], got {calib}")
    window = V.flag(window, "window")
    threshold = V.number(threshold, "threshold", low=0.0, high=1.0, high_open=True)
    real = kspace.real.dtype

    def taper(n: int, c: int) -> Tensor:
        w = torch.zeros(n, dtype=real, device=kspace.device)
        start = n // 2 - c // 2
        w[start:start + c] = torch.hann_window(c + 2, periodic=False, dtype=real, device=kspace.device)[1:-1] \
            if window else 1
        return w

    block = taper(H, ch)[:, None] * taper(W, cw)[None, :]
    low = ifft2c(kspace * block)
    norm = rss(low, dim=-3)
    keep = norm > threshold * norm.amax(dim=(-2, -1), keepdim=True)
    return torch.where(keep & (norm > 0), low / torch.where(norm > 0, norm, 1), 0)
