"""The unit-norm rescaling changes the units of a problem, never its posterior."""
import torch

import operators as ops
import priors
from restore._common import operator_norm, unit_norm_problem


def _matrix_without_svd(A):
    return ops.FunctionOperator(lambda x: x @ A.T, lambda y: y @ A, in_shape=(A.shape[1],), out_shape=(A.shape[0],))


def test_power_iteration_finds_the_largest_singular_value():
    A = torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    expected = float(torch.linalg.matrix_norm(A, ord=2))
    y = torch.zeros(1, 5, dtype=torch.float64)
    assert abs(operator_norm(ops.Matrix(A), y) - expected) < 1e-12
    assert abs(operator_norm(_matrix_without_svd(A), y, iters=200) - expected) < 1e-6 * expected


def test_rescaled_problem_has_the_same_exact_posterior():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(2, 4, generator=g, dtype=torch.float64) * 5
    prior = priors.GaussianMixture(torch.tensor([0.3, 0.7]), torch.randn(2, 4, generator=g, dtype=torch.float64),
                                   torch.stack([torch.eye(4), 0.5 * torch.eye(4)]).double())
    op, noise = ops.Matrix(A), ops.GaussianNoise(0.2)
    y = noise(op(prior.sample(1, generator=g)), generator=g)
    op2, y2, noise2 = unit_norm_problem(op, y, noise)
    c = float(torch.linalg.matrix_norm(A, ord=2))
    assert abs(noise2.sigma - 0.2 / c) < 1e-12 and torch.allclose(y2, y / c)
    a, b = prior.posterior(op, y, noise), prior.posterior(op2, y2, noise2)
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.covariance, b.covariance)


def test_unit_norm_operators_are_left_alone():
    op = ops.Inpainting(torch.tensor([[1.0, 0.0, 1.0]]))
    y = torch.ones(1, 1, 3)
    assert unit_norm_problem(op, y, ops.GaussianNoise(0.1))[0] is op
