"""Per-step cost of each solver against the network's own cost, measured side by side in one run.

The reference for a solver is what one step of it cannot avoid:

* RED-Diff, DDRM, DDNM, DiffPIR, DPIR: one network forward (no autograd graph);
* DPS, PiGDM: one forward plus one vector-Jacobian product with respect to the input, with the
  network's parameters frozen (no weight gradients).

A second, steadier figure isolates what the solver adds: the same solver run with a free prior
(``denoise`` returns its input) costs only the solver's own work per step, ``overhead``; the
estimate ``1 + overhead / reference`` does not suffer the run-to-run noise of two large timings.

Reference and solver runs are interleaved and each is the median of ``--repeats`` timings, so a
loaded machine slows both alike; on the CPU the clock is the process's CPU time, which other
processes on a shared machine barely disturb. A ratio of 1.00 means the solver adds nothing around the network.

Usage::

    python -m benchmarks.studies.solver_cost                  # CPU, UNet at 3x64x64, batch 4
    python -m benchmarks.studies.solver_cost --device cuda --size 256 --batch 4
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

import operators as ops
import priors
import restore
from priors.random import global_rng_restored
from priors.unet import UNet

from .harness import seconds

FORWARD = ("red_diff", "ddrm", "ddnm", "diffpir", "dpir")
FORWARD_VJP = ("dps", "pigdm")


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds for ``fn()``: CPU time of this process on the CPU (robust to other processes on a
    shared machine), wall time with synchronisation on an accelerator."""
    return seconds(fn, device, time.process_time if device.type == "cpu" else time.perf_counter)


def build(size: int, batch: int, channels: int, device: torch.device):
    """A small conv UNet wrapped as an eps-prediction DDPM prior, a 50% inpainting problem, y."""
    g = torch.Generator().manual_seed(0)
    with global_rng_restored():  # the layers' initialisers draw from it; the weights are redrawn below
        net = UNet(in_channels=channels, channels=32, channel_mult=(1, 2, 2), num_blocks=1).to(device).eval()
    for p in net.parameters():  # random, non-zero weights (the head is zero-initialised)
        p.requires_grad_(False)
        p.copy_(0.05 * torch.randn(p.shape, generator=g).to(device))
    prior = priors.wrap(net, prediction="eps", image_shape=(channels, size, size))
    mask = (torch.rand(channels, size, size, generator=g) > 0.5).to(torch.float32)
    op = ops.Inpainting(mask.to(device))
    x = torch.rand(batch, channels, size, size, generator=g).to(device)
    noise = ops.GaussianNoise(0.05)
    y = noise(op(x), generator=torch.Generator(device=device).manual_seed(1))
    return net, prior, op, y, noise


class FreePrior(priors.Prior):
    """A prior that costs nothing: ``denoise`` returns its input (for timing the solver's own work)."""

    def __init__(self, like: priors.Prior):
        self.image_shape, self.sigma_min, self.sigma_max = like.image_shape, like.sigma_min, like.sigma_max
        self.sigmas = like.sigmas

    def denoise(self, x, sigma):
        return x


def references(net: torch.nn.Module, shape: tuple[int, ...], device: torch.device):
    """Closures timing one network forward, and one forward + VJP w.r.t. the input."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(shape, generator=g).to(device)
    c_noise = torch.full((shape[0],), 500.0, device=device)
    v = torch.randn(shape, generator=g).to(device)

    def forward():
        with torch.no_grad():
            net(x, c_noise)

    def forward_vjp():
        xi = x.detach().requires_grad_(True)
        out = net(xi, c_noise)
        torch.autograd.grad(out, xi, grad_outputs=v)

    return forward, forward_vjp


def measure(steps: int, repeats: int, size: int, batch: int, channels: int, device: torch.device,
            threads: int | None) -> list[dict]:
    if threads:
        torch.set_num_threads(threads)
    net, prior, op, y, noise = build(size, batch, channels, device)
    forward, forward_vjp = references(net, (batch, channels, size, size), device)
    rows = []
    for name in FORWARD + FORWARD_VJP:
        solver = restore.SOLVERS[name]
        reference = forward if name in FORWARD else forward_vjp

        def run(solver=solver):
            return solver(prior, op, y, noise, steps=steps, generator=torch.Generator(device=device).manual_seed(0))

        def run_free(solver=solver, free=FreePrior(prior)):
            return solver(free, op, y, noise, steps=steps, generator=torch.Generator(device=device).manual_seed(0))
        run(), run_free(), reference()  # warm-up (allocator, kernels, cached operator buffers)
        ref_t, solver_t, free_t = [], [], []
        for _ in range(repeats):  # interleaved, so load changes hit both
            ref_t.append(statistics.median(_timed(reference, device) for _ in range(steps)))
            solver_t.append(_timed(run, device) / steps)
            free_t.append(_timed(run_free, device) / steps)
        ref, per_step, overhead = (statistics.median(t) for t in (ref_t, solver_t, free_t))
        rows.append(dict(solver=name, reference="forward" if name in FORWARD else "forward+VJP",
                         reference_ms=1e3 * ref, step_ms=1e3 * per_step, ratio=per_step / ref,
                         overhead_ms=1e3 * overhead, estimate=1 + overhead / ref))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = measure(args.steps, args.repeats, args.size, args.batch, args.channels, device, args.threads)
    print(f"device={device} image={args.channels}x{args.size}x{args.size} batch={args.batch} "
          f"steps={args.steps} repeats={args.repeats} threads={torch.get_num_threads()}")
    print(f"{'solver':<10} {'reference':<12} {'ref ms':>9} {'step ms':>9} {'ratio':>7} {'overhead ms':>12} "
          f"{'1+ovh/ref':>10}")
    for r in rows:
        print(f"{r['solver']:<10} {r['reference']:<12} {r['reference_ms']:9.2f} {r['step_ms']:9.2f} {r['ratio']:7.3f} "
              f"{r['overhead_ms']:12.2f} {r['estimate']:10.3f}")


if __name__ == "__main__":
    main()
