"""DiffPIR against exact answers."""
from __future__ import annotations

import torch

from restore.diffpir import diffpir
from test_ddrm import NoSVD

N = 4000


def test_zero_noise_last_prox_bounds_the_residual(gmm_noiseless):
    # The last step returns prox(x0_hat, y, rho) with rho = lam * 0.001^2 / sigma_last^2, whose
    # residual in each singular direction is rho / (s^2 + rho) times that of x0_hat.
    p = gmm_noiseless
    seen = []
    y = p.y.expand(32, -1)
    x = diffpir(p.prior, p.op, y, None, steps=20, generator=torch.Generator().manual_seed(0), callback=seen.append)
    sigma_last = float(seen[-1]["sigma"])
    rho = 7.0 * 1e-6 / sigma_last ** 2  # an exact prior has no network range: width 1
    s_min = float(p.op.svd.s[: p.A.shape[0]].min())
    bound = rho / (s_min ** 2 + rho) * (p.op(seen[-1]["x0_hat"]) - y).norm(dim=1)
    assert bool(((p.op(x) - y).norm(dim=1) <= bound * (1 + 1e-9) + 1e-12).all())


def test_cg_prox_gives_the_same_samples_as_the_closed_form(gmm_noisy):
    p = gmm_noisy
    y = p.y.expand(16, -1)
    x1 = diffpir(p.prior, p.op, y, p.noise, steps=15, generator=torch.Generator().manual_seed(1))
    x2 = diffpir(p.prior, NoSVD(p.A), y, p.noise, steps=15, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x1, x2, rtol=0, atol=1e-5)


def test_exact_posterior_sampler_at_zero_noise_for_independent_spectral_coordinates(
        gaussian_spectral_noiseless, assert_exact):
    # zeta = 0: the move is the DDIM flow; the prox leaves the null space at D(x_t) and pulls the
    # range onto y (rho -> 0 at zero noise), and the two parts are independent under this prior.
    p = gaussian_spectral_noiseless
    x = diffpir(p.prior, p.op, p.y.expand(N, -1), None, steps=200, generator=torch.Generator().manual_seed(2),
                lam=1.0, zeta=0.0)
    assert_exact(x, p, pinned_atol=1e-4)  # the range is pulled onto y up to rho / (s^2 + rho)


def test_near_exact_posterior_with_noise_in_consistent_units(gaussian_spectral, assert_exact):
    # lam = 1 makes rho_t = sigma_y^2 / sigma_t^2 for a prior without a network range, the weighting
    # of y against D(x_t) that a Gaussian model of D's error implies. Not a theorem (the error of
    # D(x_t) is not sigma_t^2 I): measured 7% low std on the least-measured direction at 200 steps,
    # hence std_rtol=0.1. A wrong unit (lam = 4 or 1/4) fails this test.
    p = gaussian_spectral
    x = diffpir(p.prior, p.op, p.y.expand(N, -1), p.noise, steps=200, generator=torch.Generator().manual_seed(2),
                lam=1.0, zeta=0.0)
    assert_exact(x, p, std_rtol=0.1)
