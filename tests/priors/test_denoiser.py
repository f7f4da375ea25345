"""The denoiser interface: every prediction type and data range gives back x0 from an oracle network."""
import math

import pytest
import torch

import priors
from priors.random import global_rng_restored
from priors import schedules as sch


class Oracle(torch.nn.Module):
    """Returns what a perfect network of the given prediction type would output for a known x0."""

    def __init__(self, kind, x0_net, eps_net, s, c_in):
        super().__init__()
        self.kind, self.x0, self.eps, self.s, self.c_in = kind, x0_net, eps_net, s, c_in
        self.calls = []

    def forward(self, x_in, c_noise):
        self.calls.append(c_noise)
        alpha, sig_vp = self.c_in, self.s * self.c_in
        return {
            "eps": self.eps,
            "x0": self.x0,
            "v": alpha * self.eps - sig_vp * self.x0,
            "score": -self.eps / self.s / self.c_in,
        }[self.kind]


@pytest.mark.parametrize("kind", ["eps", "x0", "v", "score"])
@pytest.mark.parametrize("schedule", [sch.DiscreteVP.linear(), sch.DiscreteVP.cosine(), sch.ContinuousVP(), sch.VE()],
                         ids=["ddpm-linear", "ddpm-cosine", "vp", "ve"])
def test_wrap_recovers_x0_from_an_oracle(kind, schedule):
    if kind == "v" and isinstance(schedule, sch.VE):
        with pytest.raises(ValueError, match="schedule"):
            priors.wrap(torch.nn.Identity(), prediction="v", schedule=schedule)
        return
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 2, 5, 4, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.3, 2.0], dtype=torch.float64)
    n = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x = x0 + sigma[:, None, None, None] * n
    # In network units [-1, 1]: x0_net = 2 x0 - 1 and the noise level doubles.
    s = 2 * sigma[:, None, None, None]
    oracle = Oracle(kind, 2 * x0 - 1, n, s, schedule.c_in(s))
    prior = priors.wrap(oracle, prediction=kind, schedule=schedule, data_range=(-1, 1))
    torch.testing.assert_close(prior.denoise(x, sigma), x0, rtol=0, atol=1e-10)


def test_edm_wrap_matches_preconditioning_formula():
    with global_rng_restored():
        net = torch.nn.Conv2d(1, 1, 3, padding=1).double()
    edm = sch.EDM()
    prior = priors.wrap(lambda_module(net), prediction="edm", schedule=edm, data_range=(0, 1))
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 1.0], dtype=torch.float64).reshape(-1, 1, 1, 1)
    expected = edm.c_skip(sigma) * x + edm.c_out(sigma) * net(edm.c_in(sigma) * x)
    torch.testing.assert_close(prior.denoise(x, sigma.flatten()), expected)


def lambda_module(conv):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x, c_noise):
            return self.conv(x)

    return M()


def test_discrete_timestep_interpolates_log_sigma():
    schedule = sch.DiscreteVP.linear()
    table = schedule.sigma_table
    for t in (0, 1, 250, 999):
        assert float(schedule.c_noise(table[t : t + 1])) == pytest.approx(t, abs=1e-9)
    midpoint = (table[10].log() + table[11].log()).div(2).exp()
    assert float(schedule.c_noise(midpoint[None])) == pytest.approx(10.5, abs=1e-9)


def test_continuous_vp_time_inverts_sigma():
    schedule = sch.ContinuousVP()
    t = torch.tensor([1e-3, 0.2, 0.7, 1.0], dtype=torch.float64)
    torch.testing.assert_close(schedule.c_noise(schedule.sigma_at(t)), t)


def test_learned_variance_channels_are_dropped():
    class TwoC(torch.nn.Module):
        def forward(self, x, t):
            return torch.cat([torch.zeros_like(x), torch.full_like(x, 1e6)], dim=1)

    prior = priors.wrap(TwoC(), prediction="eps", learned_variance=True)
    x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prior.denoise(x, 0.2), x)


def test_sigma_range_and_schedule_are_in_image_units():
    prior = priors.wrap(torch.nn.Identity(), prediction="x0", schedule=sch.VE(0.02, 100.0), data_range=(-1, 1))
    assert prior.sigma_min == pytest.approx(0.01) and prior.sigma_max == pytest.approx(50.0)
    sigmas = prior.sigmas(10)
    assert sigmas.dtype == torch.float64 and len(sigmas) == 11 and sigmas[-1] == 0
    assert float(sigmas[0]) == pytest.approx(50.0) and bool((sigmas[:-1].diff() < 0).all())


def test_score_is_tweedie():
    prior = priors.Gaussian(torch.zeros(3), torch.eye(3) * 4.0)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # For N(0, 4 I) the noisy density is N(0, (4 + s^2) I): score = -x / (4 + s^2).
    torch.testing.assert_close(priors.score(prior, x, 0.5), -x / 4.25)


def test_karras_schedule_endpoints():
    sigmas = sch.karras(18, 0.002, 80.0)
    assert len(sigmas) == 19 and sigmas[-1] == 0
    assert float(sigmas[0]) == pytest.approx(80.0) and float(sigmas[-2]) == pytest.approx(0.002)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="prediction"):
        priors.wrap(torch.nn.Identity(), prediction="noise")
    with pytest.raises(ValueError, match="data_range"):
        priors.wrap(torch.nn.Identity(), data_range=(1, 1))
    with pytest.raises(ValueError, match="sigma"):
        priors.wrap(torch.nn.Identity(), prediction="x0").denoise(torch.zeros(2, 1, 2, 2), torch.ones(3))
    with pytest.raises(ValueError, match="sigma_min"):
        sch.karras(5, 1.0, 0.5)
