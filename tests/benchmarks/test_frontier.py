"""The frontier's summary: deepinv's best over the reference set, and the first of ours to reach it."""
from benchmarks.studies.frontier import GOAL_REFERENCE, frontier_summary


def _row(lib, solver, steps, psnr, wall):
    return dict(task="deblur", lib=lib, solver=solver, steps=steps, psnr=psnr, wall=wall, cpu=wall, nfe=steps,
                error=None)


ROWS = [
    _row("deepinv", "dinv_ddrm", 50, 20.2, 14.0),
    _row("deepinv", "dinv_ddrm", 200, 20.4, 58.0),
    _row("deepinv", "dinv_dpir", 8, 21.0, 2.0),
    _row("ours", "ddrm", 100, 20.3, 30.0),
    _row("ours", "dpir", 10, 21.05, 4.0),
    _row("ours", "dpir", 20, float("nan"), 1.0),  # a failed run never counts
]


def test_goal_reference_is_deepinv_dps_ddrm_diffpir_and_ratio_uses_our_first_run_at_or_above():
    s = frontier_summary(ROWS, "deblur", "wall", GOAL_REFERENCE)
    assert (s["dinv_solver"], s["dinv_steps"], s["dinv_psnr"]) == ("dinv_ddrm", 200, 20.4)
    assert (s["ours_solver"], s["ours_steps"]) == ("dpir", 10) and s["ratio"] == 4.0 / 58.0


def test_all_of_deepinv_includes_its_dpir_and_reports_a_ratio_above_one_honestly():
    s = frontier_summary(ROWS, "deblur", "wall", None)
    assert s["dinv_solver"] == "dinv_dpir" and s["ratio"] == 2.0
    worse = [r for r in ROWS if r["solver"] != "dpir"]
    assert "ratio" not in frontier_summary(worse, "deblur", "wall", None)  # not reached: no ratio
