"""The refiner's training configuration: one TOML file per run, unknown keys rejected with the key's name
(the same rules and ``ConfigError`` as ``deepmark.core.training.config``).

Example (every key optional except ``data.train`` and ``data.detector``)::

    [data]
    train = "data/synth-train"          # DeepFashion2 layout: image/ + annos/
    val = "data/synth-val"              # validation: best.pt is the epoch of largest mAP_pt gain here
    val_split = "tune"                  # all | tune (every 2nd image, the half `deepmark ablation` tunes on)
    detector = "resources/models/deepmark-default-fp32.onnx"
    detector_images = 600               # run the detector on this many training images, spread (0 = all)
    flip = true                         # the detector's test-time augmentation when collecting its outputs
    multiscale = true
    crop_size = [192, 256]              # (width, height), multiples of 32

    [model]
    width_mult = 0.5
    up_channels = [96, 64, 48, 48]
    head_conv = 48

    [recipe]
    synthetic_share = 0.5               # share of samples drawn from ground truth + synthesised errors
    error_scale = 1.0                   # × the measured jitter / box errors in synthesised samples
    box_jitter = 0.05                   # extra random shift/scale of every crop box (share of its size)
    flip = 0.5                          # mirror probability
    color = 0.3                         # colour jitter strength

    [train]
    epochs = 12
    batch_size = 32
    lr = 2e-3
    lr_steps = [9, 11]
    lr_factor = 0.1
    weight_decay = 1e-4
    confidence_weight = 0.1
    workers = 1
    threads = 2                         # torch CPU threads (0: torch's default)
    seed = 0
    device = "auto"                     # auto | cpu | cuda
    checkpoint_minutes = 5.0
    max_steps_per_epoch = 0             # 0 = the whole training set
    val_images = 0                      # 0 = all of the (split) validation images

    [output]
    run_dir = "runs/refiner"
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from deepmark.core.errors import path_of
from deepmark.core.training.config import ConfigError, _plain, parse_sections, read_toml, resolved_path

VAL_SPLITS = ("all", "tune")


@dataclass(frozen=True)
class RefinerData:
    train: str = ""
    val: str = ""
    val_split: str = "tune"
    detector: str = ""
    detector_images: int = 0
    flip: bool = True
    multiscale: bool = True
    crop_size: tuple[int, int] = (192, 256)


@dataclass(frozen=True)
class RefinerModel:
    width_mult: float = 0.5
    up_channels: tuple[int, int, int, int] = (96, 64, 48, 48)
    head_conv: int = 48


@dataclass(frozen=True)
class Recipe:
    synthetic_share: float = 0.5
    error_scale: float = 1.0
    box_jitter: float = 0.05
    flip: float = 0.5
    color: float = 0.3


@dataclass(frozen=True)
class RefinerTrain:
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    lr_steps: tuple[int, ...] = (9, 11)
    lr_factor: float = 0.1
    weight_decay: float = 1e-4
    confidence_weight: float = 0.1
    workers: int = 1
    threads: int = 2
    seed: int = 0
    device: str = "auto"
    checkpoint_minutes: float = 5.0
    max_steps_per_epoch: int = 0
    val_images: int = 0


@dataclass(frozen=True)
class RefinerOutput:
    run_dir: str = "runs/refiner"


_SECTIONS = {"data": RefinerData, "model": RefinerModel, "recipe": Recipe, "train": RefinerTrain,
             "output": RefinerOutput}


@dataclass(frozen=True)
class RefinerConfig:
    data: RefinerData = field(default_factory=RefinerData)
    model: RefinerModel = field(default_factory=RefinerModel)
    recipe: Recipe = field(default_factory=Recipe)
    train: RefinerTrain = field(default_factory=RefinerTrain)
    output: RefinerOutput = field(default_factory=RefinerOutput)
    source: str | Path = ""

    def to_dict(self) -> dict:
        return {name: {f.name: _plain(getattr(getattr(self, name), f.name)) for f in fields(getattr(self, name))}
                for name in _SECTIONS}


def parse_refiner_config(raw: dict, source: str | Path = "<config>", base_dir: Path | None = None) -> RefinerConfig:
    """A RefinerConfig from parsed TOML; relative paths are taken from ``base_dir``. ConfigError names
    ``source`` and the first unknown section or key, or the bad value."""
    config = RefinerConfig(**parse_sections(raw, _SECTIONS, source), source=source)
    _check(config, source)
    return _resolve(config, base_dir) if base_dir is not None else config


def _check(config: RefinerConfig, source: str | Path) -> None:
    def fail(message: str) -> None:
        raise ConfigError(f"{source}: {message}", path=path_of(source))

    if not config.data.train:
        fail("[data] train is required (a DeepFashion2-layout folder)")
    if not config.data.detector:
        fail("[data] detector is required (the .onnx model the refiner corrects)")
    w, h = config.data.crop_size
    if w % 32 or h % 32 or w <= 0 or h <= 0:
        fail(f"[data] crop_size {[w, h]} must be positive multiples of 32")
    if config.data.detector_images < 0:
        fail("[data] detector_images must be 0 (all) or a positive count")
    if config.data.val_split not in VAL_SPLITS:
        fail(f"[data] val_split must be one of {list(VAL_SPLITS)}, got {config.data.val_split!r}")
    if len(config.model.up_channels) != 4:
        fail("[model] up_channels needs 4 widths (strides 32, 16, 8, 4)")
    for name in ("synthetic_share", "flip"):
        if not 0.0 <= getattr(config.recipe, name) <= 1.0:
            fail(f"[recipe] {name} must be in [0, 1]")
    if config.train.epochs < 1 or config.train.batch_size < 1:
        fail("[train] epochs and batch_size must be at least 1")
    if config.train.device not in ("auto", "cpu", "cuda"):
        fail("[train] device must be auto, cpu or cuda")


def _resolve(config: RefinerConfig, base_dir: Path) -> RefinerConfig:
    def resolve(path: str) -> str:
        return resolved_path(path, base_dir)

    data = replace(config.data, train=resolve(config.data.train), val=resolve(config.data.val),
                   detector=resolve(config.data.detector))
    return replace(config, data=data, output=RefinerOutput(resolve(config.output.run_dir)))


def load_refiner_config(path: str | Path) -> RefinerConfig:
    """Read a TOML refiner configuration; ConfigError names the file and the problem."""
    path = Path(path)
    return parse_refiner_config(read_toml(path), path, base_dir=Path.cwd())
