"""Unconditional samplers on exact priors: distribution (sliced Wasserstein against exact samples, next
to the exact-vs-exact floor), convergence order against the exact probability-flow ODE of a Gaussian,
DDPM = DDIM(eta=1), and samples that do not depend on the batch size."""
from __future__ import annotations

import pytest
import torch

from priors.exact import Gaussian, GaussianMixture
from priors.sample import sample, sample_ddim, sample_heun, output_moments, sliced_wasserstein
from priors.schedules import karras

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py


def mixture(d: int, k: int, seed: int = 0) -> GaussianMixture:
    """Well-separated modes with random anisotropic covariances."""
    g = torch.Generator().manual_seed(seed)
    means = 1.5 * torch.randn(k, d, generator=g, dtype=F64)
    f = torch.randn(k, d, d, generator=g, dtype=F64) * (0.5 / d**0.5)
    weights = torch.rand(k, generator=g, dtype=F64) + 0.5
    return GaussianMixture(weights, means, f @ f.transpose(1, 2) + 0.01 * torch.eye(d, dtype=F64))


def _sw(a, b) -> float:
    return sliced_wasserstein(a, b, n_proj=128, generator=torch.Generator().manual_seed(99))


@pytest.mark.parametrize(("d", "k", "method", "steps", "hyper"), [
    (2, 4, "heun", 40, {}),
    (16, 5, "heun", 40, {}),
    (16, 5, "ddpm", 100, {}),
])
def test_sampler_reaches_exact_floor(d, k, method, steps, hyper):
    """SW2(sampler, exact) against the floor SW2(exact, exact') at the same n; a correct sampler with
    enough steps is indistinguishable from exact samples, so it sits near the floor."""
    prior, n = mixture(d, k), 2000
    reference = prior.sample(n, generator=torch.Generator().manual_seed(1))
    floor = sum(_sw(prior.sample(n, generator=torch.Generator().manual_seed(s)), reference) for s in (2, 3, 4)) / 3
    dist = sum(_sw(sample(prior, n, steps, method=method, generator=torch.Generator().manual_seed(s), **hyper),
                   reference) for s in (10, 11)) / 2
    assert dist < 1.5 * floor, f"{method} {steps} steps: SW {dist:.4f} vs exact floor {floor:.4f}"


def test_too_few_steps_is_detected():
    """The check has teeth: 10 Heun steps from sigma_max = 100x the data scale are visibly biased."""
    prior, n = mixture(2, 4), 2000
    reference = prior.sample(n, generator=torch.Generator().manual_seed(1))
    floor = sum(_sw(prior.sample(n, generator=torch.Generator().manual_seed(s)), reference) for s in (2, 3, 4)) / 3
    assert _sw(sample(prior, n, 10, generator=torch.Generator().manual_seed(10)), reference) > 1.5 * floor


@pytest.mark.parametrize(("sampler", "order"), [(sample_heun, 2), (sample_ddim, 1)])
def test_convergence_order_on_the_gaussian_ode(sampler, order):
    """For N(mu, c I) the probability-flow ODE is solved by ``x(s) - mu = (x(S) - mu) sqrt((c + s^2) /
    (c + S^2))``. Heun (Karras et al. 2022, Alg. 1) is second order, deterministic DDIM is Euler in sigma:
    doubling the steps divides the error by ~4 and ~2."""
    c, mu = 0.25, torch.tensor([0.3, -0.2], dtype=F64)
    prior = Gaussian(mu, c * torch.eye(2, dtype=F64))
    x_start = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    errors = []
    for steps in (16, 32, 64):
        sigmas = karras(steps, 0.01, 50.0)[:-1]  # stop at sigma_min: pure ODE steps, no final jump to 0
        x = sampler(prior.denoise, sigmas[0] * x_start, sigmas)
        exact = mu + (sigmas[0] * x_start - mu) * ((c + sigmas[-1] ** 2) / (c + sigmas[0] ** 2)) ** 0.5
        errors.append((x - exact).abs().max().item())
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    assert all(abs(r - 2**order) < 0.6 * order for r in ratios), f"errors {errors}, ratios {ratios}"


