"""A Python-float sigma keeps the solver state's precision up to the network call (issue 13)."""
from __future__ import annotations

import torch

import priors


class _Echo(torch.nn.Module):
    """eps(x_t, t) = x_t: the denoiser's output depends on sigma through c_in and x0 = x - s eps."""

    def forward(self, x, t):
        return x


def test_python_float_sigma_stays_float64():
    prior = priors.wrap(_Echo(), prediction="eps", data_range=(-1.0, 1.0))
    x = torch.linspace(-1, 2, 12, dtype=torch.float64).reshape(1, 1, 3, 4)
    sigma = 0.123456789012345  # not representable in float32: 0.12345679104328156
    got = prior.denoise(x, sigma)
    s = 2 * sigma  # network units
    x_net = -1 + 2 * x
    x0_net = x_net - s * x_net / (1 + s * s) ** 0.5
    expected = (x0_net + 1) / 2
    assert got.dtype == torch.float64
    assert float((got - expected).abs().max()) < 1e-14  # a float32 sigma errs by ~1e-9


def test_sigma_like_keeps_precision():
    x = torch.zeros(2, 3, dtype=torch.float64)
    assert priors.sigma_like(0.1, x).dtype == torch.float64
    assert float(priors.sigma_like(0.1, x)[0, 0]) == 0.1
    assert priors.sigma_like(0.1, x.float()).dtype == torch.float32
    assert priors.sigma_like(0.1, x.half()).dtype == torch.float32  # at least float32 for c_noise
