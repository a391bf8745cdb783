"""Initial weights from a public checkpoint: map its state dict onto one of our CenterNets.

The user passes a file they downloaded (nothing is ever downloaded here): a CenterNet MS COCO checkpoint
(xingyizhou/CenterNet ctdet / multi_pose; DLA-34, ResNet-18 DCN, Hourglass-104) or an ImageNet classifier
(torchvision ResNet-18 and MobileNetV2, ucbdrive DLA-34). ``load_initial_weights`` reads it, recognises its
layout from its key names, renames each public tensor to ours with the mapping registered for (layout, our
arch), copies every tensor whose shape fits, and reports the rest. Heads whose channel count differs
(13 classes, 62 groups against COCO's 80 classes or 17 keypoints) keep their own initialisation.

Our networks replace two export-unfriendly parts of CenterNet's: a DCN becomes a plain 3×3 conv + BN,
whose weight is the DCN's main (out, in, 3, 3) weight (its offsets and mask are dropped, and the DCN's
bias, which a BN follows, is folded exactly into that BN's running mean), and a ConvTranspose up-sampler
becomes a Resize (+ a 3×3 conv in the ResNet, which starts at random). docs/training.md explains the
report.

A DeepMark training checkpoint (``best.pt`` of an earlier run: fine-tuning 512² → 768², or a retrain from
the bundled model) is taken as it is: our own names, every tensor whose shape fits (a run with another
grouping or class count keeps its heads' own init).
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from deepmark.core.domain.structures import HEAD_NAMES
from deepmark.core.errors import DeepMarkError
from deepmark.core.network.mobilenet import MBV2_SETTINGS

MODULE_PREFIX = "module."  # nn.DataParallel's prefix, kept in some released checkpoints
BN_COUNTER = "num_batches_tracked"  # a BN step counter: neither loaded nor reported


class InitialWeightsError(DeepMarkError):
    """An initial-weights file cannot be read, is of an unknown layout, or fits nothing of the model."""


# --------------------------------------------------------------------------------------------------
# What a mapping says about one public tensor


@dataclass(frozen=True)
class Target:
    """Our tensor that receives a public one. ``fold``: the public tensor is a conv bias to subtract from
    this BN running mean (BN(conv(x) + b) with mean μ equals BN(conv(x)) with mean μ − b)."""

    key: str
    fold: bool = False


@dataclass(frozen=True)
class Unused:
    """A public tensor with no place in our network, and why."""

    reason: str


Mapping = Callable[[str], Target | Unused | None]  # public key → where it goes; None: nowhere we know of

# Reasons shared by several mappings (the report groups unused tensors by reason).
DCN_OFFSETS = "DCN offsets/mask (our convs are plain)"
CONV_TRANSPOSE = "ConvTranspose up-sampler (ours resizes)"
CONV_TRANSPOSE_BN = "BatchNorm after a replaced ConvTranspose"
CLASSIFIER = "ImageNet classifier"


# --------------------------------------------------------------------------------------------------
# Layouts: recognised from the key names


@dataclass(frozen=True)
class Layout:
    """A public checkpoint layout: every pattern in ``signature`` matches some key of its state dict."""

    name: str
    title: str
    arch: str  # our architecture it maps onto
    signature: tuple[str, ...]
    detail: Callable[[dict[str, Tensor]], str] | None = None  # e.g. the depth of a ResNet, from its keys

    def matches(self, keys: Iterable[str]) -> bool:
        keys = list(keys)
        return all(any(re.match(pattern, k) for k in keys) for pattern in self.signature)


def _resnet_depth(state: dict[str, Tensor]) -> str:
    """ "ResNet-18" from the blocks per stage (``layer<i>.<b>``) and the block type (``conv3``: bottleneck)."""
    blocks = {m[0] for k in state if (m := re.match(r"layer\d\.\d+", k))}
    per_block = 3 if any(".conv3." in k for k in state) else 2
    return f"ResNet-{len(blocks) * per_block + 2}"


LAYOUTS: tuple[Layout, ...] = (
    Layout("centernet_dla34", "CenterNet DLA-34", "mdla34",
           (r"base\.base_layer\.0\.weight$", r"dla_up\.ida_0\.proj_1\.conv\.weight$")),
    Layout("centernet_resdcn", "CenterNet {} DCN", "resnet18",
           (r"layer1\.0\.conv1\.weight$", r"deconv_layers\.0\.conv_offset_mask\.weight$"), _resnet_depth),
    Layout("centernet_hourglass104", "CenterNet Hourglass-104", "hourglass104",
           (r"pre\.", r"kps\.0\.", r"cnvs\.0\.")),
    Layout("imagenet_resnet", "ImageNet {} (torchvision)", "resnet18",
           (r"conv1\.weight$", r"layer1\.0\.conv1\.weight$", r"fc\.weight$"), _resnet_depth),
    Layout("imagenet_dla34", "ImageNet DLA-34 (ucbdrive)", "mdla34",
           (r"base_layer\.0\.weight$", r"level5\.", r"fc\.weight$")),
    Layout("imagenet_mobilenetv2", "ImageNet MobileNetV2 (torchvision)", "mobilenetv2",
           (r"features\.0\.0\.weight$", r"features\.1\.conv\.", r"classifier\.1\.weight$")),
)


def recognise_layout(keys: Iterable[str]) -> Layout | None:
    """The layout whose signature the keys show, or None."""
    keys = list(keys)
    return next((layout for layout in LAYOUTS if layout.matches(keys)), None)


def describe(layout: Layout, state: dict[str, Tensor]) -> str:
    """The layout in words, with a CenterNet checkpoint's task and heads: "CenterNet DLA-34 ctdet
    checkpoint (heads hm 80, wh 2, reg 2)"."""
    title = layout.title.format(layout.detail(state)) if layout.detail else layout.title
    heads = {}
    for head in HEAD_NAMES:
        weights = sorted(k for k in state if k.startswith(f"{head}.") and k.endswith(".weight"))
        if weights:
            heads[head] = int(state[weights[-1]].shape[0])  # the last conv of the head gives its channels
    if not heads:
        return f"{title} checkpoint"
    task = "multi_pose" if "hps" in heads else "ctdet"
    return f"{title} {task} checkpoint (heads {', '.join(f'{h} {c}' for h, c in heads.items())})"


