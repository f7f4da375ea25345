"""One registry per kind: every kind resolves a key and a ``module:function``; a suite's metric list
mixes registry metrics and a user's; baselines are marked in the suite only and are not ranked; the
stored git commit survives packed refs."""
import json
import shutil
import subprocess

import pytest
import torch

from benchmarks import registry, report, runner
from benchmarks.store import Store
from benchmarks.suite import load_suite
from benchmarks.versions import git_commit
from test_runner import SUITE, write_suite


@pytest.mark.parametrize(("kind", "key"), [("solver", "dps"), ("solver", "exact"), ("operator", "gaussian_blur"),
                                           ("dataset", "bundled"), ("dataset", "gmm_points"), ("metric", "psnr"),
                                           ("prior", "gmm"), ("noise", "poisson")])
def test_every_kind_resolves_its_keys(kind, key):
    assert registry.resolve(kind, key) is registry.registry(kind)[key]


def test_module_function_and_unknown_names():
    from benchmarks import metrics
    assert registry.resolve("metric", "benchmarks.metrics:compute_metrics") is metrics.compute_metrics
    with pytest.raises(registry.BenchmarkError, match="unknown operator 'nope'"):
        registry.resolve("operator", "nope")
    prior = registry.resolve("prior", "natural")  # not a registry key: priors.load
    assert prior.func.__name__ == "load" and prior.args == ("natural",)


def test_registered_metrics_match_compute_metrics():
    from benchmarks import metrics
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 16, 16, generator=g)
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    out = metrics.compute_metrics(x_hat, x, lpips=False)
    assert list(out) == ["psnr", "ssim"]
    for name in out:
        assert metrics.METRICS[name].fn(x_hat, x, None, None).tolist() == out[name]
    assert metrics.METRICS["residual"].fn(x_hat, x, None, None) is None


def test_a_suite_lists_registry_metrics_and_its_own(tmp_path):
    suite = json.loads(json.dumps(SUITE))
    suite["metrics"] = ["psnr", "fake_components:mean_abs_error"]
    suite["tasks"][0]["solvers"] = ["same"]
    suite["seeds"] = [0]
    runner.run(load_suite(str(write_suite(tmp_path / "suite", suite))), tmp_path / "out", progress=False)
    with Store(tmp_path / "out" / "results.sqlite") as store:
        rows = store.cells()
        assert {r["status"] for r in rows} == {"ok"}
        for image in store.images(rows[0]["key"]):
            # the suite's metrics, and the forward-model evaluations stored beside them
            assert set(image["metrics"]) == {"psnr", "mean_abs_error", "nfe_op"}
            assert image["metrics"]["mean_abs_error"] > 0


def test_baselines_come_first_and_are_not_ranked(tmp_path):
    suite = json.loads(json.dumps(SUITE))
    suite["solvers"]["same"]["baseline"] = True  # the best here (x_hat = y), but a baseline
    suite["tasks"][0]["solvers"] = ["double", "same", "same_too"]
    suite["seeds"] = [0]
    runner.run(load_suite(str(write_suite(tmp_path / "suite", suite))), tmp_path / "out", progress=False)
    report.write_report(tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    table = md.split("### fake / half", 1)[1]
    same = next(line for line in table.splitlines() if line.startswith("| same |"))
    same_too = next(line for line in table.splitlines() if line.startswith("| same_too |"))
    assert "**" not in same and "**" in same_too


def test_git_commit_reads_packed_refs_and_is_none_without_a_repository(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(git + ["init", "-q"], check=True)
    (repo / "f").write_text("x")
    subprocess.run(git + ["add", "f"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "one"], check=True)
    subprocess.run(git + ["pack-refs", "--all", "--prune"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    assert not list((repo / ".git" / "refs" / "heads").iterdir())  # the branch lives in packed-refs only
    assert git_commit(repo) == head.strip()[:12]
    assert git_commit(tmp_path) is None  # no repository here
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_commit(repo) is None  # no git
