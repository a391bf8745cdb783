"""mDLA-34: DLA-34 + DLA-up/IDA-up to stride 4, with no deformable conv and no ConvTranspose.

DeepMark++ §4.3 runs CenterNet's DLA-34 on a phone by replacing every DCN with a plain 3×3 conv
("mDLA-34"). Here the learnable ConvTranspose up-samplers of the IDA nodes are also replaced by a
size-matched Resize; the 3×3 conv that follows each merge provides the learnable part. Bilinear by
default because the replaced deconvs were bilinear-initialised and up-sample by up to ×8.

Structure (Yu et al., "Deep Layer Aggregation", CVPR 2018; CenterNet ``pose_dla_dcn.py``):
levels [1, 1, 1, 2, 2, 1], channels [16, 32, 64, 128, 256, 512]; level i has stride 2^i.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from deepmark.core.network.layers import ConvBNAct, check_upsample_mode, init_backbone_weights, upsample_like

DLA34_LEVELS = (1, 1, 1, 2, 2, 1)
DLA34_CHANNELS = (16, 32, 64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3×3 convs; the shortcut is given by the enclosing tree (it may be pooled and projected).

    (B, C_in, H, W), residual (B, C_out, H/stride, W/stride) or None → (B, C_out, H/stride, W/stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 3, stride)
        self.conv2 = ConvBNAct(out_channels, out_channels, 3, 1, act=None)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + (x if residual is None else residual))


class Root(nn.Module):
    """Aggregation node: concat children → conv1×1 → BN → ReLU. (B, ΣC_i, H, W) → (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, *children: Tensor) -> Tensor:
        return self.conv(torch.cat(children, dim=1))


class Tree(nn.Module):
    """Hierarchical deep aggregation tree of depth ``levels``. (B, C_in, H, W) → (B, C_out, H/s, W/s).

    A depth-1 tree is two blocks merged by a Root; a deeper tree stacks two sub-trees and passes its
    earlier outputs down as extra children, so the deepest Root aggregates across the whole stage.
    ``level_root`` also feeds the (pooled) stage input to the Root, as DLA does at stages 3–5.
    """

    def __init__(
        self,
        levels: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        level_root: bool = False,
        root_dim: int = 0,
    ) -> None:
        super().__init__()
        root_dim = root_dim or 2 * out_channels
        if level_root:
            root_dim += in_channels
        self.levels = levels
        self.level_root = level_root
        self.tree1: nn.Module
        self.tree2: nn.Module
        if levels == 1:
            self.tree1 = BasicBlock(in_channels, out_channels, stride)
            self.tree2 = BasicBlock(out_channels, out_channels, 1)
            self.root: Root | None = Root(root_dim, out_channels)
        else:
            self.tree1 = Tree(levels - 1, in_channels, out_channels, stride)
            self.tree2 = Tree(levels - 1, out_channels, out_channels, root_dim=root_dim + out_channels)
            self.root = None
        # The pooled input is the stride-s shortcut of the first block and a Root child.
        self.downsample: nn.Module = nn.MaxPool2d(stride, stride) if stride > 1 else nn.Identity()
        # Only a depth-1 tree uses the projected shortcut (a deeper tree's sub-tree makes its own), so
        # the projection is built only there: DLA's reference code also builds it one level up, where
        # its weights receive no gradient.
        self.project: nn.Module | None = None
        if levels == 1 and in_channels != out_channels:
            self.project = ConvBNAct(in_channels, out_channels, 1, act=None)

    def forward(self, x: Tensor, children: list[Tensor] | None = None) -> Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x)
        if self.level_root:
            children.append(bottom)
        if self.levels == 1:
            residual = self.project(bottom) if self.project is not None else bottom
            x1 = self.tree1(x, residual)
            x2 = self.tree2(x1)
            assert self.root is not None
            return self.root(x2, x1, *children)
        x1 = self.tree1(x)
        children.append(x1)
        return self.tree2(x1, children=children)


