"""The hourglass end to end: intermediate supervision, the input multiple through config, checkpoint,
export and detector, and the GPU training configurations."""

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from deepmark.core.cli.main import main
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.model_file import METADATA_KEY, ModelFileError, read_model_info
from deepmark.core.inference.detector import PAPER_SCALES, Detector, TestTimeAugmentation
from deepmark.core.network.checkpoint import load_checkpoint
from deepmark.core.synthetic import SynthConfig, generate_dataset
from deepmark.core.training.config import ConfigError, load_config, parse_config
from deepmark.core.training.losses import centernet_loss, stacked_loss
from deepmark.core.training.train import train
from deepmark.core.util.resources import resource_path


def _targets(batch: int = 2, h: int = 8, w: int = 8) -> dict:
    """Targets with one object and one landmark group per image (semantic62 channels)."""
    hm = torch.zeros(batch, 13, h, w)
    hm[:, 3, 4, 4] = 1.0
    hm_hp = torch.zeros(batch, 62, h, w)
    hm_hp[:, 5, 2, 2] = 1.0
    ind = torch.full((batch, 4), 36, dtype=torch.int64)
    mask = torch.zeros(batch, 4)
    mask[:, 0] = 1
    return {"hm": hm, "hm_hp": hm_hp, "ind": ind, "reg_mask": mask, "wh": torch.ones(batch, 4, 2),
            "reg": torch.full((batch, 4, 2), 0.5), "hps": torch.ones(batch, 4, 124),
            "hps_mask": torch.ones(batch, 4, 124),
            "hp_ind": ind.repeat(1, 2), "hp_mask": mask.repeat(1, 2), "hp_offset": torch.full((batch, 8, 2), 0.25)}


def _outputs(seed: int, batch: int = 2, h: int = 8, w: int = 8) -> dict:
    g = torch.Generator().manual_seed(seed)
    channels = {"hm": 13, "reg": 2, "wh": 2, "hps": 124, "hm_hp": 62, "hp_offset": 2}
    return {name: torch.randn(batch, c, h, w, generator=g) for name, c in channels.items()}


def test_stacked_loss_is_the_mean_over_stacks_of_every_part():
    batch = _targets()
    first, second = _outputs(1), _outputs(2)
    total, parts = stacked_loss([first, second], batch)
    (a, parts_a), (b, parts_b) = centernet_loss(first, batch), centernet_loss(second, batch)
    torch.testing.assert_close(total, (a + b) / 2)
    assert parts == pytest.approx({k: (parts_a[k] + parts_b[k]) / 2 for k in parts_a})
    single, single_parts = stacked_loss([first], batch)  # one stack: the plain CenterNet loss
    torch.testing.assert_close(single, a)
    assert single_parts == pytest.approx(parts_a)


def test_stacked_loss_trains_every_stack():
    batch = _targets()
    stacks = [{k: v.clone().requires_grad_() for k, v in _outputs(s).items()} for s in (1, 2)]
    stacked_loss(stacks, batch)[0].backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for out in stacks for t in out.values())


# --------------------------------------------------------------------------------------------------
# Configuration


def _raw(data: Path, run_dir: Path, arch: str = "hourglass_small", size=(128, 128), **train) -> dict:
    return {
        "data": {"train": str(data / "train"), "val": str(data / "val"), "input_size": list(size)},
        "model": {"arch": arch, "head_conv": 32},
        "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "lr_steps": [100], "workers": 0, "seed": 1,
                  "val_images": 4, **train},
        "output": {"run_dir": str(run_dir)},
    }


@pytest.mark.parametrize("arch", ["hourglass104", "hourglass_small"])
@pytest.mark.parametrize("size", [(192, 256), (256, 96), (320, 320), (64, 64)])
def test_config_refuses_sizes_the_hourglass_cannot_take(tmp_path, arch, size):
    with pytest.raises(ConfigError, match=rf"hg.toml: \[data\] input_size .* multiples of 128 for arch '{arch}'"):
        parse_config(_raw(tmp_path, tmp_path / "r", arch, size), "hg.toml")


@pytest.mark.parametrize(("arch", "size"), [("hourglass104", (512, 768)), ("hourglass_small", (128, 384)),
                                            ("mobilenetv2", (192, 96)), ("resnet18", (320, 224))])
def test_config_accepts_multiples_of_the_architecture(tmp_path, arch, size):
    assert parse_config(_raw(tmp_path, tmp_path / "r", arch, size), "ok.toml").data.input_size == size


@pytest.mark.parametrize(("name", "size"), [("hourglass512.toml", (512, 512)), ("hourglass768.toml", (768, 768))])
def test_gpu_training_configurations_parse(name, size):
    config = load_config(resource_path("models", name))
    assert config.model.arch == "hourglass104" and config.model.head_conv == 256
    assert config.data.input_size == size and config.train.device == "cuda"
    assert config.train.lr_steps and config.train.lr_steps == tuple(sorted(config.train.lr_steps))
    assert all(step < config.train.epochs for step in config.train.lr_steps)


