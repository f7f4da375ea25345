r"""Parallel-beam computed tomography: a Radon transform with an exactly matched back-projector.

The projector follows the sampling convention of ``skimage.transform.radon``: for an angle
:math:`\theta` and a detector offset :math:`t`, the ray sum is

.. math:: (A x)(t, \theta) = \sum_{s} x_{\mathrm{bilin}}\bigl(c + t\cos\theta + s\sin\theta,\;
          c - t\sin\theta + s\cos\theta\bigr)

over unit-spaced samples :math:`s`, with bilinear interpolation of the pixel grid (zero outside),
rotation centre :math:`c = N/\!/2` (column, row) and unit detector spacing. Because each ray is a
fixed linear combination of pixels, the whole projector is one sparse matrix built once at
construction; the back-projector is its transpose, so ``A.H`` is the exact adjoint (a matched pair),
not a filtered or approximate inverse. The classical reconstruction is :func:`fbp` (Kak & Slaney,
*Principles of Computerized Tomographic Imaging*, 1988, ch. 3), scaled like
``skimage.transform.iradon``.

Sinograms are ``(B, 1, n_detectors, n_views)``, the layout of skimage and deepinv.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse
import torch
from torch import Tensor

from . import _validate as V
from .linear import LinearOperator, real_dtype

__all__ = ["CT", "fbp", "radon_matrix"]

_FILTERS = ("ramp", "shepp-logan", "hann", "cosine", "hamming")


def radon_matrix(img_size: int, angles: Sequence[float], n_detectors: int) -> scipy.sparse.csr_matrix:
    r"""Sparse matrix of the bilinear-sampling parallel-beam projector.

    Row ``k * n_views + a`` holds the weights of the ray at detector ``k`` and angle ``a``; column
    ``r * img_size + c`` is pixel (row r, column c). Each ray takes ``max(img_size, n_detectors)``
    unit-spaced samples, centred on the rotation centre, which reproduces skimage's ``circle=True``
    (``n_detectors == img_size``) and ``circle=False`` (``n_detectors == ceil(sqrt(2) img_size)``).

    :param img_size: image side N (square images).
    :param angles: projection angles in degrees.
    :param n_detectors: number of unit-spaced detector cells.
    :return: ``(n_detectors * n_views, N * N)`` CSR matrix, float64.
    """
    n = img_size
    theta = np.deg2rad(np.asarray(angles, dtype=np.float64))
    n_views = theta.size
    n_samples = max(n, n_detectors)
    centre = n // 2
    t = np.arange(n_detectors, dtype=np.float64) - n_detectors // 2
    s = np.arange(n_samples, dtype=np.float64) - n_samples // 2
    pieces = []
    # Chunks of angles keep the uncoalesced triplets (4 per sample) small.
    chunk = max(1, 2_000_000 // (n_detectors * n_samples))
    for a0 in range(0, n_views, chunk):
        a = np.arange(a0, min(a0 + chunk, n_views))
        cos, sin = np.cos(theta[a])[:, None, None], np.sin(theta[a])[:, None, None]
        tt, ss = t[None, :, None], s[None, None, :]
        col = centre + tt * cos + ss * sin  # (angles, detectors, samples)
        row = centre - tt * sin + ss * cos
        # only samples with a pixel neighbour inside the image contribute
        idx = np.flatnonzero((row > -1) & (row < n) & (col > -1) & (col < n))
        row, col = row.reshape(-1)[idx], col.reshape(-1)[idx]
        ray = ((idx // n_samples) % n_detectors) * n_views + a0 + idx // (n_samples * n_detectors)
        r0, c0 = np.floor(row), np.floor(col)
        fr, fc = row - r0, col - c0
        r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
        for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                          (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
            rr, cc = r0 + dr, c0 + dc
            keep = (rr >= 0) & (rr < n) & (cc >= 0) & (cc < n) & (w != 0)
            pieces.append((ray[keep], rr[keep] * n + cc[keep], w[keep]))
    rows = np.concatenate([p[0] for p in pieces])
    cols = np.concatenate([p[1] for p in pieces])
    vals = np.concatenate([p[2] for p in pieces])
    # csr construction sums the duplicate (ray, pixel) pairs from neighbouring samples.
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(n_detectors * n_views, n * n))


def _angles(angles, name: str = "angles") -> np.ndarray:
    """Projection angles in degrees as a non-empty, finite float64 numpy vector; an int is a number of views
    uniform on [0, 180)."""
    if isinstance(angles, (int, np.integer)) and not isinstance(angles, (bool, np.bool_)):
        n = V.integer(angles, name, low=1)
        return np.arange(n) * (180.0 / n)
    if isinstance(angles, (float, np.floating)):
        raise TypeError(f"{name}: expected an int number of views or a sequence of angles in degrees, got {angles!r}")
    if not isinstance(angles, Tensor):
        if isinstance(angles, (str, bytes)) or not isinstance(angles, (Sequence, np.ndarray)):
            raise TypeError(f"{name}: expected an int number of views or a sequence of angles in degrees, "
                            f"got {V.describe(angles)}")
        try:
            angles = torch.as_tensor(np.asarray(angles, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected a sequence of real numbers (degrees)") from None
    angles = V.tensor(angles, name, kind="real", ndim=(0, 1), layout="a 1-D sequence of angles")
    if angles.dtype == torch.bool:
        raise TypeError(f"{name}: expected real numbers (degrees), got a torch.bool tensor")
    return np.asarray(angles.detach().cpu().reshape(-1), dtype=np.float64)


def _to_torch_csr(m: scipy.sparse.csr_matrix, dtype: torch.dtype) -> Tensor:
    m.sort_indices()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(  # int32 indices halve the memory of large projectors
            torch.from_numpy(m.indptr.astype(np.int32)), torch.from_numpy(m.indices.astype(np.int32)),
            torch.from_numpy(m.data).to(dtype), size=m.shape, check_invariants=False)


@functools.lru_cache(maxsize=4)
def _projector(img_size: int, angles: tuple[float, ...], n_detectors: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The projector and its transpose as torch CSR tensors; shared by equal operators (read-only), since
    building a 256 x 256, 180-view matrix takes seconds."""
    m = radon_matrix(img_size, angles, n_detectors)
    return _to_torch_csr(m, dtype), _to_torch_csr(m.T.tocsr(), dtype)


