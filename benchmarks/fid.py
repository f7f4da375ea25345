r"""FID and KID of a cell's reconstructions against its ground truths, from Inception-v3 pool features.

The protocols report FID over the test set: DPS and DiffPIR between the reconstructions and the
ground-truth images of the 1k (or 100) test images, with ``pytorch-fid``. A suite asks for them with
``set_metrics: [fid, kid]``; the runner then keeps each image's 2048 pool features and scores the
cell's set at the end.

Weights are never downloaded. They are read from torch's hub cache,
``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()``), where ``pytorch-fid`` and torchvision put them:

* ``pt_inception-2015-12-05-6726825d.pth``: pytorch-fid's port of the TensorFlow FID Inception, the
  network every published FID uses (needs the ``pytorch-fid`` package for its architecture);
* else ``inception_v3_google-0cc3c7bd.pth``: torchvision's ImageNet Inception-v3. Its FID is a valid
  distance but not comparable with published values (other weights, other pooling blocks); the
  result names the file it came from.

With neither, :func:`unavailable_reason` says which file to put where, and the metrics are left out.

Maths (float64): FID (Heusel et al. 2017) :math:`\|\mu_1 - \mu_2\|^2 + \mathrm{Tr}(\Sigma_1 + \Sigma_2 -
2 (\Sigma_1 \Sigma_2)^{1/2})` with unbiased covariances, the trace of the square root taken from the
eigenvalues of :math:`\Sigma_1 \Sigma_2` (real and non-negative: it is similar to a PSD matrix); KID
(Binkowski et al. 2018) the unbiased MMD² with the kernel :math:`k(a, b) = (a \cdot b / d + 1)^3`, over
the whole sets (one subset of all images; the usual 100 random subsets of 1000 are the same set for
1000 images or fewer).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["FID_WEIGHTS", "TORCHVISION_WEIGHTS", "SET_METRICS", "weights_file", "unavailable_reason",
           "inception_features", "fid", "kid", "set_metrics"]

FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS
TORCHVISION_WEIGHTS = "inception_v3_google-0cc3c7bd.pth"
#: the set metrics a suite may ask for, and whether higher is better
SET_METRICS: dict[str, bool] = {"fid": False, "kid": False}


def _checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_file() -> Path | None:
    """The Inception weights FID would use (pytorch-fid's first, then torchvision's), or None."""
    for name in (FID_WEIGHTS, TORCHVISION_WEIGHTS):
        if (_checkpoints() / name).is_file():
            return _checkpoints() / name
    return None


def unavailable_reason() -> str | None:
    """Why FID/KID cannot be computed here, naming the file to put where; None when they can."""
    path = weights_file()
    if path is not None and path.name == FID_WEIGHTS:
        try:
            import pytorch_fid  # noqa: F401
        except ImportError:
            return f"{path} is there but its network needs the pytorch-fid package (pip install pytorch-fid)"
    if path is not None:
        return None
    return (f"no Inception weights in torch's hub cache: put {FID_WEIGHTS} (pytorch-fid's FID network, "
            f"{FID_WEIGHTS_URL}; pip install pytorch-fid) or torchvision's {TORCHVISION_WEIGHTS} in "
            f"{_checkpoints()} (set TORCH_HOME to move it); nothing is downloaded")


@functools.lru_cache(maxsize=2)
def inception_features(device: str = "cpu") -> tuple[Callable[[Tensor], Tensor], str] | None:
    """``(extract, source)``: ``extract`` maps images ``(B, 3, H, W)`` in [0, 1] to ``(B, 2048)`` pool
    features (one-channel images are repeated); ``source`` names the weights file. None when
    :func:`unavailable_reason` says why."""
    if unavailable_reason() is not None:
        return None
    from priors.random import global_rng_restored

    path = weights_file()
    with global_rng_restored():  # both constructors initialise layers from the global RNG
        if path.name == FID_WEIGHTS:
            from pytorch_fid.inception import InceptionV3

            # the file is in the hub cache, so its loader reads it there and downloads nothing
            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
            forward = lambda x: net(x)[0].flatten(1)  # noqa: E731 - takes [0, 1], resizes to 299 itself
        else:
            import torchvision

            net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            net.fc = torch.nn.Identity()  # the 2048 pool features

            def forward(x: Tensor) -> Tensor:
                x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
                return net(2 * x - 1)  # the TF-ported weights see [-1, 1] (transform_input's target)
    net = net.eval().requires_grad_(False).to(device)

    def extract(images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images: expected (B, 1 or 3, H, W), got {tuple(images.shape)}")
        images = images.to(device=device, dtype=torch.float32).clamp(0, 1).expand(-1, 3, -1, -1)
        with torch.no_grad():
            return forward(images).double().cpu()
    return extract, str(path)


def _features(a: Tensor | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"{name}: expected features (n >= 2, d), got shape {a.shape}")
    return a


def fid(real: Tensor | np.ndarray, fake: Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(n, d)`` (see the module)."""
    a, b = _features(real, "real"), _features(fake, "fake")
    mu = a.mean(0) - b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_trace = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    return float(mu @ mu + np.trace(s1) + np.trace(s2) - 2 * root_trace)


def kid(real: Tensor | np.ndarray, fake: Tensor | np.ndarray) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel between two feature sets ``(n, d)``."""
    a, b = _features(real, "real"), _features(fake, "fake")
    d = a.shape[1]
    kaa, kbb, kab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    return float((kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
                 - 2 * kab.mean())


def set_metrics(names: list[str], real: list[Tensor], fake: list[Tensor]) -> dict[str, float]:
    """The set metrics ``names`` between the stacked feature lists (two or more images each)."""
    unknown = [n for n in names if n not in SET_METRICS]
    if unknown:
        raise ValueError(f"set_metrics: expected names among {', '.join(SET_METRICS)}, got {unknown}")
    a, b = torch.cat(real).numpy(), torch.cat(fake).numpy()
    functions = {"fid": fid, "kid": kid}
    return {name: functions[name](a, b) for name in names}
