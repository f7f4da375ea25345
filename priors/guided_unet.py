"""The ADM UNet of Dhariwal & Nichol (2021), with guided-diffusion's parameter names.

The checkpoints behind DPS (FFHQ-256, ``ffhq_10m.pt``) and OpenAI's ImageNet-256 model
(``256x256_diffusion_uncond.pt``) are plain state dicts of this network. Every parameter here carries
the name it has in those files, so they load with ``strict=True``. The network is configurable (unlike
``deepinv.models.DiffUNet``, which fixes two configurations), so the loader also reads other
guided-diffusion checkpoints and tests can build a tiny one.

Architecture (Dhariwal & Nichol 2021, sec. 3): residual blocks conditioned on a sinusoidal timestep
embedding through an adaptive group norm ``GN(h) (1 + scale) + shift``; multi-head self-attention at
the resolutions listed in ``attention_resolutions``; residual blocks that up/downsample (BigGAN style).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .random import global_rng_restored

__all__ = ["GuidedUNet", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps ``t`` (B,) -> (B, dim): cos then sin.

    Computed in at least float32, as the checkpoints were trained with.
    """
    dtype = torch.promote_types(t.dtype, torch.float32) if t.is_floating_point() else torch.float32
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(dtype)[:, None] * freqs.to(dtype)[None]
    emb = torch.cat([args.cos(), args.sin()], dim=1)
    return F.pad(emb, (0, dim % 2))


