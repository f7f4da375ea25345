"""Train a diffusion prior: ``python -m priors.train --recipe phantom --out priors/runs/phantom``.

The loss is EDM's (Karras et al. 2022, eq. 8 with Table 1's preconditioning and log-normal sigma
sampling) or DDPM's eps-prediction MSE (Ho et al. 2020, Alg. 1). The run is resumable: a checkpoint
every ``checkpoint_every`` steps holds the weights, the EMA, the optimiser (``optimizer.pt``) and the loss log, and every
batch is drawn from a generator seeded by the step number, so a run killed and resumed ends at the same
weights as one never interrupted. It exports ``<name>.safetensors`` (EMA weights) with a JSON card that
:func:`priors.load` reads, a loss-curve PNG and a sample-grid PNG.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from . import schedules as sch
from .denoiser import wrap
from .files import atomic_write, write_bytes_atomic
from .unet import UNet, reset_parameters

__all__ = ["RECIPES", "make_data", "edm_loss", "ddpm_loss", "learning_rate", "train", "export", "export_checkpoint", "main"]

RECIPES_DIR = Path(__file__).with_name("recipes")
RECIPES = {p.stem: p for p in sorted(RECIPES_DIR.glob("*.json"))}

DEFAULTS = dict(
    data="phantom", size=32, phantom_size=64, batch=64, steps=20000, lr=2e-4, lr_warmup=500, ema=0.999, loss="edm",
    channels=48, channel_mult=[1, 2, 2], num_blocks=2, emb_dim=128, groups=8, dropout=0.0, bf16=True,
    checkpoint_every=250, seed=0, name=None, threads=0, init_from=None, lr_decay_start=None, lr_final=None,
)


def make_data(data: str, size: int, phantom_size: int = 64) -> tuple[Callable[[int, torch.Generator], torch.Tensor], int]:
    """A batch maker ``(n, generator) -> (n, C, size, size)`` in [0, 1], and its channel count C.

    ``data`` is ``"phantom"`` (procedural), ``"natural"`` (photographs; the held-out ones excluded),
    ``"cache:natural"`` / ``"cache:medical"`` (the train split of the fetched real images,
    :mod:`priors.data_sources`; each source file drawn equally often, at several scales),
    a folder of images, or a tensor file (.npy / .pt, (N, C, H, W) in [0, 1]) cropped at random.
    """
    from .photos import file_weighted_bank, random_crops, training_bank

    if data == "phantom":
        from .phantoms import random_phantoms

        # Crops of larger phantoms teach the local statistics of a phantom at phantom_size px.
        def phantom_crops(n: int, g: torch.Generator) -> torch.Tensor:
            images = random_phantoms(n, phantom_size, g)
            top, left = torch.randint(0, phantom_size - size + 1, (2,), generator=g).tolist()
            return images[..., top:top + size, left:left + size]

        return phantom_crops, 1
    if data == "natural":
        bank, weights = training_bank(size)
    elif data.startswith("cache:"):
        from .data_sources import load_images

        images, origins = load_images(data.removeprefix("cache:"), "train")
        bank, weights = file_weighted_bank(images, [o["source"] + "/" + o["path"] for o in origins], size)
    else:
        bank = _load_images(Path(data))
        weights = torch.ones(len(bank))
        bank = [b for b in bank if min(b.shape[-2:]) >= size]
        if not bank:
            raise ValueError(f"data: no image in {data} is at least {size} px on each side")
    return (lambda n, g: random_crops(bank, weights, n, size, g)), bank[0].shape[0]


def _load_images(path: Path) -> list[torch.Tensor]:
    import numpy as np

    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif"})
        if not files:
            raise ValueError(f"data: no image files found under {path}")
        return [torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
                for f in files]
    if path.suffix == ".npy":
        array = torch.from_numpy(np.load(path, allow_pickle=False)).float()
    elif path.suffix == ".pt":
        array = torch.load(path, weights_only=True).float()
    else:
        raise ValueError(f"data: expected phantom, natural, a folder or a .npy/.pt file, got {path}")
    if array.ndim != 4:
        raise ValueError(f"data: expected a tensor (N, C, H, W), got shape {tuple(array.shape)}")
    return list(array)


def edm_loss(net: torch.nn.Module, x0: torch.Tensor, g: torch.Generator, schedule: sch.EDM,
             p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """Karras et al. 2022, eq. 8: ``lambda(sigma) ||D(x0 + sigma n; sigma) - x0||^2``, ln sigma ~ N(P_mean, P_std^2)."""
    sigma = (p_mean + p_std * torch.randn(x0.shape[0], 1, 1, 1, generator=g)).exp()
    noisy = x0 + sigma * torch.randn(x0.shape, generator=g)
    out = net(schedule.c_in(sigma) * noisy, schedule.c_noise(sigma.flatten()))
    denoised = schedule.c_skip(sigma) * noisy + schedule.c_out(sigma) * out.float()
    weight = (sigma**2 + schedule.sigma_data**2) / (sigma * schedule.sigma_data) ** 2
    return (weight * (denoised - x0) ** 2).mean()


def ddpm_loss(net: torch.nn.Module, x0: torch.Tensor, g: torch.Generator, schedule: sch.DiscreteVP) -> torch.Tensor:
    """Ho et al. 2020, Alg. 1: ``||eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)||^2``."""
    t = torch.randint(0, len(schedule.betas), (x0.shape[0],), generator=g)
    abar = sch.abar_from_sigma(schedule.sigma_table[t]).float().reshape(-1, 1, 1, 1)
    eps = torch.randn(x0.shape, generator=g)
    out = net(abar.sqrt() * x0 + (1 - abar).sqrt() * eps, t.float())
    return ((out.float() - eps) ** 2).mean()


#: How a run executes, not what it learns: may change between sessions of one run.
RUNTIME_KEYS = ("threads", "bf16")


def _recipe(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in RUNTIME_KEYS}


def bf16_is_fast(device: str = "cpu") -> bool:
    """Whether bf16 autocast runs natively here. On CPUs without AVX512-BF16/AMX, oneDNN emulates it
    and a training step is ~13x slower than in float32 (measured on a 2-core AVX2 EPYC; a network pass
    alone ~47x, ``benchmarks.studies.bf16``)."""
    if device != "cpu":
        return True
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def learning_rate(config: dict, step: int) -> float:
    """The learning rate of training step ``step`` (0-based): a linear warm-up over ``lr_warmup`` steps, then
    ``lr``; with ``lr_decay_start`` set, a cosine anneal from there to ``lr_final`` at step ``steps``
    (Loshchilov & Hutter 2017, SGDR, eq. 5, one cycle: eta_t = eta_min + (eta_max - eta_min)(1 + cos(pi T_cur / T)) / 2)."""
    rate = config["lr"] * min(1.0, (step + 1) / config["lr_warmup"])
    start = config["lr_decay_start"]
    if start is None or step < start:
        return rate
    progress = (step + 1 - start) / (config["steps"] - start)
    return config["lr_final"] + (rate - config["lr_final"]) * (1 + math.cos(math.pi * progress)) / 2


def _check_schedule(config: dict) -> None:
    start, final = config["lr_decay_start"], config["lr_final"]
    if (start is None) != (final is None):
        raise ValueError(f"lr_decay_start, lr_final: set both or neither, got {start} and {final}")
    if start is not None and not 0 <= start < config["steps"]:
        raise ValueError(f"lr_decay_start: expected a step in [0, steps={config['steps']}), got {start}")
    if final is not None and not 0 <= final <= config["lr"]:
        raise ValueError(f"lr_final: expected a rate in [0, lr={config['lr']}], got {final}")


def _checkpoint_paths(out: Path) -> tuple[Path, Path]:
    """The model checkpoint and the optimiser state, kept apart so each stays small enough to commit
    (a run is carried from one 2-core session to the next in the repository)."""
    return out / "checkpoint.pt", out / "optimizer.pt"


def _start_from(source: Path, net: UNet, ema: UNet, optimizer: torch.optim.Optimizer) -> dict:
    """Fine-tuning: a new run (its own recipe, e.g. another crop size) continues from another run's
    checkpoint folder: weights, EMA, Adam moments and step count (so the warm-up is not repeated).
    The source's recipe, step and images seen are kept in the state, and so on the card."""
    checkpoint, optimizer_path = _checkpoint_paths(source)
    if not checkpoint.exists():
        raise ValueError(f"init_from: expected a run folder holding checkpoint.pt, got {source}")
    saved = torch.load(checkpoint, weights_only=True)
    try:
        net.load_state_dict(saved["net"])
        ema.load_state_dict(saved["ema"])
    except RuntimeError as error:
        raise ValueError(f"init_from: {source} holds another architecture than this recipe's: {error}") from None
    optimizer.load_state_dict(torch.load(optimizer_path, weights_only=True)["optimizer"])
    source_state = saved["state"]
    source_recipe = _recipe({**DEFAULTS, **saved["config"]})
    return {"step": source_state["step"], "seconds": source_state["seconds"], "losses": list(source_state["losses"]),
            "init": {"recipe": source_recipe, "step": source_state["step"],
                     "images_seen": _images_seen(source_recipe, source_state)}}


