"""Procedural medical-style phantoms, deterministic by seed.

Each phantom is a random member of the Shepp-Logan family (Shepp & Logan 1974): a bright skull ellipse,
a darker brain inside it, a handful of large internal ellipses of varied intensity, size and rotation,
a few small structures (lesion-like dots), and a smooth low-frequency texture so that a prior cannot win
by memorising a few shapes. Values lie in [0, 1].
"""
from __future__ import annotations

import math

import torch

__all__ = ["random_phantoms", "phantom", "TRAIN_SEED_OFFSET", "TEST_SEED_OFFSET"]

# Training batches and held-out images draw from disjoint seed ranges.
TRAIN_SEED_OFFSET = 0
TEST_SEED_OFFSET = 10**9


def _uniform(n: int, k: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, k, generator=g, dtype=torch.float64)


def _ellipses(grid_x, grid_y, cx, cy, a, b, theta, value, edge) -> torch.Tensor:
    """Sum of soft-edged ellipses; parameters are (n, k), the grid is (H, W); returns (n, H, W)."""
    c, s = theta.cos()[..., None, None], theta.sin()[..., None, None]
    dx = grid_x - cx[..., None, None]
    dy = grid_y - cy[..., None, None]
    u = (dx * c + dy * s) / a[..., None, None]
    v = (-dx * s + dy * c) / b[..., None, None]
    radius = (u**2 + v**2).sqrt()
    # A sigmoid edge about one pixel wide (in units of the ellipse's radius) anti-aliases the boundary.
    width = edge / torch.minimum(a, b)[..., None, None]
    inside = torch.sigmoid((1 - radius) / width)
    return (value[..., None, None] * inside).sum(1)


def random_phantoms(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random phantoms of ``size`` x ``size`` as a float32 tensor (n, 1, size, size) in [0, 1]."""
    if n < 1 or size < 8:
        raise ValueError(f"n, size: expected n >= 1 and size >= 8, got {n}, {size}")
    g = generator
    axis = torch.linspace(-1, 1, size, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
    edge = 1.0 / size

    # Skull and brain: the outer pair of the Shepp-Logan phantom, jittered.
    head_a, head_b = _uniform(n, 1, 0.62, 0.8, g), _uniform(n, 1, 0.78, 0.95, g)
    head_cx, head_cy = _uniform(n, 1, -0.05, 0.05, g), _uniform(n, 1, -0.05, 0.05, g)
    head_theta = _uniform(n, 1, -0.3, 0.3, g)
    skull = _uniform(n, 1, 0.8, 1.0, g)
    thickness = _uniform(n, 1, 0.03, 0.08, g)
    brain = _uniform(n, 1, 0.15, 0.35, g)
    img = _ellipses(grid_x, grid_y, head_cx, head_cy, head_a, head_b, head_theta, skull, edge)
    img += _ellipses(grid_x, grid_y, head_cx, head_cy, head_a - thickness, head_b - thickness, head_theta,
                     brain - skull, edge)

    # Internal structures, placed inside the brain; some are switched off so the count varies.
    def inside_brain(k: int, max_axis: float):
        r = _uniform(n, k, 0, 0.75, g).sqrt()
        phi = _uniform(n, k, 0, 2 * math.pi, g)
        cx = head_cx + r * (head_a - thickness - max_axis).clamp(min=0.05) * phi.cos()
        cy = head_cy + r * (head_b - thickness - max_axis).clamp(min=0.05) * phi.sin()
        return cx, cy

    k_big = 6
    cx, cy = inside_brain(k_big, 0.25)
    a, b = _uniform(n, k_big, 0.05, 0.3, g), _uniform(n, k_big, 0.04, 0.2, g)
    theta = _uniform(n, k_big, 0, math.pi, g)
    on = (torch.rand(n, k_big, generator=g, dtype=torch.float64) < 0.7).double()
    value = _uniform(n, k_big, -0.15, 0.35, g) * on
    img += _ellipses(grid_x, grid_y, cx, cy, a, b, theta, value, edge)

    k_small = 6
    cx, cy = inside_brain(k_small, 0.05)
    a, b = _uniform(n, k_small, 0.015, 0.05, g), _uniform(n, k_small, 0.015, 0.05, g)
    theta = _uniform(n, k_small, 0, math.pi, g)
    on = (torch.rand(n, k_small, generator=g, dtype=torch.float64) < 0.6).double()
    value = _uniform(n, k_small, 0.1, 0.4, g) * on
    img += _ellipses(grid_x, grid_y, cx, cy, a, b, theta, value, edge)

    # Smooth texture inside the head: a few random low-frequency plane waves.
    k_waves = 6
    freq = _uniform(n, k_waves, 1.0, 6.0, g) * math.pi
    direction = _uniform(n, k_waves, 0, 2 * math.pi, g)
    phase = _uniform(n, k_waves, 0, 2 * math.pi, g)
    amplitude = _uniform(n, 1, 0.0, 0.04, g) / math.sqrt(k_waves)
    arg = freq[..., None, None] * (direction.cos()[..., None, None] * grid_x + direction.sin()[..., None, None] * grid_y)
    texture = (amplitude[..., None, None] * (arg + phase[..., None, None]).cos()).sum(1)
    head = _ellipses(grid_x, grid_y, head_cx, head_cy, head_a, head_b, head_theta, torch.ones(n, 1, dtype=torch.float64), edge)
    img += texture * head
    return img.clamp(0, 1).float().unsqueeze(1)


def phantom(seed: int, size: int = 64) -> torch.Tensor:
    """The phantom of one seed, (1, size, size); the held-out test set uses ``TEST_SEED_OFFSET + i``."""
    return random_phantoms(1, size, torch.Generator().manual_seed(seed))[0]