# --------------------------------------------------------------------------------------------------
# Mappings, registered per (layout, our arch)

MAPPINGS: dict[tuple[str, str], Mapping] = {}


def mapping(layout: str, arch: str) -> Callable[[Mapping], Mapping]:
    """Register a key mapping for public ``layout`` → our ``arch``."""

    def register(fn: Mapping) -> Mapping:
        MAPPINGS[(layout, arch)] = fn
        return fn

    return register


Rule = tuple[str, Callable[[re.Match], Target | Unused | None]]


def _apply_rules(rules: list[Rule], key: str) -> Target | Unused | None:
    """The first rule whose pattern matches the whole key decides."""
    for pattern, decide in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return decide(match)
    return None


def _conv_bn(kind: str) -> str:
    """Our ConvBNAct holds the conv at index 0 and the BN at index 1."""
    return "0" if kind == "conv" else "1"


# DLA-34 base (ucbdrive names; CenterNet's ``base.`` is the same) → our ``backbone.base.``
_DLA_BASE_RULES: list[Rule] = [
    (r"base_layer\.([01])\.(.+)", lambda m: Target(f"backbone.base.base.{m[1]}.{m[2]}")),
    # level0/1 are [conv, BN, ReLU] per conv; ours are one ConvBNAct per conv.
    (r"(level[01])\.(\d+)\.(.+)",
     lambda m: Target(f"backbone.base.{m[1]}.{int(m[2]) // 3}.{int(m[2]) % 3}.{m[3]}") if int(m[2]) % 3 < 2
     else None),
    (r"(level\d(?:\.tree[12])*)\.tree([12])\.(conv|bn)([12])\.(.+)",
     lambda m: Target(f"backbone.base.{m[1]}.tree{m[2]}.conv{m[4]}.{_conv_bn(m[3])}.{m[5]}")),
    (r"(level\d(?:\.tree[12])*)\.root\.(conv|bn)\.(.+)",
     lambda m: Target(f"backbone.base.{m[1]}.root.conv.{_conv_bn(m[2])}.{m[3]}")),
    # DLA builds a projection on every width-changing tree, but only a depth-1 tree uses it (ours
    # builds only those): levels 3 and 4 of DLA-34 are depth 2.
    (r"level[34]\.project\..+", lambda m: Unused("projection DLA builds but never uses")),
    (r"(level\d(?:\.tree[12])*)\.project\.([01])\.(.+)",
     lambda m: Target(f"backbone.base.{m[1]}.project.{m[2]}.{m[3]}")),
    (r"fc\..+", lambda m: Unused(CLASSIFIER)),
]