def _images_seen(config: dict, state: dict) -> int:
    """Training images drawn so far, counting those of the run this one started from."""
    start = state.get("init")
    if start is None:
        return state["step"] * config["batch"]
    return start["images_seen"] + (state["step"] - start["step"]) * config["batch"]


def _build_net(config: dict, channels: int) -> UNet:
    """The recipe's UNet; its GroupNorms see windows of the crop size on larger images (TLC, :mod:`priors.unet`)."""
    return UNet(in_channels=channels, channels=config["channels"], channel_mult=tuple(config["channel_mult"]),
                num_blocks=config["num_blocks"], emb_dim=config["emb_dim"], groups=config["groups"],
                dropout=config["dropout"], norm_window=config["size"])


def _load_checkpoint(checkpoint: Path, config: dict) -> dict:
    """A run's saved state, refused if it was written by another recipe (runtime keys aside)."""
    saved = torch.load(checkpoint, weights_only=True)
    if _recipe({**DEFAULTS, **saved["config"]}) != _recipe(config):
        raise ValueError(f"config: {checkpoint} was written with a different config; use a new --out")
    return saved


def export_checkpoint(config: dict, out: Path) -> Path:
    """Rewrite a run's weights and card from its last checkpoint, with this code's network and card (no
    training): a run exported by older code gains what the card has learned to say since."""
    config = {**DEFAULTS, **config}
    checkpoint, _ = _checkpoint_paths(out)
    if not checkpoint.exists():
        raise ValueError(f"out: expected a run folder holding checkpoint.pt, got {out}")
    saved = _load_checkpoint(checkpoint, config)
    ema = _build_net(config, saved["ema"]["stem.weight"].shape[1])
    ema.load_state_dict(saved["ema"])
    return export(ema, config, saved["state"], out)


