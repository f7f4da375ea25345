"""deepinv interop: wrapped physics agree with deepinv, pass our dot test, and survive a round trip."""
import pytest
import torch

import operators as ops
from operators.ct import CT
from operators.interop import from_deepinv, to_deepinv
from operators.mri import MRI, rss

dinv = pytest.importorskip("deepinv")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_multicoil_mri_wrapper_matches_deepinv_and_ours_in_float64():
    g = _gen()
    H, W = 8, 10
    mask = (torch.rand(H, W, generator=g) < 0.5).float()
    maps = torch.randn(3, H, W, dtype=torch.complex64, generator=g)
    maps = maps / rss(maps, dim=0)
    physics = dinv.physics.MultiCoilMRI(mask=mask, coil_maps=maps, img_size=(2, H, W))
    op = from_deepinv(physics, in_shape=(2, H, W))
    assert isinstance(op, ops.LinearOperator) and op.out_shape == (2, 3, H, W)
    report = ops.check(op, dtype=torch.float64)  # deepinv's complex64 maps are cast with the input
    assert report["float64"]["dot"] < 1e-12
    x = torch.randn(2, 2, H, W, dtype=torch.float64, generator=g)
    ours = MRI(mask.double(), maps.to(torch.complex128), complex_images=True)(torch.complex(x[:, 0], x[:, 1])[:, None])
    theirs = op(x)
    torch.testing.assert_close(torch.complex(theirs[:, 0], theirs[:, 1]), ours, rtol=0, atol=1e-12)
    assert physics.coil_maps.dtype == torch.complex64  # the user's physics is left untouched


def test_blur_wrapper_equals_physics_and_infers_shape():
    physics = dinv.physics.BlurFFT(img_size=(1, 12, 12), filter=ops.kernels.gaussian(5, 1.0)[None, None])
    op = from_deepinv(physics)  # img_size is a 3-tuple here
    x = torch.rand(3, 1, 12, 12, generator=_gen(1))
    torch.testing.assert_close(op(x), physics.A(x))
    torch.testing.assert_close(op.H(x), physics.A_adjoint(x))
    ops.check(op)


def test_nonlinear_physics_becomes_operator():
    physics = dinv.physics.Physics(A=lambda x, **_: x ** 2)
    op = from_deepinv(physics, in_shape=(1, 4, 4))
    assert isinstance(op, ops.Operator) and not isinstance(op, ops.LinearOperator)
    x = torch.randn(2, 1, 4, 4, generator=_gen(2))
    torch.testing.assert_close(op(x), x ** 2)


# deepinv's adjointness test uses the complex inner product, so MRI is taken on complex images
# (for real images our MRI is only real-linear and its adjoint is Re(A^H y)).
@pytest.mark.parametrize("make", [lambda: CT(10, 6),
                                  lambda: MRI(ops.masks.fastmri_random((8, 8), 2, generator=_gen(3)), complex_images=True)])
@pytest.mark.global_rng  # deepinv's adjointness_test draws its vectors from the global RNG
def test_to_deepinv_round_trip_and_deepinv_adjointness(make):
    op = make()
    physics = to_deepinv(op)
    assert isinstance(physics, dinv.physics.LinearPhysics)
    x = torch.rand(2, *op.in_shape, dtype=torch.float64, generator=_gen(4))
    torch.testing.assert_close(physics.A(x), op(x))
    torch.testing.assert_close(physics.A_adjoint(op(x)), op.H(op(x)))
    # deepinv's own adjointness test: <Au, v> - <u, A^T v>, both random
    assert abs(float(physics.adjointness_test(x))) < 1e-10
    back = from_deepinv(physics, in_shape=op.in_shape)
    torch.testing.assert_close(back(x), op(x))
    torch.testing.assert_close(back.H(op(x)), op.H(op(x)))


def test_errors():
    with pytest.raises(TypeError, match="physics"):
        from_deepinv(lambda x: x)
    with pytest.raises(ValueError, match="in_shape"):
        from_deepinv(dinv.physics.Physics(A=lambda x, **_: x))
    with pytest.raises(TypeError, match="op"):
        to_deepinv(torch.nn.Identity())
