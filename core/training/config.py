"""Training-run configuration: one TOML file per run, unknown keys rejected with the key's name.

Example (every key optional except ``data.train``)::

    [data]
    train = "data/synth/train"      # DeepFashion2 layout: image/ + annos/
    val = "data/synth/val"
    input_size = [256, 256]         # (width, height), multiples of 32 (128 for the hourglasses)
    grouping = "semantic62"
    max_objects = 32

    [model]
    arch = "mobilenetv2"            # resnet18 | mdla34 | mobilenetv2 | hourglass104 | hourglass_small
    head_conv = 64
    init = ""                       # a public checkpoint to start from (docs/training.md); "" = random

    [train]
    epochs = 40
    batch_size = 16
    lr = 5e-4
    lr_steps = [30, 36]             # epochs where the learning rate is multiplied by lr_factor
    lr_factor = 0.1
    weight_decay = 0.0
    workers = 2                     # DataLoader worker processes
    seed = 0
    amp = true                      # mixed precision, used only on a CUDA device
    device = "auto"                 # auto | cpu | cuda
    checkpoint_minutes = 10.0       # also checkpoint mid-epoch this often (resume loses at most this)
    val_every = 1                   # epochs between validations
    val_images = 200                # validate on at most this many images (0 = all)
    max_steps_per_epoch = 0         # 0 = the whole training set

    [augment]
    scale = [0.6, 1.4]
    shift = 0.2
    flip = 0.5
    color = 0.4

    [output]
    run_dir = "runs/default"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from deepmark.core.errors import DeepMarkError, path_of
from deepmark.core.network.factory import input_multiple


class ConfigError(DeepMarkError):
    """A training configuration file is unreadable or has unknown keys or bad values."""


@dataclass(frozen=True)
class DataConfig:
    train: str = ""
    val: str = ""
    input_size: tuple[int, int] = (256, 256)
    grouping: str = "semantic62"
    max_objects: int = 32


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "mobilenetv2"
    head_conv: int = 64
    init: str = ""  # initial weights: a CenterNet COCO or ImageNet checkpoint file; ignored on resume


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 16
    lr: float = 5e-4
    lr_steps: tuple[int, ...] = (30, 36)
    lr_factor: float = 0.1
    weight_decay: float = 0.0
    workers: int = 2
    seed: int = 0
    amp: bool = True
    device: str = "auto"
    checkpoint_minutes: float = 10.0
    val_every: int = 1
    val_images: int = 200
    max_steps_per_epoch: int = 0


@dataclass(frozen=True)
class AugmentSection:
    scale: tuple[float, float] = (0.6, 1.4)
    shift: float = 0.2
    flip: float = 0.5
    color: float = 0.4


@dataclass(frozen=True)
class OutputConfig:
    run_dir: str = "runs/default"


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentSection = field(default_factory=AugmentSection)
    output: OutputConfig = field(default_factory=OutputConfig)
    source: str | Path = ""  # the configuration file (a Path), or a label

    def to_dict(self) -> dict:
        return {
            section: {f.name: _plain(getattr(getattr(self, section), f.name)) for f in fields(getattr(self, section))}
            for section in ("data", "model", "train", "augment", "output")
        }


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "augment": AugmentSection,
             "output": OutputConfig}


def _coerce(section: str, name: str, default, value, source: str | Path):
    where = f"{source}: [{section}] {name}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}", path=path_of(source))
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}", path=path_of(source))
        return value
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}", path=path_of(source))
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or (len(default) and len(value) != len(default) and section != "train"):
            raise ConfigError(f"{where} must be a list like {list(default)}, got {value!r}", path=path_of(source))
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}", path=path_of(source))
    return value


def parse_sections(raw: dict, sections: dict[str, type], source: str | Path) -> dict[str, object]:
    """Each TOML table of ``raw`` as its section dataclass (name → instance, defaults for missing tables and
    keys); ConfigError names ``source`` and the first unknown section or key, or the bad value. Shared by every
    run configuration (detector training, refiner training)."""
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; known: {sorted(sections)}", path=path_of(source))
    parsed = {}
    for name, cls in sections.items():
        given = raw.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{source}: [{name}] must be a table", path=path_of(source))
        defaults = {f.name: f.default for f in fields(cls)}
        bad = sorted(set(given) - set(defaults))
        if bad:
            raise ConfigError(f"{source}: unknown key(s) {bad} in [{name}]; known: {sorted(defaults)}",
                              path=path_of(source))
        parsed[name] = cls(**{k: _coerce(name, k, defaults[k], v, source) for k, v in given.items()})
    return parsed


def resolved_path(path: str, base_dir: Path) -> str:
    """``path`` taken from ``base_dir`` when relative ("" stays "")."""
    return str((base_dir / path).resolve()) if path and not Path(path).is_absolute() else path


def read_toml(path: str | Path) -> dict:
    """A configuration file's TOML; ConfigError names the file and the problem."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found", path=path) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read TOML ({exc})", path=path) from None


def parse_config(raw: dict, source: str | Path = "<config>", base_dir: Path | None = None) -> RunConfig:
    """Build a RunConfig from parsed TOML; relative data, init and output paths are taken from ``base_dir``.
    ``source`` is named in errors; a ``Path`` is the configuration file (also the errors' ``path``)."""
    config = RunConfig(**parse_sections(raw, _SECTIONS, source), source=source)
    _check(config, source)
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    return config


def _check(config: RunConfig, source: str | Path) -> None:
    if not config.data.train:
        raise ConfigError(f"{source}: [data] train is required (a DeepFashion2-layout folder)", path=path_of(source))
    w, h = config.data.input_size
    multiple = input_multiple(config.model.arch)
    if w % multiple or h % multiple or w <= 0 or h <= 0:
        raise ConfigError(f"{source}: [data] input_size {[w, h]} must be positive multiples of {multiple} "
                          f"for arch {config.model.arch!r}", path=path_of(source))
    if config.train.epochs < 1 or config.train.batch_size < 1:
        raise ConfigError(f"{source}: [train] epochs and batch_size must be at least 1", path=path_of(source))
    if config.train.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"{source}: [train] device must be auto, cpu or cuda", path=path_of(source))


def _resolve_paths(config: RunConfig, base_dir: Path) -> RunConfig:
    from dataclasses import replace

    def resolve(path: str) -> str:
        return resolved_path(path, base_dir)

    data = replace(config.data, train=resolve(config.data.train), val=resolve(config.data.val))
    model = replace(config.model, init=resolve(config.model.init))
    return replace(config, data=data, model=model, output=OutputConfig(resolve(config.output.run_dir)))


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML run configuration; ConfigError names the file and the problem."""
    path = Path(path)
    return parse_config(read_toml(path), path, base_dir=Path.cwd())
