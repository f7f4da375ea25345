"""Diffusion priors behind one denoiser interface ``D(x, sigma)`` (see :mod:`priors.denoiser`)."""
from . import schedules
from .denoiser import NetworkPrior, Prior, score, sigma_like, wrap
from .exact import Gaussian, GaussianMixture
from .load import available, load
from .sample import sample, sliced_wasserstein

__all__ = [
    "Prior", "NetworkPrior", "wrap", "score", "sigma_like", "schedules",
    "Gaussian", "GaussianMixture", "sample", "sliced_wasserstein", "load", "available",
]
