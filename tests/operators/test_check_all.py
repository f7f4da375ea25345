"""Every shipped operator passes ``ops.check`` (DESIGN §3): linearity, the dot test in float64 and
complex128 (relative error <= 1e-6), N == H @ op, prox optimality, SVD consistency and shape errors."""
import pytest
import torch

import operators as ops
from operator_cases import CASES
from operators.linear import LinearOperator, rdot

NAMES = sorted(CASES)


@pytest.mark.parametrize("name", NAMES)
def test_conformance(name):
    op = CASES[name]()
    report = ops.check(op, dtype=(torch.float64, torch.complex128), generator=torch.Generator().manual_seed(0))
    if isinstance(op, LinearOperator):
        for dtype in ("float64", "complex128"):
            assert report[dtype]["dot"] <= 1e-6
            assert report[dtype]["normal"] <= 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_pure_and_h_cached(name):
    """Calling an operator leaves its public state unchanged and H/N are cached objects."""
    op = CASES[name]()
    x = torch.randn(2, *op.in_shape, generator=torch.Generator().manual_seed(1))
    public = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in vars(op).items()
              if not k.startswith("_") and k not in ("H", "N", "svd")}
    y1 = op(x)
    y2 = op(x)
    assert torch.equal(y1, y2)
    for k, v in public.items():
        now = getattr(op, k)
        assert (torch.equal(now, v) if isinstance(v, torch.Tensor) else now is v or now == v), k
    if isinstance(op, LinearOperator):
        assert op.H is op.H and op.H.H is op and op.N is op.N


def test_check_rejects_wrong_adjoint():
    """The check is not vacuous: an operator whose adjoint is off by a transpose fails the dot test."""
    A = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    class Broken(LinearOperator):
        def __init__(self):
            super().__init__((4,), (4,), "Broken")
            self.A = A

        def _apply(self, x):
            return x @ self._buf("A", x).mT

        def _adjoint(self, y):
            return y @ self._buf("A", y).mT  # should be y @ A (no transpose)

    with pytest.raises(AssertionError, match="dot"):
        ops.check(Broken(), dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(1, 4, dtype=torch.float64, generator=g), torch.randn(1, 4, dtype=torch.float64, generator=g)
    assert abs(float(rdot(Broken()(x), y) - rdot(x, Broken().H(y)))) > 1e-3


def test_check_rejects_missing_shape_check():
    class Loose(LinearOperator):
        def __init__(self):
            super().__init__((3,), (3,), "Loose")

        def __call__(self, x):  # bypasses the base class's check
            return self._apply(x)

        def _apply(self, x):
            return 2 * x

        _adjoint = _apply

    with pytest.raises(AssertionError, match="wrong x shape"):
        ops.check(Loose(), dtype=torch.float64)
