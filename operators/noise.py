r"""Measurement noise models :math:`y \sim p(y \mid A x)`, in image units (DESIGN §2).

Each model draws a noisy measurement from a clean one, ``noise(y_clean, generator=None)``, and gives the
negative log-likelihood ``nll(y, y_pred)`` (per sample, up to a constant) and its gradient
``nll_grad(y, y_pred)`` with respect to ``y_pred``, which solvers chain through ``op.H``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import _validate as V
from .masks import _gen

__all__ = ["GaussianNoise", "PoissonNoise", "PoissonGaussianNoise"]


def _randn_like(y: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise with ``y``'s shape/dtype drawn on the generator's device, then moved to
    ``y``'s device (so a CPU generator gives the same draw for CPU and GPU data). Complex ``y`` gets
    independent N(0, 1) real and imaginary parts."""
    g = _gen(generator)
    return torch.randn(y.shape, generator=g, device=g.device, dtype=y.dtype).to(y.device) * (
        2 ** 0.5 if y.is_complex() else 1.0)


#: Poisson rates above this are drawn from the normal approximation (torch.poisson overflows near 2**63).
_POISSON_MAX = 1e12


def _wide(t: Tensor) -> Tensor:
    """``t`` in double precision (complex128 for complex), where a tiny sigma does not underflow."""
    return t.to(torch.complex128 if t.is_complex() else torch.float64)


def _sum(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).sum(1)


class GaussianNoise:
    r"""Additive white Gaussian noise, :math:`y = A x + \sigma n`, :math:`n \sim N(0, I)`.

    For complex measurements the real and imaginary parts each get standard deviation ``sigma``.
    :math:`\mathrm{nll}(y, \hat y) = \|y - \hat y\|^2 / (2\sigma^2)`.

    :param sigma: standard deviation in image units (>= 0; 0 means noiseless, where ``nll`` is undefined).
    """

    def __init__(self, sigma: float):
        self.sigma = V.number(sigma, "sigma", low=0.0)

    def __call__(self, y_clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.sigma == 0:
            return y_clean.clone()
        return y_clean + self.sigma * _randn_like(y_clean, generator)

    def _check_sigma(self) -> None:
        if self.sigma == 0:
            raise ValueError("the Gaussian likelihood is undefined for sigma = 0 (noiseless measurements)")

    def nll(self, y: Tensor, y_pred: Tensor) -> Tensor:
        self._check_sigma()
        r = _wide(y - y_pred) / self.sigma  # not / sigma**2 at the end, nor in y's precision: for a tiny
        nll = _sum((r.conj() * r).real if r.is_complex() else r * r) / 2  # sigma either underflows to 0/0
        return nll.to(torch.promote_types(y.real.dtype, y_pred.real.dtype))

    def nll_grad(self, y: Tensor, y_pred: Tensor) -> Tensor:
        r""":math:`(\hat y - y) / \sigma^2` (the Wirtinger/real gradient for complex data)."""
        self._check_sigma()
        return (_wide(y_pred - y) / self.sigma / self.sigma).to(torch.promote_types(y.dtype, y_pred.dtype))

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
        self.gain = V.number(gain, "gain", low=0.0, low_open=True)
        self.eps = V.number(eps, "eps", low=0.0, low_open=True)

    def _poisson(self, y_clean: Tensor, generator: torch.Generator | None) -> Tensor:
        if y_clean.is_complex():
            raise TypeError("y_clean must be real for Poisson noise, got a complex tensor")
        if not y_clean.is_floating_point():
            raise TypeError(f"y_clean must be a floating tensor for Poisson noise, got {y_clean.dtype}")
        g = _gen(generator)
        # a gain below the data's precision would be 0 there (x / 0 = NaN or inf): divide in float64
        wide = y_clean if torch.finfo(y_clean.dtype).tiny < self.gain else y_clean.double()
        rate = (wide / self.gain).clamp(min=0).to(g.device)
        big = rate > _POISSON_MAX  # torch.poisson overflows to -2**63 for rates near 2**63
        counts = torch.poisson(torch.where(big, 0, rate), generator=g)
        if bool(big.any()):  # normal approximation, exact to relative 1e-6 at these rates
            normal = torch.randn(rate.shape, generator=g, device=g.device, dtype=rate.dtype)
            counts = torch.where(big, rate + rate.sqrt() * normal, counts)
        return (counts.to(y_clean.device) * self.gain).to(y_clean.dtype)

    def __call__(self, y_clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self._poisson(y_clean, generator)

    def nll(self, y: Tensor, y_pred: Tensor) -> Tensor:
        lam = _wide(y_pred).clamp(min=self.eps) / self.gain  # float64: a tiny gain must not become 0
        return _sum(lam - (_wide(y) / self.gain) * torch.log(lam)).to(torch.promote_types(y.dtype, y_pred.dtype))

    def nll_grad(self, y: Tensor, y_pred: Tensor) -> Tensor:
        r""":math:`(1 - y / \hat y) / g`."""
        grad = (1 - _wide(y) / _wide(y_pred).clamp(min=self.eps)) / self.gain
        return grad.to(torch.promote_types(y.dtype, y_pred.dtype))

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
        self.sigma = V.number(sigma, "sigma", low=0.0, low_open=True)

    def __call__(self, y_clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        g = _gen(generator)
        shot = self._poisson(y_clean, g)
        return shot + self.sigma * _randn_like(y_clean, g)

    def _var(self, y_pred: Tensor) -> Tensor:
        v = self.gain * y_pred.clamp(min=0) + self.sigma ** 2
        return v.clamp(min=torch.finfo(v.dtype).tiny)  # sigma**2 may underflow to 0

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
