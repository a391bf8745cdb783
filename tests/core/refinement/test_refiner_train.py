"""Refiner training on the demo images behind the bundled detector: two steps, then a resume that goes
on from the checkpoint; the run folder holds what the export needs; bad configurations name the key."""

import json
from pathlib import Path

import pytest
import torch

from deepmark.core.inference.detector import default_model_path
from deepmark.core.refinement.config import load_refiner_config, parse_refiner_config
from deepmark.core.refinement.train import load_refiner_checkpoint, train_refiner
from deepmark.core.training.config import ConfigError

DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo"


def _config(run_dir: Path, **train):
    raw = {"data": {"train": str(DEMO), "val": str(DEMO), "val_split": "all", "detector": str(default_model_path()),
                    "flip": False, "multiscale": False, "crop_size": [64, 64]},
           "model": {"width_mult": 0.25, "up_channels": [32, 32, 16, 16], "head_conv": 16},
           "recipe": {"synthetic_share": 0.5},
           "train": {"epochs": 1, "batch_size": 4, "max_steps_per_epoch": 2, "workers": 0, "threads": 1, **train},
           "output": {"run_dir": str(run_dir)}}
    return parse_refiner_config(raw, "test.toml")


def test_two_steps_then_resume(tmp_path):
    run = tmp_path / "run"
    state = train_refiner(_config(run), progress=False)
    assert (state.epoch, state.global_step) == (1, 2)
    for name in ("last.pt", "best.pt", "log.jsonl", "error-stats.json", "config.json", "detections-train.json",
                 "detections-val-all.json"):
        assert (run / name).is_file(), name
    detections_written = (run / "detections-train.json").stat().st_mtime_ns
    first = load_refiner_checkpoint(run / "last.pt")
    assert first["state"]["global_step"] == 2 and first["detector"]["name"] == default_model_path().name
    assert set(first["error_stats"]) >= {"jitter", "swap", "miss", "box"}

    state = train_refiner(_config(run, epochs=2), progress=False)
    assert (state.epoch, state.global_step) == (2, 4)  # went on from step 2, did not start again
    assert (run / "detections-train.json").stat().st_mtime_ns == detections_written  # the detector ran once
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1]
    assert all(torch.isfinite(torch.tensor(r["loss"])) and "val_gain" in r for r in log)
    resumed = load_refiner_checkpoint(run / "last.pt")
    assert not torch.equal(resumed["model"]["heatmap.1.weight"], first["model"]["heatmap.1.weight"])


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    run = tmp_path / "run"
    train_refiner(_config(run), progress=False)
    other = parse_refiner_config({**_raw(run), "model": {"width_mult": 0.5, "up_channels": [32, 32, 16, 16],
                                                         "head_conv": 16}}, "test.toml")
    with pytest.raises(Exception, match="last.pt: checkpoint is"):
        train_refiner(other, progress=False)


def _raw(run: Path) -> dict:
    return {"data": {"train": str(DEMO), "val": str(DEMO), "val_split": "all", "detector": str(default_model_path()),
                     "flip": False, "multiscale": False, "crop_size": [64, 64]},
            "train": {"epochs": 2, "batch_size": 4, "max_steps_per_epoch": 1, "workers": 0, "threads": 1},
            "output": {"run_dir": str(run)}}


@pytest.mark.parametrize("text, named", [
    ("[data]\ntrain = 'x'\ndetector = 'd.onnx'\ncrop = [64, 64]\n", "crop"),
    ("[data]\ntrain = 'x'\ndetector = 'd.onnx'\n[training]\nepochs = 1\n", "training"),
    ("[data]\ntrain = 'x'\ndetector = 'd.onnx'\ncrop_size = [50, 64]\n", "crop_size"),
    ("[data]\ntrain = 'x'\ndetector = 'd.onnx'\n[train]\nepochs = 'many'\n", "epochs"),
    ("[data]\ntrain = 'x'\n", "detector"),
    ("[data]\ntrain = 'x'\ndetector = 'd.onnx'\nval_split = 'test'\n", "val_split"),
    ("[data]\ntrain = 'x'\ndetector = 'd.onnx'\n[recipe]\nsynthetic_share = 1.5\n", "synthetic_share"),
    ("[data\n", "cannot read TOML"),
])
def test_bad_configurations_name_the_key(tmp_path, text, named):
    path = tmp_path / "refiner.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_refiner_config(path)
    assert named in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_the_shipped_recipe_parses():
    config = load_refiner_config(Path(__file__).resolve().parents[3] / "resources" / "models" / "refiner.toml")
    assert config.data.detector.endswith("deepmark-default-fp32.onnx") and config.data.flip and config.data.multiscale