class CT(LinearOperator):
    r"""Parallel-beam CT :math:`y = A x` with a matched (exact-adjoint) back-projector.

    :param img_size: side N of the square image; ``in_shape = (1, N, N)``.
    :param angles: projection angles in degrees, or an int number of views uniform on [0, 180).
        Default: 180 views.
    :param n_detectors: unit-spaced detector cells; default N (skimage ``circle=True``). Use
        ``ceil(sqrt(2) N)`` (363 for N = 256, as in DiffusionMBIR) to cover the image corners.
    :return: sinograms ``(B, 1, n_detectors, n_views)``.

    Example::

        >>> op = CT(32, angles=8)
        >>> op(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 1, 32, 8])
    """

    def __init__(self, img_size: int, angles: int | Sequence[float] | Tensor | None = None,
                 n_detectors: int | None = None):
        img_size = V.integer(img_size, "img_size", low=2)
        angles = _angles(180 if angles is None else angles)
        n_detectors = img_size if n_detectors is None else V.integer(n_detectors, "n_detectors", low=1)
        self.img_size = int(img_size)
        self._angles = angles  # numpy float64, out of reach of ``to()`` casts
        self.n_detectors = int(n_detectors)
        # Not tensor attributes: ``to()`` must not round a float32 matrix up to float64 (see _matrices).
        self._float32 = self._build(torch.float32)
        super().__init__((1, self.img_size, self.img_size), (1, self.n_detectors, angles.size),
                         name=f"CT({self.img_size}, {angles.size} views, {self.n_detectors} det)")

    @classmethod
    def sparse_view(cls, img_size: int, n_views: int, n_detectors: int | None = None) -> "CT":
        """``n_views`` angles uniform on [0, 180) (DiffusionMBIR: 8/4/2 views, 363 detectors at 256)."""
        return cls(img_size, V.integer(n_views, "n_views", low=1), n_detectors)

    @classmethod
    def limited_angle(cls, img_size: int, max_angle: float = 90.0, n_views: int | None = None,
                      n_detectors: int | None = None, start: float = 0.0) -> "CT":
        """Views uniform on ``[start, start + max_angle)`` degrees, one per degree by default."""
        max_angle = V.number(max_angle, "max_angle", low=0.0, high=180.0, low_open=True)
        start = V.number(start, "start")
        n_views = max(1, int(round(max_angle))) if n_views is None else V.integer(n_views, "n_views", low=1)
        return cls(img_size, start + np.arange(n_views) * (max_angle / n_views), n_detectors)

    @property
    def angles(self) -> Tensor:
        """Projection angles in degrees, float64."""
        return torch.from_numpy(self._angles.copy())

    @property
    def n_views(self) -> int:
        return int(self._angles.size)

    def _build(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        return _projector(self.img_size, tuple(self._angles.tolist()), self.n_detectors, dtype)

    def _matrices(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """The projector and its transpose on ``like``'s device and precision, memoised (a cache, not a
        change of the operator). Other precisions than float32 are rebuilt from the float64 weights."""
        dtype = real_dtype(like.dtype)

        def make():
            pair = self._float32 if dtype == torch.float32 else self._build(dtype)
            return tuple(m.to(like.device) for m in pair)
        return self._memo("matrices", like, make)

    @staticmethod
    def _matmul(m: Tensor, v: Tensor) -> Tensor:
        # v: (B, n) real or complex; the matrix is real, so act on real and imaginary parts.
        if v.is_complex():
            return torch.complex(CT._matmul(m, v.real), CT._matmul(m, v.imag))
        return torch.sparse.mm(m, v.t().contiguous()).t()

    def _apply(self, x: Tensor) -> Tensor:
        a = self._matrices(x)[0]
        return self._matmul(a, x.reshape(x.shape[0], -1)).reshape(x.shape[0], *self.out_shape)

    def _adjoint(self, y: Tensor) -> Tensor:
        at = self._matrices(y)[1]
        return self._matmul(at, y.reshape(y.shape[0], -1)).reshape(y.shape[0], *self.in_shape)

    def fbp(self, y: Tensor, filter: str = "ramp") -> Tensor:
        """Filtered back-projection of sinograms ``y`` (see :func:`fbp`)."""
        return fbp(self, y, filter=filter)


def _ramp_filter(size: int, filter: str, device, dtype) -> Tensor:
    r"""Frequency response of the band-limited ramp (Kak & Slaney eq. 3.61), times an apodisation.

    The ramp is the DFT of its spatial samples h[0] = 1/4, h[n] = -1/(pi n)^2 for odd n, 0 for even n,
    which avoids the DC bias of sampling |omega| directly.
    """
    k = torch.arange(size, dtype=torch.float64)
    n = torch.minimum(k, size - k)  # circular distance to 0
    h = torch.where(n % 2 == 1, -1.0 / (math.pi * n.clamp(min=1)) ** 2, torch.zeros(()))
    h[0] = 0.25
    response = 2 * torch.fft.fft(h).real
    freq = torch.fft.fftfreq(size, dtype=torch.float64)  # cycles per sample, in [-1/2, 1/2)
    if filter == "shepp-logan":
        w = math.pi * freq
        response = response * torch.where(w == 0, torch.ones(()), torch.sin(w) / torch.where(w == 0, 1.0, w))
    elif filter == "cosine":
        response = response * torch.cos(math.pi * freq)
    elif filter in ("hann", "hamming"):
        # the symmetric windows of length `size`, centred on frequency 0 (as iradon does)
        window = {"hann": torch.hann_window, "hamming": torch.hamming_window}[filter]
        response = response * torch.fft.fftshift(window(size, periodic=False, dtype=torch.float64))
    return response.to(device=device, dtype=dtype)


def fbp(op_or_angles: CT | Sequence[float] | Tensor, y: Tensor, filter: str = "ramp",
        img_size: int | None = None) -> Tensor:
    r"""Filtered back-projection, the classical inverse of the parallel-beam Radon transform.

    Each projection is filtered with the ramp :math:`|\omega|` (apodised for ``"shepp-logan"``,
    ``"hann"``, ``"cosine"``, ``"hamming"``) by zero-padded FFT, then smeared back along its rays with
    linear interpolation in the detector coordinate :math:`t = (c_x)\cos\theta - (r_y)\sin\theta`
    and scaled by :math:`\pi / (2 n_\mathrm{views})` (Kak & Slaney 1988, eq. 3.46), so that it agrees
    with ``skimage.transform.iradon`` (``circle=True`` when ``n_detectors <= img_size``).

    :param op_or_angles: a :class:`CT` operator, or the angles in degrees (then give ``img_size``).
    :param y: sinograms ``(B, C, n_detectors, n_views)``.
    :param filter: ``"ramp"``, ``"shepp-logan"``, ``"hann"``, ``"cosine"`` or ``"hamming"``.
    :param img_size: output side N; default the operator's, or ``n_detectors``.
    :return: images ``(B, C, N, N)`` on ``y``'s device.
    """
    filter = V.choice(filter, "filter", _FILTERS)
    if isinstance(op_or_angles, CT):
        angles = op_or_angles.angles
        img_size = op_or_angles.img_size if img_size is None else img_size
    else:
        angles = torch.from_numpy(_angles(op_or_angles, "op_or_angles"))
    y = V.tensor(y, "y", kind="float", check_finite=False)
    if y.dim() != 4 or y.shape[-1] != angles.numel():
        raise ValueError(f"y must be (B, C, n_detectors, {angles.numel()}), got {tuple(y.shape)}")
    V.tensor(y, "y", kind="float")  # empty, NaN, inf
    out_dtype = y.dtype
    y = y if out_dtype in (torch.float32, torch.float64) else y.float()  # no half-precision FFT on the CPU
    n_det = y.shape[-2]
    img_size = n_det if img_size is None else V.integer(img_size, "img_size", low=1)
    circle = n_det <= img_size
    # Like iradon: a circle-support sinogram is zero-padded to the image diagonal first, so that the
    # filtered projection (which the ramp spreads past the detector) is kept there too; then the
    # FFT length is the next power of two >= twice that width.
    width = math.ceil(math.sqrt(2) * n_det) if circle else n_det
    before = width // 2 - n_det // 2
    y = torch.nn.functional.pad(y, (0, 0, before, width - n_det - before))
    size = max(64, 2 ** math.ceil(math.log2(2 * width)))
    dtype = y.dtype
    spectrum = torch.fft.fft(y, n=size, dim=-2) * _ramp_filter(size, filter, y.device, dtype)[:, None]
    filtered = torch.fft.ifft(spectrum, dim=-2).real[..., :width, :].to(dtype)
    centre = img_size // 2
    coords = torch.arange(img_size, device=y.device, dtype=torch.float64) - centre
    rows, cols = coords[:, None], coords[None, :]
    theta = torch.deg2rad(angles.to(device=y.device, dtype=torch.float64))
    out = torch.zeros(*y.shape[:2], img_size * img_size, device=y.device, dtype=dtype)
    for v in range(theta.numel()):
        # detector coordinate of every pixel, as an index into the padded projection
        t = (cols * torch.cos(theta[v]) - rows * torch.sin(theta[v])).reshape(-1) + width // 2
        inside = ((t >= 0) & (t <= width - 1)).to(dtype)  # linear interpolation, zero outside
        i0 = t.clamp(0, width - 1).floor().long().clamp(max=width - 2)
        w = (t.clamp(0, width - 1) - i0).to(dtype)
        col = filtered[..., v]
        out += (col[..., i0] * (1 - w) + col[..., i0 + 1] * w) * inside
    out = out.reshape(*y.shape[:2], img_size, img_size) * (math.pi / (2 * theta.numel()))
    if circle:
        radius = img_size // 2
        out = out * ((rows ** 2 + cols ** 2) <= radius ** 2).to(dtype)
    return out.to(out_dtype)
