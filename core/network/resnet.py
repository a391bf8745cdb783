"""ResNet-18 with CenterNet's "resdcn" up-sampling path, made export- and int8-friendly.

CenterNet's ``resnet_dcn.py`` climbs from stride 32 to stride 4 with three stages of
[DCN 3×3 → BN → ReLU → ConvTranspose 4×4 s2 → BN → ReLU] at 256, 128, 64 channels. Here the DCN is
a plain 3×3 conv (DCN does not export/quantize) and the ConvTranspose is a ×2 Resize followed by a
3×3 conv (onnxruntime has no int8 ConvTranspose kernel; see docs/centernet-notes.md §4).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from deepmark.core.network.layers import ConvBNAct, Upsample2x, check_upsample_mode, init_backbone_weights


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convs + identity (or 1×1-conv projection) shortcut.

    (B, C_in, H, W) → (B, C_out, H/stride, W/stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 3, stride)
        self.conv2 = ConvBNAct(out_channels, out_channels, 3, 1, act=None)
        self.shortcut: nn.Module = (
            ConvBNAct(in_channels, out_channels, 1, stride, act=None)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class UpStage(nn.Sequential):
    """conv3×3 → BN → ReLU → ×2 Resize → conv3×3 → BN → ReLU. (B, C_in, H, W) → (B, C_out, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int, mode: str) -> None:
        super().__init__(
            ConvBNAct(in_channels, out_channels, 3),
            Upsample2x(mode),
            # This conv takes the learnable part of the replaced ConvTranspose.
            ConvBNAct(out_channels, out_channels, 3),
        )


class ResNetBackbone(nn.Module):
    """ResNet (basic blocks) + three up-stages: (B, 3, H, W) → (B, out_channels, H/4, W/4).

    ``blocks`` per stage ([2, 2, 2, 2] = ResNet-18), ``up_channels`` of the three up-stages
    (the last is ``out_channels``), ``upsample_mode`` "nearest" or "bilinear".
    """

    def __init__(
        self,
        blocks: Sequence[int] = (2, 2, 2, 2),
        up_channels: Sequence[int] = (256, 128, 64),
        upsample_mode: str = "nearest",
    ) -> None:
        super().__init__()
        check_upsample_mode(upsample_mode)
        if len(blocks) != 4 or len(up_channels) != 3:
            raise ValueError("ResNet needs 4 stages of blocks and 3 up-stage widths")
        self.stem = nn.Sequential(ConvBNAct(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))  # stride 4
        stages: list[nn.Module] = []
        in_ch = 64
        for i, (n, ch) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
            stride = 1 if i == 0 else 2
            layers = [BasicBlock(in_ch, ch, stride)] + [BasicBlock(ch, ch) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            in_ch = ch
        self.stages = nn.Sequential(*stages)  # stride 32, 512 channels
        ups: list[nn.Module] = []
        for ch in up_channels:
            ups.append(UpStage(in_ch, ch, upsample_mode))
            in_ch = ch
        self.up = nn.Sequential(*ups)  # back to stride 4
        self.out_channels = int(up_channels[-1])
        init_backbone_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.stages(self.stem(x)))


def resnet18(upsample_mode: str = "nearest", up_channels: Sequence[int] = (256, 128, 64)) -> ResNetBackbone:
    """ResNet-18 + resdcn-layout up path (plain conv, Resize): 64 output channels at stride 4."""
    return ResNetBackbone((2, 2, 2, 2), up_channels, upsample_mode)
