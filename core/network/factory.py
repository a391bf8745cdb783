"""Model registry: build a CenterNet (or the stacked-hourglass HourglassNet) by architecture name for a
landmark grouping, and what input sizes each architecture takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from deepmark.core.domain.taxonomy import NUM_CATEGORIES, Grouping, load_grouping
from deepmark.core.network.dla import mdla34
from deepmark.core.network.heads import INPUT_MULTIPLE, CenterNet
from deepmark.core.network.hourglass import HourglassNet, hourglass104, hourglass_small
from deepmark.core.network.mobilenet import mobilenetv2
from deepmark.core.network.resnet import resnet18

ARCHITECTURES: dict[str, str] = {
    "resnet18": "ResNet-18 + resdcn-layout up path (plain 3×3 conv for DCN, Resize + conv for "
    "ConvTranspose), 64 channels at stride 4; head_conv 64",
    "mdla34": "mDLA-34 (DeepMark++ §4.3): DLA-34 + DLA-up/IDA-up with plain 3×3 convs for DCN and "
    "Resize for ConvTranspose, 64 channels at stride 4; head_conv 256",
    "mobilenetv2": "MobileNetV2 (width_mult option) + separable-conv top-down decoder to stride 4, "
    "64 channels; head_conv 64; the fast CPU model",
    "hourglass104": "CenterNet's stacked Hourglass-104 (2 stacks, CenterNet's key names), intermediate "
    "supervision; head_conv 256; inputs multiples of 128; for GPUs at 512² / 768²",
    "hourglass_small": "a narrow 2-stack hourglass with hourglass104's structure and input multiple (128); "
    "head_conv 32; for CPU tests",
}

# name → (backbone factory, default head_conv). CenterNet uses 64 for ResNets and 256 for DLA.
_BUILDERS: dict[str, tuple[Callable[..., nn.Module], int]] = {
    "resnet18": (resnet18, 64),
    "mdla34": (mdla34, 256),
    "mobilenetv2": (mobilenetv2, 64),
}
# name → (whole-model factory, default head_conv): architectures that are not a backbone + CenterNet's heads.
_MODEL_BUILDERS: dict[str, tuple[Callable[..., HourglassNet], int]] = {
    "hourglass104": (hourglass104, 256),
    "hourglass_small": (hourglass_small, 32),
}
# What input H and W must be multiples of, per architecture (the built model's ``input_multiple``; a test
# checks they agree). Looked up without building a model, e.g. by the training configuration's check.
INPUT_MULTIPLES: dict[str, int] = {
    "resnet18": INPUT_MULTIPLE,
    "mdla34": INPUT_MULTIPLE,
    "mobilenetv2": INPUT_MULTIPLE,
    "hourglass104": 128,
    "hourglass_small": 128,
}


def input_multiple(arch: str) -> int:
    """What an ``arch`` model's input H and W must be multiples of; 32 (every earlier architecture's)
    for a name not registered here (building it reports the unknown name)."""
    return INPUT_MULTIPLES.get(arch, INPUT_MULTIPLE)


def build_model(
    arch: str,
    grouping: Grouping | str,
    num_classes: int = NUM_CATEGORIES,
    head_conv: int | None = None,
    **backbone_kwargs: Any,
) -> CenterNet | HourglassNet:
    """A randomly initialised CenterNet (HourglassNet for the hourglass architectures) with heads sized for
    ``grouping`` (a Grouping or its name).

    ``head_conv`` defaults per architecture; ``backbone_kwargs`` go to the backbone factory
    (e.g. ``upsample_mode``, ``width_mult``). Raises ValueError for an unknown ``arch``.
    """
    if arch not in _BUILDERS and arch not in _MODEL_BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; valid ones are {', '.join(ARCHITECTURES)}")
    if isinstance(grouping, str):
        grouping = load_grouping(grouping)
    factory, default_head_conv = _BUILDERS[arch] if arch in _BUILDERS else _MODEL_BUILDERS[arch]
    head_conv = default_head_conv if head_conv is None else int(head_conv)
    config = {
        "arch": arch,
        "grouping": grouping.name,
        "num_groups": grouping.num_groups,
        "num_classes": num_classes,
        "head_conv": head_conv,
        "backbone_kwargs": dict(backbone_kwargs),
    }
    if arch in _MODEL_BUILDERS:
        return factory(grouping.head_channels(num_classes), head_conv=head_conv, config=config, **backbone_kwargs)
    return CenterNet(factory(**backbone_kwargs), grouping.head_channels(num_classes), head_conv, config)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
