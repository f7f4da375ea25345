"""``restore-bench`` (also ``python -m benchmarks``): list suites, run one, report on a results folder.

Exit codes:

* 0 -- done, every cell of the grid finished with status ``ok``;
* 1 -- the run completed but some cells failed or diverged (their errors are in the store and
  the report); rerun with ``--retry-failed`` to try them again;
* 2 -- usage error: bad option, unknown suite or solver, malformed suite YAML;
* 3 -- missing data or checkpoint: the suite needs ``--data PATH`` or a checkpoint file that is
  not on this machine (the message says which and where);
* 130 -- interrupted (Ctrl-C); finished cells are kept and a rerun resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_CELLS_FAILED, EXIT_USAGE, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """\
exit codes: 0 all cells ok; 1 run completed but some cells failed or diverged;
2 usage error (bad option, unknown suite/solver, bad YAML); 3 missing data or checkpoint;
130 interrupted (rerun the same command to resume).

examples:
  restore-bench list
  restore-bench run quick --out results/quick
  restore-bench run gmm --out results/gmm --solvers dps,daps,exact
  restore-bench run quick --out results/quick --workers 2
  restore-bench run dps-ffhq --data /data/ffhq256 --out results/dps-ffhq --device cuda --ray auto
  restore-bench run dps-ffhq --data /data/ffhq256 --out results/dps-ffhq --device cuda
  restore-bench run my_suite.yaml --out results/mine --limit 2
  restore-bench report results/quick
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _solver_list(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated solver labels, e.g. dps,daps")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restore-bench", description="Benchmark diffusion-prior solvers on inverse problems.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,run,explain,report}")

    p_list = sub.add_parser("list", help="list bundled suites and registered components",
                            description="List bundled suites, and with -v the registered "
                                        "solvers, operators, datasets, metrics and priors.")
    p_list.add_argument("-v", "--verbose", action="store_true",
                        help="also list registry names usable in a suite")

    p_run = sub.add_parser(
        "run", help="run a suite's grid into a results folder (resumable)",
        description="Run every dataset x operator x solver x seed cell of a suite. Finished cells "
                    "are skipped, so rerunning the same command resumes a killed run; two runs "
                    "may share one --out folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p_run.add_argument("suite", metavar="SUITE_OR_YAML",
                       help="a bundled suite name (see 'list') or a path to a suite YAML file")
    p_run.add_argument("--out", required=True, type=Path, metavar="DIR",
                       help="results folder: results.sqlite, images/, report.md, report.html")
    p_run.add_argument("--limit", type=_positive_int, metavar="N",
                       help="use at most N images per dataset")
    p_run.add_argument("--solvers", type=_solver_list, metavar="A,B",
                       help="run only these solver labels of the suite")
    p_run.add_argument("--device", default="cpu",
                       help="torch device: cpu (default), cuda, cuda:1, ...")
    p_run.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                       help="bfloat16 runs the solver under torch.autocast (default float32)")
    p_run.add_argument("--data", metavar="PATH",
                       help="dataset location for protocol suites (fills ${data} in the YAML)")
    p_run.add_argument("--checkpoint", metavar="PATH",
                       help="prior checkpoint, overriding the suite's 'checkpoint' entry")
    p_run.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                       help="change a suite value before expanding it (repeatable), e.g. "
                            "solvers.dps.steps=2; the changed cells get their own keys, so they never "
                            "mix with the unchanged suite's results")
    p_run.add_argument("--retry-failed", action="store_true",
                       help="run cells whose stored status is failed or diverged again")
    p_run.add_argument("--no-report", action="store_true",
                       help="do not write report.md / report.html at the end")
    p_run.add_argument("--quiet", action="store_true", help="no progress bar")
    scale = p_run.add_argument_group(
        "parallel runs", "Cells are computed by worker processes; this process alone writes the "
                         "store. Results equal a one-process run with the same torch threads per cell.")
    scale.add_argument("--workers", type=_positive_int, metavar="N",
                       help="compute cells in N local worker processes (each loads a prior once; "
                            "with --device cuda worker i uses GPU i mod the GPU count); with --ray: "
                            "the number of Ray actors (default: as many as the cluster holds)")
    scale.add_argument("--threads", type=_positive_int, metavar="T",
                       help="torch threads per worker (default: cores // workers; with --ray: the "
                            "cell's CPUs)")
    scale.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="compute cells on Ray actors: no ADDRESS starts Ray on this machine; "
                            "auto, HOST:PORT or ray://HOST:PORT joins a cluster (needs "
                            'pip install -e ".[ray]")')
    scale.add_argument("--num-cpus", type=_positive_float, metavar="X",
                       help="with --ray: CPUs per cell (default: the suite's resources:, else 1)")
    scale.add_argument("--num-gpus", type=_non_negative_float, metavar="X",
                       help="with --ray: GPUs per cell, fractions allowed (default: the suite's "
                            "resources:, else 1 with --device cuda, 0 otherwise)")

    p_explain = sub.add_parser(
        "explain", help="print each cell's effective solver settings and where each comes from",
        description="For every cell of a suite: the solver's effective settings (official values for "
                    "the operator's task when the suite says 'official: true', the suite's own, and "
                    "its per_operator overrides), their sources, the operator and the noise in both "
                    "units. Reads no data and no weights.")
    p_explain.add_argument("suite", metavar="SUITE_OR_YAML", help="a bundled suite name or a YAML path")
    p_explain.add_argument("--json", action="store_true",
                           help="one JSON object per cell (keys solver, operator, hyper, source, ...)")
    p_explain.add_argument("--data", metavar="PATH", help="fills ${data} (default: left as <data>)")
    p_explain.add_argument("--checkpoint", metavar="PATH", help="prior checkpoint")
    p_explain.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                           help="change a suite value before expanding it (repeatable), e.g. "
                                "solvers.dps.steps=2 or 'tasks.*.dataset.*.size=64'")

    p_report = sub.add_parser("report", help="write report.md and report.html for a results folder",
                              description="Summarise a results folder: tables (mean ± std per "
                                          "cell), PSNR vs wall time and vs NFE plots, image grids.")
    p_report.add_argument("out", type=Path, metavar="DIR", help="a folder written by 'run'")
    return parser


