"""Tiny stand-ins for a prior, dataset, operator, noise, solvers and metrics, named from test suites
as ``fake_components:function``: the benchmark machinery is tested without the real packages.

Tests copy this file next to their suite YAML, the way a user puts ``my_ops.py`` next to theirs.
"""
import math
import os
import time

import torch


class FakePrior:
    sigma_min, sigma_max, image_shape = 0.01, 10.0, None

    def denoise(self, x, sigma):
        return x / (1 + torch.as_tensor(sigma) ** 2)

    def __call__(self, x, sigma):
        return self.denoise(x, sigma)


def prior(log=""):
    """``log``: a file that gets a line per load, with the process id (a worker loads it once)."""
    if log:
        _log("prior", log)
    return FakePrior()


def missing_prior():
    raise FileNotFoundError("checkpoint fake.pt not found: put it in ~/.cache/fake")


def images(n=3, size=8):
    g = torch.Generator().manual_seed(123)
    return [(f"img{i}", torch.rand(1, size, size, generator=g)) for i in range(n)]


class MaskOp:
    def __init__(self, mask):
        self.mask = mask
        self.in_shape = self.out_shape = tuple(mask.shape)

    def __call__(self, x):
        return x * self.mask


def mask_op(shape, generator=None, keep=0.5):
    return MaskOp((torch.rand(shape, generator=generator) < keep).float())


class Noise:
    def __init__(self, sigma):
        self.sigma = sigma

    def __call__(self, y, generator=None):
        return y + self.sigma * torch.randn(y.shape, generator=generator, dtype=y.dtype)


def noise(sigma=0.05):
    return Noise(sigma)


def _log(tag, path=""):
    path = path or os.environ.get("FAKE_SOLVER_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{tag} {os.getpid()}\n")


def solver(prior, op, y, noise, *, steps, generator=None, callback=None, scale=1.0, sleep=0.0,
           tag="", log="", started="", hold=""):
    """Returns ``scale * y`` after ``steps`` denoiser calls (NFE = steps).

    For tests of processes (files named in the suite reach workers anywhere): ``started`` gets a
    line ``tag sum(y) pid`` as an image starts, ``log`` (or $FAKE_SOLVER_LOG) as it ends, and with
    ``hold`` the image does not end before that file exists."""
    label = f"{tag} {float(y.sum()):.6f}"
    if started:
        _log(label, started)
    for i in range(steps):
        prior.denoise(y, 1.0)
    time.sleep(sleep)
    deadline = time.time() + 120
    while hold and not os.path.exists(hold):
        if time.time() > deadline:
            raise TimeoutError(f"{hold} did not appear")
        time.sleep(0.02)
    _log(label, log)
    return scale * y + 0 * torch.randn(y.shape, generator=generator)


def sampler(prior, op, y, noise, *, steps, generator=None, callback=None):
    """One draw per row of ``y``: y plus N(0, 0.1^2) noise (posterior-std tests)."""
    from priors.random import randn, resolve_generators

    prior.denoise(y, 1.0)
    return y + 0.1 * randn(y.shape, resolve_generators(generator, len(y)), dtype=y.dtype)


def failing_solver(prior, op, y, noise, *, steps, generator=None, callback=None):
    raise RuntimeError("boom: fake failure")


def nan_solver(prior, op, y, noise, *, steps, generator=None, callback=None):
    return y * float("nan")


def metrics(x_hat, x, op, y):
    mse = float(((x_hat - x) ** 2).mean())
    return {"psnr": 10 * math.log10(1.0 / mse),
            "residual": float((op(x_hat) - y).norm() / y.norm())}


def mean_abs_error(x_hat, x, op, y):
    """A single metric (named in a suite's ``metrics:`` list): one value per image."""
    return (x_hat - x).abs().flatten(1).mean(1)
