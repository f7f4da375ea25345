"""PiGDM: pseudoinverse-guided diffusion models.

Song, Vahdat, Mardani, Kautz, "Pseudoinverse-Guided Diffusion Models for Inverse Problems", ICLR 2023,
Algorithm 1 and the noisy-measurement guidance of Sec. 3; official code: github.com/NVlabs/RED-diff
(``algos/pgdm.py``, ``_configs/algo/pgdm.yaml``).

PiGDM approximates ``p(x0 | x_t)`` by ``N(x0_hat, r_t^2 I)``, which makes the likelihood of a linear
measurement ``y = H x0 + sigma_y e`` Gaussian, and guides by its gradient, a vector-Jacobian product
through the network:

.. math::

    g = \\Big(\\frac{\\partial \\hat x_0}{\\partial x_t}\\Big)^\\top H^\\top
        (r_t^2 H H^\\top + \\sigma_y^2 I)^{-1} (y - H \\hat x_0).

We add ``g`` to the score (``E[x0 | x_t, y] = x0_hat + sigma_t^2 g``) and take a DDIM step with that
conditional denoiser. With ``sigma_y = 0``, ``H^T (r^2 H H^T)^{-1} = H^+ / r^2``: the paper's
pseudoinverse form. ``H^T (r^2 H H^T + sigma_y^2 I)^{-1}`` is computed as ``prox(0, ., sigma_y^2/r^2) / r^2``
(push-through identity), so any operator with a closed-form or CG prox / pinv works, SVD or not.

The official code adds the guidance with a hand-set coefficient ``sqrt(abar_s) sqrt(abar_t)`` on the VP
state; adding it to the score as above is the paper's derivation, and is exact for Gaussian data of
the assumed variance (tested against the closed-form posterior).

``official=True`` runs the official loop instead (``algos/pgdm.py``, ``awd=True``), noiseless
pseudo-inverse guidance whatever ``sigma_y``: on the grid ``range(0, 1000, 1000 // steps)``, from
``x_T = A^+ y + sigma_T n`` (the pseudo-inverse in network units, :func:`restore.red_diff.initial_mu`),

.. math:: x_{s} = \\hat x_0 + w\\,J^\\top A^+(y - A\\hat x_0) + \\sqrt{\\sigma_s^2 - c^2}\\,\\hat\\epsilon + c z,

with ``J = d x0_hat / d x_t``, the network's own ``eps_hat`` (not recomputed from the guided estimate)
and, for inpainting (the official ``in2`` degradations), the observed pixels of ``x0_hat`` replaced by
y's and the guidance kept to the holes. **Departure kept by default:** ours is the paper's
noise-aware guidance above, exact for Gaussian data; the official coefficient (``w = 1`` in image
units, no ``r_t``) ignores the measurement noise and the DDIM direction from the unguided estimate.
``official=True`` against the official ``PGDM.sample`` on the equivalence harness (a tiny random
eps-network, 16 px, same noise): 4e-7 (4x box SR) and 8e-7 (50% inpainting) at 20 steps, their float32
floor; 6e-16 with both sides in float64. (On that random network our default diverges: its guidance
``sigma_t^2 J^T ...`` leans on ``J`` shrinking like a denoiser's Jacobian, which a random network's
does not.)

``ddim_eta`` is DDIM's eta (0: deterministic, 1: DDPM's ancestral variance), not DDRM's ``eta`` (the
share of fresh noise per step in :func:`restore.ddrm.ddrm`); it was called ``eta`` before issue 12.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from operators import Inpainting

from ._common import check_finite, check_inputs, gaussian_sigma, network_scale, randn, solver_generator
from .official import grid_sigmas, network_zero
from .red_diff import initial_mu


def pigdm_direction(op: Any, residual: Tensor, r2: float, sigma_y: float) -> Tensor:
    """``H^T (r^2 H H^T + sigma_y^2 I)^{-1} residual`` in image space."""
    if sigma_y > 0:
        zero = residual.new_zeros((residual.shape[0], *op.in_shape), dtype=residual.real.dtype)
        return op.prox(zero, residual, sigma_y**2 / r2) / r2
    return op.pinv(residual) / r2


def ddim_step(x: Tensor, x0: Tensor, sigma: float, sigma_next: float, ddim_eta: float, z: Tensor | None,
              eps: Tensor | None = None) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12) in VE form: ``x' = x0 + sqrt(s'^2 - c^2) eps_hat + c z``.

    ``c = ddim_eta * s' sqrt(s^2 - s'^2) / s``; ``ddim_eta = 1`` is DDPM's ancestral step, 0 the ODE.
    ``eps_hat = (x - x0) / s`` unless given.
    """
    c = ddim_eta * sigma_next * (sigma**2 - sigma_next**2) ** 0.5 / sigma
    eps = (x - x0) / sigma if eps is None else eps
    x_next = x0 + (sigma_next**2 - c**2) ** 0.5 * eps
    if c > 0:
        x_next = x_next + c * z
    return x_next


