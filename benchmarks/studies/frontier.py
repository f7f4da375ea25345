"""The quality/time frontier: our solvers against deepinv's DPS, DDRM and DiffPIR, side by side.

Both libraries get the same prior (the bundled ``natural`` prior; deepinv sees it through
:class:`DeepinvDenoiser`), the same operator (deepinv's own physics, checked at start-up to agree with
ours to 1e-5), the same noisy measurement ``y``, the same image, seed and thread count. Every
(task, solver, step count) runs once, one after another in this process; step counts are the outer
loop, so a change of machine load hits both libraries alike. Each run records PSNR, wall time, the
process's CPU time (robust to other processes on a shared machine) and denoiser calls (NFE, counted as
the runner counts them: :func:`benchmarks.cell.counted`).

Per task the summary gives deepinv's best PSNR (over its DPS, DDRM and DiffPIR and their step counts)
and its wall time, the wall time at which our fastest solver first reaches that PSNR, and their ratio
(goal <= 0.5). A second summary adds deepinv's DPIR (its fixed 8-iteration schedule) to deepinv's side,
so that our DPIR is also measured against deepinv's own implementation of the same method.

Held-out photos only: ``rocket`` tunes the step sizes (DPS's zeta, deepinv DPS's weight, DPIR's lambda
and sigma_1) and is never benchmarked by default (``--photos``).

Usage::

    python -m benchmarks.studies.frontier                      # default: ~10 min on a loaded 2-core CPU
    python -m benchmarks.studies.frontier --full               # 64x64, 4 photos, 10..200 steps, + DAPS
    python -m benchmarks.studies.frontier --tasks deblur --steps 10 20 --out runs/frontier_quick

Units. Our prior works in image units ([0, 1] images, sigma in the same units). deepinv's samplers
call ``model(x, sigma)`` on [0, 1] images with ``sigma`` in [0, 1] units too: DDRM passes its
schedule as is, DiffPIR passes ``sigma_[-1,1] / 2``, and DPS goes through deepinv's
``MinusOneOneDenoiserWrapper``, which maps its [-1, 1] state and sigma to [0, 1]. So the wrapper is
``prior.denoise`` itself, with sigma floored at the prior's ``sigma_min`` (deepinv's DDRM schedule
ends at sigma = 0, where the EDM conditioning ``log sigma`` is undefined and ``D(x, 0) = x``).

deepinv's hyper-parameters: DDRM its defaults (eta 0.85, eta_b 1, ``sigmas = linspace(1, 0, steps)``);
DiffPIR the official per-task lambda and zeta, the same as ours; DPS the residual-norm guidance of the
paper with a weight tuned per task on a held-out photograph not used here (``DINV_DPS_WEIGHT``):
deepinv's ``weight`` has no fixed relation to the paper's zeta (it multiplies the score, and the
ancestral step scales it by ``s_t s_{t-1} (sigma_t^2 - sigma_{t-1}^2)``), so its default 1.0 is far too
weak. Our DPS's zeta is tuned the same way on the same photo (``DPS_ZETA``): the official values are set
for 1000 steps (``--official-dps-zeta`` uses them). Every other solver runs with its defaults.
deepinv's DDRM cannot run SR here: its ``Downsampling`` is not a ``DecomposablePhysics``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

import operators as ops
import priors
import restore
from priors.testsets import load_testset
from restore.dps import ZETA

from .harness import checkpoint_note, counted, operator, timed_run

TASKS = ("deblur", "sr4", "inpaint")
OURS = ("ddrm", "ddnm", "diffpir", "red_diff", "pigdm", "dps", "dpir")
DEEPINV = ("dinv_ddrm", "dinv_diffpir", "dinv_dps", "dinv_dpir")
#: ``--full``'s solvers: our DDRM, DiffPIR and DPIR (ours that were never best on these tasks in earlier
#: runs, DDNM, RED-Diff, PiGDM and DPS, are left out to fit a 2-core session) and all of deepinv's.
FULL = ("ddrm", "diffpir", "dpir", "dinv_ddrm", "dinv_diffpir", "dinv_dps", "dinv_dpir")
#: The goal's reference set (the issue's): deepinv's DPS, DDRM and DiffPIR.
GOAL_REFERENCE = ("dinv_ddrm", "dinv_diffpir", "dinv_dps")
#: Step counts above these are skipped: DPIR is an 8-24 step method, deepinv's DPS costs ~3 network
#: passes a step and peaked at 100 steps in earlier runs, our DDRM/DiffPIR only need to reach deepinv.
#: deepinv's DDRM and DiffPIR have no cap: their best is the reference.
STEP_CAP = {"dpir": 50, "dinv_dps": 100, "ddrm": 100, "diffpir": 100}
PHOTOS = ("astronaut", "coffee", "chelsea")

#: Official per-task settings, the same for both libraries where the algorithm is shared.
DIFFPIR = {"deblur": dict(lam=7.0, zeta=0.3), "sr4": dict(lam=7.0, zeta=0.25), "inpaint": dict(lam=1.0, zeta=1.0)}
#: DPS's official zeta (restore.dps.ZETA: 0.3 blur and SR, 0.5 inpainting) is set for 1000 steps;
#: at 10-50 steps it under-guides, so both libraries' DPS step sizes are tuned alike (``--tune-dps``).
OFFICIAL_DPS_ZETA = {"deblur": ZETA["gaussian_blur"], "sr4": ZETA["super_resolution"], "inpaint": ZETA["inpainting"]}
#: Best of {0.3, 1, 3, 10, 30} per task on the held-out "rocket" photo (not benchmarked by default) at
#: 32x32, 50 steps, sigma_y 0.02, 600-step checkpoint: deblur / SR / inpaint 20.8 / 19.9 / 21.0 dB
#: (official zeta: 17.3 / 14.4 / 15.0).
DPS_ZETA = {"deblur": 3.0, "sr4": 30.0, "inpaint": 10.0}
#: deepinv DPS ``weight`` (guidance="norm"): best of {10, 30, 100, 300, 1000, 3000} on every task, tuned
#: as DPS_ZETA: deblur / SR / inpaint 19.6 / 19.2 / 21.2 dB at 300 (at 100: 19.3 / 18.4 / 19.4; at 1000:
#: 12.0 / 19.1 / 20.6).
DINV_DPS_WEIGHT = {"deblur": 300.0, "sr4": 300.0, "inpaint": 300.0}
#: Our DPIR's lambda and sigma_1: best of lambda {0.05, 0.1, 0.23} x sigma_1 {0.1, 49/255, 0.4} on "rocket"
#: at 64x64, 8 and 24 steps, sigma_y 0.02, the 4600-step natural prior. Deblur 8 steps: 27.22 dB (official
#: 0.23, 49/255: 26.21); SR 25.59 (25.17); inpaint 24 steps 27.79 (27.56). The official values suit DRUNet.
#: Re-checked with the 9200-step prior: still the best single setting over the three tasks (deblur 26.86
#: vs official 26.32, SR 25.67 vs 25.33, inpaint 28.17 vs 28.12; per task the best differs by <= 0.2 dB).
DPIR_TUNED = dict(lam=0.05, sigma_first=0.4)


class DeepinvDenoiser(nn.Module):
    """Our prior as a deepinv denoiser ``model(x, sigma)``: [0, 1] images, sigma in [0, 1] units."""

    def __init__(self, prior: priors.NetworkPrior):
        super().__init__()
        self.prior = prior
        self.net = prior.module  # a submodule, so deepinv's .to()/.eval() reach the network

    def forward(self, x: Tensor, sigma: Any, *args, **kwargs) -> Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).flatten()
        s = s.expand(x.shape[0]) if s.numel() == 1 else s
        return self.prior.denoise(x, s.clamp_min(self.prior.sigma_min).to(x.dtype))


@dataclass
class Task:
    """One inverse problem on one batch of images, with both libraries' forward models."""

    name: str
    x: Tensor
    op: Any
    physics: Any
    y: Tensor
    noise: ops.GaussianNoise
    meta: dict = field(default_factory=dict)


