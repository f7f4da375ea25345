"""One cell's work: every image of its dataset through its operator, noise and solver.

:func:`run_cell` is a pure task, ``Cell -> CellResult``: it builds prior, images, operator and
noise from the cell's specs, runs the solver on each image, counts denoiser evaluations (NFE),
scores the result and returns the stored row, the per-image rows and small artifacts (PNG/NPZ
bytes). It touches no file and no database, so any executor (``map``, a process pool, Ray's
``map``) can run it; :mod:`benchmarks.runner` alone writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from .artifacts import image_artifacts
from .build import build_operator, load_dataset, load_prior, metrics_function
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
    each batch it denoises (so SMC particles count, and a batch of k samples counts k); it keeps
    the prior's class (as a subclass) for ``isinstance``. Returns ``(copy, counter)``."""
    counter = [0]
    base = type(prior)
    original = base.denoise if hasattr(base, "denoise") else None

    def denoise(self, x, sigma, *args, **kwargs):
        counter[0] += x.shape[0] if x.ndim else 1
        return original(self, x, sigma, *args, **kwargs)

    counting = type(f"Counted{base.__name__}", (base,), {
        "denoise": denoise,
        "__call__": lambda self, *a, **k: self.denoise(*a, **k),
        "__module__": base.__module__})
    clone = object.__new__(counting)
    clone.__dict__.update(prior.__dict__)
    return clone, counter


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
    hyper = spec_kwargs(s["solver"], reserved=("baseline", "samples"))
    noise = noise_model(s["noise"], search_dir)
    metrics_fn = metrics_function(s["metrics"], search_dir) if s["mode"] == "image" else None
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    rows, artifacts, status, error = [], {}, "ok", None
    try:
        for index, (name, x, sample) in enumerate(images):
            rows.append(_run_image(cell, prior, solver, hyper, noise, metrics_fn, index, name, x,
                                   sample, artifacts))
    except MissingResource:
        raise
    except Exception as err:  # noqa: BLE001 - any solver failure is a result, not a crash
        status = "diverged" if _is_divergence(err) else "failed"
        error = "".join(traceback.format_exception_only(type(err), err)).strip()
        error += "\n" + "".join(traceback.format_tb(err.__traceback__)[-3:])
    row = dict(key=cell.key, suite=cell.suite, config_hash=cell.config_hash, task=cell.task,
               prior=cell.prior, dataset=cell.dataset, operator=cell.operator, solver=cell.solver,
               seed=cell.seed, status=status, error=error, spec=s, versions=versions(),
               device=device, dtype=s["dtype"], metrics=summarise([r["metrics"] for r in rows]),
               wall_s=_mean([r["wall_s"] for r in rows]), nfe=_mean([r["nfe"] for r in rows]),
               peak_mem_mb=_peak_mem_mb(device))
    return CellResult(row, rows, artifacts)


def _is_divergence(err: Exception) -> bool:
    if isinstance(err, _NonFinite):
        return True
    # by name: a user's solver may raise its own SolverDiverged, and restore may not import
    return any(t.__name__ == "SolverDiverged" for t in type(err).__mro__)


def _solve(cell: Cell, prior: Any, solver: Callable, hyper: dict, noise: Any, op: Any,
           y: torch.Tensor, g: torch.Generator, samples: int = 1) -> tuple[torch.Tensor, float, float]:
    """Run the solver on one measurement ``y`` (batch 1); returns ``(x_hat, wall seconds, NFE per
    sample)``. With ``samples > 1`` they come from :func:`restore.posterior`: one generator per sample
    drawn from ``g`` (so sample k does not depend on how many are drawn), or one particle cloud for
    an SMC solver; ``x_hat`` is then ``(samples, *shape)``."""
    counted_prior, nfe = counted(prior)
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
    return x_hat, wall, nfe[0] / samples


def _run_image(cell: Cell, prior: Any, solver: Callable, hyper: dict, noise: Any,
               metrics_fn: Callable | None, index: int, name: str, x: torch.Tensor, sample: Any,
               artifacts: dict[str, bytes]) -> dict[str, Any]:
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
    x_hat, wall, nfe = _solve(cell, prior, solver, hyper, noise, op, y, g, samples)
    mean = x_hat.mean(0, keepdim=True)
    std = x_hat.std(0, keepdim=True) if samples > 1 else None
    metrics = {k: _float(v) for k, v in metrics_fn(mean, x, op, y).items()}
    if index < s["save_images"]:
        artifacts.update(image_artifacts(cell, name, x[0], y[0], mean[0],
                                         None if std is None else std[0]))
    return dict(image=name, metrics=metrics, wall_s=wall, nfe=nfe)


def _posterior_image(cell: Cell, prior: Any, solver: Callable, hyper: dict, noise: Any, op: Any,
                     x: torch.Tensor, y: torch.Tensor, g: torch.Generator, name: str) -> dict:
    """Exact-posterior mode: ``n`` solver samples against ``n`` exact posterior samples.

    ``sw`` is the sliced 2-Wasserstein distance to the exact sample, ``sw_floor`` the same distance
    between two exact samples of that size (what a perfect sampler scores), ``mean_err`` the RMS
    error of the sample mean against the exact posterior mean, ``std_ratio`` the mean marginal std
    of the solver over that of the exact posterior (1 is right; below 1: overconfident)."""
    from priors import sliced_wasserstein
    n = cell.spec["posterior_samples"]
    device = cell.spec["device"]
    samples, wall, nfe = _solve(cell, prior, solver, hyper, noise, op, y, g, n)
    exact = prior.posterior(op, y, noise)
    ref_seed = (cell.suite, cell.dataset, cell.operator, cell.seed, name)
    reference = exact.sample(n, generator=seeded_generator(device, *ref_seed, "reference")).float()
    floor_set = exact.sample(n, generator=seeded_generator(device, *ref_seed, "floor")).float()
    proj = seeded_generator("cpu", *ref_seed, "projections")
    exact_mean = exact.mean.reshape(-1).to(samples)
    d = samples[0].numel()
    # the same projections for the solver and for the floor, so the two are comparable
    metrics = {
        "sw": sliced_wasserstein(samples, reference, generator=proj),
        "sw_floor": sliced_wasserstein(floor_set, reference,
                                       generator=seeded_generator("cpu", *ref_seed, "projections")),
        "mean_err": float((samples.reshape(n, -1).mean(0) - exact_mean).norm() / math.sqrt(d)),
        "std_ratio": float(samples.std(0).mean() / reference.std(0).mean()),
    }
    return dict(image=name, metrics=metrics, wall_s=wall, nfe=nfe)


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

