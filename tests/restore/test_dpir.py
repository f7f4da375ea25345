"""DPIR against exact answers: with a Gaussian prior the denoiser is the proximal map of the negative
log-prior, so half-quadratic splitting with lambda = 1 and sigma_k -> 0 reaches the MAP estimate, which
for a Gaussian posterior is its mean."""
from __future__ import annotations

import pytest
import torch

import operators as ops
import priors
import restore
from restore.dpir import dpir, dpir_sigmas


def _gaussian_problem(sigma_y: float):
    g = torch.Generator().manual_seed(2)
    f = 0.5 * torch.randn(4, 4, generator=g, dtype=torch.float64)
    prior = priors.Gaussian(torch.tensor([0.5, -0.2, 0.1, 0.0], dtype=torch.float64),
                            f @ f.T + 0.05 * torch.eye(4, dtype=torch.float64))
    op, noise = ops.Matrix(torch.randn(2, 4, generator=g, dtype=torch.float64)), ops.GaussianNoise(sigma_y)
    y = op(prior.sample(1, generator=g)) + sigma_y * torch.randn(1, 2, generator=g, dtype=torch.float64)
    return prior, op, y, noise, prior.posterior(op, y, noise).mean


def test_gaussian_denoiser_is_the_prox_of_the_negative_log_prior():
    # D(z, s) = argmin_x |x - z|^2 / (2 s^2) + (x - m)^T C^-1 (x - m) / 2: the fact DPIR's objective rests on
    prior, _, _, _, _ = _gaussian_problem(0.1)
    z, s = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64), 0.4
    cov, m = prior.covs[0].to(torch.float64), prior.means[0].to(torch.float64)
    eye = torch.eye(4, dtype=torch.float64)
    prox = torch.linalg.solve(eye / s ** 2 + torch.linalg.inv(cov), (z / s ** 2 + torch.linalg.inv(cov) @ m).T).T
    torch.testing.assert_close(prior.denoise(z, s).to(torch.float64), prox)


def test_converges_to_the_exact_posterior_mean_as_sigma_goes_to_zero():
    prior, op, y, noise, mean = _gaussian_problem(1e-3)
    errors = [float((dpir(prior, op, y, noise, steps=k, lam=1.0, sigma_first=3.0) - mean).norm() / mean.norm())
              for k in (50, 500, 2000)]
    # HQS's penalty 1/sigma_k^2 grows along the schedule; a finer schedule tracks the minimiser closer
    assert errors[0] > errors[1] > errors[2] and errors[2] < 5e-3 and errors[0] > 3 * errors[2]


def test_schedule_is_log_uniform_from_sigma_first_to_the_noise_level():
    s = dpir_sigmas(8, 0.02)
    torch.testing.assert_close(s[[0, -1]], torch.tensor([49 / 255, 0.02], dtype=torch.float64))
    ratios = s[1:] / s[:-1]
    torch.testing.assert_close(ratios, ratios[:1].expand(7))
    assert float(dpir_sigmas(4, 0.0)[-1]) == pytest.approx(0.255 / 255)  # the official floor


def test_deterministic_and_refuses_bad_hyper_parameters():
    prior, op, y, noise, _ = _gaussian_problem(0.1)
    a = dpir(prior, op, y, noise, steps=5, generator=torch.Generator().manual_seed(0))
    b = dpir(prior, op, y, noise, steps=5)
    assert torch.equal(a, b) and a.dtype == y.dtype
    with pytest.raises(ValueError, match="lam"):
        dpir(prior, op, y, noise, steps=5, lam=0.0)
    assert restore.SOLVERS["dpir"] is dpir


def test_start_is_the_least_squares_constant_image():
    # inpainting: the mean of the measured pixels (holes do not count as zeros); a normalised blur: mean(y)
    from restore.dpir import mean_level

    g = torch.Generator().manual_seed(4)
    x = 0.2 + 0.6 * torch.rand(2, 3, 8, 8, generator=g)
    mask = ops.masks.random((8, 8), 0.3, generator=g)
    op = ops.Inpainting(mask, in_shape=(3, 8, 8))
    start = mean_level(op, op(x))
    kept = mask.expand(3, 8, 8).bool()
    torch.testing.assert_close(start[:, 0, 0, 0], torch.stack([xi[kept].mean() for xi in x]))
    blur = ops.Blur(ops.kernels.gaussian(5, 1.0), in_shape=(3, 8, 8), boundary="circular")
    torch.testing.assert_close(mean_level(blur, blur(x))[:, 0, 0, 0], x.flatten(1).mean(1))
