"""Building blocks shared by the backbones: conv+BN+act, size-matched up-sampling, weight init.

Only export-friendly ops appear here (Conv2d, BatchNorm2d, ReLU/ReLU6, Add, Concat, Resize) so that
BN folds into the preceding conv and the whole net quantizes to int8 in onnxruntime; up-sampling is a
Resize followed by a conv rather than a ConvTranspose, which onnxruntime cannot run in int8.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

UPSAMPLE_MODES = ("nearest", "bilinear")


def check_upsample_mode(mode: str) -> str:
    """Return ``mode`` if it is a supported Resize mode, else raise ValueError."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample_mode must be one of {UPSAMPLE_MODES}, got {mode!r}")
    return mode


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias: BN follows) → BatchNorm2d → activation. (B, C_in, H, W) → (B, C_out, H/s, W/s)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


def upsample_like(x: Tensor, ref: Tensor, mode: str = "nearest") -> Tensor:
    """Resize ``x`` (B, C, h, w) to the spatial size of ``ref`` (B, *, H, W) → (B, C, H, W).

    Size-based rather than scale-based so that skip connections line up for any H, W (the exported
    Resize reads the size from the skip's shape, so one graph serves every input size).
    """
    if mode == "bilinear":
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


class Upsample2x(nn.Module):
    """Fixed ×2 Resize (nearest or bilinear). (B, C, H, W) → (B, C, 2H, 2W)."""

    def __init__(self, mode: str = "nearest") -> None:
        super().__init__()
        self.mode = check_upsample_mode(mode)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "bilinear":
            return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return F.interpolate(x, scale_factor=2.0, mode="nearest")

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def init_backbone_weights(module: nn.Module) -> None:
    """He-normal convs (fan-out, as torchvision's ResNet/MobileNet do), BN γ = 1 and β = 0.

    Training starts from random weights (nothing is downloaded), so a sane init matters.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
