"""Suites: read a YAML suite, fill in its variables, and expand it into its grid of cells.

A *suite* (see ``benchmarks/suites/``) lists tasks; a task pairs a prior and a dataset with
operators and solvers. The grid is every ``dataset x operator x solver x seed`` of every task, and
each point of it is a :class:`Cell`: a plain, picklable description (JSON specs, no objects) whose
``key`` hashes everything that determines its result. Components are named as
:mod:`benchmarks.registry` says.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from .registry import BenchmarkError, MissingResource

SUITES_DIR = Path(__file__).with_name("suites")
#: the default ``metrics:`` of a suite (part of every cell's key: keep the string as it is)
DEFAULT_METRICS = "benchmarks.metrics:compute_metrics"


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
               checkpoint: str | None = None, need_data: bool = True) -> dict[str, Any]:
    """Read a suite and fill in ``${data}`` and ``${checkpoint}``.

    ``${checkpoint}`` defaults to the suite's own ``checkpoint:`` entry. ``need_data=False`` (for
    ``explain``, which reads no data) leaves a missing ``${data}`` as ``<data>``.

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
    variables = {"data": data if data is not None or need_data else "<data>",
                 "checkpoint": checkpoint or suite.get("checkpoint")}
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


def apply_overrides(suite: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """Set values in a loaded suite, in place, from ``"dotted.path=value"`` strings (``--set``).

    The path walks mappings by key and lists by index; ``*`` stands for every item of a list or
    mapping (branches without the rest of the path are skipped). The last key is created if absent
    (a solver setting the suite does not state yet). The value is read as YAML (``2``, ``0.5``,
    ``true``, ``[1, 2]``). Examples: ``solvers.dps.steps=2``, ``tasks.*.dataset.*.size=32``,
    ``tasks.0.operators.box128.size=8``. Returns ``suite``.

    :raises BenchmarkError: an assignment without ``=``, or a path that matches nothing.
    """
    for text in assignments:
        path, sep, raw = str(text).partition("=")
        keys = [k for k in path.strip().split(".") if k]
        if not sep or not keys:
            raise BenchmarkError(f"--set {text!r}: expected dotted.path=value, e.g. solvers.dps.steps=2")
        value = yaml.safe_load(raw)
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if not _assign(suite, keys, value):
            raise BenchmarkError(f"--set {text!r}: no {path!r} in suite {suite.get('name')!r}")
    return suite


def _assign(node: Any, keys: list[str], value: Any) -> bool:
    """Set ``value`` at ``keys`` under ``node``; whether any place was set."""
    key, rest = keys[0], keys[1:]
    if isinstance(node, list):
        if key == "*":
            children = list(range(len(node)))
        elif key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
            children = [int(key)]
        else:
            return False
    elif isinstance(node, dict):
        if key == "*":
            children = list(node)
        elif key in node or not rest:
            children = [key]
        else:
            return False
    else:
        return False
    if not rest:
        for child in children:
            node[child] = value
        return bool(children)
    return any([_assign(node[child], rest, value) for child in children])


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
# Official settings per operator
# --------------------------------------------------------------------------------------------
#: the official task (restore.official) of each operator factory; an operator spec may say ``task:``
OPERATOR_TASKS = {"super_resolution": "super_resolution", "inpaint_box": "inpainting_box",
                  "inpaint_random": "inpainting_random", "gaussian_blur": "gaussian_blur",
                  "motion_blur": "motion_blur", "phase_retrieval": "phase_retrieval"}


def effective_solver(sol_spec: dict[str, Any], op_label: str, task: str | None,
                     official: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """A solver's settings for one operator, and where each came from.

    Lowest to highest precedence: the official values for the operator's ``task``
    (:func:`restore.official.official_hyper`, when the suite or task says ``official: true`` and the
    official code covers that solver and task), the solver's own settings in the suite, and its
    ``per_operator: {operator label: {...}}`` overrides. Sources: the official file and key, ``suite``
    or ``suite per_operator``.
    """
    spec = {k: v for k, v in sol_spec.items() if k != "per_operator"}
    per_op = sol_spec.get("per_operator") or {}
    if not isinstance(per_op, dict) or not all(isinstance(v, dict) for v in per_op.values()):
        raise BenchmarkError(f"solver {spec.get('fn')!r}: per_operator must map operator labels to settings")
    sources = {k: "suite" for k in spec if k != "fn"}
    if official and task is not None:
        from restore.official import OFFICIAL, canonical_task, official_hyper, official_sources
        fn = str(spec["fn"])
        if fn in OFFICIAL and canonical_task(task) in OFFICIAL[fn]:
            hyper, where = official_hyper(fn, task), official_sources(fn, task)
            spec = {"fn": fn, **{k: v for k, v in hyper.items() if k not in spec}, **{k: v for k, v in spec.items() if k != "fn"}}
            sources = {**{k: where[k] for k in hyper if k not in sources}, **sources}
    for k, v in (per_op.get(op_label) or {}).items():
        spec[k] = v
        sources[k] = "suite per_operator"
    return spec, sources


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
        official = bool(task.get("official", suite.get("official", False)))
        set_metrics = _set_metric_names(task.get("set_metrics", suite.get("set_metrics")), where)
        for op_label, op_spec in _specs(task["operators"], defs["operators"], f"{where} operators"):
            op_noise = op_spec.pop("noise", noise)
            op_task = op_spec.pop("task", OPERATOR_TASKS.get(str(op_spec["fn"])))
            for sol_label, sol_spec in _specs(task["solvers"], defs["solvers"], f"{where} solvers"):
                sol_spec, sources = effective_solver(sol_spec, op_label, op_task, official)
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
                        "posterior_samples": int(task.get("posterior_samples",
                                                          suite.get("posterior_samples", 256))),
                        "save_images": int(task.get("save_images", suite.get("save_images", 2))),
                        "labels": [prior_label, dataset_label, op_label, sol_label],
                    }
                    if set_metrics:
                        spec["set_metrics"] = set_metrics
                    if official or any(v != "suite" for v in sources.values()):
                        spec["sources"] = sources  # official or per-operator settings: say where from
                    cells.append(Cell(suite["name"], config_hash, t, prior_label, dataset_label,
                                      op_label, sol_label, seed, spec, _hash(spec),
                                      suite["_dir"]))
    if solvers is not None:
        unknown = sorted(set(solvers) - labels)
        if unknown:
            raise BenchmarkError(f"--solvers: {', '.join(unknown)} not in suite "
                                 f"{suite['name']!r} (it has {', '.join(sorted(labels))})")
    return cells


def _set_metric_names(names: Any, where: str) -> list[str]:
    """A suite's ``set_metrics`` (metrics of a cell's whole set of images: FID, KID), checked."""
    from .fid import SET_METRICS
    names = [names] if isinstance(names, str) else list(names or [])
    unknown = [n for n in names if n not in SET_METRICS]
    if unknown:
        raise BenchmarkError(f"{where}: set_metrics: expected names among {', '.join(SET_METRICS)}, got {unknown}")
    return names


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