def _cmd_list(args: argparse.Namespace) -> int:
    from .registry import registry
    from .suite import available_suites
    suites = available_suites()
    width = max(map(len, suites), default=0)
    print("suites:")
    for name, description in suites.items():
        first = re.split(r"(?<!\bal)\. ", description)[0].rstrip(".")  # "et al." ends no sentence
        print(f"  {name:<{width}}  {description if args.verbose else first}")
    if args.verbose:
        print("\noperators:\n  " + ", ".join(sorted(registry("operator"))))
        for kind in ("solver", "dataset", "metric"):
            try:
                names = sorted(registry(kind))
            except Exception as err:  # noqa: BLE001 - a package still missing is shown, not fatal
                names = [f"(unavailable: {err})"]
            print(f"\n{kind}s:\n  " + ", ".join(names))
        try:
            import priors
            names = sorted(priors.available())
        except Exception as err:  # noqa: BLE001
            names = [f"(unavailable: {err})"]
        print("\npriors:\n  " + ", ".join(sorted(registry("prior")) + list(names)))
    return EXIT_OK


def _executor(args: argparse.Namespace, suite: dict) -> Any:
    """The executor the options ask for: ``map`` (this process), local workers or Ray actors."""
    from . import executors
    from .registry import BenchmarkError
    if args.ray is None:
        for flag, value in (("--num-cpus", args.num_cpus), ("--num-gpus", args.num_gpus)):
            if value is not None:
                raise BenchmarkError(f"{flag} is a Ray resource: use it with --ray")
        if args.workers is None:
            if args.threads is not None:
                raise BenchmarkError("--threads is per worker: use it with --workers or --ray")
            return map
        return executors.LocalWorkers(args.workers, device=args.device, threads=args.threads)
    cpus, gpus = executors.ray_resources(suite, args.device, args.num_cpus, args.num_gpus)
    return executors.RayWorkers(args.ray, num_cpus=cpus, num_gpus=gpus, actors=args.workers,
                                threads=args.threads)


