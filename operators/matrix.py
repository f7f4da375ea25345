r"""A dense matrix acting on vectors, for small problems with exact answers."""
from __future__ import annotations

import torch
from torch import Tensor

from . import _validate as V
from .linear import SVD, LinearOperator

__all__ = ["Matrix"]


class Matrix(LinearOperator):
    r""":math:`y = A x` for a dense ``(m, n)`` matrix acting on a batch of vectors ``(B, n) -> (B, m)``.

    The SVD is exact (``torch.linalg.svd``, computed once on first use); coefficient vectors have length
    ``n``, with :math:`s_i = 0` for ``i >= min(m, n)``. The prox and pinv use it.

    :param A: real or complex ``(m, n)`` tensor.

    >>> op = Matrix(torch.tensor([[2., 0.], [0., 3.]]))
    >>> op.pinv(torch.tensor([[2., 3.]]))
    tensor([[1., 1.]])
    """

    def __init__(self, A: Tensor):
        A = V.tensor(A, "A", kind="inexact", ndim=2, layout="a 2-D (m, n) matrix")
        super().__init__((A.shape[1],), (A.shape[0],), f"Matrix[{A.shape[0]}x{A.shape[1]}]")
        self.A = A

    def _mat(self, like: Tensor) -> Tensor:
        """The matrix in ``like``'s precision, complex when either is complex (cached)."""
        dtype = like.dtype if (like.is_complex() or not self.A.is_complex()) else \
            torch.promote_types(like.dtype, self.A.dtype)
        return self._memo(f"A_{dtype}", like, lambda: self.A.to(device=like.device, dtype=dtype))

    def _apply(self, x: Tensor) -> Tensor:
        A = self._mat(x)
        return x.to(A.dtype) @ A.mT

    def _adjoint(self, y: Tensor) -> Tensor:
        A = self._mat(y)
        return y.to(A.dtype) @ A.conj()

    def _svd(self) -> SVD:
        m, n = self.A.shape
        A = self.A  # LAPACK has no half precision: decompose in at least single precision
        A = A if A.dtype in (torch.float32, torch.float64, torch.complex64, torch.complex128) else A.to(
            torch.complex64 if A.is_complex() else torch.float32)
        U, s, Vh = torch.linalg.svd(A, full_matrices=True)
        k = min(m, n)
        s_full = torch.zeros(n, dtype=s.dtype, device=s.device)
        s_full[:k] = s
        mats = {"U": U[:, :k], "Vh": Vh}

        def M(name: str, like: Tensor) -> Tensor:
            t = mats[name]
            dtype = like.dtype if (like.is_complex() or not t.is_complex()) else torch.promote_types(like.dtype, t.dtype)
            return self._memo(f"svd_{name}_{dtype}", like, lambda: t.to(device=like.device, dtype=dtype))

        def Ut(y):
            Uk = M("U", y)
            c = y.to(Uk.dtype) @ Uk.conj()
            return torch.cat([c, c.new_zeros(c.shape[0], n - k)], 1) if n > k else c

        def U_(c):
            Uk = M("U", c)
            return c[:, :k].to(Uk.dtype) @ Uk.mT

        def Vt(x):
            V = M("Vh", x)
            return x.to(V.dtype) @ V.mT

        def V(c):
            V = M("Vh", c)
            return c.to(V.dtype) @ V.conj()

        return SVD(s_full, Vt, V, Ut, U_)
