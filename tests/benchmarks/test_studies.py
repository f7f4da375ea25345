"""Smoke tests of the studies under ``benchmarks/studies`` on tiny problems: each runs end to end
and prints or returns figures that make sense (they are measurements, so no values are pinned)."""
import math

import pytest
import torch

from benchmarks.studies import (bf16, ct_mri_reference, frontier, harness, operator_speed,
                                prior_checks, prior_denoising, solver_cost)


def test_harness_psnr_is_the_package_psnr_and_operators_come_from_the_registry():
    from benchmarks import metrics, problems
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 8, 8, generator=g)
    x_hat = x + 0.1 * torch.randn(2, 1, 8, 8, generator=g)
    assert harness.mean_psnr(x_hat, x) == pytest.approx(float(metrics.psnr(x_hat.clamp(0, 1), x).mean()))
    assert harness.mean_psnr(x_hat[0], x[0]) == pytest.approx(float(metrics.psnr(x_hat[:1].clamp(0, 1), x[:1])))
    op = harness.operator("inpaint_random", (1, 8, 8), generator=torch.Generator().manual_seed(1), kept=0.5)
    same = problems.inpaint_random((1, 8, 8), torch.Generator().manual_seed(1), kept=0.5)
    assert torch.equal(op(x), same(x))


def test_frontier_tasks_agree_with_deepinv_and_a_run_counts_denoiser_calls(tmp_path, capsys):
    pytest.importorskip("deepinv")
    frontier.main(["--tasks", "deblur", "sr4", "inpaint", "--solvers", "ddrm", "dpir", "--steps", "2",
                   "--size", "16", "--out", str(tmp_path)])  # build_task checks both libraries agree
    rows = __import__("json").loads((tmp_path / "results.json").read_text())["rows"]
    assert {(r["task"], r["solver"]) for r in rows} == {(t, s) for t in frontier.TASKS for s in ("ddrm", "dpir")}
    assert all(r["nfe"] >= 2 and math.isfinite(r["psnr"]) for r in rows)


def test_bf16_reports_both_precisions(capsys):
    bf16.main(["--solvers", "ddrm", "--steps", "2", "--size", "16", "--images", "1", "--repeats", "1"])
    assert "speed-up" in capsys.readouterr().out


def test_solver_cost_measures_every_solver():
    rows = solver_cost.measure(steps=2, repeats=1, size=16, batch=1, channels=1,
                               device=torch.device("cpu"), threads=None)
    assert [r["solver"] for r in rows] == list(solver_cost.FORWARD + solver_cost.FORWARD_VJP)
    assert all(r["reference_ms"] > 0 and r["step_ms"] > 0 for r in rows)


def test_operator_speed_times_our_operators_and_deepinvs(monkeypatch):
    pytest.importorskip("deepinv")
    # blur and downsampling only: the MRI and CT pairs are fixed at 320 and 256 px
    monkeypatch.setattr(operator_speed, "PAIRS", [operator_speed.blur_pairs, operator_speed.downsample_pairs])
    rows = operator_speed.run(batch=1, size=64, repeats=1)
    assert len(rows) == 3 and all(r["ours_ms"] > 0 and r["deepinv_ms"] > 0 for r in rows)


def test_ct_mri_reference_on_a_small_phantom():
    pytest.importorskip("skimage")
    ct = ct_mri_reference.ct_reference(32)
    assert ct["fbp_180"]["psnr_ours"] > 10 and ct["radon_rel_diff_circle_True"] < 0.5
    masks = ct_mri_reference.mask_reference((32, 32), seeds=2)
    assert {(r["mask"], r["R"]) for r in masks} == {(m, R) for m in ("random", "equispaced") for R in (4, 8)}


def test_prior_denoising_scores_the_prior_against_the_noisy_input():
    import priors
    from priors.testsets import load_testset
    rows = prior_denoising.evaluate(priors.load("phantom"), load_testset("phantom", 32)[:2], (0.1,),
                                    use_bm3d=False)
    assert rows[0]["prior"] > rows[0]["noisy"]


def test_prior_checks_tables(capsys):
    prior_checks.denoise_table(2000)
    prior_checks.posterior_table(2000)
    prior_checks.sampler_table(n=64, n_floor=2, seeds=1)
    out = capsys.readouterr().out
    assert "## 1." in out and "## 2." in out and "## 3." in out


def test_compare_runs_finds_equal_runs_equal_and_a_changed_metric(tmp_path, capsys):
    import json
    import sqlite3

    from benchmarks import runner
    from benchmarks.studies import compare_runs
    from benchmarks.suite import load_suite
    from test_runner import SUITE, write_suite
    suite = json.loads(json.dumps(SUITE))
    suite["tasks"][0]["solvers"], suite["seeds"] = ["same", "boom"], [0]
    for out in ("a", "b"):
        runner.run(load_suite(str(write_suite(tmp_path / "suite", suite))), tmp_path / out, progress=False)
    problems, summary = compare_runs.compare(tmp_path / "a", tmp_path / "b")
    assert problems == [] and summary["compared"] == summary["same_keys"] == 4
    with sqlite3.connect(tmp_path / "b" / "results.sqlite") as db:
        db.execute("UPDATE images SET metrics = json_set(metrics, '$.psnr', 1.0) WHERE image = 'img0'")
    problems, summary = compare_runs.compare(tmp_path / "a", tmp_path / "b")
    assert problems and all("img0.psnr" in p for p in problems) and summary["max_abs_diff"] > 1
    assert compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
