"""RED-Diff: variational posterior sampling with diffusion priors, regularisation by denoising.

Mardani, Song, Kautz, Vahdat, "A Variational Perspective on Solving Inverse Problems with Diffusion
Models", ICLR 2024, Algorithm 1; official code: github.com/NVlabs/RED-diff (``algos/reddiff.py``,
``_configs/algo/reddiff.yaml``).

RED-Diff fits a point mass ``q = delta(mu)`` by Adam on

.. math::

    \\ell(\\mu) = \\tfrac12 \\operatorname{mean}\\lVert y - f(\\mu) \\rVert^2
        + \\lambda_t \\operatorname{mean}\\big(\\operatorname{sg}[\\hat\\epsilon(x_t, t) - \\epsilon]\\, \\mu\\big),
    \\qquad x_t = \\mu + \\sigma_t \\epsilon,

visiting the noise levels from high to low, one network pass per step and no backpropagation through
the network (the stop-gradient ``sg``). In our VE units ``eps_hat - eps = (mu - D(x_t, sigma_t)) / sigma_t``.
The weighting ``lambda_t = lambda * w(sigma_t / alpha_t)`` uses the network's own ``sigma_t / alpha_t``
(VP), which is ``scale * sigma`` for a network on a data range ``scale`` times ours; with it, and
``lr / scale`` for Adam, the iterates are exactly the official ones seen in image units.

Three details follow the official code exactly (issue 13): Adam's ``eps`` is ``1e-8 / scale``, since
our gradients are ``1 / scale`` of the official ones (with 1e-8 the error grew with image size, 8e-3
at 256 px); the data term is averaged over the *measured* entries only (the official inpainting
operator returns only the observed pixels; see :func:`measured_entries`); and the start is the
pseudo-inverse taken in the network's units, which fills unmeasured directions with the network's zero
(0.5 for a [-1, 1] network, 0 for a [0, 1] one; see :func:`initial_mu`).

``official=True`` also visits the official timestep grid, ``range(0, 1000, 1000 // steps)`` reversed
(``utils/functions.py``, ``get_timesteps``), and returns what the official code returns: ``REDDIFF.sample``
gives back ``x0_pred = mu + sigma_x0 * noise`` (``sigma_x0 = 0``), computed at the top of its last
iteration, so the official sample is ``mu`` *before* the last Adam step, and ``main.py`` saves that one.
**Departures kept by default:** we return ``mu`` after the last step (the optimiser's result; on the
equivalence harness's tiny eps-network, 16 px, the two differ by 1.6e-3 relative at 1000 steps for 4x box
SR and 8e-3 for 50% inpainting, 2e-2 to 8e-2 at 10 steps); our grid is
``linspace(999, 0, steps).round()``, shared by every solver; both grids coincide at 1000 steps; at 10 steps, on the equivalence harness's tiny eps-network (16 px,
4x box SR), the final ``mu`` of the two grids differs by 0.21 (relative).

For a Gaussian prior ``N(m, C)`` the expected regulariser gradient at one level is linear in ``mu``,
``lambda_t (C + sigma^2 I)^{-1} (mu - m) sigma / n``: the tests check convergence to the Tikhonov
solution this implies.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import (check_finite, check_inputs, mark_point_estimate, network_scale, randn, solver_generator,
                      unit_norm_problem)
from .official import grid_sigmas, network_zero

#: ``w(sigma_t / alpha_t)`` for each weighting of the official code (``denoise_term_weight``).
WEIGHTINGS: dict[str, Callable[[float], float]] = {
    "snr": lambda s: s,  # the official "linear": sigma_t / alpha_t, the inverse square-root SNR
    "sqrt": math.sqrt,
    "square": lambda s: s * s,
    "const": lambda s: 1.0,
}


class Adam:
    """Adam (Kingma & Ba 2015, Alg. 1) on one tensor, updated in place; betas (0.9, 0.99) as the official
    code sets them, eps 1e-8 (PyTorch's default, which the official code uses on its network-unit
    gradients; :func:`red_diff` passes ``1e-8 / scale`` for ours)."""

    def __init__(self, param: Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-8):
        self.param, self.lr, self.betas, self.eps, self.t = param, lr, betas, eps, 0
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)

    def step(self, grad: Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self.v / (1 - b2**self.t)).sqrt_().add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-self.lr / (1 - b1**self.t))


def measured_entries(op: Any, y: Tensor) -> int:
    """The number of entries of one measurement that carry data: the official data term's mean runs
    over these.

    The official inpainting operator returns only the observed pixels (``H(x)`` has one entry per kept
    pixel), so its ``mean`` divides by their number; ours keeps the image's shape with zeros in the
    holes. In order: an operator's own ``n_measured`` (an int per sample, for any operator that pads
    its output); a sampling mask ``op.mask`` (``ops.Inpainting``, ``ops.MRI``: y's entries where the
    mask, broadcast to ``op.out_shape``, is non-zero); otherwise every entry of ``y``. For SR, blur
    and dense operators this is ``y[0].numel()``, as before.
    """
    declared = getattr(op, "n_measured", None)
    if declared is not None:
        return int(declared)
    mask = getattr(op, "mask", None)
    out_shape = tuple(getattr(op, "out_shape", ()) or ())
    if isinstance(mask, Tensor) and out_shape:
        try:
            full = mask.expand(out_shape)
        except RuntimeError:
            full = None
        if full is not None:
            return max(int((full != 0).sum()), 1)
    return y[0].numel()


def observation_grad(op: Any, y: Tensor, mu: Tensor, m: int | None = None) -> Tensor:
    """Gradient of ``sum(|y - f(mu)|^2) / (2 m)`` per sample, ``m`` the measured entries
    (:func:`measured_entries`; default every entry of ``y[0]``)."""
    m = y[0].numel() if m is None else m
    work = mu.detach().to(y.real.dtype)
    if hasattr(op, "H"):
        return (op.H(op(work) - y) / m).to(mu.dtype)
    with torch.enable_grad():
        work.requires_grad_(True)
        loss = ((op(work) - y).abs() ** 2).sum() / (2 * m)
        return torch.autograd.grad(loss, work)[0].to(mu.dtype)


# Singular values below 3% of the largest are dropped from the pseudo-inverse start, as the official
# code's SVD operators do for deblurring (DDRM's ZERO = 3e-2); otherwise noise divided by tiny singular
# values swamps the start.
PINV_RCOND = 3e-2


def initial_mu(op: Any, y: Tensor, x_init: Tensor | None, zero: float = 0.0) -> Tensor:
    """``x_init``, else Alg. 1's initialisation: the truncated pseudo-inverse taken in the network's units.

    The official ``H^+ y_net`` on network data ``x_net = lo + w x`` is, in our units,
    ``A^+ y + z (1 - A^+ A 1)`` with ``z = -lo / w`` the network's zero (``zero``): unmeasured
    directions start at ``z``, 0.5 for a [-1, 1] network (the official inpainting start), 0 for a
    [0, 1] one; where constants are measured (SR by box averaging, normalised blurs) it is ``A^+ y``.
    """
    if x_init is not None:
        return x_init
    if hasattr(op, "pinv"):
        mu = op.pinv(y, rcond=PINV_RCOND)
        if zero != 0.0:
            one = torch.ones((1, *op.in_shape), dtype=y.real.dtype, device=y.device)
            mu = mu + zero * (one - op.pinv(op(one), rcond=PINV_RCOND))
        return mu
    raise ValueError(f"x_init: operator {getattr(op, 'name', type(op).__name__)!r} has no pinv; pass "
                     "x_init= (e.g. the official phase-retrieval initialisation |F^-1 y| cropped)")


def red_diff(
    prior: Any,
    op: Any,
    y: Tensor,
    noise: Any,
    *,
    steps: int = 1000,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    lam: float = 0.25,
    lr: float = 0.1,
    weighting: str = "snr",
    obs_weight: float = 1.0,
    x_init: Tensor | None = None,
    average: str = "measured",
    official: bool = False,
) -> Tensor:
    """RED-Diff (Mardani et al. 2024, Alg. 1) with the official defaults.

    :param steps: noise levels visited, ``prior.sigmas(steps)`` without its final 0, high to low.
    :param lam: ``lambda`` (official ``grad_term_weight`` 0.25).
    :param lr: Adam's step in the network's units (official 0.1 in the config, 0.5 in the README
        example); Adam betas (0.9, 0.99) as in the official code.
    :param weighting: ``"snr"`` (``lambda * sigma_t / alpha_t``, the paper's code default), ``"sqrt"``,
        ``"square"`` or ``"const"``.
    :param obs_weight: weight of the data term (official 1).
    :param x_init: the starting ``mu``; default the pseudo-inverse in the network's units
        (:func:`initial_mu`), required for operators without ``pinv``.
    :param average: what the data term's mean runs over: ``"measured"`` entries (the official
        ``inp_*`` masks, whose operator returns the kept pixels only; :func:`measured_entries`) or
        ``"all"`` entries of ``y`` (the official ``in2_*`` masks, ``Inpainting2``, which keep zeros in
        the holes, as in the README's freeform example). They differ only for masks.
    :param official: visit the official grid ``range(0, 1000, 1000 // steps)`` (needs a DDPM network
        prior) and return the official output, ``mu`` before the last Adam step (module docstring);
        everything else already follows the official code.
    :returns: ``mu`` (``official``: before its last step), in the precision of y (the state runs in float64).
    """
    check_inputs(prior, op, y, noise, steps)
    op, y, noise = unit_norm_problem(op, y, noise)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {sorted(WEIGHTINGS)}, got {weighting!r}")
    weight = WEIGHTINGS[weighting]
    scale = network_scale(prior)
    sigmas = (grid_sigmas(prior, steps, "stride") if official else prior.sigmas(steps)).tolist()[:-1]
    generator = solver_generator(generator, y)
    if average not in ("measured", "all"):
        raise ValueError(f"average: expected 'measured' or 'all', got {average!r}")
    n, m = math.prod(op.in_shape), (measured_entries(op, y) if average == "measured" else y[0].numel())
    mu = initial_mu(op, y, x_init, network_zero(prior)).detach().to(torch.float64).clone()
    adam = Adam(mu, lr / scale, eps=1e-8 / scale)  # the official Adam on gradients scale times ours
    for i, sigma in enumerate(sigmas):
        x_t = mu + sigma * randn(mu, generator)
        with torch.no_grad():
            x0_hat = prior.denoise(x_t, sigma)
        if callback is not None:  # x: the x_t = mu + sigma eps it denoised; mu: the iterate before this step
            callback(dict(i=i, x=x_t, sigma=sigma, x0_hat=x0_hat, mu=mu.clone()))  # mu changes in place
        lam_t = lam * weight(scale * sigma) / scale  # the official ratio of the two terms, in our units
        grad = obs_weight * observation_grad(op, y, mu, m) + (lam_t / (sigma * n)) * (mu - x0_hat)
        if official and i == len(sigmas) - 1:
            out = mu.clone()  # the official x0_pred of the last iteration, taken before its Adam step
        adam.step(grad)
        check_finite(mu, i, sigma)
    return (out if official else mu).to(y.real.dtype)


mark_point_estimate(red_diff)
