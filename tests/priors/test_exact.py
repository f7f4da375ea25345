"""Exact Gaussian / mixture priors: denoiser against Monte Carlo, posterior against importance sampling
and against the information-form closed formula, sampling moments, and the error paths."""
from __future__ import annotations

import pytest
import torch

import operators as ops
from priors.exact import Gaussian, GaussianMixture

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py


def mixture_2d() -> GaussianMixture:
    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[-1.5, 0.0], [1.0, 1.0], [0.5, -1.5]], dtype=F64)
    f = 0.4 * torch.randn(3, 2, 2, generator=g, dtype=F64)
    return GaussianMixture(torch.tensor([0.5, 0.3, 0.2]), means, f @ f.transpose(1, 2) + 0.05 * torch.eye(2))


def gaussian_3d() -> Gaussian:
    g = torch.Generator().manual_seed(1)
    f = torch.randn(3, 3, generator=g, dtype=F64)
    return Gaussian(torch.tensor([0.5, -0.3, 1.0], dtype=F64), f @ f.T / 3 + 0.1 * torch.eye(3))


def self_normalised_is(samples: torch.Tensor, log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance-sampling estimate of E[x] (rows of ``samples``) and its delta-method standard error."""
    w = torch.softmax(log_w, 0)
    est = w @ samples
    se = ((w[:, None] ** 2) * (samples - est) ** 2).sum(0).sqrt()
    return est, se


@pytest.mark.parametrize("make", [mixture_2d, gaussian_3d], ids=["mixture2d", "gaussian3d"])
def test_denoise_matches_monte_carlo(make):
    """E[x0 | x] from prior samples weighted by N(x; x0, sigma^2 I), at 4 sigmas, within 4 SE."""
    prior = make()
    g = torch.Generator().manual_seed(2)
    x0 = prior.sample(200_000, generator=g)
    scale = prior.covariance.diagonal().mean().sqrt().item()
    for sigma in (0.2 * scale, 0.5 * scale, 1.0 * scale, 3.0 * scale):
        x = prior.sample(3, generator=g) + sigma * torch.randn(3, prior.dim, generator=g, dtype=F64)
        exact = prior.denoise(x, sigma)
        for xi, ei in zip(x, exact):
            est, se = self_normalised_is(x0, -((xi - x0) ** 2).sum(1) / (2 * sigma**2))
            assert se.max() < 0.05 * scale, "Monte-Carlo estimate too noisy to test anything"
            z = ((ei - est).abs() / se).max().item()
            assert z < 4, f"sigma={sigma:.3g}: exact {ei.tolist()} vs MC {est.tolist()} ({z:.2f} SE)"


def test_denoise_matches_brute_force_gaussian_formula_per_sample_sigma():
    prior = gaussian_3d()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 3, generator=g, dtype=F64)
    sigma = torch.tensor([1e-3, 0.1, 0.5, 2.0, 50.0], dtype=F64)
    mu, cov = prior.mean, prior.covariance
    for xi, si, di in zip(x, sigma, prior.denoise(x, sigma)):
        want = mu + cov @ torch.linalg.solve(cov + si**2 * torch.eye(3, dtype=F64), xi - mu)
        torch.testing.assert_close(di, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(prior.denoise(x[:2], 0.0), x[:2])  # sigma = 0 is the identity


def test_denoise_dtype_trailing_shape_and_diagonal_covariance():
    """Images (B, C, H, W) with a diagonal covariance give the same answer as the flat full version."""
    g = torch.Generator().manual_seed(4)
    means = torch.rand(2, 1, 2, 3, generator=g)
    var = 0.05 + torch.rand(2, 1, 2, 3, generator=g)
    image_prior = GaussianMixture(torch.tensor([0.4, 0.6]), means, var)
    flat_prior = GaussianMixture(torch.tensor([0.4, 0.6]), means.reshape(2, 6),
                                 torch.diag_embed(var.reshape(2, 6).double()))
    assert image_prior.image_shape == (1, 2, 3)
    x = torch.rand(4, 1, 2, 3, generator=g)
    out = image_prior.denoise(x, torch.tensor([0.05, 0.2, 1.0, 5.0]))
    assert out.dtype == torch.float32
    flat = flat_prior.denoise(x.reshape(4, 6).double(), torch.tensor([0.05, 0.2, 1.0, 5.0]))
    torch.testing.assert_close(out.reshape(4, 6).double(), flat, rtol=1e-6, atol=1e-6)
    assert image_prior.sample(3, generator=g).shape == (3, 1, 2, 3)


def test_denoise_is_stable_far_from_the_data():
    """Log-sum-exp: far out at small sigma one component takes all the responsibility; no NaN, no 0/0."""
    prior = mixture_2d()
    x = torch.tensor([[1e3, 1e3], [-1e4, 0.0]], dtype=F64)
    sigma = 1e-2
    out = prior.denoise(x, sigma)
    for xi, oi in zip(x, out):
        logp = torch.stack([
            torch.distributions.MultivariateNormal(m, c + sigma**2 * torch.eye(2, dtype=F64)).log_prob(xi)
            for m, c in zip(prior.means, prior.covs)])
        k = int((logp + prior.weights.log()).argmax())
        want = Gaussian(prior.means[k], prior.covs[k]).denoise(xi[None], sigma)[0]
        torch.testing.assert_close(oi, want, rtol=1e-10, atol=1e-8)
    # at huge sigma the denoiser returns the prior mean
    torch.testing.assert_close(prior.denoise(prior.means.clone(), 1e6), prior.mean.expand(3, 2), atol=1e-6, rtol=0)


def test_sample_moments():
    prior = mixture_2d()
    x = prior.sample(100_000, generator=torch.Generator().manual_seed(5))
    se = (prior.covariance.diagonal() / len(x)).sqrt()
    assert ((x.mean(0) - prior.mean).abs() / se).max() < 4
    torch.testing.assert_close(torch.cov(x.T), prior.covariance, atol=0.03, rtol=0)


def test_posterior_mean_matches_importance_sampling():
    prior = mixture_2d()
    g = torch.Generator().manual_seed(6)
    a = torch.tensor([[1.0, 0.5]], dtype=F64)
    op, noise = ops.Matrix(a), ops.GaussianNoise(0.3)
    x = prior.sample(1, generator=g)
    y = x @ a.T + 0.3 * torch.randn(1, 1, generator=g, dtype=F64)
    post = prior.posterior(op, y, noise)
    x0 = prior.sample(400_000, generator=g)
    est, se = self_normalised_is(x0, -((y - x0 @ a.T) ** 2).sum(1) / (2 * 0.3**2))
    assert ((post.mean - est).abs() / se).max() < 4
    # and the posterior's own samples have that mean
    xs = post.sample(100_000, generator=g)
    assert ((xs.mean(0) - post.mean).abs() / xs.std(0) * len(xs) ** 0.5).max() < 4


def test_gaussian_posterior_matches_information_form():
    """Gain form (ours) against the information form ``(C^-1 + A^T A / s^2)^-1``, for an ops.Matrix and
    for the same matrix hidden behind a generic operator (materialised from the identity basis)."""
    prior = gaussian_3d()
    g = torch.Generator().manual_seed(7)
    a = torch.randn(2, 3, generator=g, dtype=F64)
    sigma_y = 0.2
    y = torch.randn(1, 2, generator=g, dtype=F64)
    c_inv = torch.linalg.inv(prior.covariance)
    cov_want = torch.linalg.inv(c_inv + a.T @ a / sigma_y**2)
    mean_want = cov_want @ (c_inv @ prior.mean + a.T @ y[0] / sigma_y**2)
    generic = ops.FunctionOperator(lambda x: x @ a.T.to(x.dtype), lambda v: v @ a.to(v.dtype), (3,), (2,))
    for op in (ops.Matrix(a), generic):
        post = prior.posterior(op, y, ops.GaussianNoise(sigma_y))
        torch.testing.assert_close(post.mean, mean_want, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(post.covariance, cov_want, rtol=1e-9, atol=1e-10)


def test_posterior_of_an_image_operator_pixel_by_pixel():
    """Inpainting on a (1, 2, 3) image with a diagonal Gaussian prior: observed pixels combine prior and
    measurement precision-weighted, missing ones keep the prior (the operator is materialised)."""
    g = torch.Generator().manual_seed(9)
    mu, c = torch.rand(1, 2, 3, generator=g, dtype=F64), 0.1 + torch.rand(1, 2, 3, generator=g, dtype=F64)
    mask = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]], dtype=F64)
    prior, sigma_y = Gaussian(mu, c), 0.3
    y = mask * torch.rand(1, 1, 2, 3, generator=g, dtype=F64)
    post = prior.posterior(ops.Inpainting(mask), y, ops.GaussianNoise(sigma_y))
    obs = mask.bool()
    mean_want = torch.where(obs, (c * y[0] + sigma_y**2 * mu) / (c + sigma_y**2), mu)
    var_want = torch.where(obs, c * sigma_y**2 / (c + sigma_y**2), c)
    torch.testing.assert_close(post.mean, mean_want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(post.covariance, torch.diag(var_want.reshape(-1)), rtol=1e-10, atol=1e-12)
    assert post.image_shape == (1, 2, 3)


def test_posterior_complex_operator_matches_importance_sampling():
    """A complex matrix on real vectors, weighted by the noise model's own likelihood exp(-nll)."""
    prior = gaussian_3d()
    g = torch.Generator().manual_seed(8)
    a = torch.randn(1, 3, generator=g, dtype=torch.complex128)
    op, noise = ops.Matrix(a), ops.GaussianNoise(0.4)
    y = noise(op(prior.sample(1, generator=g)), generator=g)
    post = prior.posterior(op, y, noise)
    x0 = prior.sample(200_000, generator=g)
    est, se = self_normalised_is(x0, -noise.nll(y.expand(len(x0), 1), op(x0)))
    assert ((post.mean - est).abs() / se).max() < 4
    # the measurement carried information: the posterior is narrower than the prior in every direction
    assert torch.linalg.eigvalsh(prior.covariance - post.covariance).min() > -1e-12


def test_errors_name_the_argument():
    prior = gaussian_3d()
    with pytest.raises(ValueError, match="x"):
        prior.denoise(torch.zeros(2, 4), 0.1)
    with pytest.raises(ValueError, match="covs"):
        GaussianMixture(torch.ones(2), torch.zeros(2, 3), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.tensor([1.0, -1.0]), torch.zeros(2, 3), torch.ones(2))
    with pytest.raises(TypeError, match="noise"):
        prior.posterior(ops.Matrix(torch.ones(1, 3)), torch.ones(1, 1), object())
    big = ops.FunctionOperator(lambda x: x, lambda x: x, (3,), (3,))
    with pytest.raises(ValueError, match="max_entries"):
        prior.posterior(big, torch.ones(1, 3), ops.GaussianNoise(0.1), max_entries=8)