def build_task(name: str, x: Tensor, sigma_y: float, seed: int, device: str = "cpu") -> Task:
    """Gaussian deblur (std = size/20, circular), SR x4 (4x4 box average) or random inpainting
    (70% of pixels missing), with Gaussian noise ``sigma_y``; deepinv's physics must agree with ours."""
    import deepinv as dinv

    C, H, W = x.shape[1:]
    g = torch.Generator().manual_seed(seed)
    if name == "deblur":
        std = H / 20
        kernel = ops.kernels.gaussian(2 * math.ceil(3 * std) + 1, std)
        op = operator("gaussian_blur", (C, H, W), size=kernel.shape[-1], std=std, boundary="circular")
        physics = dinv.physics.BlurFFT(img_size=(C, H, W), filter=kernel[None, None])
        meta = dict(kernel=f"gaussian {kernel.shape[-1]}x{kernel.shape[-1]} std {std:g}")
    elif name == "sr4":
        op = operator("super_resolution", (C, H, W), factor=4, filter="box")
        box = torch.zeros(1, 1, 7, 7)
        box[..., :4, :4] = 1 / 16  # deepinv centres the filter at 3: this aligns it with our 4x4 blocks
        physics = dinv.physics.Downsampling(img_size=(C, H, W), filter=box, factor=4, padding="circular")
        meta = dict(filter="box 4x4")
    elif name == "inpaint":
        op = operator("inpaint_random", (C, H, W), generator=g, kept=0.3)
        mask = op.mask.expand(C, H, W).contiguous()
        physics = dinv.physics.Inpainting(img_size=(C, H, W), mask=mask)
        meta = dict(mask="random, 30% kept")
    else:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {name!r}")
    gap = (op(x) - physics.A(x)).abs().max().item()
    if gap > 1e-5:
        raise AssertionError(f"{name}: our operator and deepinv's physics differ by {gap:.2e}")
    physics.noise_model = dinv.physics.GaussianNoise(sigma=sigma_y)  # read for sigma only; y is ours
    noise = ops.GaussianNoise(sigma_y)
    y = noise(op(x), generator=g)
    if device != "cpu":
        x, op, physics, y = x.to(device), op.to(device=device), physics.to(device), y.to(device)
    return Task(name, x, op, physics, y, noise, meta)


