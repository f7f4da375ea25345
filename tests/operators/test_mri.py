"""MRI: centred DFT convention, adjoints, closed-form prox/SVD, zero-filling, coil-map estimate, errors."""
import math

import pytest
import torch

import operators as ops
from operators.linear import rdot
from operators.mri import MRI, estimate_coil_maps, fft2c, ifft2c, rss

H, W = 12, 15  # an odd side exercises the fftshift conventions


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _random_mask(g, shape=(H, W), p=0.4):
    # asymmetric in k on purpose: the real-image adjoint then mixes k and -k
    return (torch.rand(shape, generator=g) < p).to(torch.float64)


def _normalised_maps(g, k=3, shape=(H, W)):
    s = torch.randn(k, *shape, dtype=torch.complex128, generator=g)
    return s / rss(s, dim=0)


def _centred_dft_matrix(n):
    """Entry (k, j) = exp(-2 pi i (k - n//2)(j - n//2) / n) / sqrt(n): the centred orthonormal DFT."""
    k = torch.arange(n, dtype=torch.float64) - n // 2
    return torch.exp(-2j * math.pi * torch.outer(k, k) / n) / math.sqrt(n)


@pytest.mark.parametrize("shape", [(6, 6), (5, 7)])
def test_fft2c_is_the_centred_orthonormal_dft(shape):
    x = torch.randn(2, 1, *shape, dtype=torch.complex128, generator=_gen())
    Fh, Fw = _centred_dft_matrix(shape[0]), _centred_dft_matrix(shape[1])
    expected = Fh @ x @ Fw.T
    torch.testing.assert_close(fft2c(x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(ifft2c(fft2c(x)), x, rtol=0, atol=1e-12)


def _cases():
    g = _gen(1)
    mask, maps = _random_mask(g), _normalised_maps(g)
    return [("single-real", MRI(mask)), ("single-complex", MRI(mask, complex_images=True)),
            ("multi-real", MRI(mask, maps)), ("multi-complex", MRI(mask, maps, complex_images=True))]


@pytest.mark.parametrize("name,op", _cases())
def test_conformance(name, op):
    report = ops.check(op)  # dot test in float64 and complex128, N, prox, SVD, shape errors
    assert report["float64"]["dot"] < 1e-12 and report["complex128"]["dot"] < 1e-12


@pytest.mark.parametrize("name,op", _cases())
def test_forward_and_adjoint_by_definition(name, op):
    g = _gen(2)
    dtype = torch.complex128 if not op.real_input else torch.float64
    x = torch.randn(2, *op.in_shape, dtype=dtype, generator=g)
    maps = op.coil_maps if op.coil_maps is not None else torch.ones(1, H, W, dtype=torch.complex128)
    expected = op.mask * fft2c(maps * x)
    torch.testing.assert_close(op(x), expected, rtol=0, atol=1e-12)
    y = torch.randn(2, *op.out_shape, dtype=torch.complex128, generator=g)
    adj = (maps.conj() * ifft2c(op.mask * y)).sum(1, keepdim=True)
    torch.testing.assert_close(op.H(y), adj.real if op.real_input else adj, rtol=0, atol=1e-12)
    assert (op.H(y).dtype == torch.float64) == op.real_input


@pytest.mark.parametrize("complex_images", [False, True])
def test_single_coil_prox_is_closed_form_and_matches_cg(complex_images):
    g = _gen(3)
    op = MRI(_random_mask(g), complex_images=complex_images)
    assert op.svd is not None
    dtype = torch.complex128 if complex_images else torch.float64
    z = torch.randn(3, *op.in_shape, dtype=dtype, generator=g)
    y = torch.randn(3, *op.out_shape, dtype=torch.complex128, generator=g)
    rho = torch.tensor([0.05, 0.5, 5.0], dtype=torch.float64)
    x = op.prox(z, y, rho)
    assert x.dtype == dtype
    r = rho.reshape(-1, 1, 1, 1)
    # normal equations (A^H A + rho) x = A^H y + rho z, with the composed (not closed-form) A^H A
    torch.testing.assert_close(op.H(op(x)) + r * x, op.H(y) + r * z, rtol=0, atol=1e-12)
    x_cg = ops.cg(lambda v: op.H(op(v)) + r * v, op.H(y) + r * z, tol=1e-13, max_iter=200)
    torch.testing.assert_close(x, x_cg, rtol=0, atol=1e-9)


def test_real_image_normal_operator_symmetrises_the_mask():
    # sample only k = +1 along columns: for real images A^H A = F^H D F with D = 1/2 at k = +1 and -1
    mask = torch.zeros(8, 8, dtype=torch.float64)
    mask[4, 5] = 1.0
    op = MRI(mask)
    s = op.svd.s
    assert bool((s == 0).any())  # unsampled frequencies: exactly zero, not rounding
    torch.testing.assert_close(s[s > 0], torch.full_like(s[s > 0], math.sqrt(0.5)), rtol=1e-12, atol=0)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=_gen(4))
    torch.testing.assert_close(op.N(x), op.H(op(x)), rtol=0, atol=1e-13)
    assert op.N(x).dtype == torch.float64


@pytest.mark.parametrize("complex_images", [False, True])
def test_single_coil_svd_pinv_is_minimum_norm_least_squares(complex_images):
    g = _gen(5)
    mask = torch.ones(H, W, dtype=torch.float64)
    mask[:, :3] = 0  # frequencies -7..-5: for real images -7, -6 are lost and -5 is seen through +5
    mask[:, -2:] = 0
    op = MRI(mask, complex_images=complex_images)
    y = torch.randn(2, *op.out_shape, dtype=torch.complex128, generator=g)
    x = op.pinv(y)
    torch.testing.assert_close(op.N(x), op.H(y), rtol=0, atol=1e-12)  # least squares
    # minimum norm: no component in the null space (unsampled frequencies, after symmetrisation)
    d = op._power(x)
    assert int((d == 0).sum()) == (4 if not complex_images else 5) * H
    assert fft2c(x)[..., d == 0].abs().max() < 1e-12


def test_multicoil_prox_uses_cg_and_is_optimal():
    g = _gen(6)
    op = MRI(_random_mask(g), _normalised_maps(g))
    assert op.svd is None
    z = torch.randn(2, *op.in_shape, dtype=torch.float64, generator=g)
    y = torch.randn(2, *op.out_shape, dtype=torch.complex128, generator=g)
    x = op.prox(z, y, 0.2, tol=1e-12, max_iter=300)
    torch.testing.assert_close(op.H(op(x)) + 0.2 * x, op.H(y) + 0.2 * z, rtol=0, atol=1e-10)


def test_matches_deepinv_mri_physics():
    import deepinv as dinv

    g = _gen(7)
    mask = _random_mask(g).float()
    maps = _normalised_maps(g).to(torch.complex64)
    x = torch.randn(2, 2, H, W, generator=g)  # deepinv: real/imaginary channels
    xc = torch.complex(x[:, 0], x[:, 1])[:, None]
    ours = MRI(mask, maps, complex_images=True)(xc)
    theirs = dinv.physics.MultiCoilMRI(mask=mask, coil_maps=maps, img_size=(2, H, W)).A(x)
    torch.testing.assert_close(ours, torch.complex(theirs[:, 0], theirs[:, 1]), rtol=0, atol=1e-5)
    single = dinv.physics.MRI(mask=mask, img_size=(2, H, W)).A(x)
    torch.testing.assert_close(MRI(mask, complex_images=True)(xc), torch.complex(single[:, 0], single[:, 1])[:, None],
                               rtol=0, atol=1e-5)


def test_zero_filled_inverts_full_sampling():
    g = _gen(8)
    x = torch.rand(2, 1, H, W, dtype=torch.float64, generator=g)
    full = torch.ones(H, W, dtype=torch.float64)
    torch.testing.assert_close(MRI(full).zero_filled(MRI(full)(x)), x, rtol=0, atol=1e-12)
    op = MRI(full, _normalised_maps(g))
    torch.testing.assert_close(op.zero_filled(op(x)), x, rtol=0, atol=1e-12)  # RSS of |S_k x| = |x| = x
    torch.testing.assert_close(op.zero_filled(op(x), combine="sense"), x, rtol=0, atol=1e-12)


def test_estimate_coil_maps_recovers_smooth_normalised_maps():
    n, k = 32, 4
    r = (torch.arange(n, dtype=torch.float64) - n // 2) / n
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    centres = [(-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)]
    maps = torch.stack([torch.exp(-((yy - a) ** 2 + (xx - b) ** 2)) * torch.exp(1j * math.pi * (a * xx + b * yy))
                        for a, b in centres])
    maps = maps / rss(maps, dim=0)
    image = 1.0 + 0.5 * torch.cos(2 * math.pi * xx) * torch.cos(2 * math.pi * yy)  # smooth, positive
    kspace = fft2c(maps * image)
    est = estimate_coil_maps(kspace, calib=12)
    torch.testing.assert_close(rss(est, dim=0).squeeze(0), torch.ones(n, n, dtype=torch.float64), rtol=0, atol=1e-12)
    inner = slice(6, -6)  # away from the periodic boundary the low-resolution ratio is accurate
    err = (est - maps)[:, inner, inner].abs().max()
    assert err < 0.05, err
    batched = estimate_coil_maps(kspace[None].expand(2, -1, -1, -1), calib=12)
    torch.testing.assert_close(batched[1], est)


def test_errors_name_the_argument():
    mask = torch.ones(8, 8)
    with pytest.raises(ValueError, match="coil_maps"):
        MRI(mask, torch.ones(3, 8, 9, dtype=torch.complex64))
    with pytest.raises(ValueError, match="coil_maps"):
        MRI(mask, torch.ones(8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="mask"):
        MRI(mask, image_shape=(1, 8, 10))
    with pytest.raises(ValueError, match="mask"):
        MRI(torch.ones(2, 8, 8))
    with pytest.raises(TypeError, match="mask"):
        MRI(torch.ones(8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="one channel"):
        MRI(mask, torch.ones(2, 8, 8, dtype=torch.complex64), image_shape=(2, 8, 8))
    with pytest.raises(TypeError, match="real"):
        MRI(mask)(torch.ones(1, 1, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="MRI"):
        MRI(mask)(torch.ones(1, 1, 8, 9))
    with pytest.raises(ValueError, match="calib"):
        estimate_coil_maps(torch.ones(2, 8, 8, dtype=torch.complex64), calib=9)
    with pytest.raises(ValueError, match="combine"):
        MRI(mask).zero_filled(torch.ones(1, 1, 8, 8, dtype=torch.complex64), combine="mean")


def test_fastmri_mask_operator_acceleration():
    mask = ops.masks.fastmri_equispaced((32, 64), acceleration=4, generator=_gen(9))
    op = MRI(mask)
    assert op.acceleration == pytest.approx(4, rel=0.15)
