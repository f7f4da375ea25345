"""The protocol suites run end to end without the real weights or data: tiny image folders in the
datasets' real layouts, and randomly initialised networks in the official checkpoint format (the
guided-diffusion architecture and key names of ``ffhq_10m.pt`` and ``256x256_diffusion_uncond.pt``,
learned variance included, only narrower) where ``priors.load`` looks for them. The suites are shrunk
with ``apply_overrides`` (the ``--set`` of ``restore-bench explain``): 32 px images, 2 steps, small
kernels and boxes."""
from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import build, fid, report, runner
from benchmarks.store import Store
from benchmarks.suite import apply_overrides, load_suite
from priors.guided_unet import GuidedUNet

L = importlib.import_module("priors.load")

SHRINK = ["tasks.*.dataset.*.size=32", "solvers.*.steps=2", "tasks.*.operators.gauss61.size=5"]
BOX, MOTION = "tasks.*.operators.box128.size=8", "tasks.*.operators.motion61.size=5"
DAPS = ["solvers.daps.langevin_steps=2", "solvers.daps.ode_steps=2"]
SUITES = {"dps-ffhq": ("ffhq", [BOX, MOTION, *DAPS]), "diffpir-ffhq": ("ffhq", [BOX, MOTION]),
          "imagenet-256": ("imagenet", [MOTION]), "daps-ffhq": ("test-ffhq", [BOX, MOTION, *DAPS])}

FOLDERS = {  # each dataset in its real layout; the first two images of each split the suites name
    "ffhq": ["00000/00000.png", "00000/00001.png", "69000/69007.png", "69000/69017.png"],
    "imagenet": ["n01440764/ILSVRC2012_val_00000293.JPEG", "n01443537/ILSVRC2012_val_00000236.JPEG",
                 "n01514668/ILSVRC2012_val_00000001.JPEG", "n01530575/ILSVRC2012_val_00000011.JPEG"],
    "test-ffhq": ["00000.png", "00001.png"],
}


def _randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # random everywhere: the zero-initialised output convs would make the net trivial
        for p in module.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) * (0.8 if p.ndim > 1 else 0.1) / fan_in**0.5)
    return module


@pytest.fixture
def official_checkpoints(tmp_path, monkeypatch):
    """ffhq_10m.pt and 256x256_diffusion_uncond.pt in the cache, 32 channels wide instead of 128 / 256."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("DIFFUSION_RESTORE_CACHE", str(cache))
    for seed, name in enumerate(("ffhq256-dps", "imagenet256-uncond")):
        known = L.KNOWN[name]
        flags = {**known.flags, "num_channels": 32}
        net = _randomize(GuidedUNet.from_flags(**flags), seed)
        with torch.device("meta"):
            official = GuidedUNet.from_flags(**known.flags).state_dict()
        assert list(net.state_dict()) == list(official)  # the official key names, in order
        torch.save(net.state_dict(), cache / known.filename)
        # the published size and sha256 are the real file's; the image shape is the test's
        monkeypatch.setitem(L.KNOWN, name, dataclasses.replace(known, flags=flags, sha256=None, size=None,
                                                               image_shape=(3, 32, 32)))
    build.load_prior.cache_clear()
    build.load_dataset.cache_clear()
    yield cache
    build.load_prior.cache_clear()
    build.load_dataset.cache_clear()


def _folder(root, layout):
    rng = np.random.default_rng(0)
    for rel in FOLDERS[layout]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / rel)
    return root


def _stand_in_features(monkeypatch):
    """FID/KID wiring without Inception weights: a stand-in extractor (4x4 average-pooled pixels)."""
    def extract(images):
        return torch.nn.functional.adaptive_avg_pool2d(images.float(), 4).flatten(1).double()
    monkeypatch.setattr(fid, "inception_features", lambda device="cpu": (extract, "stand-in"))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SUITES))
def test_protocol_suite_end_to_end(name, tmp_path, official_checkpoints, monkeypatch):
    _stand_in_features(monkeypatch)
    layout, extra = SUITES[name]
    data = _folder(tmp_path / layout, layout)
    suite = apply_overrides(load_suite(name, data=str(data)), SHRINK + extra)
    out = tmp_path / "out"
    summary = runner.run(suite, out, limit=2, progress=False)
    with Store(out / "results.sqlite") as store:
        rows = store.cells()
        images = {r["key"]: [im["image"] for im in store.images(r["key"])] for r in rows}
    errors = {f"{r['operator']}/{r['solver']}": r["error"] for r in rows if r["status"] != "ok"}
    assert summary.cells == len(rows) > 0 and not errors, errors
    for row in rows:
        assert len(images[row["key"]]) == 2 and row["spec"]["dataset"]["split"]
        assert row["metrics"]["psnr"]["n"] == 2 and row["metrics"]["fid"]["weights"] == "stand-in"
        assert row["metrics"]["nfe_op"]["mean"] > 0, (row["operator"], row["solver"])  # each uses the operator
        if row["spec"]["solver"].get("baseline"):
            assert row["nfe"] == 0
        else:  # the network ran, with the official settings for the operator's task
            assert row["nfe"] > 0 and row["spec"]["solver"]["official"] is True, (row["operator"], row["solver"])
    best_of = [r for r in rows if r["spec"]["solver"].get("best_of")]
    assert [r["operator"] for r in best_of] == (["phase"] if name == "daps-ffhq" else [])
    for row in best_of:  # the mean and the best of 4 side by side
        assert row["metrics"]["psnr@best4"]["mean"] >= row["metrics"]["psnr"]["mean"]
    md = report.write_report(out)[0].read_text()
    assert "op evals/img" in md and "fid" in md
    assert ("psnr best of 4" in md and "drew 4 samples per image" in md) == (name == "daps-ffhq")
