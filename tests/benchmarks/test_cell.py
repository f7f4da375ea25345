"""The runner's solve step: NFE counts every image denoised (SMC particles included), forward-model
evaluations are counted beside it, a cell's samples come from one generator each (so sample k does
not depend on how many samples are drawn), and best-of-N keeps the mean and the best side by side."""
from types import SimpleNamespace

import pytest
import torch

import operators as ops
import priors
import restore
from benchmarks.cell import _best_of_metrics, _solve, counted, counted_operator

CELL = SimpleNamespace(spec={"device": "cpu", "dtype": "float32"}, solver="x")


def _problem():
    g = torch.Generator().manual_seed(0)
    prior = priors.Gaussian(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    op = ops.Matrix(torch.randn(2, 4, generator=g, dtype=torch.float64))
    return prior, op, torch.randn(1, 2, generator=g, dtype=torch.float64), ops.GaussianNoise(0.1)


def test_counted_prior_counts_images_not_calls():
    prior, *_ = _problem()
    copy, counter = counted(prior)
    copy.denoise(torch.zeros(5, 4, dtype=torch.float64), 0.5)
    copy.denoise(torch.zeros(2, 4, dtype=torch.float64), 0.1)
    assert counter[0] == 7 and isinstance(copy, priors.Gaussian)


def test_samples_are_independent_of_their_number_and_nfe_is_per_sample():
    prior, op, y, noise = _problem()
    draw = lambda n: _solve(CELL, prior, restore.dps, {"steps": 6}, noise, op, y,  # noqa: E731
                            torch.Generator().manual_seed(3), n)
    three, _, nfe3, op3 = draw(3)
    five, _, nfe5, op5 = draw(5)
    torch.testing.assert_close(three, five[:3], rtol=0, atol=1e-12)
    assert nfe3 == nfe5 == 6
    assert op3 == op5 == 12  # per sample: DPS's one forward and one VJP through the operator per step


def test_smc_nfe_counts_its_particles():
    prior, op, y, noise = _problem()
    _, _, nfe, _ = _solve(CELL, prior, restore.SOLVERS["mcgdiff"], {"steps": 5, "particles": 16}, noise, op, y,
                       torch.Generator().manual_seed(4))
    assert nfe >= 5 * 16


def test_counted_operator_counts_each_kind_once_per_image():
    op = ops.Inpainting(torch.rand(8, 8, generator=torch.Generator().manual_seed(0)) > 0.5, in_shape=(1, 8, 8))
    copy, counts = counted_operator(op)
    assert isinstance(copy, ops.Inpainting) and copy is not op
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(2)).requires_grad_()
    copy(x).square().sum().backward()  # DPS's gradient: one forward, one VJP per image
    assert counts["forward"] == counts["vjp"] == 2 and x.grad is not None
    y = op(x.detach())
    torch.testing.assert_close(copy.H(y), op.H(y))
    copy.prox(x.detach(), y, 0.5)  # the closed form builds on the mask: one solve, nothing inside it
    copy.svd.Vt(x.detach()[:1])
    assert counts == {"forward": 2, "adjoint": 2, "vjp": 2, "normal": 0, "svd": 1, "solve": 2}
    assert op(x.detach()).shape == y.shape and counted_operator(op)[1]["forward"] == 0  # the original is untouched


def test_counted_operator_on_a_user_operator_and_a_cg_prox():
    class Scale:  # not one of operators' classes: only its calls are seen
        def __call__(self, x):
            return 2 * x
    copy, counts = counted_operator(Scale())
    assert torch.equal(copy(torch.ones(3, 2)), 2 * torch.ones(3, 2)) and counts["forward"] == 3
    # a matrix without SVD: its prox runs CG, whose inner products with A and A^H are counted
    A = ops.Matrix(torch.randn(2, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    A.__dict__["svd"] = None
    copy, counts = counted_operator(A)
    copy.__dict__["svd"] = None
    copy.prox(torch.zeros(1, 4, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64), 1.0)
    assert counts["forward"] >= 1 and counts["adjoint"] >= 1 and counts["solve"] == 0


def test_best_of_keeps_the_mean_and_the_best_side_by_side():
    x = torch.zeros(1, 1, 4, 4)
    samples = torch.stack([torch.full((1, 4, 4), v) for v in (0.1, 0.4, 0.2)])
    scores = {"psnr": [20.0, 8.0, 14.0], "lpips": [0.5, 0.1, 0.3]}  # the best PSNR has the worst LPIPS

    def metrics(x_hat, x, op, y):
        k = [0.1, 0.4, 0.2].index(round(float(x_hat.mean()), 1))
        return {name: [values[k]] for name, values in scores.items()} | {"residual": None}

    by_psnr, best = _best_of_metrics(samples, x, None, None, metrics, "psnr")
    assert best == 0
    assert by_psnr["psnr"] == 14.0 and by_psnr["psnr@best3"] == 20.0 and by_psnr["lpips@best3"] == 0.5
    assert abs(by_psnr["lpips"] - 0.3) < 1e-12 and by_psnr["residual"] is None
    each, _ = _best_of_metrics(samples, x, None, None, metrics, "each")  # DAPS: every metric's own best
    assert each["psnr@best3"] == 20.0 and each["lpips@best3"] == 0.1
    with pytest.raises(ValueError, match="best_by: expected 'each' or a ranked metric"):
        _best_of_metrics(samples, x, None, None, metrics, "fid")


def test_counted_prior_counts_the_learned_variance_call_once():
    class Net:  # denoise built on denoise_and_variance, as priors.NetworkPrior does
        def denoise(self, x, sigma):
            return self.denoise_and_variance(x, sigma)[0]

        def denoise_and_variance(self, x, sigma):
            return x / (1 + sigma**2), None

    copy, counter = counted(Net())
    copy.denoise_and_variance(torch.zeros(3, 2), 0.5)  # official DPS's call
    copy.denoise(torch.zeros(2, 2), 0.5)
    assert counter[0] == 5 and isinstance(copy, Net)
