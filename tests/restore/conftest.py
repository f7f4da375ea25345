"""Shared fixtures for solver tests: small exact problems (Gaussian / Gaussian-mixture prior, dense
matrix operator, Gaussian noise) with exact posterior samples, and a sliced-Wasserstein distance.

Every problem carries the *exact-sampler floor*: the distance between two independent sets of exact
posterior samples of the same size. A correct sampler's distance to the exact samples sits near it;
a biased one sits above it by its bias.

Fixtures (all session-scoped, deterministic):

* ``sliced_wasserstein(a, b, n_proj=256)`` -- SW2 between two sample sets ``(n, d)``;
* ``gmm_noisy``        -- 3-component mixture on R^4, A: 2x4, sigma_y = 0.1;
* ``gmm_noiseless``    -- same prior and A, sigma_y = 0;
* ``gaussian_noisy``   -- correlated Gaussian on R^4, A: 2x4, sigma_y = 0.1;
* ``gaussian_spectral``-- Gaussian whose covariance is diagonal in A's right singular basis
  (``cov = V diag(c) V^T``), so measured and unmeasured spectral coordinates are independent and
  replacement methods are exact at zero noise (see ``gaussian_spectral_noiseless``);
* ``gaussian_spectral_noiseless`` -- the same with sigma_y = 0: the posterior fixes the measured
  spectral coordinates to y's and leaves the others at the prior, so DDRM (eta = 0), DDNM (eta = 0)
  and DiffPIR (zeta = 0) are exact posterior samplers up to time discretisation.

Each problem is a :class:`Problem` with ``prior, op, x, y, noise, sigma_y, A``, ``posterior``
(exact, a GaussianMixture), ``exact`` (``N_EXACT`` exact samples, (n, d) float64), ``floor`` (SW2
between ``exact`` and an independent exact set of the same size, median of 5 draws), ``mean`` (the
exact posterior mean, (d,)).

``assert_exact(x, problem, sw_factor=2.0, std_rtol=0.05, pinned_atol=1e-8)`` checks samples ``x``
(n, d) against the exact posterior: SW2 below ``sw_factor`` times the floor, and in A's right
singular basis (where measured and unmeasured directions separate) every coordinate's mean within
4 standard errors (plus ``pinned_atol``, for directions the posterior pins down) and its std within
``std_rtol`` (plus 1e-3 absolute).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch

import operators as ops
import priors

D, M = 4, 2
SIGMA_Y = 0.1
N_EXACT = 4000


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_proj: int = 256, seed: int = 0) -> float:
    """:func:`priors.sliced_wasserstein` with directions from a fixed seed (the same for every call, so
    distances are comparable); n and m may differ."""
    return priors.sliced_wasserstein(a, b, n_proj, generator=torch.Generator().manual_seed(seed))


@dataclass
class Problem:
    prior: Any
    op: Any
    A: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    noise: Any
    sigma_y: float
    posterior: Any = None
    exact: torch.Tensor | None = None
    floor: float | None = None
    mean: torch.Tensor | None = None


def _problem(prior, A: torch.Tensor, sigma_y: float, seed: int) -> Problem:
    g = torch.Generator().manual_seed(seed)
    op = ops.Matrix(A)
    x = prior.sample(1, generator=g).to(torch.float64)
    y = op(x)
    noise = ops.GaussianNoise(sigma_y)
    if sigma_y > 0:
        y = y + sigma_y * torch.randn(y.shape, generator=g, dtype=y.dtype)
    post = prior.posterior(op, y, noise)
    exact = post.sample(N_EXACT, generator=g).to(torch.float64)
    # the floor fluctuates with the draw (0.8-1.5x over 30 draws): take the median of five
    floor = float(torch.tensor([sliced_wasserstein(exact, post.sample(N_EXACT, generator=g))
                                for _ in range(5)]).median())
    return Problem(prior, op, A, x, y, noise, sigma_y, post, exact, floor, post.mean.reshape(-1))


def _matrix(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(M, D, generator=g, dtype=torch.float64) / D ** 0.5 * 2


def _mixture() -> priors.GaussianMixture:
    g = torch.Generator().manual_seed(1)
    means = torch.tensor([[1.0, 0.5, -0.5, 0.0], [-1.0, 0.0, 0.5, 0.5], [0.0, -1.0, 0.0, -0.5]],
                         dtype=torch.float64)
    factors = 0.3 * torch.randn(3, D, D, generator=g, dtype=torch.float64)
    covs = factors @ factors.transpose(1, 2) + 0.02 * torch.eye(D, dtype=torch.float64)
    return priors.GaussianMixture(torch.tensor([0.5, 0.3, 0.2]), means, covs)


def assert_exact(x: torch.Tensor, p: Problem, sw_factor: float = 2.0, std_rtol: float = 0.05,
                 pinned_atol: float = 1e-8) -> None:
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    sw = sliced_wasserstein(x, p.exact)
    assert sw < sw_factor * p.floor, f"sliced Wasserstein {sw:.4f} >= {sw_factor} x floor {p.floor:.4f}"
    vh = torch.linalg.svd(p.A.to(torch.float64))[2]
    cov = vh @ p.posterior.covariance @ vh.T
    exact_std = cov.diagonal().clamp_min(0).sqrt()
    mean, std = x.mean(0) @ vh.T, (x @ vh.T).std(0)
    exact_mean = vh @ p.mean
    se = exact_std / x.shape[0] ** 0.5
    assert bool(((mean - exact_mean).abs() <= 4 * se + pinned_atol).all()), f"mean {mean} vs exact {exact_mean}"
    assert bool(((std - exact_std).abs() <= std_rtol * exact_std + 1e-3).all()), f"std {std} vs exact {exact_std}"


@pytest.fixture(scope="session", name="assert_exact")
def _assert_exact_fixture():
    return assert_exact


@pytest.fixture(scope="session", name="sliced_wasserstein")
def _sliced_wasserstein_fixture():
    return sliced_wasserstein


@pytest.fixture(scope="session")
def gmm_noisy() -> Problem:
    return _problem(_mixture(), _matrix(0), SIGMA_Y, seed=10)


@pytest.fixture(scope="session")
def gmm_noiseless() -> Problem:
    return _problem(_mixture(), _matrix(0), 0.0, seed=11)


@pytest.fixture(scope="session")
def gaussian_noisy() -> Problem:
    g = torch.Generator().manual_seed(2)
    f = 0.5 * torch.randn(D, D, generator=g, dtype=torch.float64)
    prior = priors.Gaussian(torch.tensor([0.5, -0.2, 0.1, 0.0], dtype=torch.float64),
                            f @ f.T + 0.05 * torch.eye(D, dtype=torch.float64))
    return _problem(prior, _matrix(3), SIGMA_Y, seed=12)


def _spectral_gaussian(A: torch.Tensor) -> priors.Gaussian:
    _, _, vh = torch.linalg.svd(A)  # rows of vh: right singular vectors, measured ones first
    c = torch.tensor([0.5, 0.2, 0.3, 0.1], dtype=torch.float64)
    return priors.Gaussian(torch.tensor([0.3, 0.0, -0.3, 0.1], dtype=torch.float64), vh.T @ torch.diag(c) @ vh)


@pytest.fixture(scope="session")
def gaussian_spectral() -> Problem:
    return _problem(_spectral_gaussian(_matrix(4)), _matrix(4), SIGMA_Y, seed=13)


@pytest.fixture(scope="session")
def gaussian_spectral_noiseless() -> Problem:
    return _problem(_spectral_gaussian(_matrix(4)), _matrix(4), 0.0, seed=14)


# --- helpers shared by the solver test files -------------------------------------------------------


class Modulus(ops.Operator):
    """A nonlinear toy: the modulus of a linear measurement (a phase-retrieval caricature)."""

    def __init__(self, A):
        super().__init__((A.shape[1],), (A.shape[0],), "modulus")
        self.A = A

    def _apply(self, x):
        return (x @ self.A.T).abs()


@pytest.fixture(scope="session", name="Modulus")
def _modulus_fixture():
    return Modulus


def modulus_problem(prior):
    """``|A x| + 0.02 n`` with A: 6x4 and x ~ ``prior`` (seed 3). Returns ``op, y, g``."""
    g = torch.Generator().manual_seed(3)
    op = Modulus(torch.randn(6, 4, generator=g, dtype=torch.float64))
    x = prior.sample(1, generator=g).to(torch.float64)
    y = op(x) + 0.02 * torch.randn(1, 6, generator=g, dtype=torch.float64)
    return op, y, g


@pytest.fixture(scope="session", name="modulus_problem")
def _modulus_problem_fixture():
    return modulus_problem


def iso_problem(sigma_y: float, seed: int = 12):
    """N(m, I) on R^4 (unit variance, the one PiGDM's / DAPS's r_t assume), A: 2x4 from ``seed``.

    Returns ``prior, op, y, noise, g`` with ``g`` the generator, ready for further exact draws.
    """
    g = torch.Generator().manual_seed(seed)
    prior = priors.Gaussian(torch.tensor([0.5, -0.2, 0.1, 0.0], dtype=torch.float64), 1.0)
    A = torch.randn(2, 4, generator=g, dtype=torch.float64)
    op, noise = ops.Matrix(A), ops.GaussianNoise(sigma_y)
    y = op(prior.sample(1, generator=g)) + sigma_y * torch.randn(1, 2, generator=g, dtype=torch.float64)
    return prior, op, y, noise, g


@pytest.fixture(scope="session", name="iso_problem")
def _iso_problem_fixture():
    return iso_problem


def assert_diverges_below_one(solver, p: Problem) -> None:
    """``solver`` on ``p`` with a denoiser that turns NaN once sigma < 1 (20 steps) raises
    :class:`restore.SolverDiverged` at the first such step, with that step's sigma."""
    import math

    import restore

    class Exploding(priors.GaussianMixture):
        def denoise(self, x, sigma):
            out = super().denoise(x, sigma)
            return out * float("nan") if sigma < 1.0 else out

    bad = Exploding(p.prior.weights, p.prior.means, p.prior.covs)
    sigmas = bad.sigmas(20).tolist()
    with pytest.raises(restore.SolverDiverged) as info:
        solver(bad, p.op, p.y, p.noise, steps=20, generator=torch.Generator().manual_seed(0))
    first = next(i for i, s in enumerate(sigmas) if s < 1.0)
    assert info.value.step == first and info.value.sigma == pytest.approx(sigmas[first])
    assert math.isfinite(info.value.sigma)


@pytest.fixture(scope="session", name="assert_diverges_below_one")
def _assert_diverges_below_one_fixture():
    return assert_diverges_below_one