class DLA(nn.Module):
    """DLA base: (B, 3, H, W) → list of 6 maps, level i (B, channels[i], H/2^i, W/2^i)."""

    def __init__(self, levels: Sequence[int] = DLA34_LEVELS, channels: Sequence[int] = DLA34_CHANNELS) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.base = ConvBNAct(3, channels[0], 7, 1)
        self.level0 = self._conv_level(channels[0], channels[0], levels[0], 1)
        self.level1 = self._conv_level(channels[0], channels[1], levels[1], 2)
        self.level2 = Tree(levels[2], channels[1], channels[2], 2, level_root=False)
        self.level3 = Tree(levels[3], channels[2], channels[3], 2, level_root=True)
        self.level4 = Tree(levels[4], channels[3], channels[4], 2, level_root=True)
        self.level5 = Tree(levels[5], channels[4], channels[5], 2, level_root=True)

    @staticmethod
    def _conv_level(in_channels: int, out_channels: int, convs: int, stride: int) -> nn.Sequential:
        layers = [ConvBNAct(in_channels, out_channels, 3, stride)]
        layers += [ConvBNAct(out_channels, out_channels, 3) for _ in range(1, convs)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.base(x)
        out = []
        for level in (self.level0, self.level1, self.level2, self.level3, self.level4, self.level5):
            x = level(x)
            out.append(x)
        return out


class IDAUp(nn.Module):
    """Iterative deep aggregation: fold maps i = start+1 … end−1 one by one into their finer neighbour.

    Map i is projected (conv3×3 → BN → ReLU, CenterNet's DCN), resized to map i−1's size (CenterNet's
    ConvTranspose), added to map i−1 and merged by a node (conv3×3 → BN → ReLU, CenterNet's DCN).
    ``in_channels[k]`` is the width of the k-th map counted from ``start``; all results have
    ``out_channels`` and the resolution of their finer neighbour.
    """

    def __init__(self, out_channels: int, in_channels: Sequence[int], mode: str) -> None:
        super().__init__()
        self.mode = check_upsample_mode(mode)
        self.proj = nn.ModuleList(ConvBNAct(c, out_channels, 3) for c in in_channels[1:])
        self.node = nn.ModuleList(ConvBNAct(out_channels, out_channels, 3) for _ in in_channels[1:])

    def forward(self, layers: list[Tensor], start: int, end: int) -> list[Tensor]:
        """Return a copy of ``layers`` with entries start+1 … end−1 replaced by their aggregates."""
        layers = list(layers)
        for k, i in enumerate(range(start + 1, end)):
            up = upsample_like(self.proj[k](layers[i]), layers[i - 1], self.mode)
            layers[i] = self.node[k](up + layers[i - 1])
        return layers


class DLAUp(nn.Module):
    """DLA-up: repeated IDA from the coarsest map down, one IDAUp per level.

    Input: maps (B, channels[k], H_k, W_k), finest first. Output: same count, finest first, where
    output k has ``channels[k]`` channels and aggregates every coarser map.
    """

    def __init__(self, channels: Sequence[int], mode: str) -> None:
        super().__init__()
        in_channels = list(channels)
        idas = []
        for i in range(len(channels) - 1):
            j = len(channels) - i - 2
            idas.append(IDAUp(channels[j], in_channels[j:], mode))
            # After this IDA the maps above j have been rewritten at channels[j] width.
            in_channels[j + 1 :] = [channels[j]] * (len(channels) - j - 1)
        self.idas = nn.ModuleList(idas)

    def forward(self, layers: list[Tensor]) -> list[Tensor]:
        n = len(layers)
        out = [layers[-1]]
        for i, ida in enumerate(self.idas):
            layers = ida(layers, n - i - 2, n)
            out.insert(0, layers[-1])
        return out


class DLASeg(nn.Module):
    """mDLA-34 backbone: (B, 3, H, W) → (B, 64, H/4, W/4) (CenterNet's DLASeg, down_ratio 4).

    ``upsample_mode`` "bilinear" (default) or "nearest" for the IDA Resizes.
    """

    first_level = 2  # stride 4 = 2^2
    last_level = 5

    def __init__(
        self,
        levels: Sequence[int] = DLA34_LEVELS,
        channels: Sequence[int] = DLA34_CHANNELS,
        upsample_mode: str = "bilinear",
    ) -> None:
        super().__init__()
        check_upsample_mode(upsample_mode)
        self.base = DLA(levels, channels)
        up_channels = list(channels[self.first_level :])
        self.dla_up = DLAUp(up_channels, upsample_mode)
        n = self.last_level - self.first_level
        self.ida_up = IDAUp(up_channels[0], up_channels[:n], upsample_mode)
        self.out_channels = int(up_channels[0])
        init_backbone_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        levels = self.base(x)[self.first_level :]
        y = self.dla_up(levels)[: self.last_level - self.first_level]
        return self.ida_up(y, 0, len(y))[-1]


def mdla34(upsample_mode: str = "bilinear") -> DLASeg:
    """mDLA-34 (DeepMark++ §4.3): DLA-34 + DLA-up/IDA-up with plain convs, 64 channels at stride 4."""
    return DLASeg(DLA34_LEVELS, DLA34_CHANNELS, upsample_mode)
