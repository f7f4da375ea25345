"""restore.posterior: per-image seeding and summary statistics."""
from __future__ import annotations

import pytest
import torch

import restore


def test_samples_of_an_image_do_not_depend_on_the_other_images(gmm_noisy):
    p = gmm_noisy
    y2 = torch.cat([p.y, p.y + 0.1])
    s1, m1, sd1 = restore.posterior("ddrm", p.prior, p.op, p.y, p.noise, n=16, steps=10,
                                    generator=torch.Generator().manual_seed(0))
    s2, m2, _ = restore.posterior(restore.ddrm, p.prior, p.op, y2, p.noise, n=16, steps=10,
                                  generator=torch.Generator().manual_seed(0))
    assert s1.shape == (16, 1, 4) and s2.shape == (16, 2, 4)
    torch.testing.assert_close(s1[:, 0], s2[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(m1, s1.mean(0))
    torch.testing.assert_close(sd1, s1.std(0))
    assert not torch.allclose(s2[:, 0], s2[:, 1])


def test_mean_and_std_match_the_exact_posterior(gaussian_spectral_noiseless, assert_exact):
    p = gaussian_spectral_noiseless  # where DDRM (eta = 0) is exact, see test_ddrm
    samples, mean, std = restore.posterior("ddrm", p.prior, p.op, p.y, p.noise, n=2000, steps=200,
                                           generator=torch.Generator().manual_seed(1), eta=0.0)
    assert_exact(samples[:, 0], p, sw_factor=2.5)  # 2000 samples against a floor of 4000 vs 4000
    torch.testing.assert_close(mean[0], samples[:, 0].mean(0))
    torch.testing.assert_close(std[0], samples[:, 0].std(0))


def test_bad_arguments_are_named(gmm_noisy):
    p = gmm_noisy
    with pytest.raises(ValueError, match="^solver"):
        restore.posterior("nope", p.prior, p.op, p.y, p.noise, n=2, steps=2)
    with pytest.raises(ValueError, match="^n:"):
        restore.posterior("ddrm", p.prior, p.op, p.y, p.noise, n=0, steps=2)
