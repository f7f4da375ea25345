"""Entry checks name the offending argument; divergence is reported with its step and sigma."""
from __future__ import annotations

import math
import pickle
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import operators as ops
import priors
import restore
from restore._common import SolverDiverged, check_finite, check_inputs, solver_generator

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
    check_inputs(None, op, y, None, 5, needs_prior=False)  # baselines pass no prior


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


@pytest.mark.parametrize("name", PRIOR_SOLVERS)
@pytest.mark.parametrize("case, exc, arg", [
    ("no_prior", TypeError, "prior"), ("int_y", TypeError, "y"), ("bool_noise", TypeError, "noise"),
    ("string_noise", TypeError, "noise"), ("not_an_operator", TypeError, "op"), ("bool_steps", TypeError, "steps"),
    ("empty_y", ValueError, "y"), ("generator_per_image_wrong_count", ValueError, "generator"),
])
def test_more_bad_input_is_named(small, name, case, exc, arg):
    prior, op, y = small
    noise, steps, generator = ops.GaussianNoise(0.1), 2, None
    if case == "no_prior":
        prior = None
    elif case == "int_y":
        y = torch.zeros(1, 2, dtype=torch.int64)
    elif case == "bool_noise":
        noise = True
    elif case == "string_noise":
        noise = "0.1"
    elif case == "not_an_operator":
        op = lambda x: x  # noqa: E731
    elif case == "bool_steps":
        steps = True
    elif case == "empty_y":
        y = torch.zeros(0, 2, dtype=torch.float64)
    elif case == "generator_per_image_wrong_count":
        generator = [torch.Generator().manual_seed(0)] * 2
    with pytest.raises(exc, match=rf"^{arg}\b"):
        restore.SOLVERS[name](prior, op, y, noise, steps=steps, generator=generator)


# ----------------------------------------------------------------------------------------------
# property-based: the entry checks and every solver over random arguments (hypothesis)
# ----------------------------------------------------------------------------------------------
ARGS = ("prior", "op", "y", "noise", "steps", "generator")
PROPS = settings(deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _mostly(valid, bad, one_in: int = 4):
    return st.integers(0, one_in - 1).flatmap(lambda i: bad if i == 0 else valid)


@st.composite
def _measurements(draw):
    """Mostly a finite float64 batch (B, 2); else other dtypes, shapes, an empty batch, NaN, inf, non-tensors."""
    batch = draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(draw(st.integers(0, 999)))
    y = torch.randn(batch, 2, generator=g, dtype=torch.float64)
    if draw(st.integers(0, 3)):
        return y
    kind = draw(st.sampled_from(["dtype", "shape", "empty", "special", "object"]))
    if kind == "dtype":
        return y.to(draw(st.sampled_from([torch.float32, torch.float16, torch.complex128, torch.int64, torch.bool])))
    if kind == "shape":
        return torch.zeros(draw(st.lists(st.integers(0, 3), max_size=3)), dtype=torch.float64)
    if kind == "empty":
        return torch.zeros(0, 2, dtype=torch.float64)
    if kind == "special":
        y.view(-1)[draw(st.integers(0, y.numel() - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return y
    return draw(st.sampled_from([None, [[0.0, 1.0]], np.zeros((1, 2)), 1.0]))


_noises = _mostly(
    st.one_of(st.floats(0.01, 1.0).map(ops.GaussianNoise), st.floats(0, 1), st.none(), st.just(ops.GaussianNoise(0.0))),
    st.one_of(st.sampled_from([-0.1, math.nan, math.inf, True, "0.1", 1j, np.float64(math.nan), torch.tensor(0.1)]),
              st.floats(0.01, 1.0).map(ops.PoissonNoise), st.just(ops.PoissonGaussianNoise(0.1, 0.1)), st.just(object())))
_steps = _mostly(st.integers(1, 2), st.sampled_from([0, -1, 2.0, 2.5, True, None, "2", np.int64(2), math.nan]))


def _generators(y):
    batch = y.shape[0] if isinstance(y, torch.Tensor) and y.ndim else 1
    one = st.integers(0, 99).map(lambda s: torch.Generator().manual_seed(s))
    per_image = st.lists(one, min_size=batch, max_size=batch)
    bad = st.one_of(st.lists(one, min_size=batch + 1, max_size=batch + 2), st.just([]), st.sampled_from([0, "seed", [1, 2]]))
    return _mostly(st.one_of(st.none(), one, per_image), bad)


def _priors():
    good = priors.Gaussian(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    wrong = priors.Gaussian(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    return _mostly(st.just(good), st.sampled_from([None, wrong, object(), "prior"]), one_in=5)


_OP = ops.Matrix(torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
_ops = _mostly(st.just(_OP), st.sampled_from([None, lambda x: x, _OP.A, "op"]), one_in=6)


def _named(err: Exception, names=ARGS) -> None:
    assert isinstance(err, (ValueError, TypeError)), f"{type(err).__name__}: {err}"
    assert re.match(rf"^({'|'.join(names)})\b", str(err)), f"{type(err).__name__} does not name an argument: {err}"
    event(f"{type(err).__name__} naming {str(err).split(':')[0].split(' ')[0]}")


@settings(PROPS, max_examples=400)
@given(data=st.data(), prior=_priors(), op=_ops, y=_measurements(), noise=_noises, steps=_steps,
       needs_prior=st.booleans())
def test_check_inputs_names_the_argument_or_accepts_valid_input(data, prior, op, y, noise, steps, needs_prior):
    try:
        check_inputs(prior, op, y, noise, steps, needs_prior=needs_prior)
    except Exception as err:  # noqa: BLE001 - any other type fails in _named
        _named(err)
        return
    event("accepted")
    assert callable(op) and isinstance(y, torch.Tensor) and (y.is_floating_point() or y.is_complex())
    assert y.ndim >= 1 and y.shape[0] >= 1 and tuple(y.shape[1:]) == tuple(op.out_shape) and bool(torch.isfinite(y).all())
    assert prior is None and not needs_prior or callable(prior.denoise)
    assert isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) and steps >= 1
    generator = data.draw(_generators(y))
    try:
        resolved = solver_generator(generator, y)
    except Exception as err:  # noqa: BLE001
        _named(err, ("generator",))
        return
    assert isinstance(resolved, torch.Generator) or (isinstance(resolved, list) and len(resolved) == y.shape[0])


@settings(PROPS, max_examples=120)
@given(data=st.data(), name=st.sampled_from(sorted(restore.SOLVERS)), prior=_priors(), y=_measurements(),
       noise=_noises, steps=_steps)
def test_every_solver_names_bad_input_or_returns_a_finite_result(data, name, prior, y, noise, steps):
    generator = data.draw(_generators(y))
    try:
        x = restore.SOLVERS[name](prior, _OP, y, noise, steps=steps, generator=generator)
    except Exception as err:  # noqa: BLE001 - any other type fails in _named
        _named(err)
        return
    event("solved")
    assert x.shape == (y.shape[0], 3) and bool(torch.isfinite(x).all()), (name, x)
