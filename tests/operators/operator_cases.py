"""``CASES``: name -> zero-argument factory building a small, deterministic instance of every shipped
operator (and of the algebra's compound operators), for the parametrized conformance tests
(``test_check_all.py``) and ``python -m operators.check``. A new operator adds a line here."""
from __future__ import annotations

from typing import Callable

import torch

from operators import kernels, masks
from operators.blur import Blur
from operators.ct import CT
from operators.downsample import Downsample
from operators.inpainting import Inpainting
from operators.linear import Identity, _Base
from operators.matrix import Matrix
from operators.mri import MRI
from operators.phase_retrieval import PhaseRetrieval

__all__ = ["CASES"]


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _coil_maps(K: int, H: int, W: int, seed: int) -> torch.Tensor:
    """Smooth complex coil sensitivities (low-frequency random fields), normalised so that
    ``sum_k |S_k|^2 = 1``."""
    low = torch.randn(K, 4, 4, dtype=torch.complex64, generator=_g(seed))
    maps = torch.nn.functional.interpolate(torch.view_as_real(low).permute(0, 3, 1, 2), size=(H, W),
                                           mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
    maps = torch.view_as_complex(maps.contiguous())
    return maps / maps.abs().pow(2).sum(0, keepdim=True).sqrt()


def _deepinv_blur() -> _Base:
    import deepinv

    from operators.interop import from_deepinv

    physics = deepinv.physics.BlurFFT(img_size=(1, 12, 12), filter=kernels.gaussian(5, 1.0)[None, None])
    return from_deepinv(physics, in_shape=(1, 12, 12))


CASES: dict[str, Callable[[], _Base]] = {
    "identity": lambda: Identity((2, 5)),
    "matrix_wide": lambda: Matrix(torch.randn(5, 8, generator=_g(0))),
    "matrix_tall": lambda: Matrix(torch.randn(8, 5, generator=_g(1))),
    "matrix_complex": lambda: Matrix(torch.randn(4, 6, dtype=torch.complex64, generator=_g(2))),
    "inpainting_random": lambda: Inpainting(masks.random((12, 12), 0.3, generator=_g(3)), in_shape=(3, 12, 12)),
    "inpainting_box": lambda: Inpainting(masks.box((12, 12), 4)[None], in_shape=(3, 12, 12)),
    "inpainting_freeform": lambda: Inpainting(masks.freeform((24, 24), generator=_g(4))),
    "blur_gaussian_circular": lambda: Blur(kernels.gaussian(5, 1.5), (3, 12, 14)),
    "blur_motion_circular": lambda: Blur(kernels.motion(9, 0.5, generator=_g(5)), (1, 16, 16)),
    "blur_uniform_zeros": lambda: Blur(kernels.uniform(3), (3, 12, 14), boundary="zeros"),
    "blur_motion_zeros": lambda: Blur(kernels.motion(9, 0.5, generator=_g(6)), (1, 16, 16), boundary="zeros"),
    "blur_per_channel_zeros": lambda: Blur(torch.rand(3, 4, 5, generator=_g(7)), (3, 10, 10), boundary="zeros"),
    "downsample_box_2": lambda: Downsample((3, 12, 16), 2, "box"),
    "downsample_bicubic_4": lambda: Downsample((1, 16, 24), 4, "bicubic"),
    "downsample_bicubic_8": lambda: Downsample((1, 16, 16), 8, "bicubic"),
    "downsample_gaussian_2": lambda: Downsample((2, 12, 12), 2, "gaussian"),
    "mri_single_real": lambda: MRI(masks.fastmri_random((16, 16), 4, generator=_g(8))),
    "mri_single_complex": lambda: MRI(masks.fastmri_equispaced((16, 16), 4, generator=_g(9)), complex_images=True),
    "mri_multicoil_real": lambda: MRI(masks.gaussian_2d((16, 16), 4, generator=_g(10)), coil_maps=_coil_maps(4, 16, 16, 11)),
    "mri_multicoil_complex": lambda: MRI(masks.poisson_disc((16, 16), 3, generator=_g(12)),
                                         coil_maps=_coil_maps(3, 16, 16, 13), complex_images=True),
    "ct": lambda: CT(16, angles=12),
    "ct_sparse_view": lambda: CT.sparse_view(16, 4, n_detectors=23),
    "ct_limited_angle": lambda: CT.limited_angle(16, 90.0, n_views=10),
    "phase_retrieval": lambda: PhaseRetrieval((1, 8, 8)),
    "composition_downsample_blur": lambda: Downsample((1, 16, 16), 2, "bicubic") @ Blur(kernels.gaussian(5, 1.0), (1, 16, 16)),
    "sum_blur_identity": lambda: Blur(kernels.gaussian(3, 1.0), (1, 8, 8)) + 0.5 * Identity((1, 8, 8)),
    "adjoint_downsample": lambda: Downsample((1, 8, 8), 2, "box").H,
    "deepinv_blur_fft": _deepinv_blur,
}
