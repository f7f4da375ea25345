"""Benchmark grids: suites in, one stored row per cell out.

A *suite* (YAML, see ``benchmarks/suites/``) lists tasks; a task pairs a prior and a dataset with
operators and solvers. The grid is every ``dataset x operator x solver x seed`` of every task, and
each point of it is a :class:`Cell`: a plain, picklable description (JSON specs, no objects).

The work and the scheduling are apart:

* :func:`run_cell` is a pure task, ``Cell -> CellResult``: it builds prior, images, operator and
  noise from the cell's specs, runs the solver on each image, and returns the stored row, the
  per-image rows and small artifacts (PNG/NPZ bytes). It touches no file and no database, so any
  executor (``map``, a process pool, Ray's ``map``) can run it.
* :func:`run` is the scheduler: expand the grid, skip finished cells, claim the others in the
  store, feed them to the executor, write each result (artifacts atomically, then one row in one
  transaction) as it arrives.

Components are named in a suite either by registry name (``dps``, ``phantoms``, ``gaussian_blur``)
or by an importable ``"module:function"`` with keyword arguments, so a user benchmarks their own
operator, solver or dataset without touching this package (``benchmarks/suites/example_custom.yaml``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import io
import json
import math
import os
import platform
import re
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import yaml

from priors.files import write_bytes_atomic
from .store import Store

SUITES_DIR = Path(__file__).with_name("suites")
DEFAULT_METRICS = "benchmarks.metrics:compute_metrics"
BASELINE_NAMES = ("pinv", "tv", "fbp", "zero_filled", "zerofilled", "adjoint")


class BenchmarkError(Exception):
    """A suite or an option is wrong (the CLI exits with 2)."""


class MissingResource(BenchmarkError):
    """Data or a checkpoint the suite needs is not on this machine (the CLI exits with 3)."""


# --------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------
def available_suites() -> dict[str, str]:
    """Bundled suites: name -> one-line description."""
    out = {}
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        out[path.stem] = " ".join(str(doc.get("description", "")).split())
    return out


def suite_path(name_or_path: str) -> Path:
    """A bundled suite's file by name, or the given YAML path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise BenchmarkError(f"suite file {path} does not exist")
        return path
    bundled = SUITES_DIR / f"{name_or_path}.yaml"
    if not bundled.exists():
        names = ", ".join(available_suites())
        raise BenchmarkError(f"unknown suite {name_or_path!r}: give a YAML path or one of {names}")
    return bundled


def _substitute(value: Any, variables: dict[str, str | None], missing: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, variables, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, missing) for v in value]
    if isinstance(value, str):
        def repl(match: re.Match) -> str:
            name = match.group(1)
            if variables.get(name) is None:
                missing.add(name)
                return match.group(0)
            return str(variables[name])
        return re.sub(r"\$\{(\w+)\}", repl, value)
    return value


def load_suite(name_or_path: str, *, data: str | None = None,
               checkpoint: str | None = None) -> dict[str, Any]:
    """Read a suite and fill in ``${data}`` and ``${checkpoint}``.

    ``${checkpoint}`` defaults to the suite's own ``checkpoint:`` entry.

    :raises MissingResource: the suite needs ``--data`` and none was given, or the path is absent.
    """
    path = suite_path(name_or_path)
    try:
        suite = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise BenchmarkError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(suite, dict) or "tasks" not in suite:
        raise BenchmarkError(f"{path}: a suite is a mapping with a 'tasks' list")
    suite.setdefault("name", path.stem)
    suite["_dir"] = str(path.parent.resolve())
    missing: set[str] = set()
    variables = {"data": data, "checkpoint": checkpoint or suite.get("checkpoint")}
    suite["tasks"] = _substitute(suite["tasks"], variables, missing)
    for section in ("datasets", "operators", "solvers", "priors"):
        if section in suite:
            suite[section] = _substitute(suite[section], variables, missing)
    if "data" in missing:
        help_text = " ".join(str(suite.get("data_help", "")).split())
        raise MissingResource(f"suite {suite['name']!r} needs its data: pass --data PATH. {help_text}")
    if data is not None and not Path(data).exists():
        raise MissingResource(f"--data {data}: no such file or folder")
    if missing:
        raise BenchmarkError(f"suite {suite['name']!r}: no value for ${{{'}, ${'.join(missing)}}}")
    return suite


