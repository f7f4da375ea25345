"""Official settings as data and the official modes (issue 13): each detail that differs from our
default is pinned here (grids, starts, learned variance, DAPS's K Euler steps and i/(N+1) decay,
PiGDM's official guidance, DiffPIR's last step)."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

import operators as ops
import priors
import restore
import importlib
from priors.schedules import DiscreteVP, karras
from restore import official
from restore.official import OFFICIAL, official_hyper, official_sources

pytestmark = pytest.mark.usefixtures("one_thread")

daps_module = importlib.import_module("restore.daps")
ddrm_module = importlib.import_module("restore.ddrm")


# --- the table -------------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", sorted(OFFICIAL))
def test_every_value_names_its_source_and_fits_the_solver(solver):
    params = inspect.signature(restore.SOLVERS[solver]).parameters
    for task in OFFICIAL[solver]:
        hyper, sources = official_hyper(solver, task), official_sources(solver, task)
        assert set(hyper) == set(sources)
        assert set(hyper) <= set(params), f"{solver}/{task}: {set(hyper) - set(params)} not accepted"
        for key, src in sources.items():
            if key != "official":
                assert "@" in src and src.count(":") >= 2, src  # owner/repo@commit:file:key


def test_values_from_the_official_configs():
    assert official_hyper("dps", "super_resolution")["zeta"] == 0.3
    assert official_hyper("dps", "gaussian_blur")["zeta"] == 0.3
    assert official_hyper("dps", "inpainting")["zeta"] == 0.5
    assert official_hyper("dps", "phase_retrieval")["zeta"] == 1.0
    assert official_hyper("daps", "sr")["lr"] == 1e-4 and official_hyper("daps", "inpainting_box")["lr"] == 5e-5
    assert official_hyper("daps", "nonlinear_blur")["langevin_steps"] == 200
    assert official_hyper("ddrm", "sr4") == {"eta": 0.85, "eta_b": 1.0, "steps": 20, "official": True}
    assert official_hyper("diffpir", "inpainting")["steps"] == 20
    assert official_hyper("diffpir", "deblur")["zeta"] != official_hyper("diffpir", "sr")["zeta"]
    assert official_hyper("red_diff", "sr")["lam"] == 0.25
    assert "configs/task/down_sampling.yaml" in official_sources("daps", "sr")["lr"]
    assert importlib.import_module('restore.dps').ZETA["inpainting"] == official_hyper("dps", "inpainting")["zeta"]
    for task, lr in daps_module.LR.items():
        if task in OFFICIAL["daps"]:
            assert official_hyper("daps", task)["lr"] == lr


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="^task"):
        official_hyper("dps", "colorization")
    with pytest.raises(ValueError, match="^solver"):
        official_hyper("tv", "deblur")
    with pytest.raises(ValueError, match="^task"):
        official_hyper("ddrm", "phase_retrieval")


# --- grids -----------------------------------------------------------------------------------------

def _space_timesteps(n, count):
    """guided-diffusion's space_timesteps(n, [count]), written out."""
    stride = (n - 1) / (count - 1) if count > 1 else 1
    at, taken = 0.0, []
    for _ in range(count):
        taken.append(round(at))
        at += stride
    return sorted(set(taken), reverse=True)


