"""The studies' shared harness: timing, PSNR, denoiser-call counting, bundled checkpoints' cards and
operators from the benchmark's registry, so every study measures the same way the runner does.

* PSNR is :func:`benchmarks.metrics.psnr` (one implementation for the whole package);
* NFE is counted by :func:`benchmarks.cell.counted`, the runner's counter;
* operators come from :mod:`benchmarks.problems` by registry name (:func:`operator`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..cell import counted
from ..metrics import psnr
from ..registry import call_accepted, resolve

__all__ = ["RESULTS", "counted", "operator", "mean_psnr", "sync", "seconds", "timed_run",
           "checkpoint_note"]

#: where the studies' committed figures live
RESULTS = Path(__file__).with_name("results")


def operator(name: str, shape: tuple[int, ...], generator: torch.Generator | None = None,
             **kwargs: Any) -> Any:
    """The operator a suite names ``name`` (a registry key or ``module:function``), built for
    images of ``shape`` exactly as the runner builds it."""
    return call_accepted(resolve("operator", name), tuple(shape), generator=generator, **kwargs)


def mean_psnr(x_hat: Tensor, x: Tensor, data_range: float = 1.0) -> float:
    """PSNR (dB) averaged over the batch (or of one ``(C, H, W)`` image), ``x_hat`` clamped to
    ``[0, data_range]``."""
    if x.ndim == 3:
        x_hat, x = x_hat[None], x[None]
    return float(psnr(x_hat.detach().clamp(0, data_range), x, data_range).mean())


def sync(device: torch.device | str) -> None:
    """Wait for the accelerator, so a clock read after it counts the work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], Any], device: torch.device | str,
            clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds ``fn()`` takes on ``clock``, the device synchronised before and after."""
    sync(device)
    start = clock()
    fn()
    sync(device)
    return clock() - start


def timed_run(run: Callable[[], Tensor], x: Tensor, calls: list[int]) -> dict:
    """PSNR, wall and CPU seconds and denoiser calls (``calls`` from :func:`counted`) of one run;
    failures are recorded, not raised."""
    import restore

    sync(x.device)
    n0, wall, cpu = calls[0], time.perf_counter(), time.process_time()
    try:
        x_hat = run()
        sync(x.device)
        error = None
    except (restore.SolverDiverged, ValueError, RuntimeError) as e:
        x_hat, error = None, f"{type(e).__name__}: {e}"[:200]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    value = mean_psnr(x_hat, x) if x_hat is not None and torch.isfinite(x_hat).all() else float("nan")
    return dict(psnr=value, wall=wall, cpu=cpu, nfe=calls[0] - n0, error=error)


def checkpoint_note(name: str) -> str:
    """Training steps of a bundled prior's weights (they are refreshed while training runs)."""
    from priors.load import WEIGHTS_DIR

    card = WEIGHTS_DIR / f"{name}.json"
    if not card.exists():
        return "not a bundled prior"
    train = json.loads(card.read_text()).get("train", {})
    return f"checkpoint after {train.get('steps', '?')} training steps ({train.get('images_seen', '?')} images)"
