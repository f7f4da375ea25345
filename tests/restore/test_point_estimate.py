"""The point-estimate mark: solvers that return one estimate, not a posterior sample."""
import restore


def test_point_estimators_are_marked_and_samplers_are_not():
    marked = {name for name, fn in restore.SOLVERS.items() if getattr(fn, "point_estimate", False)}
    assert marked == {"red_diff", "dpir", "pinv", "tv", "classical"}
    # no solver is both an SMC particle cloud and a point estimate
    assert not any(getattr(fn, "cloud", False) for name, fn in restore.SOLVERS.items() if name in marked)