# --------------------------------------------------------------------------------------------------
# A trained hourglass_small: checkpoint, detector, export


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """hourglass_small trained 2 epochs on synthetic 128² garments (CPU)."""
    root = tmp_path_factory.mktemp("hg")
    synth = SynthConfig(image_size=(128, 128), max_items=2)
    generate_dataset(root / "train", 8, seed=3, config=synth)
    generate_dataset(root / "val", 2, seed=4, config=synth)
    train(parse_config(_raw(root, root / "run"), "hg.toml"), progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hg-onnx") / "hg.onnx"
    assert main(["export-onnx", str(run / "last.pt"), "--out", str(out), "--input-size", "256", "128"]) == 0
    return out


def _picture(w: int = 200, h: int = 120) -> np.ndarray:
    """A non-square RGB picture: letterboxing pads it."""
    picture = np.zeros((h, w, 3), np.uint8)
    cv2.rectangle(picture, (40, 20), (150, 100), (200, 40, 40), -1)
    return picture


def test_training_logs_finite_stacked_losses_and_records_the_input_multiple(run):
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1]
    assert all(np.isfinite(r["loss"]) and 0.0 <= r["val_map_pt"] <= 1.0 for r in log)
    assert log[-1]["loss"] < log[0]["loss"]
    checkpoint = load_checkpoint(run / "last.pt")
    assert checkpoint["arch"] == "hourglass_small" and checkpoint["input_multiple"] == 128
    assert any(k.startswith("kps.1.") for k in checkpoint["model"])  # the second stack is trained and saved


def test_checkpoint_runs_as_a_detector(run):
    detector = Detector(run / "last.pt", threads=1)
    assert detector.info.input_multiple == 128 and detector.input_size == (128, 128)
    heads = detector.heads(_picture())
    assert heads.hm.shape == (13, 32, 32) and heads.image_size == (200, 120)


def test_exported_model_describes_its_input_multiple(exported):
    info = read_model_info(exported)
    assert info.arch == "hourglass_small" and info.input_multiple == 128 and info.input_size == (256, 128)
    stored = json.loads({p.key: p.value for p in onnx.load(str(exported)).metadata_props}[METADATA_KEY])
    assert stored["input_multiple"] == 128


def test_exported_model_matches_the_checkpoint(run, exported):
    image = _picture()
    want = Detector(run / "last.pt", threads=1).heads(image, input_size=(256, 128))
    got = Detector(exported, threads=1).heads(image)
    for name, a in want.arrays().items():
        b = got.arrays()[name]
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4, name


def test_detector_keeps_every_input_size_to_the_multiple(exported):
    detector = Detector(exported, threads=1)
    seen = []
    real_run = detector._backend.run
    detector._backend.run = lambda batch: seen.append(batch.shape[2:]) or real_run(batch)
    heads = detector.heads(_picture(), TestTimeAugmentation(flip=True, scales=PAPER_SCALES), input_size=(512, 256))
    assert heads.map_size == (64, 128)  # the scale nearest 1 (0.95 → 512×256) gives the map, offsets and sizes
    # 0.85 → 384×256; 0.95 and 1.1 both round to 512×256, which runs once
    assert sorted(seen) == [(256, 384), (256, 512)]
    for size in [(192, 128), (256, 200), (100, 128)]:
        with pytest.raises(DeepMarkError, match=r"hg.onnx: input size .* multiples of 128 \(hourglass_small\)"):
            detector.heads(_picture(), input_size=size)


def test_predict_with_an_unsuitable_input_size_says_why(exported, tmp_path, capsys):
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), _picture())
    code = main(["predict", str(image), "--model", str(exported), "--out", str(tmp_path / "out"),
                 "--input-size", "160", "160", "--quiet"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "160×160" in errors[0] and "multiples of 128" in errors[0]
    assert main(["predict", str(image), "--model", str(exported), "--out", str(tmp_path / "ok"), "--quiet"]) == 0
    assert (tmp_path / "ok" / "photo.json").is_file()


def test_export_at_a_size_the_model_cannot_take_is_refused(run, tmp_path, capsys):
    out = tmp_path / "bad.onnx"
    assert main(["export-onnx", str(run / "last.pt"), "--out", str(out), "--input-size", "192", "128"]) == 2
    assert "multiples of 128" in capsys.readouterr().err and not out.exists()


def test_a_size_against_the_stored_multiple_is_refused(exported, tmp_path):
    path = _with_metadata(exported, tmp_path / "odd.onnx", input_size=[192, 128])
    with pytest.raises(ModelFileError, match=r"odd.onnx: .*'input_size' must be multiples of 128"):
        read_model_info(path)


def _with_metadata(source: Path, target: Path, **changes) -> Path:
    model = onnx.load(str(source))
    for prop in model.metadata_props:
        data = json.loads(prop.value)
        data.update(changes)
        prop.value = json.dumps(data)
    onnx.save(model, str(target))
    return target


def test_a_model_file_without_the_field_takes_multiples_of_32(tiny_onnx, tmp_path):
    stored = json.loads({p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props}[METADATA_KEY])
    assert "input_multiple" not in stored  # a 32-multiple model's file reads as before the field existed
    assert read_model_info(tiny_onnx).input_multiple == 32
    assert Detector(tiny_onnx, threads=1).heads(_picture(), input_size=(160, 96)).map_size == (24, 40)


@pytest.mark.parametrize("value", ["128", 0, -128, 6, 128.0, True, None])
def test_a_bad_input_multiple_is_refused(exported, tmp_path, value):
    path = _with_metadata(exported, tmp_path / "bad.onnx", input_multiple=value)
    with pytest.raises(ModelFileError, match=r"bad.onnx: DeepMark metadata field 'input_multiple' must be"):
        read_model_info(path)
