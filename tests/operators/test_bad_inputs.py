"""The table of bad inputs: each public constructor (operators, generators, noise models, exact priors) and
the solvers' entry check, given one bad argument, raises a ValueError or TypeError at construction whose
message starts with that argument's name and says what was expected.

``python tests/operators/test_bad_inputs.py`` prints the table (Markdown) with the error each case gets.
"""
from __future__ import annotations

import math
import re
import sys

import numpy as np
import pytest
import torch

import operators as ops
import priors
import restore
from operators import kernels, masks

nan, inf = math.nan, math.inf
f64 = torch.float64


def _with(t: torch.Tensor, index, value) -> torch.Tensor:
    t = t.clone()
    t[index] = value
    return t


def _solve(**change):
    """``restore.ddrm`` on a small valid problem with one argument replaced."""
    args = dict(prior=priors.Gaussian(torch.zeros(3, dtype=f64), torch.eye(3, dtype=f64)),
                op=ops.Matrix(torch.eye(2, 3, dtype=f64)), y=torch.ones(1, 2, dtype=f64),
                noise=ops.GaussianNoise(0.1), steps=2, generator=None)
    args.update(change)
    return restore.ddrm(args.pop("prior"), args.pop("op"), args.pop("y"), args.pop("noise"), **args)


MASK, KERNEL = masks.box(8, 4), kernels.gaussian(3, 1.0)
KSPACE = torch.ones(2, 8, 8, dtype=torch.complex64)

