"""Property-based tests (hypothesis): every public constructor of ``operators`` and the exact priors, fed
random shapes, dtypes (float16/32/64, bfloat16, complex, int, bool), NaN and inf, zero sizes, negative
numbers and values of the wrong kind, either raises a ``ValueError``/``TypeError`` whose message starts
with the name of one of its arguments, or builds something correct: an operator that passes a dot test and
maps finite input to finite output, a 0/1 mask, a kernel summing to 1, a finite noise draw, a prior whose
denoiser and samples are finite. Never another exception type, never a silent NaN.

Derandomized (fixed examples, reproducible in CI). ``pytest --hypothesis-show-statistics`` prints how many
examples ran.
"""
from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import operators as ops
import priors
from operators import kernels, masks
from operators.linear import LinearOperator, rdot

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
          torch.int64, torch.int32, torch.uint8, torch.bool]
FLOATS = [torch.float32, torch.float64, torch.float16]
SPECIAL = [math.nan, math.inf, -math.inf]


# ----------------------------------------------------------------------------------------------
# strategies: each argument is valid most of the time and bad otherwise, so that the valid path and every
# single bad argument are both exercised
# ----------------------------------------------------------------------------------------------
def mostly(valid, bad, one_in: int = 5):
    """``valid`` with probability ``1 - 1/one_in``, else ``bad``."""
    return st.integers(0, one_in - 1).flatmap(lambda i: bad if i == 0 else valid)