def train(config: dict, out: Path, max_seconds: float | None = None, progress: bool = True) -> dict:
    """Run (or resume) training to ``config['steps']``; returns the training state.

    ``max_seconds`` stops early at the first checkpoint boundary after this call has trained that long
    (for spreading a long run over sessions); time from earlier sessions does not count against it.
    """
    config = {**DEFAULTS, **config}
    _check_schedule(config)
    out.mkdir(parents=True, exist_ok=True)
    batch_maker, channels = make_data(config["data"], config["size"], config["phantom_size"])
    net = _build_net(config, channels)
    reset_parameters(net, torch.Generator().manual_seed(config["seed"]))
    ema = copy.deepcopy(net).requires_grad_(False)
    optimizer = torch.optim.Adam(net.parameters(), lr=config["lr"])
    state = {"step": 0, "seconds": 0.0, "losses": []}
    checkpoint, optimizer_path = _checkpoint_paths(out)
    if checkpoint.exists():
        saved = _load_checkpoint(checkpoint, config)
        net.load_state_dict(saved["net"])
        ema.load_state_dict(saved["ema"])
        saved_optimizer = torch.load(optimizer_path, weights_only=True)
        if saved_optimizer["step"] != saved["state"]["step"]:
            raise ValueError(f"out: {optimizer_path} is from step {saved_optimizer['step']} but {checkpoint} from "
                             f"step {saved['state']['step']}; the run was killed between the two writes")
        optimizer.load_state_dict(saved_optimizer["optimizer"])
        state = saved["state"]
    elif config["init_from"]:
        state = _start_from(Path(config["init_from"]), net, ema, optimizer)
    schedule = sch.EDM() if config["loss"] == "edm" else sch.DiscreteVP.linear()
    loss_fn = edm_loss if config["loss"] == "edm" else ddpm_loss
    use_bf16 = config["bf16"] and bf16_is_fast()
    if config["bf16"] and not use_bf16 and progress:
        print("bf16: this CPU has no native bf16 (emulated, ~13x slower); training in float32")

    started = call_started = time.time()
    bar = tqdm(range(state["step"], config["steps"]), initial=state["step"], total=config["steps"],
               disable=not progress, desc=config.get("name") or "train")
    running = []
    for step in bar:
        g = torch.Generator().manual_seed(config["seed"] * 1_000_003 + step)
        x0 = batch_maker(config["batch"], g) * 2 - 1  # image units [0, 1] -> network units [-1, 1]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            loss = loss_fn(net, x0, g, schedule)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decay = min(config["ema"], (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters()):
                p_ema.lerp_(p, 1 - decay)
        running.append(loss.item())
        if (step + 1) % config["checkpoint_every"] == 0 or step + 1 == config["steps"]:
            state["step"] = step + 1
            state["seconds"] += time.time() - started
            started = time.time()
            state["losses"].append([step + 1, sum(running) / len(running)])
            running = []
            bar.set_postfix(loss=f"{state['losses'][-1][1]:.4f}")
            optimizer_state = {"step": state["step"], "optimizer": optimizer.state_dict()}
            atomic_write(optimizer_path, lambda tmp: torch.save(optimizer_state, tmp))
            run_state = {"config": config, "net": net.state_dict(), "ema": ema.state_dict(), "state": state}
            atomic_write(checkpoint, lambda tmp: torch.save(run_state, tmp))
            export(ema, config, state, out)
            if max_seconds is not None and time.time() - call_started >= max_seconds:
                break
    bar.close()
    return state