#: (what is wrong, call, exception, message pattern: the argument's name first)
CASES = [
    # Inpainting
    ("Inpainting: NaN in mask", lambda: ops.Inpainting(_with(MASK, (0, 0), nan)), ValueError, r"^mask: .*finite.*NaN"),
    ("Inpainting: inf in mask", lambda: ops.Inpainting(_with(MASK, (0, 0), inf)), ValueError, r"^mask: .*finite.*inf"),
    ("Inpainting: mask not 0/1", lambda: ops.Inpainting(torch.full((4, 4), 0.5)), ValueError, r"^mask: .*binary"),
    ("Inpainting: zero-size mask", lambda: ops.Inpainting(torch.ones(0, 4)), ValueError, r"^mask: .*non-empty"),
    ("Inpainting: mask observes nothing", lambda: ops.Inpainting(torch.zeros(4, 4)), ValueError, r"^mask: .*observed"),
    ("Inpainting: complex mask", lambda: ops.Inpainting(MASK.to(torch.complex64)), TypeError, r"^mask: .*real"),
    ("Inpainting: mask is a list", lambda: ops.Inpainting([1, 0]), TypeError, r"^mask: .*torch.Tensor"),
    ("Inpainting: 0-d mask", lambda: ops.Inpainting(torch.tensor(1.0)), ValueError, r"^mask: .*dimension"),
    ("Inpainting: mask does not fit in_shape", lambda: ops.Inpainting(torch.ones(5, 5), in_shape=(3, 8, 8)),
     ValueError, r"^mask: .*broadcasts"),
    ("Inpainting: zero size in in_shape", lambda: ops.Inpainting(MASK, in_shape=(0, 8, 8)), ValueError,
     r"^in_shape: .*positive"),
    ("Inpainting: float in in_shape", lambda: ops.Inpainting(MASK, in_shape=(3, 8.0, 8)), TypeError, r"^in_shape: .*int"),
    # Blur
    ("Blur: NaN in kernel", lambda: ops.Blur(_with(KERNEL, (1, 1), nan), (1, 8, 8)), ValueError, r"^kernel: .*finite.*NaN"),
    ("Blur: inf in kernel", lambda: ops.Blur(_with(KERNEL, (0, 1), -inf), (1, 8, 8)), ValueError, r"^kernel: .*finite.*inf"),
    ("Blur: kernel sums to zero", lambda: ops.Blur(torch.tensor([[1.0, -1.0]]), (1, 8, 8)), ValueError,
     r"^kernel: .*non-zero sum"),
    ("Blur: all-zero kernel", lambda: ops.Blur(torch.zeros(3, 3), (1, 8, 8)), ValueError, r"^kernel: .*non-zero sum"),
    ("Blur: one channel's kernel sums to zero", lambda: ops.Blur(torch.stack([KERNEL, KERNEL - KERNEL.mean()]), (2, 8, 8)),
     ValueError, r"^kernel: .*non-zero sum"),
    ("Blur: zero-size kernel", lambda: ops.Blur(torch.ones(0, 3), (1, 8, 8)), ValueError, r"^kernel: .*non-empty"),
    ("Blur: integer kernel", lambda: ops.Blur(torch.ones(3, 3, dtype=torch.int64), (1, 8, 8)), TypeError,
     r"^kernel: .*floating"),
    ("Blur: complex kernel", lambda: ops.Blur(KERNEL.to(torch.complex64), (1, 8, 8)), TypeError, r"^kernel: .*real floating"),
    ("Blur: kernel larger than the image", lambda: ops.Blur(torch.ones(9, 9), (1, 8, 8)), ValueError, r"^kernel: .*fits"),
    ("Blur: 1-D kernel", lambda: ops.Blur(torch.ones(3), (1, 8, 8)), ValueError, r"^kernel: .*\(kh, kw\)"),
    ("Blur: kernel channels do not match", lambda: ops.Blur(torch.ones(2, 3, 3), (3, 8, 8)), ValueError,
     r"^kernel: .*\(3, kh, kw\)"),
    ("Blur: in_shape (H, W)", lambda: ops.Blur(KERNEL, (8, 8)), ValueError, r"^in_shape: .*\(C, H, W\)"),
    ("Blur: negative size", lambda: ops.Blur(KERNEL, (1, -8, 8)), ValueError, r"^in_shape: .*positive"),
    ("Blur: unknown boundary", lambda: ops.Blur(KERNEL, (1, 8, 8), boundary="mirror"), ValueError, r"^boundary"),
    # Downsample
    ("Downsample: factor does not divide", lambda: ops.Downsample((1, 10, 10), 4), ValueError, r"^factor: .*divisor"),
    ("Downsample: factor 1", lambda: ops.Downsample((1, 8, 8), 1), ValueError, r"^factor: .*>= 2"),
    ("Downsample: float factor", lambda: ops.Downsample((1, 8, 8), 2.0), TypeError, r"^factor: .*int"),
    ("Downsample: bool factor", lambda: ops.Downsample((1, 8, 8), True), TypeError, r"^factor: .*int, got bool"),
    ("Downsample: unknown filter", lambda: ops.Downsample((1, 16, 16), 2, filter="lanczos"), ValueError, r"^filter: "),
    ("Downsample: zero size", lambda: ops.Downsample((1, 0, 8), 2), ValueError, r"^in_shape: .*positive"),
    # MRI
    ("MRI: NaN in mask", lambda: ops.MRI(_with(MASK, (2, 2), nan)), ValueError, r"^mask: .*finite.*NaN"),
    ("MRI: mask samples nothing", lambda: ops.MRI(torch.zeros(8, 8)), ValueError, r"^mask: .*sampled"),
    ("MRI: complex mask", lambda: ops.MRI(MASK.to(torch.complex64)), TypeError, r"^mask: .*real"),
    ("MRI: mask (2, H, W)", lambda: ops.MRI(torch.ones(2, 8, 8)), ValueError, r"^mask: .*\(H, W\)"),
    ("MRI: zero-size mask", lambda: ops.MRI(torch.ones(0, 8)), ValueError, r"^mask: .*non-empty"),
    ("MRI: NaN in coil maps", lambda: ops.MRI(MASK, _with(KSPACE, (0, 1, 1), nan)), ValueError,
     r"^coil_maps: .*finite.*NaN"),
    ("MRI: inf in coil maps", lambda: ops.MRI(MASK, _with(KSPACE, (1, 1, 1), inf)), ValueError,
     r"^coil_maps: .*finite.*inf"),
    ("MRI: coil maps (H, W) (no coil axis)", lambda: ops.MRI(MASK, KSPACE[0]), ValueError, r"^coil_maps: .*\(K, 8, 8\)"),
    ("MRI: coil maps (1, K, H, W)", lambda: ops.MRI(MASK, KSPACE[None]), ValueError, r"^coil_maps: .*\(K, 8, 8\)"),
    ("MRI: coil maps of another size", lambda: ops.MRI(MASK, torch.ones(3, 8, 9, dtype=torch.complex64)), ValueError,
     r"^coil_maps: .*\(K, 8, 8\)"),
    ("MRI: integer coil maps", lambda: ops.MRI(MASK, torch.ones(2, 8, 8, dtype=torch.int64)), TypeError,
     r"^coil_maps: .*floating or complex"),
    ("MRI: zero coils", lambda: ops.MRI(MASK, torch.ones(0, 8, 8, dtype=torch.complex64)), ValueError,
     r"^coil_maps: .*non-empty"),
    ("MRI: multi-coil with 2 channels", lambda: ops.MRI(MASK, KSPACE, image_shape=(2, 8, 8)), ValueError,
     r"^image_shape: .*one channel"),
    ("MRI: complex_images='yes'", lambda: ops.MRI(MASK, complex_images="yes"), TypeError, r"^complex_images: .*bool"),
    ("estimate_coil_maps: real k-space", lambda: ops.estimate_coil_maps(KSPACE.real), TypeError, r"^kspace: .*complex"),
    ("estimate_coil_maps: NaN in k-space", lambda: ops.estimate_coil_maps(_with(KSPACE, (0, 0, 0), nan), calib=4),
     ValueError, r"^kspace: .*finite.*NaN"),
    ("estimate_coil_maps: calib too large", lambda: ops.estimate_coil_maps(KSPACE, calib=9), ValueError, r"^calib: "),
    ("estimate_coil_maps: calib 0", lambda: ops.estimate_coil_maps(KSPACE, calib=0), ValueError, r"^calib: .*positive"),
    ("estimate_coil_maps: threshold NaN", lambda: ops.estimate_coil_maps(KSPACE, calib=4, threshold=nan), ValueError,
     r"^threshold: .*finite"),
    # CT and FBP
    ("CT: NaN angle", lambda: ops.CT(8, [0.0, nan, 90.0]), ValueError, r"^angles: .*finite.*NaN"),
    ("CT: inf angle", lambda: ops.CT(8, torch.tensor([0.0, inf])), ValueError, r"^angles: .*finite.*inf"),
    ("CT: no angles", lambda: ops.CT(8, []), ValueError, r"^angles: .*non-empty"),
    ("CT: 0 views", lambda: ops.CT(8, 0), ValueError, r"^angles: .*>= 1"),
    ("CT: float number of views", lambda: ops.CT(8, 8.0), TypeError, r"^angles: .*int number of views"),
    ("CT: complex angles", lambda: ops.CT(8, [1j]), TypeError, r"^angles: "),
    ("CT: 2-D angles", lambda: ops.CT(8, torch.zeros(2, 2)), ValueError, r"^angles: .*1-D"),
    ("CT: img_size 1", lambda: ops.CT(1), ValueError, r"^img_size: .*>= 2"),
    ("CT: bool img_size", lambda: ops.CT(True), TypeError, r"^img_size: .*int"),
    ("CT: n_detectors 0", lambda: ops.CT(8, 4, n_detectors=0), ValueError, r"^n_detectors: .*>= 1"),
    ("CT.limited_angle: max_angle 200", lambda: ops.CT.limited_angle(8, 200.0), ValueError, r"^max_angle: "),
    ("CT.limited_angle: NaN start", lambda: ops.CT.limited_angle(8, 90.0, start=nan), ValueError, r"^start: .*finite"),
    ("fbp: NaN in sinogram", lambda: ops.fbp(ops.CT(8, 4), _with(torch.zeros(1, 1, 8, 4), (0, 0, 1, 1), nan)), ValueError,
     r"^y: .*finite.*NaN"),
    ("fbp: sinogram of the wrong shape", lambda: ops.fbp(ops.CT(8, 4), torch.zeros(1, 1, 8, 5)), ValueError, r"^y must be"),
    ("fbp: integer sinogram", lambda: ops.fbp(ops.CT(8, 4), torch.zeros(1, 1, 8, 4, dtype=torch.int64)), TypeError,
     r"^y: .*floating"),
    ("fbp: NaN angle", lambda: ops.fbp([0.0, nan], torch.zeros(1, 1, 8, 2)), ValueError, r"^op_or_angles: .*finite"),
    ("fbp: unknown filter", lambda: ops.fbp(ops.CT(8, 4), torch.zeros(1, 1, 8, 4), filter="gauss"), ValueError,
     r"^filter: "),
    # Matrix, PhaseRetrieval
    ("Matrix: NaN entry", lambda: ops.Matrix(_with(torch.eye(3), (0, 1), nan)), ValueError, r"^A: .*finite.*NaN"),
    ("Matrix: inf entry", lambda: ops.Matrix(_with(torch.eye(3), (2, 1), inf)), ValueError, r"^A: .*finite.*inf"),
    ("Matrix: 1-D", lambda: ops.Matrix(torch.ones(3)), ValueError, r"^A: .*2-D"),
    ("Matrix: (0, 3)", lambda: ops.Matrix(torch.ones(0, 3)), ValueError, r"^A: .*non-empty"),
    ("Matrix: integer", lambda: ops.Matrix(torch.ones(2, 2, dtype=torch.int64)), TypeError, r"^A: .*floating"),
    ("PhaseRetrieval: NaN oversample", lambda: ops.PhaseRetrieval((1, 8, 8), oversample=nan), ValueError,
     r"^oversample: .*finite"),
    ("PhaseRetrieval: negative oversample", lambda: ops.PhaseRetrieval((1, 8, 8), oversample=-1.0), ValueError,
     r"^oversample: .*>= 0"),
    ("PhaseRetrieval: negative pad", lambda: ops.PhaseRetrieval((1, 8, 8), pad=(1, -1)), ValueError, r"^pad: .*>= 0"),
    ("PhaseRetrieval: float pad", lambda: ops.PhaseRetrieval((1, 8, 8), pad=1.5), TypeError, r"^pad: .*int"),
    ("PhaseRetrieval: in_shape (H, W)", lambda: ops.PhaseRetrieval((8, 8)), ValueError, r"^in_shape: "),
    # noise models
    ("GaussianNoise: NaN sigma", lambda: ops.GaussianNoise(nan), ValueError, r"^sigma: .*finite"),
    ("GaussianNoise: inf sigma", lambda: ops.GaussianNoise(inf), ValueError, r"^sigma: .*finite"),
    ("GaussianNoise: negative sigma", lambda: ops.GaussianNoise(-1), ValueError, r"^sigma: .*>= 0"),
    ("GaussianNoise: bool sigma", lambda: ops.GaussianNoise(True), TypeError, r"^sigma: .*real number, got bool"),
    ("GaussianNoise: string sigma", lambda: ops.GaussianNoise("0.1"), TypeError, r"^sigma: .*real number"),
    ("GaussianNoise: tensor of sigmas", lambda: ops.GaussianNoise(torch.ones(2)), TypeError, r"^sigma: .*real number"),
    ("PoissonNoise: zero gain", lambda: ops.PoissonNoise(0), ValueError, r"^gain: .*> 0"),
    ("PoissonNoise: inf gain", lambda: ops.PoissonNoise(inf), ValueError, r"^gain: .*finite"),
    ("PoissonNoise: negative eps", lambda: ops.PoissonNoise(1.0, eps=-1e-6), ValueError, r"^eps: .*> 0"),
    ("PoissonGaussianNoise: zero sigma", lambda: ops.PoissonGaussianNoise(0.1, 0), ValueError, r"^sigma: .*> 0"),
    ("PoissonGaussianNoise: NaN gain", lambda: ops.PoissonGaussianNoise(nan, 0.1), ValueError, r"^gain: .*finite"),
    # masks and kernels
    ("masks.random: ratio 1.5", lambda: masks.random(8, 1.5), ValueError, r"^ratio: .*\[0, 1\]"),
    ("masks.random: NaN ratio", lambda: masks.random(8, nan), ValueError, r"^ratio: .*finite"),
    ("masks.random: shape (0, 8)", lambda: masks.random((0, 8), 0.5), ValueError, r"^shape: .*positive"),
    ("masks.random: shape (8, 8, 8)", lambda: masks.random((8, 8, 8), 0.5), ValueError, r"^shape: .*\(H, W\)"),
    ("masks.random: float shape", lambda: masks.random(8.0, 0.5), TypeError, r"^shape: "),
    ("masks.box: box larger than image", lambda: masks.box(8, 9), ValueError, r"^size: .*fits"),
    ("masks.box: negative size", lambda: masks.box(8, -2), ValueError, r"^size: .*positive"),
    ("masks.freeform: coverage (0.5, 0.2)", lambda: masks.freeform(8, coverage=(0.5, 0.2)), ValueError, r"^coverage: "),
    ("masks.freeform: coverage 0.2", lambda: masks.freeform(8, coverage=0.2), TypeError, r"^coverage: .*pair"),
    ("masks.fastmri_random: acceleration 0.5", lambda: masks.fastmri_random(16, 0.5), ValueError, r"^acceleration: .*>= 1"),
    ("masks.fastmri_random: inf acceleration", lambda: masks.fastmri_random(16, inf), ValueError,
     r"^acceleration: .*finite"),
    ("masks.gaussian_2d: NaN center_fraction", lambda: masks.gaussian_2d(16, 4, center_fraction=nan), ValueError,
     r"^center_fraction: .*finite"),
    ("masks.gaussian_2d: std 0", lambda: masks.gaussian_2d(16, 4, std=0.0), ValueError, r"^std: .*> 0"),
    ("masks.poisson_disc: max_passes 0", lambda: masks.poisson_disc(8, 2, max_passes=0), ValueError,
     r"^max_passes: .*>= 1"),
    ("masks.default_center_fraction: acceleration 0", lambda: masks.default_center_fraction(0), ValueError,
     r"^acceleration: .*>= 1"),
    ("masks.random: generator is an int", lambda: masks.random(8, 0.5, generator=0), TypeError,
     r"^generator: .*torch.Generator"),
    ("kernels.gaussian: NaN std", lambda: kernels.gaussian(5, nan), ValueError, r"^std: .*finite"),
    ("kernels.gaussian: std 0", lambda: kernels.gaussian(5, 0.0), ValueError, r"^std: .*> 0"),
    ("kernels.gaussian: bool size", lambda: kernels.gaussian(True, 1.0), TypeError, r"^size: .*int, got bool"),
    ("kernels.uniform: size 0", lambda: kernels.uniform(0), ValueError, r"^size: .*>= 1"),
    ("kernels.motion: intensity 2", lambda: kernels.motion(9, 2.0), ValueError, r"^intensity: .*\[0, 1\]"),
    ("kernels.motion: float size", lambda: kernels.motion(9.5, 0.5), TypeError, r"^size: .*int"),
    # exact priors
    ("Gaussian: NaN in mean", lambda: priors.Gaussian(torch.tensor([0.0, nan]), torch.eye(2)), ValueError,
     r"^mean: .*finite.*NaN"),
    ("Gaussian: inf in cov", lambda: priors.Gaussian(torch.zeros(2), _with(torch.eye(2), (0, 0), inf)), ValueError,
     r"^cov: .*finite.*inf"),
    ("Gaussian: negative variance", lambda: priors.Gaussian(torch.zeros(2), -1.0), ValueError, r"^cov: .*non-negative"),
    ("Gaussian: complex mean", lambda: priors.Gaussian(torch.zeros(2, dtype=torch.complex64), 1.0), TypeError,
     r"^mean: .*real"),
    ("Gaussian: 0-d mean", lambda: priors.Gaussian(torch.tensor(0.0), 1.0), ValueError, r"^mean: .*dimension"),
    ("Gaussian: cov of the wrong shape", lambda: priors.Gaussian(torch.zeros(2), torch.eye(3)), ValueError, r"^cov: "),
    ("GaussianMixture: inf weight", lambda: priors.GaussianMixture(torch.tensor([1.0, inf]), torch.zeros(2, 2), torch.ones(2)),
     ValueError, r"^weights: .*finite.*inf"),
    ("GaussianMixture: NaN in covs", lambda: priors.GaussianMixture(torch.ones(2), torch.zeros(2, 2),
                                                                   torch.tensor([1.0, nan])), ValueError,
     r"^covs: .*finite.*NaN"),
    ("GaussianMixture: weights sum to 0", lambda: priors.GaussianMixture(torch.zeros(2), torch.zeros(2, 2), torch.ones(2)),
     ValueError, r"^weights: .*positive sum"),
    ("GaussianMixture: empty image_shape", lambda: priors.GaussianMixture(torch.ones(1), torch.zeros(1, 0), torch.ones(1)),
     ValueError, r"^means: .*non-empty"),
    ("GaussianMixture: sigma_min >= sigma_max", lambda: priors.GaussianMixture(torch.ones(1), torch.zeros(1, 2),
                                                                             torch.ones(1), sigma_min=2.0, sigma_max=1.0),
     ValueError, r"^sigma_min: .*less than sigma_max"),
    ("GaussianMixture: sigma_max 1e300", lambda: priors.GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.ones(1),
                                                                      sigma_max=1e300), ValueError, r"^sigma_max: "),
    ("GaussianMixture: integer dtype", lambda: priors.GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.ones(1),
                                                                    dtype=torch.int64), TypeError, r"^dtype: "),
    # solvers' entry checks (restore.ddrm here; every solver in restore.SOLVERS: tests/restore/test_checks.py)
    ("solver: NaN in y", lambda: _solve(y=torch.tensor([[0.0, nan]], dtype=f64)), ValueError, r"^y: .*finite.*NaN"),
    ("solver: y of the wrong shape", lambda: _solve(y=torch.ones(1, 3, dtype=f64)), ValueError, r"^y: .*shape"),
    ("solver: integer y", lambda: _solve(y=torch.ones(1, 2, dtype=torch.int64)), TypeError, r"^y: .*floating"),
    ("solver: empty batch", lambda: _solve(y=torch.ones(0, 2, dtype=f64)), ValueError, r"^y: .*at least one"),
    ("solver: negative noise level", lambda: _solve(noise=-0.1), ValueError, r"^noise: .*non-negative"),
    ("solver: NaN noise level", lambda: _solve(noise=nan), ValueError, r"^noise: .*finite"),
    ("solver: bool noise", lambda: _solve(noise=True), TypeError, r"^noise: "),
    ("solver: noise as a string", lambda: _solve(noise="0.1"), TypeError, r"^noise: "),
    ("solver: steps 0", lambda: _solve(steps=0), ValueError, r"^steps: .*at least 1"),
    ("solver: float steps", lambda: _solve(steps=2.5), TypeError, r"^steps: .*int"),
    ("solver: bool steps", lambda: _solve(steps=True), TypeError, r"^steps: .*bool"),
    ("solver: no prior", lambda: _solve(prior=None), TypeError, r"^prior: .*denoise"),
    ("solver: prior of another shape", lambda: _solve(prior=priors.Gaussian(torch.zeros(4, dtype=f64), 1.0)), ValueError,
     r"^prior: .*image_shape"),
    ("solver: op is a function", lambda: _solve(op=lambda x: x), TypeError, r"^op: .*operator"),
    ("solver: one generator per image, wrong count", lambda: _solve(generator=[torch.Generator()] * 2), ValueError,
     r"^generator: "),
    ("solver: generator is an int", lambda: _solve(generator=0), TypeError, r"^generator: "),
]


@pytest.mark.parametrize("case, build, exc, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_named_error(case, build, exc, pattern):
    with pytest.raises(exc) as info:
        build()
    assert type(info.value) is exc  # not a subclass such as a linalg error
    assert re.search(pattern, str(info.value)), f"{case}: {info.value}"


def table() -> str:
    """The Markdown table of every case and the error it gets now."""
    rows = ["| bad input | error |", "|---|---|"]
    for case, build, _exc, _pattern in CASES:
        try:
            build()
            got = "(no error)"
        except Exception as err:  # noqa: BLE001 - the table shows whatever happens
            got = f"`{type(err).__name__}: {err}`".replace("|", "\\|")
        rows.append(f"| {case} | {got} |")
    return "\n".join(rows)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.stdout.write(table() + "\n")
