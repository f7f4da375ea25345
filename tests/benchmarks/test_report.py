"""``report.md`` + self-contained ``report.html`` from a results folder."""
import base64
import json
import re

import pytest

from benchmarks import report, runner
from benchmarks.suite import load_suite
from benchmarks.store import Store
from test_runner import SUITE, write_suite


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    suite = json.loads(json.dumps(SUITE))
    suite["solvers"]["post"] = {"fn": "fake_components:sampler", "steps": 1, "samples": 3}
    suite["tasks"][0]["solvers"] = ["same", "double", "post", "boom"]
    suite["seeds"] = [0]
    path = write_suite(tmp / "suite", suite)
    runner.run(load_suite(str(path)), tmp / "out", progress=False)
    report.write_report(tmp / "out")
    return tmp / "out"


def test_markdown_has_tables_plots_grids_and_errors(results):
    md = (results / "report.md").read_text()
    with Store(results / "results.sqlite") as store:
        row = next(r for r in store.cells() if r["solver"] == "same" and r["operator"] == "half")
    psnr = row["metrics"]["psnr"]
    # the table shows the stored mean ± std of the cell
    section = md.split("### fake / half", 1)[1]
    line = next(l for l in section.splitlines() if l.startswith("| same |"))
    assert f"{psnr['mean']:.3g} ± {psnr['std']:.2g}" in line
    assert line.split(" | ")[-4] == "3"  # NFE/img: the fake solver's 3 denoiser calls (op evals/img next)
    overview = md.split("Overview: PSNR", 1)[1].split("![", 1)[0]
    assert overview.splitlines()[2].startswith("| task | same | double | post | boom |")
    assert all(line.endswith("| failed |") for line in overview.splitlines()[4:6])
    assert "boom: fake failure" in md  # failed cell with its error
    figures = re.findall(r"!\[([^\]]*)\]\((report_files/[^)]+)\)", md)
    captions = [c for c, _ in figures]
    assert any("wall time" in c for c in captions) and any("NFE" in c for c in captions)
    assert sum("seed 0" in c for c in captions) == 2  # one image grid per operator
    for _, rel in figures:
        assert (results / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained(results):
    page = (results / "report.html").read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    md_figures = (results / "report.md").read_text().count("![")
    assert len(sources) == md_figures >= 4
    for src in sources:  # every image inline, decodable PNG; nothing fetched from disk or web
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    assert "<table>" in page and "report_files/" not in page


def test_grid_includes_posterior_std(results):
    folder = results / "images" / "fake_components_prior" / "fake" / "half" / "seed0" / "img0"
    names = sorted(p.name for p in folder.iterdir())
    # the failed solver leaves no picture; the 3-sample one adds its std map
    assert names == ["double.npz", "double.png", "measurement.png", "post.npz", "post.png",
                     "post_std.png", "same.npz", "same.png", "truth.png"]


def test_overview_merges_a_task_run_with_several_priors_into_one_row():
    from benchmarks.report import _by_task

    summary = {("natural", "photos", "sr4"): {"dpir": {"a": 1}, "dps": {"a": 2}},
               ("ffdnet", "photos", "sr4"): {"dpir": {"a": 3}},
               ("medical", "mr", "mri_r4"): {"dpir": {"a": 4}}}
    merged = _by_task(summary)
    assert list(merged) == [("photos", "sr4"), ("mr", "mri_r4")]
    assert merged[("photos", "sr4")] == {"dpir": {"a": 1}, "dps": {"a": 2}, "dpir on ffdnet": {"a": 3}}
    assert merged[("mr", "mri_r4")] == {"dpir": {"a": 4}}
