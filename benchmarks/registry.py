"""One registry per kind of component, and the one way a suite names a component.

A suite names every component either by a registry key (``dps``, ``gaussian_blur``, ``bundled``,
``psnr``, ``natural``) or by an importable ``"module:function"`` (a module next to the suite YAML is
importable), with keyword arguments beside it. Each registry is a plain dict that lives next to
its functions; adding a component is one function in that file plus one line in that dict:

* solver: ``restore.SOLVERS`` (plus the benchmark's ``problems.SOLVERS``, the exact sampler);
  ``fn(prior, op, y, noise, *, steps, generator=None, callback=None, **hyper) -> x``.
* operator: ``benchmarks.problems.OPERATORS``;
  ``fn(shape, generator=None, sample=None, **kw) -> operator``.
* dataset: ``benchmarks.datasets.DATASETS``; ``fn(**kw) -> sequence of (name, image (C, H, W))``.
* metric: ``benchmarks.metrics.METRICS``, which also says whether higher is better;
  ``fn(x_hat, x, op, y) -> one value per image`` (or a dict of such).
* prior: ``problems.PRIORS`` (priors built by a function, ``fn(**kw) -> prior``); any other name or
  path goes to ``priors.load``.
* noise: ``NOISE_MODELS`` below; ``fn(**kw) -> noise`` with ``noise(y, generator=...)``.

Baselines are marked in the suite only, ``{fn: pinv, baseline: true}``: the report lists them first
and does not rank them.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import sys
from typing import Any, Callable, Iterable

KINDS = ("solver", "operator", "dataset", "metric", "prior", "noise")

#: noise models a suite names in ``noise: {fn: ..., **kw}`` (a number is Gaussian noise of that sigma)
NOISE_MODELS = {"gaussian": "GaussianNoise", "poisson": "PoissonNoise",
                "poisson_gaussian": "PoissonGaussianNoise"}


class BenchmarkError(Exception):
    """A suite or an option is wrong (the CLI exits with 2)."""


class MissingResource(BenchmarkError):
    """Data or a checkpoint the suite needs is not on this machine (the CLI exits with 3)."""


def registry(kind: str) -> dict[str, Callable]:
    """The registry of ``kind`` (one of :data:`KINDS`): name -> function."""
    if kind == "solver":
        import restore
        from .problems import SOLVERS
        return dict(restore.SOLVERS) | SOLVERS
    if kind == "operator":
        from .problems import OPERATORS
        return OPERATORS
    if kind == "dataset":
        from .datasets import DATASETS
        return DATASETS
    if kind == "metric":
        from .metrics import METRICS
        return {name: metric.fn for name, metric in METRICS.items()}
    if kind == "prior":
        from .problems import PRIORS
        return PRIORS
    if kind == "noise":
        import operators as ops
        return {name: getattr(ops, cls) for name, cls in NOISE_MODELS.items()}
    raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")


def import_ref(ref: str, search_dir: str | None = None) -> Callable:
    """``"package.module:function"`` -> the function. ``search_dir`` (the suite's folder) is
    importable too, so a ``my_ops.py`` next to a suite YAML is found as ``my_ops:function``."""
    module_name, _, attr = ref.partition(":")
    if search_dir and search_dir not in sys.path:
        sys.path.insert(0, search_dir)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BenchmarkError(f"cannot import {module_name!r} for {ref!r}: {err}") from err
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BenchmarkError(f"{module_name!r} has no {attr!r} (from {ref!r})")
        obj = getattr(obj, part)
    return obj


def resolve(kind: str, name: str, search_dir: str | None = None) -> Callable:
    """A registry key or ``module:function`` -> the callable. A prior name that is not in the
    registry goes to ``priors.load`` (bundled priors, checkpoint paths)."""
    if ":" in name:
        return import_ref(name, search_dir)
    table = registry(kind)
    if name in table:
        return table[name]
    if kind == "prior":
        import priors
        return functools.partial(priors.load, name)
    raise BenchmarkError(f"unknown {kind} {name!r}: use 'module:function' or one of "
                         f"{', '.join(sorted(table))}")


def call_accepted(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` dropping keyword arguments it does not take (user functions may omit
    ``generator``) unless it takes ``**kwargs``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(*args, **kwargs)
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)


def spec_kwargs(spec: dict[str, Any], reserved: Iterable[str] = ()) -> dict[str, Any]:
    """A component spec's keyword arguments: everything but ``fn`` and the ``reserved`` keys."""
    return {k: v for k, v in spec.items() if k != "fn" and k not in reserved}


def noise_model(noise: Any, search_dir: str | None = None) -> Any:
    """A number is Gaussian noise of that sigma (image units); a mapping names a model:
    ``{fn: poisson, gain: 0.01}`` or ``{fn: "my_module:my_noise", ...}``."""
    if not isinstance(noise, dict):
        import operators as ops
        return ops.GaussianNoise(float(noise))
    if ":" not in noise["fn"] and noise["fn"] not in NOISE_MODELS:
        raise BenchmarkError(f"noise: unknown model {noise['fn']!r}; use one of "
                             f"{', '.join(NOISE_MODELS)} or 'module:function'")
    return resolve("noise", noise["fn"], search_dir)(**spec_kwargs(noise))
