"""Calibration in the benchmark: coverage in exact-posterior mode (solver and exact reference), no
coverage for point estimators, pixel coverage and AUSE for multi-sample images, the report's calibration
table, and the bundled ``calibration`` suite."""
import json

import pytest

import restore
from benchmarks import report, runner
from benchmarks.store import Store
from benchmarks.suite import expand, load_suite
from test_runner import SUITE, run_suite, write_suite

POSTERIOR_SUITE = {
    "name": "cal",
    "mode": "posterior",
    "posterior_samples": 40,
    "noise": 0.1,
    "seeds": [0],
    "save_images": 0,
    "solvers": {"exact": {"fn": "exact"}, "ddrm": {"fn": "ddrm", "steps": 5},
                "fps": {"fn": "fps", "steps": 5}, "red_diff": {"fn": "red_diff", "steps": 5}},
    "tasks": [{"prior": {"fn": "gmm", "dim": 2, "components": 3, "seed": 2},
               "dataset": {"x2": {"fn": "gmm_points", "dim": 2, "components": 3, "seed": 2, "n": 3}},
               "operators": {"m1": {"fn": "random_matrix", "m": 1}},
               "solvers": ["exact", "ddrm", "fps", "red_diff"]}],
}


@pytest.fixture(scope="module")
def posterior_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calibration")
    path = write_suite(tmp / "suite", POSTERIOR_SUITE, name="cal.yaml")
    runner.run(load_suite(str(path)), tmp / "out", progress=False)
    report.write_report(tmp / "out")
    with Store(tmp / "out" / "results.sqlite") as store:
        images = {r["solver"]: {i["image"]: i["metrics"] for i in store.images(r["key"])} for r in store.cells()}
    return tmp / "out", images


def test_suite_level_posterior_samples_reach_the_cells(tmp_path):
    cells = expand(load_suite(str(write_suite(tmp_path, POSTERIOR_SUITE, name="cal.yaml"))))
    assert {c.spec["posterior_samples"] for c in cells} == {40}


def test_samplers_get_coverage_point_estimators_only_the_reference(posterior_run):
    _, images = posterior_run
    for solver in ("exact", "ddrm", "fps"):
        for metrics in images[solver].values():
            # with 2 coordinates a pair's coverage is 0, 1/2 or 1
            assert {metrics["coverage_50"], metrics["coverage_90"]} <= {0.0, 0.5, 1.0}
    assert all("coverage_50" not in m and "coverage_90" not in m for m in images["red_diff"].values())
    # the reference is the same exact sample in every solver's cell: one value per pair
    for name in images["exact"]:
        assert len({(images[s][name]["exact_coverage_50"], images[s][name]["exact_coverage_90"])
                    for s in images}) == 1


def test_report_has_the_calibration_table_and_lists_point_estimators(posterior_run):
    out, images = posterior_run
    md = (out / "report.md").read_text()
    section = md.split("### Calibration: coverage of central credible intervals", 1)[1]
    lines = section.strip().splitlines()
    table = lines[lines.index(next(l for l in lines if l.startswith("|"))):]
    table = table[:next(i for i, l in enumerate(table) if not l.startswith("|"))]  # the first table
    assert table[0] == "| solver | 50% | exact 50% | 90% | exact 90% | pairs |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
    assert {"exact", "ddrm", "fps"} <= set(rows) and "red_diff" not in rows
    # ddrm's 50% column is the mean of its per-pair coverages
    mean = sum(m["coverage_50"] for m in images["ddrm"].values()) / len(images["ddrm"])
    assert rows["ddrm"].split(" | ")[1].startswith(f"{mean:.3f}")
    assert rows["ddrm"].rstrip(" |").endswith("| 3")
    assert "Point estimators (one estimate, no credible intervals, so no coverage): red_diff." in section
    assert "| exact posterior (reference) |" in section


def test_image_mode_samples_get_pixel_coverage_and_ause(tmp_path):
    suite = json.loads(json.dumps(SUITE))
    suite["solvers"] = {"post": {"fn": "fake_components:sampler", "steps": 1, "samples": 4},
                        "same": {"fn": "fake_components:solver", "steps": 1}}
    suite["tasks"][0]["solvers"] = ["post", "same"]
    suite["seeds"] = [0]
    run_suite(tmp_path, tmp_path / "out", suite)
    with Store(tmp_path / "out" / "results.sqlite") as store:
        rows = {(r["solver"], r["operator"]): r["metrics"] for r in store.cells()}
    for op in ("half", "most"):
        post, same = rows[("post", op)], rows[("same", op)]
        assert 0 <= post["pixel_coverage_90"]["mean"] <= 1 and post["ause"]["mean"] >= 0
        assert post["pixel_coverage_90"]["n"] == post["ause"]["n"] == 3
        assert "pixel_coverage_90" not in same and "ause" not in same  # one sample: no spread


