r"""Linear operator algebra, nonlinear forward models, batched CG and the SVD container.

The design follows sigpy's ``linop.py``: an operator is a pair of explicit partners
``_apply`` / ``_adjoint`` with checked shapes; ``H`` (adjoint) and ``N`` (normal operator
:math:`A^H A`) are cached; operators compose with ``@``, add with ``+``/``-`` and scale with ``*``.

Conventions (DESIGN §2):

* a batch ``x`` has shape ``(B, *in_shape)``; ``op(x)`` has shape ``(B, *out_shape)``;
* every inner product is the *real* one, :math:`\mathrm{Re}\langle a, b\rangle`. For a complex-linear
  operator this is equivalent to the complex adjoint; for an operator that maps real images to complex
  measurements (``real_input=True``, e.g. MRI of a real image) the adjoint is
  :math:`\mathrm{Re}(A^H y)` and the operator's ``H`` has ``real_output=True``;
* operators are pure: calling one never changes it. Derived tensors (a kernel's FFT, a buffer cast to the
  input's device and precision) are memoised in a private cache keyed by device and dtype, which is not
  observable state;
* buffers follow the input: an operator built in float32 on the CPU applies to a float64 CUDA batch (the
  buffers are cast once per device/dtype and cached); ``to()`` returns a new operator with moved buffers.

Writing an operator::

    class Scale(LinearOperator):
        def __init__(self, w):               # w: (n,)
            super().__init__((w.numel(),), (w.numel(),), name="Scale")
            self.w = w
        def _apply(self, x):
            return self._buf("w", x) * x
        def _adjoint(self, y):
            return self._buf("w", y).conj() * y

Subclasses may also override ``_normal()`` (closed-form ``N``), ``_svd()`` (exact SVD pieces),
``_prox(z, y, rho)`` and ``_pinv(y)`` (closed forms; ``rho`` arrives already shaped to broadcast).
"""
from __future__ import annotations

import copy
import math
from functools import cached_property
from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "LinearOperator",
    "Operator",
    "FunctionOperator",
    "Identity",
    "SVD",
    "cg",
    "real_dtype",
    "complex_dtype",
    "cast_like",
    "rdot",
    "batch_norm",
]

Shape = tuple[int, ...]


# ----------------------------------------------------------------------------------------------
# small tensor helpers shared by the operators
# ----------------------------------------------------------------------------------------------
def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype of the same precision (``complex64 -> float32``)."""
    return torch.empty((), dtype=dtype).real.dtype if dtype.is_complex else dtype


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype of the same precision (``float64 -> complex128``)."""
    if dtype.is_complex:
        return dtype
    return {torch.float64: torch.complex128, torch.float16: torch.complex32}.get(dtype, torch.complex64)


def cast_like(t: Tensor, x: Tensor) -> Tensor:
    """``t`` on ``x``'s device in ``x``'s precision; a real ``t`` stays real, a complex ``t`` stays complex."""
    dtype = complex_dtype(real_dtype(x.dtype)) if t.is_complex() else real_dtype(x.dtype)
    if not t.is_floating_point() and not t.is_complex():
        dtype = real_dtype(x.dtype) if x.is_floating_point() or x.is_complex() else dtype
    return t.to(device=x.device, dtype=dtype)


def rdot(a: Tensor, b: Tensor) -> Tensor:
    r"""Per-sample real inner product :math:`\mathrm{Re}\langle a, b\rangle`, shape ``(B,)``.

    Summed in float64 (on CPU), then rounded to the inputs' precision: a float32 sum split over threads
    depends on the thread count, and through conjugate gradient so would a whole solver run; in float64
    the partial sums' order stays below float32's rounding."""
    prod = a.conj() * b if (a.is_complex() or b.is_complex()) else a * b
    prod = prod.real if prod.is_complex() else prod
    return prod.reshape(a.shape[0], -1).sum(1, dtype=_accumulator(prod)).to(prod.dtype)


