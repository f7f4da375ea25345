r"""Sampling masks: inpainting masks and Cartesian MRI undersampling masks.

Every function returns a float32 tensor of shape ``(H, W)`` (1 = measured, 0 = missing) on the CPU and
draws its randomness only from ``generator`` (a fresh, entropy-seeded generator when None; the global RNG
is never touched).

Inpainting: :func:`random` (pixels kept at a ratio), :func:`box` (a missing square), :func:`freeform`
(brush strokes covering 20-30%, the Palette / RED-Diff protocol).

MRI (k-space, centred, lines along the last axis = phase-encode columns): :func:`fastmri_random` and
:func:`fastmri_equispaced` (exactly fastMRI's ``RandomMaskFunc`` / ``EquispacedMaskFunc``, Zbontar et al.
2018), :func:`gaussian_2d` (variable density), :func:`poisson_disc` (variable-density Poisson disc).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from . import _validate as V

__all__ = ["random", "box", "freeform", "fastmri_random", "fastmri_equispaced", "default_center_fraction",
           "gaussian_2d", "poisson_disc"]


def _gen(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _shape2(shape: Sequence[int] | int) -> tuple[int, int]:
    return V.size2(shape, "shape")


def _uniform(generator: torch.Generator, *size: int) -> Tensor:
    return torch.rand(size, generator=generator, device=generator.device, dtype=torch.float64).cpu()


# ----------------------------------------------------------------------------------------------
# inpainting
# ----------------------------------------------------------------------------------------------
def random(shape: Sequence[int] | int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """Keep exactly ``round(ratio * H * W)`` pixels, chosen uniformly at random without replacement.

    :param shape: ``(H, W)``.
    :param ratio: fraction of pixels **kept** (measured), in [0, 1]; DPS's "random 92%" box has ratio 0.08.
    """
    H, W = _shape2(shape)
    ratio = V.number(ratio, "ratio", low=0.0, high=1.0)
    n_keep = round(ratio * H * W)
    order = torch.randperm(H * W, generator=_gen(generator), device="cpu")
    mask = torch.zeros(H * W)
    mask[order[:n_keep]] = 1.0
    return mask.reshape(H, W)


def box(shape: Sequence[int] | int, size: Sequence[int] | int, center: bool = True,
        generator: torch.Generator | None = None) -> Tensor:
    """A missing rectangle of ``size`` (DPS protocol: 128x128 in a 256x256 image), centred or at a uniform
    random position.

    :param size: ``(h, w)`` or an int for a square; must fit in the image.
    :param center: centre the box (default) or place it uniformly at random.
    """
    H, W = _shape2(shape)
    h, w = V.size2(size, "size")
    if not (h <= H and w <= W):
        raise ValueError(f"size: expected a box that fits in the image {H}x{W}, got {(h, w)}")
    center = V.flag(center, "center")
    if center:
        top, left = (H - h) // 2, (W - w) // 2
    else:
        g = _gen(generator)
        top = int(torch.randint(0, H - h + 1, (1,), generator=g, device=g.device))
        left = int(torch.randint(0, W - w + 1, (1,), generator=g, device=g.device))
    mask = torch.ones(H, W)
    mask[top:top + h, left:left + w] = 0.0
    return mask


def _stroke(H: int, W: int, g: torch.Generator, scale: float) -> Tensor:
    """One brush stroke (DeepFill v2 / Palette style): a polyline of 4-12 vertices with random turns and
    lengths, drawn with a round brush; returns a boolean (H, W) image of the painted pixels."""
    u = lambda: float(_uniform(g, 1))  # noqa: E731
    n_vertex = 4 + int(u() * 9)
    width = (12 + u() * 28) * scale
    max_len = 60 * scale
    painted = torch.zeros(H, W, dtype=torch.bool)
    y, x = u() * H, u() * W
    r = width / 2
    for _ in range(n_vertex):
        angle = u() * 2 * math.pi
        length = 10 * scale + u() * max_len
        y2 = min(max(y + length * math.sin(angle), 0.0), H - 1.0)
        x2 = min(max(x + length * math.cos(angle), 0.0), W - 1.0)
        # distance to the segment (y, x) -> (y2, x2), only inside its bounding box grown by the radius
        top, bottom = max(0, int(min(y, y2) - r)), min(H, int(max(y, y2) + r) + 2)
        left, right = max(0, int(min(x, x2) - r)), min(W, int(max(x, x2) + r) + 2)
        yy = torch.arange(top, bottom, dtype=torch.float64)[:, None]
        xx = torch.arange(left, right, dtype=torch.float64)[None, :]
        dy, dx = y2 - y, x2 - x
        t = (((yy - y) * dy + (xx - x) * dx) / max(dy * dy + dx * dx, 1e-12)).clamp(0, 1)
        dist2 = (yy - y - t * dy) ** 2 + (xx - x - t * dx) ** 2
        painted[top:bottom, left:right] |= dist2 <= r * r
        y, x = y2, x2
    return painted


def freeform(shape: Sequence[int] | int, coverage: tuple[float, float] = (0.2, 0.3),
             generator: torch.Generator | None = None, max_strokes: int = 200) -> Tensor:
    """Free-form brush-stroke mask whose missing fraction lies in ``coverage`` (Palette, Saharia et al.
    2022, §4.2 and RED-Diff, Mardani et al. 2023: "freeform 20-30%").

    Strokes (DeepFill v2's random polylines, widths 12-40 px at 256x256, scaled with the image) are added
    until the missing fraction reaches a target drawn uniformly in ``coverage``; a stroke that would push
    it above ``coverage[1]`` is rejected.
    """
    H, W = _shape2(shape)
    if isinstance(coverage, (str, bytes)) or not isinstance(coverage, Sequence) or len(coverage) != 2:
        raise TypeError(f"coverage: expected a pair (lo, hi), got {V.describe(coverage)}")
    lo, hi = (V.number(c, "coverage", low=0.0, high=1.0, high_open=True) for c in coverage)
    if not lo <= hi:
        raise ValueError(f"coverage: expected 0 <= lo <= hi < 1, got {tuple(coverage)}")
    max_strokes = V.integer(max_strokes, "max_strokes", low=0)
    g = _gen(generator)
    target = lo + float(_uniform(g, 1)) * (hi - lo)
    scale = math.sqrt(H * W) / 256
    holes = torch.zeros(H, W, dtype=torch.bool)
    for _ in range(max_strokes):
        covered = holes.double().mean().item()
        if covered >= target:
            break
        candidate = holes | _stroke(H, W, g, scale)
        if candidate.double().mean().item() <= hi:
            holes = candidate
    return (~holes).float()


# ----------------------------------------------------------------------------------------------
# MRI Cartesian masks
# ----------------------------------------------------------------------------------------------
def default_center_fraction(acceleration: float) -> float:
    """fastMRI's pairing: 0.08 at R=4, 0.04 at R=8; in general 0.32 / R."""
    return 0.32 / V.number(acceleration, "acceleration", low=1.0)


def _check_accel(acceleration: float, center_fraction: float | None) -> float:
    acceleration = V.number(acceleration, "acceleration", low=1.0)
    if center_fraction is None:
        return default_center_fraction(acceleration)
    return V.number(center_fraction, "center_fraction", low=0.0, high=1.0, low_open=True, high_open=True)


def _center_lines(num_cols: int, center_fraction: float) -> tuple[int, int]:
    """fastMRI: ``round(N * cf)`` low-frequency columns starting at ``(N - n_low + 1) // 2``."""
    num_low = int(round(num_cols * center_fraction))
    return num_low, (num_cols - num_low + 1) // 2


def _lines_to_mask(shape: tuple[int, int], cols: Tensor) -> Tensor:
    return cols.float().reshape(1, -1).expand(shape[0], shape[1]).clone()


def fastmri_random(shape: Sequence[int] | int, acceleration: float, center_fraction: float | None = None,
                   generator: torch.Generator | None = None) -> Tensor:
    r"""fastMRI ``RandomMaskFunc``: ``n_low = round(N cf)`` centre columns, plus every other column kept
    independently with probability :math:`p = (N/R - n_{low}) / (N - n_{low})`, so that the expected
    number of columns is :math:`N/R`.

    :param shape: ``(H, W)`` k-space shape; columns (last axis, phase encode) are sampled.
    :param acceleration: R >= 1.
    :param center_fraction: in (0, 1); default 0.32 / R (0.08 at R=4, 0.04 at R=8).
    """
    H, W = _shape2(shape)
    cf = _check_accel(acceleration, center_fraction)
    num_low, pad = _center_lines(W, cf)
    if W / acceleration < num_low:
        raise ValueError(f"center_fraction {cf} keeps more than N/R columns at acceleration {acceleration}")
    prob = (W / acceleration - num_low) / (W - num_low) if W > num_low else 0.0
    cols = _uniform(_gen(generator), W) < prob
    cols[pad:pad + num_low] = True
    return _lines_to_mask((H, W), cols)


def fastmri_equispaced(shape: Sequence[int] | int, acceleration: float, center_fraction: float | None = None,
                       generator: torch.Generator | None = None) -> Tensor:
    r"""fastMRI ``EquispacedMaskFunc``: the centre columns plus columns ``round(offset + k a)`` with the
    adjusted spacing :math:`a = R (n_{low} - N) / (n_{low} R - N)` (so the total is about :math:`N/R`)
    and a random offset in ``[0, round(a))``.

    Parameters as :func:`fastmri_random`.
    """
    H, W = _shape2(shape)
    cf = _check_accel(acceleration, center_fraction)
    num_low, pad = _center_lines(W, cf)
    if num_low * acceleration >= W:
        raise ValueError(f"center_fraction {cf} keeps at least N/R columns at acceleration {acceleration}")
    cols = torch.zeros(W, dtype=torch.bool)
    cols[pad:pad + num_low] = True
    spacing = acceleration * (num_low - W) / (num_low * acceleration - W)
    g = _gen(generator)
    offset = int(torch.randint(0, max(round(spacing), 1), (1,), generator=g, device=g.device))
    n = math.ceil((W - 1 - offset) / spacing)
    # numpy's around rounds half to even, as torch.round does
    samples = torch.round(offset + spacing * torch.arange(n, dtype=torch.float64)).long()
    cols[samples[samples < W]] = True
    return _lines_to_mask((H, W), cols)


def _calibration(H: int, W: int, center_fraction: float) -> Tensor:
    """Fully sampled centred square of side ``round(center_fraction * min(H, W))`` (at least 1)."""
    c = max(1, int(round(center_fraction * min(H, W))))
    mask = torch.zeros(H, W, dtype=torch.bool)
    top, left = (H - c + 1) // 2, (W - c + 1) // 2
    mask[top:top + c, left:left + c] = True
    return mask


def _radius(H: int, W: int) -> Tensor:
    """Normalised k-space radius: 0 at the centre pixel, 1 at the middle of each edge."""
    ky = (torch.arange(H, dtype=torch.float64) - H // 2) / (H / 2)
    kx = (torch.arange(W, dtype=torch.float64) - W // 2) / (W / 2)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def gaussian_2d(shape: Sequence[int] | int, acceleration: float, center_fraction: float | None = None,
                std: float = 0.3, generator: torch.Generator | None = None) -> Tensor:
    r"""2-D variable-density mask: each k-space point is kept independently with probability
    :math:`\min(1, c\,e^{-r^2 / (2\,\mathrm{std}^2)})` (r: normalised radius) plus a fully sampled
    calibration square of side ``center_fraction * min(H, W)``; ``c`` is set by bisection so that the
    *expected* number of samples is ``H W / R``.
    """
    H, W = _shape2(shape)
    cf = _check_accel(acceleration, center_fraction)
    std = V.number(std, "std", low=0.0, low_open=True)
    calib = _calibration(H, W, cf)
    density = torch.exp(-_radius(H, W) ** 2 / (2 * std ** 2))
    target = H * W / acceleration
    if calib.sum() > target:
        raise ValueError(f"center_fraction {cf} keeps more than H*W/R points at acceleration {acceleration}")
    expected = lambda c: torch.where(calib, 1.0, (c * density).clamp(max=1)).sum()  # noqa: E731
    lo, hi = 0.0, 1.0
    while expected(hi) < target and hi < 1e12:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) < target else (lo, mid)
    prob = (hi * density).clamp(max=1)
    keep = _uniform(_gen(generator), H, W) < prob
    return (keep | calib).float()


def poisson_disc(shape: Sequence[int] | int, acceleration: float, center_fraction: float | None = None,
                 generator: torch.Generator | None = None, max_passes: int = 6) -> Tensor:
    r"""Variable-density Poisson-disc mask (Lustig et al. 2007, compressed-sensing MRI; as BART's
    ``poisson``): candidates in random order are accepted when no accepted point lies within
    :math:`r(k) = r_0 (1 + 2\,r_k)` (denser at the centre); :math:`r_0` is tuned over a few passes
    (:math:`r_0 \propto \sqrt{R}`) to reach the acceleration ``R`` within a few percent. A fully sampled
    calibration square is added.
    """
    H, W = _shape2(shape)
    cf = _check_accel(acceleration, center_fraction)
    max_passes = V.integer(max_passes, "max_passes", low=1)
    g = _gen(generator)
    calib = _calibration(H, W, cf)
    radius_scale = 1.0 + 2.0 * _radius(H, W)
    order = torch.randperm(H * W, generator=g, device=g.device).cpu().tolist()
    r0 = 0.5 * math.sqrt(acceleration)
    best = None
    for _ in range(max_passes):
        keep = _dart_throw(H, W, order, (r0 * radius_scale).tolist())
        mask = keep | calib
        got = H * W / max(int(mask.sum()), 1)
        if best is None or abs(got - acceleration) < abs(best[0] - acceleration):
            best = (got, mask)
        if abs(got - acceleration) <= 0.03 * acceleration:
            break
        r0 *= math.sqrt(acceleration / got)
    return best[1].float()


def _dart_throw(H: int, W: int, order: list[int], radius: list[list[float]]) -> Tensor:
    """Sequential dart throwing with a per-point exclusion radius (a point rejects candidates closer than
    its own radius, so the local density follows the radius map)."""
    accepted = [[False] * W for _ in range(H)]
    for idx in order:
        i, j = divmod(idx, W)
        r = radius[i][j]
        ri = int(math.ceil(r))
        ok = True
        for a in range(max(0, i - ri), min(H, i + ri + 1)):
            row = accepted[a]
            da = (a - i) ** 2
            for b in range(max(0, j - ri), min(W, j + ri + 1)):
                if row[b] and da + (b - j) ** 2 < r * r:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            accepted[i][j] = True
    return torch.tensor(accepted, dtype=torch.bool)
