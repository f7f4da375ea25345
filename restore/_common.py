"""What several solvers share: entry checks, cheap divergence detection, randomness (one generator
or one per image), the network's data-range scale, the unit-norm rescaling of a problem and the
spectral cut-off of the SVD solvers.

A solver validates its arguments once, at entry (:func:`check_inputs`), and then only looks for
NaN/inf with one reduction per step (:func:`check_finite`), so the hot loop never scans a tensor
twice.

**Unit-norm problems.** The official DPS, DAPS and RED-Diff step sizes were tuned on operators with
``||A|| <= 1`` (masks, normalised blurs, downsampling, orthonormal Fourier sampling). A CT projector or a
random matrix has a far larger norm, and the same step then overshoots. Dividing the whole measurement
model by ``c = ||A||_2``,

    y = A x + n   <=>   y / c = (A / c) x + n / c,

changes nothing about the posterior, only the units the step sizes are read in. So these solvers solve
the rescaled problem whenever ``||A|| > 1`` (:func:`unit_norm_problem`), and leave unit-norm problems
exactly as the papers do.
"""
from __future__ import annotations

import math
import operator
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from operators import GaussianNoise, LinearOperator
from operators.linear import rdot
from priors.random import Generators, resolve_generators
from priors.random import randn as _randn

__all__ = ["SolverDiverged", "check_inputs", "positive_int", "check_finite", "noise_sigma", "gaussian_sigma", "solver_generator",
           "randn", "float64_start", "real_part", "network_scale", "operator_norm", "unit_norm_problem",
           "NOISY_RCOND", "effective_rcond", "mark_point_estimate"]


class SolverDiverged(Exception):
    """A solver's state became NaN or inf.

    :param step: the iteration index at which it was found.
    :param sigma: the noise level (image units) of that iteration.
    """

    def __init__(self, step: int, sigma: float, message: str | None = None):
        self.step = int(step)
        self.sigma = float(sigma)
        super().__init__(message or f"solver diverged at step {self.step} (sigma={self.sigma:.4g}): "
                                    "state is NaN or inf")

    def __reduce__(self):  # keep .step/.sigma when pickled across processes (benchmark workers)
        return (type(self), (self.step, self.sigma, str(self)))


def mark_point_estimate(solver: Any) -> Any:
    """Mark ``solver`` as a point estimator (``solver.point_estimate = True``): it returns one estimate
    (a MAP-like point, a variational point mass, a least-squares fit), not a draw from the posterior,
    so its spread over seeds is no credible interval. The benchmark gives it no coverage (its
    calibration table lists it as a point estimator)."""
    solver.point_estimate = True
    return solver


def noise_sigma(noise: Any) -> float:
    """Gaussian standard deviation of a noise model, in image units (0 for ``None``).

    Accepts ``None``, a number, or any object with a ``sigma`` attribute (``ops.GaussianNoise``,
    ``ops.PoissonGaussianNoise``); a model without one (pure Poisson) counts as 0.
    """
    if noise is None:
        return 0.0
    if isinstance(noise, Real):
        return float(noise)
    sigma = getattr(noise, "sigma", 0.0)
    if isinstance(sigma, Tensor):
        return float(sigma.max())
    return float(sigma)


def gaussian_sigma(noise: Any, solver: str) -> float:
    """The noise level of a Gaussian noise model, for solvers whose update assumes Gaussian noise.

    :raises TypeError: ``noise`` is a Poisson (or other non-Gaussian) model.
    """
    if noise is not None and not isinstance(noise, Real) and (
            not hasattr(noise, "sigma") or getattr(noise, "gain", None) is not None):
        raise TypeError(f"noise: {solver} assumes Gaussian noise (ops.GaussianNoise, a float or None), "
                        f"got {type(noise).__name__}")
    return noise_sigma(noise)


