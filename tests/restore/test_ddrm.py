"""DDRM against exact answers."""
from __future__ import annotations

import pytest
import torch

import operators as ops
import priors
import restore
from restore.ddrm import ddrm

N = 4000


class NoSVD(ops.LinearOperator):
    """A matrix that hides its SVD (prox / pinv fall back to CG)."""

    def __init__(self, A):
        super().__init__((A.shape[1],), (A.shape[0],), name="NoSVD")
        self.A = A

    def _apply(self, x):
        return x @ self.A.to(x.dtype).T

    def _adjoint(self, y):
        return y @ self.A.to(y.dtype)


@pytest.mark.parametrize("eta, eta_b", [(0.85, 1.0), (0.0, 1.0), (1.0, 1.0)])
def test_zero_noise_reproduces_the_measured_subspace_exactly(gmm_noiseless, eta, eta_b):
    p = gmm_noiseless
    y = p.y.expand(64, -1)
    x = ddrm(p.prior, p.op, y, None, steps=20, generator=torch.Generator().manual_seed(0), eta=eta, eta_b=eta_b)
    assert x.dtype == y.dtype and x.shape == (64, 4)
    torch.testing.assert_close(p.op(x), y, rtol=0, atol=1e-12)
    # and the null-space part is not the pseudo-inverse's zero: the prior filled it in
    null = x - p.op.pinv(y)
    assert float(null.norm(dim=1).min()) > 1e-3


def test_exact_posterior_sampler_at_zero_noise_for_independent_spectral_coordinates(
        gaussian_spectral_noiseless, assert_exact):
    # cov diagonal in A's right singular basis and sigma_y = 0: the posterior pins the measured
    # coordinates to y_bar (DDRM's eta_b = 1 sets them exactly) and leaves the unmeasured ones at the
    # prior, independent of them; there DDRM with eta = 0 is the DDIM flow (a consistent ODE
    # discretisation), so the samples are exact up to time discretisation.
    p = gaussian_spectral_noiseless
    x = ddrm(p.prior, p.op, p.y.expand(N, -1), p.noise, steps=200, generator=torch.Generator().manual_seed(1),
             eta=0.0, eta_b=1.0)
    assert_exact(x, p)


def test_eta_above_zero_is_not_a_consistent_sampler(gaussian_spectral_noiseless, sliced_wasserstein):
    # DDRM's eta injects eta * sigma_{t-1} fresh noise per step whatever the step size, so for
    # eta > 0 the unmeasured coordinates do not converge to the prior: the variance shrinks.
    p = gaussian_spectral_noiseless
    x = ddrm(p.prior, p.op, p.y.expand(N, -1), p.noise, steps=200, generator=torch.Generator().manual_seed(1),
             eta=0.85)
    assert sliced_wasserstein(x, p.exact) > 2 * p.floor


def test_sliced_wasserstein_detects_the_known_bias_on_a_correlated_prior(gaussian_noisy, sliced_wasserstein):
    # DDRM uses the unconditional denoiser on unobserved coordinates; with a correlated prior that
    # ignores what y says about them (Kawar et al. 2022, sec. 4), so the test statistic must flag it.
    p = gaussian_noisy
    x = ddrm(p.prior, p.op, p.y.expand(N, -1), p.noise, steps=100, generator=torch.Generator().manual_seed(2),
             eta=0.0)
    assert sliced_wasserstein(x, p.exact) > 2 * p.floor


def test_operator_without_svd_is_refused_with_what_is_missing(gmm_noisy):
    p = gmm_noisy
    with pytest.raises(ValueError, match=r"^op: ddrm needs .*singular value decomposition.*NoSVD"):
        ddrm(p.prior, NoSVD(p.A), p.y, p.noise, steps=5)


def test_callback_sees_every_step_in_order_and_generator_makes_it_reproducible(gmm_noisy):
    p = gmm_noisy
    seen = []
    x1 = ddrm(p.prior, p.op, p.y.expand(8, -1), p.noise, steps=7, generator=torch.Generator().manual_seed(3),
              callback=seen.append)
    x2 = ddrm(p.prior, p.op, p.y.expand(8, -1), p.noise, steps=7, generator=torch.Generator().manual_seed(3))
    assert [d["i"] for d in seen] == list(range(7))
    sig = torch.stack([torch.as_tensor(d["sigma"]) for d in seen])
    torch.testing.assert_close(sig, p.prior.sigmas(7)[:-1].to(sig.dtype))
    torch.testing.assert_close(seen[-1]["x0_hat"], p.prior.denoise(seen[-1]["x"], seen[-1]["sigma"]))
    assert torch.equal(x1, x2)
    assert "ddrm" in restore.SOLVERS and restore.SOLVERS["ddrm"] is ddrm


@pytest.mark.parametrize("solver", ["ddrm", "ddnm"])
def test_noisy_y_leaves_a_barely_measured_direction_at_its_exact_posterior(solver):
    # A = U diag(1, 0.01) V^T and a Gaussian prior diagonal in V: the s = 0.01 direction sees y's noise
    # amplified 100x, so its exact posterior is almost the prior (std 0.4468 against the prior's 0.4472).
    # Without truncating tiny singular values, each step pulls that direction to y's scaled residual and
    # its samples collapse (std below half the exact one); with the official rcond it follows the prior.
    g = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    u, _ = torch.linalg.qr(torch.randn(2, 2, generator=g, dtype=torch.float64))
    A = u @ torch.diag(torch.tensor([1.0, 0.01], dtype=torch.float64)) @ q[:, :2].T
    c = torch.tensor([0.5, 0.2, 0.3, 0.1], dtype=torch.float64)
    prior = priors.Gaussian(torch.tensor([0.3, 0.0, -0.3, 0.1], dtype=torch.float64), q @ torch.diag(c) @ q.T)
    op, noise = ops.Matrix(A), ops.GaussianNoise(0.1)
    y = op(prior.sample(1, generator=g)) + 0.1 * torch.randn(1, 2, generator=g, dtype=torch.float64)
    exact = prior.posterior(op, y, noise)
    x = restore.SOLVERS[solver](prior, op, y.expand(N, -1), noise, steps=200, eta=0.0,
                                generator=torch.Generator().manual_seed(6))
    weak = q[:, 1]  # the right singular vector of s = 0.01
    exact_mean, exact_std = float(exact.mean.reshape(-1) @ weak), float(weak @ exact.covariance @ weak) ** 0.5
    coords = x @ weak
    assert abs(float(coords.mean()) - exact_mean) < 4 * exact_std / N ** 0.5
    assert abs(float(coords.std()) / exact_std - 1) < 0.05
