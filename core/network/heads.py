"""CenterNet prediction heads, the CenterNet module, and the export/inference wrapper.

Head layout and init follow CenterNet (xingyizhou/CenterNet, ``msra_resnet.py`` / ``pose_dla_dcn.py``):
conv3×3(in → head_conv) → ReLU → conv1×1(head_conv → channels). Heatmap heads (``hm``, ``hm_hp``) get
a final bias of −2.19 so sigmoid ≈ 0.1 everywhere at init (the focal loss would otherwise be swamped by
the background); regression heads get N(0, 0.001) weights and zero bias so they start near 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from deepmark.core.domain.structures import HEAD_NAMES, HEATMAP_HEADS, OUTPUT_STRIDE

HEATMAP_BIAS = -2.19  # log(0.1 / 0.9): sigmoid(−2.19) ≈ 0.10
INPUT_MULTIPLE = 32  # every CenterNet backbone here reduces by 32 before climbing back to stride 4


def make_head(in_channels: int, head_conv: int, out_channels: int, heatmap: bool) -> nn.Sequential:
    """One head: (B, in, h, w) → (B, out, h, w) raw logits / regressions."""
    head = nn.Sequential(
        nn.Conv2d(in_channels, head_conv, 3, padding=1, bias=True),
        nn.ReLU(inplace=True),
        nn.Conv2d(head_conv, out_channels, 1, bias=True),
    )
    if heatmap:
        # CenterNet leaves the heatmap heads' weights at PyTorch's default init and only sets the bias.
        nn.init.constant_(head[-1].bias, HEATMAP_BIAS)
    else:
        for m in head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)
    return head


def check_input(x: Tensor, multiple: int = INPUT_MULTIPLE) -> None:
    """Reject inputs whose H or W is not a multiple of ``multiple`` (the model's ``input_multiple``: skip
    connections would not line up)."""
    # Shape checks are skipped while tracing/exporting: they would bake the example size into the
    # graph or add guards on symbolic sizes.
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected input of shape (B, 3, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"input H and W must be multiples of {multiple}, got {h}×{w}")


class CenterNet(nn.Module):
    """Backbone (stride-4 feature map with ``backbone.out_channels`` channels) + six heads.

    ``forward(x)``: x (B, 3, H, W), H and W multiples of 32 → dict in HEAD_NAMES order of raw outputs
    (no sigmoid), each (B, C_head, H/4, W/4) with C_head from ``head_channels``.
    ``config`` records how the model was built (arch, grouping, …) for checkpoints; ``input_multiple``
    is what H and W must be multiples of (recorded in checkpoints and model files).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head_channels: dict[str, int],
        head_conv: int,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if set(head_channels) != set(HEAD_NAMES):
            raise ValueError(f"head_channels must have exactly the heads {HEAD_NAMES}, got {tuple(head_channels)}")
        if head_conv <= 0:
            raise ValueError(f"head_conv must be positive, got {head_conv}")
        self.backbone = backbone
        in_channels = int(backbone.out_channels)
        self.head_channels = {name: int(head_channels[name]) for name in HEAD_NAMES}
        self.heads = nn.ModuleDict(
            {
                name: make_head(in_channels, head_conv, c, name in HEATMAP_HEADS)
                for name, c in self.head_channels.items()
            }
        )
        self.head_conv = head_conv
        self.output_stride = OUTPUT_STRIDE
        self.input_multiple = INPUT_MULTIPLE
        self.config: dict[str, Any] = dict(config or {})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        check_input(x, self.input_multiple)
        feat = self.backbone(x)
        return {name: self.heads[name](feat) for name in HEAD_NAMES}


class ExportWrapper(nn.Module):
    """Inference/export view of a CenterNet (or HourglassNet): a tuple in HEAD_NAMES order, heatmaps sigmoided.

    ``forward(x)``: x (B, 3, H, W) → (hm, reg, wh, hps, hm_hp, hp_offset), ``hm`` (B, C, H/4, W/4) and
    ``hm_hp`` (B, G, H/4, W/4) in [0, 1]. A tuple, not a dict, because ONNX export wants positional
    outputs. No max-pool NMS in the graph: the decoder smooths the heatmaps (DeepMark++ §3.2.2) before
    its own NMS, and NMS on unsmoothed maps would discard peaks it needs. A model that returns one dict
    per stack (an HourglassNet in train mode) is read at its last stack, the one inference uses.
    """

    output_names = HEAD_NAMES

    def __init__(self, model: CenterNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x)
        if isinstance(out, list):
            out = out[-1]
        return tuple(out[name].sigmoid() if name in HEATMAP_HEADS else out[name] for name in HEAD_NAMES)
