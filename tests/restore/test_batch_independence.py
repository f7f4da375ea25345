"""Per-image randomness (DESIGN §2): with one generator per image, image b's result equals solving
image b alone with ``generator[b]``, whatever the batch around it, for every solver in
``restore.SOLVERS``, on an exact mixture prior (vectors) and on a real network (images)."""
from __future__ import annotations

import pytest
import torch

import operators as ops
import priors
import restore

SOLVERS = sorted(restore.SOLVERS)
DETERMINISTIC = {"dpir", "pinv", "tv", "classical"}
STEPS = 4


def _generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def _vector_problem():
    g = torch.Generator().manual_seed(0)
    prior = priors.GaussianMixture(torch.tensor([0.3, 0.7]), torch.randn(2, 6, generator=g, dtype=torch.float64),
                                   torch.tensor([0.5, 0.2], dtype=torch.float64))
    A = torch.randn(3, 6, generator=g, dtype=torch.float64)
    x = torch.randn(3, 6, generator=g, dtype=torch.float64)
    noise = ops.GaussianNoise(0.1)
    return prior, ops.Matrix(A), noise(x @ A.T, generator=g), noise


def _image_problem():
    prior = priors.load("phantom")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 16, 16, generator=g)
    op = ops.Inpainting(ops.masks.random((16, 16), 0.5, generator=g), in_shape=(1, 16, 16))
    noise = ops.GaussianNoise(0.05)
    return prior, op, noise(op(x), generator=g), noise


PROBLEMS = {"mixture": (_vector_problem, 1e-10), "network": (_image_problem, 2e-5)}


@pytest.fixture(scope="module", params=sorted(PROBLEMS))
def problem(request):
    make, atol = PROBLEMS[request.param]
    return (*make(), atol)


@pytest.mark.parametrize("name", SOLVERS)
def test_each_image_is_solved_as_if_alone(name, problem):
    prior, op, y, noise, atol = problem
    solver = restore.SOLVERS[name]
    seeds = [11, 12, 13]
    batched = solver(prior, op, y, noise, steps=STEPS, generator=_generators(seeds))
    reordered = solver(prior, op, y[[2, 0]], noise, steps=STEPS, generator=_generators([seeds[2], seeds[0]]))
    for b, seed in enumerate(seeds):
        alone = solver(prior, op, y[b:b + 1], noise, steps=STEPS, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(batched[b:b + 1], alone, rtol=0, atol=atol)
    torch.testing.assert_close(reordered, batched[[2, 0]], rtol=0, atol=atol)
    if name not in DETERMINISTIC:  # the generator really drives the result: another seed, another sample
        other = solver(prior, op, y[:1], noise, steps=STEPS, generator=torch.Generator().manual_seed(99))
        assert float((other - batched[:1]).abs().max()) > 100 * atol


@pytest.mark.parametrize("name", ["dps", "ddrm"])
def test_a_wrong_number_of_generators_is_named(name):
    prior, op, y, noise = _vector_problem()
    with pytest.raises(ValueError, match="generator"):
        restore.SOLVERS[name](prior, op, y, noise, steps=2, generator=_generators([1, 2]))
    with pytest.raises(TypeError, match="generator"):
        restore.SOLVERS[name](prior, op, y, noise, steps=2, generator=7)
