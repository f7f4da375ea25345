"""The runner's solve step: NFE counts every image denoised (SMC particles included), and a cell's
samples come from one generator each, so sample k does not depend on how many samples are drawn."""
from types import SimpleNamespace

import torch

import operators as ops
import priors
import restore
from benchmarks.cell import _solve, counted

CELL = SimpleNamespace(spec={"device": "cpu", "dtype": "float32"}, solver="x")


def _problem():
    g = torch.Generator().manual_seed(0)
    prior = priors.Gaussian(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    op = ops.Matrix(torch.randn(2, 4, generator=g, dtype=torch.float64))
    return prior, op, torch.randn(1, 2, generator=g, dtype=torch.float64), ops.GaussianNoise(0.1)


def test_counted_prior_counts_images_not_calls():
    prior, *_ = _problem()
    copy, counter = counted(prior)
    copy.denoise(torch.zeros(5, 4, dtype=torch.float64), 0.5)
    copy.denoise(torch.zeros(2, 4, dtype=torch.float64), 0.1)
    assert counter[0] == 7 and isinstance(copy, priors.Gaussian)


def test_samples_are_independent_of_their_number_and_nfe_is_per_sample():
    prior, op, y, noise = _problem()
    draw = lambda n: _solve(CELL, prior, restore.dps, {"steps": 6}, noise, op, y,  # noqa: E731
                            torch.Generator().manual_seed(3), n)
    three, _, nfe3 = draw(3)
    five, _, nfe5 = draw(5)
    torch.testing.assert_close(three, five[:3], rtol=0, atol=1e-12)
    assert nfe3 == nfe5 == 6


def test_smc_nfe_counts_its_particles():
    prior, op, y, noise = _problem()
    _, _, nfe = _solve(CELL, prior, restore.SOLVERS["mcgdiff"], {"steps": 5, "particles": 16}, noise, op, y,
                       torch.Generator().manual_seed(4))
    assert nfe >= 5 * 16
