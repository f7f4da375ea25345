r"""Measurement noise models :math:`y \sim p(y \mid A x)`, in image units (DESIGN §2).

Each model draws a noisy measurement from a clean one, ``noise(y_clean, generator=None)``, and gives the
negative log-likelihood ``nll(y, y_pred)`` (per sample, up to a constant) and its gradient
``nll_grad(y, y_pred)`` with respect to ``y_pred``, which solvers chain through ``op.H``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .masks import _gen

__all__ = ["GaussianNoise", "PoissonNoise", "PoissonGaussianNoise"]


def _randn_like(y: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise with ``y``'s shape/dtype drawn on the generator's device, then moved to
    ``y``'s device (so a CPU generator gives the same draw for CPU and GPU data). Complex ``y`` gets
    independent N(0, 1) real and imaginary parts."""
    g = _gen(generator)
    return torch.randn(y.shape, generator=g, device=g.device, dtype=y.dtype).to(y.device) * (
        2 ** 0.5 if y.is_complex() else 1.0)


def _sum(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).sum(1)


class GaussianNoise:
    r"""Additive white Gaussian noise, :math:`y = A x + \sigma n`, :math:`n \sim N(0, I)`.

    For complex measurements the real and imaginary parts each get standard deviation ``sigma``.
    :math:`\mathrm{nll}(y, \hat y) = \|y - \hat y\|^2 / (2\sigma^2)`.

    :param sigma: standard deviation in image units (>= 0; 0 means noiseless, where ``nll`` is undefined).
    """

    def __init__(self, sigma: float):
        sigma = float(sigma)
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = sigma

    def __call__(self, y_clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.sigma == 0:
            return y_clean.clone()
        return y_clean + self.sigma * _randn_like(y_clean, generator)

    def _check_sigma(self) -> None:
        if self.sigma == 0:
            raise ValueError("the Gaussian likelihood is undefined for sigma = 0 (noiseless measurements)")

    def nll(self, y: Tensor, y_pred: Tensor) -> Tensor:
        self._check_sigma()
        r = y - y_pred
        return _sum((r.conj() * r).real if r.is_complex() else r * r) / (2 * self.sigma ** 2)

    def nll_grad(self, y: Tensor, y_pred: Tensor) -> Tensor:
        r""":math:`(\hat y - y) / \sigma^2` (the Wirtinger/real gradient for complex data)."""
        self._check_sigma()
        return (y_pred - y) / self.sigma ** 2

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma})"


class PoissonNoise:
    r"""Poisson (shot) noise in image units: :math:`y = g\,\mathcal{P}(A x / g)`, so
    :math:`E[y] = A x` and :math:`\mathrm{Var}[y] = g\,A x` (deepinv's ``PoissonNoise(gain)``).

    :math:`\mathrm{nll}(y, \hat y) = \sum \hat y / g - (y / g) \log(\hat y / g)`, with :math:`\hat y`
    clipped at ``eps`` inside the logarithm.

    :param gain: photon-to-intensity gain ``g > 0`` (small gain = many photons = little noise).
    :param eps: floor on the predicted intensity in the log-likelihood.
    """

    def __init__(self, gain: float, eps: float = 1e-6):
        gain = float(gain)
        if not gain > 0:
            raise ValueError(f"gain must be > 0, got {gain}")
        self.gain, self.eps = gain, float(eps)

    def _poisson(self, y_clean: Tensor, generator: torch.Generator | None) -> Tensor:
        if y_clean.is_complex():
            raise TypeError("y_clean must be real for Poisson noise, got a complex tensor")
        g = _gen(generator)
        rate = (y_clean / self.gain).clamp(min=0).to(g.device)
        return torch.poisson(rate, generator=g).to(y_clean.device) * self.gain

    def __call__(self, y_clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self._poisson(y_clean, generator)

    def nll(self, y: Tensor, y_pred: Tensor) -> Tensor:
        lam = y_pred.clamp(min=self.eps) / self.gain
        return _sum(lam - (y / self.gain) * torch.log(lam))

    def nll_grad(self, y: Tensor, y_pred: Tensor) -> Tensor:
        r""":math:`(1 - y / \hat y) / g`."""
        return (1 - y / y_pred.clamp(min=self.eps)) / self.gain

    def __repr__(self) -> str:
        return f"PoissonNoise(gain={self.gain})"


class PoissonGaussianNoise(PoissonNoise):
    r"""Poisson-Gaussian noise :math:`y = g\,\mathcal{P}(A x / g) + \sigma n` (Foi et al. 2008).

    The exact likelihood is a Poisson-Gaussian convolution; ``nll`` uses its standard heteroscedastic
    Gaussian approximation, :math:`y \sim N(\hat y, v)`, :math:`v = g \max(\hat y, 0) + \sigma^2`:
    :math:`\mathrm{nll} = \sum (y - \hat y)^2 / (2 v) + \tfrac12 \log v`.

    :param gain: Poisson gain ``g > 0``. :param sigma: Gaussian standard deviation ``> 0``.
    """

    def __init__(self, gain: float, sigma: float):
        super().__init__(gain)
        sigma = float(sigma)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.sigma = sigma

    def __call__(self, y_clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        g = _gen(generator)
        shot = self._poisson(y_clean, g)
        return shot + self.sigma * _randn_like(y_clean, g)

    def _var(self, y_pred: Tensor) -> Tensor:
        return self.gain * y_pred.clamp(min=0) + self.sigma ** 2

    def nll(self, y: Tensor, y_pred: Tensor) -> Tensor:
        v = self._var(y_pred)
        return _sum((y - y_pred) ** 2 / (2 * v) + 0.5 * torch.log(v))

    def nll_grad(self, y: Tensor, y_pred: Tensor) -> Tensor:
        r""":math:`-(y - \hat y)/v + g\,\mathbb{1}[\hat y > 0]\,\big(1/(2v) - (y - \hat y)^2 / (2v^2)\big)`."""
        v = self._var(y_pred)
        r = y - y_pred
        dv = self.gain * (y_pred > 0).to(y_pred.dtype)
        return -r / v + dv * (0.5 / v - r * r / (2 * v * v))

    def __repr__(self) -> str:
        return f"PoissonGaussianNoise(gain={self.gain}, sigma={self.sigma})"