def make_runner(solver: str, task: Task, prior, denoiser: DeepinvDenoiser, steps: int,
                seed: int) -> Callable[[], Tensor]:
    """A zero-argument closure that runs ``solver`` for ``steps`` and returns x_hat in [0, 1] units."""
    t, device = task.name, task.y.device

    def gen():
        return torch.Generator(device=device).manual_seed(seed)

    if solver in OURS:
        hyper = {"dps": dict(zeta=DPS_ZETA[t]), "diffpir": DIFFPIR[t], "dpir": DPIR_TUNED}.get(solver, {})
        fn = restore.SOLVERS[solver]
        return lambda: fn(prior, task.op, task.y, task.noise, steps=steps, generator=gen(), **hyper)
    if solver == "daps":
        return lambda: restore.daps(prior, task.op, task.y, task.noise, steps=steps, ode_steps=2,
                                    langevin_steps=20, generator=gen())
    import deepinv as dinv
    import numpy as np

    if solver == "dinv_ddrm":
        model = dinv.sampling.DDRM(denoiser=denoiser, sigmas=np.linspace(1, 0, steps))

        def run():
            with torch.random.fork_rng(devices=[]):  # deepinv's DDRM and DiffPIR draw from the global RNG:
                torch.manual_seed(seed)               # seeded here, the caller's state put back after
                return model(task.y, task.physics)
        return run
    if solver == "dinv_diffpir":
        p = DIFFPIR[t]
        model = dinv.sampling.DiffPIR(model=denoiser, data_fidelity=dinv.optim.data_fidelity.L2(),
                                      sigma=task.noise.sigma, max_iter=steps, zeta=p["zeta"], lambda_=p["lam"])

        def run():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return model(task.y, task.physics)
        return run
    if solver == "dinv_dpir":
        model = dinv.optim.DPIR(sigma=task.noise.sigma, denoiser=denoiser, device=device)
        return lambda: model(task.y, task.physics)
    if solver == "dinv_dps":
        model = dinv.sampling.DPS(denoiser, num_steps=steps, weight=DINV_DPS_WEIGHT[t], rng=gen(),
                                  device=device)
        return lambda: model(task.y, task.physics, seed=seed)
    raise ValueError(f"solver: unknown {solver!r}")


def frontier_summary(rows: list[dict], task: str, clock: str = "wall",
                     reference: tuple[str, ...] | None = GOAL_REFERENCE) -> dict:
    """deepinv's best PSNR (over ``reference``, None: all its solvers) and its time; the first time one
    of ours reaches it; their ratio."""
    mine = [r for r in rows if r["task"] == task and math.isfinite(r["psnr"])]
    theirs = [r for r in mine if r["lib"] == "deepinv" and (reference is None or r["solver"] in reference)]
    ours = [r for r in mine if r["lib"] == "ours"]
    if not theirs or not ours:
        return {}
    best = max(theirs, key=lambda r: (r["psnr"], -r[clock]))
    reached = [r for r in ours if r["psnr"] >= best["psnr"]]
    out = dict(task=task, dinv_solver=best["solver"], dinv_steps=best["steps"], dinv_psnr=best["psnr"],
               dinv_time=best[clock], ours_best_psnr=max(r["psnr"] for r in ours))
    if reached:
        first = min(reached, key=lambda r: r[clock])
        out.update(ours_solver=first["solver"], ours_steps=first["steps"], ours_psnr=first["psnr"],
                   ours_time=first[clock], ratio=first[clock] / best[clock])
    return out