def test_bundled_calibration_suite_runs_every_sampler_on_d_2_to_80():
    cells = expand(load_suite("calibration"))
    assert {c.spec["mode"] for c in cells} == {"posterior"}
    fns = {c.spec["solver"]["fn"] for c in cells}
    samplers = {n for n, f in restore.SOLVERS.items() if not getattr(f, "point_estimate", False)}
    assert samplers | {"exact"} <= fns
    assert {"red_diff", "dpir"} <= fns  # listed as point estimators in the report
    dims = {c.spec["dataset"]["dim"] for c in cells}
    assert min(dims) == 2 and max(dims) == 80
    # truths are prior draws: the dataset names the prior's own mixture
    for c in cells:
        prior, data = c.spec["prior"], c.spec["dataset"]
        assert data["fn"] == "gmm_points"
        assert all(data[k] == prior[k] for k in ("dim", "components", "seed"))


def test_the_exact_posterior_covers_the_nominal_levels_when_x_is_drawn_from_the_prior():
    """The premise of the table: with x ~ prior and y ~ p(y | x), the exact posterior's intervals cover
    50% / 90% of the truths (a little less with n samples' quantiles)."""
    import torch

    import operators as ops
    from benchmarks.datasets import gmm_points
    from benchmarks.metrics import SAMPLE_METRICS
    from benchmarks.problems import gmm_prior, random_matrix

    prior, noise = gmm_prior(8, 4, seed=8, dtype=torch.float64), ops.GaussianNoise(0.1)
    g = torch.Generator().manual_seed(0)
    cover = {"coverage_50": [], "coverage_90": []}
    for _, x in gmm_points(8, 4, seed=8, n=150):
        op = random_matrix((8,), g, m=2)
        x = x.double()[None]
        y = op(x) + 0.1 * torch.randn(1, 2, generator=g, dtype=torch.float64)
        samples = prior.posterior(op, y, noise).sample(200, generator=g)
        for name in cover:
            cover[name].append(SAMPLE_METRICS[name].fn(samples, x[0]))
    assert abs(sum(cover["coverage_50"]) / 150 - 0.5) < 0.06  # 3 standard errors
    assert abs(sum(cover["coverage_90"]) / 150 - 0.9) < 0.04


def test_posterior_mode_records_the_priors_distance_beside_the_floor(posterior_run):
    _, images = posterior_run
    for name in images["exact"]:
        # the prior's and the floor's samples depend on the problem, not on the solver
        assert len({(images[s][name]["sw_prior"], images[s][name]["sw_floor"]) for s in images}) == 1
    # prior draws ignore y: on average farther from the posterior than a second exact sample (one
    # problem of 40 samples may not be: a weak measurement of a multimodal posterior)
    exact = images["exact"].values()
    assert sum(m["sw_prior"] for m in exact) > 2 * sum(m["sw_floor"] for m in exact)


def _table_after(md: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading``."""
    lines = md.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = lines[start:start + next(i for i, line in enumerate(lines[start:]) if not line.startswith("|"))]
    return [[c.strip() for c in line.strip("| ").split(" | ")] for line in table if not line.startswith("|---")]


def test_report_tables_the_share_of_the_prior_distance_left_with_nfe_and_wall(posterior_run):
    out, images = posterior_run
    md = (out / "report.md").read_text()
    overview = _table_after(md, "### Overview: SW per task and solver")
    assert overview[0][-2:] == ["exact floor", "prior"]
    prior = sum(m["sw_prior"] for m in images["exact"].values()) / len(images["exact"])
    assert overview[1][-1] == f"{prior:.3g}"

    table = _table_after(md, "### Overview: share of the prior-to-posterior distance left")
    header, row, nfe, wall = table
    assert header == ["task", "exact", "ddrm", "fps", "red_diff"] and row[0] == "x2 / m1"

    def mean(solver, key):
        return sum(m[key] for m in images[solver].values()) / len(images[solver])

    shares = {}
    for j, s in enumerate(header[1:], 1):
        shares[s] = (mean(s, "sw") - mean(s, "sw_floor")) / (mean(s, "sw_prior") - mean(s, "sw_floor"))
        assert row[j].strip("*") == f"{shares[s]:.3f}"
    # the best ranked solver is bold; the exact sampler is the reference, never ranked
    best = min(("ddrm", "fps", "red_diff"), key=shares.get)
    assert [c.startswith("**") for c in row[1:]] == [s == best for s in header[1:]]
    assert nfe == ["NFE/sample", "0", "5", "5", "5"]  # fps: 5 steps of 40 particles, per sample
    assert wall[0] == "wall s/problem" and all(float(v) > 0 for v in wall[1:])


def test_bundled_gmm_testbed_suite_is_mcgdiffs_testbed():
    """d = 8 and 80, d_y = 1, 2, 4, 2000 samples per problem, 100 steps, every sampler beside the exact one."""
    cells = expand(load_suite("gmm-testbed"))
    assert {c.spec["mode"] for c in cells} == {"posterior"}
    assert {c.spec["posterior_samples"] for c in cells} == {2000}
    assert {(c.spec["dataset"]["dim"], c.spec["operator"]["m"]) for c in cells} == {
        (d, m) for d in (8, 80) for m in (1, 2, 4)}
    assert {"exact", "mcgdiff", "fps", "tds"} <= {c.spec["solver"]["fn"] for c in cells}
    assert {c.spec["solver"].get("steps") for c in cells if c.spec["solver"]["fn"] != "exact"} == {100}
    for c in cells:  # truths are prior draws of the suite's mixture
        assert all(c.spec["dataset"][k] == c.spec["prior"][k] for k in ("dim", "components", "seed"))
