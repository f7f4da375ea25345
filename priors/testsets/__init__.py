"""The small offline test sets that ship beside the bundled priors.

* ``"phantom"``: held-out phantoms, seeds ``TEST_SEED_OFFSET + i`` (disjoint from every training batch);
* ``"shepp_logan"``: scikit-image's Shepp-Logan phantom, an out-of-family case for the phantom prior;
* ``"natural"``: the four held-out photographs (never cropped for training), centre-cropped square and
  stored at 256 px; smaller sizes are area-downsampled from those files.
* ``"medical_ct"`` and ``"medical_mr"``: real slices from files in the data manifest's ``test`` split
  (never seen by the ``medical`` prior), 16-bit PNGs at 256 px written by
  ``python -m priors.data_sources bundle``; provenance and licences in ``medical.json``. CT: a head
  slice (pydicom-data ``693_UNCR.dcm``, window [-1000, 1000] HU); MR: an axial rhesus-macaque brain
  (INIA19 template, mricron-data) and an abdominal slice (pydicom-data ``MR-SIEMENS``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..phantoms import TEST_SEED_OFFSET, phantom
from ..photos import HELD_OUT

__all__ = ["NAMES", "load_testset"]

NAMES = ("phantom", "shepp_logan", "natural", "medical_ct", "medical_mr")
_MEDICAL = {"medical_ct": ("ct_head",), "medical_mr": ("mr_macaque_brain", "mr_abdomen")}
_HERE = Path(__file__).parent


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    if image.shape[-1] == size and image.shape[-2] == size:
        return image
    return F.interpolate(image[None], size=(size, size), mode="area")[0]


def load_testset(name: str, size: int = 64, n: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """``[(image_name, image (C, size, size) in [0, 1]), ...]`` for one of :data:`NAMES`."""
    if name == "phantom":
        count = 8 if n is None else n
        return [(f"phantom_{i}", phantom(TEST_SEED_OFFSET + i, size)) for i in range(count)]
    if name == "shepp_logan":
        from skimage.data import shepp_logan_phantom

        image = torch.from_numpy(shepp_logan_phantom().astype(np.float32))[None]
        return [("shepp_logan", _resize(image, size).clamp(0, 1))]
    if name == "natural":
        from PIL import Image

        items = []
        for photo in HELD_OUT[: n or len(HELD_OUT)]:
            array = np.asarray(Image.open(_HERE / f"{photo}.png").convert("RGB"), dtype=np.float32) / 255
            items.append((photo, _resize(torch.from_numpy(array).permute(2, 0, 1).contiguous(), size)))
        return items
    if name in _MEDICAL:
        from PIL import Image

        items = []
        for slice_name in _MEDICAL[name][: n or None]:
            array = np.asarray(Image.open(_HERE / f"{slice_name}.png"), dtype=np.float32) / 65535
            items.append((slice_name, _resize(torch.from_numpy(array)[None], size)))
        return items
    raise ValueError(f"name: expected one of {', '.join(NAMES)}, got {name!r}")