def check_inputs(prior: Any, op: Any, y: Tensor, noise: Any, steps: int, *, needs_prior: bool = True,
                 generator: Generators = None) -> None:
    """Validate a solver's arguments once; every error names the offending argument.

    :param needs_prior: the solver uses ``prior`` (False for the baselines, which pass None).
    :param generator: checked as :func:`solver_generator` would (for solvers that draw nothing, so a
        wrong ``generator`` is refused by every solver alike).
    :raises TypeError: ``op`` not an operator (callable, with ``in_shape`` and ``out_shape``); ``prior``
        None or without a ``denoise`` method where ``needs_prior``; ``y`` not a floating or complex
        tensor; ``noise`` not None, a number or a noise model (bool refused); ``steps`` not an integer
        (bool and float refused).
    :raises ValueError: ``y`` empty, with NaN/inf or not of shape ``(B, *op.out_shape)``; ``prior`` whose
        ``image_shape`` differs from ``op.in_shape``; a negative or non-finite noise level, a non-positive
        or non-finite Poisson gain; ``steps < 1``.
    """
    in_shape, out_shape = getattr(op, "in_shape", None), getattr(op, "out_shape", None)
    if not callable(op) or in_shape is None or out_shape is None:
        raise TypeError(f"op: expected an operator (ops.LinearOperator or ops.Operator, with in_shape and "
                        f"out_shape), got {type(op).__name__}")
    if (needs_prior or prior is not None) and not callable(getattr(prior, "denoise", None)):
        raise TypeError(f"prior: expected a prior with denoise(x, sigma), got {type(prior).__name__}")
    if not isinstance(y, Tensor):
        raise TypeError(f"y: expected a torch.Tensor, got {type(y).__name__}")
    if not (y.is_floating_point() or y.is_complex()):
        raise TypeError(f"y: expected a floating or complex tensor, got {y.dtype}")
    out_shape = tuple(out_shape)
    if y.ndim < 1 or tuple(y.shape[1:]) != out_shape:
        raise ValueError(f"y: expected shape (B, *op.out_shape) = (B, {', '.join(map(str, out_shape))}) "
                         f"for operator {getattr(op, 'name', type(op).__name__)!r}, got {tuple(y.shape)}")
    if y.shape[0] < 1:
        raise ValueError(f"y: expected a batch dimension with at least one measurement, got {tuple(y.shape)}")
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"y: expected finite values, got {'NaN' if bool(torch.isnan(y).any()) else 'inf'}")
    image_shape = getattr(prior, "image_shape", None) if prior is not None else None
    if image_shape is not None and tuple(image_shape) != tuple(in_shape):
        raise ValueError(f"prior: its image_shape {tuple(image_shape)} does not fit the operator's "
                         f"in_shape {tuple(in_shape)}")
    if isinstance(noise, bool) or not (noise is None or isinstance(noise, Real) or hasattr(noise, "sigma")
                                       or hasattr(noise, "gain")):
        raise TypeError(f"noise: expected None, a noise level (a float) or a noise model such as "
                        f"ops.GaussianNoise, got {type(noise).__name__}")
    try:
        level = noise_sigma(noise)
    except (TypeError, ValueError, RuntimeError):
        sigma = getattr(noise, "sigma", None)
        raise TypeError(f"noise: expected a numeric sigma, got {type(sigma).__name__}") from None
    if not math.isfinite(level) or level < 0:
        raise ValueError(f"noise: expected a non-negative, finite noise level, got {level}")
    for name in ("gain",):  # Poisson models: a gain must be positive and finite
        gain = getattr(noise, name, None)
        if isinstance(gain, Real) and not (gain > 0 and math.isfinite(gain)):
            raise ValueError(f"noise: expected a positive, finite {name}, got {gain}")
    positive_int(steps, "steps")
    if generator is not None:
        resolve_generators(generator, y.shape[0], y.device)


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1, or a TypeError / ValueError naming ``name`` (bool and float refused)."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}") from None
    if value < 1:
        raise ValueError(f"{name}: expected at least 1, got {value}")
    return value


def solver_generator(generator: Generators, y: Tensor) -> torch.Generator | list[torch.Generator]:
    """A solver's randomness: ``generator`` itself, one generator per measurement (a sequence of
    ``len(y)``), or a fresh randomly seeded one on ``y``'s device (never the global RNG).

    :raises TypeError, ValueError: naming ``generator``.
    """
    return resolve_generators(generator, y.shape[0], y.device)


def randn(like: Tensor, generator: torch.Generator | list[torch.Generator]) -> Tensor:
    """Standard normal noise shaped like ``like`` (same dtype/device); with one generator per image,
    row ``b`` comes from ``generator[b]`` alone (:func:`priors.random.randn`).

    Drawn on the generator's device and moved, so a CPU generator also drives a CUDA solve. Drawn in
    float32 (5x cheaper than float64 on the CPU, where it was the largest cost around the network)
    and cast: the float64 state needs float64 arithmetic, not 53-bit random draws.
    """
    draw_dtype = torch.float32 if like.dtype in (torch.float64, torch.float32) else like.dtype
    return _randn(like.shape, generator, dtype=draw_dtype).to(device=like.device, dtype=like.dtype)


