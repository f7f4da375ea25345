"""Forward + adjoint wall time of our operators against the matching deepinv physics, side by side.

Run: ``python -m benchmarks.studies.operator_speed [--device cuda] [--batch 8] [--size 256] [--repeats 20]``.
Prints one row per pair with the median time of ``A(x)`` followed by ``A^H(A x)`` and the ratio
ours / deepinv (< 1: ours is faster). Both sides use the same data, dtype (float32) and device; each
pair is warmed up and then timed in alternation so that machine load affects both alike.

Pairs (``PAIRS``; add one with a function returning ``(label, ours_fwd_adj, deepinv_fwd_adj, x)``):

* Blur, Gaussian 61x61 std 3, circular (FFT): ``ops.Blur`` vs ``deepinv.physics.BlurFFT``;
* Blur, same kernel, zero padding: ``ops.Blur(boundary="zeros")`` vs ``deepinv.physics.Blur(padding=
  "constant")`` (deepinv: direct convolution);
* Downsample x4 bicubic: ``ops.Downsample`` (separable imresize matrices) vs ``deepinv.physics.Downsampling
  (filter="bicubic", padding="circular")`` (2-D convolution + decimation);
* MRI, 8 coils, 320x320, R=4: ``ops.MRI`` vs ``deepinv.physics.MultiCoilMRI``;
* CT, 256x256, batch 8, 180 views: ``ops.CT`` (sparse matched projector) vs ``deepinv.physics.Tomography``.
"""
from __future__ import annotations

import argparse
import math
import statistics
from typing import Callable

import torch

import operators as ops

from .harness import seconds

Pair = tuple[str, Callable[[], torch.Tensor], Callable[[], torch.Tensor]]


def _time(fn: Callable[[], torch.Tensor], device: torch.device) -> float:
    return seconds(fn, device)


def blur_pairs(batch: int, size: int, device: torch.device) -> list[Pair]:
    import deepinv

    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).to(device)
    k = ops.kernels.gaussian(61, 3.0)
    ours_c = ops.Blur(k, (3, size, size)).to(device)
    theirs_c = deepinv.physics.BlurFFT(img_size=(3, size, size), filter=k[None, None], device=device)
    ours_z = ops.Blur(k, (3, size, size), boundary="zeros").to(device)
    theirs_z = deepinv.physics.Blur(filter=k[None, None].to(device), padding="constant", device=device)
    return [
        ("Blur circular 61x61", lambda: ours_c.H(ours_c(x)), lambda: theirs_c.A_adjoint(theirs_c.A(x))),
        ("Blur zeros 61x61", lambda: ours_z.H(ours_z(x)), lambda: theirs_z.A_adjoint(theirs_z.A(x))),
    ]


def downsample_pairs(batch: int, size: int, device: torch.device) -> list[Pair]:
    import deepinv

    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    ours = ops.Downsample((3, size, size), 4, "bicubic").to(device)
    theirs = deepinv.physics.Downsampling(img_size=(3, size, size), filter="bicubic", factor=4,
                                          padding="circular", device=device)
    return [("Downsample x4 bicubic", lambda: ours.H(ours(x)), lambda: theirs.A_adjoint(theirs.A(x)))]


# ---------------------------------------------------------------------------------------------
# medical operators (MRI from operators/mri.py, CT from operators/ct.py)
# ---------------------------------------------------------------------------------------------
def mri_pairs(batch: int, size: int, device: torch.device) -> list[Pair]:
    """8-coil SENSE MRI at 320x320 (fastMRI knee size), R=4 random lines. deepinv stores complex images
    as 2 real channels; both sides get the same complex image and coil maps."""
    import deepinv

    n, coils = 320, 8
    g = torch.Generator().manual_seed(2)
    mask = ops.masks.fastmri_random((n, n), 4, generator=g)
    maps = torch.randn(coils, n, n, dtype=torch.complex64, generator=g)
    maps = maps / maps.abs().pow(2).sum(0, keepdim=True).sqrt()
    xc = torch.randn(batch, 1, n, n, dtype=torch.complex64, generator=g).to(device)
    ours = ops.MRI(mask, coil_maps=maps, complex_images=True).to(device)
    theirs = deepinv.physics.MultiCoilMRI(mask=mask.to(device), coil_maps=maps.to(device), img_size=(n, n),
                                          device=device)
    xr = torch.view_as_real(xc[:, 0]).permute(0, 3, 1, 2).contiguous()  # (B, 2, H, W)
    return [("MRI 8 coils 320x320", lambda: ours.H(ours(xc)), lambda: theirs.A_adjoint(theirs.A(xr)))]


def ct_pairs(batch: int, size: int, device: torch.device) -> list[Pair]:
    """Parallel-beam CT at 256x256, 180 views in [0, 180), the same geometry on both sides: deepinv's
    circle=False detector count ceil(sqrt(2) n), and no operator-norm normalisation."""
    import deepinv

    n, views = 256, 180
    x = torch.rand(batch, 1, n, n, generator=torch.Generator().manual_seed(3)).to(device)
    ours = ops.CT(n, angles=views, n_detectors=math.ceil(math.sqrt(2) * n)).to(device)
    theirs = deepinv.physics.Tomography(angles=views, img_width=n, circle=False, normalize=False, device=device)
    return [("CT 256x256 180 views", lambda: ours.H(ours(x)), lambda: theirs.A_adjoint(theirs.A(x)))]


PAIRS = [blur_pairs, downsample_pairs, mri_pairs, ct_pairs]


def run(batch: int = 8, size: int = 256, repeats: int = 10, device: str = "cpu") -> list[dict]:
    dev = torch.device(device)
    rows = []
    for build in PAIRS:
        try:
            pairs = build(batch, size, dev)
        except Exception as e:  # noqa: BLE001 -- report a pair that cannot be built and go on
            print(f"{build.__name__}: skipped ({type(e).__name__}: {e})")
            continue
        for label, ours, theirs in pairs:
            with torch.no_grad():
                for fn in (ours, theirs):  # warm-up (FFT plans, caches)
                    fn()
                t_ours, t_theirs = [], []
                for _ in range(repeats):
                    t_ours.append(_time(ours, dev))
                    t_theirs.append(_time(theirs, dev))
            row = dict(op=label, ours_ms=1e3 * statistics.median(t_ours), deepinv_ms=1e3 * statistics.median(t_theirs))
            row["ratio"] = row["ours_ms"] / row["deepinv_ms"]
            rows.append(row)
            print(f"{label:26s} ours {row['ours_ms']:9.2f} ms   deepinv {row['deepinv_ms']:9.2f} ms   "
                  f"ratio {row['ratio']:.2f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, device {a.device}, batch {a.batch}, size {a.size}, "
          f"threads {torch.get_num_threads()}, median of {a.repeats}; time = A then A^H")
    run(a.batch, a.size, a.repeats, a.device)


if __name__ == "__main__":
    main()
