"""Randomness that never touches the global RNG: one ``torch.Generator``, or one per image (DESIGN §2).

With a sequence of generators, row ``b`` of every draw comes from ``generator[b]`` alone, so image
``b``'s result equals solving image ``b`` by itself with ``generator[b]``, whatever the batch around it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence, Union

import torch
from torch import Tensor

__all__ = ["Generators", "global_rng_restored", "fresh_generator", "resolve_generators", "split_generator", "randn"]

#: What a ``generator=`` argument accepts: one generator, one per image, or None (a fresh random seed).
Generators = Union[torch.Generator, Sequence[torch.Generator], None]


def fresh_generator(device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded from the OS's entropy, not from (or into) the global RNG."""
    generator = torch.Generator(device=device)
    generator.seed()
    return generator


def resolve_generators(generator: Generators, batch: int | None = None,
                       device: str | torch.device = "cpu") -> torch.Generator | list[torch.Generator]:
    """``generator`` itself, its list (checked against ``batch``), or a fresh one on ``device``.

    :raises TypeError: not a generator, a sequence of generators, or None.
    :raises ValueError: a sequence whose length is not ``batch``.
    """
    if generator is None:
        return fresh_generator(device)
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, Sequence) and all(isinstance(g, torch.Generator) for g in generator):
        generators = list(generator)
        if batch is not None and len(generators) != batch:
            raise ValueError(f"generator: expected one torch.Generator or a sequence of {batch} (one per "
                             f"image), got a sequence of {len(generators)}")
        if not generators:
            raise ValueError("generator: expected at least one generator, got an empty sequence")
        return generators
    raise TypeError(f"generator: expected a torch.Generator, a sequence of them (one per image) or None, "
                    f"got {type(generator).__name__}")


def split_generator(generator: Generators, n: int, device: str | torch.device = "cpu") -> list[torch.Generator]:
    """``n`` generators, one per image: the sequence itself, or ``n`` seeded from draws of one generator."""
    generator = resolve_generators(generator, n, device)
    if isinstance(generator, list):
        return generator
    seeds = torch.randint(0, 2**62, (n,), generator=generator, device=generator.device).tolist()
    return [torch.Generator(device=generator.device).manual_seed(int(s)) for s in seeds]


def randn(shape: Sequence[int], generator: torch.Generator | list[torch.Generator], *,
          dtype: torch.dtype = torch.float32, device: str | torch.device | None = None) -> Tensor:
    """Standard normal noise of ``shape``, drawn on the generator's device and moved to ``device``.

    With a list of generators, row ``b`` (the first axis) is drawn from ``generator[b]``: exactly what
    ``torch.randn((1, *shape[1:]), generator=generator[b])`` gives, so a row never depends on the others.
    """
    shape = tuple(shape)
    if isinstance(generator, torch.Generator):
        z = torch.randn(shape, generator=generator, dtype=dtype, device=generator.device)
    else:
        if len(generator) != shape[0]:
            raise ValueError(f"generator: expected {shape[0]} generators (one per image), got {len(generator)}")
        z = torch.stack([torch.randn(shape[1:], generator=g, dtype=dtype, device=g.device) for g in generator])
    return z if device is None else z.to(device)


@contextmanager
def global_rng_restored() -> Iterator[None]:
    """Run code that draws from torch's global CPU RNG by itself (PyTorch's layer initialisers, whose
    weights are loaded or redrawn from a generator right after) and put the global state back, so the
    caller's random stream is as if nothing had run."""
    with torch.random.fork_rng(devices=[]):
        yield