@pytest.mark.parametrize("steps", [1, 10, 15, 20, 21, 50, 100, 1000])
def test_grids(steps):
    s = DiscreteVP.linear()
    assert s.timesteps(steps, "respace").tolist() == _space_timesteps(1000, steps)
    assert s.timesteps(steps, "stride").tolist() == list(range(0, 1000, 1000 // steps))[::-1]
    seq = [int(v) for v in np.sqrt(np.linspace(0, 1000**2, steps))]
    seq[-1] -= 1
    if steps > 1:
        assert s.timesteps(steps, "quad").tolist() == [999 - v for v in seq]
    assert s.timesteps(steps).tolist() == torch.linspace(999, 0, steps).round().long().tolist()
    with pytest.raises(ValueError, match="^grid"):
        s.timesteps(steps, "cosine")


def test_stride_grid_differs_from_linspace():
    s = DiscreteVP.linear()
    assert s.timesteps(10, "stride")[0] == 900 and s.timesteps(10)[0] == 999
    assert s.timesteps(15, "respace").tolist() != s.timesteps(15).tolist()  # accumulated vs direct rounding


# --- a tiny DDPM network ---------------------------------------------------------------------------

class _Net(torch.nn.Module):
    """eps(x, t) smooth in both, optionally with learned-variance channels fixed to ``v``."""

    def __init__(self, v=None):
        super().__init__()
        self.v = v

    def forward(self, x, t):
        eps = 0.3 * torch.tanh(x) + 0.01 * torch.cos(t.reshape(-1, 1, 1, 1) / 100.0) * x
        if self.v is None:
            return eps
        return torch.cat([eps, torch.full_like(eps, self.v)], 1)


def _prior(v=None):
    return priors.wrap(_Net(v), prediction="eps", image_shape=(1, 8, 8), learned_variance=v is not None)


def _sr_problem():
    g = torch.Generator().manual_seed(0)
    op = ops.Downsample((1, 8, 8), 2)
    x = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64)
    return op, op(x) + 0.025 * torch.randn(op(x).shape, generator=g, dtype=torch.float64)


def _inpaint_problem():
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(8, 8, generator=g) < 0.5).double()
    op = ops.Inpainting(mask, in_shape=(1, 8, 8))
    x = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64)
    return op, op(x) + 0.025 * mask * torch.randn(x.shape, generator=g, dtype=torch.float64)


def _levels(solver, prior, op, y, **kw):
    seen = []
    out = solver(prior, op, y, 0.025, generator=torch.Generator().manual_seed(0),
                 callback=lambda d: seen.append((float(d["sigma"]), d["x"].clone())), **kw)
    return out, [s for s, _ in seen], [x for _, x in seen]


# --- DPS -------------------------------------------------------------------------------------------

def test_dps_official_grid_start_and_clip():
    prior, (op, y) = _prior(), _sr_problem()
    _, sig, xs = _levels(restore.dps, prior, op, y, steps=15, official=True, zeta=0.3)
    table = prior.schedule.sigma_table / 2
    torch.testing.assert_close(torch.tensor(sig, dtype=torch.float64), table[DiscreteVP.linear().timesteps(15, "respace")])
    # x_T ~ N(0, I) in network VP units: centred on the network's zero, scale sqrt(1 + s^2) / 2
    n = torch.randn((1, 1, 8, 8), generator=torch.Generator().manual_seed(0)).double()
    s_net = 2 * sig[0]
    torch.testing.assert_close(xs[0], (1 + s_net**2) ** 0.5 / 2 * n + 0.5, rtol=1e-12, atol=1e-12)
    _, _, ours = _levels(restore.dps, prior, op, y, steps=15, zeta=0.3)
    torch.testing.assert_close(ours[0], sig[0] * n, rtol=1e-12, atol=1e-12)


def test_learned_range_std_interpolates_beta_and_posterior_variance():
    sigma, sigma_next, scale = 0.8, 0.5, 2.0
    a, a_next = 1 / (1 + (scale * sigma) ** 2), 1 / (1 + (scale * sigma_next) ** 2)
    beta = 1 - a / a_next
    lo = official.learned_range_std(torch.tensor(-1.0, dtype=torch.float64), sigma, sigma_next, scale)
    hi = official.learned_range_std(torch.tensor(1.0, dtype=torch.float64), sigma, sigma_next, scale)
    # v = -1: the DDPM posterior variance, our ancestral step's
    assert math.isclose(float(lo), sigma_next * (sigma**2 - sigma_next**2) ** 0.5 / sigma, rel_tol=1e-12)
    assert math.isclose(float(hi), (beta / a_next) ** 0.5 / scale, rel_tol=1e-12)


