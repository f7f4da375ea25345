"""Image operators against independent references: scipy convolutions, torch's antialiased bicubic,
closed forms of the prox/SVD, and the input validation of DESIGN §3 / issue 2 item 5."""
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

import operators as ops
from operators import kernels

D = torch.float64


def _scipy_blur(x, k, mode):
    return np.stack([[ndi.convolve(x[b, c].numpy(), k.numpy(), mode=mode) for c in range(x.shape[1])]
                     for b in range(x.shape[0])])


@pytest.mark.parametrize("shape", [(5, 5), (4, 7)])
def test_circular_blur_matches_scipy_wrap(shape, generator):
    k = torch.rand(*shape, generator=generator)
    k /= k.sum()
    x = torch.rand(2, 3, 20, 24, generator=generator)
    op = ops.Blur(k, (3, 20, 24))
    ref = _scipy_blur(x.double(), k.double(), "wrap")
    assert np.abs(op(x).double().numpy() - ref).max() <= 1e-5  # float32 operator and data


def test_zero_blur_matches_scipy_constant(generator):
    k = kernels.motion(9, 0.5, generator=generator)
    x = torch.rand(2, 1, 16, 18, dtype=D, generator=generator)
    op = ops.Blur(k, (1, 16, 18), boundary="zeros")
    ref = _scipy_blur(x, k.double(), "constant")
    assert np.abs(op(x).numpy() - ref).max() <= 1e-12


def test_circular_blur_prox_and_pinv_closed_forms(generator):
    op = ops.Blur(kernels.gaussian(5, 1.0), (1, 8, 8)).to(dtype=D)
    # dense matrix of the operator, column by column
    eye = torch.eye(64, dtype=D).reshape(64, 1, 8, 8)
    A = op(eye).reshape(64, 64).T
    z = torch.rand(2, 1, 8, 8, dtype=D, generator=generator)
    y = torch.rand(2, 1, 8, 8, dtype=D, generator=generator)
    x = op.prox(z, y, 0.05)
    ref = torch.linalg.solve(A.T @ A + 0.05 * torch.eye(64, dtype=D), (y.reshape(2, 64) @ A + 0.05 * z.reshape(2, 64)).T).T
    torch.testing.assert_close(x.reshape(2, 64), ref)
    assert not x.is_complex()
    torch.testing.assert_close(op.pinv(y).reshape(2, 64), y.reshape(2, 64) @ torch.linalg.pinv(A).T)
    torch.testing.assert_close(op.svd.s.sort().values, torch.linalg.svdvals(A).sort().values)


def test_kernels():
    g = kernels.gaussian(61, 3.0)
    t = torch.arange(61, dtype=D) - 30
    ref = torch.exp(-(t[:, None] ** 2 + t[None] ** 2) / 18)
    torch.testing.assert_close(g.double(), ref / ref.sum(), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(kernels.uniform(3), torch.full((3, 3), 1 / 9))
    m1 = kernels.motion(61, 0.5, generator=torch.Generator().manual_seed(3))
    m2 = kernels.motion(61, 0.5, generator=torch.Generator().manual_seed(3))
    m3 = kernels.motion(61, 0.5, generator=torch.Generator().manual_seed(4))
    assert m1.shape == (61, 61) and torch.equal(m1, m2) and not torch.equal(m1, m3)
    assert abs(float(m1.sum()) - 1) < 1e-5 and float(m1.min()) >= 0
    with pytest.raises(ValueError, match="intensity"):
        kernels.motion(61, 1.5)
    with pytest.raises(ValueError, match="std"):
        kernels.gaussian(5, 0.0)


def test_box_downsample_is_block_mean_with_exact_svd(generator):
    op = ops.Downsample((3, 16, 16), 4, "box").to(dtype=D)
    x = torch.rand(2, 3, 16, 16, dtype=D, generator=generator)
    torch.testing.assert_close(op(x), F.avg_pool2d(x, 4))
    s = op.svd.s
    assert int((s > 0).sum()) == 3 * 4 * 4
    torch.testing.assert_close(s[s > 0], torch.full((48,), 0.25, dtype=D))  # DDRM: s = 1/f


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bicubic_downsample_matches_matlab_imresize_rule(factor, generator):
    """MATLAB ``imresize(x, 1/f)`` = torch's antialiased bicubic (Keys a = -0.5, support 4f) with
    symmetric boundary extension: compare on a symmetrically padded image, then crop."""
    n = 8 * factor
    x = torch.rand(1, 2, n, n, dtype=D, generator=generator)
    op = ops.Downsample((2, n, n), factor, "bicubic")
    p = 4 * factor
    padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (p, p), (p, p)), mode="symmetric"))
    ref = F.interpolate(padded, scale_factor=1 / factor, mode="bicubic", antialias=True)[..., 4:-4, 4:-4]
    torch.testing.assert_close(op(x), ref, rtol=0, atol=1e-12)


def test_gaussian_downsample_preserves_constants():
    op = ops.Downsample((1, 16, 16), 2, "gaussian")
    torch.testing.assert_close(op(torch.ones(1, 1, 16, 16)), torch.ones(1, 1, 8, 8))


def test_inpainting_broadcasts_mask_and_closed_forms(generator):
    mask = ops.masks.box(8, 4)
    op = ops.Inpainting(mask, in_shape=(3, 8, 8))
    x = torch.rand(2, 3, 8, 8, generator=generator)
    torch.testing.assert_close(op(x), x * mask)
    z, y = torch.rand(x.shape, generator=generator), op(torch.rand(x.shape, generator=generator))
    torch.testing.assert_close(op.prox(z, y, 0.5), torch.where(mask.bool(), (y + 0.5 * z) / 1.5, z))
    torch.testing.assert_close(op.pinv(y), y)
    assert float(op.svd.s.sum()) == 3 * float(mask.sum())


@pytest.mark.parametrize("build, match, exc", [
    (lambda: ops.Inpainting(torch.ones(5, 5), in_shape=(3, 8, 8)), "mask", ValueError),
    (lambda: ops.Inpainting(torch.full((4, 4), 0.5)), "binary", ValueError),
    (lambda: ops.Inpainting([1, 0]), "mask", TypeError),
    (lambda: ops.Blur(torch.ones(9, 9), (1, 8, 8)), "kernel", ValueError),
    (lambda: ops.Blur(torch.ones(3, 3), (8, 8)), "in_shape", ValueError),
    (lambda: ops.Blur(torch.ones(2, 3, 3), (3, 8, 8)), "kernel", ValueError),
    (lambda: ops.Blur(torch.ones(3, 3, dtype=torch.int64), (1, 8, 8)), "kernel", TypeError),
    (lambda: ops.Blur(torch.ones(3, 3), (1, 8, 8), boundary="mirror"), "boundary", ValueError),
    (lambda: ops.Downsample((1, 10, 10), 4), "factor", ValueError),
    (lambda: ops.Downsample((1, 16, 16), 2, filter="lanczos"), "filter", ValueError),
    (lambda: ops.Matrix(torch.ones(3)), "A", ValueError),
])
def test_bad_input_names_the_argument(build, match, exc):
    with pytest.raises(exc, match=match):
        build()


def test_call_checks_rank_and_dtype():
    op = ops.Blur(kernels.gaussian(3, 1.0), (1, 8, 8))
    with pytest.raises(ValueError, match=r"Blur\[circular\]: x must have shape \(B, 1, 8, 8\)"):
        op(torch.zeros(1, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        op(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="same device"):
        op.prox(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8, device="meta"), 1.0)