def float64_start(prior: Any, op: Any, y: Tensor, steps: int, generator: Generators):
    """The float64 set-up of the SVD/prox solvers: ``op`` and ``y`` in float64 (complex128 for complex
    ``y``), the generator(s) (:func:`solver_generator`), ``sigmas = prior.sigmas(steps)`` on ``y``'s
    device and the start ``x = sigmas[0] * n``.

    :returns: ``(op, y, generator, sigmas, x)``.
    """
    op = op.to(dtype=torch.float64)
    y = y.to(torch.complex128 if y.is_complex() else torch.float64)
    generator = solver_generator(generator, y)
    sigmas = prior.sigmas(steps).to(device=y.device, dtype=torch.float64)
    x = sigmas[0] * randn(torch.empty((y.shape[0], *op.in_shape), dtype=torch.float64, device=y.device),
                          generator)
    return op, y, generator, sigmas, x


def real_part(x: Tensor) -> Tensor:
    """The image of a Fourier-based SVD's ``V``: real data come back complex with zero imaginary part."""
    return x.real if x.is_complex() else x


def check_finite(x: Tensor, step: int, sigma: float | Tensor) -> None:
    """Raise :class:`SolverDiverged` if ``x`` holds NaN or inf.

    One reduction (a sum is NaN/inf iff some entry is, barring float overflow, which is divergence
    too) and one host sync per call.
    """
    if not bool(torch.isfinite(x.sum())):
        if isinstance(sigma, Tensor):
            sigma = float(sigma.flatten()[0]) if sigma.numel() else float("nan")
        raise SolverDiverged(step, sigma)

def network_scale(prior: Any) -> float:
    """Width of the network's data range over ours: 2 for a network trained on [-1, 1], else 1.

    Official step sizes and noise levels are quoted in the network's units; this converts them.
    """
    lo, hi = getattr(prior, "data_range", (0.0, 1.0))
    return float(hi - lo)


def operator_norm(op: LinearOperator, like: Tensor, iters: int = 30) -> float:
    """``||A||_2``: the largest singular value, from the SVD where there is one, else by power
    iteration on ``A^H A`` from a fixed start (deterministic, no global RNG)."""
    svd = getattr(op, "svd", None)
    if svd is not None:
        return float(svd.s.max())
    dtype = like.real.dtype if like.is_complex() else like.dtype
    g = torch.Generator().manual_seed(0)
    v = torch.randn((1, *op.in_shape), generator=g, dtype=dtype).to(like.device)
    sigma_sq = 0.0
    for _ in range(iters):
        v = v / v.norm()
        w = op.H(op(v))
        w = w.real if w.is_complex() and not v.is_complex() else w
        sigma_sq = float((v * w).sum().real)
        v = w
    return max(sigma_sq, 0.0) ** 0.5


def unit_norm_problem(op: Any, y: Tensor, noise: Any) -> tuple[Any, Tensor, Any]:
    """``(A / c, y / c, noise / c)`` with ``c = ||A||_2`` when ``c > 1``; the problem unchanged otherwise,
    and for nonlinear operators or non-Gaussian noise (where the rescaling is not a change of units)."""
    if not isinstance(op, LinearOperator) or not isinstance(noise, GaussianNoise):
        return op, y, noise
    c = operator_norm(op, y)
    if c <= 1.0 + 1e-6:
        return op, y, noise
    return (1.0 / c) * op, y / c, GaussianNoise(noise.sigma / c)


#: DDRM's official cut-off for noisy measurements (``ZERO = 3e-2`` in its SVD operators): singular
#: values at most this fraction of the largest count as unmeasured.
NOISY_RCOND = 3e-2


def effective_rcond(rcond: float | None, sigma_y: float) -> float:
    """``rcond`` if given, else :data:`NOISY_RCOND` for noisy y and 0 (keep every s > 0) for exact y."""
    if rcond is None:
        return NOISY_RCOND if sigma_y > 0 else 0.0
    if not 0 <= rcond < 1:
        raise ValueError(f"rcond: expected a fraction in [0, 1), got {rcond}")
    return rcond