def test_dps_official_uses_the_learned_variance():
    op, y = _sr_problem()
    kw = dict(steps=10, zeta=0.3, official=True, generator=torch.Generator().manual_seed(0))
    plain = restore.dps(_prior(), op, y, 0.025, **kw)
    kw["generator"] = torch.Generator().manual_seed(0)
    at_posterior = restore.dps(_prior(-1.0), op, y, 0.025, **kw)  # v = -1 is the posterior variance
    kw["generator"] = torch.Generator().manual_seed(0)
    at_beta = restore.dps(_prior(1.0), op, y, 0.025, **kw)
    torch.testing.assert_close(at_posterior, plain, rtol=1e-10, atol=1e-10)
    assert float((at_beta - plain).abs().max()) > 1e-3


# --- RED-Diff, DDRM, PiGDM: the stride grid ----------------------------------------------------------

@pytest.mark.parametrize("solver", ["red_diff", "ddrm", "pigdm"])
def test_stride_grid(solver):
    prior, (op, y) = _prior(), _sr_problem()
    _, sig, _ = _levels(restore.SOLVERS[solver], prior, op, y, steps=10, official=True)
    torch.testing.assert_close(torch.tensor(sig, dtype=torch.float64),
                               prior.schedule.sigma_table[torch.arange(900, -1, -100)] / 2)


def test_red_diff_official_returns_mu_before_its_last_step():
    # the official REDDIFF.sample returns x0_pred = mu + 0 * noise, taken at the top of its last iteration
    prior, (op, y) = _prior(), _sr_problem()
    mus = []
    kw = dict(steps=10, generator=torch.Generator().manual_seed(0), callback=lambda d: mus.append(d["mu"]))
    out = restore.red_diff(prior, op, y, 0.025, official=True, **kw)
    torch.testing.assert_close(out, mus[-1], rtol=0, atol=0)
    kw["generator"] = torch.Generator().manual_seed(0)
    ours = restore.red_diff(prior, op, y, 0.025, **kw)
    assert float((ours - mus[-1]).abs().max()) > 1e-4  # ours: mu after the last Adam step


def test_ddrm_official_start():
    # officially the unmeasured coordinates start centred on the network's zero and the state is divided
    # by sigma_T where sqrt(abar_T) belongs: x -> k x + 0.5 (1 - k P 1)
    op, _ = _inpaint_problem()
    svd = op.to(dtype=torch.float64).svd
    measured = svd.s > 0
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    sigma_T = 60.0
    k = (1 + (2 * sigma_T) ** 2) ** 0.5 / (2 * sigma_T)
    start = ddrm_module.official_ddrm_start(_prior(), svd, x, measured, sigma_T)
    mask = op.mask.bool().expand(1, 1, 8, 8)
    torch.testing.assert_close(start[~mask], torch.full_like(start[~mask], 0.5))
    torch.testing.assert_close(start[mask], torch.full_like(start[mask], 0.5 * (1 - k)))


def test_pigdm_official_keeps_the_observed_pixels():
    prior, (op, y) = _prior(), _inpaint_problem()
    x = restore.pigdm(prior, op, y, 0.025, steps=10, official=True, generator=torch.Generator().manual_seed(0))
    keep = op.mask.bool().expand_as(x)
    torch.testing.assert_close(x[keep], y[keep], rtol=0, atol=1e-12)  # the official in2 replacement
    ours = restore.pigdm(prior, op, y, 0.025, steps=10, generator=torch.Generator().manual_seed(0))
    assert float((ours - x).abs().max()) > 1e-3


# --- DAPS ------------------------------------------------------------------------------------------

class _Counting:
    def __init__(self, prior):
        self.prior, self.levels = prior, []
        self.image_shape, self.sigma_max, self.data_range = prior.image_shape, prior.sigma_max, prior.data_range

    def denoise(self, x, sigma):
        self.levels.append(float(sigma))
        return self.prior.denoise(x, sigma)


