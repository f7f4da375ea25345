"""The problems a suite poses: operator factories (``OPERATORS``), and the Gaussian-mixture prior
(``PRIORS``) and exact posterior sampler (``SOLVERS``) of the exact-posterior ``gmm`` suite.

To add an operator: write ``factory(shape, generator=None, sample=None, **kw) -> operator`` here
(``generator`` for random masks and kernels, ``sample`` for the dataset item, e.g. an MRI slice's
k-space; take only what you need) and add it to ``OPERATORS``; suites then name it by its key. The
operator's class itself lives in ``operators/`` (run ``ops.check`` on it)."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch


# --------------------------------------------------------------------------------------------
# Built-in operators: name -> factory(shape, generator=..., **kwargs) -> operator
# --------------------------------------------------------------------------------------------
def _ops():
    import operators as ops
    return ops


def inpaint_random(shape, generator=None, *, kept: float = 0.3):
    """Random inpainting: a uniformly random fraction ``kept`` of the pixels (all channels) is
    measured (DPS's "random 92%" drops 92%: ``kept: 0.08``)."""
    ops = _ops()
    return ops.Inpainting(ops.masks.random(shape[-2:], kept, generator=generator), in_shape=shape)


def inpaint_box(shape, generator=None, *, size: int = 16, center: bool = True):
    """Box inpainting: a missing ``size x size`` square, centred (DPS: 128 of 256) or at random."""
    ops = _ops()
    return ops.Inpainting(ops.masks.box(shape[-2:], size, center=center, generator=generator),
                          in_shape=shape)


def inpaint_freeform(shape, generator=None, *, coverage=(0.2, 0.3)):
    """Free-form (brush-stroke) inpainting covering a fraction in ``coverage`` (RED-Diff)."""
    ops = _ops()
    return ops.Inpainting(ops.masks.freeform(shape[-2:], tuple(coverage), generator=generator),
                          in_shape=shape)


def gaussian_blur(shape, generator=None, *, size: int = 61, std: float = 3.0,
                  boundary: str = "circular"):
    """Gaussian deblurring, kernel ``size`` x ``size`` with standard deviation ``std`` pixels."""
    ops = _ops()
    return ops.Blur(ops.kernels.gaussian(size, std), shape, boundary=boundary)


def motion_blur(shape, generator=None, *, size: int = 61, intensity: float = 0.5,
                boundary: str = "circular"):
    """Motion deblurring with a random kernel of the given ``intensity`` (as in DPS)."""
    ops = _ops()
    return ops.Blur(ops.kernels.motion(size, intensity, generator=generator), shape,
                    boundary=boundary)


def super_resolution(shape, generator=None, *, factor: int = 4, filter: str = "bicubic"):
    """Super-resolution by ``factor`` (downsampling with the given anti-alias filter)."""
    return _ops().Downsample(shape, int(factor), filter=filter)


def ct_sparse_view(shape, generator=None, *, n_views: int = 8, n_detectors: int | None = None):
    """Parallel-beam CT with ``n_views`` angles uniform on [0, 180)."""
    return _ops().CT(int(shape[-1]), angles=int(n_views), n_detectors=n_detectors)


def mri_cartesian(shape, generator=None, sample=None, *, acceleration: float = 4,
                  center_fraction=None, pattern: str = "random", coils: str = "single",
                  calib: int = 24):
    """Cartesian MRI with a fastMRI column mask (``pattern`` random or equispaced, centre fraction
    0.32 / R by default: 8% at R=4, 4% at R=8).

    :param coils: ``"single"``, or ``"estimate"``: multi-coil SENSE with sensitivities estimated
        from the fully sampled centre (``calib`` lines) of the dataset sample's k-space (fastMRI)."""
    ops = _ops()
    masks = {"random": ops.masks.fastmri_random, "equispaced": ops.masks.fastmri_equispaced}
    if pattern not in masks:
        raise ValueError(f"pattern: expected 'random' or 'equispaced', got {pattern!r}")
    mask = masks[pattern](shape[-2:], acceleration, center_fraction, generator=generator)
    if coils == "single":
        return ops.MRI(mask, image_shape=shape)
    kspace = getattr(sample, "kspace", None)
    if coils != "estimate" or kspace is None:
        raise ValueError("coils: 'estimate' needs a dataset whose samples carry k-space (fastmri)")
    return ops.MRI(mask, coil_maps=ops.estimate_coil_maps(kspace, calib=calib), image_shape=shape)


def random_matrix(shape, generator=None, *, m: int = 1):
    """A dense Gaussian ``m x d`` matrix with entries N(0, 1/d) (exact-posterior problems)."""
    d = int(np.prod(shape))
    A = torch.randn(m, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
    return _ops().Matrix(A.float())


OPERATORS: dict[str, Callable] = {f.__name__: f for f in (
    inpaint_random, inpaint_box, inpaint_freeform, gaussian_blur, motion_blur, super_resolution,
    ct_sparse_view, mri_cartesian, random_matrix)}


# --------------------------------------------------------------------------------------------
# Exact-posterior suite pieces (Gaussian mixtures)
# --------------------------------------------------------------------------------------------
def _gmm_parameters(dim: int, components: int, seed: int, spread: float, scale: float):
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(components, generator=g, dtype=torch.float64) + 0.5
    means = spread * torch.randn(components, dim, generator=g, dtype=torch.float64)
    factors = torch.randn(components, dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
    covs = scale ** 2 * (factors @ factors.transpose(1, 2) + 0.1 * torch.eye(dim, dtype=torch.float64))
    return weights / weights.sum(), means, covs


def gmm_prior(dim: int = 8, components: int = 4, seed: int = 0, spread: float = 2.0,
              scale: float = 0.5, dtype: torch.dtype = torch.float32):
    """A random Gaussian mixture in ``dim`` dimensions (deterministic in ``seed``): means of scale
    ``spread``, covariances ``scale**2 (F F^T / dim + 0.1 I)``."""
    import priors
    weights, means, covs = _gmm_parameters(dim, components, seed, spread, scale)
    return priors.GaussianMixture(weights.to(dtype), means.to(dtype), covs.to(dtype))


def exact_posterior(prior, op, y, noise, *, steps=None, generator=None, callback=None, **_):
    """The exact posterior sampler (the floor of the ``gmm`` suite): one draw per row of ``y``."""
    return prior.posterior(op, y[:1], noise).sample(y.shape[0], generator=generator)


#: priors built by a function (anything else a suite names goes to ``priors.load``)
PRIORS: dict[str, Callable] = {"gmm": gmm_prior}
#: solvers the benchmark adds to ``restore.SOLVERS``
SOLVERS: dict[str, Callable] = {"exact": exact_posterior}
