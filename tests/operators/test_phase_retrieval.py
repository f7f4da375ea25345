"""Phase retrieval: the DAPS padding convention, the measured magnitudes, autograd Jacobians, errors."""
import numpy as np
import pytest
import torch

import operators as ops
from operators.phase_retrieval import PhaseRetrieval


def test_daps_protocol_padding():
    # DAPS/DPS: pad = int(oversample / 8 * 256) = 64 per side, so 256 -> 384
    op = PhaseRetrieval((3, 256, 256), oversample=2.0)
    assert op.pad == (64, 64) and op.out_shape == (3, 384, 384)
    assert PhaseRetrieval((1, 16, 16), pad=8).out_shape == (1, 32, 32)  # classical ratio 2 per axis


def test_measures_fourier_magnitude_of_zero_padded_image():
    rng = np.random.default_rng(0)
    img = rng.random((2, 1, 8, 6))
    op = PhaseRetrieval((1, 8, 6), oversample=4.0)  # pad (4, 3)
    padded = np.pad(img, ((0, 0), (0, 0), (4, 4), (3, 3)))
    # |DFT| is invariant to circular shifts, so the centring convention does not matter here
    expected = np.abs(np.fft.fftshift(np.fft.fft2(padded, norm="ortho"), axes=(-2, -1)))
    ours = op(torch.from_numpy(img)).numpy()
    assert np.abs(ours - expected).max() < 1e-12
    # Parseval: the orthonormal transform keeps the energy
    np.testing.assert_allclose((ours ** 2).sum((1, 2, 3)), (img ** 2).sum((1, 2, 3)), rtol=1e-12)


def test_trivial_ambiguities_give_the_same_measurement():
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    op = PhaseRetrieval((1, 8, 8))
    torch.testing.assert_close(op(-x), op(x))
    torch.testing.assert_close(op(x * 1j), op(x.to(torch.complex128)))  # global phase


def test_jacobian_from_autograd_matches_finite_differences():
    op = PhaseRetrieval((1, 5, 5), pad=2)
    x = (torch.rand(1, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(op, (x,), eps=1e-6, atol=1e-6)


def test_check_and_errors():
    ops.check(PhaseRetrieval((1, 8, 8)))
    with pytest.raises(ValueError, match="in_shape"):
        PhaseRetrieval((8, 8))
    with pytest.raises(ValueError, match="oversample"):
        PhaseRetrieval((1, 8, 8), oversample=-1.0)
    with pytest.raises(ValueError, match="pad"):
        PhaseRetrieval((1, 8, 8), pad=(1, -1))
    with pytest.raises(ValueError, match="PhaseRetrieval"):
        PhaseRetrieval((1, 8, 8))(torch.zeros(1, 1, 8, 7))
