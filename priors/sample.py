"""Unconditional sampling from any :class:`~priors.Prior`, in the manner of k-diffusion.

Each sampler is a short function ``sampler(denoise, x, sigmas, *, noise, callback, **hyper) -> x`` over
a denoiser ``D(x; sigma)`` and a descending sigma schedule passed in as data (last entry 0). All work in
the variance-exploding parametrisation ``x = x0 + sigma n``; DDPM and DDIM are the same transitions as
in their papers, carried over by ``x = x_t / sqrt(abar)`` with ``abar = 1 / (1 + sigma^2)``. The state is
float64 whatever the prior computes in.

:func:`sample` is the front door; :func:`sliced_wasserstein` measures how far a sample set is from
another one (used to check samplers against exact mixtures).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .denoiser import Prior
from .random import Generators, resolve_generators, split_generator

__all__ = ["sample", "sample_heun", "sample_ddim", "sample_ddpm", "SAMPLERS", "sliced_wasserstein", "output_moments"]

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]
Noise = Callable[[], torch.Tensor]


def sample_heun(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: Noise | None = None,
                callback=None, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
                s_noise: float = 1.0) -> torch.Tensor:
    """EDM's second-order sampler (Karras et al. 2022, Alg. 2; Alg. 1 when ``churn = 0``).

    Integrates the probability-flow ODE ``dx/dsigma = (x - D(x; sigma)) / sigma`` with Heun's method,
    taking an Euler step into ``sigma = 0``. With ``churn > 0`` each step first raises the noise to
    ``t_hat = (1 + gamma) t``, ``gamma = min(churn / N, sqrt(2) - 1)`` for ``t`` in [s_tmin, s_tmax].
    """
    steps = len(sigmas) - 1
    for i in range(steps):
        t_cur, t_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = min(churn / steps, math.sqrt(2) - 1) if s_tmin <= t_cur <= s_tmax else 0.0
        t_hat = t_cur * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(t_hat**2 - t_cur**2) * s_noise * noise()
        denoised = denoise(x, t_hat)
        d_cur = (x - denoised) / t_hat
        x_next = x + (t_next - t_hat) * d_cur
        if t_next > 0:
            d_prime = (x_next - denoise(x_next, t_next)) / t_next
            x_next = x + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=t_hat, x0_hat=denoised))
        x = x_next
    return x


def sample_ddim(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: Noise | None = None,
                callback=None, eta: float = 0.0) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12, with sigma_t(eta) of eq. 16).

    In DDPM's terms, with ``eps_hat = (x_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t)``::

        x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps_hat + s z,
        s = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev).

    ``eta = 0`` is deterministic; ``eta = 1`` is ancestral sampling with DDPM's posterior variance.
    """
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        abar, abar_prev = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
        x_t = math.sqrt(abar) * x  # the DDPM state
        x0_hat = denoise(x, sigma)
        eps_hat = (x_t - math.sqrt(abar) * x0_hat) / math.sqrt(1 - abar)
        s = eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
        x_prev = math.sqrt(abar_prev) * x0_hat + math.sqrt(max(1 - abar_prev - s**2, 0.0)) * eps_hat
        if s > 0:
            x_prev = x_prev + s * noise()
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x0_hat))
        x = x_prev / math.sqrt(abar_prev)
    return x


def sample_ddpm(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: Noise | None = None,
                callback=None, variance: str = "small") -> torch.Tensor:
    """DDPM ancestral sampling (Ho, Jain & Abbeel 2020, Alg. 2, in the x0 form of eq. 7).

    Between any two levels of the schedule, ``alpha = abar_t / abar_prev`` and ``beta = 1 - alpha``::

        x_prev = sqrt(abar_prev) beta / (1 - abar_t) x0_hat + sqrt(alpha) (1 - abar_prev) / (1 - abar_t) x_t
                 + sigma_t z,

    with ``sigma_t^2 = beta_tilde = (1 - abar_prev) / (1 - abar_t) beta`` (``variance="small"``) or
    ``beta`` (``"large"``); both are the paper's choices (sec. 3.2). No noise is added on the last step.
    """
    if variance not in ("small", "large"):
        raise ValueError(f"variance: expected 'small' or 'large', got {variance!r}")
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        abar, abar_prev = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
        alpha = abar / abar_prev
        beta = 1 - alpha
        x_t = math.sqrt(abar) * x
        x0_hat = denoise(x, sigma)
        x_prev = (math.sqrt(abar_prev) * beta / (1 - abar) * x0_hat
                  + math.sqrt(alpha) * (1 - abar_prev) / (1 - abar) * x_t)
        var = (1 - abar_prev) / (1 - abar) * beta if variance == "small" else beta
        if sigma_next > 0:
            x_prev = x_prev + math.sqrt(var) * noise()
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x0_hat))
        x = x_prev / math.sqrt(abar_prev)
    return x


SAMPLERS = {"heun": sample_heun, "ddim": sample_ddim, "ddpm": sample_ddpm}


