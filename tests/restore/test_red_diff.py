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


# --- issue 13: the official details, each pinned against a reference loop in network units ---------

def _official_loop(prior, y_obs_net, keep, mu_net0, sigmas, lam, lr, steps_noise, weighting="snr"):
    """NVlabs/RED-diff algos/reddiff.py on network data: torch's Adam (eps 1e-8), the data term averaged
    over the observed entries ``keep`` only, the regulariser over all n entries."""
    lo, scale = prior.data_range[0], prior.data_range[1] - prior.data_range[0]
    mu_net = mu_net0.clone().requires_grad_(True)
    adam = torch.optim.Adam([mu_net], lr=lr, betas=(0.9, 0.99))
    w = WEIGHTINGS[weighting]
    for sigma in sigmas:
        s_net = scale * sigma
        eps = torch.randn(mu_net.shape, generator=steps_noise).double()  # the solver's draws: float32, cast
        with torch.no_grad():
            x_t = mu_net + s_net * eps
            x0_net = lo + scale * prior.denoise((x_t - lo) / scale, sigma)
            eps_hat = (x_t - x0_net) / s_net
        # per-sample means (the official batch mean would couple images through Adam's eps only)
        loss = (lam * w(s_net) * ((eps_hat - eps) * mu_net).mean(1) + ((y_obs_net - mu_net[:, keep]) ** 2).mean(1) / 2).sum()
        adam.zero_grad()
        loss.backward()
        adam.step()
    return (mu_net.detach() - lo) / scale


def _inpainting_problem(d=16):
    g = torch.Generator().manual_seed(11)
    prior = _OnMinusOneOne(torch.full((d,), 0.5, dtype=torch.float64), 0.05 * torch.eye(d, dtype=torch.float64))
    mask = torch.zeros(d)
    mask[torch.randperm(d, generator=g)[: d // 2]] = 1
    op = ops.Inpainting(mask.double())
    x = prior.sample(2, generator=g).to(torch.float64)
    y = op(x) + 0.025 * mask * torch.randn(x.shape, generator=g, dtype=torch.float64)
    return prior, op, mask.bool(), y


def test_inpainting_averages_over_observed_entries_and_starts_at_the_network_zero():
    prior, op, keep, y = _inpainting_problem()
    steps, lam, lr = 25, 0.25, 0.1
    ours = red_diff(prior, op, y, ops.GaussianNoise(0.025), steps=steps, lam=lam, lr=lr,
                    generator=torch.Generator().manual_seed(0))
    y_obs_net = -1 + 2 * y[:, keep]
    mu0 = torch.zeros_like(y)  # official H_pinv(y_net): observed entries, 0 (the network's zero) in the holes
    mu0[:, keep] = y_obs_net
    official = _official_loop(prior, y_obs_net, keep, mu0, prior.sigmas(steps).tolist()[:steps], lam, lr,
                              torch.Generator().manual_seed(0))
    assert float((ours - official).abs().max()) < 1e-10
    # the old data term (mean over all 16 entries) and the old start (0 in the holes) are far off
    assert float((ours - red_diff(prior, op, y, ops.GaussianNoise(0.025), steps=steps, lam=lam, lr=lr,
                                  x_init=op.pinv(y), generator=torch.Generator().manual_seed(0))).abs().max()) > 1e-2


def test_start_fills_holes_with_the_network_zero():
    from restore.red_diff import initial_mu
    prior, op, keep, y = _inpainting_problem()
    start = initial_mu(op, y, None, zero=0.5)
    assert torch.equal(start[:, ~keep], torch.full_like(start[:, ~keep], 0.5))  # 0 in [-1, 1] units
    torch.testing.assert_close(start[:, keep], y[:, keep])
    assert torch.equal(initial_mu(op, y, None, zero=0.0)[:, ~keep], torch.zeros_like(start[:, ~keep]))  # [0, 1] net
    # SR by box averaging measures constants: the start is the plain pseudo-inverse
    sr = ops.Downsample((1, 8, 8), 4)
    ysr = torch.rand(2, *sr.out_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(initial_mu(sr, ysr, None, zero=0.5), sr.pinv(ysr, rcond=3e-2))


def test_measured_entries():
    from restore.red_diff import measured_entries
    prior, op, keep, y = _inpainting_problem()
    assert measured_entries(op, y) == int(keep.sum())
    assert measured_entries(ops.Matrix(torch.ones(3, 16, dtype=torch.float64)), torch.zeros(1, 3)) == 3
    img = ops.Inpainting(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), in_shape=(3, 2, 2))
    assert measured_entries(img, torch.zeros(1, 3, 2, 2)) == 3  # one pixel in each of 3 channels


def test_adam_eps_is_in_network_units():
    # Tiny gradients (a weak operator, no regulariser): Adam's eps decides the step size. The official eps
    # 1e-8 acts on network-unit gradients, 2x ours on [-1, 1]: ours must use 1e-8 / 2 to take the same steps.
    prior, op, keep, y = _inpainting_problem()
    a = 1e-3
    select = a * torch.eye(16, dtype=torch.float64)[keep]  # A = a S: the observed entries, scaled down
    steps, lr = 10, 0.1
    x_init = torch.full_like(y, 0.3)
    ours = red_diff(prior, ops.Matrix(select), y[:, keep] * a, None, steps=steps, lam=0.0, lr=lr, x_init=x_init,
                    generator=torch.Generator().manual_seed(0))
    mu_net = (-1 + 2 * x_init).requires_grad_(True)
    adam = torch.optim.Adam([mu_net], lr=lr, betas=(0.9, 0.99))
    y_net = -1 * select.sum(1) + 2 * a * y[:, keep]  # y_net = A x_net for x_net = -1 + 2 x
    for _ in range(steps):
        loss = ((y_net - mu_net @ select.T) ** 2).mean(1).sum() / 2  # per-sample mean, samples independent
        adam.zero_grad()
        loss.backward()
        adam.step()
    official = (mu_net.detach() + 1) / 2
    with_old_eps = float((official - ours).abs().max())
    assert float((official - x_init).abs().max()) > 0.05  # the eps-limited steps do move mu
    assert with_old_eps < 1e-12  # with eps 1e-8 in our units the steps differ by ~1e-2


class _Eps(torch.nn.Module):
    def forward(self, x, t):
        return 0.1 * x


def test_official_grid_is_the_stride_grid():
    prior = priors.wrap(_Eps(), prediction="eps", image_shape=(1, 4, 4))
    op = ops.Inpainting(torch.ones(4, 4), in_shape=(1, 4, 4))
    y = torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64)
    seen = {}
    for official in (False, True):
        levels = []
        red_diff(prior, op, y, None, steps=10, official=official, generator=torch.Generator().manual_seed(0),
                 callback=lambda d: levels.append(float(d["sigma"])))
        seen[official] = torch.tensor(levels, dtype=torch.float64)
    table = prior.schedule.sigma_table / 2
    torch.testing.assert_close(seen[True], table[torch.arange(900, -1, -100)], rtol=1e-12, atol=0)
    torch.testing.assert_close(seen[False], table[torch.linspace(999, 0, 10).round().long()], rtol=1e-12, atol=0)
