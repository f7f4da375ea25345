"""Loader round trips: tiny random networks in every format, saved, loaded back through ``priors.load``,
and compared with the in-memory wrapped network; checksum, architecture and safety errors."""
from __future__ import annotations

import hashlib
import importlib
import json

import pytest
import torch

from priors import schedules as sch
from priors.denoiser import wrap
from priors.random import global_rng_restored
from priors.guided_unet import GuidedUNet
from priors.unet import UNet

L = importlib.import_module("priors.load")  # the module (``priors.load`` may name the function)

SIGMAS = torch.tensor([0.02, 0.3, 1.5, 20.0])
TINY_FLAGS = dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,1", learn_sigma=True,
                  attention_resolutions="16", num_heads=2, num_head_channels=-1, use_scale_shift_norm=True,
                  resblock_updown=True)


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (the zero-initialised output convs would make every net trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) * (0.8 if p.ndim > 1 else 0.1) / fan_in**0.5)
    return module.eval()


def images(c: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(len(SIGMAS), c, size, size, generator=torch.Generator().manual_seed(seed))


def assert_same_denoiser(loaded, reference, c: int, size: int) -> float:
    """Equal outputs to 1e-5 at several sigmas, on an input where the network matters.

    ``reference`` is a prior or its output on ``images(c, size)`` at ``SIGMAS``.
    """
    x = images(c, size)
    with torch.no_grad():
        got = loaded.denoise(x, SIGMAS)
        want = reference if isinstance(reference, torch.Tensor) else reference.denoise(x, SIGMAS)
    assert (want - x).abs().max() > 1e-2, "the reference denoiser is trivial; the test would prove nothing"
    diff = (got - want).abs().max().item()
    assert diff <= 1e-5, diff
    return diff


def tiny_guided() -> GuidedUNet:
    return randomize(GuidedUNet.from_flags(**TINY_FLAGS))


def known_entry(path, **changes) -> L.KnownCheckpoint:
    data = path.read_bytes()
    fields = dict(filename="tiny_guided.pt", url=path.as_uri(), sha256=hashlib.sha256(data).hexdigest(),
                  size=len(data), flags=TINY_FLAGS, description="tiny", manual="the test",
                  image_shape=(3, 32, 32))
    fields.update(changes)
    return L.KnownCheckpoint(**fields)


# ------------------------------------------------------------------------------ our own format


def test_training_output_round_trip(tmp_path):
    from priors import train

    net = randomize(UNet(in_channels=1, channels=8, channel_mult=(1, 2), num_blocks=1, emb_dim=16, groups=4))
    config = {**train.DEFAULTS, "name": "tiny", "loss": "edm"}
    train.export(net, config, {"step": 3, "seconds": 0.5, "losses": [[3, 0.25]]}, tmp_path)
    reference = wrap(net, prediction="edm", schedule=sch.EDM())
    for target in (tmp_path, tmp_path / "tiny.safetensors", tmp_path / "tiny.json"):
        prior = L.load(target)
        assert isinstance(prior.schedule, sch.EDM) and prior.prediction == "edm"
        assert_same_denoiser(prior, reference, 1, 12)  # 12: not a multiple of the downsampling factor


def test_save_load_eps_prior_and_bundled_name(tmp_path, monkeypatch):
    net = randomize(UNet(in_channels=3, channels=8, channel_mult=(1, 2), num_blocks=1, emb_dim=16, groups=4))
    reference = wrap(net, prediction="eps", schedule=sch.DiscreteVP.cosine(), data_range=(0.0, 1.0))
    L.save(reference, tmp_path / "mine", description="a tiny test prior")
    monkeypatch.setattr(L, "WEIGHTS_DIR", tmp_path)
    assert L.available()["mine"] == "a tiny test prior"
    prior = L.load("mine")
    assert prior.data_range == (0.0, 1.0)
    torch.testing.assert_close(prior.schedule.betas, reference.schedule.betas, rtol=0, atol=0)
    assert_same_denoiser(prior, reference, 3, 16)


def test_load_to_dtype(tmp_path):
    net = randomize(UNet(in_channels=1, channels=8, channel_mult=(1, 2), num_blocks=1, emb_dim=16, groups=4))
    L.save(wrap(net, prediction="edm", schedule=sch.EDM()), tmp_path / "p")
    prior = L.load(tmp_path / "p.json", dtype=torch.float64)
    assert next(prior.module.parameters()).dtype == torch.float64
    x = images(1, 8).double()
    assert prior.denoise(x, SIGMAS).dtype == torch.float64


# ------------------------------------------------------------------- guided-diffusion checkpoints


def test_guided_known_checkpoint_downloads_checks_and_loads(tmp_path, monkeypatch):
    net = tiny_guided()
    source = tmp_path / "source.pt"
    torch.save(net.state_dict(), source)
    monkeypatch.setitem(L.KNOWN, "tiny-guided", known_entry(source))
    cache = tmp_path / "cache"
    with torch.no_grad():
        reference = wrap(net, prediction="eps", schedule=sch.DiscreteVP.linear(),
                         learned_variance=True).denoise(images(3, 16), SIGMAS)

    prior = L.load("tiny-guided", cache_dir=cache)  # a file:// URL stands in for the network
    assert (cache / "tiny_guided.pt").read_bytes() == source.read_bytes()
    assert prior.learned_variance and prior.image_shape == (3, 32, 32)
    assert_same_denoiser(prior, reference, 3, 16)
    # cached now: loads without the source, and by path through its file name
    source.unlink()
    assert_same_denoiser(L.load("tiny-guided", cache_dir=cache), reference, 3, 16)
    assert_same_denoiser(L.load(cache / "tiny_guided.pt"), reference, 3, 16)


def test_guided_checkpoint_with_card_and_odd_size(tmp_path):
    net = tiny_guided()
    reference = wrap(net, prediction="eps", schedule=sch.DiscreteVP.linear(), learned_variance=True)
    L.save(reference, tmp_path / "guided")
    # the same card beside a guided-diffusion style .pt state dict
    (tmp_path / "guided.safetensors").unlink()
    torch.save(net.state_dict(), tmp_path / "guided.pt")
    assert_same_denoiser(L.load(tmp_path / "guided.pt"), reference, 3, 10)  # padded to 12 and cropped


def test_guided_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    source = tmp_path / "source.pt"
    torch.save(tiny_guided().state_dict(), source)
    monkeypatch.setitem(L.KNOWN, "tiny-guided", known_entry(source, sha256="0" * 64))
    with pytest.raises(L.CheckpointError, match="sha256 mismatch"):
        L.load("tiny-guided", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_user_placed_file_is_checked(tmp_path, monkeypatch):
    source = tmp_path / "source.pt"
    torch.save(tiny_guided().state_dict(), source)
    monkeypatch.setitem(L.KNOWN, "tiny-guided", known_entry(source))
    cache = tmp_path / "cache"
    cache.mkdir()
    placed = cache / "tiny_guided.pt"
    data = bytearray(source.read_bytes())
    data[-100] ^= 1  # same size, one bit flipped
    placed.write_bytes(bytes(data))
    with pytest.raises(L.CheckpointError, match=f"{placed}.*sha256 mismatch"):
        L.load("tiny-guided", cache_dir=cache)


def test_no_network_says_which_file_to_put_where(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "tiny_guided.pt"
    entry = L.KnownCheckpoint(filename="tiny_guided.pt", url=missing.as_uri(), sha256=None, size=None,
                              flags=TINY_FLAGS, description="tiny", manual="the moon")
    monkeypatch.setitem(L.KNOWN, "tiny-guided", entry)
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match=f"the moon and put it at {cache / 'tiny_guided.pt'}"):
        L.load("tiny-guided", cache_dir=cache)


def test_download_with_opener(tmp_path):
    payload = b"weights" * 1000

    class Response:
        def __init__(self):
            self.left = payload

        def read(self, n):
            chunk, self.left = self.left[:n], self.left[n:]
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    dest = tmp_path / "w.bin"
    digest = hashlib.sha256(payload).hexdigest()
    assert L.download("https://example.invalid/w", dest, digest, len(payload), opener=lambda url, timeout: Response()) == digest
    assert dest.read_bytes() == payload
    with pytest.raises(L.CheckpointError, match="bytes, expected"):
        L.download("https://example.invalid/w", tmp_path / "v.bin", None, 5, opener=lambda url, timeout: Response())
    assert not (tmp_path / "v.bin").exists()


@pytest.mark.parametrize("name", list(L.KNOWN))
def test_known_architectures_match_guided_diffusion_keys(name):
    """Our GuidedUNet has deepinv DiffUNet's (= guided-diffusion's) keys and shapes for each known config."""
    from deepinv.models import DiffUNet

    with torch.device("meta"):
        ours = GuidedUNet.from_flags(**L.KNOWN[name].flags).state_dict()
        theirs = DiffUNet(large_model=name == "imagenet256-uncond", pretrained=None).state_dict()
    # DiffUNet adds two schedule buffers that are not in the checkpoints
    theirs = {k: v.shape for k, v in theirs.items() if "alphas_cumprod" not in k}
    assert {k: v.shape for k, v in ours.items()} == theirs
    expected = {"ffhq256-dps": 93_563_910, "imagenet256-uncond": 552_814_086}[name]
    assert sum(v.numel() for v in ours.values()) == expected


# --------------------------------------------------------------------------------------- errors


def test_missing_keys_and_wrong_architecture_name_the_file(tmp_path):
    net = tiny_guided()
    L.save(wrap(net, prediction="eps", learned_variance=True), tmp_path / "g")
    card_path, weights = tmp_path / "g.json", tmp_path / "g.pt"
    (tmp_path / "g.safetensors").unlink()

    state = net.state_dict()
    del state["out.2.weight"]
    torch.save(state, weights)
    with pytest.raises(L.CheckpointError, match=rf"{weights}.*1 missing keys \(out.2.weight\)"):
        L.load(card_path)

    card = json.loads(card_path.read_text())
    torch.save(net.state_dict(), weights)
    card["architecture"]["config"]["model_channels"] = 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(L.CheckpointError, match=rf"{weights}.*shape mismatches"):
        L.load(card_path)

    card["architecture"]["class"] = "Transformer"
    card_path.write_text(json.dumps(card))
    with pytest.raises(L.CheckpointError, match=rf"{card_path}.*unknown architecture 'Transformer'"):
        L.load(card_path)


class Payload:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_code_in_pickle_is_refused(tmp_path, capsys):
    bad = tmp_path / "ffhq_10m.pt"
    torch.save({"out.2.weight": torch.zeros(1), "x": Payload()}, bad)
    with pytest.raises(L.CheckpointError, match=f"{bad}: cannot be read as weights"):
        L.read_state_dict(bad)
    assert "unpickled code ran" not in capsys.readouterr().out


def test_unknown_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file"):
        L.load(tmp_path / "nothing")
    lonely = tmp_path / "lonely.pt"
    torch.save({"a": torch.zeros(1)}, lonely)
    with pytest.raises(FileNotFoundError, match="no card"):
        L.load(lonely)


# -------------------------------------------------------------------------------------- diffusers


def test_diffusers_folder_round_trip(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    with global_rng_restored():  # diffusers initialises from the global RNG; randomize() redraws it
        unet = diffusers.UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                                     block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=4,
                                     down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    randomize(unet)
    unet.save_pretrained(tmp_path / "model")
    diffusers.DDPMScheduler(prediction_type="v_prediction").save_pretrained(tmp_path / "model" / "scheduler")

    prior = L.load(tmp_path / "model")
    assert prior.prediction == "v" and prior.image_shape == (3, 16, 16)
    reference = wrap(L.DiffusersUNet(unet), prediction="v", schedule=sch.DiscreteVP.linear())
    assert_same_denoiser(prior, reference, 3, 16)


@pytest.mark.parametrize("beta_schedule, prediction_type", [("linear", "epsilon"), ("scaled_linear", "v_prediction"),
                                                             ("squaredcos_cap_v2", "sample")])
def test_diffusers_scheduler_config(tmp_path, beta_schedule, prediction_type):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule,
                                        prediction_type=prediction_type, beta_start=0.00085, beta_end=0.012)
    scheduler.save_pretrained(tmp_path)
    schedule, prediction = L._diffusers_schedule(tmp_path / "scheduler_config.json")
    assert prediction == {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}[prediction_type]
    # diffusers keeps abar in float32: its cumulative product over n steps is off by at most ~n ulp
    ours = 1 / (1 + schedule.sigma_table**2)
    torch.testing.assert_close(ours, scheduler.alphas_cumprod.double(), rtol=0, atol=1000 * 2**-24)
