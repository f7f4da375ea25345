"""Uncertainty metrics of posterior samples (benchmarks.metrics.SAMPLE_METRICS): interval coverage,
Gaussian (mean +- z std) coverage and the sparsification error (AUSE), on inputs with known answers."""
from __future__ import annotations

import pytest
import torch

from benchmarks import metrics as M


def _grid_samples(d: int) -> torch.Tensor:
    """101 samples 0, 0.01, ..., 1 of each of ``d`` coordinates: central 50% interval [0.25, 0.75],
    90% interval [0.05, 0.95]."""
    return (torch.arange(101, dtype=torch.float64) / 100)[:, None].expand(101, d)


def test_interval_coverage_counts_truths_inside_central_intervals():
    truth = torch.tensor([0.5, 0.8, 0.97, 0.1], dtype=torch.float64)
    samples = _grid_samples(4)
    assert M.interval_coverage(samples, truth, 0.5) == 0.25  # 0.5 only
    assert M.interval_coverage(samples, truth, 0.9) == 0.75  # all but 0.97
    # any trailing shape: an image of 2 x 2 pixels, one channel
    assert M.interval_coverage(samples.reshape(101, 1, 2, 2), truth.reshape(1, 2, 2), 0.9) == 0.75
    # the interval moves with the samples
    assert M.interval_coverage(samples + 0.3, truth, 0.5) == 0.5  # [0.55, 1.05]: 0.8 and 0.97
    assert M.SAMPLE_METRICS["coverage_50"].fn(samples, truth) == 0.25
    assert M.SAMPLE_METRICS["coverage_90"].fn(samples, truth) == 0.75


def test_gaussian_coverage_uses_mean_and_unbiased_std():
    # four samples -1, -1, 1, 1 per coordinate: mean 0, unbiased std sqrt(4/3), 1.645 std = 1.90
    samples = torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=torch.float64)[:, None].expand(4, 4)
    truth = torch.tensor([0.0, 1.5, 2.5, -3.0], dtype=torch.float64)
    assert M.gaussian_coverage(samples, truth, 0.9) == 0.5
    assert M.SAMPLE_METRICS["pixel_coverage_90"].fn(samples, truth) == 0.5
    # at 50% (z = 0.674, 0.78) only the truth at the mean is inside
    assert M.gaussian_coverage(samples, truth, 0.5) == 0.25
    # a point mass has no spread: nothing is inside
    assert M.gaussian_coverage(torch.zeros(4, 4, dtype=torch.float64), truth, 0.9) == 0.0


def test_sparsification_curve_and_ause_by_hand():
    error = torch.tensor([3.0, 1.0, 4.0, 2.0], dtype=torch.float64)
    # removing the largest errors first (the oracle): means of {1,2,3,4}, {1,2,3}, {1,2}, {1}
    oracle = M.sparsification_curve(error, error, fractions=4)
    torch.testing.assert_close(oracle, torch.tensor([2.5, 2.0, 1.5, 1.0], dtype=torch.float64))
    # a std map that ranks the pixels as their errors do has no sparsification error
    assert M.ause(10 * error + 1, error, fractions=4) == 0.0
    # one that ranks them backwards removes the smallest errors first: 2.5, 3, 3.5, 4;
    # the area (0 + 1 + 2 + 3) / 4 = 1.5 over the full mean error 2.5
    assert M.ause(-error, error, fractions=4) == pytest.approx(0.6, abs=1e-12)
    # unitless: scaling the errors changes nothing
    assert M.ause(-error, 7 * error, fractions=4) == pytest.approx(0.6, abs=1e-12)
    # fractions that do not divide the count: 0, floor(4/3) = 1, floor(8/3) = 2 pixels removed
    torch.testing.assert_close(M.sparsification_curve(error, error, fractions=3),
                               torch.tensor([2.5, 2.0, 1.5], dtype=torch.float64))
    assert M.ause(torch.ones(4), torch.zeros(4)) == 0.0  # no error: nothing to rank


def test_calibrated_samples_cover_the_nominal_levels_and_shrunk_ones_do_not():
    g = torch.Generator().manual_seed(0)
    d, n = 4000, 200
    scale = 0.2 + torch.rand(d, generator=g, dtype=torch.float64)  # a different std per coordinate
    truth = scale * torch.randn(d, generator=g, dtype=torch.float64)
    samples = scale * torch.randn(n, d, generator=g, dtype=torch.float64)
    metric = {name: m.fn(samples, truth) for name, m in M.SAMPLE_METRICS.items()}
    assert abs(metric["coverage_50"] - 0.5) < 0.03 and abs(metric["coverage_90"] - 0.9) < 0.02
    assert abs(metric["pixel_coverage_90"] - 0.9) < 0.02
    shrunk = 0.5 * samples  # overconfident: intervals half as wide
    assert M.SAMPLE_METRICS["coverage_90"].fn(shrunk, truth) < 0.7
    # the std map carries the per-coordinate scale, so it ranks errors far better than a shuffled one
    shuffled = samples[:, torch.randperm(d, generator=g)]
    error = (truth - samples.mean(0)).abs()
    assert M.ause(samples.std(0), error) < 0.5 * M.ause(shuffled.std(0), error)


def test_bad_inputs_name_the_argument():
    truth = torch.zeros(3)
    with pytest.raises(ValueError, match=r"samples \(n >= 2, \*truth.shape\)"):
        M.interval_coverage(torch.zeros(5, 4), truth)
    with pytest.raises(ValueError, match=r"n >= 2"):
        M.gaussian_coverage(torch.zeros(1, 3), truth)
    with pytest.raises(ValueError, match="level"):
        M.interval_coverage(torch.zeros(5, 3), truth, level=1.0)
    with pytest.raises(ValueError, match="fractions"):
        M.sparsification_curve(truth, truth, fractions=0)
    with pytest.raises(ValueError, match="same|shape"):
        M.ause(torch.zeros(3), torch.zeros(4))


def test_coverages_are_unranked_and_ause_lower_is_better():
    directions = M.higher_is_better()
    for name in ("coverage_50", "coverage_90", "pixel_coverage_90", "exact_coverage_50", "exact_coverage_90"):
        assert directions[name] is None
    assert directions["ause"] is False
