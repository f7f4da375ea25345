"""Mask generators: fastMRI's definitions exactly, coverage/acceleration targets, validation."""
import math

import numpy as np
import pytest
import torch

from operators import masks


def G(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("R, cf", [(4, 0.08), (8, 0.04)])
def test_default_center_fraction(R, cf):
    assert masks.default_center_fraction(R) == pytest.approx(cf)


@pytest.mark.parametrize("R", [4, 8])
@pytest.mark.parametrize("N", [320, 368])
def test_fastmri_random_centre_and_expected_acceleration(R, N):
    cf = masks.default_center_fraction(R)
    num_low = round(N * cf)
    pad = (N - num_low + 1) // 2
    counts = []
    for seed in range(40):
        cols = masks.fastmri_random((4, N), R, generator=G(seed))[0]
        assert bool(cols[pad:pad + num_low].all())
        counts.append(float(cols.sum()))
    # the outer columns are Bernoulli(p) with p = (N/R - n_low)/(N - n_low): E[count] = N / R
    p = (N / R - num_low) / (N - num_low)
    sd_mean = math.sqrt((N - num_low) * p * (1 - p) / len(counts))
    assert abs(np.mean(counts) - N / R) < 4 * sd_mean


def _fastmri_equispaced_reference(N, R, cf, offset):
    """fastMRI EquispacedMaskFunc for a given offset, written from its definition with numpy."""
    num_low = int(round(N * cf))
    mask = np.zeros(N, dtype=bool)
    pad = (N - num_low + 1) // 2
    mask[pad:pad + num_low] = True
    adjusted = (R * (num_low - N)) / (num_low * R - N)
    mask[np.around(np.arange(offset, N - 1, adjusted)).astype(np.uint)] = True
    return mask


@pytest.mark.parametrize("R", [4, 8])
def test_fastmri_equispaced_is_exactly_fastmri(R):
    N = 320
    cf = masks.default_center_fraction(R)
    adjusted = (R * (round(N * cf) - N)) / (round(N * cf) * R - N)
    refs = [_fastmri_equispaced_reference(N, R, cf, o) for o in range(round(adjusted))]
    for seed in range(5):
        cols = masks.fastmri_equispaced((2, N), R, generator=G(seed))[0].bool().numpy()
        assert any((cols == ref).all() for ref in refs)
        assert abs(N / cols.sum() - R) < 0.15 * R


@pytest.mark.parametrize("fn", [masks.fastmri_random, masks.fastmri_equispaced, masks.gaussian_2d, masks.poisson_disc])
def test_validation(fn):
    with pytest.raises(ValueError, match="acceleration"):
        fn((16, 16), 0.5)
    with pytest.raises(ValueError, match="center_fraction"):
        fn((16, 16), 4, center_fraction=0.0)
    with pytest.raises(ValueError, match="center_fraction"):
        fn((16, 16), 4, center_fraction=1.2)


def test_gaussian_2d_expected_acceleration():
    H = W = 32
    counts = [float(masks.gaussian_2d((H, W), 4, generator=G(s)).sum()) for s in range(20)]
    assert abs(np.mean(counts) - H * W / 4) < 0.03 * H * W / 4
    m = masks.gaussian_2d((H, W), 4, generator=G(0))
    c = round(0.08 * H)
    top = (H - c + 1) // 2
    assert bool(m[top:top + c, top:top + c].all())  # calibration square


def test_poisson_disc_acceleration_and_determinism():
    m = masks.poisson_disc((32, 32), 4, generator=G(1))
    assert abs(32 * 32 / float(m.sum()) - 4) < 0.4
    assert torch.equal(m, masks.poisson_disc((32, 32), 4, generator=G(1)))
    # variable density: the central quarter is sampled more densely than the periphery
    centre = m[8:24, 8:24].mean()
    assert centre > (m.sum() - m[8:24, 8:24].sum()) / (32 * 32 - 256)


def test_random_box_freeform():
    m = masks.random((10, 10), 0.37, generator=G(2))
    assert float(m.sum()) == 37
    b = masks.box((16, 16), 8)
    assert float(b.sum()) == 256 - 64 and float(b[4:12, 4:12].sum()) == 0
    rb = masks.box((16, 16), (4, 6), center=False, generator=G(3))
    assert float((1 - rb).sum()) == 24
    for seed in range(3):
        f = masks.freeform((64, 64), generator=G(seed))
        missing = 1 - float(f.mean())
        assert 0.2 <= missing <= 0.3
        assert set(f.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="ratio"):
        masks.random(8, 1.5)
    with pytest.raises(ValueError, match="size"):
        masks.box(8, 9)
    with pytest.raises(ValueError, match="coverage"):
        masks.freeform(8, coverage=(0.5, 0.2))