@pytest.mark.parametrize("official_mode", [False, True])
def test_daps_grid_ode_and_decay(official_mode, monkeypatch):
    prior, (op, y) = _prior(), _sr_problem()
    counting = _Counting(prior)
    rates = []
    real = daps_module.langevin

    def spy(*args, **kw):
        rates.append(kw["lr"])
        return real(*args, **kw)
    monkeypatch.setattr(daps_module, "langevin", spy)
    N, K = 4, 5
    _, sig, xs = _levels(restore.daps, counting, op, y, steps=N, ode_steps=K, langevin_steps=2, official=official_mode)
    top, bottom, ode_min = 100 / 2, 0.1 / 2, 0.01 / 2
    if official_mode:  # N + 1 levels, the last dropped; K Euler steps ending at ode_sigma_min; i / (N + 1)
        expect = karras(N + 1, bottom, top)[:N]
        ode = karras(K + 1, ode_min, sig[0])[:K]
        decay = [1 + i / (N + 1) * (0.01 - 1) for i in range(N)]
    else:  # N levels ending at sigma_min; K - 1 Euler steps to ode_sigma_min, then the denoiser
        expect = karras(N, bottom, top)[:N]
        ode = karras(K, ode_min, sig[0])[:K]
        decay = [1 + i / N * (0.01 - 1) for i in range(N)]
    torch.testing.assert_close(torch.tensor(sig, dtype=torch.float64), expect)
    torch.testing.assert_close(torch.tensor(counting.levels[:K], dtype=torch.float64), ode)
    assert len(counting.levels) == N * K
    torch.testing.assert_close(torch.tensor(rates, dtype=torch.float64), torch.tensor(decay, dtype=torch.float64) * 1e-4 / 4, rtol=1e-12, atol=0)
    n = torch.randn((1, 1, 8, 8), generator=torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(xs[0], top * n + (0.5 if official_mode else 0.0), rtol=1e-12, atol=1e-12)


def test_daps_official_ode_stops_at_sigma_min():
    prior = _prior()
    x = torch.randn((1, 1, 8, 8), generator=torch.Generator().manual_seed(3)).double()
    one = daps_module.ode_x0(prior, x, 1.0, 1, 0.005, official=True)
    # one official Euler step from 1.0 to 0.005: x + (0.005 - 1) (x - D) / 1
    torch.testing.assert_close(one, x + (0.005 - 1.0) * (x - prior.denoise(x, 1.0)))
    torch.testing.assert_close(daps_module.ode_x0(prior, x, 1.0, 1, 0.005), prior.denoise(x, 1.0))


# --- DiffPIR ---------------------------------------------------------------------------------------

def test_diffpir_official_grid_start_and_last_step():
    prior = _prior()
    g = torch.Generator().manual_seed(2)
    op = ops.Blur(ops.kernels.gaussian(5, 1.0), in_shape=(1, 8, 8))
    y = op(torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64))
    out, sig, xs = _levels(restore.diffpir, prior, op, y, steps=10, official=True, lam=1.0, zeta=0.1)
    torch.testing.assert_close(torch.tensor(sig, dtype=torch.float64),
                               prior.schedule.sigma_table[DiscreteVP.linear().timesteps(10, "quad")] / 2)
    # the last iteration returns the state at t = 0 on the VP scale, without the data step
    s0 = 2 * sig[-1]
    torch.testing.assert_close(out, (xs[-1] - 0.5) / (1 + s0**2) ** 0.5 + 0.5)
    # main_ddpir.py's start: sqrt(abar_T) (2 y - 1) + sqrt(1 - abar_T) n on the VP scale, i.e. y + sigma_T n
    n = torch.randn((1, 1, 8, 8), generator=torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(xs[0], y + sig[0] * n, rtol=1e-12, atol=1e-12)


def test_diffpir_official_sr_start_resizes_y_bicubically():
    prior, (op, y) = _prior(), _sr_problem()
    _, sig, xs = _levels(restore.diffpir, prior, op, y, steps=5, official=True, lam=1.0, zeta=0.25)
    up = torch.nn.functional.interpolate(y, size=(8, 8), mode="bicubic", align_corners=False)
    n = torch.randn((1, 1, 8, 8), generator=torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(xs[0], up + sig[0] * n, rtol=1e-12, atol=1e-12)
    assert float((up - op.pinv(y)).abs().max()) > 1e-2  # not A^+ y (block replication)


class _ProxSpy:
    """An operator that records the rho of each data step."""

    def __init__(self, op):
        self.op, self.rhos = op, []
        self.in_shape, self.out_shape = op.in_shape, op.out_shape

    def __call__(self, x):
        return self.op(x)

    def to(self, **kw):  # the solver works on a float64 copy: share the record
        spy = _ProxSpy(self.op.to(**kw))
        spy.rhos = self.rhos
        return spy

    def prox(self, z, y, rho):
        self.rhos.append(float(rho))
        return self.op.prox(z, y, rho)


@pytest.mark.parametrize("noise", [0.025, 0.0])
def test_diffpir_official_rho_uses_the_noise_on_0_1_floored_and_the_network_sigma(noise):
    # rho_t = lambda sigma^2 / sigma_ks[t]^2: sigma = max(0.001, noise_level_img) on [0, 1], sigma_ks the
    # network's own (VP, [-1, 1]) noise level; no data step on the last iteration
    prior, (op, y) = _prior(), _sr_problem()
    spy, sig = _ProxSpy(op), []
    restore.diffpir(prior, spy, y, noise, steps=6, official=True, lam=7.0, zeta=0.3,
                    generator=torch.Generator().manual_seed(0), callback=lambda d: sig.append(float(d["sigma"])))
    sigma_n = max(noise, 1e-3)
    expect = [7.0 * sigma_n ** 2 / (2 * s) ** 2 for s in sig[:-1]]
    assert len(spy.rhos) == len(sig) - 1
    np.testing.assert_allclose(spy.rhos, expect, rtol=1e-12)


def test_diffpir_official_lambda_zeta_as_main_ddpir_runs_them():
    # configs/deblur.yaml says lambda_ 1, zeta 0.1; main_ddpir.py runs lambda_ * 7 and zeta * 3
    assert official_hyper("diffpir", "gaussian_blur")["lam"] == 7.0
    assert official_hyper("diffpir", "motion_blur")["zeta"] == pytest.approx(0.3)
    assert "lambda_ * 7" in official_sources("diffpir", "deblur")["lam"]
    assert official_hyper("diffpir", "inpainting") == {"lam": 1.0, "zeta": 1.0, "steps": 20, "official": True}


def test_official_modes_need_a_ddpm_prior(gaussian_noisy):
    p = gaussian_noisy
    with pytest.raises(ValueError, match="official"):
        restore.red_diff(p.prior, p.op, p.y, p.noise, steps=5, official=True)


def test_describe_schedule_names_each_solvers_grid_and_variance():
    from restore.official import SCHEDULES, describe_schedule

    for solver in ("dps", "red_diff", "ddrm", "ddnm", "pigdm", "diffpir", "daps", "dpir"):
        assert solver in SCHEDULES and set(SCHEDULES[solver]) == {False, True}
    dps = describe_schedule("dps", 1000, official=True)
    assert dps["grid"] == "respace" and dps["visited"] == 1000 and "learned" in dps["variance"]
    red = describe_schedule("red_diff", 10, official=True)  # range(0, 1000, 100) reversed
    assert red["timesteps"][:4] == [900, 800, 700, 600] and red["visited"] == 10
    assert describe_schedule("diffpir", 20, official=True)["timesteps"][0] == 999
    assert "rho = 7" in describe_schedule("dps", 50)["grid"]
    assert "timesteps" not in describe_schedule("daps", 20, official=True)
    assert describe_schedule("tv", 100) is None
