"""DDNM / DDNM+ against exact answers."""
from __future__ import annotations

import pytest
import torch

import operators as ops
from restore.ddnm import ddnm, spectral
from restore.ddrm import ddrm
from test_ddrm import NoSVD

N = 4000


@pytest.mark.parametrize("hide_svd", [False, True])
def test_zero_noise_reproduces_the_measured_subspace(gmm_noiseless, hide_svd):
    # Range-null space decomposition: A (x0 + A^+(y - A x0)) = A A^+ y = y for y in the range of A.
    p = gmm_noiseless
    op = NoSVD(p.A) if hide_svd else p.op
    y = p.y.expand(64, -1)
    x = ddnm(p.prior, op, y, None, steps=20, generator=torch.Generator().manual_seed(0))
    tol = 1e-6 if hide_svd else 1e-12  # CG pseudo-inverse (relative tol 1e-6) vs the exact SVD one
    torch.testing.assert_close(p.op(x), y, rtol=0, atol=tol * float(y.abs().max()) * 10)
    assert float((x - p.op.pinv(y)).norm(dim=1).min()) > 1e-3


def test_spectral_helper_is_exact_with_and_without_svd_for_unit_singular_values():
    # For a selection operator (singular values 1 and 0) the pinv-based fallback is exact.
    A = torch.eye(5, dtype=torch.float64)[[0, 2, 3]]
    v = torch.randn(2, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    def g(s):
        return torch.where(s > 0, 0.3, 0.7) * torch.ones_like(s)
    expected = v * torch.tensor([0.3, 0.7, 0.3, 0.3, 0.7], dtype=torch.float64)
    torch.testing.assert_close(spectral(ops.Matrix(A), g, v), expected)
    torch.testing.assert_close(spectral(NoSVD(A), g, v), expected, rtol=0, atol=1e-6)  # CG tolerance


def test_ddnm_plus_without_svd_matches_the_svd_path_for_unit_singular_values(gmm_noisy):
    A = torch.eye(4, dtype=torch.float64)[[1, 3]]
    y = p_y = A @ gmm_noisy.x[0] + 0.05
    y = p_y[None].expand(16, -1)
    kw = dict(steps=15, eta=0.85)
    x1 = ddnm(gmm_noisy.prior, ops.Matrix(A), y, 0.1, generator=torch.Generator().manual_seed(2), **kw)
    x2 = ddnm(gmm_noisy.prior, NoSVD(A), y, 0.1, generator=torch.Generator().manual_seed(2), **kw)
    torch.testing.assert_close(x1, x2, rtol=0, atol=1e-6)


def test_exact_posterior_sampler_at_zero_noise_for_independent_spectral_coordinates(
        gaussian_spectral_noiseless, assert_exact):
    # Algorithm 1 with eta = 0: the range part is y's exactly, the null-space part follows the DDIM
    # flow of the prior, which here is independent of the range part (see conftest).
    p = gaussian_spectral_noiseless
    x = ddnm(p.prior, p.op, p.y.expand(N, -1), None, steps=200, generator=torch.Generator().manual_seed(3),
             eta=0.0)
    assert_exact(x, p)


@pytest.mark.parametrize("problem", ["gmm_noisy", "gaussian_spectral"])
def test_ddnm_plus_with_svd_is_ddrm_with_eta_b_one(problem, request):
    # The official Lambda / Lambda_noise reduce to DDRM's three regimes with eta_b = 1, and both draw
    # one image-sized normal per step, so with one generator the sample paths coincide. Only the
    # starts differ (DDRM puts y_bar into x_T), by terms the first denoiser call at
    # sigma_max = 100 x the data scale forgets.
    p = request.getfixturevalue(problem)
    kw = dict(steps=20, eta=0.85)
    x1 = ddnm(p.prior, p.op, p.y.expand(64, -1), p.noise, generator=torch.Generator().manual_seed(4), **kw)
    x2 = ddrm(p.prior, p.op, p.y.expand(64, -1), p.noise, generator=torch.Generator().manual_seed(4), eta_b=1.0, **kw)
    torch.testing.assert_close(x1, x2, rtol=0, atol=1e-8)