def _spec(ref: Any, definitions: dict[str, Any], what: str) -> tuple[str, dict[str, Any]]:
    """``(label, {"fn": ..., **kwargs})`` from a label, a ``module:function`` or a mapping."""
    if isinstance(ref, str):
        spec = definitions.get(ref, {"fn": ref})
        spec = {"fn": spec} if isinstance(spec, str) else dict(spec)
        spec.setdefault("fn", ref)
        return ref, spec
    if isinstance(ref, dict):
        if "fn" in ref:
            spec = dict(ref)
            return str(spec.pop("label", spec["fn"])), spec
        if len(ref) == 1:  # {label: {fn: ..., kw: ...}}
            (label, spec), = ref.items()
            spec = {"fn": label} if spec is None else dict(spec)
            spec.setdefault("fn", label)
            return str(label), spec
    raise BenchmarkError(f"{what}: expected a name, 'module:function' or a mapping with 'fn', got {ref!r}")


def _specs(refs: Any, definitions: dict[str, Any], what: str) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(refs, dict):
        refs = [{k: v} for k, v in refs.items()]
    if not isinstance(refs, list) or not refs:
        raise BenchmarkError(f"{what}: expected a non-empty list or mapping, got {refs!r}")
    return [_spec(r, definitions, what) for r in refs]


# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One grid point. ``spec`` is JSON and determines the result; ``key`` hashes it."""

    suite: str
    config_hash: str
    task: int
    prior: str
    dataset: str
    operator: str
    solver: str
    seed: int
    spec: dict = field(hash=False, compare=False)
    key: str = ""
    search_dir: str = ""  # the suite file's folder, importable for "module:function" (not hashed)

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.operator}/{self.solver}/seed{self.seed}"


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def expand(suite: dict[str, Any], *, limit: int | None = None, solvers: Sequence[str] | None = None,
           device: str = "cpu", dtype: str = "float32") -> list[Cell]:
    """The grid of ``suite`` as cells, in suite order (task, dataset, operator, solver, seed).

    :param limit: at most this many images per dataset.
    :param solvers: keep only these solver labels (an unknown label is an error).
    """
    seeds = suite.get("seeds", [0])
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    defs = {s: suite.get(s, {}) or {} for s in ("datasets", "operators", "solvers", "priors")}
    cells, labels = [], set()
    config_hash = _hash({k: v for k, v in suite.items() if k != "_dir"}
                        | {"limit": limit, "solvers": solvers, "device": device, "dtype": dtype})
    for t, task in enumerate(suite["tasks"]):
        where = f"suite {suite['name']!r} task {t}"
        if not isinstance(task, dict):
            raise BenchmarkError(f"{where}: expected a mapping")
        for required in ("prior", "dataset", "operators", "solvers"):
            if required not in task:
                raise BenchmarkError(f"{where}: missing {required!r}")
        prior_label, prior_spec = _spec(task["prior"], defs["priors"], f"{where} prior")
        weights = _weights_fingerprint(prior_spec, suite["_dir"])
        dataset_label, dataset_spec = _spec(task["dataset"], defs["datasets"], f"{where} dataset")
        dataset_limit = dataset_spec.pop("limit", None)
        if limit is not None:
            dataset_limit = limit if dataset_limit is None else min(int(dataset_limit), limit)
        noise = task.get("noise", suite.get("noise", 0.0))
        mode = task.get("mode", suite.get("mode", "image"))
        if mode not in ("image", "posterior"):
            raise BenchmarkError(f"{where}: mode must be 'image' or 'posterior', got {mode!r}")
        for op_label, op_spec in _specs(task["operators"], defs["operators"], f"{where} operators"):
            op_noise = op_spec.pop("noise", noise)
            for sol_label, sol_spec in _specs(task["solvers"], defs["solvers"], f"{where} solvers"):
                labels.add(sol_label)
                if solvers is not None and sol_label not in solvers:
                    continue
                for seed in seeds:
                    spec = {
                        "suite": suite["name"], "mode": mode,
                        "prior": prior_spec, "weights": weights,
                        "dataset": dataset_spec, "limit": dataset_limit,
                        "operator": op_spec, "noise": op_noise, "solver": sol_spec,
                        "seed": seed, "device": device, "dtype": dtype,
                        "metrics": task.get("metrics", suite.get("metrics", DEFAULT_METRICS)),
                        "posterior_samples": int(task.get("posterior_samples", 256)),
                        "save_images": int(task.get("save_images", suite.get("save_images", 2))),
                        "labels": [prior_label, dataset_label, op_label, sol_label],
                    }
                    cells.append(Cell(suite["name"], config_hash, t, prior_label, dataset_label,
                                      op_label, sol_label, seed, spec, _hash(spec),
                                      suite["_dir"]))
    if solvers is not None:
        unknown = sorted(set(solvers) - labels)
        if unknown:
            raise BenchmarkError(f"--solvers: {', '.join(unknown)} not in suite "
                                 f"{suite['name']!r} (it has {', '.join(sorted(labels))})")
    return cells


