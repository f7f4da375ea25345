"""Diffusion priors behind one denoiser interface ``D(x, sigma)`` (see :mod:`priors.denoiser`)."""
from . import schedules
from .denoiser import NetworkPrior, Prior, score, sigma_like, wrap
from .exact import Gaussian, GaussianMixture
from .guided_unet import GuidedUNet
from .load import KNOWN, CheckpointError, available, load, save
from .sample import sample, sliced_wasserstein

__all__ = [
    "Prior", "NetworkPrior", "wrap", "score", "sigma_like", "schedules",
    "Gaussian", "GaussianMixture", "sample", "sliced_wasserstein", "load", "available",
    "save", "KNOWN", "CheckpointError", "GuidedUNet",
]