class GroupNorm32(nn.GroupNorm):
    """32-group norm computed in float32 when the network runs in half precision."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


class EmbedSequential(nn.Sequential):
    """A sequence of layers; those that take the timestep embedding get it."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class ResBlock(nn.Module):
    """Residual block; ``resample`` in {None, "up", "down"} makes it change resolution (BigGAN style).

    Parameter layout (guided-diffusion): ``in_layers`` = [norm, SiLU, conv], ``emb_layers`` =
    [SiLU, linear], ``out_layers`` = [norm, SiLU, dropout, conv], ``skip_connection`` (1x1 conv when the
    width changes).
    """

    def __init__(self, channels: int, emb_dim: int, dropout: float, out_channels: int | None = None,
                 scale_shift: bool = True, resample: str | None = None):
        super().__init__()
        out_channels = out_channels or channels
        self.scale_shift = scale_shift
        self.resample = resample
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, (2 if scale_shift else 1) * out_channels))
        self.out_layers = nn.Sequential(GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Conv2d(channels, out_channels, 1) if out_channels != channels else nn.Identity()

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        norm_act, conv = self.in_layers[:2], self.in_layers[2]
        # The resolution changes between the activation and the conv, for the skip path too.
        h = conv(self._resample(norm_act(x)))
        x = self._resample(x)
        e = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        norm, rest = self.out_layers[0], self.out_layers[1:]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = rest(norm(h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all pixels (1x1-conv ``qkv`` and ``proj_out``), residual.

    ``legacy_order`` splits heads before q/k/v (guided-diffusion's ``QKVAttentionLegacy``, used by the
    FFHQ and ImageNet-256 models); otherwise q/k/v first (``use_new_attention_order``).
    """

    def __init__(self, channels: int, num_heads: int, legacy_order: bool = True):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide the {channels} channels")
        self.num_heads = num_heads
        self.legacy_order = legacy_order
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        n = b * self.num_heads
        if self.legacy_order:
            q, k, v = qkv.reshape(n, 3 * c // self.num_heads, -1).chunk(3, dim=1)
        else:
            q, k, v = (part.reshape(n, c // self.num_heads, -1) for part in qkv.chunk(3, dim=1))
        # (n, ch, T) -> (n, T, ch); softmax(q k^T / sqrt(ch)) v
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        h = self.proj_out(h.transpose(1, 2).reshape(b, c, -1))
        return (x + h).reshape(b, c, *spatial)


def _resample_layer(channels: int, direction: str, emb_dim: int, dropout: float, scale_shift: bool,
                    resblock_updown: bool, conv_resample: bool) -> nn.Module:
    if resblock_updown:
        return ResBlock(channels, emb_dim, dropout, scale_shift=scale_shift, resample=direction)
    return _Resample(channels, direction, conv_resample)


class _Resample(nn.Module):
    """Plain 2x up/downsampling, with a 3x3 conv (``conv`` / strided ``op``) when ``use_conv``."""

    def __init__(self, channels: int, direction: str, use_conv: bool):
        super().__init__()
        self.direction = direction
        if direction == "up":
            self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else nn.Identity()
        else:
            self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.direction == "up":
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.op(x)


class GuidedUNet(nn.Module):
    """ADM UNet; called as ``net(x_t, t)`` with ``x_t`` in [-1, 1] scale and a (fractional) timestep.

    Arguments mirror guided-diffusion's ``UNetModel``. ``attention_resolutions`` are downsampling rates
    (1 = full resolution); :meth:`from_flags` takes the command-line flags of guided-diffusion / DPS
    configs instead (image sizes). Inputs of any size are reflect-padded to a multiple of the total
    downsampling factor and cropped back.
    """

    def __init__(
        self,
        in_channels: int = 3,
        model_channels: int = 128,
        out_channels: int = 6,
        num_res_blocks: int = 1,
        attention_resolutions: tuple[int, ...] = (16,),
        dropout: float = 0.0,
        channel_mult: tuple[float, ...] = (1, 1, 2, 2, 4, 4),
        conv_resample: bool = True,
        num_heads: int = 4,
        num_head_channels: int = 64,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = True,
        resblock_updown: bool = True,
        use_new_attention_order: bool = False,
    ):
        super().__init__()
        with global_rng_restored():  # layer initialisers draw from it; weights are loaded or redrawn next
            self.config = dict(
                in_channels=in_channels, model_channels=model_channels, out_channels=out_channels,
                num_res_blocks=num_res_blocks, attention_resolutions=list(attention_resolutions), dropout=dropout,
                channel_mult=list(channel_mult), conv_resample=conv_resample, num_heads=num_heads,
                num_head_channels=num_head_channels, num_heads_upsample=num_heads_upsample,
                use_scale_shift_norm=use_scale_shift_norm, resblock_updown=resblock_updown,
                use_new_attention_order=use_new_attention_order,
            )
            self.model_channels = model_channels
            self.factor = 2 ** (len(channel_mult) - 1)
            emb_dim = 4 * model_channels
            heads_up = num_heads if num_heads_upsample == -1 else num_heads_upsample

            def attention(ch: int, heads: int) -> AttentionBlock:
                n = heads if num_head_channels == -1 else ch // num_head_channels
                return AttentionBlock(ch, n, legacy_order=not use_new_attention_order)

            def res(ch: int, out: int | None = None) -> ResBlock:
                return ResBlock(ch, emb_dim, dropout, out, scale_shift=use_scale_shift_norm)

            def resample(ch: int, direction: str) -> nn.Module:
                return _resample_layer(ch, direction, emb_dim, dropout, use_scale_shift_norm, resblock_updown,
                                       conv_resample)

            self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

            ch = int(channel_mult[0] * model_channels)
            self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
            skip_widths = [ch]
            ds = 1
            for level, mult in enumerate(channel_mult):
                for _ in range(num_res_blocks):
                    width = int(mult * model_channels)
                    layers = [res(ch, width)]
                    ch = width
                    if ds in attention_resolutions:
                        layers.append(attention(ch, num_heads))
                    self.input_blocks.append(EmbedSequential(*layers))
                    skip_widths.append(ch)
                if level < len(channel_mult) - 1:
                    self.input_blocks.append(EmbedSequential(resample(ch, "down")))
                    skip_widths.append(ch)
                    ds *= 2

            self.middle_block = EmbedSequential(res(ch), attention(ch, num_heads), res(ch))

            self.output_blocks = nn.ModuleList()
            for level, mult in reversed(list(enumerate(channel_mult))):
                for i in range(num_res_blocks + 1):
                    width = int(mult * model_channels)
                    layers = [res(ch + skip_widths.pop(), width)]
                    ch = width
                    if ds in attention_resolutions:
                        layers.append(attention(ch, heads_up))
                    if level and i == num_res_blocks:
                        layers.append(resample(ch, "up"))
                        ds //= 2
                    self.output_blocks.append(EmbedSequential(*layers))

            self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))

    @classmethod
    def from_flags(
        cls,
        image_size: int,
        num_channels: int,
        num_res_blocks: int,
        channel_mult: str = "",
        learn_sigma: bool = False,
        attention_resolutions: str = "16",
        in_channels: int = 3,
        **kwargs,
    ) -> "GuidedUNet":
        """Build from guided-diffusion's ``create_model`` flags (as in DPS's ``model_config.yaml``).

        ``attention_resolutions`` are image sizes ("32,16,8"); ``channel_mult`` "" picks guided-diffusion's
        default for ``image_size``; ``learn_sigma`` doubles the output channels. Flags that do not change
        the parameters (``class_cond=False``, ``use_fp16``, ``use_checkpoint``) are accepted and ignored.
        """
        if kwargs.pop("class_cond", False):
            raise ValueError("class_cond: class-conditional models are not supported")
        kwargs.pop("use_fp16", None)
        kwargs.pop("use_checkpoint", None)
        if channel_mult == "":
            defaults = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}
            if image_size not in defaults:
                raise ValueError(f"image_size: no default channel_mult for {image_size}; give channel_mult")
            mult = defaults[image_size]
        else:
            mult = tuple(float(m) if "." in m else int(m) for m in str(channel_mult).split(","))
        ds = tuple(image_size // int(r) for r in str(attention_resolutions).split(","))
        return cls(in_channels=in_channels, model_channels=num_channels,
                   out_channels=in_channels * (2 if learn_sigma else 1), num_res_blocks=num_res_blocks,
                   attention_resolutions=ds, channel_mult=mult, **kwargs)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % self.factor, (-width) % self.factor
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.model_channels).to(x.dtype))
        h, skips = x, []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)[..., :height, :width]
