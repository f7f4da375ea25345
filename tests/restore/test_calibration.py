"""restore.calibration: coverage of credible intervals on exact mixture problems."""
from __future__ import annotations

import pytest
import torch

from restore import calibration as cal


def test_coverage_counts_truths_inside_central_intervals():
    samples = torch.linspace(0, 1, 101, dtype=torch.float64)[:, None, None].expand(101, 2, 1)
    truth = torch.tensor([[0.5], [0.97]], dtype=torch.float64)  # inside both / outside both intervals
    cov = cal.coverage(samples, truth, levels=(0.5, 0.9))
    assert cov == {0.5: 0.5, 0.9: 0.5}


def test_the_exact_sampler_is_calibrated():
    p = cal.mixture_problem(8, 2, 200, seed=3)
    cov = cal.coverage(cal.draw_samples("exact", p, 200, steps=1, seed=1), p.x)
    assert abs(cov[0.5] - 0.5) < 0.04 and abs(cov[0.9] - 0.9) < 0.03, cov


def test_an_overconfident_sampler_undercovers():
    p = cal.mixture_problem(8, 2, 100, seed=3)
    exact = cal.draw_samples("exact", p, 200, steps=1, seed=1)
    shrunk = exact.mean(0) + 0.3 * (exact - exact.mean(0))
    assert cal.coverage(shrunk, p.x)[0.9] < cal.coverage(exact, p.x)[0.9] - 0.2


def test_table_labels_point_estimators_and_gives_samplers_and_the_reference_a_row():
    rows = cal.calibration(["ddrm", "red_diff", "mcgdiff"], shapes=((2, 1),), trials=6, n=40, steps=8)
    kinds = {r["solver"]: r["kind"] for r in rows}
    assert kinds == {"exact": "exact", "ddrm": "sampler", "red_diff": "point estimator", "mcgdiff": "sampler"}
    assert all((r["coverage"] is None) == (r["kind"] == "point estimator") for r in rows)
    for r in rows:
        if r["coverage"] is not None:
            assert set(r["coverage"]) == {0.5, 0.9} and 0 <= r["coverage"][0.5] <= r["coverage"][0.9] <= 1
    text = cal.format_table(rows)
    assert "| exact (reference) |" in text and "| red_diff | point estimator |" in text


def test_samples_per_measurement_come_from_one_cloud_for_smc_solvers():
    p = cal.mixture_problem(2, 1, 3, seed=0)
    s = cal.draw_samples("fps", p, 16, steps=4, seed=0)
    assert s.shape == (16, 3, 2)
    with pytest.raises(KeyError):
        cal.draw_samples("nope", p, 4, steps=2, seed=0)