@functools.lru_cache(maxsize=32)
def _file_fingerprint(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a weights file (files over 1 GB: size and mtime only, to stay quick)."""
    if size > 2**30:
        return f"size={size},mtime={mtime_ns}"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _weights_fingerprint(spec: dict[str, Any], search_dir: str) -> str | None:
    """A fingerprint of the prior's weights file, part of the cell key: retrained or replaced
    weights make new cells instead of being skipped as finished. None for priors built by a
    function (their keyword arguments are in the key already)."""
    name = spec["fn"]
    if ":" in name or len(spec) > 1:
        return None
    candidates = [Path(name).expanduser(), Path(search_dir) / name]
    try:
        prior_load = importlib.import_module("priors.load")
        candidates.insert(0, Path(prior_load.WEIGHTS_DIR) / f"{name}.safetensors")
        known = getattr(prior_load, "KNOWN", {}).get(name)
        if known is not None and getattr(known, "sha256", None):
            return known.sha256[:16]
        if known is not None:
            candidates.insert(0, prior_load.default_cache_dir() / known.filename)
    except ImportError:
        pass
    for path in candidates:
        if path.is_file():
            stat = path.stat()
            return _file_fingerprint(path, stat.st_size, stat.st_mtime_ns)
    return None


# --------------------------------------------------------------------------------------------
# Resolving names to objects (cached per process: a worker loads a prior once)
# --------------------------------------------------------------------------------------------
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


def _registry(kind: str) -> dict[str, Callable]:
    from .components import OPERATORS, exact_posterior, gmm_points, gmm_prior
    if kind == "operator":
        return OPERATORS
    if kind == "solver":
        import restore
        return dict(getattr(restore, "SOLVERS", {})) | {"exact": exact_posterior}
    if kind == "dataset":
        from . import datasets
        return dict(datasets.DATASETS) | {"gmm_points": gmm_points}
    if kind == "prior":
        return {"gmm": gmm_prior}
    raise ValueError(kind)


def resolve(kind: str, name: str, search_dir: str | None = None) -> Callable:
    """A registry name or ``module:function`` -> the callable (``kind``: operator, solver,
    dataset, prior, metrics)."""
    if ":" in name:
        return import_ref(name, search_dir)
    if kind == "prior":
        registry = _registry("prior")
        if name in registry:
            return registry[name]
        import priors
        return functools.partial(priors.load, name)
    registry = _registry(kind)
    if name not in registry:
        raise BenchmarkError(f"unknown {kind} {name!r}: use 'module:function' or one of "
                             f"{', '.join(sorted(registry))}")
    return registry[name]


def _call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` dropping keyword arguments it does not take (user functions may omit
    ``generator``) unless it takes ``**kwargs``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(*args, **kwargs)
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)


def _kwargs(spec: dict[str, Any], reserved: Iterable[str] = ()) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "fn" and k not in reserved}


@functools.lru_cache(maxsize=8)
def _load_prior(spec_json: str, search_dir: str, device: str) -> Any:
    spec = json.loads(spec_json)
    try:
        # priors.load(name, device=...) puts the network on the device
        return _call(resolve("prior", spec["fn"], search_dir), device=device, **_kwargs(spec))
    except FileNotFoundError as err:
        raise MissingResource(f"prior {spec['fn']!r}: {err} (a suite's checkpoint can also be "
                              "given as --checkpoint PATH)") from err


@functools.lru_cache(maxsize=8)
def _load_dataset(spec_json: str, search_dir: str, limit: int | None) -> list[tuple[str, torch.Tensor, Any]]:
    spec = json.loads(spec_json)
    loader = resolve("dataset", spec["fn"], search_dir)
    try:
        items = loader(**_kwargs(spec))
        out = []
        for item in items:
            name, image = item  # a (name, image) pair or a datasets.Sample (which unpacks so)
            out.append((str(name), torch.as_tensor(image, dtype=torch.float32), item))
            if limit is not None and len(out) >= limit:
                break
    except FileNotFoundError as err:
        raise MissingResource(f"dataset {spec['fn']!r}: {err}") from err
    if not out:
        raise MissingResource(f"dataset {spec['fn']!r} with {_kwargs(spec)} has no images")
    return out


def prepare(cells: Sequence[Cell]) -> None:
    """Load every prior and dataset and resolve every function the cells name, so that a
    missing checkpoint, missing data or a typo stops the run before any cell starts."""
    seen = set()
    for cell in cells:
        s, where = cell.spec, cell.search_dir
        for kind, spec in (("operator", s["operator"]), ("solver", s["solver"])):
            if (kind, spec["fn"]) not in seen:
                resolve(kind, spec["fn"], where)
                seen.add((kind, spec["fn"]))
        if s["metrics"] not in seen:
            if s["mode"] == "image":
                import_ref(s["metrics"], where)
            seen.add(s["metrics"])
        _load_dataset(json.dumps(s["dataset"], sort_keys=True), where, s["limit"])
        _load_prior(json.dumps(s["prior"], sort_keys=True), where, s["device"])


# --------------------------------------------------------------------------------------------
# The work: one cell
# --------------------------------------------------------------------------------------------
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


def generator(device: str, *parts: Any) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed_for(*parts))
    return g


class _Counted:
    """Counts denoiser evaluations (NFE) of a prior, keeping its class for ``isinstance``."""

    @staticmethod
    def wrap(prior: Any) -> tuple[Any, list[int]]:
        counter = [0]
        base = type(prior)
        original = base.denoise if hasattr(base, "denoise") else None

        def denoise(self, x, sigma, *args, **kwargs):
            counter[0] += 1
            return original(self, x, sigma, *args, **kwargs)

        counted = type(f"Counted{base.__name__}", (base,), {
            "denoise": denoise,
            "__call__": lambda self, *a, **k: self.denoise(*a, **k),
            "__module__": base.__module__})
        clone = object.__new__(counted)
        clone.__dict__.update(prior.__dict__)
        return clone, counter


class _NonFinite(Exception):
    pass


NOISE_MODELS = {"gaussian": "GaussianNoise", "poisson": "PoissonNoise",
                "poisson_gaussian": "PoissonGaussianNoise"}


def _noise_model(noise: Any, search_dir: str) -> Any:
    """A number is Gaussian noise of that sigma (image units); a mapping names a model:
    ``{fn: poisson, gain: 0.01}`` or ``{fn: "my_module:my_noise", ...}``."""
    import operators as ops
    if not isinstance(noise, dict):
        return ops.GaussianNoise(float(noise))
    if ":" in noise["fn"]:
        return import_ref(noise["fn"], search_dir)(**_kwargs(noise))
    if noise["fn"] not in NOISE_MODELS:
        raise BenchmarkError(f"noise: unknown model {noise['fn']!r}; use one of "
                             f"{', '.join(NOISE_MODELS)} or 'module:function'")
    return getattr(ops, NOISE_MODELS[noise["fn"]])(**_kwargs(noise))


def _peak_mem_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    # CPU: the process's resident-set high-water mark (Linux reports KiB).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _build_operator(spec: dict[str, Any], shape: tuple[int, ...], g: torch.Generator,
                    search_dir: str, device: str, sample: Any = None) -> Any:
    """``factory(shape, generator=g, sample=..., **kwargs)``; ``generator`` and ``sample`` (the
    dataset item, e.g. an MRI slice with its k-space) are passed only to factories taking them."""
    op = _call(resolve("operator", spec["fn"], search_dir), shape, generator=g, sample=sample,
               **_kwargs(spec))
    if device != "cpu" and hasattr(op, "to"):
        op = op.to(device=device)
    return op


def run_cell(cell: Cell) -> CellResult:
    """Run one cell: every image of its dataset through its operator, noise and solver.

    A solver that raises (``restore.SolverDiverged`` or anything else) or returns NaN/inf gives a
    row with status ``diverged`` or ``failed`` and the error text; the exception stops here.
    """
    s = cell.spec
    device, search_dir = s["device"], cell.search_dir
    prior = _load_prior(json.dumps(s["prior"], sort_keys=True), search_dir, device)
    images = _load_dataset(json.dumps(s["dataset"], sort_keys=True), search_dir, s["limit"])
    solver = resolve("solver", s["solver"]["fn"], search_dir)
    hyper = _kwargs(s["solver"], reserved=("baseline", "samples"))
    noise = _noise_model(s["noise"], search_dir)
    metrics_fn = import_ref(s["metrics"], search_dir) if s["mode"] == "image" else None
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
           y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, float, int]:
    """Run the solver once; returns (x_hat, wall seconds, denoiser evaluations)."""
    counted, nfe = _Counted.wrap(prior)
    device, dtype = cell.spec["device"], cell.spec["dtype"]
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16,
                              enabled=dtype == "bfloat16")
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with autocast:
        x_hat = solver(counted, op, y, noise, generator=g, **hyper)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    x_hat = x_hat.detach().float()
    if not torch.isfinite(x_hat).all():
        raise _NonFinite(f"solver {cell.solver!r} returned NaN or inf")
    return x_hat, wall, nfe[0]


def _run_image(cell: Cell, prior: Any, solver: Callable, hyper: dict, noise: Any,
               metrics_fn: Callable | None, index: int, name: str, x: torch.Tensor, sample: Any,
               artifacts: dict[str, bytes]) -> dict[str, Any]:
    s = cell.spec
    device = s["device"]
    op_seed = (cell.suite, cell.dataset, cell.operator, cell.seed, name)
    op = _build_operator(s["operator"], tuple(x.shape), generator("cpu", *op_seed, "operator"),
                         cell.search_dir, device, sample)
    x = x.unsqueeze(0).to(device)
    y = noise(op(x), generator=generator(device, *op_seed, "noise"))
    g = generator(device, cell.suite, cell.dataset, cell.seed, name, "solver")
    folder = _image_folder(cell, name)
    save = index < s["save_images"]
    if s["mode"] == "posterior":
        return _posterior_image(cell, prior, solver, hyper, noise, op, x, y, g, name)
    samples = int(s["solver"].get("samples", 1))
    y_batch = y.expand(samples, *y.shape[1:]) if samples > 1 else y
    x_hat, wall, nfe = _solve(cell, prior, solver, hyper, noise, op, y_batch, g)
    mean = x_hat.mean(0, keepdim=True)
    std = x_hat.std(0, keepdim=True) if samples > 1 else None
    metrics = {k: _float(v) for k, v in metrics_fn(mean, x, op, y).items()}
    if save:
        artifacts[f"{folder}/truth.png"] = png(x[0])
        shown = _measurement_display(y[0], x[0])
        if shown is not None:
            artifacts[f"{folder}/measurement.png"] = shown
        artifacts[f"{folder}/{_safe(cell.solver)}.png"] = png(mean[0])
        arrays = {"x_hat": mean[0].cpu().numpy()}
        if std is not None:
            artifacts[f"{folder}/{_safe(cell.solver)}_std.png"] = png(std[0], normalise=True)
            arrays["std"] = std[0].cpu().numpy()
        artifacts[f"{folder}/{_safe(cell.solver)}.npz"] = npz(**arrays)
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
    samples, wall, nfe = _solve(cell, prior, solver, hyper, noise, op,
                                y.expand(n, *y.shape[1:]), g)
    exact = prior.posterior(op, y, noise)
    ref_seed = (cell.suite, cell.dataset, cell.operator, cell.seed, name)
    reference = exact.sample(n, generator=generator(device, *ref_seed, "reference")).float()
    floor_set = exact.sample(n, generator=generator(device, *ref_seed, "floor")).float()
    proj = generator("cpu", *ref_seed, "projections")
    exact_mean = exact.mean.reshape(-1).to(samples)
    d = samples[0].numel()
    # the same projections for the solver and for the floor, so the two are comparable
    metrics = {
        "sw": sliced_wasserstein(samples, reference, generator=proj),
        "sw_floor": sliced_wasserstein(floor_set, reference,
                                       generator=generator("cpu", *ref_seed, "projections")),
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


# --------------------------------------------------------------------------------------------
# Artifacts
# --------------------------------------------------------------------------------------------
def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label))


def _image_folder(cell: Cell, name: str) -> str:
    return "/".join(_safe(p) for p in ("images", cell.prior, cell.dataset, cell.operator,
                                       f"seed{cell.seed}", name))


def to_display(t: torch.Tensor, normalise: bool = False) -> np.ndarray | None:
    """A (H, W) or (H, W, 3) float array in [0, 1] for a tensor, or None for a 1-D vector.

    Complex data shows log-magnitude; extra leading axes (coils, channels other than 1 or 3)
    are combined by root-sum-of-squares; data outside [0, 1] is min-max scaled."""
    t = t.detach().cpu()
    if t.is_complex():
        t, normalise = torch.log1p(t.abs() / (t.abs().max() + 1e-12) * 1e3), True
    t = t.float()
    if t.ndim < 2:
        return None
    if t.ndim == 2:
        t = t[None]
    t = t.reshape(-1, *t.shape[-2:]) if t.ndim > 3 else t
    if t.shape[0] not in (1, 3):
        t, normalise = t.pow(2).sum(0, keepdim=True).sqrt(), True
    if normalise or t.min() < -0.05 or t.max() > 1.05:
        t = (t - t.min()) / (t.max() - t.min() + 1e-12)
    a = t.clamp(0, 1).numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def png(t: torch.Tensor, normalise: bool = False) -> bytes:
    from PIL import Image
    a = to_display(t, normalise)
    buf = io.BytesIO()
    Image.fromarray((a * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _measurement_display(y: torch.Tensor, x: torch.Tensor) -> bytes | None:
    return None if to_display(y) is None else png(y, normalise=y.shape != x.shape)


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v.astype(np.float32) for k, v in arrays.items()})
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions that can change a result: Python, torch, numpy, this package, its git commit."""
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "numpy": np.__version__}
    try:
        from importlib.metadata import version
        out["diffusion-restore"] = version("diffusion-restore")
    except Exception:  # noqa: BLE001 - not installed: run from a checkout
        pass
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref = (head.parent / ref[5:]).read_text().strip()
        out["git"] = ref[:12]
    except OSError:
        pass
    return out