def card(net: UNet, config: dict, state: dict) -> dict:
    """The JSON card :func:`priors.load` reads to rebuild and wrap the network."""
    schedule = sch.EDM() if config["loss"] == "edm" else sch.DiscreteVP.linear()
    return {
        "format": "diffusion-restore",
        "name": config.get("name"),
        "architecture": {"class": "UNet", "config": net.config},
        "prediction": "edm" if config["loss"] == "edm" else "eps",
        "schedule": schedule.config() if config["loss"] == "edm" else {"kind": "discrete_vp", "beta_schedule": "linear", "n": 1000},
        "data_range": [-1.0, 1.0],
        "image_channels": net.config["in_channels"],
        "parameters": sum(p.numel() for p in net.parameters()),
        "train": {
            "recipe": _recipe(config),
            "steps": state["step"],
            "images_seen": _images_seen(config, state),
            "init": state.get("init"),
            "seconds": round(state["seconds"], 1),
            "final_loss": state["losses"][-1][1] if state["losses"] else None,
            "losses": state["losses"],
            "torch": torch.__version__,
            **({"data_manifest": _describe_data(config["data"])} if str(config["data"]).startswith("cache:") else {}),
        },
    }


def _describe_data(data: str) -> dict:
    from .data_sources import describe

    return describe(data.removeprefix("cache:"), "train")


def export(ema: UNet, config: dict, state: dict, out: Path) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` (atomically) into ``out``."""
    name = config.get("name") or "prior"
    weights = out / f"{name}.safetensors"
    atomic_write(weights, lambda tmp: save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp)))
    write_bytes_atomic(out / f"{name}.json", json.dumps(card(ema, config, state), indent=1).encode())
    return weights


def plot(out: Path, name: str, n: int = 16, steps: int = 40) -> None:
    """Loss curve and a grid of unconditional samples (EDM Heun sampler) from the exported EMA weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from safetensors.torch import load_file
    from torchvision.utils import save_image

    info = json.loads((out / f"{name}.json").read_text())
    losses = info["train"]["losses"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([s for s, _ in losses], [v for _, v in losses])
    ax.set(xlabel="step", ylabel=f"{info['train']['recipe']['loss']} loss", yscale="log", title=name)
    fig.tight_layout()
    fig.savefig(out / f"{name}_loss.png", dpi=100)
    plt.close(fig)

    net = UNet(**info["architecture"]["config"])
    net.load_state_dict(load_file(str(out / f"{name}.safetensors")))
    net.eval()
    prior = wrap(net, prediction=info["prediction"], schedule=sch.from_config(info["schedule"]))
    from .sample import sample

    size = info["train"]["recipe"]["size"]
    with torch.no_grad():
        images = sample(prior, n, steps, method="heun", generator=torch.Generator().manual_seed(0),
                        shape=(info["image_channels"], 2 * size, 2 * size))
    save_image(images.clamp(0, 1), out / f"{name}_samples.png", nrow=int(math.sqrt(n)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m priors.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), help="a committed recipe in priors/recipes/")
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumes if it holds a checkpoint)")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop at a checkpoint after this long")
    parser.add_argument("--plot-only", action="store_true", help="only redraw the loss curve and sample grid")
    parser.add_argument("--export-only", action="store_true",
                        help="only rewrite the weights and card from the last checkpoint (then redraw the plots)")
    for key, value in DEFAULTS.items():
        kind = {"lr_decay_start": int, "lr_final": float}.get(key) or (
            type(value) if value is not None and not isinstance(value, (bool, list)) else str)
        parser.add_argument("--" + key.replace("_", "-"), type=kind, default=None)
    args = parser.parse_args(argv)
    if args.threads:  # the entry point alone sets the process-wide thread count, never the library code
        torch.set_num_threads(args.threads)
    config = dict(DEFAULTS)
    if args.recipe:
        config.update(json.loads(RECIPES[args.recipe].read_text()))
    for key in DEFAULTS:
        value = getattr(args, key)
        if value is not None:
            if key == "channel_mult":
                value = [int(v) for v in value.split(",")]
            elif key == "bf16":
                value = value.lower() in ("1", "true", "yes")
            config[key] = value
    if args.export_only:
        export_checkpoint(config, args.out)
    elif not args.plot_only:
        train(config, args.out, max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    plot(args.out, config.get("name") or "prior")


if __name__ == "__main__":
    main()
