"""Artifacts of a cell: PNG pictures and NPZ arrays of the saved images, as bytes by path
relative to the results folder (the runner writes them; the report reads them)."""

from __future__ import annotations

import io
import re

import numpy as np
import torch


def safe(label: str) -> str:
    """``label`` as a file name: anything but letters, digits, ``_.-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label))


def image_folder(cell, name: str) -> str:
    """Where a cell's pictures of image ``name`` go, relative to the results folder."""
    return "/".join(safe(p) for p in ("images", cell.prior, cell.dataset, cell.operator,
                                      f"seed{cell.seed}", name))


def to_display(t: torch.Tensor, normalise: bool = False) -> np.ndarray | None:
    """A (H, W) or (H, W, 3) float array in [0, 1] for a tensor, or None for a 1-D vector.

    Complex data shows log-magnitude; extra leading axes (coils, channels other than 1 or 3)
    are combined by root-sum-of-squares; data outside [0, 1] is min-max scaled."""
    t = t.detach().cpu()
    if t.is_complex():
        t, normalise = torch.log1p(t.abs() / (t.abs().max() + 1e-12) * 1e3), True
    t = t.float()
    if t.ndim < 2:
        return None
    if t.ndim == 2:
        t = t[None]
    t = t.reshape(-1, *t.shape[-2:]) if t.ndim > 3 else t
    if t.shape[0] not in (1, 3):
        t, normalise = t.pow(2).sum(0, keepdim=True).sqrt(), True
    if normalise or t.min() < -0.05 or t.max() > 1.05:
        t = (t - t.min()) / (t.max() - t.min() + 1e-12)
    a = t.clamp(0, 1).numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def png(t: torch.Tensor, normalise: bool = False) -> bytes:
    from PIL import Image
    a = to_display(t, normalise)
    buf = io.BytesIO()
    Image.fromarray((a * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _measurement_display(y: torch.Tensor, x: torch.Tensor) -> bytes | None:
    return None if to_display(y) is None else png(y, normalise=y.shape != x.shape)


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v.astype(np.float32) for k, v in arrays.items()})
    return buf.getvalue()



def image_artifacts(cell, name: str, x: torch.Tensor, y: torch.Tensor, x_hat: torch.Tensor,
                    std: torch.Tensor | None = None) -> dict[str, bytes]:
    """Truth, measurement, the solver's estimate (PNG and NPZ) and, for a solver that drew several
    samples, its pixelwise std, under ``images/prior/dataset/operator/seedN/name/``."""
    folder, solver = image_folder(cell, name), safe(cell.solver)
    out = {f"{folder}/truth.png": png(x)}
    shown = _measurement_display(y, x)
    if shown is not None:
        out[f"{folder}/measurement.png"] = shown
    out[f"{folder}/{solver}.png"] = png(x_hat)
    arrays = {"x_hat": x_hat.cpu().numpy()}
    if std is not None:
        out[f"{folder}/{solver}_std.png"] = png(std, normalise=True)
        arrays["std"] = std.cpu().numpy()
    out[f"{folder}/{solver}.npz"] = npz(**arrays)
    return out
