"""Reference figures for the medical operators, against scikit-image and the fastMRI mask definition.

``python -m benchmarks.studies.ct_mri_reference [--size 256] [--seeds 100]`` prints:

1. CT forward projection vs ``skimage.transform.radon`` on the Shepp-Logan phantom (relative difference),
   with skimage's ``circle=True`` (N detectors) and ``circle=False`` (ceil(sqrt(2) N) detectors) conventions;
2. FBP vs ``skimage.transform.iradon`` at 180 and 30 views: PSNR of each against the phantom, side by side;
3. fastMRI 1-D masks (``operators.masks``) at R=4 and R=8: measured acceleration and centre lines against the
   fastMRI definition (``round(W * cf)`` centre columns, cf = 0.08 / 0.04, expected acceleration R);
Speed against deepinv lives in :mod:`benchmarks.studies.operator_speed`.
"""
from __future__ import annotations

import argparse
import math
import warnings

import numpy as np
import torch

from ..metrics import psnr


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR against ``ref`` with its own range as the data range."""
    return float(psnr(torch.from_numpy(x)[None, None], torch.from_numpy(ref)[None, None],
                      float(ref.max() - ref.min())))


def phantom(size: int) -> np.ndarray:
    """skimage's 400 x 400 Shepp-Logan phantom resized to ``size`` (zero outside the inscribed circle)."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    return resize(shepp_logan_phantom(), (size, size), anti_aliasing=True, order=1)


def ct_reference(size: int = 256) -> dict:
    """Relative difference of our projector to radon, and PSNRs of our FBP and iradon at 180 / 30 views."""
    from skimage.transform import iradon, radon

    from operators.ct import CT, fbp

    img = phantom(size)
    x = torch.from_numpy(img)[None, None]
    out: dict = {"size": size}
    views = np.arange(180.0)
    for circle, n_det in ((True, size), (False, math.ceil(math.sqrt(2) * size))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # radon warns about the outer ring of the resized phantom
            ref = radon(img, views, circle=circle)
        ours = CT(size, views, n_detectors=n_det)(x).numpy()[0, 0]
        out[f"radon_rel_diff_circle_{circle}"] = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
    for n_views in (180, 30):
        op = CT.sparse_view(size, n_views)
        theta = op.angles.numpy()
        sino = op(x)
        ours = fbp(op, sino).numpy()[0, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_sino = radon(img, theta, circle=True)
        theirs = iradon(ref_sino, theta, circle=True, filter_name="ramp")
        out[f"fbp_{n_views}"] = {"psnr_ours": _psnr(ours, img), "psnr_iradon": _psnr(theirs, img),
                                 "max_abs_diff": float(np.abs(ours - theirs).max())}
    return out


def _centre_run(cols: np.ndarray) -> int:
    """Length of the run of sampled columns that contains the centre column W // 2."""
    c = cols.size // 2
    if not cols[c]:
        return 0
    lo, hi = c, c
    while lo > 0 and cols[lo - 1]:
        lo -= 1
    while hi < cols.size - 1 and cols[hi + 1]:
        hi += 1
    return hi - lo + 1


def mask_reference(shape: tuple[int, int] = (320, 320), seeds: int = 100) -> list[dict]:
    """Measured acceleration (W / mean number of sampled columns over seeds, and the per-seed range) and centre
    lines of our fastMRI masks."""
    from operators import masks

    W = shape[1]
    rows = []
    for kind, make in (("random", masks.fastmri_random), ("equispaced", masks.fastmri_equispaced)):
        for R, cf in ((4, 0.08), (8, 0.04)):
            counts, runs, centre_ok = [], [], []
            n_low = round(W * cf)
            start = (W - n_low + 1) // 2  # fastMRI: pad = (num_cols - num_low_freqs + 1) // 2
            for seed in range(seeds):
                m = make(shape, R, generator=torch.Generator().manual_seed(seed))
                cols = (m[0] != 0).numpy()
                counts.append(cols.sum())
                runs.append(_centre_run(cols))
                centre_ok.append(bool(cols[start:start + n_low].all()))
            rows.append({"mask": kind, "R": R, "cf": cf, "fastmri_centre_lines": n_low,
                         "measured_accel_mean": float(W / np.mean(counts)), "measured_accel_min": float(W / np.max(counts)),
                         "measured_accel_max": float(W / np.min(counts)),
                         "centre_run_min": int(np.min(runs)), "centre_run_median": float(np.median(runs)),
                         "centre_block_always_sampled": all(centre_ok)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=100)
    args = parser.parse_args(argv)

    ct = ct_reference(args.size)
    print(f"CT, Shepp-Logan {args.size}x{args.size}, 180 views on [0, 180)")
    print(f"  forward vs skimage radon, circle=True  ({args.size} det): rel. diff {ct['radon_rel_diff_circle_True']:.2e}")
    print(f"  forward vs skimage radon, circle=False ({math.ceil(math.sqrt(2) * args.size)} det): "
          f"rel. diff {ct['radon_rel_diff_circle_False']:.2e}")
    print(f"  {'views':>5} {'PSNR ours FBP':>14} {'PSNR iradon':>12} {'max |ours - iradon|':>20}")
    for n in (180, 30):
        r = ct[f"fbp_{n}"]
        print(f"  {n:>5} {r['psnr_ours']:>14.2f} {r['psnr_iradon']:>12.2f} {r['max_abs_diff']:>20.2e}")

    print(f"\nfastMRI 1-D masks, 320x320, {args.seeds} seeds (fastMRI: expected acceleration R, round(W cf) centre lines)")
    print(f"  {'mask':<11} {'R':>2} {'cf':>5} {'W/mean(cols) [min, max]':>24} {'fastMRI centre':>15} "
          f"{'centre run min/median':>22} {'centre block kept':>18}")
    for r in mask_reference(seeds=args.seeds):
        print(f"  {r['mask']:<11} {r['R']:>2} {r['cf']:>5.2f} {r['measured_accel_mean']:>8.3f} "
              f"[{r['measured_accel_min']:.2f}, {r['measured_accel_max']:.2f}]{'':>1} {r['fastmri_centre_lines']:>15} "
              f"{r['centre_run_min']:>14} / {r['centre_run_median']:<6.1f} {str(r['centre_block_always_sampled']):>18}")


if __name__ == "__main__":
    main()