def batch_norm(a: Tensor) -> Tensor:
    """Per-sample Euclidean norm, shape ``(B,)`` (accumulated as :func:`rdot`)."""
    real = a.abs() if a.is_complex() else a
    return torch.linalg.vector_norm(real.reshape(a.shape[0], -1), dim=1, dtype=_accumulator(real)).to(real.dtype)


def _accumulator(t: Tensor) -> torch.dtype:
    """float64 for CPU sums below float64; a GPU's sum order does not follow a thread count, and many GPUs
    are slow in float64."""
    return torch.float64 if t.device.type == "cpu" and t.dtype != torch.float64 else t.dtype


def _per_sample(rho: float | Tensor, like: Tensor) -> float | Tensor:
    """Reshape a scalar or ``(B,)`` weight to broadcast against a batch ``like``."""
    if isinstance(rho, Tensor) and rho.ndim > 0:
        if rho.shape != (like.shape[0],):
            raise ValueError(f"rho must be a float or a ({like.shape[0]},) tensor, got shape {tuple(rho.shape)}")
        return rho.to(device=like.device, dtype=real_dtype(like.dtype)).reshape(-1, *([1] * (like.ndim - 1)))
    return float(rho)


def _check_tensor(t: Tensor, name: str, arg: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(t).__name__}")
    if not (t.is_floating_point() or t.is_complex()):
        raise TypeError(f"{name}: {arg} must be a floating or complex tensor, got {t.dtype}")


def _check_shape(t: Tensor, shape: Shape, name: str, arg: str) -> None:
    _check_tensor(t, name, arg)
    if t.ndim != len(shape) + 1 or tuple(t.shape[1:]) != shape:
        raise ValueError(f"{name}: {arg} must have shape (B, {', '.join(map(str, shape))}), got {tuple(t.shape)}")


