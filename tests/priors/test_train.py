"""Training: a run killed mid-way and resumed ends at the same weights as one never interrupted."""
import importlib
import json

import pytest
import torch
from safetensors.torch import load_file

import priors
from priors.phantoms import TEST_SEED_OFFSET, phantom, random_phantoms
from priors.photos import HELD_OUT, TRAIN_GRAY, TRAIN_RGB
from priors.train import DEFAULTS, export_checkpoint, learning_rate, train

TINY = dict(name="tiny", data="phantom", size=16, phantom_size=24, batch=4, steps=6, lr=1e-3, lr_warmup=2,
            channels=8, channel_mult=[1, 2], num_blocks=1, emb_dim=16, groups=4, checkpoint_every=2, bf16=False)


def test_resumed_run_ends_at_the_uninterrupted_weights(tmp_path):
    train(TINY, tmp_path / "straight", progress=False)
    # max_seconds=0 stops at the first checkpoint, as a kill right after it would.
    state = train(TINY, tmp_path / "resumed", max_seconds=0, progress=False)
    assert state["step"] == 2
    state = train(TINY, tmp_path / "resumed", progress=False)
    assert state["step"] == 6
    a = load_file(str(tmp_path / "straight" / "tiny.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "tiny.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    # The run learned something: the weights moved from their initialisation.
    first = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert first["state"]["losses"][-1][0] == 6


def test_export_loads_through_the_public_loader(tmp_path):
    train(TINY, tmp_path, progress=False)
    card = json.loads((tmp_path / "tiny.json").read_text())
    assert card["train"]["steps"] == 6 and card["prediction"] == "edm" and card["data_range"] == [-1.0, 1.0]
    prior = priors.load(tmp_path / "tiny.safetensors")
    x = torch.rand(2, 1, 20, 28, generator=torch.Generator().manual_seed(0))
    out = prior.denoise(x, 0.1)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_resume_refuses_a_different_config(tmp_path):
    train({**TINY, "steps": 2}, tmp_path, progress=False)
    with pytest.raises(ValueError, match="config"):
        train({**TINY, "steps": 2, "lr": 5e-4}, tmp_path, progress=False)
    # threads and bf16 say how a run executes, not what it learns: a later session may change them
    train(TINY, tmp_path / "runtime", max_seconds=0, progress=False)
    state = train({**TINY, "bf16": True, "threads": 1}, tmp_path / "runtime", progress=False)
    assert state["step"] == TINY["steps"]


def test_phantoms_are_deterministic_in_range_and_varied():
    a = random_phantoms(4, 32, torch.Generator().manual_seed(3))
    b = random_phantoms(4, 32, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert (a[0] - a[1]).abs().mean() > 0.01
    torch.testing.assert_close(phantom(TEST_SEED_OFFSET, 32), phantom(TEST_SEED_OFFSET, 32))


def test_held_out_photographs_never_train():
    assert not set(HELD_OUT) & set(TRAIN_RGB + TRAIN_GRAY)
    assert {"astronaut", "coffee", "chelsea"} <= set(HELD_OUT)


def test_max_seconds_counts_this_call_only_not_earlier_sessions(tmp_path):
    # A run carried over many sessions has a large total; a resumed call must still train its own budget.
    train(TINY, tmp_path, max_seconds=0, progress=False)
    checkpoint = tmp_path / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=True)
    saved["state"]["seconds"] = 1e6
    torch.save(saved, checkpoint)
    state = train(TINY, tmp_path, max_seconds=3600, progress=False)
    assert state["step"] == 6 and state["seconds"] > 1e6


def test_init_from_continues_another_run_at_a_new_crop_size(tmp_path):
    train({**TINY, "steps": 4}, tmp_path / "source", progress=False)
    source = torch.load(tmp_path / "source" / "checkpoint.pt", weights_only=True)
    bigger = {**TINY, "name": "bigger", "size": 24, "batch": 2, "steps": 6, "init_from": str(tmp_path / "source")}
    # Stopped right after its first checkpoint: the step count went on from the source's 4 (no new warm-up)
    state = train(bigger, tmp_path / "bigger", max_seconds=0, progress=False)
    assert state["step"] == 6 and state["init"]["step"] == 4
    card = json.loads((tmp_path / "bigger" / "bigger.json").read_text())
    assert card["train"]["images_seen"] == 4 * TINY["batch"] + 2 * 2
    assert card["train"]["init"]["recipe"]["size"] == TINY["size"]
    # It started from the source's weights: two steps at a small learning rate stay close to them
    tuned = torch.load(tmp_path / "bigger" / "checkpoint.pt", weights_only=True)["net"]
    fresh = {**TINY, "name": "fresh", "size": 24, "batch": 2, "steps": 6}
    scratch = train(fresh, tmp_path / "fresh", progress=False)
    scratch_net = torch.load(tmp_path / "fresh" / "checkpoint.pt", weights_only=True)["net"]
    key = next(k for k in tuned if k.endswith("weight") and tuned[k].ndim == 4)
    assert (tuned[key] - source["net"][key]).abs().max() < (scratch_net[key] - source["net"][key]).abs().max()
    assert scratch["step"] == 6


def test_init_from_refuses_a_missing_run_or_another_architecture(tmp_path):
    with pytest.raises(ValueError, match="init_from"):
        train({**TINY, "init_from": str(tmp_path / "nothing")}, tmp_path / "a", progress=False)
    train({**TINY, "steps": 2}, tmp_path / "source", progress=False)
    with pytest.raises(ValueError, match="init_from"):
        train({**TINY, "channels": 4, "init_from": str(tmp_path / "source")}, tmp_path / "b", progress=False)


def test_library_train_leaves_the_thread_count_alone(tmp_path):
    # Only the CLI entry point sets the process-wide thread count (issue 11); train() is library code.
    before = torch.get_num_threads()
    train({**TINY, "steps": 2, "threads": before + 1}, tmp_path, progress=False)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("size", [32, 256])
def test_bundled_medical_prior_loads_and_denoises(size):
    # The real-data grayscale prior (priors/weights/medical.*): fully convolutional, 32 to 256 px.
    prior = priors.load("medical")
    weights_dir = importlib.import_module("priors.load").WEIGHTS_DIR
    card = json.loads((weights_dir / "medical.json").read_text())
    assert card["image_channels"] == 1 and card["train"]["data_manifest"]["family"] == "medical"
    x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = prior.denoise(x, 0.1)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert "medical" in priors.available()


def test_learning_rate_warms_up_holds_then_anneals_to_lr_final():
    config = {**DEFAULTS, **TINY, "steps": 100, "lr_warmup": 10, "lr_decay_start": 60, "lr_final": 1e-5}
    rates = [learning_rate(config, step) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert rates[10:60] == [pytest.approx(1e-3)] * 50
    assert all(a > b for a, b in zip(rates[59:], rates[60:]))
    assert rates[-1] == pytest.approx(1e-5)
    assert learning_rate({**config, "lr_decay_start": None, "lr_final": None}, 99) == pytest.approx(1e-3)


@pytest.mark.parametrize("bad, name", [(dict(lr_decay_start=3), "lr_final"), (dict(lr_decay_start=6, lr_final=0.0),
                                        "lr_decay_start"), (dict(lr_decay_start=2, lr_final=1.0), "lr_final")])
def test_a_bad_anneal_is_refused_naming_the_argument(tmp_path, bad, name):
    with pytest.raises(ValueError, match=name):
        train({**TINY, **bad}, tmp_path, progress=False)


def test_an_annealed_run_resumes_exactly(tmp_path):
    annealed = {**TINY, "lr_decay_start": 2, "lr_final": 1e-5}
    train(annealed, tmp_path / "straight", progress=False)
    train(annealed, tmp_path / "resumed", max_seconds=0, progress=False)
    train(annealed, tmp_path / "resumed", progress=False)
    a = load_file(str(tmp_path / "straight" / "tiny.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "tiny.safetensors"))
    train(TINY, tmp_path / "plain", progress=False)
    plain = load_file(str(tmp_path / "plain" / "tiny.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(a[key], plain[key]) for key in a)


def test_a_run_exports_a_crop_sized_norm_window_and_re_exports_from_its_checkpoint(tmp_path):
    train(TINY, tmp_path, progress=False)
    card_path = tmp_path / "tiny.json"
    card = json.loads(card_path.read_text())
    assert card["architecture"]["config"]["norm_window"] == TINY["size"]
    del card["architecture"]["config"]["norm_window"]  # as an older export wrote it
    card_path.write_text(json.dumps(card))
    before = load_file(str(tmp_path / "tiny.safetensors"))
    export_checkpoint(TINY, tmp_path)
    assert json.loads(card_path.read_text())["architecture"]["config"]["norm_window"] == TINY["size"]
    after = load_file(str(tmp_path / "tiny.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="config"):
        export_checkpoint({**TINY, "lr": 5e-4}, tmp_path)
    with pytest.raises(ValueError, match="out"):
        export_checkpoint(TINY, tmp_path / "nothing")
