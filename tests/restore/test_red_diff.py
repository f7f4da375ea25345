"""RED-Diff against its closed-form fixed point, and against the official update.

Theory: with a Gaussian prior N(m, C) the denoiser is linear, ``D(x) = m + C (C + s^2 I)^-1 (x - m)``, so
at a fixed level ``s`` the expected regulariser gradient is linear in ``mu``:

    E[(lam_t / (s n)) (mu - D(mu + s eps))] = (lam_t s / n) (C + s^2 I)^-1 (mu - m).

Adding the data term ``A^T (A mu - y) / m`` gives a Tikhonov problem whose solution is

    mu* = (A^T A / m + k P)^-1 (A^T y / m + k P m),   P = (C + s^2 I)^-1,  k = lam * w(s) * s / n,

and RED-Diff's Adam iterates, averaged, must converge to it for each weighting ``w``.
"""
from __future__ import annotations

import pytest
import torch

import operators as ops
import priors
from restore.red_diff import WEIGHTINGS, red_diff

D = 4


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py


class _FixedLevel:
    """A prior that visits one noise level ``s`` at every step (RED-Diff's expectation at that level)."""

    def __init__(self, prior, s):
        self.prior, self.s = prior, s
        self.image_shape, self.sigma_max = prior.image_shape, prior.sigma_max

    def denoise(self, x, sigma):
        return self.prior.denoise(x, sigma)

    def sigmas(self, steps):
        return torch.full((steps + 1,), self.s, dtype=torch.float64)