def _deform_conv(prefix: str, rest: str) -> Target | Unused | None:
    """CenterNet's DeformConv (``conv``: DCN, ``actf.0``: BN) → our ConvBNAct at ``prefix``."""
    return _apply_rules([
        (r"conv\.weight", lambda m: Target(f"{prefix}.0.weight")),
        (r"conv\.bias", lambda m: Target(f"{prefix}.1.running_mean", fold=True)),
        (r"conv\.conv_offset_mask\..+", lambda m: Unused(DCN_OFFSETS)),
        (r"actf\.0\.(.+)", lambda m: Target(f"{prefix}.1.{m[1]}")),
    ], rest)


_CENTERNET_HEAD_RULE: Rule = (
    rf"({'|'.join(HEAD_NAMES)})\.([02])\.(weight|bias)", lambda m: Target(f"heads.{m[1]}.{m[2]}.{m[3]}"))


@mapping("imagenet_dla34", "mdla34")
def imagenet_dla34_to_mdla34(key: str) -> Target | Unused | None:
    return _apply_rules(_DLA_BASE_RULES, key)


@mapping("centernet_dla34", "mdla34")
def centernet_dla34_to_mdla34(key: str) -> Target | Unused | None:
    """Base as ImageNet DLA-34; DLA-up/IDA-up DeformConvs onto our plain ConvBNActs (``proj_i`` / ``node_i``
    → index i − 1); the ConvTranspose ``up_i`` has no counterpart (ours resizes); heads keep their names."""
    return _apply_rules([
        (r"base\.(.+)", lambda m: _apply_rules(_DLA_BASE_RULES, m[1])),
        (r"(dla_up\.ida_\d+|ida_up)\.up_\d+\.weight", lambda m: Unused(CONV_TRANSPOSE)),
        (r"dla_up\.ida_(\d+)\.(proj|node)_(\d+)\.(.+)",
         lambda m: _deform_conv(f"backbone.dla_up.idas.{m[1]}.{m[2]}.{int(m[3]) - 1}", m[4])),
        (r"ida_up\.(proj|node)_(\d+)\.(.+)",
         lambda m: _deform_conv(f"backbone.ida_up.{m[1]}.{int(m[2]) - 1}", m[3])),
        _CENTERNET_HEAD_RULE,
    ], key)


# torchvision ResNet names (CenterNet's PoseResNet keeps them) → our ``backbone.stem`` / ``backbone.stages``
_RESNET_RULES: list[Rule] = [
    (r"(conv|bn)1\.(.+)", lambda m: Target(f"backbone.stem.0.{_conv_bn(m[1])}.{m[2]}")),
    (r"layer(\d)\.(\d+)\.(conv|bn)([12])\.(.+)",
     lambda m: Target(f"backbone.stages.{int(m[1]) - 1}.{m[2]}.conv{m[4]}.{_conv_bn(m[3])}.{m[5]}")),
    (r"layer(\d)\.(\d+)\.downsample\.([01])\.(.+)",
     lambda m: Target(f"backbone.stages.{int(m[1]) - 1}.{m[2]}.shortcut.{m[3]}.{m[4]}")),
    (r"fc\..+", lambda m: Unused(CLASSIFIER)),
]


def _resdcn_up(index: int, rest: str) -> Target | Unused | None:
    """``deconv_layers`` are 3 stages of [DCN, BN, ReLU, ConvTranspose, BN, ReLU]; ours are
    [ConvBNAct, Resize, ConvBNAct]: the DCN and its BN load into the first ConvBNAct; the second (which
    stands in for the ConvTranspose) starts at random, so the ConvTranspose's BN statistics do not apply."""
    stage, position = divmod(index, 6)
    ours = f"backbone.up.{stage}.0"
    if position == 0:
        return _deform_conv(ours, f"conv.{rest}")
    if position == 1:
        return Target(f"{ours}.1.{rest}")
    if position == 3:
        return Unused(CONV_TRANSPOSE)
    if position == 4:
        return Unused(CONV_TRANSPOSE_BN)
    return None