def print_rows(rows: list[dict]) -> None:
    print(f"{'task':8s} {'lib':8s} {'solver':13s} {'steps':>5s} {'NFE':>5s} {'PSNR':>7s} {'wall s':>8s} {'cpu s':>8s}")
    for r in sorted(rows, key=lambda r: (TASKS.index(r["task"]), r["lib"], r["solver"], r["steps"])):
        note = f"  {r['error']}" if r["error"] else ""
        print(f"{r['task']:8s} {r['lib']:8s} {r['solver']:13s} {r['steps']:5d} {r['nfe']:5d} {r['psnr']:7.2f} "
              f"{r['wall']:8.2f} {r['cpu']:8.2f}{note}")


def print_summary(summaries: list[dict], clock: str, label: str) -> None:
    print(f"\nfrontier ({clock} time, {label}): deepinv's best PSNR, and the first of our runs to reach it")
    print(f"{'task':8s} {'deepinv best':>24s} {'PSNR':>7s} {clock + ' s':>8s} | {'ours first >= it':>20s} "
          f"{'PSNR':>7s} {clock + ' s':>8s} {'ratio':>6s}")
    for s in summaries:
        head = (f"{s['task']:8s} {s['dinv_solver'] + '@' + str(s['dinv_steps']):>24s} {s['dinv_psnr']:7.2f} "
                f"{s['dinv_time']:8.2f} | ")
        if "ratio" in s:
            print(head + f"{s['ours_solver'] + '@' + str(s['ours_steps']):>20s} {s['ours_psnr']:7.2f} "
                  f"{s['ours_time']:8.2f} {s['ratio']:6.2f}")
        else:
            print(head + f"{'not reached':>20s} {s['ours_best_psnr']:7.2f} (our best)")


