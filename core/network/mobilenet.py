"""MobileNetV2 with a light U-Net/FPN-style up path to stride 4: the CPU backbone.

The encoder is MobileNetV2 (Sandler et al., CVPR 2018) without its classifier and final 1×1 conv,
with a width multiplier. The decoder climbs from stride 32 to stride 4: at each step the coarse map
is resized to the skip's size, added to a 1×1 lateral projection of the skip, and merged by a
depthwise-separable 3×3 conv. Separable convs keep the stride-4 work small, since the six heads
already dominate the cost at that resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from deepmark.core.network.layers import ConvBNAct, check_upsample_mode, init_backbone_weights, upsample_like

# (expansion t, channels c, repeats n, first stride s) from the MobileNetV2 paper, Table 2.
MBV2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),  # stride 4
    (6, 32, 3, 2),  # stride 8
    (6, 64, 4, 2),
    (6, 96, 3, 1),  # stride 16
    (6, 160, 3, 2),
    (6, 320, 1, 1),  # stride 32
)
# Index (into MBV2_SETTINGS) of the last stage at strides 4, 8, 16, 32: the encoder's outputs.
TAP_STAGES = (1, 2, 4, 6)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90 % of ``value`` (as MobileNetV2 does)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class InvertedResidual(nn.Module):
    """1×1 expand → 3×3 depthwise (stride) → 1×1 linear projection, + identity when shapes match.

    (B, C_in, H, W) → (B, C_out, H/stride, W/stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            ConvBNAct(hidden, out_channels, 1, act=None),  # linear bottleneck: no activation
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class SeparableConv(nn.Sequential):
    """3×3 depthwise → BN → ReLU → 1×1 → BN → ReLU. (B, C_in, H, W) → (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, groups=in_channels),
            ConvBNAct(in_channels, out_channels, 1),
        )


class MobileNetV2Encoder(nn.Module):
    """(B, 3, H, W) → 4 maps at strides 4, 8, 16, 32 with ``self.channels`` channels."""

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        in_ch = make_divisible(32 * width_mult)
        self.stem = ConvBNAct(3, in_ch, 3, 2, act=nn.ReLU6)
        stages = []
        channels = []
        for t, c, n, s in MBV2_SETTINGS:
            out_ch = make_divisible(c * width_mult)
            blocks = [InvertedResidual(in_ch if i == 0 else out_ch, out_ch, s if i == 0 else 1, t) for i in range(n)]
            stages.append(nn.Sequential(*blocks))
            channels.append(out_ch)
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(channels[i] for i in TAP_STAGES)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        taps = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in TAP_STAGES:
                taps.append(x)
        return taps


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 encoder + top-down decoder: (B, 3, H, W) → (B, out_channels, H/4, W/4).

    ``width_mult`` scales the encoder; ``up_channels`` are the decoder widths at strides 32, 16, 8
    and 4 (the last is ``out_channels``); ``upsample_mode`` "nearest" (default) or "bilinear".
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        up_channels: Sequence[int] = (128, 96, 64, 64),
        upsample_mode: str = "nearest",
    ) -> None:
        super().__init__()
        self.mode = check_upsample_mode(upsample_mode)
        if len(up_channels) != 4:
            raise ValueError("up_channels needs 4 widths (strides 32, 16, 8, 4)")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.encoder = MobileNetV2Encoder(width_mult)
        c4, c8, c16, c32 = self.encoder.channels
        self.top = ConvBNAct(c32, up_channels[0], 1)
        skips = (c16, c8, c4)
        # Laterals project each skip to the width of the coarser map it is added to.
        self.laterals = nn.ModuleList(ConvBNAct(c, up_channels[i], 1) for i, c in enumerate(skips))
        self.fuse = nn.ModuleList(SeparableConv(up_channels[i], up_channels[i + 1]) for i in range(3))
        self.out_channels = int(up_channels[-1])
        init_backbone_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        f4, f8, f16, f32 = self.encoder(x)
        y = self.top(f32)
        for skip, lateral, fuse in zip((f16, f8, f4), self.laterals, self.fuse, strict=True):
            y = fuse(upsample_like(y, skip, self.mode) + lateral(skip))
        return y


def mobilenetv2(
    width_mult: float = 1.0,
    up_channels: Sequence[int] = (128, 96, 64, 64),
    upsample_mode: str = "nearest",
) -> MobileNetV2Backbone:
    """MobileNetV2 (width ``width_mult``) + separable-conv decoder to stride 4."""
    return MobileNetV2Backbone(width_mult, up_channels, upsample_mode)