@mapping("imagenet_resnet", "resnet18")
def imagenet_resnet_to_resnet18(key: str) -> Target | Unused | None:
    return _apply_rules(_RESNET_RULES, key)


@mapping("centernet_resdcn", "resnet18")
def centernet_resdcn_to_resnet18(key: str) -> Target | Unused | None:
    return _apply_rules([
        *_RESNET_RULES,
        (r"deconv_layers\.(\d+)\.(.+)", lambda m: _resdcn_up(int(m[1]), m[2])),
        _CENTERNET_HEAD_RULE,
    ], key)


def _mobilenet_blocks() -> list[tuple[int, int, int]]:
    """(stage, index in stage, expansion) of each inverted residual, in torchvision's ``features`` order."""
    return [(stage, i, t) for stage, (t, _, n, _) in enumerate(MBV2_SETTINGS) for i in range(n)]


def _mobilenet_block(feature: int, rest: str) -> Target | Unused | None:
    """torchvision's ``features.<feature>.conv`` sequence → our ``block`` of ConvBNActs. With expansion 1 it
    is [dw conv-BN, 1×1 conv, BN]; otherwise [expand conv-BN, dw conv-BN, 1×1 conv, BN]."""
    blocks = _mobilenet_blocks()
    if not 1 <= feature <= len(blocks):
        return None
    stage, index, expansion = blocks[feature - 1]
    ours = f"backbone.encoder.stages.{stage}.{index}.block"
    steps = [("0.0", "0.0"), ("0.1", "0.1")]
    if expansion == 1:
        steps += [("1", "1.0"), ("2", "1.1")]
    else:
        steps += [("1.0", "1.0"), ("1.1", "1.1"), ("2", "2.0"), ("3", "2.1")]
    for public, mine in steps:
        if rest.startswith(public + "."):
            return Target(f"{ours}.{mine}.{rest[len(public) + 1:]}")
    return None


@mapping("imagenet_mobilenetv2", "mobilenetv2")
def imagenet_mobilenetv2_to_mobilenetv2(key: str) -> Target | Unused | None:
    last = len(_mobilenet_blocks()) + 1  # the final 1×1 conv to 1280 channels
    return _apply_rules([
        (r"features\.0\.([01])\.(.+)", lambda m: Target(f"backbone.encoder.stem.{m[1]}.{m[2]}")),
        (rf"features\.{last}\..+", lambda m: Unused("final 1×1 conv to 1280 channels (ours stops at 320)")),
        (r"features\.(\d+)\.conv\.(.+)", lambda m: _mobilenet_block(int(m[1]), m[2])),
        (r"classifier\..+", lambda m: Unused(CLASSIFIER)),
    ], key)


@mapping("centernet_hourglass104", "hourglass104")
def centernet_hourglass_to_hourglass104(key: str) -> Target | Unused | None:
    """Our Hourglass-104 keeps CenterNet's module names (heads per stack: ``hm.0.…``, ``hm.1.…``)."""
    return Target(key)


# --------------------------------------------------------------------------------------------------
# Reading the file


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _unpickling_problem(exc: pickle.UnpicklingError) -> str:
    """torch's weights-only refusal in a few words: Python objects (which only a code-running load could
    restore) or bytes that are no pickle torch knows (a damaged or foreign file)."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return (f"holds Python objects besides tensors ({found[1]}); loading it would run code from the file, "
                "so it is not used")
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    return f"cannot read initial weights (not a PyTorch checkpoint: {detail[1] if detail else _first_line(exc)})"


# What a DeepMark checkpoint holds besides tensors (the numpy random state): plain data, safe to restore.
_CHECKPOINT_GLOBALS = [np.dtype, np.ndarray, np._core.multiarray._reconstruct, type(np.dtype(np.uint32))]


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The file's tensors by name: unwrapped from ``state_dict`` / ``model``, ``module.`` stripped.

    Loaded with ``weights_only=True``: a downloaded file may not run code. InitialWeightsError (one line,
    naming the file) when it is missing, damaged, holds other Python objects, or holds no tensors.
    """
    return _read(path)[0]


