"""One cell's work: every image of its dataset through its operator, noise and solver.

:func:`run_cell` is a pure task, ``Cell -> CellResult``: it builds prior, images, operator and
noise from the cell's specs, runs the solver on each image, counts denoiser evaluations (NFE),
scores the result and returns the stored row, the per-image rows and small artifacts (PNG/NPZ
bytes). It touches no file and no database, so any executor (``map``, a process pool, Ray's
``map``) can run it; :mod:`benchmarks.runner` alone writes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import resource
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from .artifacts import image_artifacts
from .build import build_operator, load_dataset, load_prior, metrics_function
from .metrics import SAMPLE_METRICS
from .registry import MissingResource, noise_model, resolve, spec_kwargs
from .suite import Cell
from .versions import versions


@dataclass
class CellResult:
    """What :func:`run_cell` returns: the cell row, per-image rows, and artifact bytes by path
    relative to the output folder."""

    row: dict[str, Any]
    images: list[dict[str, Any]]
    artifacts: dict[str, bytes]


def seed_for(*parts: Any) -> int:
    """A 63-bit seed from any labels: a result never depends on order or batch size."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def seeded_generator(device: str, *parts: Any) -> torch.Generator:
    """A generator on ``device`` seeded by :func:`seed_for` of ``parts``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed_for(*parts))
    return g


def counted(prior: Any) -> tuple[Any, list[int]]:
    """A copy of ``prior`` that counts its denoiser evaluations in ``counter[0]``, one per image of
    each batch it denoises (so SMC particles count, and a batch of k samples counts k), whether
    through ``denoise`` or ``denoise_and_variance`` (the learned-variance call of official DPS; one
    built on the other counts once); it keeps the prior's class (as a subclass) for ``isinstance``.
    Returns ``(copy, counter)``."""
    counter, depth = [0], [0]
    base = type(prior)

    def counting(name: str) -> Callable:
        original = getattr(base, name)

        def method(self, x, sigma, *args, **kwargs):
            if depth[0] == 0:
                counter[0] += x.shape[0] if x.ndim else 1
            depth[0] += 1
            try:
                return original(self, x, sigma, *args, **kwargs)
            finally:
                depth[0] -= 1
        return method

    methods = {name: counting(name) for name in ("denoise", "denoise_and_variance") if hasattr(base, name)}
    counting_class = type(f"Counted{base.__name__}", (base,), {
        **methods, "__call__": lambda self, *a, **k: self.denoise(*a, **k), "__module__": base.__module__})
    clone = object.__new__(counting_class)
    clone.__dict__.update(prior.__dict__)
    return clone, counter


#: what :func:`counted_operator` counts as a forward-model evaluation (per image of each batch)
OP_COUNTS = ("forward", "adjoint", "vjp", "normal", "svd", "solve")


def counted_operator(op: Any) -> tuple[Any, dict[str, int]]:
    """A copy of ``op`` that counts its forward-model evaluations, one per image of each batch, by kind:

    * ``forward``: ``op(x)``; ``adjoint``: ``op.H(y)`` (``A^H``, the transpose);
    * ``vjp``: a backward pass through ``op(x)`` (DPS's gradient of the data term through the operator);
    * ``normal``: a closed-form ``op.N``; ``svd``: a transform of ``op.svd`` (``Vt``, ``V``, ``Ut``, ``U``:
      DDRM's and DDNM's spectral steps); ``solve``: a closed-form ``op.prox`` or ``op.pinv`` (a CG
      fallback counts its own forwards and adjoints instead).

    What a counted call does inside (a closed form built on ``op(x)``, a composition's parts) is not
    counted again. The copy keeps the operator's class (as a subclass) for ``isinstance``;
    ``op.to(...)`` copies share the counts. A user's operator that is not one of :mod:`operators`'
    classes has its calls counted as ``forward``. Returns ``(copy, counts)``.
    """
    from operators.linear import SVD, LinearOperator, _Base

    counts = dict.fromkeys(OP_COUNTS, 0)
    depth = [0]  # > 0 inside a counted call

    def tally(kind: str, t: torch.Tensor) -> None:
        counts[kind] += t.shape[0] if t.ndim else 1

    def call(kind: str, t: torch.Tensor, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        outer = depth[0] == 0
        if outer:
            tally(kind, t)
        depth[0] += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            depth[0] -= 1
        if outer and kind == "forward" and isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda grad: tally("vjp", grad))  # returns None: the gradient is unchanged
        return out

    def counting(fn: Callable, kind: str) -> Callable:
        return lambda t: call(kind, t, fn, t)

    base = type(op)
    if not isinstance(op, _Base):
        def __call__(self, x, *args, **kwargs):
            return call("forward", x, base.__call__, self, x, *args, **kwargs)
        return _counting_copy(op, {"__call__": __call__}), counts

    methods: dict[str, Any] = {"_apply": lambda self, x: call("forward", x, base._apply, self, x)}
    if isinstance(op, LinearOperator):
        def _svd(self):
            svd = base._svd(self)
            return None if svd is None else SVD(svd.s, counting(svd.Vt, "svd"), counting(svd.V, "svd"),
                                                counting(svd.Ut, "svd"), counting(svd.U, "svd"), svd.complex)

        def _normal(self):
            normal = base._normal(self)
            if normal is self:  # a projection (A^H A = A): its forward is counted
                return normal
            clone = copy.copy(normal)
            clone._apply = counting(normal._apply, "normal")
            return clone

        methods |= {"_adjoint": lambda self, y: call("adjoint", y, base._adjoint, self, y), "_svd": _svd}
        if base._normal is not LinearOperator._normal:  # a closed form (the default, H @ op, is counted)
            methods["_normal"] = _normal
        for name in ("_prox", "_pinv"):  # closed forms; the defaults go through the SVD or CG, counted
            if getattr(base, name) is not getattr(LinearOperator, name):
                methods[name] = (lambda fn: lambda self, first, *a, **k: call("solve", first, fn, self, first, *a, **k))(
                    getattr(base, name))
    clone = _counting_copy(op, methods)
    for cached in ("H", "N", "svd"):  # built from the counting copy when first asked for
        clone.__dict__.pop(cached, None)
    return clone, counts


def _counting_copy(obj: Any, methods: dict[str, Any]) -> Any:
    """A copy of ``obj`` (its ``__dict__``) as an instance of a subclass of its class with ``methods``."""
    base = type(obj)
    counting_class = type(f"Counted{base.__name__}", (base,), {"__module__": base.__module__, **methods})
    clone = object.__new__(counting_class)
    clone.__dict__.update(obj.__dict__)
    return clone


class _NonFinite(Exception):
    pass


def _peak_mem_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    # CPU: the process's resident-set high-water mark (Linux reports KiB).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_cell(cell: Cell) -> CellResult:
    """Run one cell: every image of its dataset through its operator, noise and solver.

    A solver that raises (``restore.SolverDiverged`` or anything else) or returns NaN/inf gives a
    row with status ``diverged`` or ``failed`` and the error text; the exception stops here.
    """
    s = cell.spec
    device, search_dir = s["device"], cell.search_dir
    prior = load_prior(json.dumps(s["prior"], sort_keys=True), search_dir, device)
    images = load_dataset(json.dumps(s["dataset"], sort_keys=True), search_dir, s["limit"])
    solver = resolve("solver", s["solver"]["fn"], search_dir)
    hyper = spec_kwargs(s["solver"], reserved=("baseline", "samples", "best_of", "best_by"))
    noise = noise_model(s["noise"], search_dir)
    metrics_fn = metrics_function(s["metrics"], search_dir) if s["mode"] == "image" else None
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    rows, artifacts, status, error = [], {}, "ok", None
    features = _set_features(s)
    try:
        for index, (name, x, sample) in enumerate(images):
            rows.append(_run_image(cell, prior, solver, hyper, noise, metrics_fn, index, name, x,
                                   sample, artifacts, features))
    except MissingResource:
        raise
    except Exception as err:  # noqa: BLE001 - any solver failure is a result, not a crash
        status = "diverged" if _is_divergence(err) else "failed"
        error = "".join(traceback.format_exception_only(type(err), err)).strip()
        error += "\n" + "".join(traceback.format_tb(err.__traceback__)[-3:])
    row = _row(cell, status, error, rows, _peak_mem_mb(device))
    if features is not None and status == "ok":
        row["metrics"] |= features.scores()
    return CellResult(row, rows, artifacts)


def lost_result(cell: Cell, error: str) -> CellResult:
    """The ``failed`` result of a cell that returned nothing: its worker process died (killed,
    out of memory, a crash in native code) as many times as the executor retries it."""
    return CellResult(_row(cell, "failed", error, [], None), [], {})


def _row(cell: Cell, status: str, error: str | None, rows: list[dict[str, Any]],
         peak_mem_mb: float | None) -> dict[str, Any]:
    s = cell.spec
    return dict(key=cell.key, suite=cell.suite, config_hash=cell.config_hash, task=cell.task,
                prior=cell.prior, dataset=cell.dataset, operator=cell.operator, solver=cell.solver,
                seed=cell.seed, status=status, error=error, spec=s, versions=versions(),
                device=s["device"], dtype=s["dtype"], metrics=summarise([r["metrics"] for r in rows]),
                wall_s=_mean([r["wall_s"] for r in rows]), nfe=_mean([r["nfe"] for r in rows]),
                peak_mem_mb=peak_mem_mb)


def _is_divergence(err: Exception) -> bool:
    if isinstance(err, _NonFinite):
        return True
    # by name: a user's solver may raise its own SolverDiverged, and restore may not import
    return any(t.__name__ == "SolverDiverged" for t in type(err).__mro__)


def _solve(cell: Cell, prior: Any, solver: Callable, hyper: dict, noise: Any, op: Any,
           y: torch.Tensor, g: torch.Generator, samples: int = 1) -> tuple[torch.Tensor, float, float, float]:
    """Run the solver on one measurement ``y`` (batch 1); returns ``(x_hat, wall seconds, NFE per
    sample, forward-model evaluations per sample)`` (:func:`counted`, :func:`counted_operator`). With
    ``samples > 1`` they come from :func:`restore.posterior`: one generator per sample drawn from
    ``g`` (so sample k does not depend on how many are drawn), or one particle cloud for an SMC
    solver; ``x_hat`` is then ``(samples, *shape)``."""
    counted_prior, nfe = counted(prior)
    op, op_counts = counted_operator(op)
    device, dtype = cell.spec["device"], cell.spec["dtype"]
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16,
                              enabled=dtype == "bfloat16")
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with autocast:
        if samples == 1:
            x_hat = solver(counted_prior, op, y, noise, generator=g, **hyper)
        else:
            from restore import posterior
            x_hat = posterior(solver, counted_prior, op, y, noise, n=samples, generator=g, **hyper)[0][:, 0]
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    x_hat = x_hat.detach().float()
    if not torch.isfinite(x_hat).all():
        raise _NonFinite(f"solver {cell.solver!r} returned NaN or inf")
    return x_hat, wall, nfe[0] / samples, sum(op_counts.values()) / samples


def _run_image(cell: Cell, prior: Any, solver: Callable, hyper: dict, noise: Any,
               metrics_fn: Callable | None, index: int, name: str, x: torch.Tensor, sample: Any,
               artifacts: dict[str, bytes], features: "_SetFeatures | None" = None) -> dict[str, Any]:
    s = cell.spec
    device = s["device"]
    op_seed = (cell.suite, cell.dataset, cell.operator, cell.seed, name)
    op = build_operator(s["operator"], tuple(x.shape),
                        seeded_generator("cpu", *op_seed, "operator"), cell.search_dir, device,
                        sample)
    x = x.unsqueeze(0).to(device)
    y = noise(op(x), generator=seeded_generator(device, *op_seed, "noise"))
    g = seeded_generator(device, cell.suite, cell.dataset, cell.seed, name, "solver")
    if s["mode"] == "posterior":
        return _posterior_image(cell, prior, solver, hyper, noise, op, x, y, g, name)
    samples = int(s["solver"].get("samples", 1))
    best_of = _best_of(s["solver"])
    x_hat, wall, nfe, nfe_op = _solve(cell, prior, solver, hyper, noise, op, y, g, best_of or samples)
    if best_of:
        metrics, best = _best_of_metrics(x_hat, x, op, y, metrics_fn, s["solver"].get("best_by", "psnr"))
        x_hat = x_hat[best:best + 1]  # the image saved: the best sample by best_by
    mean = x_hat.mean(0, keepdim=True)
    std = x_hat.std(0, keepdim=True) if samples > 1 else None
    if not best_of:
        metrics = {k: _float(v) for k, v in metrics_fn(mean, x, op, y).items()}
    metrics["nfe_op"] = nfe_op
    if features is not None:
        features.add(x, mean)
    if x_hat.shape[0] > 1 and not getattr(solver, "point_estimate", False):  # samples: K, a sampler
        metrics |= _uncertainty(("pixel_coverage_90", "ause"), x_hat, x[0])
    if index < s["save_images"]:
        artifacts.update(image_artifacts(cell, name, x[0], y[0], mean[0],
                                         None if std is None else std[0]))
    return dict(image=name, metrics=metrics, wall_s=wall, nfe=nfe)


def _posterior_image(cell: Cell, prior: Any, solver: Callable, hyper: dict, noise: Any, op: Any,
                     x: torch.Tensor, y: torch.Tensor, g: torch.Generator, name: str) -> dict:
    """Exact-posterior mode: ``n`` solver samples against ``n`` exact posterior samples.

    ``sw`` is the sliced 2-Wasserstein distance to the exact sample, ``sw_floor`` the same distance
    between two exact samples of that size (what a perfect sampler scores), ``sw_prior`` the same
    distance from ``n`` prior samples (what a sampler that ignores ``y`` scores: with ``sw_floor`` it
    scales ``sw`` into the share of the prior-to-posterior distance left, ``(sw - sw_floor) /
    (sw_prior - sw_floor)``, MCGDiff's testbed measure; the report tables it), ``mean_err`` the RMS
    error of the sample mean against the exact posterior mean, ``std_ratio`` the mean marginal std
    of the solver over that of the exact posterior (1 is right; below 1: overconfident).
    ``coverage_50`` / ``coverage_90``: the fraction of the true coordinates inside the solver's central
    credible intervals (none for a point estimator); ``exact_coverage_50`` / ``_90`` the same for the
    exact reference sample (what a calibrated sampler covers with ``n`` samples, when the dataset draws
    ``x`` from the prior, as ``gmm_points`` does)."""
    from priors import sliced_wasserstein
    n = cell.spec["posterior_samples"]
    device = cell.spec["device"]
    samples, wall, nfe, _ = _solve(cell, prior, solver, hyper, noise, op, y, g, n)
    exact = prior.posterior(op, y, noise)
    ref_seed = (cell.suite, cell.dataset, cell.operator, cell.seed, name)
    reference = exact.sample(n, generator=seeded_generator(device, *ref_seed, "reference")).float()
    floor_set = exact.sample(n, generator=seeded_generator(device, *ref_seed, "floor")).float()
    prior_set = prior.sample(n, generator=seeded_generator(device, *ref_seed, "prior")).float()
    exact_mean = exact.mean.reshape(-1).to(samples)
    d = samples[0].numel()

    def sw(a: torch.Tensor) -> float:  # the same projections for the solver, the floor and the prior
        return sliced_wasserstein(a, reference, generator=seeded_generator("cpu", *ref_seed, "projections"))

    metrics = {
        "sw": sw(samples),
        "sw_floor": sw(floor_set),
        "sw_prior": sw(prior_set),
        "mean_err": float((samples.reshape(n, -1).mean(0) - exact_mean).norm() / math.sqrt(d)),
        "std_ratio": float(samples.std(0).mean() / reference.std(0).mean()),
    }
    coverages = ("coverage_50", "coverage_90")
    if not getattr(solver, "point_estimate", False):
        metrics |= _uncertainty(coverages, samples, x[0])
    metrics |= {f"exact_{k}": v for k, v in _uncertainty(coverages, reference, x[0]).items()}
    return dict(image=name, metrics=metrics, wall_s=wall, nfe=nfe)


class _SetFeatures:
    """The Inception features of a cell's truths and reconstructions (the best sample of a
    ``best_of`` solver, the mean of a ``samples`` one), scored at the end by its ``set_metrics``."""

    def __init__(self, names: list[str], extract: Callable, source: str):
        self.names, self.extract, self.source = names, extract, source
        self.real: list[torch.Tensor] = []
        self.fake: list[torch.Tensor] = []

    def add(self, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        self.real.append(self.extract(x))
        self.fake.append(self.extract(x_hat))

    def scores(self) -> dict[str, dict[str, Any]]:
        """``{name: {"mean": value, "std": 0, "n": images, "weights": file}}`` (two images or more)."""
        from .fid import set_metrics

        if len(self.real) < 2:
            return {}
        values = set_metrics(self.names, self.real, self.fake)
        return {k: {"mean": v, "std": 0.0, "n": len(self.real), "weights": self.source} for k, v in values.items()}


def _set_features(spec: dict[str, Any]) -> _SetFeatures | None:
    """The feature collector of a cell whose suite asks for ``set_metrics`` (FID, KID), or None: not
    asked, or no Inception weights here (a warning then says which file to put where)."""
    from . import fid

    names = list(spec.get("set_metrics") or [])
    if not names or spec["mode"] != "image":
        return None
    got = fid.inception_features(spec["device"])
    if got is None:
        warnings.warn(f"{', '.join(names)} left out: {fid.unavailable_reason()}", RuntimeWarning, stacklevel=2)
        return None
    return _SetFeatures(names, *got)


def _best_of(solver_spec: dict[str, Any]) -> int | None:
    """The ``best_of: N`` of a solver spec (N >= 2 independent samples per image), or None."""
    n = solver_spec.get("best_of")
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"best_of: expected an integer >= 2 (samples drawn per image), got {n!r}")
    if int(solver_spec.get("samples", 1)) > 1:
        raise ValueError("best_of and samples: give one (best_of scores each sample, samples their mean)")
    return n


def _best_of_metrics(x_hat: torch.Tensor, x: torch.Tensor, op: Any, y: torch.Tensor,
                     metrics_fn: Callable, best_by: str) -> tuple[dict[str, Any], int]:
    """Each metric of ``N`` independent samples ``x_hat`` (N, ...), side by side: its mean over the
    samples under the metric's name, and its best-of-N under ``"<metric>@best<N>"``.

    ``best_by``: a metric name, whose best sample gives every ``@best`` value (DPS's phase retrieval:
    the best of 4 by PSNR), or ``"each"``: every metric's own best sample (DAPS's ``eval.py``
    ``Evaluator.display``: max PSNR, max SSIM, min LPIPS, each over the runs). Also returns the index
    of the best sample by ``best_by`` (PSNR for ``"each"``), the one whose image is saved.
    """
    from .metrics import higher_is_better

    direction = higher_is_better()
    n = x_hat.shape[0]
    per_sample = [{k: _float(v) for k, v in metrics_fn(x_hat[k:k + 1], x, op, y).items()} for k in range(n)]
    key = "psnr" if best_by == "each" else best_by
    if direction.get(key) is None or any(m.get(key) is None for m in per_sample):
        raise ValueError(f"best_by: expected 'each' or a ranked metric the suite computes "
                         f"({', '.join(m for m in per_sample[0] if direction.get(m) is not None)}), got {best_by!r}")

    def best(name: str, values: list[float]) -> int:
        better = max if direction[name] else min
        return values.index(better(values))

    chosen = best(key, [m[key] for m in per_sample])
    out: dict[str, Any] = {}
    for name in per_sample[0]:
        values = [m[name] for m in per_sample]
        if any(v is None for v in values):
            out[name] = None
            continue
        out[name] = float(np.mean(values))
        if direction.get(name) is not None:
            pick = best(name, values) if best_by == "each" else chosen
            out[f"{name}@best{n}"] = values[pick]
    return out, chosen


def _uncertainty(names: tuple[str, ...], samples: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """The :data:`~benchmarks.metrics.SAMPLE_METRICS` ``names`` of ``samples`` (n, *shape) against
    ``truth`` (*shape)."""
    return {name: SAMPLE_METRICS[name].fn(samples, truth) for name in names}


def summarise(per_image: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std", "n"}}`` over images (std with ddof 0; NaN-free values only)."""
    out = {}
    for name in sorted({k for m in per_image for k in m}):
        values = np.array([m[name] for m in per_image if m.get(name) is not None], dtype=float)
        values = values[np.isfinite(values)]
        if len(values):
            out[name] = {"mean": float(values.mean()), "std": float(values.std()),
                         "n": int(len(values))}
    return out


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _float(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        v = v.detach().float().reshape(-1).tolist()
    if isinstance(v, (list, tuple)):  # per-image values of a batch of one
        if len(v) != 1:
            raise ValueError(f"metrics: expected one value per image, got {len(v)}")
        v = v[0]
    return None if v is None else float(v)