def sample(prior: Prior, n: int, steps: int | None = None, method: str = "heun",
           generator: Generators = None, sigmas: torch.Tensor | None = None,
           shape: tuple[int, ...] | None = None, *, callback=None, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None, **hyper) -> torch.Tensor:
    """Draw ``n`` samples from ``prior`` by reversing the diffusion, starting from ``sigmas[0] * N(0, I)``.

    :param steps: number of steps on the prior's native schedule ``prior.sigmas(steps)``.
    :param method: ``"heun"`` (EDM), ``"ddim"`` or ``"ddpm"``; ``hyper`` goes to the sampler (``churn``,
        ``eta``, ``variance``, ...).
    :param generator: one generator (a seed per sample is drawn from it, so sample ``i`` does not
        depend on ``n``), a list of ``n`` generators, or None for a fresh random seed.
    :param sigmas: an explicit descending schedule ending in 0 (overrides ``steps``).
    :param shape: per-sample shape; default ``prior.image_shape``.
    :param device, dtype: where the samples live and their dtype; default the prior's (CPU, and the
        prior's ``dtype`` attribute or float32). The state itself is float64.

    >>> import torch
    >>> from priors.exact import Gaussian
    >>> g = Gaussian(torch.zeros(2), torch.eye(2))
    >>> sample(g, 3, steps=10, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 2])
    """
    if method not in SAMPLERS:
        raise ValueError(f"method: expected one of {', '.join(SAMPLERS)}, got {method!r}")
    shape = tuple(shape) if shape is not None else prior.image_shape
    if shape is None:
        raise ValueError("shape: the prior accepts any image shape, so pass shape=(C, H, W)")
    if sigmas is None:
        if steps is None:
            raise ValueError("steps: give a number of steps or an explicit sigmas schedule")
        sigmas = prior.sigmas(steps)
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.ndim != 1 or len(sigmas) < 2 or float(sigmas[-1]) != 0 or bool((sigmas[1:] > sigmas[:-1]).any()):
        raise ValueError("sigmas: expected a descending 1-D schedule of at least 2 values ending in 0")
    device = torch.device(device) if device is not None else _prior_device(prior)
    noise = _noise_source(n, shape, generator, device, draws=len(sigmas))
    x = float(sigmas[0]) * noise()
    x = SAMPLERS[method](prior.denoise, x, sigmas, noise=noise, callback=callback, **hyper)
    return x.to(dtype or getattr(prior, "dtype", torch.float32))


def _noise_source(n: int, shape: tuple[int, ...], generator, device: torch.device, draws: int) -> Noise:
    """A function returning fresh float64 N(0, I) of shape (n, *shape), at most ``draws`` times.

    Seeded, every sample has its own generator, so sample ``i`` sees the same noise whatever ``n`` is.
    Its draws come in chunks of a size fixed by ``shape`` and ``draws`` alone (one torch call per
    sample per chunk instead of per step), which keeps that property.
    """
    generator = split_generator(generator, n)
    chunk = min(draws, max(1, 1024 // max(math.prod(shape), 1)))
    buffer: list[torch.Tensor] = []

    def draw() -> torch.Tensor:
        if not buffer:
            block = torch.stack([torch.randn((chunk, *shape), dtype=torch.float64, device=g.device, generator=g)
                                 for g in generator], dim=1).to(device)
            buffer.extend(block.unbind(0)[::-1])
        return buffer.pop()

    return draw


def _prior_device(prior: Prior) -> torch.device:
    for name in ("means", "device"):
        value = getattr(prior, name, None)
        if isinstance(value, torch.Tensor):
            return value.device
        if isinstance(value, (str, torch.device)):
            return torch.device(value)
    module = getattr(prior, "module", None)
    param = next(module.parameters(), None) if module is not None else None
    return param.device if param is not None else torch.device("cpu")


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_proj: int = 256,
                       generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance between two sample sets (Bonneel et al. 2015).

    ``SW_2(a, b)^2 = E_theta W_2(theta^T a, theta^T b)^2`` over uniform directions theta; samples are
    flattened to vectors. Equal sizes: each 1-D distance is exact, by sorting. Different sizes: the
    1-D quantile functions are compared on a common grid of ``max(len(a), len(b))`` levels.
    """
    a, b = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    if a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ValueError(f"a, b: expected non-empty sample sets of the same dimension, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    generator = resolve_generators(generator)
    theta = torch.randn(a.shape[1], n_proj, dtype=torch.float64, generator=generator,
                        device=generator.device).to(a.device)
    theta = theta / theta.norm(dim=0, keepdim=True)
    pa, pb = (a @ theta).sort(0).values, (b @ theta).sort(0).values
    if len(a) != len(b):
        levels = (torch.arange(max(len(a), len(b)), dtype=torch.float64, device=a.device) + 0.5) / max(len(a), len(b))
        pa, pb = torch.quantile(pa, levels, dim=0), torch.quantile(pb, levels, dim=0)
    return float(((pa - pb) ** 2).mean().sqrt())


def output_moments(prior: Prior, method: str, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and per-coordinate variance of a sampler's output for a Gaussian prior on vectors
    (``prior.dim`` coordinates).

    The denoiser is affine, so the output is affine in the starting noise and the step noises; run the
    sampler with every noise input zero (the output is then the mean) and differentiate through them
    (squared gradients sum to the variance). No Monte Carlo.
    """
    sigmas, inputs = prior.sigmas(steps), []

    def noise():
        inputs.append(torch.zeros(1, prior.dim, dtype=torch.float64, requires_grad=True))
        return inputs[-1]

    x = SAMPLERS[method](prior.denoise, float(sigmas[0]) * noise(), sigmas, noise=noise)
    grads = torch.autograd.grad(x.sum(), inputs)
    return x.detach()[0], sum(g[0] ** 2 for g in grads)
