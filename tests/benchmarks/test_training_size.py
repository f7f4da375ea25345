"""The training-size comparison: paired scores of several priors, their cards described, differences right."""
from pathlib import Path

import pytest

import priors.testsets
from benchmarks.studies import training_size
from priors.train import train

# RGB training data without scikit-learn (a test-only install): the bundled test photographs' folder
TINY_NATURAL = dict(data=str(Path(priors.testsets.__file__).parent), size=16, batch=2, steps=2, lr=1e-3, lr_warmup=1, channels=8, channel_mult=[1, 2],
                    num_blocks=1, emb_dim=16, groups=4, checkpoint_every=2, bf16=False)


def test_compares_a_start_and_a_larger_crop_fine_tune(tmp_path, capsys):
    train({**TINY_NATURAL, "name": "start"}, tmp_path / "start", progress=False)
    train({**TINY_NATURAL, "name": "crop24", "size": 24, "steps": 4, "init_from": str(tmp_path / "start")},
          tmp_path / "crop24", progress=False)
    weights = [tmp_path / "start" / "start.safetensors", tmp_path / "crop24" / "crop24.safetensors"]
    training_size.main(["--weights", *map(str, weights), "--sizes", "32", "--no-bm3d", "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "training_size.md").read_text()
    assert "crop 16 px, 2 steps" in text and "crop 24 px, 4 steps" in text
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| 32 |")]
    assert len(rows) == len(training_size.SIGMAS)
    for row in rows:
        p0, p1, gain = (float(cell) for cell in row[2:5])
        assert gain == pytest.approx(p1 - p0, abs=0.011)


def test_weights_need_their_card(tmp_path):
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(b"")
    with pytest.raises(ValueError, match="weights"):
        training_size.main(["--weights", str(lone), "--no-bm3d"])
