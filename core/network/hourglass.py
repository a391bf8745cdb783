"""CenterNet's stacked hourglass (CornerNet's Hourglass-104), with intermediate supervision.

The layout follows xingyizhou/CenterNet ``src/lib/models/networks/large_hourglass.py`` (itself from
CornerNet): a stem ``pre`` (7×7/2 conv → 128, residual/2 → dims[0]) to stride 4, then ``stacks``
hourglasses ``kps``; each hourglass recurses ``n`` times (``up1`` residuals at this resolution;
``low1`` = residual/2 then residuals at half resolution; ``low2`` = the next hourglass level, or
residuals at the bottom; ``low3`` = residuals back to this level's width; ×2 nearest Resize; sum).
After each hourglass, ``cnvs`` (3×3 conv + BN + ReLU → cnv_dim) feeds that stack's heads; between
stacks the next input is ``inters[i](ReLU(inters_[i](inter) + cnvs_[i](cnv)))``.

Names: modules and parameters are named exactly as in CenterNet, so a public ctdet / multi_pose hourglass
checkpoint's state_dict (``module.`` prefix stripped) maps key for key onto ``hourglass104``'s:
``pre.0.conv.weight``, ``pre.1.skip.0.weight``, ``kps.0.low2.low2.up1.0.bn1.running_mean``,
``cnvs.0.bn.weight``, ``inters.0.conv2.weight``, ``inters_.0.0.weight``, ``cnvs_.0.1.bias``,
``hm.0.0.conv.weight``, ``hm.1.1.bias``, … (the heads are the model's own attributes, one ModuleList per
head with one entry per stack: no ``backbone.``/``heads.`` prefix as in ``CenterNet``). Every trunk key
and shape is pinned by ``resources/pretrained_keys/centernet_hourglass104_{multi_pose,ctdet}.json``
and a test; a head loads where its channel count matches (``wh``, ``reg``, ``hp_offset``; not ``hm``
(13 vs 1 / 80), ``hps`` or ``hm_hp`` (62 groups vs 17 COCO joints)).

Differences from the public definition, none of which changes a key: the empty ``max1`` / ``bn``
placeholders are left out (no parameters), an unused skip is ``nn.Identity``, and the regression heads
start near 0 (N(0, 0.001) weights, zero bias) as ``deepmark.core.network.heads`` does for every
architecture. Plain convs, BN, ReLU, Add and Resize only, so it exports to ONNX as the others do.

``forward(x)``: x (B, 3, H, W), H and W multiples of ``input_multiple`` (4 · 2ⁿ: 128 for n = 5) — in
eval mode the last stack's heads, a dict in HEAD_NAMES order, each (B, C_head, H/4, W/4) raw logits
(as ``CenterNet`` returns); in train mode a list of such dicts, one per stack, for the intermediate
supervision (``deepmark.core.training.losses.stacked_loss``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from deepmark.core.domain.structures import HEAD_NAMES, HEATMAP_HEADS, OUTPUT_STRIDE
from deepmark.core.network.heads import HEATMAP_BIAS, check_input
from deepmark.core.network.layers import Upsample2x, init_backbone_weights

STEM_CHANNELS = 128  # the 7×7 stem conv's width in CenterNet, whatever dims[0] is


class ConvLayer(nn.Module):
    """CenterNet's ``convolution``: k×k conv → BN (or, without BN, a conv bias) → ReLU.
    (B, C_in, H, W) → (B, C_out, H/stride, W/stride)."""

    def __init__(self, k: int, in_channels: int, out_channels: int, stride: int = 1, with_bn: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, k, stride, (k - 1) // 2, bias=not with_bn)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels) if with_bn else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class Residual(nn.Module):
    """CenterNet's ``residual``: two 3×3 conv + BN, a 1×1 conv + BN ``skip`` when the shape changes, ReLU
    after the sum. (B, C_in, H, W) → (B, C_out, H/stride, W/stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.skip: nn.Module = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))) + self.skip(x))


def residuals(in_channels: int, out_channels: int, count: int, stride: int = 1) -> nn.Sequential:
    """``count`` residuals, the first one changing width (and resolution): CenterNet's make_layer /
    make_hg_layer."""
    return nn.Sequential(Residual(in_channels, out_channels, stride),
                         *(Residual(out_channels, out_channels) for _ in range(count - 1)))


def residuals_back(in_channels: int, out_channels: int, count: int) -> nn.Sequential:
    """``count`` residuals, the last one changing width: CenterNet's make_layer_revr."""
    return nn.Sequential(*(Residual(in_channels, in_channels) for _ in range(count - 1)),
                         Residual(in_channels, out_channels))


class HourglassModule(nn.Module):
    """One hourglass level (CenterNet's ``kp_module``), recursing ``n`` levels down.

    ``dims[i]`` / ``modules[i]``: width and residual count at level i (len ≥ n + 1).
    (B, dims[0], H, W) → (B, dims[0], H, W); H and W divisible by 2ⁿ.
    """

    def __init__(self, n: int, dims: Sequence[int], modules: Sequence[int]) -> None:
        super().__init__()
        here, below = int(dims[0]), int(dims[1])
        self.up1 = residuals(here, here, modules[0])
        self.low1 = residuals(here, below, modules[0], stride=2)
        self.low2: nn.Module = (HourglassModule(n - 1, dims[1:], modules[1:]) if n > 1
                                else residuals(below, below, modules[1]))
        self.low3 = residuals_back(below, here, modules[0])
        self.up2 = Upsample2x("nearest")

    def forward(self, x: Tensor) -> Tensor:
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(x))))


