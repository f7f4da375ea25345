"""Offline photographs for the ``natural`` prior: scikit-image's and scikit-learn's sample images.

Four whole photographs are held out for testing and never cropped for training: ``astronaut``,
``coffee``, ``chelsea`` and ``rocket``. Training draws random crops, with flips and rescaling, from the
rest; scikit-image's grayscale photographs enter as gray RGB so the prior sees more edges and textures.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["HELD_OUT", "TRAIN_RGB", "TRAIN_GRAY", "load_photo", "training_bank", "file_weighted_bank", "random_crops"]

HELD_OUT = ("astronaut", "coffee", "chelsea", "rocket")
TRAIN_RGB = ("hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle_left",
             "stereo_motorcycle_right", "sklearn_china", "sklearn_flower")
TRAIN_GRAY = ("camera", "coins", "moon", "clock", "grass", "gravel", "brick", "page")
SCALES = (1.0, 0.75, 0.5, 0.35, 0.25, 0.18, 0.125)


def load_photo(name: str) -> torch.Tensor:
    """A photograph as a float32 tensor (3, H, W) in [0, 1] (grayscale ones repeated to 3 channels)."""
    if name.startswith("sklearn_"):
        from sklearn.datasets import load_sample_image

        array = load_sample_image(name.removeprefix("sklearn_") + ".jpg")
    elif name.startswith("stereo_motorcycle_"):
        import skimage.data

        left, right, _ = skimage.data.stereo_motorcycle()
        array = left if name.endswith("left") else right
    else:
        import skimage.data

        array = getattr(skimage.data, name)()
    image = torch.from_numpy(np.asarray(array, dtype=np.float32) / 255.0)
    if image.ndim == 2:
        image = image[None].expand(3, -1, -1)
    else:
        image = image[..., :3].permute(2, 0, 1)
    return image.contiguous()


def training_bank(crop: int, rgb_weight: float = 3.0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every training photograph at every scale in ``SCALES`` that still holds a ``crop`` x ``crop`` patch,
    and the weight each is drawn with: colour photographs ``rgb_weight`` times as often as gray ones."""
    overlap = set(HELD_OUT) & set(TRAIN_RGB + TRAIN_GRAY)
    assert not overlap, f"held-out photographs in the training list: {overlap}"
    bank, weights = [], []
    for name in TRAIN_RGB + TRAIN_GRAY:
        image = load_photo(name)
        for scale in SCALES:
            h, w = int(image.shape[1] * scale), int(image.shape[2] * scale)
            if min(h, w) >= crop:
                bank.append(F.interpolate(image[None], size=(h, w), mode="area")[0] if scale != 1 else image)
                weights.append(rgb_weight if name in TRAIN_RGB else 1.0)
    return bank, torch.tensor(weights)


def file_weighted_bank(images: list[torch.Tensor], files: list[str], crop: int,
                       scales: tuple[float, ...] = SCALES) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every image at every scale in ``scales`` that still holds a ``crop`` x ``crop`` patch, weighted so that
    each source file (``files[i]`` names image i's: a photograph, a volume, a DICOM file) is drawn equally
    often, however many slices or scales it gives."""
    if len(images) != len(files):
        raise ValueError(f"files: expected one per image ({len(images)}), got {len(files)}")
    per_file = {}
    for image, name in zip(images, files):
        for scale in scales:
            h, w = int(image.shape[1] * scale), int(image.shape[2] * scale)
            if min(h, w) >= crop:
                scaled = F.interpolate(image[None], size=(h, w), mode="area")[0] if scale != 1 else image
                per_file.setdefault(name, []).append(scaled)
    if not per_file:
        raise ValueError(f"crop: no image holds a {crop} x {crop} patch")
    bank = [b for entries in per_file.values() for b in entries]
    weights = torch.tensor([1.0 / len(entries) for entries in per_file.values() for _ in entries])
    return bank, weights


def random_crops(bank: list[torch.Tensor], weights: torch.Tensor, n: int, crop: int,
                 generator: torch.Generator) -> torch.Tensor:
    """``n`` random crops (n, 3, crop, crop) with random flips, images drawn by ``weights``."""
    picks = torch.multinomial(weights, n, replacement=True, generator=generator)
    crops = []
    for index in picks.tolist():
        image = bank[index]
        top = int(torch.randint(0, image.shape[1] - crop + 1, (1,), generator=generator))
        left = int(torch.randint(0, image.shape[2] - crop + 1, (1,), generator=generator))
        patch = image[:, top:top + crop, left:left + crop]
        if torch.rand(1, generator=generator) < 0.5:
            patch = patch.flip(-1)
        if torch.rand(1, generator=generator) < 0.5:
            patch = patch.flip(-2)
        crops.append(patch)
    return torch.stack(crops)
