"""The refinement network (torch): crop + rendered landmarks → refined landmarks by soft-argmax.

PoseFix (Moon et al., CVPR 2019) in small: a MobileNetV2 encoder with the light top-down decoder of
``deepmark.core.network.mobilenet`` to stride 4, whose stem takes the image; the rendered landmark
heatmaps (G channels at half the crop's resolution, ``render.POSE_STRIDE``) join through a 1×1 conv added
to the stem's output — a 3×3 conv over 3 + G channels at full resolution would cost as much as the whole
rest of the encoder. Two 1×1 heads at stride 4: G landmark heatmaps (logits) and G confidence logits.

The heatmap logits are the head's output plus ``prior_scale`` × log of the input landmark map (pooled to
stride 4): with the head's last conv at zero, the untrained network returns the detector's landmarks
exactly (an identity refiner), and training learns only the corrections — the input position as a prior,
which a refiner trained on two CPU cores for an hour cannot afford to discover from scratch.

Integral regression (Sun et al. 2018, as PoseFix): softmax over each heatmap, the expected pixel position
is the landmark — differentiable and sub-pixel, trained with L1 on the coordinates. The confidence is the
sigmoid of the confidence logits averaged under that same softmax (where the landmark is, how sure).
Outputs ``coords`` (B, G, 2) crop pixels (x, y) and ``confidence`` (B, G) in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepmark.core.domain.structures import OUTPUT_STRIDE
from deepmark.core.network.layers import ConvBNAct, upsample_like
from deepmark.core.network.mobilenet import TAP_STAGES, MobileNetV2Backbone

INPUT_NAMES = ("image", "pose")
OUTPUT_NAMES = ("coords", "confidence")
PRIOR_FLOOR = 1e-8  # log(pose + floor): far from the input landmark the prior is −18, i.e. no mass


class RefinerNet(nn.Module):
    """``forward(image (B, 3, H, W) normalised, pose (B, G, H/2, W/2) in [0, 1])`` → (coords (B, G, 2) crop
    pixels, confidence (B, G)); H, W multiples of 32."""

    def __init__(self, num_groups: int, width_mult: float = 0.5, up_channels: Sequence[int] = (96, 64, 48, 48),
                 head_conv: int = 48) -> None:
        super().__init__()
        self.config = {"num_groups": num_groups, "width_mult": width_mult, "up_channels": list(up_channels),
                       "head_conv": head_conv}
        self.backbone = MobileNetV2Backbone(width_mult, up_channels)
        stem_channels = self.backbone.encoder.stem[0].out_channels
        self.pose_in = ConvBNAct(num_groups, stem_channels, 1, act=None)
        width = self.backbone.out_channels
        self.heatmap = nn.Sequential(ConvBNAct(width, head_conv, 3), nn.Conv2d(head_conv, num_groups, 1))
        self.confidence = nn.Sequential(ConvBNAct(width, head_conv, 3), nn.Conv2d(head_conv, num_groups, 1))
        self.prior_scale = nn.Parameter(torch.ones(()))
        for head in (self.heatmap, self.confidence):  # start as the identity refiner, confidence 0.5
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def forward(self, image: Tensor, pose: Tensor) -> tuple[Tensor, Tensor]:
        encoder = self.backbone.encoder
        x = encoder.stem(image) + self.pose_in(pose)
        taps = []
        for i, stage in enumerate(encoder.stages):
            x = stage(x)
            if i in TAP_STAGES:
                taps.append(x)
        features = _decode(self.backbone, taps)
        prior = torch.log(F.avg_pool2d(pose, 2) + PRIOR_FLOOR)  # stride 2 → 4, the heatmaps' grid
        logits = self.heatmap(features) + self.prior_scale * prior
        b, g, h, w = logits.shape
        prob = torch.softmax(logits.reshape(b, g, h * w), dim=-1)
        xs = (torch.arange(w, dtype=prob.dtype, device=prob.device) + 0.5) * OUTPUT_STRIDE
        ys = (torch.arange(h, dtype=prob.dtype, device=prob.device) + 0.5) * OUTPUT_STRIDE
        grid = torch.stack([xs.repeat(h), ys.repeat_interleave(w)], dim=-1)  # (h·w, 2), row-major like reshape
        coords = prob @ grid
        confidence = (prob * torch.sigmoid(self.confidence(features).reshape(b, g, h * w))).sum(-1)
        return coords, confidence


def _decode(backbone: MobileNetV2Backbone, taps: list[Tensor]) -> Tensor:
    """The backbone's own top-down path on encoder taps (strides 4, 8, 16, 32) → stride-4 features."""
    f4, f8, f16, f32 = taps
    y = backbone.top(f32)
    for skip, lateral, fuse in zip((f16, f8, f4), backbone.laterals, backbone.fuse, strict=True):
        y = fuse(upsample_like(y, skip, backbone.mode) + lateral(skip))
    return y


def build_refiner(config: dict) -> RefinerNet:
    """A RefinerNet from its ``config`` (as ``RefinerNet.config`` stores it in a checkpoint)."""
    return RefinerNet(int(config["num_groups"]), float(config["width_mult"]), tuple(config["up_channels"]),
                      int(config["head_conv"]))