def plot(rows: list[dict], tasks: list[str], path: Path) -> None:
    """PSNR against wall time, one panel per task, one line per solver through its step counts in order:
    ours solid, deepinv dashed, one colour per algorithm. Runs more than 6 dB below the panel's best are
    left out of the view."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    algorithms = sorted({r["solver"].removeprefix("dinv_") for r in rows})
    colour = {a: f"C{i}" for i, a in enumerate(algorithms)}
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        done = [r for r in rows if r["task"] == task and math.isfinite(r["psnr"])]
        for lib, solver in sorted({(r["lib"], r["solver"]) for r in done}):
            pts = sorted((r["steps"], r["wall"], r["psnr"]) for r in done if r["solver"] == solver)
            ax.plot([p[1] for p in pts], [p[2] for p in pts], "-o" if lib == "ours" else "--s",
                    color=colour[solver.removeprefix("dinv_")], label=solver, markersize=4)
        if done:
            top = max(r["psnr"] for r in done)
            ax.set_ylim(max(min(r["psnr"] for r in done), top - 6) - 0.2, top + 0.3)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(rows: list[dict], tasks: list[str], out: Path) -> dict:
    """Print the table and both frontier summaries, save the plot; returns the summaries."""
    print_rows(rows)
    summaries = {}
    for label, reference in (("goal: deepinv DPS, DDRM, DiffPIR", GOAL_REFERENCE), ("all of deepinv", None)):
        for clock in ("wall", "cpu"):
            s = [s for s in (frontier_summary(rows, t, clock, reference) for t in tasks) if s]
            summaries[f"{clock}, {label}"] = s
            print_summary(s, clock, label)
    plot(rows, tasks, out / "frontier.png")
    return summaries


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/frontier")
    p.add_argument("--full", action="store_true", help="64x64, 3 photos, steps 10 20 50 100 200, solvers FULL")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--solvers", nargs="+", default=None, help=f"default: {' '.join(OURS + DEEPINV)}")
    p.add_argument("--steps", nargs="+", type=int, default=None, help="default 10 20 50")
    p.add_argument("--size", type=int, default=None, help="image size (default 32, the prior's training crops)")
    p.add_argument("--photos", nargs="+", choices=list(PHOTOS) + ["rocket"], default=None,
                   help="held-out photos, run as one batch (default: astronaut; --full: all three)")
    p.add_argument("--sigma-y", type=float, default=0.02, help="measurement noise, [0, 1] units")
    p.add_argument("--threads", type=int, default=1, help="torch threads, the same for every run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", default="natural")
    p.add_argument("--device", default="cpu", help="cpu or cuda (wall time then synchronises the device)")
    p.add_argument("--official-dps-zeta", action="store_true", help="our DPS with the official zeta")
    p.add_argument("--report-only", action="store_true", help="reprint and replot OUT/results.json")
    p.add_argument("--tune-dps", action="store_true", help="sweep deepinv DPS's weight on 'rocket' and exit")
    args = p.parse_args(argv)
    args.steps = args.steps or ([10, 20, 50, 100, 200] if args.full else [10, 20, 50])
    args.size = args.size or (64 if args.full else 32)
    args.photos = args.photos or list(PHOTOS if args.full else PHOTOS[:1])
    args.solvers = args.solvers or list(FULL if args.full else OURS + DEEPINV)
    return args


def tune_dps(args, prior, denoiser, calls: list[int]) -> None:
    """Sweep both DPS step sizes (our ``zeta``, deepinv's ``weight``) on the held-out photo 'rocket',
    which the default benchmark does not use, at 50 steps; the best values go into ``DPS_ZETA`` and
    ``DINV_DPS_WEIGHT`` by hand."""
    x = dict(load_testset("natural", args.size))["rocket"][None]
    for name in args.tasks:
        task = build_task(name, x, args.sigma_y, args.seed, args.device)
        for solver, table, grid in (("dps", DPS_ZETA, (0.3, 1.0, 3.0, 10.0, 30.0)),
                                    ("dinv_dps", DINV_DPS_WEIGHT, (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0))):
            for value in grid:
                table[name] = value
                r = timed_run(make_runner(solver, task, prior, denoiser, 50, args.seed), task.x, calls)
                print(f"{name:8s} {solver:9s} {'zeta' if solver == 'dps' else 'weight'} {value:6g}: "
                      f"PSNR {r['psnr']:.2f}", flush=True)


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    if args.official_dps_zeta:
        DPS_ZETA.update(OFFICIAL_DPS_ZETA)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        saved = json.loads((out / "results.json").read_text())
        report(saved["rows"], [t for t in TASKS if t in saved["meta"]], out)
        return 0
    note = checkpoint_note(args.prior)  # before loading: the weights may be refreshed while this runs
    prior, calls = counted(priors.load(args.prior, device=args.device))  # NFE: denoiser calls
    denoiser = DeepinvDenoiser(prior)
    if args.tune_dps:
        tune_dps(args, prior, denoiser, calls)
        return 0
    photos = [(n, img) for n, img in load_testset("natural", args.size) if n in args.photos]
    x = torch.stack([img for _, img in photos])
    print(f"prior {args.prior}: {note}")
    print(f"images {[n for n, _ in photos]} at {args.size}x{args.size}, sigma_y {args.sigma_y}, "
          f"threads {args.threads}, steps {args.steps}, prior {args.prior}", flush=True)
    tasks = {name: build_task(name, x, args.sigma_y, args.seed, args.device) for name in args.tasks}
    x = x.to(args.device)
    with torch.no_grad():  # warm-up: first calls pay for allocation and kernel selection
        prior.denoise(x, 1.0)
    rows = []
    for steps in args.steps:
        for name, task in tasks.items():
            for solver in args.solvers:
                if solver == "dinv_ddrm" and name == "sr4":
                    continue  # deepinv's Downsampling has no SVD (not a DecomposablePhysics)
                if steps > STEP_CAP.get(solver, steps) or (solver == "dinv_dpir" and steps != args.steps[0]):
                    continue  # deepinv's DPIR has one fixed schedule (8 iterations): run it once
                run = make_runner(solver, task, prior, denoiser, steps, args.seed)
                r = timed_run(run, x, calls)
                r.update(task=name, solver=solver, lib="deepinv" if solver.startswith("dinv_") else "ours",
                         steps=r["nfe"] if solver == "dinv_dpir" else steps)
                rows.append(r)
                print(f"  {name:8s} {solver:13s} {steps:4d} steps: PSNR {r['psnr']:6.2f}  wall {r['wall']:7.2f} s"
                      f"  cpu {r['cpu']:7.2f} s  NFE {r['nfe']}" + (f"  {r['error']}" if r["error"] else ""),
                      flush=True)
    print()
    summaries = report(rows, list(tasks), out)
    saved = dict(args=vars(args), checkpoint=note, meta={t: v.meta for t, v in tasks.items()}, rows=rows,
                 summary=summaries)
    (out / "results.json").write_text(json.dumps(saved, indent=1))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["task", "lib", "solver", "steps", "nfe", "psnr", "wall", "cpu", "error"])
        w.writeheader()
        w.writerows(rows)
    print(f"\nwrote {out / 'results.json'}, {out / 'results.csv'}, {out / 'frontier.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
