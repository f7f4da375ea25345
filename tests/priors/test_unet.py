"""UNet's local GroupNorm (TLC): GroupNorm at the crop size, local statistics beyond it."""
import pytest
import torch
import torch.nn.functional as F

from priors.unet import UNet, box_mean, group_norm

from test_load import randomize  # tests/priors is on sys.path (pytest rootdir-relative imports)

TINY = dict(in_channels=1, channels=8, channel_mult=(1, 2), num_blocks=1, emb_dim=16, groups=4)


def test_box_mean_is_the_valid_window_average():
    t = torch.rand(2, 3, 17, 12, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(box_mean(t, 5, 4).float(), F.avg_pool2d(t, (5, 4), stride=1), rtol=1e-6, atol=1e-6)


def test_group_norm_over_a_window_as_large_as_the_input_is_groupnorm():
    norm = randomize(torch.nn.GroupNorm(2, 6))
    x = torch.randn(2, 6, 8, 8, generator=torch.Generator().manual_seed(1)) * 3 + 1
    torch.testing.assert_close(group_norm(norm, x, (1.0, 1.0)), norm(x))
    # each pixel's window is normalised by its own statistics: a window's centre pixel matches GroupNorm of the window
    local = group_norm(norm, x, (0.5, 0.5))
    torch.testing.assert_close(local[..., 1, 1], norm(x[..., :4, :4])[..., 1, 1], rtol=1e-5, atol=1e-5)


def test_at_the_crop_size_a_windowed_net_is_the_plain_net():
    plain = randomize(UNet(**TINY))
    windowed = UNet(**TINY, norm_window=24)
    windowed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    c = torch.tensor([0.3, -0.2])
    with torch.no_grad():
        torch.testing.assert_close(windowed(x, c), plain(x, c))
        assert not torch.allclose(windowed(F.pad(x, (0, 40, 0, 40)), c)[..., :24, :24],
                                  plain(F.pad(x, (0, 40, 0, 40)), c)[..., :24, :24])


def test_beyond_the_crop_size_far_content_no_longer_reaches_a_pixel():
    plain = randomize(UNet(**TINY))
    windowed = UNet(**TINY, norm_window=8)
    windowed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 1, 96, 96, generator=torch.Generator().manual_seed(3))
    far = x.clone()
    far[..., :16, :16] += 5.0  # a bright corner, far beyond the receptive field plus a window of the other corner
    c = torch.tensor([0.1])
    with torch.no_grad():
        corner = (..., slice(-16, None), slice(-16, None))
        torch.testing.assert_close(windowed(far, c)[corner], windowed(x, c)[corner], rtol=0, atol=1e-5)
        assert (plain(far, c)[corner] - plain(x, c)[corner]).abs().max() > 1e-3


def test_norm_window_is_checked_and_kept_in_the_config():
    assert UNet(**TINY, norm_window=32).config["norm_window"] == 32
    with pytest.raises(ValueError, match="norm_window"):
        UNet(**TINY, norm_window=0)