# --------------------------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    suite: str
    out: Path
    cells: int
    skipped: int
    ran: int
    status: dict[str, int]
    wall_s: float

    @property
    def failed(self) -> int:
        return self.status.get("failed", 0) + self.status.get("diverged", 0)


def save_result(out: Path, store: Store, result: CellResult, replace: bool = False) -> bool:
    """Persist a cell: artifacts (atomically) first, then the row, so a stored row always has its
    files. Returns whether the row was written (False: another run wrote it first)."""
    for rel, data in result.artifacts.items():
        write_bytes_atomic(out / rel, data)
    return store.put(dict(result.row, replace=replace), result.images)


def _claimed(cells: Iterable[Cell], store: Store, deferred: list[Cell],
             retry_failed: bool) -> Iterator[Cell]:
    for cell in cells:
        if store.claim(cell.key, retry_failed=retry_failed):
            yield cell
        elif not store.done(cell.key, retry_failed):
            deferred.append(cell)


def run(suite: dict[str, Any], out: str | os.PathLike, *, limit: int | None = None,
        solvers: Sequence[str] | None = None, device: str = "cpu", dtype: str = "float32",
        retry_failed: bool = False, progress: bool = True, command: str = "",
        executor: Callable[[Callable, Iterable[Cell]], Iterable[CellResult]] = map,
        poll_s: float = 1.0) -> RunSummary:
    """Run the grid of ``suite`` into folder ``out`` (``out/results.sqlite`` and ``out/images``).

    Finished cells are skipped, so rerunning after a crash resumes. Cells another live run has
    claimed are left to it and waited for at the end.

    :param executor: ``executor(run_cell, cells)`` yields results; ``map`` runs them here, one
        at a time. Any mapping that returns results in any order works (a process pool, Ray).
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = Path(out)
    cells = expand(suite, limit=limit, solvers=solvers, device=device, dtype=dtype)
    prepare(cells)
    out.mkdir(parents=True, exist_ok=True)
    with Store(out / "results.sqlite") as store:
        keys = [c.key for c in cells]
        run_id = store.start_run(suite["name"], cells[0].config_hash if cells else "", keys,
                                 command)
        todo = [c for c in cells if not store.done(c.key, retry_failed)]
        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), disable=not progress,
                   desc=suite["name"], unit="cell", file=sys.stderr)
        ran = 0
        pending = todo
        while pending:
            deferred: list[Cell] = []
            for result in executor(run_cell, _claimed(pending, store, deferred, retry_failed)):
                save_result(out, store, result, replace=retry_failed)
                ran += 1
                bar.set_postfix_str(f"{result.row['solver']}: {result.row['status']}")
                bar.update(1)
            if deferred:  # held by another live run: wait for it to finish or vanish
                time.sleep(poll_s)
                bar.update(sum(store.done(c.key) for c in deferred))
                deferred = [c for c in deferred if not store.done(c.key)]
            pending = deferred
        bar.close()
        store.finish_run(run_id)
        status: dict[str, int] = {}
        for row in store.cells(keys):
            status[row["status"]] = status.get(row["status"], 0) + 1
    return RunSummary(suite["name"], out, len(cells), len(cells) - len(todo), ran, status,
                      time.perf_counter() - start)
