"""The LinearOperator algebra, CG, the SVD container and the pure/immutable contract."""
import pytest
import torch

import operators as ops
from operators.linear import FunctionOperator, Identity, LinearOperator, Operator, batch_norm, cg, rdot

D = torch.float64


def _mat(m, n, seed, dtype=D):
    return torch.randn(m, n, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def test_algebra_matches_dense_matrices(generator):
    A, B = _mat(5, 4, 0), _mat(4, 3, 1)
    C = _mat(5, 4, 2)
    a, b, c = ops.Matrix(A), ops.Matrix(B), ops.Matrix(C)
    x = torch.randn(3, 3, dtype=D, generator=generator)
    x4 = torch.randn(3, 4, dtype=D, generator=generator)
    y = torch.randn(3, 5, dtype=D, generator=generator)
    torch.testing.assert_close((a @ b)(x), x @ (A @ B).T)
    torch.testing.assert_close((a @ b).H(y), y @ (A @ B))
    torch.testing.assert_close((a + c)(x4), x4 @ (A + C).T)
    torch.testing.assert_close((a - c)(x4), x4 @ (A - C).T)
    torch.testing.assert_close((2.5 * a)(x4), 2.5 * x4 @ A.T)
    torch.testing.assert_close((a * 2.5).H(y), 2.5 * y @ A)
    torch.testing.assert_close((-a)(x4), -x4 @ A.T)
    torch.testing.assert_close(a.N(x4), x4 @ (A.T @ A))


def test_complex_scalar_adjoint_is_conjugated(generator):
    a = ops.Matrix(_mat(3, 3, 3))
    s = complex(0.3, -2.0) * a
    x = torch.randn(2, 3, dtype=torch.complex128, generator=generator)
    y = torch.randn(2, 3, dtype=torch.complex128, generator=generator)
    lhs = (s(x).conj() * y).sum(1)
    rhs = (x.conj() * s.H(y)).sum(1)
    torch.testing.assert_close(lhs, rhs)
    # scaled SVD stays an exact SVD (phase moved into U)
    svd = s.svd
    torch.testing.assert_close(svd.U(svd.s.to(x.real.dtype) * svd.Vt(x)), s(x))


def test_shape_errors_name_the_operator():
    op = ops.Matrix(_mat(3, 4, 4))
    with pytest.raises(ValueError, match=r"Matrix\[3x4\]: x must have shape \(B, 4\)"):
        op(torch.zeros(2, 5, dtype=D))
    with pytest.raises(ValueError, match=r"Matrix\[3x4\]\.H: x must have shape \(B, 3\)"):
        op.H(torch.zeros(2, 4, dtype=D))
    with pytest.raises(ValueError, match="z"):
        op.prox(torch.zeros(2, 3, dtype=D), torch.zeros(2, 3, dtype=D), 1.0)
    with pytest.raises(TypeError, match="x must be a floating"):
        op(torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="cannot compose"):
        op @ op
    with pytest.raises(ValueError, match="cannot add"):
        op + ops.Matrix(_mat(4, 3, 5))
    with pytest.raises(ValueError, match="rho"):
        op.prox(torch.zeros(2, 4, dtype=D), torch.zeros(2, 3, dtype=D), torch.ones(3))


def test_real_input_operator_rejects_complex_and_is_real_linear():
    class RealToComplex(LinearOperator):
        real_input = True

        def __init__(self):
            super().__init__((3,), (3,), "R2C")

        def _apply(self, x):
            return x * torch.tensor([1j, 1.0, 1 + 1j], dtype=torch.complex128)

        def _adjoint(self, y):
            return (y * torch.tensor([1j, 1.0, 1 + 1j], dtype=torch.complex128).conj()).real

    op = RealToComplex()
    with pytest.raises(TypeError, match="x must be real"):
        op(torch.zeros(1, 3, dtype=torch.complex128))
    assert op.H.real_output and op.H.H is op
    with pytest.raises(TypeError, match="real-linear"):
        1j * op
    report = ops.check(op)
    assert report["complex128"]["dot"] < 1e-12


def test_cg_solves_batched_spd_system(generator):
    M = _mat(6, 6, 6)
    S1, S2 = M @ M.T + 0.5 * torch.eye(6, dtype=D), M.T @ M + 2 * torch.eye(6, dtype=D)
    b = torch.randn(2, 6, dtype=D, generator=generator)
    apply = lambda v: torch.stack([S1 @ v[0], S2 @ v[1]])  # noqa: E731  -- a different system per sample
    x = cg(apply, b, tol=1e-12, max_iter=50)
    torch.testing.assert_close(x[0], torch.linalg.solve(S1, b[0]))
    torch.testing.assert_close(x[1], torch.linalg.solve(S2, b[1]))


def test_inner_products_do_not_depend_on_the_thread_count(generator):
    """A benchmark cell must give the same numbers on 1 thread as on 2 (--workers 2 against 1)."""
    a, b = (torch.randn(1, 3, 160, 160, generator=generator) for _ in range(2))
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append((rdot(a, b), batch_norm(a), cg(lambda v: 2 * v + v.flip(-1), b, max_iter=5)))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert torch.equal(one, two)
    assert results[0][0].dtype == torch.float32


def test_default_cg_prox_and_pinv_match_closed_forms(generator):
    """An operator without an SVD falls back to CG; compare with the dense formulas."""
    A = _mat(4, 7, 7)
    op = FunctionOperator(lambda x: x @ A.T, lambda y: y @ A, (7,), (4,))
    assert op.svd is None
    z = torch.randn(2, 7, dtype=D, generator=generator)
    y = torch.randn(2, 4, dtype=D, generator=generator)
    rho = torch.tensor([0.1, 3.0], dtype=D)
    x = op.prox(z, y, rho, tol=1e-12, max_iter=200)
    for i in range(2):
        ref = torch.linalg.solve(A.T @ A + rho[i] * torch.eye(7, dtype=D), A.T @ y[i] + rho[i] * z[i])
        torch.testing.assert_close(x[i], ref)
    torch.testing.assert_close(op.pinv(y, tol=1e-12, max_iter=200), y @ torch.linalg.pinv(A).T)


def test_to_returns_a_new_operator_and_follows_inputs():
    op = ops.Blur(ops.kernels.gaussian(5, 1.0), (1, 12, 12))
    op64 = op.to(dtype=D)
    assert op64 is not op and op64.kernel.dtype == D and op.kernel.dtype == torch.float32
    x = torch.rand(2, 1, 12, 12, dtype=D, generator=torch.Generator().manual_seed(0))
    # a float32 operator applied to float64 data computes in float64 (buffers cast, cached privately)
    assert op(x).dtype == D
    torch.testing.assert_close(op(x), op64(x))


def test_identity_and_nonlinear_composition(generator):
    class Square(Operator):
        def __init__(self):
            super().__init__((3,), (3,), "Square")

        def _apply(self, x):
            return x * x

    A = _mat(3, 3, 8)
    comp = ops.Matrix(A) @ Square()
    x = torch.randn(2, 3, dtype=D, generator=generator)
    assert isinstance(comp, Operator)
    torch.testing.assert_close(comp(x), (x * x) @ A.T)
    with pytest.raises(ValueError, match="Square"):
        Square()(torch.zeros(2, 4, dtype=D))
    idn = Identity((3,))
    assert idn.N is idn
    torch.testing.assert_close(idn.prox(x, 2 * x, 1.0), 1.5 * x)


def test_svd_pinv_is_minimum_norm(generator):
    A = _mat(3, 6, 9)
    op = ops.Matrix(A)
    y = torch.randn(4, 3, dtype=D, generator=generator)
    x = op.pinv(y)
    torch.testing.assert_close(x, y @ torch.linalg.pinv(A).T)
    # min norm: orthogonal to the null space
    null = torch.linalg.svd(A, full_matrices=True).Vh[3:]
    assert float((x @ null.T).abs().max()) < 1e-12
    assert float(batch_norm(op(x) - y).max()) < 1e-10
    assert float(rdot(x, x).min()) > 0


def test_truncated_svd_drops_small_singular_values_from_pinv_and_prox():
    A = torch.diag(torch.tensor([2.0, 1.0, 0.01], dtype=torch.float64))
    op = ops.Matrix(A)
    y = torch.tensor([[2.0, 3.0, 0.05]], dtype=torch.float64)
    svd = op.svd.truncated(0.03)
    assert sorted(svd.s.tolist()) == [0.0, 1.0, 2.0]
    torch.testing.assert_close(op.pinv(y, rcond=0.03), torch.tensor([[1.0, 3.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(op.pinv(y), torch.tensor([[1.0, 3.0, 5.0]], dtype=torch.float64))
    # Ut is zero where the truncated s is zero, so U(s * Vt x) still rebuilds the truncated operator
    x = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(svd.U(svd.s * svd.Vt(x)), torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64))
    assert op.svd.truncated(0.0) is op.svd


def test_function_operator_buffers_follow_to_and_closures_cannot_lose_precision():
    A = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))  # float32
    x = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with_buffers = FunctionOperator(lambda v, A: v @ A.T, lambda w, A: w @ A, (5,), (3,), buffers={"A": A})
    moved = with_buffers.to(dtype=torch.float64)
    assert moved.buffers["A"].dtype == torch.float64 and with_buffers.buffers["A"].dtype == torch.float32
    torch.testing.assert_close(moved(x), x @ A.double().T, rtol=0, atol=0)
    closure = FunctionOperator(lambda v: (v.float() @ A.T), lambda w: w.float() @ A, (5,), (3,), name="Lossy")
    with pytest.raises(TypeError, match="Lossy: apply returned torch.float32 for torch.float64"):
        closure.to(dtype=torch.float64)(x)
