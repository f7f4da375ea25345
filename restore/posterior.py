"""Posterior statistics from any solver: many samples per measurement, their mean and std.

Two paths. An ordinary solver is called once per sample (each with its own generator). A sequential
Monte Carlo solver (one marked ``solver.cloud = True``: :func:`restore.mcgdiff`, :func:`restore.fps`,
:func:`restore.tds`) instead runs ONE cloud of ``n`` particles per measurement and returns it
(``particles=n, return_cloud=True``): the ``n`` samples are that cloud, as in MCGDiff's protocol.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators, split_generator


def posterior(solver: Callable[..., Tensor] | str, prior: Any, op: Any, y: Tensor, noise: Any = None, *,
              n: int, steps: int | None = None, generator: Generators = None, batch_size: int | None = None,
              **hyper: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ``n`` samples per measurement with ``solver`` and summarise them.

    Measurement ``y[b]`` has its own generator (``generator[b]`` when given one per measurement, else
    one seeded from a draw of ``generator``), and from it each of its ``n`` samples gets its own
    generator. The solver is called with one generator per sample, so sample ``k`` of image ``b``
    is the same whatever the other images in ``y`` and whatever ``batch_size``.

    :param solver: a solver function or its name in :data:`restore.SOLVERS`.
    :param n: samples per measurement.
    :param steps: passed to the solver, as are ``noise`` and ``hyper``; ``None``: the solver's default.
    :param generator: one ``torch.Generator``, one per measurement, or None (a fresh seed).
    :param batch_size: samples per solver call (default ``n``); it changes memory and speed only.
        Ignored by SMC solvers (one call per measurement: bound their memory with ``chunk=``).
    :returns: ``(samples, mean, std)``: samples ``(n, B, *op.in_shape)``; mean and per-pixel std
        (unbiased) ``(B, *op.in_shape)``.
    """
    if isinstance(solver, str):
        from . import SOLVERS
        if solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {sorted(SOLVERS)}, got {solver!r}")
        solver = SOLVERS[solver]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive number of samples, got {n!r}")
    if steps is not None:
        hyper = dict(hyper, steps=steps)
    batch_size = n if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
    per_image = []
    cloud = getattr(solver, "cloud", False)
    if cloud and "particles" in hyper:
        raise ValueError("particles: restore.posterior runs SMC solvers with particles = n (one cloud of n "
                         "particles per measurement); pass n instead")
    for b, g in enumerate(split_generator(generator, y.shape[0], y.device)):
        if cloud:  # one cloud of n particles, driven by this measurement's generator alone
            per_image.append(solver(prior, op, y[b:b + 1], noise, generator=[g], particles=n,
                                    return_cloud=True, **hyper)[0])
            continue
        sample_generators = split_generator(g, n, y.device)
        chunks = []
        for start in range(0, n, batch_size):
            k = min(batch_size, n - start)
            y_b = y[b:b + 1].expand(k, *y.shape[1:])
            chunks.append(solver(prior, op, y_b, noise,
                                 generator=sample_generators[start:start + k], **hyper))
        per_image.append(torch.cat(chunks))
    samples = torch.stack(per_image, dim=1)
    std = samples.std(0) if n > 1 else torch.zeros_like(samples[0])
    return samples, samples.mean(0), std