def _read(path: str | Path) -> tuple[dict[str, Tensor], str | None]:
    """``read_state_dict``'s tensors, and the architecture when the file is a DeepMark training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise InitialWeightsError(f"{path}: initial weights file not found", path=path)
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols: the outcome is reported below
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(_CHECKPOINT_GLOBALS):
                payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InitialWeightsError(f"{path}: {_unpickling_problem(exc)}", path=path) from None
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise InitialWeightsError(f"{path}: cannot read initial weights ({_first_line(exc)})", path=path) from None
    own = payload.get("arch") if isinstance(payload, dict) and {"version", "arch", "model"} <= set(payload) else None
    for wrapper in ("state_dict", "model"):  # CenterNet: {'epoch', 'state_dict'}; others: {'model': …}
        if isinstance(payload, dict) and isinstance(payload.get(wrapper), dict):
            payload = payload[wrapper]
    if not isinstance(payload, dict):
        raise InitialWeightsError(f"{path}: holds a {type(payload).__name__}, not a state dict of tensors",
                                  path=path)
    state = {str(k).removeprefix(MODULE_PREFIX): v for k, v in payload.items() if isinstance(v, Tensor)}
    if not state:
        raise InitialWeightsError(f"{path}: holds no tensors (keys: {_some(map(str, payload))})", path=path)
    return state, str(own) if own is not None else None


def _some(keys: Iterable[str], n: int = 3) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f", … ({len(keys)} in all)" if len(keys) > n else "")


# --------------------------------------------------------------------------------------------------
# The plan and the report


@dataclass
class InitReport:
    """What ``load_initial_weights`` did. Keys are ours unless named ``public``.

    ``loaded``: our key → public key (shape fits, value copied); ``folded``: public conv bias → our BN
    running mean it was subtracted from (also counted as loaded); ``reinitialised``: (ours, public, our
    shape, public shape) where the shapes differ — ours keeps its own init; ``unused``: public key →
    reason; ``random``: ours with no public counterpart (left at their init). BN step counters are in none.
    """

    path: Path
    layout: str
    arch: str
    public_count: int
    loaded: dict[str, str] = field(default_factory=dict)
    folded: dict[str, str] = field(default_factory=dict)
    reinitialised: list[tuple[str, str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    unused: dict[str, str] = field(default_factory=dict)
    random: list[str] = field(default_factory=list)


def _tensors(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in state.items() if not k.endswith(BN_COUNTER)}


def plan_initial_weights(public: dict[str, Tensor], ours: dict[str, Tensor], fn: Mapping | None,
                         report: InitReport) -> dict[str, Tensor]:
    """Fill ``report`` and return the new values of our tensors (our key → tensor in our dtype)."""
    public, ours = _tensors(public), _tensors(ours)
    values: dict[str, Tensor] = {}
    folds: list[tuple[str, str]] = []
    for key, tensor in public.items():
        where = fn(key) if fn is not None else None
        if isinstance(where, Unused):
            report.unused[key] = where.reason
        elif where is None or where.key not in ours:
            report.unused[key] = f"no counterpart in {report.arch}"
        elif tuple(tensor.shape) != tuple(ours[where.key].shape):
            report.reinitialised.append((where.key, key, tuple(ours[where.key].shape), tuple(tensor.shape)))
        elif where.fold:
            folds.append((key, where.key))
        else:
            if where.key in report.loaded:  # two public tensors onto one of ours: a mapping bug
                raise AssertionError(f"{key} and {report.loaded[where.key]} both map to {where.key}")
            report.loaded[where.key] = key
            values[where.key] = tensor.detach().to(ours[where.key].dtype)
    for key, mean in folds:
        if mean in values:
            values[mean] = values[mean] - public[key].to(values[mean].dtype)
            report.folded[key] = mean
        else:
            report.unused[key] = "conv bias whose BatchNorm did not load"
    targets = set(report.loaded) | {mine for mine, *_ in report.reinitialised}
    report.random = [k for k in ours if k not in targets]
    return values


def _check_finite(values: dict[str, Tensor], report: InitReport, path: Path) -> None:
    """A NaN or infinite weight (a damaged or diverged file) would only show later as a NaN loss."""
    # A sum is NaN or infinite exactly when an element is (in float64 no weight overflows it), and is
    # many times faster than an element-wise test.
    bad = [key for key, value in values.items()
           if value.is_floating_point() and not torch.isfinite(value.sum(dtype=torch.float64))]
    if bad:
        public = {**{mean: bias for bias, mean in report.folded.items()}, **report.loaded}
        raise InitialWeightsError(f"{path}: {len(bad)} tensor(s) hold NaN or infinite values, e.g. "
                                  f"{public.get(bad[0], bad[0])}", path=path)


def load_initial_weights(model: nn.Module, path: str | Path) -> InitReport:
    """Copy the fitting tensors of the public checkpoint at ``path`` into ``model`` (a CenterNet built by
    ``build_model``, whose ``config['arch']`` names it); return the report.

    InitialWeightsError (naming the file) when the file is unreadable, of an unknown layout, or when no
    tensor fits: "0 of N tensors fit arch X; this looks like <layout>".
    """
    path = Path(path)
    arch = str(getattr(model, "config", {}).get("arch", type(model).__name__))
    public, own_arch = _read(path)
    layout = recognise_layout(public) if own_arch is None else Layout("deepmark", f"DeepMark {own_arch}", own_arch, ())
    if layout is None:
        raise InitialWeightsError(
            f"{path}: not a checkpoint layout DeepMark knows ({len(public)} tensors: {_some(public)}); known: "
            f"{', '.join(lay.title.format('ResNet') for lay in LAYOUTS)}", path=path)
    title = describe(layout, public)
    report = InitReport(path, title, arch, len(_tensors(public)))
    ours = model.state_dict()
    fn = Target if layout.name == "deepmark" else MAPPINGS.get((layout.name, arch))  # our own names as they are
    values = plan_initial_weights(public, ours, fn, report)
    _check_finite(values, report, path)
    if not values:
        hint = f"; it fits arch {layout.arch!r}" if layout.arch != arch else ""
        raise InitialWeightsError(f"{path}: 0 of {report.public_count} tensors fit arch {arch}; this looks like "
                                  f"a {title}{hint}", path=path)
    ours.update(values)
    model.load_state_dict(ours)
    return report


# --------------------------------------------------------------------------------------------------
# The table


def _pattern(key: str) -> str:
    """A tensor's module with its indices starred: "backbone.stages.1.0.conv1.0.weight" →
    "backbone.stages.*.*.conv1.*" (so repeated blocks collapse into one entry)."""
    module = key.rsplit(".", 1)[0]
    return re.sub(r"(?<=[._])\d+(?=\.|$)", "*", module)


def compact(keys: Iterable[str]) -> str:
    """Keys grouped by starred module pattern with their tensor counts, in first-seen order; a pattern that
    stands for one module only is shown as that module."""
    counts: dict[str, int] = {}
    modules: dict[str, set[str]] = {}
    for key in keys:
        pattern = _pattern(key)
        counts[pattern] = counts.get(pattern, 0) + 1
        modules.setdefault(pattern, set()).add(key.rsplit(".", 1)[0])
    shown = {p: next(iter(modules[p])) if len(modules[p]) == 1 else p for p in counts}
    return ", ".join(f"{shown[p]} ({n})" for p, n in counts.items()) or "-"


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def format_report(report: InitReport) -> str:
    """The table ``deepmark train`` prints: counts, then the lists in compact form."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in report.unused.items():
        by_reason.setdefault(reason, []).append(key)
    # One entry per reinitialised module, shown by its weight (the bias follows it).
    changed = {mine.rsplit(".", 1)[0]: (o, p) for mine, _, o, p in report.reinitialised if mine.endswith("weight")}
    changed_text = "; ".join(f"{m} {_shape(p)} → {_shape(o)}" for m, (o, p) in changed.items())
    folded = f" (incl. {len(report.folded)} DCN biases folded into BatchNorm means)" if report.folded else ""
    lines = [
        f"initial weights: {report.path} — {report.layout} → {report.arch}",
        f"  loaded          {len(report.loaded) + len(report.folded):5d} of {report.public_count} public tensors"
        f"{folded}",
        f"  reinitialised   {len(report.reinitialised):5d}  (shape differs; ours keeps its init) "
        f"{changed_text or '-'}",
        f"  unused          {len(report.unused):5d}  (public tensors with no place in ours)",
        *(f"    {reason} ({len(keys)}): {compact(keys)}" for reason, keys in by_reason.items()),
        f"  ours at random  {len(report.random):5d}  {compact(report.random)}",
    ]
    return "\n".join(lines)