def pigdm(
    prior: Any,
    op: Any,
    y: Tensor,
    noise: Any,
    *,
    steps: int = 100,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    ddim_eta: float = 0.0,
    guidance: float = 1.0,
    data_var: float | None = None,
    official: bool = False,
) -> Tensor:
    """Pseudoinverse-guided sampling (Song et al. 2023, Alg. 1).

    :param op: a linear operator (``op.prox`` / ``op.pinv`` are used; CG by default).
    :param noise: Gaussian noise (``sigma_y`` in image units), or ``None`` for noiseless.
    :param ddim_eta: DDIM's eta, the stochasticity of each step (official ``eta``: 0).
    :param guidance: multiplies ``g`` (the official ``grad_term_weight``, 1).
    :param data_var: the data variance ``v`` behind ``r_t^2 = v sigma^2 / (v + sigma^2)``; default unit
        variance on the network's data range (the paper's ``r_t^2 = sigma_t^2 / (1 + sigma_t^2)``), i.e.
        ``1 / scale^2`` in our units (1/4 for a network on [-1, 1]).
    :param official: the official loop (module docstring); needs a DDPM network prior and ``op.pinv``.
    :returns: one sample per measurement, in the precision of y (the state itself runs in float64).
    """
    check_inputs(prior, op, y, noise, steps)
    if not hasattr(op, "H"):
        raise TypeError(f"op: pigdm needs a linear operator (with .H, .pinv, .prox), got {type(op).__name__}")
    sigma_y = gaussian_sigma(noise, "pigdm")
    v = data_var if data_var is not None else 1.0 / network_scale(prior) ** 2
    sigmas = (grid_sigmas(prior, steps, "stride") if official else prior.sigmas(steps)).tolist()
    generator = solver_generator(generator, y)
    work_dtype = y.real.dtype
    x = sigmas[0] * randn(y.new_empty((y.shape[0], *op.in_shape), dtype=torch.float64), generator)
    mask = getattr(op, "mask", None) if official and isinstance(op, Inpainting) else None
    if official:
        x = x + initial_mu(op, y, None, network_zero(prior)).to(x.dtype)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        with torch.enable_grad():  # the VJP through the network, also when called under no_grad
            x_t = x.requires_grad_(True)
            x0 = prior.denoise(x_t, sigma)
        with torch.no_grad():
            residual = y - op(x0.to(work_dtype))
            if official:
                direction = op.pinv(residual)
            else:
                direction = pigdm_direction(op, residual, v * sigma**2 / (v + sigma**2), sigma_y)
        (g,) = torch.autograd.grad(x0, x_t, grad_outputs=direction.to(x0.dtype))
        x = x_t.detach()
        eps = None
        if official:
            x0 = x0.detach()
            eps = (x - x0) / sigma  # the network's eps_hat, before the guidance and replacement
            if mask is not None:
                keep = mask.to(device=x0.device, dtype=x0.dtype)
                x0, g = x0 * (1 - keep) + y.to(x0.dtype) * keep, g * (1 - keep)
            x0_y = x0 + guidance * g
        else:
            x0_y = x0.detach() + (guidance * sigma**2) * g
        if callback is not None:  # x0_hat: the guided estimate E[x0 | x_t, y] the step uses
            callback(dict(i=i, x=x, sigma=sigma, x0_hat=x0_y))
        z = randn(x0_y, generator) if ddim_eta > 0 and sigma_next > 0 else None
        x = ddim_step(x, x0_y, sigma, sigma_next, ddim_eta, z, eps)
        check_finite(x, i, sigma)
    return x.to(y.real.dtype)
