"""Noise models: moments of the draws, gradients of the negative log-likelihoods, validation."""
import pytest
import torch

import operators as ops

D = torch.float64


def G(seed):
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_std_and_determinism():
    noise = ops.GaussianNoise(0.1)
    y = torch.full((4, 1, 100, 100), 0.5, dtype=D)
    n = noise(y, generator=G(0)) - y
    # std of 4e4 samples: relative standard error 1/sqrt(2 n) ~ 0.0035
    assert abs(float(n.std()) / 0.1 - 1) < 0.02 and abs(float(n.mean())) < 0.002
    assert torch.equal(noise(y, generator=G(0)), noise(y, generator=G(0)))
    yc = torch.zeros(1, 40000, dtype=torch.complex128)
    nc = noise(yc, generator=G(1))
    assert abs(float(nc.real.std()) / 0.1 - 1) < 0.02 and abs(float(nc.imag.std()) / 0.1 - 1) < 0.02
    assert torch.equal(ops.GaussianNoise(0)(y), y)


def test_poisson_moments():
    noise = ops.PoissonNoise(gain=0.01)
    x = torch.full((1, 200000), 0.3, dtype=D)
    y = noise(x, generator=G(2))
    assert abs(float(y.mean()) - 0.3) < 4 * (0.01 * 0.3 / 2e5) ** 0.5
    assert abs(float(y.var()) / (0.01 * 0.3) - 1) < 0.02
    pg = ops.PoissonGaussianNoise(gain=0.01, sigma=0.05)
    y = pg(x, generator=G(3))
    assert abs(float(y.var()) / (0.01 * 0.3 + 0.05 ** 2) - 1) < 0.02


@pytest.mark.parametrize("noise", [ops.GaussianNoise(0.2), ops.PoissonNoise(0.05), ops.PoissonGaussianNoise(0.05, 0.1)])
def test_nll_grad_is_gradient_of_nll(noise):
    y = torch.rand(3, 2, 5, 5, dtype=D, generator=G(4)) + 0.1
    pred = (torch.rand(3, 2, 5, 5, dtype=D, generator=G(5)) + 0.1).requires_grad_()
    value = noise.nll(y, pred)
    assert value.shape == (3,)
    (grad,) = torch.autograd.grad(value.sum(), pred)
    torch.testing.assert_close(noise.nll_grad(y, pred.detach()), grad)


def test_gaussian_nll_value_and_minimum():
    noise = ops.GaussianNoise(0.5)
    y = torch.ones(2, 4, dtype=D)
    assert torch.allclose(noise.nll(y, torch.zeros(2, 4, dtype=D)), torch.full((2,), 4 / (2 * 0.25), dtype=D))
    # Poisson nll is minimised at y_pred = y (per pixel, up to a constant)
    p = ops.PoissonNoise(0.1)
    grid = torch.linspace(0.2, 0.8, 61, dtype=D)[:, None]
    best = grid[p.nll(torch.full((61, 1), 0.5, dtype=D), grid).argmin()]
    assert abs(float(best) - 0.5) < 1e-9


def test_validation():
    with pytest.raises(ValueError, match="sigma"):
        ops.GaussianNoise(-1)
    with pytest.raises(ValueError, match="gain"):
        ops.PoissonNoise(0)
    with pytest.raises(ValueError, match="sigma"):
        ops.PoissonGaussianNoise(0.1, 0)
    with pytest.raises(ValueError, match="sigma = 0"):
        ops.GaussianNoise(0).nll(torch.zeros(1, 2), torch.zeros(1, 2))
