"""Posterior statistics from any solver: many samples per measurement, their mean and std."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ._checks import new_generator


def posterior(solver: Callable[..., Tensor] | str, prior: Any, op: Any, y: Tensor, noise: Any = None, *,
              n: int, steps: int, generator: torch.Generator | None = None, batch_size: int | None = None,
              **hyper: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ``n`` samples per measurement with ``solver`` and summarise them.

    Every measurement ``y[b]`` gets its own generator, seeded ``base + b`` with ``base`` drawn once
    from ``generator``, and its ``n``
    samples are drawn as one batch (or in chunks of ``batch_size``), so the samples of an image do
    not depend on how many other images are in ``y``.

    :param solver: a solver function or its name in :data:`restore.SOLVERS`.
    :param n: samples per measurement.
    :param steps: passed to the solver, as are ``noise`` and ``hyper``.
    :param batch_size: samples per solver call (default ``n``); the samples depend on it.
    :returns: ``(samples, mean, std)``: samples ``(n, B, *op.in_shape)``; mean and per-pixel std
        (unbiased) ``(B, *op.in_shape)``.
    """
    if isinstance(solver, str):
        from . import SOLVERS
        if solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {sorted(SOLVERS)}, got {solver!r}")
        solver = SOLVERS[solver]
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive number of samples, got {n!r}")
    batch_size = n if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
    generator = new_generator(generator, y.device)
    base = int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=generator.device))
    per_image = []
    for b in range(y.shape[0]):
        g = torch.Generator(device=y.device).manual_seed(base + b)
        chunks = []
        for start in range(0, n, batch_size):
            k = min(batch_size, n - start)
            y_b = y[b:b + 1].expand(k, *y.shape[1:])
            chunks.append(solver(prior, op, y_b, noise, steps=steps, generator=g, **hyper))
        per_image.append(torch.cat(chunks))
    samples = torch.stack(per_image, dim=1)
    std = samples.std(0) if n > 1 else torch.zeros_like(samples[0])
    return samples, samples.mean(0), std