# ----------------------------------------------------------------------------------------------
# batched conjugate gradient
# ----------------------------------------------------------------------------------------------
def cg(apply_A: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor | None = None, tol: float = 1e-6,
       max_iter: int = 100) -> Tensor:
    r"""Batched conjugate gradient for a self-adjoint positive (semi-)definite ``apply_A``.

    Solves :math:`A x_i = b_i` for every sample ``i`` of the batch independently (Hestenes & Stiefel 1952,
    Alg. CG), with per-sample step sizes. Stops when every sample has
    :math:`\|b_i - A x_i\| \le \mathrm{tol}\,\|b_i\|` or after ``max_iter`` iterations. Started at 0 on a
    consistent singular system it returns the minimum-norm solution.

    :param apply_A: batched map ``(B, ...) -> (B, ...)``, self-adjoint under ``Re<.,.>``.
    :param b: right-hand side ``(B, ...)``.
    :param x0: initial guess (default 0).
    :param tol: relative residual tolerance per sample.
    :param max_iter: iteration cap.
    :return: ``x`` with the shape of ``b``.

    >>> A = torch.tensor([[4., 1.], [1., 3.]], dtype=torch.float64)
    >>> x = cg(lambda v: v @ A, torch.tensor([[1., 2.]], dtype=torch.float64))
    >>> torch.allclose(x @ A, torch.tensor([[1., 2.]], dtype=torch.float64))
    True
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    view = (-1,) + (1,) * (b.ndim - 1)
    r = b - apply_A(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = rdot(r, r)
    stop = (tol * batch_norm(b)) ** 2
    for _ in range(max_iter):
        if bool((rr <= stop).all()):
            break
        Ap = apply_A(p)
        pAp = rdot(p, Ap)
        active = rr > stop
        alpha = torch.where(active & (pAp > 0), rr / torch.where(pAp > 0, pAp, 1), 0)
        x = x + alpha.reshape(view) * p
        r = r - alpha.reshape(view) * Ap
        rr_new = rdot(r, r)
        beta = torch.where(active, rr_new / torch.where(rr > 0, rr, 1), 0)
        p = r + beta.reshape(view) * p
        rr = rr_new
    return x


# ----------------------------------------------------------------------------------------------
# SVD container
# ----------------------------------------------------------------------------------------------
class SVD:
    r"""Exact singular value decomposition :math:`A = U\,\mathrm{diag}(s)\,V^H` in matrix-free form.

    Coefficient vectors have shape ``(B, n)`` with ``n = len(s)`` (``prod(in_shape)`` for an operator's
    own SVD) and are aligned with ``s``. ``Ut(y)`` is zero where ``s == 0``. Then
    ``A(x) == U(s * Vt(x))``, ``A.H(y) == V(s * Ut(y))`` and ``pinv(y) == V(where(s > 0, Ut(y) / s, 0))``.

    ``complex`` is True for Fourier-based operators with real entries: ``Vt``/``Ut`` return complex
    coefficients even for real signals and ``V``/``U`` return complex tensors. For a real signal take ``.real`` of the result
    of ``V``/``U``: this is exact whenever the coefficients come from a real signal and are scaled by real
    functions of ``s`` (Hermitian symmetry is kept), which covers the pinv, the prox and DDRM-style
    spectral updates without spectral noise.

    :param s: singular values ``(n,)``, real, non-negative.
    :param Vt: ``(B, *in_shape) -> (B, n)``; :param V: its inverse ``(B, n) -> (B, *in_shape)``.
    :param Ut: ``(B, *out_shape) -> (B, n)``; :param U: ``(B, n) -> (B, *out_shape)``.
    """

    def __init__(self, s: Tensor, Vt: Callable[[Tensor], Tensor], V: Callable[[Tensor], Tensor],
                 Ut: Callable[[Tensor], Tensor], U: Callable[[Tensor], Tensor], complex: bool = False):
        if s.ndim != 1 or s.is_complex():
            raise ValueError(f"s must be a real 1-D tensor, got shape {tuple(s.shape)} and dtype {s.dtype}")
        self.s, self.Vt, self.V, self.Ut, self.U, self.complex = s, Vt, V, Ut, U, complex

    def transpose(self) -> "SVD":
        """The SVD of the adjoint: ``A^H = V diag(s) U^H``."""
        return SVD(self.s, self.Ut, self.U, self.Vt, self.V, self.complex)

    def truncated(self, rcond: float) -> "SVD":
        """The same decomposition with singular values at or below ``rcond * max(s)`` set to zero (a
        truncated SVD, as DDRM's official deblurring and SR operators do with ``ZERO = 3e-2``). ``Ut``
        stays zero where the new ``s`` is zero, so every rule above still holds."""
        if rcond <= 0:
            return self
        keep = self.s > rcond * float(self.s.max())

        def Ut(y: Tensor) -> Tensor:
            c = self.Ut(y)
            return torch.where(keep.to(c.device), c, torch.zeros((), dtype=c.dtype, device=c.device))

        return SVD(torch.where(keep, self.s, 0), self.Vt, self.V, Ut, self.U, self.complex)

    def pinv(self, y: Tensor, rcond: float = 0.0) -> Tensor:
        """Minimum-norm least-squares solution ``V(where(s > 0, Ut(y) / s, 0))`` of the decomposition
        truncated at ``rcond`` (see :meth:`truncated`)."""
        svd = self.truncated(rcond)
        c = svd.Ut(y)
        s = cast_like(svd.s, c)
        keep = s > 0
        return svd.V(torch.where(keep, c / torch.where(keep, s, 1), 0))

    def prox(self, z: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        r""":math:`\arg\min_x \|Ax - y\|^2 + \rho\|x - z\|^2 = V\,\frac{s\,U^H y + \rho V^H z}{s^2 + \rho}`."""
        if isinstance(rho, Tensor):
            rho = rho.reshape(-1, 1)
        s = cast_like(self.s, z)
        return self.V((s * self.Ut(y) + rho * self.Vt(z)) / (s * s + rho))


# ----------------------------------------------------------------------------------------------
# base classes
# ----------------------------------------------------------------------------------------------
class _Base:
    """Shape bookkeeping and the private per-device cache shared by linear and nonlinear operators."""

    in_shape: Shape
    out_shape: Shape
    name: str

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], name: str | None = None):
        self.in_shape = tuple(int(d) for d in in_shape)
        self.out_shape = tuple(int(d) for d in out_shape)
        if any(d <= 0 for d in self.in_shape + self.out_shape):
            raise ValueError(f"in_shape and out_shape must be positive, got {self.in_shape} -> {self.out_shape}")
        self.name = name or type(self).__name__
        self._cache: dict = {}

    def _buf(self, attr: str, like: Tensor) -> Tensor:
        """Tensor attribute ``attr`` cast to ``like``'s device and precision, cached per device/dtype."""
        key = (attr, like.device, real_dtype(like.dtype))
        t = self._cache.get(key)
        if t is None:
            t = self._cache[key] = cast_like(getattr(self, attr), like)
        return t

    def _memo(self, key: str, like: Tensor, make: Callable[[], Tensor]) -> Tensor:
        """Memoise a derived tensor (e.g. a kernel's FFT) per device and precision of ``like``."""
        k = (key, like.device, real_dtype(like.dtype))
        t = self._cache.get(k)
        if t is None:
            t = self._cache[k] = make()
        return t

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """A new operator whose tensor buffers are moved to ``device`` and cast to ``dtype``'s precision
        (real buffers stay real, complex stay complex). The original operator is unchanged."""
        new = copy.copy(self)
        new._cache = {}
        for attr in ("H", "N", "svd"):
            new.__dict__.pop(attr, None)
        for attr, val in list(vars(self).items()):
            if attr in ("H", "N", "svd", "_cache"):
                continue
            if isinstance(val, Tensor):
                setattr(new, attr, _moved(val, device, dtype))
            elif isinstance(val, _Base):
                setattr(new, attr, val.to(device, dtype))
            elif isinstance(val, (list, tuple)) and val and all(isinstance(v, _Base) for v in val):
                setattr(new, attr, type(val)(v.to(device, dtype) for v in val))
            elif isinstance(val, dict) and val and all(isinstance(v, Tensor) for v in val.values()):
                setattr(new, attr, {k: _moved(v, device, dtype) for k, v in val.items()})
        return new

    def __repr__(self) -> str:
        return f"{self.name}({self.in_shape} -> {self.out_shape})"


def _moved(val: Tensor, device, dtype) -> Tensor:
    """``val`` on ``device`` in ``dtype``'s precision (real stays real, complex stays complex, integer
    and bool tensors keep their dtype)."""
    if not (val.is_floating_point() or val.is_complex()) or dtype is None:
        return val.to(device=device)
    return val.to(device=device, dtype=complex_dtype(real_dtype(dtype)) if val.is_complex() else real_dtype(dtype))


class Operator(_Base):
    """A nonlinear forward model ``y = A(x)``; subclasses implement ``_apply``.

    Jacobian products come from autograd (``torch.func.vjp``/``jvp``), so ``_apply`` must be
    differentiable. Composition with linear operators by ``@`` gives another ``Operator``.
    """

    real_input = False
    real_output = False

    def __call__(self, x: Tensor) -> Tensor:
        _check_shape(x, self.in_shape, self.name, "x")
        return self._apply(x)

    def _apply(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def __matmul__(self, other: "_Base") -> "Operator":
        return _NonlinearComposition(self, other)


class _NonlinearComposition(Operator):
    def __init__(self, a: _Base, b: _Base):
        if a.in_shape != b.out_shape:
            raise ValueError(f"cannot compose {a.name} (in_shape {a.in_shape}) with {b.name} "
                             f"(out_shape {b.out_shape})")
        super().__init__(b.in_shape, a.out_shape, f"{a.name}@{b.name}")
        self.a, self.b = a, b

    def _apply(self, x):
        return self.a(self.b(x))


class LinearOperator(_Base):
    r"""A linear map :math:`A` from ``(B, *in_shape)`` to ``(B, *out_shape)`` with an explicit adjoint.

    Subclasses implement ``_apply(x)`` and ``_adjoint(y)``; the base class checks shapes (naming the
    operator), caches ``H`` and ``N``, and provides composition, sums, scalar products, a CG prox and a CG
    pseudo-inverse (or the SVD ones when ``svd`` is available).

    Flags: ``real_input`` means the operator only accepts real inputs and its ``H`` returns
    :math:`\mathrm{Re}(A^H y)`; ``real_output`` means outputs are real although inputs may be complex
    (the adjoint of a ``real_input`` operator). Both default to False: a complex input is then mapped
    complex-linearly (e.g. a real blur kernel applied to a complex image).
    """

    real_input = False
    real_output = False

    # --- to implement ----------------------------------------------------------------------
    def _apply(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def _normal(self) -> "LinearOperator":
        return _Composition(self.H, self, name=f"{self.name}.N")

    def _svd(self) -> SVD | None:
        return None

    # --- public ----------------------------------------------------------------------------
    def __call__(self, x: Tensor) -> Tensor:
        _check_shape(x, self.in_shape, self.name, "x")
        if self.real_input and x.is_complex():
            raise TypeError(f"{self.name}: x must be real (the operator is defined on real inputs), got {x.dtype}")
        return self._apply(x)

    def adjoint(self, y: Tensor) -> Tensor:
        """Apply the adjoint, same as ``self.H(y)``."""
        _check_shape(y, self.out_shape, f"{self.name}.H", "y")
        return self._adjoint(y)

    @cached_property
    def H(self) -> "LinearOperator":
        """The adjoint operator; ``op.H.H is op``."""
        return _Adjoint(self)

    @cached_property
    def N(self) -> "LinearOperator":
        r"""The normal operator :math:`A^H A` (closed form where a subclass has one)."""
        return self._normal()

    @cached_property
    def svd(self) -> SVD | None:
        """Exact SVD pieces where cheap, else None."""
        return self._svd()

    def prox(self, z: Tensor, y: Tensor, rho: float | Tensor, **cg_kwargs) -> Tensor:
        r"""Data-consistency proximal step
        :math:`\arg\min_x \|A x - y\|^2 + \rho\,\|x - z\|^2 = (A^H A + \rho I)^{-1}(A^H y + \rho z)`.

        :param z: ``(B, *in_shape)``; :param y: ``(B, *out_shape)``.
        :param rho: positive float or ``(B,)`` tensor.
        :param cg_kwargs: ``tol``, ``max_iter`` for the CG fallback.
        """
        _check_shape(z, self.in_shape, self.name, "z")
        _check_shape(y, self.out_shape, self.name, "y")
        if z.device != y.device:
            raise ValueError(f"{self.name}: z and y must be on the same device, got {z.device} and {y.device}")
        rho = _per_sample(rho, z)
        return self._prox(z, y, rho, **cg_kwargs)

    def pinv(self, y: Tensor, rcond: float = 0.0, **cg_kwargs) -> Tensor:
        """Minimum-norm least-squares solution of ``A x = y`` (SVD where available, else CG on the
        normal equations started at 0).

        :param rcond: with an SVD, singular values at or below ``rcond * max(s)`` count as zero, which
            keeps noise out of the solution for ill-conditioned operators (blur); CG's early stop plays
            that part without one.
        :param cg_kwargs: ``tol``, ``max_iter`` for the CG fallback.
        """
        _check_shape(y, self.out_shape, self.name, "y")
        return self._pinv(y, rcond=rcond, **cg_kwargs)

    # --- defaults a subclass may replace -----------------------------------------------------
    def _prox(self, z: Tensor, y: Tensor, rho, **cg_kwargs) -> Tensor:
        svd = self.svd
        if svd is not None:
            flat_rho = rho.reshape(-1) if isinstance(rho, Tensor) else rho
            x = svd.prox(z, y, flat_rho)
            return self._real_if_fourier(svd, x, z, y)
        normal = self.N
        b = self._adjoint(y) + rho * z
        return cg(lambda v: normal._apply(v) + rho * v, b, x0=z, **cg_kwargs)

    def _pinv(self, y: Tensor, rcond: float = 0.0, **cg_kwargs) -> Tensor:
        svd = self.svd
        if svd is not None:
            return self._real_if_fourier(svd, svd.pinv(y, rcond), y)
        normal = self.N
        return cg(normal._apply, self._adjoint(y), **cg_kwargs)

    def _real_if_fourier(self, svd: SVD, x: Tensor, *data: Tensor) -> Tensor:
        """Drop the (zero) imaginary part a Fourier-based SVD leaves on the solution for real data."""
        if svd.complex and x.is_complex() and (self.real_input or not any(d.is_complex() for d in data)):
            return x.real
        return x

    # --- algebra -------------------------------------------------------------------------------
    def __matmul__(self, other: _Base) -> _Base:
        if isinstance(other, LinearOperator):
            return _Composition(self, other)
        if isinstance(other, Operator):
            return _NonlinearComposition(self, other)
        return NotImplemented

    def __add__(self, other: "LinearOperator") -> "LinearOperator":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Sum(self, other)

    def __sub__(self, other: "LinearOperator") -> "LinearOperator":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Sum(self, _Scaled(other, -1.0))

    def __mul__(self, c: complex | float | Tensor) -> "LinearOperator":
        if isinstance(c, Tensor):
            if c.numel() != 1:
                raise TypeError(f"{self.name}: can only scale by a scalar, got a tensor of shape {tuple(c.shape)}")
            c = c.item()
        if not isinstance(c, (int, float, complex)):
            return NotImplemented
        return _Scaled(self, c)

    __rmul__ = __mul__

    def __neg__(self) -> "LinearOperator":
        return _Scaled(self, -1.0)


# ----------------------------------------------------------------------------------------------
# derived operators
# ----------------------------------------------------------------------------------------------
class _Adjoint(LinearOperator):
    def __init__(self, op: LinearOperator):
        super().__init__(op.out_shape, op.in_shape, f"{op.name}.H")
        self.op = op
        self.real_input, self.real_output = op.real_output, op.real_input
        self.__dict__["H"] = op  # op.H.H is op

    def _apply(self, x):
        return self.op._adjoint(x)

    def _adjoint(self, y):
        return self.op._apply(y)

    def _normal(self):
        return _Composition(self.op, self.op.H, name=f"{self.name}.N")

    def _svd(self):
        svd = self.op.svd
        return None if svd is None else svd.transpose()

    def to(self, device=None, dtype=None):
        return self.op.to(device, dtype).H


class _Composition(LinearOperator):
    def __init__(self, a: LinearOperator, b: LinearOperator, name: str | None = None):
        if a.in_shape != b.out_shape:
            raise ValueError(f"cannot compose {a.name} (in_shape {a.in_shape}) with {b.name} "
                             f"(out_shape {b.out_shape})")
        super().__init__(b.in_shape, a.out_shape, name or f"{a.name}@{b.name}")
        self.a, self.b = a, b
        self.real_input, self.real_output = b.real_input, a.real_output

    def _apply(self, x):
        return self.a._apply(self.b._apply(x))

    def _adjoint(self, y):
        return self.b._adjoint(self.a._adjoint(y))


class _Sum(LinearOperator):
    def __init__(self, a: LinearOperator, b: LinearOperator):
        if a.in_shape != b.in_shape or a.out_shape != b.out_shape:
            raise ValueError(f"cannot add {a.name} ({a.in_shape} -> {a.out_shape}) and {b.name} "
                             f"({b.in_shape} -> {b.out_shape})")
        super().__init__(a.in_shape, a.out_shape, f"({a.name}+{b.name})")
        self.a, self.b = a, b
        self.real_input = a.real_input or b.real_input
        self.real_output = a.real_output and b.real_output

    def _apply(self, x):
        return self.a._apply(x) + self.b._apply(x)

    def _adjoint(self, y):
        return self.a._adjoint(y) + self.b._adjoint(y)


class _Scaled(LinearOperator):
    def __init__(self, op: LinearOperator, c: complex | float):
        if isinstance(c, complex) and (op.real_input or op.real_output):
            raise TypeError(f"{op.name} is only real-linear: scale it by a real number, got {c}")
        super().__init__(op.in_shape, op.out_shape, f"{c}*{op.name}")
        self.op, self.c = op, c
        self.real_input, self.real_output = op.real_input, op.real_output

    def _apply(self, x):
        return self.c * self.op._apply(x)

    def _adjoint(self, y):
        return self.c.conjugate() * self.op._adjoint(y) if isinstance(self.c, complex) else self.c * self.op._adjoint(y)

    def _normal(self):
        return _Scaled(self.op.N, abs(self.c) ** 2)

    def _svd(self):
        svd = self.op.svd
        if svd is None:
            return None
        if isinstance(self.c, complex):
            phase = self.c / abs(self.c) if self.c != 0 else 1.0
            return SVD(abs(self.c) * svd.s, svd.Vt, svd.V, lambda y: phase.conjugate() * svd.Ut(y),
                       lambda c: phase * svd.U(c), complex=True)
        sign = 1.0 if self.c >= 0 else -1.0
        return SVD(abs(self.c) * svd.s, svd.Vt, svd.V, lambda y: sign * svd.Ut(y), lambda c: sign * svd.U(c),
                   complex=svd.complex)


class FunctionOperator(LinearOperator):
    """A linear operator from a pair of functions (handy for closed-form normal operators).

    A closure cannot be moved by :meth:`to`, so the functions must compute in their input's precision
    and on its device, or take the tensors they need as ``buffers``: those are passed to every call as
    keyword arguments and :meth:`to` moves and casts them like any operator's own tensors. An output
    less precise than its input (a float32 constant caught in a closure under a float64 solve) is an
    error, never a quiet loss of precision.

    :param apply: ``(B, *in_shape) -> (B, *out_shape)``, called as ``apply(x, **buffers)``.
    :param adjoint: ``(B, *out_shape) -> (B, *in_shape)``; pass the same function for a self-adjoint map.
    :param buffers: named tensors the functions use, moved and cast by :meth:`to`.

    >>> A = torch.tensor([[1.0, 2.0]])
    >>> op = FunctionOperator(lambda x, A: x @ A.T, lambda y, A: y @ A, (2,), (1,), buffers={"A": A})
    >>> op.to(dtype=torch.float64)(torch.ones(1, 2, dtype=torch.float64))
    tensor([[3.]], dtype=torch.float64)
    """

    def __init__(self, apply: Callable[..., Tensor], adjoint: Callable[..., Tensor],
                 in_shape: Sequence[int], out_shape: Sequence[int], name: str = "FunctionOperator",
                 real_input: bool = False, real_output: bool = False, buffers: dict[str, Tensor] | None = None):
        super().__init__(in_shape, out_shape, name)
        if not callable(apply) or not callable(adjoint):
            raise TypeError(f"{name}: apply and adjoint must be callables")
        buffers = dict(buffers or {})
        for key, value in buffers.items():
            if not isinstance(value, Tensor):
                raise TypeError(f"{name}: buffers[{key!r}] must be a torch.Tensor, got {type(value).__name__}")
        self._f, self._fh, self.buffers = apply, adjoint, buffers
        self.real_input, self.real_output = real_input, real_output

    def _checked(self, out: Tensor, inp: Tensor, which: str) -> Tensor:
        inexact = (out.is_floating_point() or out.is_complex()) and (inp.is_floating_point() or inp.is_complex())
        if inexact and torch.finfo(real_dtype(out.dtype)).bits < torch.finfo(real_dtype(inp.dtype)).bits:
            raise TypeError(f"{self.name}: {which} returned {out.dtype} for {inp.dtype} input; compute in the "
                            "input's precision or pass the tensors it uses as buffers= so .to() can cast them")
        return out

    def _apply(self, x):
        return self._checked(self._f(x, **self.buffers), x, "apply")

    def _adjoint(self, y):
        return self._checked(self._fh(y, **self.buffers), y, "adjoint")


class Identity(LinearOperator):
    """The identity on ``shape`` (denoising as an inverse problem)."""

    def __init__(self, shape: Sequence[int]):
        super().__init__(shape, shape, "Identity")

    def _apply(self, x):
        return x

    def _adjoint(self, y):
        return y

    def _normal(self):
        return self

    def _svd(self):
        n = math.prod(self.in_shape)
        flat = lambda t: t.reshape(t.shape[0], -1)  # noqa: E731
        unflat = lambda c: c.reshape(c.shape[0], *self.in_shape)  # noqa: E731
        return SVD(torch.ones(n), flat, unflat, flat, unflat)
