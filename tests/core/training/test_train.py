"""Training on synthetic data: the loss falls, checkpoints resume to the same state, configs are checked."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import deepmark.core.training.train as train_module
from deepmark.core.network.checkpoint import CheckpointError, load_checkpoint
from deepmark.core.synthetic import SynthConfig, generate_dataset
from deepmark.core.training.config import ConfigError, load_config, parse_config
from deepmark.core.training.train import TrainingError, train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    config = SynthConfig(image_size=(128, 128), max_items=2)
    generate_dataset(root / "train", 12, seed=3, config=config)
    generate_dataset(root / "val", 4, seed=4, config=config)
    return root


def _config(data: Path, run_dir: Path, **train_overrides):
    raw = {
        "data": {"train": str(data / "train"), "val": str(data / "val"), "input_size": [128, 128]},
        "model": {"arch": "mobilenetv2", "head_conv": 32},
        "train": {"epochs": 3, "batch_size": 4, "lr": 2e-3, "lr_steps": [100], "workers": 0, "seed": 1,
                  "val_images": 4, **train_overrides},
        "output": {"run_dir": str(run_dir)},
    }
    return parse_config(raw, "test.toml")


def test_loss_falls_and_run_folder_is_complete(tiny_data, tmp_path):
    state = train(_config(tiny_data, tmp_path / "run"), progress=False)
    assert state.epoch == 3 and state.global_step == 9
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1, 2]
    assert log[-1]["loss"] < 0.8 * log[0]["loss"]
    assert all(0.0 <= r["val_map_pt"] <= 1.0 for r in log)
    for name in ("last.pt", "best.pt", "config.json", "train.log"):
        assert (tmp_path / "run" / name).exists()
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["arch"] == "mobilenetv2" and checkpoint["grouping"] == "semantic62"


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def test_resume_mid_epoch_reaches_the_same_weights(tiny_data, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    train(_config(tiny_data, straight, epochs=2, val_images=1), progress=False)

    # Interrupted run: checkpoint after every batch, killed (KeyboardInterrupt) at the 5th step, resumed.
    interrupted = tmp_path / "interrupted"
    config = _config(tiny_data, interrupted, epochs=2, val_images=1, checkpoint_minutes=0.0)
    real_loss, calls = train_module.stacked_loss, {"n": 0}

    def dying_loss(outputs, batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_loss(outputs, batch)

    monkeypatch.setattr(train_module, "stacked_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    saved = load_checkpoint(interrupted / "last.pt")["state"]
    assert (saved["epoch"], saved["batch_in_epoch"]) == (1, 1)  # 3 batches per epoch, 4 done
    monkeypatch.setattr(train_module, "stacked_loss", real_loss)
    state = train(config, progress=False)
    assert state.global_step == 6
    a, b = _weights(straight / "last.pt"), _weights(interrupted / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_config_errors_name_the_problem(tmp_path, tiny_data):
    path = tmp_path / "bad.toml"
    path.write_text('[data]\ntrain = "x"\n[train]\nepochz = 3\n')
    with pytest.raises(ConfigError, match=r"bad.toml: unknown key\(s\) \['epochz'\] in \[train\]"):
        load_config(path)
    path.write_text('[data]\ntrain = "x"\ninput_size = [250, 256]\n')
    with pytest.raises(ConfigError, match="multiples of 32"):
        load_config(path)
    path.write_text("[data\n")
    with pytest.raises(ConfigError, match="cannot read TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
    bad_arch = parse_config({"data": {"train": str(tiny_data / "train")}, "model": {"arch": "vgg"},
                             "output": {"run_dir": str(tmp_path / "r")}}, "arch.toml")
    with pytest.raises(TrainingError, match="arch.toml: .*vgg"):
        train(bad_arch, progress=False)


def test_damaged_checkpoint_is_reported(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="last.pt: cannot read checkpoint"):
        load_checkpoint(bad)
    torch.save({"something": np.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a DeepMark checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.slow
def test_two_process_ddp_run_through_torchrun(tiny_data, tmp_path):
    """Several processes train through torchrun (DDP, gloo on the CPU); rank 0 writes the run folder."""
    import os
    import subprocess
    import sys

    config = tmp_path / "ddp.toml"
    config.write_text(
        f'[data]\ntrain = "{tiny_data / "train"}"\nval = "{tiny_data / "val"}"\ninput_size = [128, 128]\n'
        '[model]\narch = "mobilenetv2"\nhead_conv = 32\n'
        '[train]\nepochs = 1\nbatch_size = 2\nworkers = 0\nval_images = 2\n'
        f'[output]\nrun_dir = "{tmp_path / "run"}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "deepmark.core.cli.main", "train", str(config), "--quiet"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    state = load_checkpoint(tmp_path / "run" / "last.pt")["state"]
    assert state["epoch"] == 1 and state["global_step"] == 3  # 12 images / 2 ranks / batch 2
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 1
