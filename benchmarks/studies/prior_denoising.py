"""How good are the bundled priors at what a prior is for: denoising in their domain.

``python -m benchmarks.studies.prior_denoising [--size 128] [--out runs/prior_denoising]``
``python -m benchmarks.studies.prior_denoising --only natural --natural /path/to/run/natural.safetensors`` scores a
training run's weights before they are shipped.

PSNR of ``prior.denoise(x + sigma n, sigma)`` on the held-out sets at sigma = 0.05, 0.1, 0.2, next to
BM3D (the ``bm3d`` package, told the true sigma) and a Gaussian filter whose width is chosen per sigma
as the best on the same images (an oracle, so the baseline is as strong as a Gaussian filter can be).
Also pydicom's real CT and MR slices as an out-of-domain check for the phantom prior, and the time of one
forward pass at 256 px. Prints a Markdown table and writes it, with a picture, under ``--out``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

import priors
from priors.testsets import load_testset

from .harness import mean_psnr as psnr

SIGMAS = (0.05, 0.1, 0.2)
FILTER_WIDTHS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def bm3d_denoise(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    import bm3d

    array = noisy.permute(1, 2, 0).double().numpy()
    if array.shape[2] == 3:
        out = bm3d.bm3d_rgb(array, sigma)
    else:
        out = bm3d.bm3d(array[..., 0], sigma)[..., None]
    return torch.from_numpy(np.asarray(out)).permute(2, 0, 1).float()


def gaussian_best(noisy: list[torch.Tensor], clean: list[torch.Tensor]) -> tuple[list[float], float]:
    """Per-image PSNR of the Gaussian filter whose width is best on average over the set."""
    best = None
    for width in FILTER_WIDTHS:
        scores = [psnr(torch.from_numpy(gaussian_filter(n.numpy(), sigma=(0, width, width))), c)
                  for n, c in zip(noisy, clean)]
        if best is None or np.mean(scores) > np.mean(best[0]):
            best = (scores, width)
    return best


def dicom_slices(size: int) -> list[tuple[str, torch.Tensor]]:
    """pydicom's bundled CT (windowed to [-1000, 1000] HU) and MR (scaled by its maximum) test slices,
    resized to ``size``: a real-data check for the phantom prior."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    items = []
    for name in ("CT_small.dcm", "MR_small.dcm"):
        ds = dcmread(get_testdata_file(name))
        pixels = ds.pixel_array.astype(np.float32)
        if ds.Modality == "CT":
            hu = pixels * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            pixels = np.clip((hu + 1000) / 2000, 0, 1)
        else:
            pixels = pixels / pixels.max()
        image = torch.nn.functional.interpolate(torch.from_numpy(pixels)[None, None], size=(size, size),
                                                mode="bilinear", antialias=True, align_corners=False)[0]
        items.append((name, image.clamp(0, 1)))
    return items


def evaluate(prior, items, sigmas, generator_seed: int = 0, use_bm3d: bool = True) -> list[dict]:
    rows = []
    for sigma in sigmas:
        g = torch.Generator().manual_seed(generator_seed)
        clean = [x for _, x in items]
        noisy = [x + sigma * torch.randn(x.shape, generator=g) for x in clean]
        with torch.no_grad():
            ours = [psnr(prior.denoise(n[None], sigma)[0], c) for n, c in zip(noisy, clean)]
        gauss, width = gaussian_best(noisy, clean)
        row = {"sigma": sigma, "noisy": np.mean([psnr(n, c) for n, c in zip(noisy, clean)]),
               "prior": np.mean(ours), "gaussian": np.mean(gauss), "gaussian_width": width}
        if use_bm3d:
            row["bm3d"] = np.mean([psnr(bm3d_denoise(n, sigma), c) for n, c in zip(noisy, clean)])
        rows.append(row)
    return rows


def forward_time(prior, channels: int, size: int = 256) -> float:
    x = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        prior.denoise(x, 0.1)
        start = time.perf_counter()
        prior.denoise(x, 0.1)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("runs/prior_denoising"))
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument("--only", choices=("phantom", "natural"), default=None, help="score one prior")
    parser.add_argument("--phantom", default="phantom", help="the phantom prior: bundled name or weights path")
    parser.add_argument("--natural", default="natural", help="the natural prior: bundled name or weights path")
    args = parser.parse_args(argv)
    sources = {"phantom": args.phantom, "natural": args.natural}
    args.out.mkdir(parents=True, exist_ok=True)

    cases = [
        ("phantom", "phantom (8 held-out)", load_testset("phantom", args.size)),
        ("phantom", "Shepp-Logan (out of family)", load_testset("shepp_logan", args.size)),
        ("phantom", "pydicom CT + MR slices (real data)", dicom_slices(args.size)),
        ("natural", "4 held-out photos", load_testset("natural", args.size)),
    ]
    lines = [f"Denoising PSNR (dB) at {args.size}x{args.size}; Gaussian filter width chosen per sigma (oracle); best in bold.", "",
             "| prior | test set | sigma | noisy | Gaussian filter | BM3D | prior.denoise |", "|---|---|---|---|---|---|---|"]
    for prior_name, label, items in cases:
        if not items or args.only not in (None, prior_name):
            continue
        prior = priors.load(sources[prior_name])
        for row in evaluate(prior, items, SIGMAS, use_bm3d=not args.no_bm3d):
            scores = {k: row[k] for k in ("gaussian", "bm3d", "prior") if k in row}
            best = max(scores, key=scores.get)
            cell = {k: (f"**{v:.2f}**" if k == best else f"{v:.2f}") for k, v in scores.items()}
            lines.append(f"| {prior_name} | {label} | {row['sigma']} | {row['noisy']:.2f} | "
                         f"{cell['gaussian']} (w={row['gaussian_width']}) | {cell.get('bm3d', '-')} | {cell['prior']} |")
    lines.append("")
    for prior_name, channels in (("phantom", 1), ("natural", 3)):
        if args.only not in (None, prior_name):
            continue
        seconds = forward_time(priors.load(sources[prior_name]), channels)
        lines.append(f"- `{prior_name}`: one denoiser pass at 256x256 takes {seconds * 1000:.0f} ms on this CPU")
    text = "\n".join(lines)
    print(text)
    (args.out / "prior_denoising.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
