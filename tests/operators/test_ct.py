"""CT: the projector equals skimage's radon, the back-projector is its exact adjoint, FBP equals iradon."""
import math
import warnings

import numpy as np
import pytest
import torch
from skimage.transform import iradon, radon

import operators as ops
from operators.ct import CT, fbp


def _disc_image(n, seed=0):
    """Random image, zero outside the inscribed circle (skimage's circle=True assumption)."""
    rng = np.random.default_rng(seed)
    c = np.arange(n) - n // 2
    inside = (c[:, None] ** 2 + c[None, :] ** 2) <= (n // 2) ** 2
    return rng.random((n, n)) * inside


def _apply(op, img):
    return op(torch.from_numpy(img)[None, None]).numpy()[0, 0]


@pytest.mark.parametrize("n", [20, 17])
def test_projector_equals_skimage_radon_circle(n):
    img = _disc_image(n)
    theta = np.linspace(0.0, 180.0, 13, endpoint=False) + 3.3
    ours = _apply(CT(n, theta), img)
    ref = radon(img, theta, circle=True)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-12 * np.abs(ref).max()


def test_projector_equals_skimage_radon_full_diagonal():
    n = 16
    img = np.random.default_rng(1).random((n, n))  # corners non-zero: needs the diagonal detector
    theta = np.arange(0.0, 180.0, 11.0)
    ref = radon(img, theta, circle=False)
    ours = _apply(CT(n, theta, n_detectors=math.ceil(math.sqrt(2) * n)), img)
    assert np.abs(ours - ref).max() <= 1e-12 * np.abs(ref).max()


@pytest.mark.parametrize("filt", ["ramp", "shepp-logan", "hann"])
@pytest.mark.parametrize("circle", [True, False])
def test_fbp_equals_skimage_iradon(filt, circle):
    n = 20
    theta = np.linspace(0.0, 180.0, 9, endpoint=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sino = radon(_disc_image(n, 2), theta, circle=circle)
        ref = iradon(sino, theta, circle=circle, filter_name=filt, output_size=n)
    op = CT(n, theta, n_detectors=sino.shape[0])
    ours = fbp(op, torch.from_numpy(sino)[None, None], filter=filt).numpy()[0, 0]
    assert np.abs(ours - ref).max() <= 1e-10 * np.abs(ref).max()
    by_angles = op.fbp(torch.from_numpy(sino)[None, None], filter=filt)
    torch.testing.assert_close(by_angles, fbp(theta, torch.from_numpy(sino)[None, None], filt, img_size=n))


def test_fbp_reconstructs_a_disc_well_with_many_views():
    n = 32
    c = np.arange(n) - n // 2
    img = ((c[:, None] ** 2 + c[None, :] ** 2) <= 8 ** 2) * 1.0
    op = CT(n, 90)
    rec = op.fbp(op(torch.from_numpy(img)[None, None])).numpy()[0, 0]
    assert np.abs(rec - img).mean() < 0.05  # FBP is near-exact away from the disc edge


@pytest.mark.parametrize("factory", [lambda: CT(12, 5), lambda: CT.sparse_view(11, 3, n_detectors=17),
                                     lambda: CT.limited_angle(12, 60.0, n_views=4)])
def test_conformance_exact_adjoint(factory):
    report = ops.check(factory())
    assert report["float64"]["dot"] < 1e-12 and report["complex128"]["dot"] < 1e-12


def test_adjoint_is_transpose_of_materialised_matrix():
    op = CT(6, [0.0, 30.0, 95.0], n_detectors=7)
    eye = torch.eye(36, dtype=torch.float64).reshape(36, 1, 6, 6)
    A = op(eye).reshape(36, -1).T  # (rays, pixels)
    eye_y = torch.eye(21, dtype=torch.float64).reshape(21, 1, 7, 3)
    At = op.H(eye_y).reshape(21, -1)  # rows: adjoint of each unit sinogram
    torch.testing.assert_close(At, A, rtol=0, atol=0)


def test_constructors_set_the_angles():
    sv = CT.sparse_view(16, 8)
    torch.testing.assert_close(sv.angles, torch.arange(8, dtype=torch.float64) * 22.5)
    la = CT.limited_angle(16, 90.0)
    assert la.n_views == 90 and float(la.angles.max()) == 89.0 and float(la.angles.min()) == 0.0
    assert CT(16).n_views == 180 and CT(16).out_shape == (1, 16, 180)


def test_dtype_and_batch():
    op = CT(10, 4)
    x = torch.rand(3, 1, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y64 = op(x)
    assert y64.dtype == torch.float64
    torch.testing.assert_close(op(x.float()), y64.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op(x[1:2]), y64[1:2])  # batch members are independent


def test_errors():
    with pytest.raises(ValueError, match="img_size"):
        CT(1)
    with pytest.raises(ValueError, match="angles"):
        CT(8, 0)
    with pytest.raises(ValueError, match="n_detectors"):
        CT(8, 4, n_detectors=0)
    with pytest.raises(ValueError, match="max_angle"):
        CT.limited_angle(8, 200.0)
    with pytest.raises(ValueError, match="CT"):
        CT(8, 4)(torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="filter"):
        fbp(CT(8, 4), torch.zeros(1, 1, 8, 4), filter="gauss")
    with pytest.raises(ValueError, match="y must be"):
        fbp(CT(8, 4), torch.zeros(1, 1, 8, 5))
