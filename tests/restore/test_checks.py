"""Entry checks name the offending argument; divergence is reported with its step and sigma."""
from __future__ import annotations

import pickle

import pytest
import torch

import operators as ops
import priors
import restore
from restore._common import SolverDiverged, check_finite, check_inputs

PRIOR_SOLVERS = ["dps", "red_diff", "ddrm", "ddnm", "pigdm", "diffpir", "daps", "dpir"]


@pytest.fixture(scope="module")
def small():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(2, 3, generator=g, dtype=torch.float64)
    prior = priors.Gaussian(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    return prior, ops.Matrix(A), torch.randn(1, 2, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(restore.SOLVERS))
@pytest.mark.parametrize("case, exc, arg", [
    ("nan_y", ValueError, "y"), ("inf_y", ValueError, "y"), ("shape_y", ValueError, "y"),
    ("negative_noise", ValueError, "noise"), ("zero_steps", ValueError, "steps"),
    ("float_steps", TypeError, "steps"),
])
def test_every_solver_rejects_bad_input_naming_the_argument(small, name, case, exc, arg):
    prior, op, y = small
    noise, steps = ops.GaussianNoise(0.1), 3
    if case == "nan_y":
        y = y.clone(); y[0, 1] = float("nan")
    elif case == "inf_y":
        y = y.clone(); y[0, 0] = float("inf")
    elif case == "shape_y":
        y = torch.zeros(1, 3, dtype=torch.float64)
    elif case == "negative_noise":
        noise = -0.1
    elif case == "zero_steps":
        steps = 0
    elif case == "float_steps":
        steps = 2.5
    with pytest.raises(exc, match=rf"^{arg}\b"):
        restore.SOLVERS[name](prior, op, y, noise, steps=steps)


@pytest.mark.parametrize("name", PRIOR_SOLVERS)
def test_prior_that_does_not_fit_the_operator_is_named(small, name):
    _, op, y = small
    wrong = priors.Gaussian(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^prior\b.*\(4,\).*\(3,\)"):
        restore.SOLVERS[name](wrong, op, y, ops.GaussianNoise(0.1), steps=3)


def test_check_inputs_accepts_valid_arguments(small):
    prior, op, y = small
    for noise in (None, 0.0, 0.1, ops.GaussianNoise(0.0)):
        check_inputs(prior, op, y, noise, 1)
    check_inputs(None, op, y, None, 5)  # baselines pass no prior


class NaNBelow(priors.Prior):
    """An exact Gaussian denoiser that returns NaN once sigma drops below a threshold."""

    image_shape = (3,)
    sigma_min, sigma_max = 0.01, 10.0

    def __init__(self, threshold: float):
        self.inner = priors.Gaussian(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
        self.threshold = threshold

    def denoise(self, x, sigma):
        x0 = self.inner.denoise(x, sigma)
        return x0 * float("nan") if float(torch.as_tensor(sigma).max()) < self.threshold else x0


@pytest.mark.parametrize("name", ["ddrm", "ddnm", "diffpir"])
def test_nan_prior_raises_solver_diverged_with_step_and_sigma(small, name):
    _, op, y = small
    prior = NaNBelow(threshold=1.0)
    sigmas = prior.sigmas(10)
    first_bad = int((sigmas[:-1] < 1.0).nonzero()[0])
    with pytest.raises(SolverDiverged) as info:
        restore.SOLVERS[name](prior, op, y, ops.GaussianNoise(0.1), steps=10)
    assert info.value.step == first_bad
    assert info.value.sigma == pytest.approx(float(sigmas[first_bad]))


def test_check_finite_and_pickling():
    check_finite(torch.ones(2, 3), 0, 1.0)
    x = torch.ones(2, 3); x[1, 2] = float("inf")
    with pytest.raises(SolverDiverged) as info:
        check_finite(x, 7, torch.tensor([0.5, 0.5]))
    err = pickle.loads(pickle.dumps(info.value))  # benchmark workers send it across processes
    assert (err.step, err.sigma) == (7, 0.5) and "step 7" in str(err)


@pytest.mark.parametrize("name", PRIOR_SOLVERS)
def test_callback_runs_once_per_step_before_the_update(gaussian_noisy, name):
    # the k-diffusion convention: callback(dict(i, x, sigma, x0_hat)) once per step, i = 0..steps-1,
    # with x the state at sigma (non-increasing over the steps) and x0_hat its denoised estimate
    p, steps, seen = gaussian_noisy, 3, []
    restore.SOLVERS[name](p.prior, p.op, p.y.expand(2, -1), p.noise, steps=steps,
                          generator=torch.Generator().manual_seed(0), callback=seen.append)
    assert len(seen) == steps
    assert [d["i"] for d in seen] == list(range(steps))
    sigmas = [float(torch.as_tensor(d["sigma"]).max()) for d in seen]
    assert all(a >= b for a, b in zip(sigmas, sigmas[1:])), sigmas
    for d in seen:
        assert tuple(d["x"].shape) == (2, *p.op.in_shape)
        assert tuple(d["x0_hat"].shape) == (2, *p.op.in_shape)
    if name in ("dps", "red_diff", "ddrm", "ddnm", "diffpir", "dpir"):  # x0_hat is the plain denoiser at x, sigma
        for d in seen:
            assert torch.allclose(d["x0_hat"], p.prior.denoise(d["x"], d["sigma"]))
