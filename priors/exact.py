"""Exact priors: a Gaussian and a mixture of Gaussians, with closed-form denoiser and posterior.

They are the ground truth every sampler and solver is checked against. For ``x0 ~ sum_k pi_k
N(mu_k, C_k)`` and ``x = x0 + sigma n``, the noisy marginal is ``sum_k pi_k N(mu_k, C_k + sigma^2 I)``
and Tweedie's formula gives the denoiser in closed form (e.g. Bishop 2006, eqs. 2.113-2.117 per
component, mixed by the responsibilities ``p(k | x)``):

.. math::

    D(x; \\sigma) = \\sum_k p(k \\mid x)\\, \\big(\\mu_k + C_k (C_k + \\sigma^2 I)^{-1} (x - \\mu_k)\\big).

Each covariance is diagonalised once, ``C_k = U_k diag(lambda_k) U_k^T``; then ``C_k + sigma^2 I`` is
diagonal in the same basis for every sigma, so a batch with one sigma per sample costs two matrix
products per component and never refactorises. All arithmetic is float64; results come back in the
caller's dtype.
"""
from __future__ import annotations

import math
import numbers

import torch

from .denoiser import Prior, sigma_like
from .random import Generators, resolve_generators

__all__ = ["GaussianMixture", "Gaussian"]

_LOG_2PI = math.log(2 * math.pi)


