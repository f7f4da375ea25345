"""What a larger training crop buys: denoising PSNR of priors trained at different crop sizes, scored side
by side on the held-out photographs at several test sizes.

``python -m benchmarks.studies.training_size --weights START.safetensors A.safetensors B.safetensors [--sizes 64 128 256]``

The intended comparison (issue 4): from one checkpoint, continue the ``natural`` recipe for equal compute
at 32 px (batch 64) and at 64 px (batch 16, so the same pixels per step), then score the start and both
arms here. Each weight file's card says its crop size, steps, images seen and training seconds. All
priors see the same noisy images (one seed per sigma), so the differences are paired; BM3D is the
reference a prior is meant to beat.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import priors
from priors.testsets import load_testset

from .prior_denoising import SIGMAS, evaluate


def describe(weights: Path) -> str:
    """``crop 64 px, 9000 steps, 0.49M images, 6.1 h`` from the weights' JSON card."""
    train = json.loads(weights.with_suffix(".json").read_text())["train"]
    return (f"crop {train['recipe']['size']} px, {train['steps']} steps, {train['images_seen'] / 1e6:.2f}M images, "
            f"{train['seconds'] / 3600:.2f} h")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, nargs="+", required=True, help="safetensors files with their cards")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="test image sizes (px)")
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/training_size"))
    args = parser.parse_args(argv)
    for weights in args.weights:
        if not weights.with_suffix(".json").exists():
            raise ValueError(f"weights: expected a JSON card beside {weights}")
    labels = [f"P{i}" for i in range(len(args.weights))]
    lines = ["Denoising PSNR (dB) on the 4 held-out photos; the same noise for every prior.", ""]
    lines += [f"- {label}: `{weights.name}` ({describe(weights)})" for label, weights in zip(labels, args.weights)]
    gains = " | ".join(f"{b} - {a}" for a, b in zip(labels, labels[1:]))
    header = ["test size", "sigma", *labels, *(["BM3D"] if not args.no_bm3d else [])]
    lines += ["", "| " + " | ".join(header) + (f" | {gains} |" if gains else " |"),
              "|" + "---|" * (len(header) + len(labels) - 1)]
    loaded = [priors.load(weights) for weights in args.weights]
    for size in args.sizes:
        items = load_testset("natural", size)
        # BM3D once per size, beside the first prior
        scores = [evaluate(prior, items, SIGMAS, use_bm3d=i == 0 and not args.no_bm3d) for i, prior in enumerate(loaded)]
        for k, sigma in enumerate(SIGMAS):
            values = [rows[k]["prior"] for rows in scores]
            cells = [f"{v:.2f}" for v in values]
            if not args.no_bm3d:
                cells.append(f"{scores[0][k]['bm3d']:.2f}")
            cells += [f"{b - a:+.2f}" for a, b in zip(values, values[1:])]
            lines.append(f"| {size} | {sigma} | " + " | ".join(cells) + " |")
        print(f"size {size} done", flush=True)
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training_size.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
