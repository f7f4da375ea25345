"""MCGDiff: Monte Carlo guided diffusion for Bayesian linear inverse problems.

Cardoso, Janati, Le Corff, Moulines, "Monte Carlo guided Diffusion for Bayesian linear inverse
problems", ICLR 2024: Algorithm 1 (noiseless y) and its noisy extension (Section 3.2, the observation
seen as a noiseless observation of the diffusion at the time whose noise level matches it).

Everything happens in the operator's spectral coordinates :math:`\\bar x = V^T x`,
:math:`\\bar y = S^+ U^T y`, where measured coordinate ``i`` sees :math:`\\bar y_i = \\bar x_{0,i} +
c_i \\varepsilon_i` with :math:`c_i = \\sigma_y / s_i`. In the VE parametrisation of this toolbox
(:math:`x_t = x_0 + \\sigma_t n`, the paper's :math:`x_t / \\sqrt{\\bar\\alpha_t}`) the paper's potentials
:math:`g_t(x_t) = \\mathcal N(\\sqrt{\\bar\\alpha_t}\\,y;\\ x_t^{obs},\\ 1-\\bar\\alpha_t)` become, up to a
constant, :math:`g_t(\\bar x) = \\prod_{i:\\ c_i < \\sigma_t} \\mathcal N(\\bar y_i;\\ \\bar x_i,\\ \\sigma_t^2 - c_i^2)`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from priors.random import Generators

from ._common import check_finite, check_inputs, gaussian_sigma, solver_generator
from ._smc import check_smc, cloud_randn, denoise_chunked, finish, kernel_variance, mark_cloud, resample

__all__ = ["mcgdiff", "spectral_problem", "release"]


def spectral_problem(op: Any, y: Tensor, noise: Any, solver: str) -> tuple[Any, Any, Tensor, Tensor, float]:
    """``(op64, svd, y_bar, c, sigma_y)`` for the spectral SMC solvers, or the error that says why not.

    ``c`` is the noise level of ``y_bar`` per coordinate: ``sigma_y / s_i`` where measured, ``inf``
    where ``s_i = 0``.

    :raises TypeError: ``noise`` is not Gaussian.
    :raises ValueError: ``op`` is nonlinear, has no SVD, or a complex (Fourier) one.
    """
    from operators import LinearOperator

    sigma_y = gaussian_sigma(noise, solver)
    name = getattr(op, "name", type(op).__name__)
    if not isinstance(op, LinearOperator):
        raise ValueError(f"op: {solver} needs a linear operator with an SVD (op.svd); {name!r} is nonlinear, "
                         "use tds")
    op = op.to(dtype=torch.float64)
    svd = op.svd
    if svd is None:
        raise ValueError(f"op: {solver} needs the operator's singular value decomposition, but {name!r} has "
                         "op.svd = None; use tds, which needs only op(x)")
    if svd.complex:
        raise ValueError(f"op: {solver} needs a real SVD, but {name!r} has a Fourier (complex) one; use tds")
    s = svd.s.to(torch.float64)
    uty = svd.Ut(y.to(torch.float64))
    measured = s > 0
    y_bar = torch.where(measured, uty / torch.where(measured, s, 1.0), torch.zeros_like(uty))
    c = torch.where(measured, sigma_y / torch.where(measured, s, 1.0), torch.full_like(s, float("inf")))
    return op, svd, y_bar, c, sigma_y


def _log_normal(r: Tensor, var: Tensor, active: Tensor) -> Tensor:
    """``sum_i -r_i^2 / (2 var_i)`` over the ``active`` coordinates, (B, P); constants dropped."""
    q = torch.where(active, r ** 2 / torch.where(active, var, 1.0), torch.zeros_like(r))
    return -0.5 * q.sum(-1)


def release(x_bar: Tensor, x0_bar: Tensor, y_bar: Tensor, c: Tensor, released: Tensor, sigma: float,
            sigma_next: float, kernel_var: float, z: Tensor) -> tuple[Tensor, Tensor]:
    r"""The step from ``sigma`` to ``sigma_next`` of the coordinates whose level ``c`` lies in between:
    split at ``c``, where ``y_bar`` is a noiseless observation of the diffusion, ``x_c = y_bar`` with
    weight factor :math:`\mathcal N(\bar y; m^c, v^c)`, then the kernel from ``c`` to ``sigma_next`` with
    the same ``x0_bar``. Returns the new coordinates (meaningful where ``released``) and the log-weight
    factor ``(B, P)``; at ``c = 0`` (noiseless, the last step) ``y_bar`` itself, not reweighted (its
    factor is degenerate)."""
    c_safe = torch.where(released & (c > 0), c, 1.0)
    m_c = x0_bar + (c_safe ** 2 / sigma ** 2) * (x_bar - x0_bar)
    log_w = _log_normal(y_bar - m_c, kernel_variance(sigma, c_safe, kernel_var), released & (c > 0))
    r_c = sigma_next ** 2 / c_safe ** 2
    x_rel = torch.where(c > 0, x0_bar + r_c * (y_bar - x0_bar)
                        + kernel_variance(c_safe, sigma_next, kernel_var).clamp_min(0).sqrt() * z, y_bar)
    return x_rel, log_w


@torch.no_grad()
def mcgdiff(prior: Any, op: Any, y: Tensor, noise: Any = None, *, steps: int = 100,
            generator: Generators = None, callback: Callable[[dict], None] | None = None,
            particles: int = 16, chunk: int | None = None, ess_threshold: float = 0.5,
            resampling: str = "systematic", return_cloud: bool = False, sigma_on: float | None = None,
            kernel_var: float = 0.5) -> Tensor:
    r"""Sample ``x`` given ``y = A x + n``, ``n ~ N(0, sigma_y^2 I)`` (or ``sigma_y = 0``), with MCGDiff.

    A particle filter over the spectral coordinates :math:`\bar x` (Cardoso et al. 2024, Alg. 1). From
    :math:`\sigma = \sigma_k` to :math:`\sigma' = \sigma_{k+1}` the backward kernel is
    :math:`p(\bar x' \mid \bar x) = \mathcal N(m, v)`, :math:`m = \hat{\bar x}_0 + (\sigma'^2/\sigma^2)
    (\bar x - \hat{\bar x}_0)` (DDPM's mean), :math:`v` set by ``kernel_var`` (DDPM's
    :math:`\sigma'^2(\sigma^2-\sigma'^2)/\sigma^2` at 0, the paper's), :math:`\hat{\bar x}_0 = V^T D(x, \sigma)`,
    and each coordinate takes one of:

    * still observed (:math:`c_i < \sigma'`): the proposal :math:`\propto p(\bar x'_i\mid\bar x)\,
      \mathcal N(\bar y_i; \bar x'_i, \sigma'^2 - c_i^2)` (Gaussian, gain :math:`K = v/(v + \sigma'^2 - c_i^2)`),
      weight factor :math:`\mathcal N(\bar y_i; m_i, v + \sigma'^2 - c_i^2) / g_{\sigma,i}(\bar x_i)`;
    * released in this step (:math:`\sigma' \le c_i < \sigma`, the paper's :math:`\tau_i`): the kernel is
      split at the level :math:`c_i` where :math:`\bar y_i` is an exact observation of the diffusion:
      :math:`\bar x_i` at :math:`c_i` is set to :math:`\bar y_i` (weight factor
      :math:`\mathcal N(\bar y_i; m^{c}_i, v^{c}) / g_{\sigma,i}(\bar x_i)`), then brought to
      :math:`\sigma'` by the kernel with the same :math:`\hat{\bar x}_0`;
    * free (:math:`c_i \ge \sigma`, or :math:`s_i = 0`): :math:`\bar x'_i = m_i + \sqrt v\, z_i`.

    Departures from the paper: the release of a noisy coordinate happens at its exact level
    :math:`c_i` inside a step (no rounding of :math:`\tau_i` to the grid, no extra network call); the
    last step (to :math:`\sigma = 0`) of a noiselessly observed coordinate has a degenerate weight
    :math:`\delta(\bar y_i - \hat{\bar x}_{0,i})`, so it is set to :math:`\bar y_i` and not reweighted
    (an error of order ``sigma_min``); a coordinate noisier than the start (:math:`c_i \ge \sigma_{max}`)
    is treated as unmeasured. The start is :math:`\mathcal N(0, \sigma_{max}^2)` tilted by
    :math:`g_{\sigma_{max}}`, as every solver here starts from :math:`\mathcal N(0, \sigma_{max}^2)`. The
    kernel's variance is by default the midpoint between DDPM's and Euler-Maruyama's
    (:mod:`restore._smc`: DDPM's under-disperses at a hundred steps).

    :param prior: denoiser ``D(x, sigma)``, schedule ``prior.sigmas(steps)``.
    :param op: linear operator with a real ``op.svd`` (``ops.Matrix``, ``ops.Inpainting``, ...).
    :param y: measurement ``(B, *op.out_shape)``.
    :param noise: Gaussian noise model, its sigma, or ``None`` (noiseless).
    :param steps: diffusion steps; the network runs ``steps * particles`` times per measurement.
    :param callback: called before each step with ``dict(i, x, sigma, x0_hat, log_weights)``; ``x`` and
        ``x0_hat`` are the clouds ``(B, particles, *op.in_shape)``, ``log_weights`` ``(B, particles)``.
    :param particles: particles per measurement (one cloud per row of ``y``).
    :param chunk: at most this many particles per denoiser call (memory); default all at once.
    :param ess_threshold: resample a cloud when its ESS falls below ``ess_threshold * particles``.
    :param resampling: ``"systematic"`` or ``"multinomial"``.
    :param sigma_on: the potentials start at the first level ``sigma <= sigma_on`` (their first factor is
        the predictive weight of that step); ``None`` (default): from the start, as in the paper. Above the
        data's scale the potentials only cost effective sample size (the prior's kernel contracts towards
        its mean while :math:`g_\sigma` pulls towards :math:`\bar y`), so a ``sigma_on`` of a few data
        scales keeps more particles alive; the target is the same.
    :param kernel_var: the backward kernel's variance, :math:`\lambda` in :func:`restore._smc.kernel_variance`:
        0 DDPM's (the paper's), 1 Euler-Maruyama's, 0.5 (default) their midpoint.
    :param return_cloud: return the whole equally weighted cloud ``(B, particles, *op.in_shape)``
        instead of one particle per row (what :func:`restore.posterior` uses).
    :returns: ``(B, *op.in_shape)`` (one particle per row, drawn by weight), in the real dtype of ``y``.
    :raises ValueError: ``op`` nonlinear, without SVD or with a complex one; bad arguments.
    :raises TypeError: non-Gaussian ``noise``.
    """
    check_inputs(prior, op, y, noise, steps)
    check_smc(particles, chunk, ess_threshold, resampling, kernel_var)
    op, svd, y_bar, c, _ = spectral_problem(op, y, noise, "mcgdiff")
    generator = solver_generator(generator, y)
    sigmas = prior.sigmas(steps).to(device=y.device, dtype=torch.float64).tolist()
    batch, n = y_bar.shape
    shape = tuple(op.in_shape)
    y_bar = y_bar[:, None, :]  # (B, 1, n) against the cloud (B, P, n)

    def to_image(xb: Tensor) -> Tensor:
        return svd.V(xb.reshape(-1, n)).reshape(batch, particles, *shape)

    def to_spectral(x: Tensor) -> Tensor:
        return svd.Vt(x.reshape(-1, *shape)).reshape(batch, particles, n)

    # start: N(0, sigma_0^2) tilted by g_{sigma_0} on the coordinates observed at sigma_0
    on = float("inf") if sigma_on is None else float(sigma_on)
    if not on > 0:
        raise ValueError(f"sigma_on: expected a positive noise level or None, got {sigma_on!r}")
    s0 = sigmas[0]
    obs = (c < s0) & (s0 <= on)
    u0 = torch.where(obs, s0 ** 2 - c ** 2, 1.0)
    gain0 = s0 ** 2 / (s0 ** 2 + u0)
    z = cloud_randn(batch, particles, (n,), generator, device=y.device)
    x_bar = torch.where(obs, gain0 * y_bar + (gain0 * u0).sqrt() * z, s0 * z)
    log_w = torch.zeros(batch, particles, dtype=torch.float64, device=y.device)
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        log_w, (x_bar,) = resample(log_w, [x_bar], generator, ess_threshold, resampling)
        x0 = denoise_chunked(prior, to_image(x_bar), sigma, chunk)
        x0_bar = to_spectral(x0)
        if callback is not None:
            callback(dict(i=i, x=to_image(x_bar), sigma=sigma, x0_hat=x0, log_weights=log_w))
        ratio = sigma_next ** 2 / sigma ** 2
        m = x0_bar + ratio * (x_bar - x0_bar)
        v = kernel_variance(sigma, sigma_next, kernel_var)
        z = cloud_randn(batch, particles, (n,), generator, device=y.device)
        was_obs = (c < sigma) & (sigma <= on)
        still = (c < sigma_next) & (sigma_next <= on)
        released = was_obs & ~still
        # minus the previous potential g_sigma(x_bar) on every coordinate observed at sigma, except a
        # noiseless one at the last step (sigma' = 0), whose new factor is degenerate: neither is applied
        degenerate = released & (c == 0)
        log_w = log_w - _log_normal(y_bar - x_bar, torch.where(was_obs, sigma ** 2 - c ** 2, 1.0),
                                    was_obs & ~degenerate)
        # still observed: Gaussian product with N(y_bar; x', sigma'^2 - c^2)
        u = torch.where(still, sigma_next ** 2 - c ** 2, 1.0)
        gain = v / (v + u)
        x_still = m + gain * (y_bar - m) + (gain * u).sqrt() * z
        log_w = log_w + _log_normal(y_bar - m, v + u, still)
        x_rel, log_release = release(x_bar, x0_bar, y_bar, c, released, sigma, sigma_next, kernel_var, z)
        log_w = log_w + log_release
        x_free = m + v ** 0.5 * z
        x_bar = torch.where(still, x_still, torch.where(released, x_rel, x_free))
        check_finite(x_bar, i, sigma)
    x = to_image(x_bar)
    return finish(x, log_w, generator, return_cloud, resampling).to(y.real.dtype)


mark_cloud(mcgdiff)