class GaussianMixture(Prior):
    """``x0 ~ sum_k weights[k] N(means[k], covs[k])`` on vectors or on any trailing shape.

    :param weights: (K,) non-negative, normalised here.
    :param means: (K, *shape); ``shape`` is the per-sample shape (``image_shape``), flattened to
        ``d = prod(shape)`` internally.
    :param covs: (K, d, d) full, (K, d) or (K, *shape) diagonal, or (K,) isotropic covariances.
    :param sigma_min, sigma_max: the sampling range. Default: ``sigma_max`` is 100 times the data scale
        (the spread of the data or the largest mean coordinate, whichever is larger); ``sigma_min`` is
        1e-3 times the smallest standard deviation of any component in any direction, kept within
        [1e-6, 1e-3] times the data scale.
    :param dtype: what :meth:`sample` returns; default the dtype ``means`` came in.

    Parameters are kept in float64 on the device of ``means``.

    >>> import torch
    >>> gm = GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[-1.0], [1.0]]), torch.tensor([0.1, 0.1]))
    >>> gm.denoise(torch.tensor([[0.0]]), 0.5)  # halfway between the modes: the mean, by symmetry
    tensor([[0.]])
    """

    def __init__(
        self,
        weights: torch.Tensor,
        means: torch.Tensor,
        covs: torch.Tensor,
        *,
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        dtype: torch.dtype | None = None,
    ):
        means = _real_tensor(means, "means")
        if means.ndim < 2 or means.numel() == 0:
            raise ValueError(f"means: expected a non-empty shape (K, *shape), got {tuple(means.shape)}")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype: expected a floating torch.dtype or None, got {dtype!r}")
        if dtype is None:
            dtype = means.dtype if means.is_floating_point() else torch.get_default_dtype()
        self.dtype = dtype
        device = means.device
        n_comp, self.image_shape = means.shape[0], tuple(means.shape[1:])
        d = math.prod(self.image_shape)
        weights = _real_tensor(weights, "weights").to(dtype=torch.float64, device=device)
        if weights.shape != (n_comp,) or bool((weights < 0).any()) or not float(weights.sum()) > 0:
            raise ValueError(f"weights: expected {n_comp} non-negative numbers with a positive sum, got {weights}")
        self.weights = weights / weights.sum()
        self.means = means.to(torch.float64).reshape(n_comp, d)
        self.eigvals, self.eigvecs = _eigh(_real_tensor(covs, "covs").to(device), n_comp, d)
        scale = _data_scale(self)
        self.sigma_min = _positive(sigma_min, "sigma_min") if sigma_min is not None else \
            1e-3 * _finest_scale(self, scale)
        self.sigma_max = _positive(sigma_max, "sigma_max") if sigma_max is not None else 100.0 * scale
        if not self.sigma_min < self.sigma_max:
            raise ValueError(f"sigma_min: expected less than sigma_max = {self.sigma_max:g}, got {self.sigma_min:g}")

    # ----------------------------------------------------------------------------------- moments
    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def covs(self) -> torch.Tensor:
        """(K, d, d) float64 covariances."""
        if self.eigvecs is None:
            return torch.diag_embed(self.eigvals)
        return self.eigvecs @ (self.eigvals[:, :, None] * self.eigvecs.transpose(1, 2))

    @property
    def mean(self) -> torch.Tensor:
        """E[x0], float64, shape ``image_shape``."""
        return (self.weights @ self.means).reshape(self.image_shape)

    @property
    def covariance(self) -> torch.Tensor:
        """Cov[x0] as a (d, d) float64 matrix (law of total covariance)."""
        centred = self.means - self.weights @ self.means
        between = (self.weights[:, None] * centred).T @ centred
        return torch.einsum("k,kij->ij", self.weights, self.covs) + between

    # ------------------------------------------------------------------------------- the denoiser
    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """Exact ``E[x0 | x0 + sigma n = x]``; ``sigma`` a scalar or one value per sample (B,)."""
        x64 = self._flatten(x, "x")
        s = sigma_like(sigma, x64).to(torch.float64).reshape(-1, 1, 1)  # (B, 1, 1) against (B, K, d)
        # sigma = 0 is the identity; a safe stand-in keeps singular covariances away from 0/0.
        s_safe = torch.where(s > 0, s, torch.ones_like(s))
        z, var = self._whiten(x64, s_safe)
        resp = torch.softmax(self._log_joint(z, var), dim=1)  # p(k | x), (B, K)
        shrunk = z * (self.eigvals / var)  # C_k (C_k + s^2 I)^{-1} (x - mu_k), in the eigenbasis
        x0 = torch.einsum("bk,bkd->bd", resp, self.means + self._from_eigenbasis(shrunk))
        x0 = torch.where(s.reshape(-1, 1) > 0, x0, x64)
        return x0.to(device=x.device, dtype=x.dtype).reshape(x.shape)

    def log_prob(self, x: torch.Tensor, sigma: torch.Tensor | float = 0.0) -> torch.Tensor:
        """``log p_sigma(x)`` of the noisy marginal ``sum_k pi_k N(mu_k, C_k + sigma^2 I)``, (B,) float64.

        At ``sigma = 0`` the covariances must be non-singular.
        """
        x64 = self._flatten(x, "x")
        z, var = self._whiten(x64, sigma_like(sigma, x64).to(torch.float64).reshape(-1, 1, 1))
        return torch.logsumexp(self._log_joint(z, var), dim=1)

    def _whiten(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x - mu_k`` in component k's eigenbasis (B, K, d), and the variances ``lambda_k + s^2`` there."""
        r = x[:, None, :] - self.means
        z = r if self.eigvecs is None else torch.einsum("kji,bkj->bki", self.eigvecs, r)
        return z, self.eigvals + s**2

    def _from_eigenbasis(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.eigvecs is None else torch.einsum("kij,bkj->bki", self.eigvecs, z)

    def _log_joint(self, z: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """``log pi_k + log N(x; mu_k, C_k + s^2 I)``, (B, K)."""
        quad = (z**2 / var).sum(-1)
        logdet = var.log().sum(-1)
        return self.weights.log() - 0.5 * (quad + logdet + self.dim * _LOG_2PI)

    def _flatten(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{name}: expected shape (B, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")
        return x.to(device=self.means.device, dtype=torch.float64).reshape(x.shape[0], self.dim)

    # ------------------------------------------------------------------------------------ sampling
    def sample(self, n: int, generator: Generators = None) -> torch.Tensor:
        """``n`` exact draws, shape ``(n, *image_shape)`` in the dtype the means came in; with a list of
        ``n`` generators, draw ``i`` comes from ``generator[i]`` alone."""
        g = resolve_generators(generator, n)
        if isinstance(g, list):
            return torch.cat([self.sample(1, gi) for gi in g])
        # drawn on the generator's device, so a CPU generator gives the same samples for CUDA parameters
        k = torch.multinomial(self.weights.to(g.device), n, replacement=True, generator=g).to(self.means.device)
        noise = torch.randn(n, self.dim, dtype=torch.float64, device=g.device, generator=g).to(self.means.device)
        scaled = noise * self.eigvals[k].clamp(min=0).sqrt()
        x0 = self.means[k] + (scaled if self.eigvecs is None else (self.eigvecs[k] @ scaled[:, :, None])[..., 0])
        return x0.to(self.dtype).reshape(n, *self.image_shape)

    # ----------------------------------------------------------------------------------- posterior
    def posterior(self, op, y: torch.Tensor, noise, *, max_entries: int = 2**24) -> "GaussianMixture":
        """The exact posterior ``p(x0 | y)`` for ``y = A x0 + sigma_y e``, ``e ~ N(0, I)``: a mixture again.

        Per component (Bishop 2006, eqs. 2.113-2.117, in gain form so singular ``C_k`` are fine), with
        ``G_k = A C_k A^T + sigma_y^2 I``:

        * covariance ``C_k - C_k A^T G_k^{-1} A C_k`` (computed in Joseph's form);
        * mean ``mu_k + C_k A^T G_k^{-1} (y - A mu_k)``;
        * weight proportional to ``pi_k N(y; A mu_k, G_k)``.

        :param op: an ``ops.Matrix``, or any ``LinearOperator`` small enough to materialise as a dense
            matrix (at most ``max_entries`` entries) by applying it to the identity basis. A complex
            operator on real images is handled as the real operator ``[Re A; Im A]``.
        :param y: one measurement, shape ``op.out_shape`` or ``(1, *op.out_shape)``.
        :param noise: an ``ops.GaussianNoise``.
        """
        a, y_vec, sigma_y = _linear_gaussian_model(op, y, noise, self, max_entries)
        covs = self.covs
        ac = a @ covs  # (K, m, d): A C_k
        g = ac @ a.T + sigma_y**2 * torch.eye(a.shape[0], dtype=torch.float64, device=a.device)
        chol, info = torch.linalg.cholesky_ex(g)
        if bool((info != 0).any()):
            raise ValueError(
                "noise: A C A^T + sigma_y^2 I is singular; use a noise sigma > 0 or a full-rank problem")
        resid = y_vec - self.means @ a.T  # (K, m): y - A mu_k
        gain_t = torch.cholesky_solve(ac, chol)  # (K, m, d): G_k^{-1} A C_k
        post_means = self.means + torch.einsum("kmd,km->kd", gain_t, resid)
        # Joseph's form of C - C A^T G^-1 A C: the same matrix, but positive semi-definite in floating point
        gain = gain_t.transpose(1, 2)  # (K, d, m): C_k A^T G_k^{-1}
        keep = torch.eye(self.dim, dtype=torch.float64, device=a.device) - gain @ a
        post_covs = keep @ covs @ keep.transpose(1, 2) + sigma_y**2 * gain @ gain.transpose(1, 2)
        white = torch.linalg.solve_triangular(chol, resid[..., None], upper=False)[..., 0]
        log_evidence = -0.5 * (white**2).sum(-1) - chol.diagonal(dim1=1, dim2=2).log().sum(-1)
        log_w = self.weights.log() + log_evidence
        return GaussianMixture(
            torch.softmax(log_w, 0), post_means.reshape(-1, *self.image_shape),
            0.5 * (post_covs + post_covs.transpose(1, 2)), dtype=self.dtype)


class Gaussian(GaussianMixture):
    """``x0 ~ N(mean, cov)``: a one-component :class:`GaussianMixture`.

    :param mean: shape ``image_shape`` (e.g. (d,) or (C, H, W)).
    :param cov: (d, d) full, ``image_shape``/(d,) diagonal, or a scalar (isotropic).

    >>> import torch
    >>> g = Gaussian(torch.zeros(2), torch.eye(2))
    >>> g.denoise(torch.tensor([[2.0, 0.0]]), 1.0)  # shrinks by C (C + s^2 I)^{-1} = 1/2
    tensor([[1., 0.]])
    """

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor | float, *, sigma_min: float | None = None,
                 sigma_max: float | None = None, dtype: torch.dtype | None = None):
        mean = _real_tensor(mean, "mean")
        if mean.ndim == 0:
            raise ValueError("mean: expected at least one dimension (the image_shape), got a 0-d tensor")
        if mean.numel() == 0:
            raise ValueError(f"mean: expected a non-empty tensor, got shape {tuple(mean.shape)}")
        cov = _real_tensor(cov, "cov").to(mean.device)
        d = mean.numel()
        if not (cov.ndim == 0 or tuple(cov.shape) == (d, d) or (cov.ndim >= 1 and cov.numel() == d)):
            raise ValueError(f"cov: expected a scalar, a ({d}, {d}) matrix or {d} variances (shape (d,) or "
                             f"{tuple(mean.shape)}), got shape {tuple(cov.shape)}")
        try:
            super().__init__(torch.ones(1), mean[None], cov[None], sigma_min=sigma_min, sigma_max=sigma_max,
                             dtype=dtype)
        except ValueError as err:  # name this constructor's arguments, not the mixture's
            message = str(err)
            for theirs, ours in (("means:", "mean:"), ("covs:", "cov:")):
                if message.startswith(theirs):
                    raise ValueError(ours + message[len(theirs):]) from None
            raise


# --------------------------------------------------------------------------------------- helpers
def _real_tensor(value, name: str) -> torch.Tensor:
    """``value`` as a tensor of real numbers without NaN or inf (bool and complex are refused)."""
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name}: expected a tensor of real numbers, got {type(value).__name__}") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name}: expected real numbers, got {t.dtype}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got {'NaN' if bool(torch.isnan(t).any()) else 'inf'}")
    return t


def _positive(value, name: str) -> float:
    """A finite number > 0 (a one-element real tensor is fine; bool is refused)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a positive number, got {type(value).__name__}")
    x = float(value)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {x}")
    if not 1e-150 <= x <= 1e150:  # sigma**2 must neither underflow to 0 nor overflow in float64
        raise ValueError(f"{name}: expected a number in [1e-150, 1e150] (its square must be a float64), got {x:g}")
    return x


def _eigh(covs: torch.Tensor, n_comp: int, d: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eigenvalues (K, d) and eigenvectors (K, d, d), or None for diagonal covariances."""
    covs = covs.to(torch.float64)
    if covs.shape == (n_comp,):
        if bool((covs < 0).any()):
            raise ValueError("covs: expected non-negative isotropic variances, got a negative one")
        return covs[:, None].expand(n_comp, d).clone(), None
    if covs.shape == (n_comp, d, d):
        sym = 0.5 * (covs + covs.transpose(1, 2))
        eigvals, eigvecs = torch.linalg.eigh(sym)
        tol = -1e-10 * eigvals.abs().amax(-1, keepdim=True).clamp(min=1e-300)
        if bool((eigvals < tol).any()):
            raise ValueError("covs: expected positive semi-definite matrices, found a negative eigenvalue")
        return eigvals.clamp(min=0), eigvecs
    if covs.ndim >= 2 and covs.shape[0] == n_comp and covs[0].numel() == d:
        diag = covs.reshape(n_comp, d)
        if bool((diag < 0).any()):
            raise ValueError("covs: diagonal covariances must be non-negative")
        return diag.clone(), None
    raise ValueError(
        f"covs: expected ({n_comp}, {d}, {d}) full, ({n_comp}, {d}) diagonal or ({n_comp},) isotropic, "
        f"got {tuple(covs.shape)}")


def _data_scale(prior: GaussianMixture) -> float:
    """A length scale for the default sigma range: spread of the data or size of its mean."""
    spread = prior.eigvals.amax()  # an upper bound on the within-component spread
    centred = prior.means - prior.weights @ prior.means
    between = (prior.weights[:, None] * centred**2).sum(0).sum()  # trace bound on the between part
    mean_size = (prior.weights @ prior.means).abs().amax()
    scale = max(float(spread + between) ** 0.5, float(mean_size))
    return scale if scale > 0 else 1.0


def _finest_scale(prior: GaussianMixture, scale: float) -> float:
    """The smallest standard deviation of any component in any direction, but at least 1e-3 ``scale``.

    The last step of a sampler is a denoising from sigma_min, which shrinks a direction of variance
    ``lambda`` to ``lambda^2 / (lambda + sigma_min^2)``; tying sigma_min to the finest direction keeps
    that shrinkage below 1e-6 wherever the data range allows.
    """
    return min(max(float(prior.eigvals.min().clamp(min=0)) ** 0.5, 1e-3 * scale), scale)


def _linear_gaussian_model(op, y: torch.Tensor, noise, prior: GaussianMixture,
                           max_entries: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The real dense matrix A (m, d), the measurement as a real (m,) vector, and sigma_y."""
    import operators as ops

    if not isinstance(noise, ops.GaussianNoise):
        raise TypeError(f"noise: the exact posterior needs ops.GaussianNoise, got {type(noise).__name__}")
    a = _dense_matrix(op, prior, max_entries)
    out_shape = tuple(op.out_shape)
    y = torch.as_tensor(y, device=prior.means.device)
    if tuple(y.shape) == out_shape:
        y = y[None]
    if tuple(y.shape) != (1, *out_shape):
        raise ValueError(f"y: expected one measurement of shape {out_shape} or (1, *{out_shape}), "
                         f"got {tuple(y.shape)}; call posterior once per measurement")
    y = y.reshape(-1)
    sigma_y = float(noise.sigma)
    if a.is_complex() or y.is_complex():
        # A complex measurement of a real image is two real ones; ops.GaussianNoise gives the real and
        # the imaginary part each standard deviation sigma, so sigma_y carries over unchanged.
        a = torch.cat([a.real, a.imag]) if a.is_complex() else torch.cat([a, torch.zeros_like(a)])
        y = torch.cat([y.real, y.imag]) if y.is_complex() else torch.cat([y, torch.zeros_like(y)])
    return a.to(torch.float64), y.to(torch.float64), sigma_y


def _dense_matrix(op, prior: GaussianMixture, max_entries: int) -> torch.Tensor:
    """A as an (m, d) matrix: an ``ops.Matrix``'s own, else the operator applied to the identity basis."""
    import operators as ops

    in_shape = tuple(op.in_shape)
    if math.prod(in_shape) != prior.dim:
        raise ValueError(f"op: expected in_shape with {prior.dim} entries to match the prior's image_shape "
                         f"{prior.image_shape}, got {in_shape}")
    if isinstance(op, ops.Matrix):
        return op.A.to(device=prior.means.device)
    m = math.prod(tuple(op.out_shape))
    if m * prior.dim > max_entries:
        raise ValueError(
            f"op: materialising {getattr(op, 'name', type(op).__name__)} needs a {m} x {prior.dim} dense matrix "
            f"({m * prior.dim} entries > max_entries={max_entries}); pass an ops.Matrix or raise max_entries")
    op64 = op.to(device=prior.means.device, dtype=torch.float64)
    columns = []
    chunk = max(1, max_entries // (8 * max(m, 1)))
    eye = torch.eye(prior.dim, dtype=torch.float64, device=prior.means.device)
    for start in range(0, prior.dim, chunk):
        basis = eye[start:start + chunk].reshape(-1, *in_shape)
        columns.append(op64(basis).reshape(basis.shape[0], m))
    return torch.cat(columns).T
