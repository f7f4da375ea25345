r"""``ops.check(op)``: the conformance check for any operator (ours or a user's).

For a :class:`~operators.linear.LinearOperator` it measures, in each requested dtype:

* **linearity**: :math:`\|A(a x_1 + b x_2) - a A x_1 - b A x_2\| / (|a|\|Ax_1\| + |b|\|Ax_2\|)`
  (complex scalars unless the operator is only real-linear);
* **dot test**: :math:`|\mathrm{Re}\langle Ax, y\rangle - \mathrm{Re}\langle x, A^H y\rangle| /
  (\|Ax\|\,\|y\|)`, random ``x`` and ``y`` (the real inner product, DESIGN §2);
* **normal**: :math:`\|N x - A^H A x\| / \|A^H A x\|`;
* **prox**: optimality of :math:`\hat x = \mathrm{prox}(z, y, \rho)`: the gradient of the objective,
  :math:`\|2 A^H(A\hat x - y) + 2\rho(\hat x - z)\| / \|2 A^H y + 2 \rho z\|`, with ``rho`` a float and a
  ``(B,)`` tensor;
* **svd** (if any): :math:`\|Ax - U(s\,V^H x)\| / \|Ax\|`, :math:`\|x - V(V^H x)\| / \|x\|` and the
  pinv formula :math:`V(s^+ U^H y)` against ``op.pinv``;
* **shape errors**: a wrong trailing shape raises ``ValueError`` for ``op``, ``op.H`` and ``op.prox``.

Exact identities must hold to ``tol`` (default 1e-6, relative); the prox (CG by default) to ``prox_tol``.
Nonlinear :class:`~operators.linear.Operator` objects get the shape checks and a finite-output check.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import Tensor

from .linear import LinearOperator, _Base, batch_norm, rdot

__all__ = ["check"]


def _randn(shape, dtype, g: torch.Generator) -> Tensor:
    return torch.randn(shape, dtype=dtype, generator=g, device=g.device)


def _rel(num: Tensor, den: Tensor) -> float:
    return float((num / den.clamp_min(torch.finfo(den.dtype).tiny)).max())


def _expect_value_error(fn, what: str, failures: list[str]) -> None:
    try:
        fn()
    except ValueError:
        return
    except Exception as e:  # noqa: BLE001 -- any other error type is itself the failure
        failures.append(f"{what} raised {type(e).__name__} instead of ValueError: {e}")
        return
    failures.append(f"{what} did not raise ValueError")


def _wrong(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[:-1] + (shape[-1] + 1,)


def _input_dtype(op: _Base, dtype: torch.dtype, side: str) -> torch.dtype:
    real_only = op.real_input if side == "in" else op.real_output
    if dtype.is_complex and real_only:
        return torch.float64 if dtype == torch.complex128 else torch.float32
    return dtype


def check(op: _Base, dtype: torch.dtype | Iterable[torch.dtype] = (torch.float64, torch.complex128),
          generator: torch.Generator | None = None, batch: int = 2, tol: float = 1e-6,
          prox_tol: float = 1e-4, device: torch.device | str | None = None) -> dict:
    """Run the conformance checks; return a report and raise ``AssertionError`` listing every failure.

    :param op: the operator to check.
    :param dtype: one dtype or several; each is tested (the operator is converted with ``op.to``).
        Complex dtypes test complex inputs, or real inputs and complex measurements for an operator
        with ``real_input``.
    :param generator: source of the random test vectors (default: seeded with 0, reproducible).
    :param batch: batch size of the test vectors.
    :param tol: relative tolerance for exact identities.
    :param prox_tol: relative tolerance for the prox optimality (CG-based by default).
    :param device: where to run (default: the operator's own buffers are cast on the fly to CPU inputs).
    :return: ``{"name": ..., "float64": {"dot": ..., ...}, "complex128": {...}}``.

    >>> import operators as ops
    >>> report = check(ops.Matrix(torch.randn(3, 4)))
    >>> report["float64"]["dot"] < 1e-6
    True
    """
    g = generator if generator is not None else torch.Generator(device=device or "cpu").manual_seed(0)
    dtypes = (dtype,) if isinstance(dtype, torch.dtype) else tuple(dtype)
    report: dict = {"name": op.name}
    failures: list[str] = []
    for dt in dtypes:
        key = str(dt).replace("torch.", "")
        A = op.to(device=device, dtype=dt)
        res = report[key] = {}
        x_dt, y_dt = _input_dtype(A, dt, "in"), _input_dtype(A, dt, "out")
        x = _randn((batch, *A.in_shape), x_dt, g)
        if isinstance(A, LinearOperator):
            y = _randn((batch, *A.out_shape), y_dt, g)
            _check_linear(A, x, y, g, res)
            _expect_value_error(lambda: A.prox(_randn((batch, *_wrong(A.in_shape)), x_dt, g), y, 1.0),
                                f"{A.name}.prox with a wrong z shape", failures)
            _expect_value_error(lambda: A.H(_randn((batch, *_wrong(A.out_shape)), y_dt, g)),
                                f"{A.name}.H with a wrong y shape", failures)
        else:
            out = A(x)
            res["finite"] = bool(torch.isfinite(out).all())
            if not res["finite"]:
                failures.append(f"{A.name} [{key}]: non-finite output")
        _expect_value_error(lambda: A(_randn((batch, *_wrong(A.in_shape)), x_dt, g)),
                            f"{A.name} with a wrong x shape", failures)
        _expect_value_error(lambda: A(_randn(A.in_shape, x_dt, g)), f"{A.name} without a batch dim", failures)
        for name, val in res.items():
            if name == "finite":
                continue
            limit = prox_tol if name.startswith("prox") else tol
            if not val <= limit:
                failures.append(f"{A.name} [{key}]: {name} relative error {val:.3g} > {limit:g}")
    if failures:
        raise AssertionError(f"ops.check({op.name}) failed:\n  " + "\n  ".join(failures))
    return report


def _check_linear(A: LinearOperator, x: Tensor, y: Tensor, g: torch.Generator, res: dict) -> None:
    Ax, AHy = A(x), A.H(y)
    # linearity (complex scalars only for complex-linear operators on complex inputs)
    x2 = _randn(x.shape, x.dtype, g)
    if x.is_complex() and not (A.real_input or A.real_output):
        a, b = complex(0.7, -0.4), complex(-1.3, 0.2)
    else:
        a, b = 0.7, -1.3
    lhs = A(a * x + b * x2)
    res["linearity"] = _rel(batch_norm(lhs - a * Ax - b * A(x2)), abs(a) * batch_norm(Ax) + abs(b) * batch_norm(A(x2)))
    # dot test under the real inner product
    res["dot"] = _rel((rdot(Ax, y) - rdot(x, AHy)).abs(), batch_norm(Ax) * batch_norm(y))
    # normal operator
    AHAx = A.H(Ax)
    res["normal"] = _rel(batch_norm(A.N(x) - AHAx), batch_norm(AHAx))
    # prox optimality with a float and a per-sample rho
    z = _randn(x.shape, x.dtype, g)
    for label, rho in (("prox", 0.37), ("prox_batched", torch.linspace(0.1, 2.0, x.shape[0], dtype=torch.float64))):
        xh = A.prox(z, y, rho)
        r = rho if isinstance(rho, float) else rho.to(x.device).reshape(-1, *([1] * (x.ndim - 1)))
        grad = 2 * A.H(A(xh) - y) + 2 * r * (xh - z)
        res[label] = _rel(batch_norm(grad), batch_norm(2 * AHy + 2 * r * z))
    svd = A.svd
    if svd is not None:
        # an operator's own SVD has prod(in_shape) coefficients; the transposed SVD of an adjoint keeps
        # those of its parent, prod(out_shape)
        if svd.s.ndim != 1 or svd.s.numel() not in (math.prod(A.in_shape), math.prod(A.out_shape)):
            res["svd_len"] = math.inf
        Vx = svd.Vt(x)
        s = svd.s.to(device=Vx.device, dtype=Vx.real.dtype)
        rebuilt = svd.U(s * Vx)
        rebuilt = rebuilt.real if rebuilt.is_complex() and not Ax.is_complex() else rebuilt
        res["svd_forward"] = _rel(batch_norm(Ax - rebuilt), batch_norm(Ax))
        back = svd.V(Vx)
        back = back.real if back.is_complex() and not x.is_complex() else back
        res["svd_V"] = _rel(batch_norm(x - back), batch_norm(x))
        adj = svd.V(s * svd.Ut(y))
        adj = adj.real if adj.is_complex() and not AHy.is_complex() else adj
        res["svd_adjoint"] = _rel(batch_norm(AHy - adj), batch_norm(AHy))
        ref = svd.pinv(y)
        p = A.pinv(y)
        ref = ref.real if ref.is_complex() and not p.is_complex() else ref
        res["svd_pinv"] = _rel(batch_norm(p - ref), batch_norm(ref))
        if float(s.min()) < 0:
            res["svd_nonnegative"] = math.inf


def main(argv: list[str] | None = None) -> None:
    """``python -m operators.check [FILE.py:NAME]``: the conformance check over a dict of zero-argument
    operator factories (default: every shipped operator, the test suite's
    ``tests/operators/operator_cases.py:CASES`` of a checkout), printing each one's dot-test relative
    error (every other check raises if it fails)."""
    import importlib.util
    import sys
    from pathlib import Path

    from .linear import LinearOperator

    argv = sys.argv[1:] if argv is None else argv
    default = Path(__file__).resolve().parent.parent / "tests" / "operators" / "operator_cases.py"
    path, _, name = (argv[0] if argv else f"{default}:CASES").rpartition(":")
    spec = importlib.util.spec_from_file_location("operator_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(f"{'operator':<28}{'float64 dot':>22}{'complex128 dot':>22}")
    worst = {"float64": 0.0, "complex128": 0.0}
    for label, factory in getattr(module, name).items():
        op = factory()
        if not isinstance(op, LinearOperator):
            continue
        report = check(op)
        row = f"{label:<28}"
        for d in worst:
            worst[d] = max(worst[d], report[d]["dot"])
            row += f"{report[d]['dot']:>22.2e}"
        print(row)
    print(f"max dot-test relative error: float64 {worst['float64']:.2e}, complex128 {worst['complex128']:.2e}")


if __name__ == "__main__":
    main()