def _tikhonov_problem():
    g = torch.Generator().manual_seed(2)
    f = 0.5 * torch.randn(D, D, generator=g, dtype=torch.float64)
    C = f @ f.T + 0.05 * torch.eye(D, dtype=torch.float64)
    m = torch.tensor([0.5, -0.2, 0.1, 0.0], dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    A = 0.5 * Q  # a weak, well-conditioned data term: the regulariser moves the solution visibly
    y = 0.5 * torch.randn(1, D, generator=g, dtype=torch.float64)
    return priors.Gaussian(m, C), C, m, ops.Matrix(A), A, y


def _fixed_point(C, m, A, y, s, w, lam):
    P = torch.linalg.inv(C + s * s * torch.eye(D, dtype=torch.float64))
    k = lam * w(s) * s / D
    H = A.T @ A / A.shape[0] + k * P
    return torch.linalg.solve(H, A.T @ y[0] / A.shape[0] + k * P @ m)


@pytest.mark.parametrize("weighting", sorted(WEIGHTINGS))
def test_converges_to_tikhonov_fixed_point(weighting):
    prior, C, m, op, A, y = _tikhonov_problem()
    s, lam, steps = 0.3, 1.0, 800
    points = {name: _fixed_point(C, m, A, y, s, w, lam) for name, w in WEIGHTINGS.items()}
    target = points[weighting]
    tail = []
    # the average's error is the iterates' noise over ~chains x (steps/2) / autocorrelation: 256 chains
    red_diff(_FixedLevel(prior, s), op, y.expand(256, -1), ops.GaussianNoise(0.1), steps=steps, lr=0.02, lam=lam,
             weighting=weighting, generator=torch.Generator().manual_seed(0),
             callback=lambda d: tail.append(d["mu"]) if d["i"] >= steps // 2 else None)
    average = torch.stack(tail).mean((0, 1))  # over iterations and independent chains
    err = float((average - target).norm())
    nearest_other = min(float((target - p).norm()) for name, p in points.items() if name != weighting)
    start = float((torch.linalg.solve(A, y[0]) - target).norm())
    print(f"\nred_diff {weighting}: fixed-point error={err:.4f}, nearest other weighting's point "
          f"{nearest_other:.3f}, start {start:.3f}")
    assert err < 0.15 * nearest_other  # observed <= 0.05
    assert err < 0.05 * start


class _OnMinusOneOne(priors.Gaussian):
    """A Gaussian prior that says its network lived on [-1, 1] (``data_range``), as wrapped networks do."""

    data_range = (-1.0, 1.0)


@pytest.mark.parametrize("weighting", ["snr", "const"])
def test_matches_official_update_in_network_units(weighting):
    # The official loop (NVlabs/RED-diff algos/reddiff.py) on network data mu_net = lo + 2 mu:
    # loss = w(sigma_net) mean(sg(eps_hat - eps) mu_net) + mean((y_net - A mu_net)^2) / 2, Adam(lr).
    lo, scale, lam, lr, steps = -1.0, 2.0, 0.25, 0.1, 30
    g = torch.Generator().manual_seed(5)
    prior = _OnMinusOneOne(torch.full((D,), 0.5, dtype=torch.float64), 0.05 * torch.eye(D, dtype=torch.float64))
    A = torch.randn(2, D, generator=g, dtype=torch.float64)
    y = torch.randn(3, 2, generator=g, dtype=torch.float64)
    x_init = torch.rand(3, D, generator=g, dtype=torch.float64)
    ours = red_diff(prior, ops.Matrix(A), y, None, steps=steps, lam=lam, lr=lr, weighting=weighting, x_init=x_init,
                    generator=torch.Generator().manual_seed(0))

    noise = torch.Generator().manual_seed(0)
    mu_net = (lo + scale * x_init).clone().requires_grad_(True)
    y_net = scale * y + lo * A.sum(1)
    adam = torch.optim.Adam([mu_net], lr=lr, betas=(0.9, 0.99))
    w = WEIGHTINGS[weighting]
    for sigma in prior.sigmas(steps).tolist()[:steps]:
        s_net = scale * sigma
        eps = torch.randn(mu_net.shape, generator=noise, dtype=torch.float64)
        with torch.no_grad():
            x_t = mu_net + s_net * eps
            x0_net = lo + scale * prior.denoise((x_t - lo) / scale, sigma)
            eps_hat = (x_t - x0_net) / s_net
        loss = lam * w(s_net) * ((eps_hat - eps) * mu_net).mean() + ((y_net - mu_net @ A.T) ** 2).mean() / 2
        adam.zero_grad()
        loss.backward()
        adam.step()
    official = (mu_net.detach() - lo) / scale
    assert torch.allclose(ours, official, rtol=1e-5, atol=1e-6)


def test_mixture_estimate_climbs_the_posterior(gmm_noisy):
    # RED-Diff is a point estimate (q = delta(mu)), a posterior mode-seeker, not a sampler: with the
    # official defaults its estimates must sit where the exact posterior density is far higher than at
    # its start (the pseudo-inverse).
    p = gmm_noisy
    mu = red_diff(p.prior, p.op, p.y.expand(64, -1), p.noise, steps=200, generator=torch.Generator().manual_seed(0))
    log_post = p.posterior.log_prob(mu)
    start = float(p.posterior.log_prob(p.op.pinv(p.y)))
    err = float((mu.mean(0) - p.mean).norm())
    print(f"\nred_diff gmm: median log p(mu|y)={float(log_post.median()):.3f} (pinv start {start:.3f}, "
          f"max {float(p.posterior.log_prob(p.posterior.means).max()):.3f}); |mean(mu) - posterior mean|={err:.4f}")
    assert float(log_post.median()) > start + 0.3  # observed +0.6 nats (the best mode: +1.4)


def test_nonlinear_operator_needs_init_and_fits(gmm_noisy, Modulus):
    p = gmm_noisy
    g = torch.Generator().manual_seed(3)
    op = Modulus(torch.randn(6, D, generator=g, dtype=torch.float64))
    y = op(p.prior.sample(1, generator=g).to(torch.float64))
    with pytest.raises(ValueError, match="x_init"):
        red_diff(p.prior, op, y, None, steps=5)
    start = p.prior.sample(16, generator=g).to(torch.float64)
    mu = red_diff(p.prior, op, y.expand(16, -1), None, steps=300, lr=0.05, x_init=start,
                  generator=torch.Generator().manual_seed(0))
    assert not mu.requires_grad
    assert (op(mu) - y).norm(dim=1).median() < 0.3 * (op(start) - y).norm(dim=1).median()


def test_bad_inputs(gmm_noisy):
    p = gmm_noisy
    with pytest.raises(ValueError, match="weighting"):
        red_diff(p.prior, p.op, p.y, p.noise, steps=5, weighting="linear-ish")
    with pytest.raises(ValueError, match="y"):
        red_diff(p.prior, p.op, torch.full_like(p.y, float("nan")), p.noise, steps=5)
    with pytest.raises(ValueError, match="steps"):
        red_diff(p.prior, p.op, p.y, p.noise, steps=0)
    with pytest.raises(ValueError, match="prior"):
        red_diff(priors.Gaussian(torch.zeros(3), 1.0), p.op, p.y, p.noise, steps=5)


def test_diverged_reports_step_and_sigma(gmm_noisy, assert_diverges_below_one):
    assert_diverges_below_one(red_diff, gmm_noisy)
