"""The optional bf16 path for the network: speed-up and PSNR cost, fp32 and bf16 side by side in one run.

``priors.load(name, dtype=torch.bfloat16)`` stores the network's weights in bf16; ``NetworkPrior``
casts the network's input to the module's dtype and its output back to the caller's, so the solvers'
state (float64 around the network) does not change. Each solver runs on the same images, measurement
and seed with both priors, fp32 and bf16 alternating, ``--repeats`` times; times are medians, the
PSNR cost is the paired difference (same seed, same noise draws). The network's own forward is timed
the same way, as the reference for the speed-up a solver can get.

Usage::

    python -m benchmarks.studies.bf16                               # Gaussian deblur, 64x64, ddrm/diffpir/dps
    python -m benchmarks.studies.bf16 --task sr4 --solvers ddrm dps --steps 50 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import priors
from priors.testsets import load_testset

from .frontier import OURS, TASKS, build_task, make_runner
from .harness import checkpoint_note, counted, timed_run


def network_times(prior_fp32, prior_bf16, x: torch.Tensor, repeats: int = 5) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) seconds of one denoiser call at sigma 0.5 for each precision, interleaved."""
    times: dict[str, list[tuple[float, float]]] = {"fp32": [], "bf16": []}
    with torch.no_grad():
        for _ in range(repeats):
            for name, prior in (("fp32", prior_fp32), ("bf16", prior_bf16)):
                wall, cpu = time.perf_counter(), time.process_time()
                prior.denoise(x, 0.5)
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for k, v in times.items()}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=TASKS, default="deblur")
    p.add_argument("--solvers", nargs="+", choices=OURS, default=["ddrm", "diffpir", "dps"])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--images", type=int, default=2, help="held-out photos, run as one batch")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--sigma-y", type=float, default=0.02)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", default="natural")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    note = checkpoint_note(args.prior)  # before loading: the weights may be refreshed while this runs
    fp32, fp32_calls = counted(priors.load(args.prior))
    bf16, bf16_calls = counted(priors.load(args.prior, dtype=torch.bfloat16))
    counters = {"fp32": fp32_calls, "bf16": bf16_calls}
    photos = load_testset("natural", args.size, n=args.images)
    x = torch.stack([img for _, img in photos])
    task = build_task(args.task, x, args.sigma_y, args.seed)
    print(f"prior {args.prior}: {note}")
    print(f"task {args.task}, images {[n for n, _ in photos]} at {args.size}x{args.size}, sigma_y {args.sigma_y}, "
          f"steps {args.steps}, threads {args.threads}, repeats {args.repeats}", flush=True)
    with torch.no_grad():  # warm-up both networks
        fp32.denoise(x, 1.0)
        bf16.denoise(x, 1.0)
    net = network_times(fp32, bf16, x)
    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeats):
        for solver in args.solvers:
            for name, prior in (("fp32", fp32), ("bf16", bf16)):
                run = make_runner(solver, task, prior, None, args.steps, args.seed)
                r = timed_run(run, x, counters[name])
                runs.setdefault((solver, name), []).append(r)
                print(f"  {solver:8s} {name}: PSNR {r['psnr']:6.2f}  wall {r['wall']:6.2f} s  cpu {r['cpu']:6.2f} s"
                      + (f"  {r['error']}" if r["error"] else ""), flush=True)

    def med(solver, name, key):
        return statistics.median(r[key] for r in runs[(solver, name)])

    print(f"\nnetwork forward (batch {x.shape[0]}): fp32 wall {net['fp32'][0] * 1e3:.1f} ms cpu "
          f"{net['fp32'][1] * 1e3:.1f} ms | bf16 wall {net['bf16'][0] * 1e3:.1f} ms cpu {net['bf16'][1] * 1e3:.1f} ms"
          f" | speed-up wall {net['fp32'][0] / net['bf16'][0]:.2f}x cpu {net['fp32'][1] / net['bf16'][1]:.2f}x")
    print(f"\n{'solver':8s} {'steps':>5s} {'PSNR fp32':>9s} {'PSNR bf16':>9s} {'dPSNR':>6s} {'wall fp32':>9s} "
          f"{'wall bf16':>9s} {'x wall':>6s} {'cpu fp32':>8s} {'cpu bf16':>8s} {'x cpu':>6s}")
    for solver in args.solvers:
        p32, p16 = runs[(solver, "fp32")][0]["psnr"], runs[(solver, "bf16")][0]["psnr"]
        w32, w16 = med(solver, "fp32", "wall"), med(solver, "bf16", "wall")
        c32, c16 = med(solver, "fp32", "cpu"), med(solver, "bf16", "cpu")
        print(f"{solver:8s} {args.steps:5d} {p32:9.2f} {p16:9.2f} {p16 - p32:+6.3f} {w32:9.2f} {w16:9.2f} "
              f"{w32 / w16:5.2f}x {c32:8.2f} {c16:8.2f} {c32 / c16:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
