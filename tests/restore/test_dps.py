"""DPS: the official update reproduced exactly, and samples against exact posteriors.

DPS is not an exact sampler: it replaces ``p(y | x_t)`` by ``p(y | x0_hat(x_t))`` and takes a hand-set
step ``zeta / ||y - A x0_hat||``, so its samples carry a bias that depends on ``zeta`` and the number
of steps. The statistical tests therefore bound it loosely (far nearer the posterior than the prior
is), while the update itself is checked exactly against the official VP-space formula.
"""
from __future__ import annotations

import pytest
import torch

import operators as ops
import priors
from restore.dps import ancestral_step, dps, residual_norm, vp_step_scale

N = 1000


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py


def test_ancestral_step_is_ddpm_posterior_in_vp_units():
    # Ho et al. 2020 eq. 7 on x_vp = sqrt(abar) x: mean coefficients and variance beta_tilde.
    s, s_next = 1.7, 0.9
    abar, abar_prev = 1 / (1 + s**2), 1 / (1 + s_next**2)
    alpha = abar / abar_prev
    beta = 1 - alpha
    g = torch.Generator().manual_seed(0)
    x, x0, z = (torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in range(3))
    x_vp = abar**0.5 * x
    mean = abar_prev**0.5 * beta / (1 - abar) * x0 + alpha**0.5 * (1 - abar_prev) / (1 - abar) * x_vp
    var = (1 - abar_prev) / (1 - abar) * beta
    expected = (mean + var**0.5 * z) / abar_prev**0.5
    assert torch.allclose(ancestral_step(x, x0, s, s_next, z), expected, atol=1e-12)