@st.composite
def raw_tensors(draw, shape=None, dtypes=DTYPES, max_dims: int = 4, max_side: int = 6, content=None,
                special: bool = True):
    """A tensor of a drawn (or given) shape and dtype; values uniform, signed, 0/1, all zeros or all ones,
    sometimes with a NaN or an inf planted."""
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=0, max_size=max_dims)))
    dtype = draw(st.sampled_from(dtypes))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    content = content or draw(st.sampled_from(["uniform", "signed", "binary", "zeros", "ones"]))
    base = {"uniform": lambda: torch.rand(shape, generator=g, dtype=torch.float64) + 0.05,
            "signed": lambda: torch.randn(shape, generator=g, dtype=torch.float64),
            "binary": lambda: (torch.rand(shape, generator=g, dtype=torch.float64) < 0.5).double(),
            "zeros": lambda: torch.zeros(shape, dtype=torch.float64),
            "ones": lambda: torch.ones(shape, dtype=torch.float64)}[content]()
    if special and base.numel() and draw(st.integers(0, 2)) == 0:  # plant a NaN or an inf
        base.view(-1)[draw(st.integers(0, base.numel() - 1))] = draw(st.sampled_from(SPECIAL))
    if dtype.is_complex:
        return torch.complex(base, torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    if dtype == torch.bool:
        return base > 0.5
    if not dtype.is_floating_point:
        base = torch.nan_to_num(base, nan=0.0, posinf=1.0, neginf=-1.0).round()
        return base.clamp(min=0 if dtype == torch.uint8 else -9).to(dtype)
    return base.to(dtype)


def tensors(shape, dtypes=FLOATS, content=None, max_dims: int = 4, max_side: int = 5):
    """Mostly a finite tensor of ``shape`` and one of ``dtypes``; else any shape, any dtype, NaN, inf, zero
    sizes, or not a tensor at all."""
    bad = st.one_of(raw_tensors(shape=shape, dtypes=DTYPES, content=content),
                    raw_tensors(max_dims=max_dims, max_side=max_side, content=content),
                    raw_tensors(max_dims=max_dims, max_side=max_side),
                    st.sampled_from([None, 1.0, [[1.0, 0.0]], "x"]))
    return mostly(raw_tensors(shape=shape, dtypes=dtypes, content=content, special=False), bad)


BAD_NUMBERS = st.one_of(
    st.sampled_from([0, 0.0, -0.0, -1, -2.5, 1e-300, 1e300, math.nan, math.inf, -math.inf]),
    st.booleans(), st.none(), st.sampled_from(["2", "", b"1"]), st.complex_numbers(max_magnitude=4),
    st.sampled_from([np.float32(0.5), np.int64(3), np.float64(math.nan), np.bool_(True)]),
    st.sampled_from([torch.tensor(2.0), torch.tensor(3), torch.tensor([1.0, 2.0]), torch.tensor(True)]),
    st.floats(-1e6, 1e6))


def numbers(low: float, high: float):
    """Mostly a float in ``[low, high]``; else zero, negatives, NaN, inf, tiny and huge floats, bools, None,
    strings, complex numbers, numpy scalars, tensors."""
    valid = st.floats(low, high)
    if math.ceil(low) <= math.floor(high):
        valid = st.one_of(valid, st.integers(math.ceil(low), math.floor(high)))
    return mostly(valid, BAD_NUMBERS)


BAD_INTS = st.one_of(st.integers(-3, 0), st.sampled_from([2.0, 2.5, True, False, None, np.int64(4), "3", math.nan,
                                                          torch.tensor(2), torch.tensor(2.0)]))


def ints(low: int, high: int):
    """Mostly an int in ``[low, high]``; else zero, negatives, floats, bools, None, numpy ints, strings."""
    return mostly(st.integers(low, high), BAD_INTS)


def shapes(n: int, low: int = 1, high: int = 8):
    """Mostly a length-``n`` tuple of ints in ``[low, high]``; else another length, zero or negative sizes,
    floats, bools, a bare int, a string, None."""
    bad = st.one_of(st.lists(st.integers(-1, 6), max_size=5).map(tuple), st.tuples(*[st.integers(-2, 6)] * n),
                    st.tuples(*[st.sampled_from([2, 2.0, 3.5, True, None])] * n), st.integers(-1, 8),
                    st.sampled_from(["abc", None, torch.Size([2, 2])]))
    return mostly(st.tuples(*[st.integers(low, high)] * n), bad)


generators = mostly(st.integers(0, 99).map(lambda s: torch.Generator().manual_seed(s)),
                    st.sampled_from([0, "seed", object()]))


# ----------------------------------------------------------------------------------------------
# outcome checks
# ----------------------------------------------------------------------------------------------
def _names(fn) -> list[str]:
    target = fn.__init__ if inspect.isclass(fn) else fn
    return [p for p in inspect.signature(target).parameters if p != "self"]


def outcome(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None when it raised a ValueError/TypeError whose message starts with
    the name of one of ``fn``'s parameters. Any other exception fails the test."""
    try:
        built = fn(*args, **kwargs)
    except (ValueError, TypeError) as err:
        names = _names(fn)
        assert re.match(rf"^({'|'.join(names)})\b", str(err)), (
            f"{type(err).__name__} does not start with one of {names}: {err}")
        event(f"{type(err).__name__} naming {str(err).split(':')[0].split(' ')[0]}")
        return None
    event("built: checked for correctness")
    return built


def assert_correct_operator(op) -> None:
    """Finite output for finite input, and (for a linear operator) the dot test in float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, *op.in_shape), generator=g, dtype=torch.float64)
    y = op(x)
    assert y.shape == (2, *op.out_shape) and bool(torch.isfinite(y).all()), op
    if not isinstance(op, LinearOperator):
        return
    v = torch.randn(y.shape, generator=g, dtype=torch.float64)
    if y.is_complex():
        v = torch.complex(v, torch.randn(y.shape, generator=g, dtype=torch.float64))
    x_back = op.H(v)
    assert bool(torch.isfinite(x_back).all())
    lhs, rhs = rdot(y, v), rdot(x, x_back)
    scale = torch.linalg.vector_norm(y.reshape(2, -1), dim=1) * torch.linalg.vector_norm(v.reshape(2, -1), dim=1)
    assert bool(((lhs - rhs).abs() <= 1e-8 * scale + 1e-12).all()), (op, lhs, rhs)
    if op.svd is not None:
        assert bool(torch.isfinite(op.pinv(v)).all())


# ----------------------------------------------------------------------------------------------
# operators
# ----------------------------------------------------------------------------------------------
@FAST
@given(mask=st.one_of(tensors((3, 5), DTYPES[:4] + [torch.bool, torch.uint8, torch.int64], "binary"),
                      tensors((1, 3, 5), DTYPES[:4], "binary")),
       in_shape=st.one_of(st.none(), shapes(3, 1, 5), st.just((2, 3, 5))))
def test_inpainting(mask, in_shape):
    op = outcome(ops.Inpainting, mask, in_shape)
    if op is not None:
        assert set(op.mask.unique().tolist()) <= {0.0, 1.0} and bool(op.mask.any())
        assert_correct_operator(op)


@FAST
@given(kernel=st.one_of(tensors((3, 3), DTYPES[:4], "uniform"), tensors((2, 2, 3), DTYPES[:4], "signed"),
                        tensors((1, 3, 2), DTYPES[:4], "uniform")),
       in_shape=mostly(st.tuples(st.sampled_from([1, 2]), st.integers(1, 7), st.integers(1, 7)), shapes(3, 0, 7)),
       boundary=mostly(st.sampled_from(["circular", "zeros"]), st.sampled_from(["reflective", 0, None])))
def test_blur(kernel, in_shape, boundary):
    op = outcome(ops.Blur, kernel, in_shape, boundary)
    if op is not None:
        assert_correct_operator(op)


@FAST
@given(in_shape=mostly(st.tuples(st.integers(1, 2), st.sampled_from([2, 4, 6, 8, 12]), st.sampled_from([4, 8, 9])),
                       shapes(3, 0, 12)),
       factor=ints(1, 5), filter=mostly(st.sampled_from(["box", "bicubic", "gaussian"]), st.sampled_from(["x", 1])))
def test_downsample(in_shape, factor, filter):
    op = outcome(ops.Downsample, in_shape, factor, filter)
    if op is not None:
        assert_correct_operator(op)


@FAST
@given(mask=st.one_of(tensors((4, 6), DTYPES[:4] + [torch.bool, torch.int64], "binary"),
                      tensors((1, 4, 6), FLOATS, "uniform")),
       coil_maps=st.one_of(st.none(), tensors((2, 4, 6), FLOATS + [torch.complex64, torch.complex128], "signed"),
                           tensors((3, 4, 6), [torch.complex64], "signed")),
       image_shape=st.one_of(st.none(), st.sampled_from([(1, 4, 6), (4, 6), (2, 4, 6)]), shapes(3, 1, 6)),
       complex_images=mostly(st.booleans(), st.sampled_from([0, "yes", None])))
def test_mri(mask, coil_maps, image_shape, complex_images):
    op = outcome(ops.MRI, mask, coil_maps, image_shape, complex_images)
    if op is None:
        return
    if op.real_input:
        assert_correct_operator(op)
    else:  # complex images: the dot test on a complex x
        g = torch.Generator().manual_seed(0)
        x = torch.randn((1, *op.in_shape), generator=g, dtype=torch.complex128)
        v = torch.randn((1, *op.out_shape), generator=g, dtype=torch.complex128)
        y = op(x)
        assert bool(torch.isfinite(y).all())
        assert abs(float(rdot(y, v) - rdot(x, op.H(v)))) <= 1e-8 * float(y.norm() * v.norm()) + 1e-12


@FAST
@given(kspace=st.one_of(tensors((2, 6, 6), [torch.complex64, torch.complex128], "signed"),
                        tensors((1, 2, 5, 4), [torch.complex128], "signed")),
       calib=mostly(st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))),
                    st.one_of(BAD_INTS, st.tuples(ints(1, 8), ints(1, 8)), st.just((2, 2, 2)))),
       window=mostly(st.booleans(), st.sampled_from([1, None])), threshold=numbers(0, 0.99))
def test_estimate_coil_maps(kspace, calib, window, threshold):
    maps = outcome(ops.estimate_coil_maps, kspace, calib, window, threshold)
    if maps is not None:
        assert maps.shape == kspace.shape and maps.is_complex() and bool(torch.isfinite(maps).all())


angle_lists = st.one_of(ints(1, 6), st.lists(numbers(-200, 400), min_size=1, max_size=5),
                        tensors((3,), [torch.float32, torch.float64, torch.int64], "signed"),
                        st.sampled_from([[], 30.0, "abc", [[0.0, 1.0]], [1j]]))


@settings(FAST, max_examples=100)
@given(img_size=ints(2, 10), angles=st.one_of(st.none(), angle_lists), n_detectors=st.one_of(st.none(), ints(1, 12)))
def test_ct(img_size, angles, n_detectors):
    op = outcome(ops.CT, img_size, angles, n_detectors)
    if op is not None:
        assert_correct_operator(op)


@settings(FAST, max_examples=100)
@given(y=tensors((1, 2, 6, 3), DTYPES[:4], "signed"),
       angles=mostly(st.sampled_from([3, [0.0, 45.0, 90.0], torch.tensor([0.0, 60.0, 120.0])]), angle_lists),
       filter=mostly(st.sampled_from(["ramp", "hann", "shepp-logan", "cosine", "hamming"]), st.sampled_from(["x", None])),
       img_size=st.one_of(st.none(), ints(1, 9)))
def test_fbp(angles, y, filter, img_size):
    out = outcome(ops.fbp, angles, y, filter, img_size)
    if out is not None:
        assert out.shape[:2] == y.shape[:2] and out.dtype == y.dtype and bool(torch.isfinite(out).all())


@settings(FAST, max_examples=60)
@given(img_size=ints(2, 8), n_views=ints(1, 6), max_angle=numbers(0.5, 180), start=numbers(-90, 90))
def test_ct_factories(img_size, n_views, max_angle, start):
    for build, args in ((ops.CT.sparse_view, (img_size, n_views)),
                        (ops.CT.limited_angle, (img_size, max_angle, n_views, None, start))):
        op = outcome(build, *args)
        if op is not None:
            assert_correct_operator(op)


@FAST
@given(A=st.one_of(tensors((3, 4), DTYPES[:6], "signed"), tensors((5, 2), DTYPES[:6], "signed")))
def test_matrix(A):
    op = outcome(ops.Matrix, A)
    if op is not None:
        assert_correct_operator(op)


@FAST
@given(in_shape=shapes(3, 1, 8), oversample=numbers(0, 4),
       pad=st.one_of(st.none(), ints(0, 4), st.tuples(ints(0, 4), ints(0, 4)), st.just((1, 2, 3))))
def test_phase_retrieval(in_shape, oversample, pad):
    op = outcome(ops.PhaseRetrieval, in_shape, oversample, pad)
    if op is not None:
        assert_correct_operator(op)


@FAST
@given(model=st.sampled_from(["gaussian", "poisson", "poisson_gaussian"]), a=numbers(0.01, 5), b=numbers(1e-7, 5),
       y_clean=raw_tensors(shape=(2, 3), dtypes=[torch.float32, torch.float64], content="uniform", special=False))
def test_noise_models(model, a, b, y_clean):
    build = {"gaussian": lambda: outcome(ops.GaussianNoise, a),
             "poisson": lambda: outcome(ops.PoissonNoise, a, b),
             "poisson_gaussian": lambda: outcome(ops.PoissonGaussianNoise, a, b)}[model]
    noise = build()
    if noise is not None:
        y = noise(y_clean, generator=torch.Generator().manual_seed(0))
        assert y.shape == y_clean.shape and y.dtype == y_clean.dtype and bool(torch.isfinite(y).all())
        if getattr(noise, "sigma", 1.0) > 0:  # no NaN (an extreme gain or sigma may overflow to inf)
            assert not bool(torch.isnan(noise.nll(y, y_clean)).any())
            assert not bool(torch.isnan(noise.nll_grad(y, y_clean)).any())


# ----------------------------------------------------------------------------------------------
# generators: masks and kernels
# ----------------------------------------------------------------------------------------------
def assert_mask(m, shape) -> None:
    H, W = (shape, shape) if isinstance(shape, (int, np.integer)) else tuple(shape)
    assert m.shape == (H, W) and m.dtype == torch.float32
    assert set(m.unique().tolist()) <= {0.0, 1.0}


image_sizes = st.one_of(ints(1, 16), shapes(2, 1, 16))


@settings(FAST, max_examples=200)
@given(fn=st.sampled_from(["random", "box", "freeform"]), shape=image_sizes, a=numbers(0, 1),
       size=st.one_of(ints(1, 8), shapes(2, 1, 8)),
       coverage=mostly(st.tuples(st.floats(0, 0.3), st.floats(0.3, 0.9)),
                       st.one_of(st.tuples(numbers(0, 0.9), numbers(0, 0.9)), st.just(0.2), st.just((0.1, 0.2, 0.3)))),
       center=mostly(st.booleans(), st.sampled_from([1, None])), generator=generators)
def test_inpainting_masks(fn, shape, a, size, coverage, center, generator):
    if fn == "random":
        m = outcome(masks.random, shape, a, generator)
    elif fn == "box":
        m = outcome(masks.box, shape, size, center, generator)
    else:
        m = outcome(masks.freeform, shape, coverage, generator, 20)
    if m is not None:
        assert_mask(m, shape)


@settings(FAST, max_examples=200)
@given(fn=st.sampled_from([masks.fastmri_random, masks.fastmri_equispaced, masks.gaussian_2d, masks.poisson_disc]),
       shape=image_sizes, acceleration=numbers(1, 12), center_fraction=st.one_of(st.none(), numbers(0.01, 0.99)),
       generator=generators)
def test_mri_masks(fn, shape, acceleration, center_fraction, generator):
    m = outcome(fn, shape, acceleration, center_fraction, generator=generator)
    if m is not None:
        assert_mask(m, shape)
    cf = outcome(masks.default_center_fraction, acceleration)
    assert cf is None or (math.isfinite(cf) and 0 < cf <= 0.32)


@settings(FAST, max_examples=200)
@given(fn=st.sampled_from(["gaussian", "uniform", "motion"]), size=ints(1, 9), a=numbers(0, 1), generator=generators)
def test_kernels(fn, size, a, generator):
    if fn == "gaussian":
        k = outcome(kernels.gaussian, size, a)
    elif fn == "uniform":
        k = outcome(kernels.uniform, size)
    else:
        k = outcome(kernels.motion, size, a, generator)
    if k is not None:
        assert k.shape == (size, size) and k.dtype == torch.float32 and bool(torch.isfinite(k).all())
        assert abs(float(k.double().sum()) - 1) < 1e-5 and bool((k >= 0).all())
        ops.Blur(k, (1, size, size))  # every generated kernel is a valid blur


# ----------------------------------------------------------------------------------------------
# exact priors
# ----------------------------------------------------------------------------------------------
def assert_prior(prior) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, *prior.image_shape), generator=g, dtype=torch.float64)
    for sigma in (0.0, 0.5, prior.sigma_max):
        assert bool(torch.isfinite(prior.denoise(x, sigma)).all())
    draws = prior.sample(3, generator=g)
    assert draws.shape == (3, *prior.image_shape) and bool(torch.isfinite(draws).all())
    assert 0 < prior.sigma_min < prior.sigma_max < math.inf


@settings(FAST, max_examples=200)
@given(weights=tensors((2,), DTYPES[:4] + [torch.int64], "uniform"),
       means=tensors((2, 3), DTYPES[:4] + [torch.int64], "signed"),
       covs=st.one_of(tensors((2,), FLOATS, "uniform"), tensors((2, 3), FLOATS, "uniform"),
                      tensors((2, 3, 3), FLOATS, "uniform").map(lambda c: c @ c.mT if isinstance(c, torch.Tensor) and
                                                                c.shape == (2, 3, 3) and c.is_floating_point() else c)),
       sigma_min=st.one_of(st.none(), numbers(1e-4, 0.1)), sigma_max=st.one_of(st.none(), numbers(1, 50)),
       dtype=mostly(st.sampled_from([None, torch.float32, torch.float64]), st.sampled_from([torch.int64, "float64"])))
def test_gaussian_mixture(weights, means, covs, sigma_min, sigma_max, dtype):
    prior = outcome(priors.GaussianMixture, weights, means, covs, sigma_min=sigma_min, sigma_max=sigma_max, dtype=dtype)
    if prior is not None:
        assert_prior(prior)


@settings(FAST, max_examples=150)
@given(mean=st.one_of(tensors((3,), DTYPES[:4], "signed"), tensors((1, 2, 2), FLOATS, "signed")),
       cov=st.one_of(tensors((3,), FLOATS, "uniform"), numbers(0.01, 3), tensors((4,), FLOATS, "uniform"),
                     tensors((3, 3), FLOATS, "signed")))
def test_gaussian(mean, cov):
    prior = outcome(priors.Gaussian, mean, cov)
    if prior is not None:
        assert_prior(prior)
