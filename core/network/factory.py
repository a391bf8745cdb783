"""Model registry: build a CenterNet by architecture name for a landmark grouping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from deepmark.core.domain.taxonomy import NUM_CATEGORIES, Grouping, load_grouping
from deepmark.core.network.dla import mdla34
from deepmark.core.network.heads import CenterNet
from deepmark.core.network.mobilenet import mobilenetv2
from deepmark.core.network.resnet import resnet18

ARCHITECTURES: dict[str, str] = {
    "resnet18": "ResNet-18 + resdcn-layout up path (plain 3×3 conv for DCN, Resize + conv for "
    "ConvTranspose), 64 channels at stride 4; head_conv 64",
    "mdla34": "mDLA-34 (DeepMark++ §4.3): DLA-34 + DLA-up/IDA-up with plain 3×3 convs for DCN and "
    "Resize for ConvTranspose, 64 channels at stride 4; head_conv 256",
    "mobilenetv2": "MobileNetV2 (width_mult option) + separable-conv top-down decoder to stride 4, "
    "64 channels; head_conv 64; the fast CPU model",
}

# name → (backbone factory, default head_conv). CenterNet uses 64 for ResNets and 256 for DLA.
_BUILDERS: dict[str, tuple[Callable[..., nn.Module], int]] = {
    "resnet18": (resnet18, 64),
    "mdla34": (mdla34, 256),
    "mobilenetv2": (mobilenetv2, 64),
}


def build_model(
    arch: str,
    grouping: Grouping | str,
    num_classes: int = NUM_CATEGORIES,
    head_conv: int | None = None,
    **backbone_kwargs: Any,
) -> CenterNet:
    """A randomly initialised CenterNet with heads sized for ``grouping`` (a Grouping or its name).

    ``head_conv`` defaults per architecture; ``backbone_kwargs`` go to the backbone factory
    (e.g. ``upsample_mode``, ``width_mult``). Raises ValueError for an unknown ``arch``.
    """
    if arch not in _BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; valid ones are {', '.join(ARCHITECTURES)}")
    if isinstance(grouping, str):
        grouping = load_grouping(grouping)
    factory, default_head_conv = _BUILDERS[arch]
    head_conv = default_head_conv if head_conv is None else int(head_conv)
    backbone = factory(**backbone_kwargs)
    config = {
        "arch": arch,
        "grouping": grouping.name,
        "num_groups": grouping.num_groups,
        "num_classes": num_classes,
        "head_conv": head_conv,
        "backbone_kwargs": dict(backbone_kwargs),
    }
    return CenterNet(backbone, grouping.head_channels(num_classes), head_conv, config)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
