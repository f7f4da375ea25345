"""Prior-free baselines against closed forms."""
from __future__ import annotations

import pytest
import torch

import operators as ops
import restore
from restore.baselines import gradient, gradient_adjoint, pinv, total_variation, tv

G = torch.Generator().manual_seed(0)
A_TALL = torch.randn(12, 5, generator=G, dtype=torch.float64)
A_WIDE = torch.randn(4, 9, generator=G, dtype=torch.float64)


@pytest.mark.parametrize("A", [A_TALL, A_WIDE], ids=["least-squares", "min-norm"])
@pytest.mark.parametrize("steps", [50, 500])
def test_pinv_converges_to_the_closed_form_pseudo_inverse(A, steps):
    # far more iterations than unknowns: CGLS must stop once converged, not drift on rounding-level ratios
    y = torch.randn(3, A.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    iterations = []
    x = pinv(None, ops.Matrix(A), y, None, steps=steps, callback=lambda d: iterations.append(d["i"]))
    torch.testing.assert_close(x, y @ torch.linalg.pinv(A).T, rtol=0, atol=1e-9)
    assert len(iterations) <= 2 * min(A.shape)  # stopped at convergence, not at the cap


def test_pinv_stops_early_at_the_discrepancy_level():
    # Morozov: stop at the first iterate with ||A x - y|| <= tau sigma sqrt(m), before the noise is fitted.
    A = torch.linalg.qr(torch.randn(40, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64))[0]
    A = A @ torch.diag(torch.logspace(0, -4, 40, dtype=torch.float64))
    x_true = torch.randn(1, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sigma = 1e-2
    y = x_true @ A.T + sigma * torch.randn(1, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    iterates = []
    x = pinv(None, ops.Matrix(A), y, sigma, steps=40, callback=lambda d: iterates.append(d["x"]))
    residual = lambda v: float((v @ A.T - y).norm())  # noqa: E731
    assert residual(x) <= sigma * 40 ** 0.5 < residual(iterates[-2])
    assert len(iterates) < 40
    full = pinv(None, ops.Matrix(A), y, None, steps=40)
    assert float((x - x_true).norm()) < float((full - x_true).norm())  # semi-convergence


@pytest.mark.parametrize("shape", [(7,), (2, 5, 6)])
def test_gradient_adjoint_passes_the_dot_test(shape):
    g = torch.Generator().manual_seed(5)
    ndim = 1 if len(shape) == 1 else 2
    x = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    q = torch.randn(3, ndim, *shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close((gradient(x, ndim) * q).sum(), (x * gradient_adjoint(q, ndim)).sum())


def test_tv_denoising_of_a_step_matches_the_closed_form():
    # 1-D ROF on a noise-free step of height h with plateaus n1, n2: each plateau moves towards the
    # other by lam / n_k (the dual is lam on the jump and linear on each plateau), if h > lam (1/n1 + 1/n2).
    n1, n2, h, lam = 4, 6, 1.0, 0.6
    y = torch.cat([torch.zeros(n1), h * torch.ones(n2)]).to(torch.float64)[None]
    x = tv(None, ops.Matrix(torch.eye(n1 + n2, dtype=torch.float64)), y, None, steps=3000, lam=lam)
    expected = torch.cat([torch.full((n1,), lam / n1), torch.full((n2,), h - lam / n2)]).to(torch.float64)[None]
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)


def test_tv_minimises_the_objective():
    g = torch.Generator().manual_seed(6)
    op = ops.Matrix(torch.randn(30, 36, generator=g, dtype=torch.float64) / 6)
    op_img = ops.Matrix(op.A)  # (B, 36) vectors; check on 1-D TV
    y = torch.randn(2, 30, generator=g, dtype=torch.float64)
    lam = 0.05
    x = tv(None, op_img, y, 0.05, steps=2000, lam=lam)

    def objective(v):
        return 0.5 * (op(v) - y).pow(2).sum(1) + lam * total_variation(v, 1)
    f = objective(x)
    assert bool((f < objective(torch.zeros_like(x))).all())
    for _ in range(20):  # convex: no small perturbation does better
        d = 1e-3 * torch.randn(x.shape, generator=g, dtype=torch.float64)
        assert bool((objective(x + d) >= f - 1e-9).all())


class WithFBP(ops.Matrix):
    def fbp(self, y):
        return torch.full((y.shape[0], *self.in_shape), 42.0, dtype=y.dtype)


def test_classical_uses_the_operators_own_inverse_else_pinv():
    y = torch.randn(2, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert bool((restore.classical(None, WithFBP(A_WIDE), y, None) == 42).all())
    torch.testing.assert_close(restore.classical(None, ops.Matrix(A_WIDE), y, None, steps=50),
                               y @ torch.linalg.pinv(A_WIDE).T, rtol=0, atol=1e-9)
