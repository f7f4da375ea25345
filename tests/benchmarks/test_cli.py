"""``restore-bench``: exit codes 0/1/2/3, --help, and ``python -m benchmarks``."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks import cli
from benchmarks.suite import suite_path
from benchmarks.store import Store
from test_runner import SUITE, write_suite

REPO = Path(__file__).parent.parent.parent


def _suite(tmp_path, solvers, **extra):
    suite = json.loads(json.dumps(SUITE)) | extra
    suite["tasks"][0]["solvers"] = solvers
    suite["seeds"] = [0]
    return str(write_suite(tmp_path / "suite", suite))


def test_all_ok_exits_0_and_writes_report(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["run", _suite(tmp_path, ["same", "double"]), "--out", str(out), "--quiet",
                     "--limit", "2"])
    assert code == cli.EXIT_OK
    assert "4 cells (4 ok)" in capsys.readouterr().out
    assert (out / "report.html").exists() and (out / "report.md").exists()
    with Store(out / "results.sqlite") as store:
        assert {len(store.images(r["key"])) for r in store.cells()} == {2}  # --limit 2
    assert cli.main(["report", str(out)]) == cli.EXIT_OK


def test_failed_or_diverged_cells_exit_1_but_finish_the_grid(tmp_path):
    out = tmp_path / "out"
    code = cli.main(["run", _suite(tmp_path, ["same", "boom", "nan"]), "--out", str(out),
                     "--quiet", "--no-report"])
    assert code == cli.EXIT_CELLS_FAILED
    with Store(out / "results.sqlite") as store:
        assert sorted(r["status"] for r in store.cells()) == ["diverged"] * 2 + ["failed"] * 2 + ["ok"] * 2


@pytest.mark.parametrize("argv", [
    ["run"],                                                   # missing suite
    ["run", "quick"],                                          # missing --out
    ["run", "no-such-suite", "--out", "x"],                    # unknown suite
    ["run", "quick", "--out", "x", "--limit", "0"],            # bad value
    ["run", "quick", "--out", "x", "--dtype", "float16"],      # not a choice
    ["frobnicate"],
])
def test_usage_errors_exit_2(argv, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    assert capsys.readouterr().err


def test_unknown_solver_and_bad_yaml_exit_2(tmp_path, capsys):
    suite = _suite(tmp_path, ["same"])
    assert cli.main(["run", suite, "--out", str(tmp_path / "o"), "--solvers", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [unclosed\n")
    assert cli.main(["run", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o" / "results.sqlite").exists()


def test_missing_data_or_checkpoint_exit_3(tmp_path, capsys):
    needs_data = json.loads(json.dumps(SUITE))
    needs_data["tasks"][0]["dataset"] = {"fn": "fake_components:images", "root": "${data}"}
    needs_data["data_help"] = "Put the images in a folder."
    path = str(write_suite(tmp_path / "suite", needs_data, "needs_data.yaml"))
    assert cli.main(["run", path, "--out", str(tmp_path / "o")]) == cli.EXIT_MISSING
    assert "--data" in capsys.readouterr().err
    assert cli.main(["run", path, "--out", str(tmp_path / "o"),
                     "--data", str(tmp_path / "absent")]) == cli.EXIT_MISSING
    no_ckpt = json.loads(json.dumps(SUITE))
    no_ckpt["tasks"][0]["prior"] = {"fn": "fake_components:missing_prior"}
    path = str(write_suite(tmp_path / "suite", no_ckpt, "no_ckpt.yaml"))
    assert cli.main(["run", path, "--out", str(tmp_path / "o")]) == cli.EXIT_MISSING
    assert "fake.pt" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.sqlite").exists()  # nothing started
    assert cli.main(["report", str(tmp_path / "nowhere")]) == cli.EXIT_MISSING


def test_protocol_suites_ask_for_data(tmp_path, capsys):
    for name in ("dps-ffhq", "diffpir-ffhq", "imagenet-256", "fastmri-knee", "ct-sparse-view"):
        assert cli.main(["run", name, "--out", str(tmp_path / name)]) == cli.EXIT_MISSING, name
        assert "--data" in capsys.readouterr().err
        suite = yaml.safe_load(suite_path(name).read_text())
        assert suite.get("checkpoint"), f"{name} names no checkpoint"


def test_help_documents_exit_codes(capsys):
    assert cli.main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for word in ("--limit", "--solvers", "--device", "--dtype", "--data", "exit codes"):
        assert word in text


def test_python_dash_m_lists_bundled_suites():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "list"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("quick", "gmm", "dps-ffhq", "fastmri-knee", "ct-sparse-view", "example_custom"):
        assert f"  {name} " in done.stdout


def test_verbose_list_names_every_registry_and_keeps_et_al_in_summaries(capsys):
    assert cli.main(["list", "-v"]) == 0
    text = capsys.readouterr().out
    for word in ("operators:", "ct_sparse_view", "solvers:", "diffpir", "datasets:", "bundled", "priors:"):
        assert word in text
    assert cli.main(["list"]) == 0
    assert "Chung et al. 2023" in capsys.readouterr().out


def test_readme_example_is_the_bundled_example_verbatim():
    """The README shows example_ops.py and example_custom.yaml as they are, so its command runs them."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Your own operator, solver, dataset and metric", 1)[1]
    suites = Path(suite_path("example_custom")).parent
    assert "```python\n" + (suites / "example_ops.py").read_text() + "```" in section
    assert "```yaml\n" + (suites / "example_custom.yaml").read_text() + "```" in section


def test_run_set_changes_the_suite_and_keeps_its_cells_apart(tmp_path, capsys):
    """``run --set`` runs the changed suite; its cells get new keys, so the unchanged suite's stored
    results are neither reused nor overwritten."""
    out, suite = tmp_path / "out", _suite(tmp_path, ["double"])
    base = ["run", suite, "--out", str(out), "--quiet", "--no-report", "--limit", "1"]
    assert cli.main(base) == cli.EXIT_OK
    assert cli.main(base + ["--set", "solvers.double.scale=3.0"]) == cli.EXIT_OK
    with Store(out / "results.sqlite") as store:
        rows = store.cells()
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4  # 2 operators x (unchanged, changed)
    assert sorted(r["spec"]["solver"]["scale"] for r in rows) == [2.0, 2.0, 3.0, 3.0]
    assert cli.main(base + ["--set", "solvers.nope.steps=1", "--set", "nonsense"]) == cli.EXIT_USAGE
    assert "--set" in capsys.readouterr().err
