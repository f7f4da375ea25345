"""The one interface every prior offers: a denoiser ``D(x, sigma) = E[x0 | x0 + sigma n = x]``.

Solvers talk to priors only through :meth:`Prior.denoise` (Karras et al. 2022 write it ``D(x; sigma)``),
in image units: natural images live in [0, 1] and ``sigma`` is the noise standard deviation in those
same units. Networks trained on [-1, 1] data or predicting eps / v / score are adapted by :func:`wrap`.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from . import schedules as sch

__all__ = ["Prior", "NetworkPrior", "wrap", "score", "sigma_like"]

Prediction = Literal["eps", "v", "x0", "score", "edm"]


def sigma_like(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Sigma as a tensor of shape (B, 1, ..., 1) that broadcasts against ``x`` (B, ...).

    A Python number becomes a tensor in ``x``'s (real) precision, at least float32, not torch's
    float32 default: a float64 solver state keeps a float64 sigma all the way to the network call
    (over 1000 DPS steps a float32 sigma alone moved the result by 5e-5).
    """
    if not isinstance(sigma, torch.Tensor):
        dtype = torch.promote_types(x.real.dtype, torch.float32) if x.is_floating_point() or x.is_complex() else None
        sigma = torch.tensor(sigma, dtype=dtype, device=x.device)
    sigma = torch.as_tensor(sigma, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma: expected a scalar or shape ({x.shape[0]},), got {tuple(sigma.shape)}")
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


class Prior:
    """A diffusion prior seen as a denoiser. Subclasses implement :meth:`denoise`.

    Attributes: ``sigma_min``, ``sigma_max`` (image units), ``image_shape`` ((C, H, W) expected, or
    None when any shape works).
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    image_shape: tuple[int, ...] | None = None

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        return self.denoise(x, sigma)

    def sigmas(self, steps: int) -> torch.Tensor:
        """The prior's native sampling schedule: float64, ``steps + 1`` values, descending, last 0."""
        return sch.karras(steps, self.sigma_min, self.sigma_max)


def score(prior: Prior, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Tweedie's formula turned around: ``grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2``."""
    return (prior.denoise(x, sigma) - x) / sigma_like(sigma, x) ** 2


class NetworkPrior(Prior):
    """A network behind the denoiser interface; build it with :func:`wrap`."""

    def __init__(
        self,
        module: nn.Module,
        prediction: Prediction,
        schedule,
        data_range: tuple[float, float],
        learned_variance: bool,
        image_shape: tuple[int, ...] | None,
    ):
        self.module = module
        self.prediction = prediction
        self.schedule = schedule
        self.data_range = (float(data_range[0]), float(data_range[1]))
        self.learned_variance = learned_variance
        self.image_shape = image_shape
        # The network's own noise range, carried back to image units.
        scale = self.data_range[1] - self.data_range[0]
        self.sigma_min = schedule.sigma_min / scale
        self.sigma_max = schedule.sigma_max / scale

    @property
    def _scale(self) -> float:
        return self.data_range[1] - self.data_range[0]

    def sigmas(self, steps: int) -> torch.Tensor:
        return self.schedule.sigmas(steps) / self._scale

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        return self.denoise_and_variance(x, sigma)[0]

    def denoise_and_variance(self, x: torch.Tensor, sigma: torch.Tensor | float
                             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(D(x, sigma), v)``: the denoiser and, for a network with ``learned_variance``, its raw
        variance channels ``v`` (guided-diffusion's ``model_var_values``, in [-1, 1] for
        ``learned_range``: ``log var = (v + 1) / 2 log beta_t + (1 - v) / 2 log beta~_t``); ``None``
        for networks without them. The official DPS samples the FFHQ and ImageNet checkpoints with it.
        """
        lo, scale = self.data_range[0], self._scale
        s = sigma_like(sigma, x).to(x.dtype) * scale  # the noise level in network units, x's precision
        x_net = lo + scale * x
        x0_net, var = self._network_x0(x_net, s)
        return ((x0_net - lo) / scale).to(x.dtype), var

    def _network_x0(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """E[x0 | x] in network units, for ``x = x0 + s n``, and the learned variance channels (or None)."""
        param = next(self.module.parameters(), None)
        net_dtype = param.dtype if param is not None else x.dtype
        c_in = self.schedule.c_in(s)
        c_noise = self.schedule.c_noise(s.reshape(-1))
        out = self.module((c_in * x).to(net_dtype), c_noise.to(net_dtype)).to(x.dtype)
        var = None
        if self.learned_variance:
            out, var = out[:, : x.shape[1]], out[:, x.shape[1]:]
        return self._combine(x, s, c_in, out), var

    def _combine(self, x: torch.Tensor, s: torch.Tensor, c_in: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.prediction == "edm":
            return self.schedule.c_skip(s) * x + self.schedule.c_out(s) * out
        if self.prediction == "x0":
            return out
        if self.prediction == "eps":
            return x - s * out
        if self.prediction == "v":
            # v = alpha eps - sigma_vp x0 with alpha = c_in, sigma_vp = s c_in (Salimans & Ho 2022, sec. 4)
            alpha = c_in
            return alpha * (alpha * x) - s * alpha * out
        if self.prediction == "score":
            # the network's input is c_in x, so its score is 1/c_in times the score in x
            return x + s**2 * c_in * out
        raise ValueError(f"prediction: expected eps, v, x0, score or edm, got {self.prediction!r}")


def wrap(
    module: nn.Module,
    prediction: Prediction = "eps",
    schedule=None,
    data_range: tuple[float, float] = (-1.0, 1.0),
    learned_variance: bool = False,
    image_shape: tuple[int, ...] | None = None,
) -> NetworkPrior:
    """Turn any diffusion network into a :class:`Prior`.

    :param module: called as ``module(c_in * x_net, c_noise)``; for DDPM networks that is
        ``module(x_t, t)`` with a fractional timestep ``t``.
    :param prediction: what the network outputs: ``"eps"`` (Ho et al. 2020), ``"v"`` (Salimans & Ho 2022),
        ``"x0"``, ``"score"`` (Song et al. 2021, VE), or ``"edm"`` (the raw F_theta of Karras et al. 2022,
        combined as ``c_skip x + c_out F``).
    :param schedule: a conditioning from :mod:`priors.schedules`; default: 1000-step linear DDPM
        (:class:`~priors.schedules.EDM` for ``prediction="edm"``).
    :param data_range: the interval the network's data lived in; image units [0, 1] map onto it, and
        sigma scales with it.
    :param learned_variance: the network outputs 2C channels (guided-diffusion); the first C are used.

    >>> import torch
    >>> class Zero(torch.nn.Module):
    ...     def forward(self, x, t): return torch.zeros_like(x)
    >>> prior = wrap(Zero(), prediction="eps")
    >>> x = torch.rand(2, 1, 4, 4)
    >>> bool(torch.allclose(prior.denoise(x, 0.1), x))  # eps = 0 means x is already clean
    True
    """
    if prediction not in ("eps", "v", "x0", "score", "edm"):
        raise ValueError(f"prediction: expected eps, v, x0, score or edm, got {prediction!r}")
    if schedule is None:
        schedule = sch.EDM() if prediction == "edm" else sch.DiscreteVP.linear()
    if prediction == "edm" and not isinstance(schedule, sch.EDM):
        raise ValueError("schedule: prediction='edm' needs a priors.schedules.EDM conditioning")
    if prediction == "v" and not isinstance(schedule, (sch.DiscreteVP, sch.ContinuousVP)):
        raise ValueError("schedule: prediction='v' is defined on a variance-preserving state; use DiscreteVP or ContinuousVP")
    if not data_range[1] > data_range[0]:
        raise ValueError(f"data_range: expected (low, high) with high > low, got {data_range}")
    return NetworkPrior(module, prediction, schedule, data_range, learned_variance, image_shape)
