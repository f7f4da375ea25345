"""What the UNet's windowed GroupNorm (TLC, :mod:`priors.unet`) costs: one network pass of a bundled prior
with its card's ``norm_window`` against the same weights with GroupNorm over the whole input, side by side.

Passes alternate between the two networks and each figure is the median of ``--repeats`` timings on the
process's CPU clock, so a loaded machine slows both alike. At the training crop size both are GroupNorm.

``python -m benchmarks.studies.norm_window_cost --prior natural --sizes 64 128 256``
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import priors

from .harness import seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prior", default="natural", help="a bundled UNet prior whose card sets norm_window")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    windowed = priors.load(args.prior)
    window = getattr(windowed.module, "norm_window", None)
    if window is None:
        raise SystemExit(f"prior: {args.prior}'s card sets no norm_window; nothing to compare")
    plain = copy.deepcopy(windowed)
    plain.module.norm_window = None
    print(f"{args.prior}: norm_window {window} px, batch {args.batch}, {args.threads} thread(s), "
          f"median of {args.repeats} passes (CPU seconds)\n")
    print("| size | GroupNorm s | windowed s | ratio |\n|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for size in args.sizes:
        x = torch.rand(args.batch, windowed.module.config["in_channels"], size, size, generator=g)
        times = {"plain": [], "windowed": []}
        with torch.no_grad():
            for _ in range(args.repeats + 1):  # the first pass of each warms up and is dropped
                for label, prior in (("plain", plain), ("windowed", windowed)):
                    times[label].append(seconds(lambda: prior.denoise(x, 0.1), "cpu", time.process_time))
        a, b = (statistics.median(times[k][1:]) for k in ("plain", "windowed"))
        print(f"| {size} | {a:.3f} | {b:.3f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()
