"""FID and KID: the maths against independent formulas, the missing-weights message, and the
torchvision branch on a randomly initialised Inception-v3 saved where torchvision caches it."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from benchmarks import fid as FID
from priors.random import global_rng_restored


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache of our own."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    FID.inception_features.cache_clear()
    yield tmp_path / "hub" / "checkpoints"
    FID.inception_features.cache_clear()


def test_without_weights_the_message_says_which_file_goes_where(hub):
    reason = FID.unavailable_reason()
    assert FID.FID_WEIGHTS in reason and FID.TORCHVISION_WEIGHTS in reason and str(hub) in reason
    assert "nothing is downloaded" in reason and FID.inception_features() is None


def test_fid_matches_the_closed_form_with_a_matrix_square_root():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 4))
    b = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 4)) + 0.5
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert FID.fid(a, b) == pytest.approx(expected, rel=1e-9)
    assert abs(FID.fid(a, a)) < 1e-9


def test_kid_is_the_unbiased_mmd_of_the_cubic_kernel():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 1.0
    k = lambda u, v: (u @ v / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(a[i], a[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(b[i], b[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(a[i], b[j]) for i in range(7) for j in range(5)) / 35
    assert FID.kid(a, b) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    same = FID.kid(rng.normal(size=(400, 3)), rng.normal(size=(400, 3)))
    assert abs(same) < 0.1 * FID.kid(a, b)  # unbiased: near zero for two samples of one law
    with pytest.raises(ValueError, match="set_metrics: expected names among fid, kid"):
        FID.set_metrics(["is"], [torch.zeros(2, 3)], [torch.zeros(2, 3)])


@pytest.mark.slow
def test_torchvision_weights_in_the_hub_cache_are_used(hub):
    import torchvision

    with global_rng_restored():
        net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    hub.mkdir(parents=True)
    torch.save(net.state_dict(), hub / FID.TORCHVISION_WEIGHTS)
    assert FID.unavailable_reason() is None
    extract, source = FID.inception_features()
    assert source == str(hub / FID.TORCHVISION_WEIGHTS)
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))  # one forward: slow on CPU
    feats = extract(images)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float64 and torch.isfinite(feats).all()
    assert not torch.equal(feats[0], feats[1])
    scores = FID.set_metrics(["fid", "kid"], [feats[:1], feats[1:]], [feats.flip(0)])
    assert abs(scores["fid"]) < 1e-9 and np.isfinite(scores["kid"])  # the same two images on both sides
