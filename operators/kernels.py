r"""Blur kernels (point spread functions), each a float32 ``(k, k)`` CPU tensor summing to 1.

* :func:`gaussian` -- isotropic Gaussian (DPS protocol: size 61, std 3.0);
* :func:`motion` -- random camera-shake trajectory (DPS protocol: size 61, intensity 0.5), following the
  construction of the ``motionblur`` package used by DPS (Chung et al. 2023): a random walk whose step
  lengths and turning angles depend on the intensity, drawn on a twice-larger canvas, softened and
  reduced to the kernel size;
* :func:`uniform` -- box average.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _validate as V
from .masks import _gen

__all__ = ["gaussian", "motion", "uniform"]


def _check_size(size: int) -> int:
    return V.integer(size, "size", low=1)


def gaussian(size: int, std: float) -> Tensor:
    r""":math:`k(i, j) \propto \exp(-(i^2 + j^2) / (2\,\mathrm{std}^2))` on a ``size x size`` grid centred
    at ``size // 2``, normalised to sum 1."""
    size = _check_size(size)
    std = V.number(std, "std", low=0.0, low_open=True)
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-0.5 * (t / std) ** 2)  # not t^2 / (2 std^2): that is 0/0 once std^2 underflows
    k = g[:, None] * g[None, :]
    return (k / k.sum()).float()


def uniform(size: int) -> Tensor:
    """Box average over ``size x size`` pixels."""
    size = _check_size(size)
    return torch.full((size, size), 1.0 / size ** 2)


def _u(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, device=g.device, dtype=torch.float64))


def _beta_int(g: torch.Generator, a: int, b: int) -> float:
    """Beta(a, b) for integer a, b: the a-th smallest of a + b - 1 uniforms."""
    u = torch.rand(a + b - 1, generator=g, device=g.device, dtype=torch.float64)
    return float(u.sort().values[a - 1])


def _triangular(g: torch.Generator, left: float, mode: float, right: float) -> float:
    u = _u(g)
    c = (mode - left) / (right - left)
    if u < c:
        return left + math.sqrt(u * (right - left) * (mode - left))
    return right - math.sqrt((1 - u) * (right - left) * (right - mode))


def _trajectory(g: torch.Generator, diagonal: float, intensity: float) -> Tensor:
    """Random camera path (complex positions, centre of mass at 0). Steps: Beta(1, 30) fractions of the
    diagonal, shorter for higher intensity; total length ``0.75 * diag * (U(0,1) + U(0, intensity^2))``;
    turning angles up to ``U(0, intensity * pi)``, flipping sign with probability Beta(2, 20)."""
    eps = 0.1
    max_len = 0.75 * diagonal * (_u(g) + _u(g, 0, intensity ** 2))
    steps: list[float] = []
    while sum(steps) < max_len:
        step = _beta_int(g, 1, 30) * (1 - intensity + eps) * diagonal
        if step < max_len:
            steps.append(step)
    max_angle = _u(g, 0, intensity * math.pi)
    jitter = _beta_int(g, 2, 20)
    angles = [_u(g, -max_angle, max_angle)]
    while len(angles) < len(steps):
        angle = _triangular(g, 0, intensity * max_angle, max_angle + eps)
        previous_sign = math.copysign(1.0, angles[-1]) if angles[-1] != 0 else 0.0
        angles.append(-angle * previous_sign if _u(g) < jitter else angle * previous_sign)
    increments = torch.polar(torch.tensor(steps, dtype=torch.float64), torch.tensor(angles, dtype=torch.float64))
    path = torch.cumsum(increments, 0)
    path = path - path.mean()
    rotation = _u(g, 0, math.pi)
    return path * complex(math.cos(rotation), math.sin(rotation))


def _draw(path: Tensor, n: int) -> Tensor:
    """Anti-aliased polyline on an ``n x n`` canvas centred at the origin: points every 0.25 px along each
    segment, splatted bilinearly."""
    canvas = torch.zeros(n * n, dtype=torch.float64)
    pts = [path[:1]]
    for a, b in zip(path[:-1], path[1:]):
        m = max(2, int(math.ceil(abs(complex(b - a)) / 0.25)))
        pts.append(a + (b - a) * torch.linspace(0, 1, m, dtype=torch.float64)[1:])
    p = torch.cat(pts) + complex(n / 2, n / 2)
    x, y = p.real, p.imag
    x0, y0 = torch.floor(x), torch.floor(y)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
            inside = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
            canvas.index_add_(0, (yi[inside] * n + xi[inside]).long(), w[inside])
    return canvas.reshape(n, n)


def motion(size: int = 61, intensity: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Random motion-blur kernel (DPS protocol: ``size=61, intensity=0.5``).

    The trajectory (see :func:`_trajectory`) is drawn on a ``2 size`` canvas, softened with a Gaussian of
    std ``max(1, 0.01 diag)`` px and reduced 2x by area averaging, then normalised to sum 1.

    :param size: kernel side (pixels).
    :param intensity: in [0, 1]; 0 gives a straight streak, 1 a strongly curved path.
    """
    size = _check_size(size)
    intensity = V.number(intensity, "intensity", low=0.0, high=1.0)
    g = _gen(generator)
    n = 2 * size
    diagonal = math.sqrt(2) * n
    canvas = _draw(_trajectory(g, diagonal, intensity), n)
    soft = max(1.0, int(0.01 * diagonal))
    r = int(math.ceil(3 * soft))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g1 = torch.exp(-t ** 2 / (2 * soft ** 2))
    g1 = (g1 / g1.sum())
    img = canvas[None, None]
    img = F.conv2d(F.pad(img, (r, r, 0, 0)), g1.reshape(1, 1, 1, -1))
    img = F.conv2d(F.pad(img, (0, 0, r, r)), g1.reshape(1, 1, -1, 1))
    k = F.avg_pool2d(img, 2)[0, 0]
    total = k.sum()
    if total <= 0:  # the path left the canvas entirely (practically impossible): fall back to a dot
        k = torch.zeros(size, size, dtype=torch.float64)
        k[size // 2, size // 2] = 1.0
        total = 1.0
    return (k / total).float()