def make_kp_head(cnv_dim: int, head_conv: int, out_channels: int, heatmap: bool) -> nn.Sequential:
    """One stack's head (CenterNet's make_kp_layer): 3×3 conv with bias (no BN) → ReLU → 1×1 conv.
    (B, cnv_dim, h, w) → (B, out_channels, h, w)."""
    head = nn.Sequential(ConvLayer(3, cnv_dim, head_conv, with_bn=False), nn.Conv2d(head_conv, out_channels, 1))
    if heatmap:
        nn.init.constant_(head[-1].bias, HEATMAP_BIAS)
    else:
        # as deepmark.core.network.heads.make_head: regressions start near 0
        for conv in (head[0].conv, head[1]):
            nn.init.normal_(conv.weight, std=0.001)
            nn.init.zeros_(conv.bias)
    return head


class HourglassNet(nn.Module):
    """Stacked hourglass CenterNet (see the module docstring for the layout, names and outputs).

    ``head_channels``: channels of each head (HEAD_NAMES); ``n`` levels per hourglass; ``dims`` /
    ``modules`` per level (len n + 1); ``cnv_dim``: width after each hourglass; ``head_conv``: the heads'
    hidden width. ``config`` records how it was built, as ``CenterNet.config``.
    """

    def __init__(
        self,
        head_channels: dict[str, int],
        n: int,
        dims: Sequence[int],
        modules: Sequence[int],
        stacks: int = 2,
        cnv_dim: int = 256,
        head_conv: int = 256,
        stem_channels: int = STEM_CHANNELS,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if set(head_channels) != set(HEAD_NAMES):
            raise ValueError(f"head_channels must have exactly the heads {HEAD_NAMES}, got {tuple(head_channels)}")
        if n < 1 or len(dims) < n + 1 or len(modules) < n + 1 or stacks < 1 or head_conv <= 0:
            raise ValueError(f"hourglass needs n ≥ 1, n + 1 dims and modules, stacks ≥ 1 and head_conv > 0; got "
                             f"n={n}, dims={list(dims)}, modules={list(modules)}, stacks={stacks}, "
                             f"head_conv={head_conv}")
        width = int(dims[0])
        self.pre = nn.Sequential(ConvLayer(7, 3, stem_channels, stride=2), Residual(stem_channels, width, stride=2))
        self.kps = nn.ModuleList(HourglassModule(n, dims, modules) for _ in range(stacks))
        self.cnvs = nn.ModuleList(ConvLayer(3, width, cnv_dim) for _ in range(stacks))
        self.inters = nn.ModuleList(Residual(width, width) for _ in range(stacks - 1))
        self.inters_ = nn.ModuleList(_conv1x1_bn(width, width) for _ in range(stacks - 1))
        self.cnvs_ = nn.ModuleList(_conv1x1_bn(cnv_dim, width) for _ in range(stacks - 1))
        self.relu = nn.ReLU(inplace=True)
        init_backbone_weights(self)  # before the heads: they get their own init
        self.head_channels = {name: int(head_channels[name]) for name in HEAD_NAMES}
        for name, channels in self.head_channels.items():
            setattr(self, name, nn.ModuleList(make_kp_head(cnv_dim, head_conv, channels, name in HEATMAP_HEADS)
                                              for _ in range(stacks)))
        self.num_stacks = stacks
        self.head_conv = head_conv
        self.output_stride = OUTPUT_STRIDE
        # stride 4 from the stem, then n halvings: skip connections line up only on multiples of this
        self.input_multiple = OUTPUT_STRIDE * 2**n
        self.config: dict[str, Any] = dict(config or {})

    def forward(self, x: Tensor) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        check_input(x, self.input_multiple)
        inter = self.pre(x)
        outputs = []
        for i in range(self.num_stacks):
            # Eval mode needs the last stack's heads only: the earlier ones are not computed (nor exported).
            last = i == self.num_stacks - 1
            cnv = self.cnvs[i](self.kps[i](inter))
            if self.training or last:
                outputs.append({name: getattr(self, name)[i](cnv) for name in HEAD_NAMES})
            if not last:
                inter = self.inters[i](self.relu(self.inters_[i](inter) + self.cnvs_[i](cnv)))
        return outputs if self.training else outputs[-1]


def _conv1x1_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))


# CenterNet's HourglassNet: 5 levels, widths and residual counts per level, 2 stacks, 256 after each stack.
HOURGLASS104 = {"n": 5, "dims": (256, 256, 384, 384, 384, 512), "modules": (2, 2, 2, 2, 2, 4), "stacks": 2,
                "cnv_dim": 256, "stem_channels": STEM_CHANNELS}
# Same depth of recursion (so the same input multiple, 128) and two stacks, narrow and one residual per level:
# trains on a CPU in tests.
HOURGLASS_SMALL = {"n": 5, "dims": (32, 32, 48, 48, 48, 64), "modules": (1, 1, 1, 1, 1, 2), "stacks": 2,
                   "cnv_dim": 32, "stem_channels": 16}


def hourglass104(head_channels: dict[str, int], head_conv: int = 256,
                 config: dict[str, Any] | None = None) -> HourglassNet:
    """CenterNet's Hourglass-104 (2 stacks); input multiples of 128."""
    return HourglassNet(head_channels, head_conv=head_conv, config=config, **HOURGLASS104)


def hourglass_small(head_channels: dict[str, int], head_conv: int = 32,
                    config: dict[str, Any] | None = None) -> HourglassNet:
    """A narrow 2-stack hourglass with the same structure and input multiple (128), for CPU tests."""
    return HourglassNet(head_channels, head_conv=head_conv, config=config, **HOURGLASS_SMALL)
