"""Suites with ``official: true`` and per-operator overrides; ``restore-bench explain`` (issue 13)."""
from __future__ import annotations

import json

import pytest

from benchmarks.cli import main
from benchmarks.suite import expand, load_suite

SUITE = """
name: tiny-official
noise: 0.025
official: {official}
solvers:
  dps:  {{fn: dps, steps: 5, per_operator: {{box: {{zeta: 0.7}}}}}}
  daps: {{fn: daps, steps: 3}}
  pinv: {{fn: pinv, steps: 5, baseline: true}}
tasks:
  - prior: tiny
    dataset: {{pts: {{fn: image_folder, path: "${{data}}", size: 8, n: 1}}}}
    operators:
      sr: {{fn: super_resolution, factor: 2}}
      box: {{fn: inpaint_box, size: 4}}
    solvers: [dps, daps, pinv]
"""


def _suite(tmp_path, official=True):
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE.format(official=str(official).lower()))
    return path


def _cells(tmp_path, official=True):
    suite = load_suite(str(_suite(tmp_path, official)), need_data=False)
    return {(c.operator, c.solver): c.spec for c in expand(suite)}


def test_official_values_per_operator_and_overrides(tmp_path):
    cells = _cells(tmp_path)
    sr, box = cells[("sr", "dps")], cells[("box", "dps")]
    assert sr["solver"]["zeta"] == 0.3 and sr["solver"]["official"] is True and sr["solver"]["steps"] == 5
    assert "super_resolution_config.yaml" in sr["sources"]["zeta"] and sr["sources"]["steps"] == "suite"
    assert box["solver"]["zeta"] == 0.7 and box["sources"]["zeta"] == "suite per_operator"
    assert "per_operator" not in box["solver"]
    assert cells[("box", "daps")]["solver"]["lr"] == 5e-5 and cells[("sr", "daps")]["solver"]["lr"] == 1e-4
    assert cells[("sr", "pinv")]["solver"] == {"fn": "pinv", "steps": 5, "baseline": True}  # no official table


def test_without_official_the_cells_are_unchanged(tmp_path):
    cells = _cells(tmp_path, official=False)
    assert cells[("sr", "dps")]["solver"] == {"fn": "dps", "steps": 5}
    assert "sources" not in cells[("sr", "dps")]
    assert cells[("box", "dps")]["solver"]["zeta"] == 0.7  # per_operator still applies, with its source
    assert cells[("box", "dps")]["sources"]["zeta"] == "suite per_operator"


def test_explain_json(tmp_path, capsys):
    assert main(["explain", str(_suite(tmp_path)), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6
    assert all({"solver", "operator", "hyper", "source"} <= set(r) for r in rows)
    row = next(r for r in rows if r["solver"] == "daps" and r["operator"] == "box")
    assert row["hyper"]["lr"] == 5e-5 and "configs/task/inpainting.yaml" in row["source"]["lr"]
    assert row["noise"] == {"image [0, 1]": 0.025, "network [-1, 1]": 0.05}
    assert main(["explain", str(_suite(tmp_path))]) == 0
    assert "zeta = 0.7  (suite per_operator)" in capsys.readouterr().out


def test_bundled_protocol_suites_explain(capsys):
    for name in ("dps-ffhq", "diffpir-ffhq", "imagenet-256"):
        assert main(["explain", name, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert all(r["hyper"].get("official") for r in rows if r["fn"] in ("dps", "daps", "ddrm", "diffpir"))


def test_overrides_set_values_by_path_with_wildcards(tmp_path):
    from benchmarks.registry import BenchmarkError
    from benchmarks.suite import apply_overrides

    suite = load_suite(str(_suite(tmp_path)), need_data=False)
    apply_overrides(suite, ["solvers.*.steps=2", "tasks.*.operators.box.size=2", "solvers.daps.lr=1e-3",
                            "tasks.0.dataset.pts.size=4"])
    cells = {(c.operator, c.solver): c.spec for c in expand(suite)}
    assert all(spec["solver"]["steps"] == 2 for spec in cells.values())
    assert cells[("box", "pinv")]["operator"]["size"] == 2 and cells[("box", "daps")]["solver"]["lr"] == 1e-3
    assert cells[("sr", "dps")]["dataset"]["size"] == 4
    with pytest.raises(BenchmarkError, match="no 'tasks.*.operators.blur.size'"):
        apply_overrides(suite, ["tasks.*.operators.blur.size=3"])
    with pytest.raises(BenchmarkError, match="expected dotted.path=value"):
        apply_overrides(suite, ["solvers.dps.steps"])


def test_explain_shows_the_split_metrics_and_overrides(capsys):
    assert main(["explain", "dps-ffhq", "--json", "--set", "solvers.dps.steps=7"]) == 0
    rows = json.loads(capsys.readouterr().out)
    dps = next(r for r in rows if r["solver"] == "dps")
    assert dps["hyper"]["steps"] == 7 and dps["source"]["steps"] == "suite"
    assert dps["split"]["name"] == "ffhq_first1k" and dps["split"]["count"] == 1000
    assert "issue #4" in dps["split"]["source"] and dps["set_metrics"] == ["fid", "kid"]
    # the official respaced grid, 7 timesteps from 999 to 0, and where the step's variance comes from
    assert dps["schedule"]["grid"] == "respace" and dps["schedule"]["visited"] == 7
    assert dps["schedule"]["timesteps"][0] == 999 and dps["schedule"]["timesteps"][-1] == 0
    assert "learned_range" in dps["schedule"]["variance"]
    assert main(["explain", "daps-ffhq"]) == 0
    text = capsys.readouterr().out
    assert "split ffhq_daps100: 100 images, the first 100 files sorted by path" in text
    assert "best_of = 4" in text