@pytest.mark.parametrize(("method", "order"), [("heun", 2), ("ddim", 1), ("ddpm", 1)])
def test_output_variance_converges_at_the_sampler_order(method, order):
    """On N(mu, diag(lam)) with lam over four decades, each sampler's output variance tends to lam as
    the steps double, at its order (DDPM and DDIM first, Heun second), and the mean to mu."""
    lam = torch.tensor([1e-4, 1e-2, 1.0, 4.0], dtype=F64)
    prior = Gaussian(torch.full((4,), 0.5, dtype=F64), lam)
    errors = []
    for steps in (100, 200):
        mean, var = output_moments(prior, method, steps)
        errors.append((var / lam - 1).abs().max().item())
        # starting from N(0, sigma_max^2) instead of p_sigma_max costs |mu| sqrt(lam) / sigma_max at most
        assert (mean - 0.5).abs().max() < 0.5 * 2 / prior.sigma_max * 1.1
    assert abs(errors[0] / errors[1] - 2**order) < 0.3 * 2**order, errors
    assert errors[1] < (0.005 if order == 2 else 0.15), errors


def test_ddpm_is_ddim_with_eta_one():
    """Ho et al.'s ancestral step with the posterior variance beta_tilde and Song et al.'s DDIM with
    eta = 1 are the same transition; with the same noise they give the same samples."""
    prior = mixture(3, 3)
    a = sample(prior, 50, 30, method="ddpm", generator=torch.Generator().manual_seed(5))
    b = sample(prior, 50, 30, method="ddim", eta=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    c = sample(prior, 50, 30, method="ddpm", variance="large", generator=torch.Generator().manual_seed(5))
    assert (a - c).abs().max() > 1e-3  # the other variance choice is a different sampler


@pytest.mark.parametrize("method", ["heun", "ddim", "ddpm"])
def test_samples_do_not_depend_on_batch_size(method):
    means = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    prior = GaussianMixture(torch.tensor([0.5, 0.5]), means, torch.tensor([0.01, 0.02]))
    hyper = {"churn": 5.0} if method == "heun" else {"eta": 0.5} if method == "ddim" else {}
    big = sample(prior, 7, 12, method=method, generator=torch.Generator().manual_seed(3), **hyper)
    small = sample(prior, 3, 12, method=method, generator=torch.Generator().manual_seed(3), **hyper)
    assert big.shape == (7, 1, 3, 3) and big.dtype == torch.float32
    torch.testing.assert_close(big[:3], small, rtol=0, atol=0)
    assert (big[0] - big[1]).abs().max() > 0  # and different samples did get different noise


def test_callback_sees_every_step():
    seen = []
    prior = mixture(2, 2)
    sample(prior, 4, 6, method="ddim", callback=seen.append, generator=torch.Generator().manual_seed(0))
    assert [s["i"] for s in seen] == list(range(6))
    assert [s["sigma"] for s in seen] == pytest.approx(prior.sigmas(6)[:-1].tolist())


def test_errors_name_the_argument():
    prior = mixture(2, 2)
    with pytest.raises(ValueError, match="method"):
        sample(prior, 2, 5, method="euler_a")
    with pytest.raises(ValueError, match="sigmas"):
        sample(prior, 2, sigmas=torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="steps"):
        sample(prior, 2)
    anyshape = mixture(2, 2)
    anyshape.image_shape = None
    with pytest.raises(ValueError, match="shape"):
        sample(anyshape, 2, 5)
    with pytest.raises(ValueError, match="generator"):
        sample(prior, 2, 5, generator=[torch.Generator()])


def test_sliced_wasserstein_of_unequal_sizes_matches_the_equal_size_distance():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4000, 3, generator=g, dtype=torch.float64) + 1.0
    equal = sliced_wasserstein(a, b, generator=torch.Generator().manual_seed(1))
    unequal = sliced_wasserstein(a, b[:1000], generator=torch.Generator().manual_seed(1))
    assert abs(unequal - equal) < 0.05 * equal  # a shift of 1 in 3-D: SW ~ 1/sqrt(3)
    with pytest.raises(ValueError, match="a, b"):
        sliced_wasserstein(a, b[:, :2])