def _cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    from . import report, runner
    from .suite import apply_overrides, load_suite
    if args.ray is not None:
        from .executors import import_ray
        import_ray()  # not installed: say so before anything starts
    elif args.device.startswith("cuda"):  # with --ray the GPUs are the cluster's, not this machine's
        import torch
        if not torch.cuda.is_available():
            print(f"restore-bench: --device {args.device}: CUDA is not available", file=sys.stderr)
            return EXIT_USAGE
    suite = apply_overrides(load_suite(args.suite, data=args.data, checkpoint=args.checkpoint), args.set)
    executor = _executor(args, suite)
    with executor if executor is not map else contextlib.nullcontext():
        summary = runner.run(suite, args.out, limit=args.limit, solvers=args.solvers,
                             device=args.device, dtype=args.dtype, retry_failed=args.retry_failed,
                             progress=not args.quiet, executor=executor,
                             command="restore-bench " + shlex.join(argv))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.status.items()))
    print(f"{summary.suite}: {summary.cells} cells ({counts}); ran {summary.ran}, "
          f"skipped {summary.skipped} already finished; {summary.wall_s:.1f} s")
    if not args.no_report:
        paths = report.write_report(args.out)
        print("report: " + ", ".join(str(p) for p in paths))
    return EXIT_CELLS_FAILED if summary.failed else EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    import json

    from .suite import apply_overrides, expand, load_suite
    suite = load_suite(args.suite, data=args.data, checkpoint=args.checkpoint, need_data=False)
    rows = [_explain_cell(cell) for cell in expand(apply_overrides(suite, args.set))]
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return EXIT_OK
    for row in rows:
        print(f"{row['dataset']}/{row['operator']}/{row['solver']}/seed{row['seed']}: operator {row['operator_spec']}; "
              f"noise {row['noise']['image [0, 1]']} on [0, 1] = {row['noise']['network [-1, 1]']} on [-1, 1]")
        split = row["split"]
        print(f"    data: {row['dataset_spec']}" + (f"; split {split['name']}: {split['count']} images, "
                                                      f"{split['images']} ({split['source']})" if split else ""))
        print(f"    metrics: {row['metrics']}" + (f"; set metrics {row['set_metrics']}" if row["set_metrics"] else ""))
        if row["schedule"]:
            sched = row["schedule"]
            steps = (f"; timesteps {sched['timesteps']} ({sched['visited']} visited on a 1000-step DDPM network)"
                     if "timesteps" in sched else "")
            print(f"    schedule: grid {sched['grid']}{steps}; variance: {sched['variance']}")
        for k, v in row["hyper"].items():
            print(f"    {k} = {v!r}  ({row['source'][k]})")
    return EXIT_OK


def _explain_cell(cell: Any) -> dict[str, Any]:
    """One cell of ``explain``: the effective solver settings with their sources, the schedule (timestep
    grid and variance, :func:`restore.official.describe_schedule`), the operator, the noise in both
    units, the data and its split, and the metrics."""
    from restore.official import describe_schedule

    from .splits import get_split
    spec = cell.spec
    hyper = {k: v for k, v in spec["solver"].items() if k != "fn"}
    sources = spec.get("sources") or {k: "suite" for k in hyper}
    noise = spec["noise"]
    split = spec["dataset"].get("split")
    return {"solver": cell.solver, "fn": spec["solver"]["fn"], "operator": cell.operator,
            "operator_spec": spec["operator"], "dataset": cell.dataset, "seed": cell.seed,
            "hyper": hyper, "source": {k: sources.get(k, "solver default") for k in hyper},
            "noise": {"image [0, 1]": noise,
                      "network [-1, 1]": 2 * noise if isinstance(noise, (int, float)) else noise},
            "dataset_spec": spec["dataset"], "limit": spec["limit"],
            "split": get_split(split).describe() if split else None,
            "metrics": spec["metrics"], "set_metrics": spec.get("set_metrics", []),
            "schedule": describe_schedule(spec["solver"]["fn"], hyper.get("steps"), bool(hyper.get("official")))}


def _cmd_report(args: argparse.Namespace) -> int:
    from . import report
    from .registry import MissingResource
    if not (args.out / "results.sqlite").exists():
        raise MissingResource(f"{args.out}: no results.sqlite here (write one with 'run')")
    for path in report.write_report(args.out):
        print(path)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``restore-bench``; returns the exit code (see the module docstring)."""
    from .registry import BenchmarkError, MissingResource
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on errors, 0 on --help
        return int(exit_.code or 0)
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "run":
            return _cmd_run(args, argv)
        if args.command == "explain":
            return _cmd_explain(args)
        return _cmd_report(args)
    except MissingResource as err:
        print(f"restore-bench: missing data or checkpoint: {err}", file=sys.stderr)
        return EXIT_MISSING
    except BenchmarkError as err:
        print(f"restore-bench: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("restore-bench: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
