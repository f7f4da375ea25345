"""Forward + adjoint time of our MRI (8 coils) and CT against deepinv's physics, side by side in one run.

``python -m benchmarks.medical_speed [--device cuda] [--repeats 5]``. Prints one row per operator with the
median time of ``op(x)`` followed by ``op.H(op(x))`` and the ratio ours / deepinv (< 1: ours is faster).
Not a timed test; the figures depend on the machine.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings

import torch


def _median_time(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: builds memoised buffers, cuFFT plans
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _mri_pair(device: torch.device, size: int, coils: int, batch: int):
    import deepinv as dinv

    from operators import masks
    from operators.mri import MRI, rss

    g = torch.Generator().manual_seed(0)
    mask = masks.fastmri_random((size, size), 4, generator=g)
    maps = torch.randn(coils, size, size, dtype=torch.complex64, generator=g)
    maps = maps / rss(maps, dim=0)
    t0 = time.perf_counter()
    ours = MRI(mask, maps)
    t1 = time.perf_counter()
    theirs = dinv.physics.MultiCoilMRI(mask=mask, coil_maps=maps, img_size=(2, size, size), device=device)
    t2 = time.perf_counter()
    x = torch.rand(batch, 1, size, size, generator=g).to(device)
    x2 = torch.cat([x, torch.zeros_like(x)], 1)  # deepinv: real and imaginary channels
    return (lambda: ours.H(ours(x))), (lambda: theirs.A_adjoint(theirs.A(x2))), t1 - t0, t2 - t1


def _ct_pair(device: torch.device, size: int, views: int, batch: int):
    import deepinv as dinv

    from operators.ct import CT

    n_det = math.ceil(math.sqrt(2) * size)  # deepinv's circle=False detector: the image diagonal
    t0 = time.perf_counter()
    ours = CT(size, views, n_detectors=n_det)  # builds the sparse projector once
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = dinv.physics.Tomography(angles=views, img_width=size, circle=False, normalize=False,
                                         device=device)
    t2 = time.perf_counter()
    x = torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    return (lambda: ours.H(ours(x))), (lambda: theirs.A_adjoint(theirs.A(x))), t1 - t0, t2 - t1


def medical_speed(device: str | torch.device = "cpu", repeats: int = 5, mri_size: int = 320, coils: int = 8,
                  ct_size: int = 256, views: int = 180, batch: int = 8) -> list[dict]:
    """Time forward + adjoint of MRI (multi-coil SENSE) and CT, ours vs deepinv, in one process.

    :return: rows ``{"operator", "shape", "ours_s", "deepinv_s", "ratio", "ours_build_s", "deepinv_build_s"}``
        (build: constructing the operator, not included in the timed forward + adjoint).
    """
    device = torch.device(device)
    rows = []
    cases = [(f"MRI {coils} coils", f"{batch}x1x{mri_size}x{mri_size}", _mri_pair(device, mri_size, coils, batch)),
             (f"CT {views} views", f"{batch}x1x{ct_size}x{ct_size}", _ct_pair(device, ct_size, views, batch))]
    with torch.no_grad():
        for name, shape, (ours, theirs, build_ours, build_theirs) in cases:
            t_ours, t_theirs = _median_time(ours, repeats, device), _median_time(theirs, repeats, device)
            rows.append({"operator": name, "shape": shape, "ours_s": t_ours, "deepinv_s": t_theirs,
                         "ratio": t_ours / t_theirs, "ours_build_s": build_ours, "deepinv_build_s": build_theirs})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"{'operator':<16} {'batch shape':<16} {'ours (s)':>10} {'deepinv (s)':>12} {'ours/deepinv':>13} "
          f"{'build ours/deepinv (s)':>24}")
    for r in medical_speed(args.device, args.repeats):
        print(f"{r['operator']:<16} {r['shape']:<16} {r['ours_s']:>10.4f} {r['deepinv_s']:>12.4f} {r['ratio']:>13.3f} "
              f"{r['ours_build_s']:>12.2f} / {r['deepinv_build_s']:.2f}")


if __name__ == "__main__":
    main()
