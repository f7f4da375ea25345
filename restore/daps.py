"""DAPS: Decoupled Annealing Posterior Sampling.

Zhang, Chu, Berner, Meng, Anandkumar, Song, "Improving Diffusion Inverse Problem Solving with
Decoupled Noise Annealing", CVPR 2025 (arXiv 2407.01521), Algorithm 1; official code:
github.com/zhangbingliang2019/DAPS (``sampler.py``, ``cores/mcmc.py``; pixel-space configs in
``configs/sampler/edm_daps.yaml`` and ``configs/task/*.yaml``).

Each annealing level ``sigma_t`` (EDM schedule, sigma_max down to sigma_min):

1. ``x0_hat(x_t)``: a few Euler steps of the probability-flow ODE from ``sigma_t`` to 0;
2. ``x0 ~ p(x0 | x_t, y)`` approximated by Langevin dynamics on
   ``log N(x0; x0_hat, r_t^2 I) + log p(y | x0)``, started at ``x0_hat``;
3. ``x_{t-1} = x0 + sigma_{t-1} n``.

Official hyper-parameters are quoted on the network's data range ([-1, 1]); here they are converted to
image units with the prior's data range (noise levels / scale, Langevin step / scale^2).

``official=True`` reproduces the official sampler (``sampler.py``, ``cores/scheduler.py``,
``cores/mcmc.py``) where our default departs from it:

* annealing levels: the official ``EDMScheduler(num_steps=N)`` builds an ``N + 1``-point rho=7 grid
  from sigma_max to sigma_min and *drops its last point* (``discretize``: ``time_steps[:-1]``), so it
  never visits sigma_min; ours visits ``N`` points ending at sigma_min;
* the PF-ODE for ``x0_hat`` takes ``ode_steps`` Euler steps from ``sigma_t`` down to ``ode_sigma_min``
  and stops there; ours takes ``ode_steps - 1`` Euler steps to ``ode_sigma_min`` and then the denoiser
  (a last step to 0). This alone made the 0.21 relative difference of issue 13 (200 levels x 100
  Langevin steps); ours is the clean Tweedie estimate at the end of the ODE;
* the Langevin step decays with ``i / (N + 1)`` (``step / annealing_scheduler.num_steps``); ours ``i / N``,
  which reaches ``lr * lr_min_ratio`` at the last level as the paper describes;
* the start ``x_T = sigma_max n`` in network units, centred on the network's zero (0.5 in image
  units for a [-1, 1] network); ours is centred on 0.

Measured on the equivalence harness (a tiny random eps-network, 16 px, the official ``DAPS.sample`` on the
same network and noise): ``official=True`` against the official code 1.3e-7 (4x box SR) and 9e-8 (50%
inpainting) at 20 levels x 20 Langevin steps, 4.9e-7 and 3.7e-7 at the official 200 x 100, which is their
float32 floor (their code in float32 against itself in float64); 2e-15 with both sides in float64. Our
default against it: 0.12 and 8e-2 at 20 x 20, 2e-2 at 200 x 100.

The official DDPM checkpoints are told the noise level through the continuous VP SDE
(``model/precond.py``, ``VPPrecond``: ``t = 999 * t_VP(sigma)``), not the discrete table our
``DiscreteVP`` interpolates: to reproduce the official numbers with those checkpoints, wrap them with
that conditioning (a prior property, not the solver's).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from priors.schedules import karras

from ._common import check_finite, check_inputs, network_scale, randn, solver_generator, unit_norm_problem
from .official import network_zero

#: Official Langevin step sizes ``lr`` per task (pixel-space DAPS-1K, network units; tau = 0.01 for all);
#: :func:`restore.official.official_hyper` ("daps", task) gives them with their sources and the rest.
#: ``lr * 2 / tau^2`` is the step times the data term's curvature, ~2 for ||A|| = 1: the official
#: settings sit at unadjusted Langevin's stability edge, so scale ``lr`` by ``1 / ||A||^2`` elsewhere.
LR = {"super_resolution": 1e-4, "gaussian_blur": 1e-4, "motion_blur": 5e-5, "inpainting_box": 5e-5,
      "inpainting_random": 1e-4, "phase_retrieval": 5e-5, "nonlinear_blur": 1e-5, "hdr": 2e-5}


def ode_x0(prior: Any, x: Tensor, sigma: float, ode_steps: int, sigma_min: float, official: bool = False) -> Tensor:
    """``x0_hat``: Euler steps of ``dx/dsigma = (x - D(x, sigma)) / sigma`` from ``sigma`` to 0.

    The levels follow Karras' rho=7 spacing down to ``sigma_min`` and then 0, so the last Euler step
    is the denoiser itself; one step is Tweedie's ``D(x, sigma)``. ``official``: ``ode_steps`` Euler
    steps on ``ode_steps + 1`` levels from ``sigma`` to ``sigma_min``, ending there (no step to 0).
    """
    if official:
        levels = karras(ode_steps + 1, min(sigma_min, sigma / 2), sigma).tolist()[:-1]
    else:
        levels = karras(ode_steps, min(sigma_min, sigma / 2), sigma).tolist() if ode_steps > 1 else [sigma, 0.0]
    for s, s_next in zip(levels[:-1], levels[1:]):
        x = x + (s_next - s) / s * (x - prior.denoise(x, s))
    return x


def data_grad(op: Any, y: Tensor, noise: Any, x: Tensor, tau: float | None) -> Tensor:
    """Gradient of the data term ``-log p(y | x)``.

    With ``tau`` (the official parametrisation): ``||A(x) - y||^2 / tau^2``. With ``tau=None``: the
    noise model's own negative log-likelihood ``noise.nll``, i.e. the exact likelihood.
    Linear operators use ``A^H``; others autograd.
    """
    work = x.detach().to(y.real.dtype)
    if hasattr(op, "H"):
        y_pred = op(work)
        r = noise.nll_grad(y, y_pred) if tau is None else 2 * (y_pred - y) / tau**2
        return op.H(r).to(x.dtype)
    with torch.enable_grad():
        work.requires_grad_(True)
        y_pred = op(work)
        loss = noise.nll(y, y_pred).sum() if tau is None else ((y_pred - y).abs() ** 2).sum() / tau**2
        return torch.autograd.grad(loss, work)[0].to(x.dtype)


def langevin(op: Any, y: Tensor, noise: Any, x0_hat: Tensor, r: float, *, n_steps: int, lr: float,
             tau: float | None, generator: torch.Generator) -> Tensor:
    """Unadjusted Langevin on ``p(x0 | x_t, y)`` with ``p(x0 | x_t) ~ N(x0_hat, r^2 I)``, from ``x0_hat``.

    ``x <- x + lr * grad log p + sqrt(2 lr) n``.
    """
    x = x0_hat
    for _ in range(n_steps):
        score = (x0_hat - x) / r**2 - data_grad(op, y, noise, x, tau)
        x = x + lr * score + (2 * lr) ** 0.5 * randn(x, generator)
    return x


def daps(
    prior: Any,
    op: Any,
    y: Tensor,
    noise: Any,
    *,
    steps: int = 200,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    ode_steps: int = 5,
    langevin_steps: int = 100,
    lr: float = 1e-4,
    lr_min_ratio: float = 0.01,
    tau: float | None = 0.01,
    sigma_max: float = 100.0,
    sigma_min: float = 0.1,
    ode_sigma_min: float = 0.01,
    r: Callable[[float], float] | None = None,
    official: bool = False,
) -> Tensor:
    """Decoupled annealing posterior sampling (Zhang et al. 2025, Alg. 1); official defaults (DAPS-1K).

    Noise levels, ``tau`` and ``lr`` are in the network's units as in the official configs (see
    :data:`LR` per task) and are converted with the prior's data range.

    :param steps: annealing levels (official 200).
    :param ode_steps: Euler steps of the PF-ODE for ``x0_hat`` (official 5; 1 gives Tweedie's mean).
    :param langevin_steps: Langevin steps per level (official 100); ``lr`` decays linearly over the
        annealing to ``lr * lr_min_ratio``.
    :param tau: the official data-term temperature, ``||A(x) - y||^2 / tau^2`` (0.01 whatever the noise);
        ``None`` uses the noise model's exact likelihood ``noise.nll`` instead.
    :param r: ``r_t`` as a function of the annealing level (image units); default ``r_t = sigma_t``
        (the official ``prior_solver="gaussian"``).
    :param official: the official annealing grid, ODE, step-size decay and start (module docstring).
    :returns: one sample per measurement, in the precision of y (the state itself runs in float64).
    """
    check_inputs(prior, op, y, noise, steps)
    # DAPS anneals on its own grid but starts from pure noise: a denoiser without a diffusion schedule
    # (FFDNet, trained up to 75/255) raises here rather than being silently started at its top level
    if hasattr(prior, "sigmas"):
        prior.sigmas(1)
    op, y, noise = unit_norm_problem(op, y, noise)
    scale = network_scale(prior)
    top = min(sigma_max / scale, prior.sigma_max)
    bottom = min(sigma_min / scale, top / 2)
    if official:  # N + 1 levels, the last dropped, then 0
        sigmas = karras(steps + 1, bottom, top).tolist()[:steps] + [0.0]
    else:
        sigmas = karras(steps, bottom, top).tolist() if steps > 1 else [top, 0.0]
    tau_img = tau / scale if tau is not None else None
    generator = solver_generator(generator, y)
    x = sigmas[0] * randn(y.new_empty((y.shape[0], *op.in_shape), dtype=torch.float64), generator)
    if official:
        x = x + network_zero(prior)
    decay = steps + 1 if official else steps
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        with torch.no_grad():
            x0_hat = ode_x0(prior, x, sigma, ode_steps, ode_sigma_min / scale, official)
        if callback is not None:
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x0_hat))
        step = lr / scale**2 * (1 + i / decay * (lr_min_ratio - 1))
        r_t = r(sigma) if r is not None else sigma
        x0 = langevin(op, y, noise, x0_hat, r_t, n_steps=langevin_steps, lr=step, tau=tau_img,
                      generator=generator)
        x = x0 + sigma_next * randn(x0, generator) if sigma_next > 0 else x0
        check_finite(x, i, sigma)
    return x.to(y.real.dtype)