@pytest.mark.parametrize("data_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_guidance_step_matches_official_vp_update(data_range):
    # The official code: x_vp_{i-1} -= zeta * grad_{x_vp_i} ||y_net - A(x0_net)|| on network data
    # x_net = lo + scale * x. Ours acts on image-unit VE states; the two must agree exactly.
    lo, hi = data_range
    scale = hi - lo
    g = torch.Generator().manual_seed(1)
    A = torch.randn(3, 4, generator=g, dtype=torch.float64)
    prior = priors.Gaussian(torch.full((4,), 0.4, dtype=torch.float64), 0.2 * torch.eye(4, dtype=torch.float64))
    y = torch.randn(2, 3, generator=g, dtype=torch.float64)
    x = torch.randn(2, 4, generator=g, dtype=torch.float64)
    s, s_next, zeta = 0.8, 0.5, 0.3

    # official, in network units
    s_net, s_next_net = scale * s, scale * s_next
    abar, abar_prev = 1 / (1 + s_net**2), 1 / (1 + s_next_net**2)
    x_vp = (abar**0.5 * (lo + scale * x)).requires_grad_(True)
    x_img = (x_vp / abar**0.5 - lo) / scale
    x0_net = lo + scale * prior.denoise(x_img, s)
    y_net = lo * A.sum(1) + scale * y  # A applied to lo + scale * x0
    norm = torch.linalg.vector_norm(y_net - x0_net @ A.T, dim=1).sum()
    (grad_vp,) = torch.autograd.grad(norm, x_vp)
    step_official = -zeta * grad_vp / abar_prev**0.5 / scale  # the change of the image-unit VE state

    # ours
    x_i = x.clone().requires_grad_(True)
    ours = residual_norm(ops.GaussianNoise(0.1), y, prior.denoise(x_i, s) @ A.T).sum()
    (grad,) = torch.autograd.grad(ours, x_i)
    step_ours = -zeta * vp_step_scale(s, s_next, scale) * grad
    assert torch.allclose(step_ours, step_official, rtol=1e-10, atol=1e-12)


def test_poisson_norm_is_lambda_weighted():
    noise = ops.PoissonNoise(gain=0.05)
    y = torch.tensor([[0.5, 1.0, 0.0]], dtype=torch.float64)
    y_pred = torch.tensor([[0.4, 1.2, 0.1]], dtype=torch.float64)
    counts = (y / 0.05).clamp(min=1)  # Lambda = 1 / (2 k) on photon counts k = y / gain
    expected = (((y - y_pred) / 0.05) ** 2 / (2 * counts)).sum().sqrt()
    assert torch.allclose(residual_norm(noise, y, y_pred), expected.reshape(1))


def _check_against_posterior(name, prior, op, y, noise, post, exact, floor, sliced_wasserstein, **hyper):
    xs = dps(prior, op, y.expand(N, -1), noise, generator=torch.Generator().manual_seed(0), **hyper)
    sw = sliced_wasserstein(xs, exact)
    prior_sw = sliced_wasserstein(prior.sample(N, generator=torch.Generator().manual_seed(5)), exact)
    err = float((xs.mean(0) - post.mean.reshape(-1)).norm())
    prior_err = float((prior.mean.reshape(-1) - post.mean.reshape(-1)).norm())
    print(f"\ndps {name}: SW={sw:.4f} floor={floor:.4f} prior SW={prior_sw:.4f} mean_err={err:.4f} "
          f"prior mean_err={prior_err:.4f}")
    return sw, prior_sw, err, prior_err


def test_isotropic_gaussian_near_exact(sliced_wasserstein, iso_problem):
    prior, op, y, noise, g = iso_problem(0.1)  # N(m, I)
    post = prior.posterior(op, y, noise)
    exact, exact2 = post.sample(N, generator=g), post.sample(N, generator=g)
    floor = sliced_wasserstein(exact, exact2)
    sw, _, err, _ = _check_against_posterior("iso", prior, op, y, noise, post, exact, floor, sliced_wasserstein,
                                             steps=200, zeta=0.1)
    se = float(post.covariance.trace().sqrt()) / N**0.5
    assert sw < 2 * floor  # observed ~0.9x the floor at this zeta / step count
    assert err < 3 * se


def test_mixture_bounded_bias(gmm_noisy, sliced_wasserstein):
    p = gmm_noisy
    sw, prior_sw, err, prior_err = _check_against_posterior(
        "gmm", p.prior, p.op, p.y, p.noise, p.posterior, p.exact, p.floor, sliced_wasserstein, steps=200, zeta=0.3)
    # zeta acts on the unit-norm rescaled problem (||A|| = 2.86 here), where the official 0.3 fits
    assert sw < 0.25 * prior_sw  # observed ~0.09
    assert err < 0.25 * prior_err


def test_nonlinear_operator_fits_measurement(gmm_noisy, modulus_problem):
    p = gmm_noisy
    op, y, g = modulus_problem(p.prior)
    # zeta / ||r|| makes every step a fixed length; in 4-D it must be small (0.3 oscillates at ~1.0)
    xs = dps(p.prior, op, y.expand(200, -1), ops.GaussianNoise(0.02), steps=100, zeta=0.03,
             generator=torch.Generator().manual_seed(0))
    prior_xs = p.prior.sample(200, generator=g).to(torch.float64)
    fit = (op(xs) - y).norm(dim=1).median()
    assert fit < 0.15 * (op(prior_xs) - y).norm(dim=1).median()  # observed 0.06


def test_poisson_noise_runs_and_fits(gmm_noisy):
    p = gmm_noisy
    g = torch.Generator().manual_seed(4)
    A = torch.rand(3, 4, generator=g, dtype=torch.float64)
    op, noise = ops.Matrix(A), ops.PoissonNoise(gain=0.01)
    x = p.prior.sample(1, generator=g).to(torch.float64).abs()
    y = noise(op(x), generator=g)
    xs = dps(p.prior, op, y.expand(200, -1), noise, steps=100, zeta=0.1, generator=torch.Generator().manual_seed(0))
    prior_xs = p.prior.sample(200, generator=g).to(torch.float64)
    assert (op(xs) - y).norm(dim=1).median() < 0.3 * (op(prior_xs) - y).norm(dim=1).median()


def test_reproducible_with_generator(gmm_noisy):
    p = gmm_noisy
    def run():
        return dps(p.prior, p.op, p.y.expand(4, -1), p.noise, steps=10, generator=torch.Generator().manual_seed(7))

    assert torch.equal(run(), run())


def test_bad_inputs(gmm_noisy):
    p = gmm_noisy
    with pytest.raises(ValueError, match="y"):
        dps(p.prior, p.op, torch.full_like(p.y, float("inf")), p.noise, steps=5)
    with pytest.raises(ValueError, match="y"):
        dps(p.prior, p.op, p.y[:, :1], p.noise, steps=5)
    with pytest.raises(ValueError, match="steps"):
        dps(p.prior, p.op, p.y, p.noise, steps=0)
    with pytest.raises(ValueError, match="noise"):
        dps(p.prior, p.op, p.y, -0.1, steps=5)


def test_diverged_reports_step_and_sigma(gmm_noisy, assert_diverges_below_one):
    assert_diverges_below_one(dps, gmm_noisy)
