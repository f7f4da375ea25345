"""Blur(boundary="reflect"): the DPS / DiffPIR blur protocol pads by reflection (issue 13)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

import operators as ops


def _kernel(kh, kw, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(kh, kw, generator=g, dtype=torch.float64) + 0.1


@pytest.mark.parametrize("kh, kw", [(3, 3), (5, 3), (4, 4), (7, 7)])
def test_matches_reflection_padding_then_convolution(kh, kw):
    k = _kernel(kh, kw)
    op = ops.Blur(k, (2, 8, 9), boundary="reflect")
    x = torch.rand(3, 2, 8, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # scipy's 'mirror' is reflection about the edge pixel (torch's 'reflect', ReflectionPad2d)
    expected = np.stack([[scipy.ndimage.convolve(x[b, c].numpy(), k.numpy(), mode="mirror")
                          for c in range(2)] for b in range(3)])
    torch.testing.assert_close(op(x), torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


def test_equals_the_dps_blur_for_a_symmetric_kernel():
    # DPS's Blurkernel: nn.ReflectionPad2d(ks // 2) then a (correlating) conv; a symmetric kernel
    k = torch.outer(torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0])).double()
    k = k / k.sum()
    op = ops.Blur(k, (3, 10, 10), boundary="reflect")
    x = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    dps = F.conv2d(torch.nn.ReflectionPad2d(2)(x), k[None, None].expand(3, 1, 5, 5), groups=3)
    torch.testing.assert_close(op(x), dps, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("per_channel", [False, True])
def test_conformance_and_exact_adjoint(per_channel):
    k = torch.stack([_kernel(5, 3, s) for s in range(3)]) if per_channel else _kernel(5, 3)
    op = ops.Blur(k, (3, 7, 6), boundary="reflect")
    ops.check(op)  # dot test in float64, op.N, prox, shapes
    x = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    lhs, rhs = float((op(x) * y).sum()), float((x * op.H(y)).sum())
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    # the adjoint is the transpose of the dense matrix
    n = 3 * 7 * 6
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 3, 7, 6)
    A = op(eye).reshape(n, n).T
    torch.testing.assert_close(op.H(eye).reshape(n, n).T, A.T, rtol=0, atol=1e-13)


def test_keeps_constants_and_differs_from_circular_at_the_edges():
    k = _kernel(5, 5)
    k = k / k.sum()
    op = ops.Blur(k, (1, 12, 12), boundary="reflect")
    torch.testing.assert_close(op(torch.ones(1, 1, 12, 12, dtype=torch.float64)),
                               torch.ones(1, 1, 12, 12, dtype=torch.float64))
    ramp = torch.linspace(0, 1, 12, dtype=torch.float64).expand(1, 1, 12, 12)
    circ = ops.Blur(k, (1, 12, 12))(ramp)
    refl = op(ramp)
    assert float((circ - refl)[..., :2].abs().max()) > 0.1  # the wrap-around pulls the left edge to 1
    torch.testing.assert_close(circ[..., 3:-3], refl[..., 3:-3])


def test_complex_input_and_bad_boundary():
    op = ops.Blur(_kernel(3, 3), (1, 5, 5), boundary="reflect")
    x = torch.randn(1, 1, 5, 5, generator=torch.Generator().manual_seed(5), dtype=torch.complex128)
    torch.testing.assert_close(op(x), torch.complex(op(x.real), op(x.imag)))
    with pytest.raises(ValueError, match="reflect"):
        ops.Blur(_kernel(3, 3), (1, 5, 5), boundary="symmetric")
