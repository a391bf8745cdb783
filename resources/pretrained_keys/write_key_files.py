"""Write the public checkpoints' tensor names and shapes as data (``<name>.json``: key → shape).

Run once when a layout is added (the output is committed)::

    python resources/pretrained_keys/write_key_files.py

Each layout below is transcribed by hand from the public architecture definition named in its
docstring; nothing here imports DeepMark's own networks, so the loader's tests
(tests/core/network/test_initial_weights.py) check our name mapping against an independent account of
the public files. Keys are as the network's ``state_dict()`` names them, without a ``module.`` prefix.
``num_batches_tracked`` (PyTorch ≥ 0.4.1) is written where the file was saved by a PyTorch that keeps it:
CenterNet's checkpoints (trained on 0.4.1); torchvision's and ucbdrive's ImageNet files predate it or
were re-saved without it.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Keys:
    """An ordered key → shape table, filled module by module as the public definition registers them."""

    def __init__(self, batch_counter: bool) -> None:
        self.shapes: dict[str, list[int]] = {}
        self.batch_counter = batch_counter

    def conv(self, name: str, out_ch: int, in_ch: int, k: int, bias: bool = False, groups: int = 1) -> None:
        self.shapes[f"{name}.weight"] = [out_ch, in_ch // groups, k, k]
        if bias:
            self.shapes[f"{name}.bias"] = [out_ch]

    def conv_transpose(self, name: str, in_ch: int, out_ch: int, k: int, groups: int = 1) -> None:
        # nn.ConvTranspose2d keeps its weight as (in, out / groups, k, k); CenterNet's have no bias.
        self.shapes[f"{name}.weight"] = [in_ch, out_ch // groups, k, k]

    def linear(self, name: str, out_f: int, in_f: int) -> None:
        self.shapes[f"{name}.weight"] = [out_f, in_f]
        self.shapes[f"{name}.bias"] = [out_f]

    def bn(self, name: str, ch: int) -> None:
        for param in ("weight", "bias", "running_mean", "running_var"):
            self.shapes[f"{name}.{param}"] = [ch]
        if self.batch_counter:
            self.shapes[f"{name}.num_batches_tracked"] = []

    def dcn(self, name: str, out_ch: int, in_ch: int) -> None:
        """DCNv2 3×3 (CenterNet ``DCNv2/dcn_v2.py`` ``DCN``): main weight + bias, then the offset/mask conv
        with 3 × 3 × 3 = 27 outputs (x, y offsets and a mask per kernel tap, one deformable group)."""
        self.shapes[f"{name}.weight"] = [out_ch, in_ch, 3, 3]
        self.shapes[f"{name}.bias"] = [out_ch]
        self.conv(f"{name}.conv_offset_mask", 27, in_ch, 3, bias=True)


# --------------------------------------------------------------------------------------------------
# DLA-34 (ucbdrive/dla ``dla.py``; the same classes in CenterNet ``pose_dla_dcn.py``)

DLA34_LEVELS = (1, 1, 1, 2, 2, 1)
DLA34_CHANNELS = (16, 32, 64, 128, 256, 512)


def _dla_tree(keys: Keys, name: str, levels: int, in_ch: int, out_ch: int, level_root: bool, root_dim: int) -> None:
    """``Tree``: two BasicBlocks (or two sub-trees), a Root at depth 1, and a 1×1 projection whenever
    the width changes — built at every depth, even where its output is not used."""
    root_dim = root_dim or 2 * out_ch
    if level_root:
        root_dim += in_ch
    if levels == 1:
        for tree, c_in in (("tree1", in_ch), ("tree2", out_ch)):
            keys.conv(f"{name}.{tree}.conv1", out_ch, c_in, 3)
            keys.bn(f"{name}.{tree}.bn1", out_ch)
            keys.conv(f"{name}.{tree}.conv2", out_ch, out_ch, 3)
            keys.bn(f"{name}.{tree}.bn2", out_ch)
    else:
        _dla_tree(keys, f"{name}.tree1", levels - 1, in_ch, out_ch, False, 0)
        _dla_tree(keys, f"{name}.tree2", levels - 1, out_ch, out_ch, False, root_dim + out_ch)
    if levels == 1:
        keys.conv(f"{name}.root.conv", out_ch, root_dim, 1)
        keys.bn(f"{name}.root.bn", out_ch)
    if in_ch != out_ch:
        keys.conv(f"{name}.project.0", out_ch, in_ch, 1)
        keys.bn(f"{name}.project.1", out_ch)


def dla34_base(keys: Keys, prefix: str = "") -> None:
    """``DLA``: base_layer (7×7 conv, BN), level0/1 (conv, BN, ReLU per conv), level2–5 trees, ``fc``
    (a 1×1 conv to 1000 ImageNet classes; CenterNet's ``load_pretrained_model`` adds it too, so its
    checkpoints keep it)."""
    c = DLA34_CHANNELS
    keys.conv(f"{prefix}base_layer.0", c[0], 3, 7)
    keys.bn(f"{prefix}base_layer.1", c[0])
    for level, (c_in, c_out) in enumerate(((c[0], c[0]), (c[0], c[1]))):
        for i in range(DLA34_LEVELS[level]):
            keys.conv(f"{prefix}level{level}.{3 * i}", c_out, c_in if i == 0 else c_out, 3)
            keys.bn(f"{prefix}level{level}.{3 * i + 1}", c_out)
    for level in range(2, 6):
        _dla_tree(keys, f"{prefix}level{level}", DLA34_LEVELS[level], c[level - 1], c[level], level > 2, 0)
    keys.conv(f"{prefix}fc", 1000, c[5], 1, bias=True)


def _ida_up(keys: Keys, name: str, out_ch: int, channels: list[int], up_factors: list[int]) -> None:
    """CenterNet ``IDAUp``: per input i ≥ 1 a DeformConv projection (``proj_i``: DCN then ``actf.0`` BN),
    a depthwise bilinear-initialised ConvTranspose (``up_i``, kernel 2f) and a DeformConv node."""
    for i in range(1, len(channels)):
        keys.dcn(f"{name}.proj_{i}.conv", out_ch, channels[i])
        keys.bn(f"{name}.proj_{i}.actf.0", out_ch)
        keys.conv_transpose(f"{name}.up_{i}", out_ch, out_ch, 2 * up_factors[i], groups=out_ch)
        keys.dcn(f"{name}.node_{i}.conv", out_ch, out_ch)
        keys.bn(f"{name}.node_{i}.actf.0", out_ch)


def centernet_dla34(keys: Keys, heads: dict[str, int], head_conv: int = 256) -> None:
    """CenterNet ``pose_dla_dcn.py`` ``DLASeg`` (down ratio 4, last level 5): base, DLAUp over levels 2–5,
    IDAUp over the three finest, then the heads."""
    dla34_base(keys, "base.")
    channels = list(DLA34_CHANNELS[2:])
    in_channels = list(channels)
    scales = [2**i for i in range(len(channels))]
    for i in range(len(channels) - 1):
        j = len(channels) - i - 2
        _ida_up(keys, f"dla_up.ida_{i}", channels[j], in_channels[j:], [s // scales[j] for s in scales[j:]])
        scales[j + 1 :] = [scales[j]] * (len(scales) - j - 1)
        in_channels[j + 1 :] = [channels[j]] * (len(channels) - j - 1)
    _ida_up(keys, "ida_up", channels[0], channels[:3], [1, 2, 4])
    centernet_heads(keys, heads, channels[0], head_conv)


def centernet_heads(keys: Keys, heads: dict[str, int], in_ch: int, head_conv: int) -> None:
    """One head per output: 3×3 conv (bias) → ReLU → 1×1 conv (bias); indices 0 and 2."""
    for head, classes in heads.items():
        keys.conv(f"{head}.0", head_conv, in_ch, 3, bias=True)
        keys.conv(f"{head}.2", classes, head_conv, 1, bias=True)


# --------------------------------------------------------------------------------------------------
# ResNet-18 (torchvision ``resnet.py``; CenterNet ``resnet_dcn.py`` keeps its names)


def resnet18_body(keys: Keys) -> None:
    """conv1, bn1, layer1–4 of BasicBlocks ([2, 2, 2, 2]); the first block of layers 2–4 has a 1×1
    ``downsample`` (conv, BN)."""
    keys.conv("conv1", 64, 3, 7)
    keys.bn("bn1", 64)
    in_ch = 64
    for layer, ch in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            name = f"layer{layer}.{block}"
            keys.conv(f"{name}.conv1", ch, in_ch if block == 0 else ch, 3)
            keys.bn(f"{name}.bn1", ch)
            keys.conv(f"{name}.conv2", ch, ch, 3)
            keys.bn(f"{name}.bn2", ch)
            if block == 0 and in_ch != ch:
                keys.conv(f"{name}.downsample.0", ch, in_ch, 1)
                keys.bn(f"{name}.downsample.1", ch)
        in_ch = ch


def centernet_resdcn18(keys: Keys, heads: dict[str, int], head_conv: int = 64) -> None:
    """CenterNet ``resnet_dcn.py`` ``PoseResNet``: the ResNet body (no ``fc``), ``deconv_layers`` of three
    [DCN 3×3, BN, ReLU, ConvTranspose 4×4 s2, BN, ReLU] stages at 256, 128, 64 channels, then the heads."""
    resnet18_body(keys)
    in_ch = 512
    for stage, ch in enumerate((256, 128, 64)):
        base = 6 * stage
        keys.dcn(f"deconv_layers.{base}", ch, in_ch)
        keys.bn(f"deconv_layers.{base + 1}", ch)
        keys.conv_transpose(f"deconv_layers.{base + 3}", ch, ch, 4)
        keys.bn(f"deconv_layers.{base + 4}", ch)
        in_ch = ch
    centernet_heads(keys, heads, 64, head_conv)


# --------------------------------------------------------------------------------------------------
# MobileNetV2 (torchvision ``mobilenetv2.py``, width 1.0)

MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1))


def mobilenet_v2(keys: Keys) -> None:
    """``features.0`` 3×3 conv-BN-ReLU6 to 32, ``features.1``–``17`` inverted residuals (``conv``: the
    expansion conv-BN-ReLU6 when t ≠ 1, the depthwise conv-BN-ReLU6, the linear 1×1 conv, its BN),
    ``features.18`` 1×1 conv-BN-ReLU6 to 1280, ``classifier.1`` Linear(1280, 1000)."""
    keys.conv("features.0.0", 32, 3, 3)
    keys.bn("features.0.1", 32)
    index, in_ch = 1, 32
    for t, c, n, _ in MBV2_SETTINGS:
        for _ in range(n):
            name, hidden, step = f"features.{index}.conv", in_ch * t, 0
            if t != 1:
                keys.conv(f"{name}.0.0", hidden, in_ch, 1)
                keys.bn(f"{name}.0.1", hidden)
                step = 1
            keys.conv(f"{name}.{step}.0", hidden, hidden, 3, groups=hidden)
            keys.bn(f"{name}.{step}.1", hidden)
            keys.conv(f"{name}.{step + 1}", c, hidden, 1)
            keys.bn(f"{name}.{step + 2}", c)
            index, in_ch = index + 1, c
    keys.conv(f"features.{index}.0", 1280, in_ch, 1)
    keys.bn(f"features.{index}.1", 1280)
    keys.linear("classifier.1", 1000, 1280)


# --------------------------------------------------------------------------------------------------

CTDET_COCO = {"hm": 80, "wh": 2, "reg": 2}  # CenterNet opts: ctdet on COCO
MULTI_POSE_COCO = {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17, "hp_offset": 2}  # 17 COCO keypoints


def key_files() -> dict[str, dict[str, list[int]]]:
    """Every file: its name (without .json) → key → shape."""
    files = {}

    def build(name: str, batch_counter: bool, fill) -> None:
        keys = Keys(batch_counter)
        fill(keys)
        files[name] = keys.shapes

    build("centernet_dla34_ctdet", True, lambda k: centernet_dla34(k, CTDET_COCO))  # ctdet_coco_dla_2x.pth
    build("centernet_dla34_multi_pose", True, lambda k: centernet_dla34(k, MULTI_POSE_COCO))  # multi_pose_dla_3x
    build("centernet_resdcn18_ctdet", True, lambda k: centernet_resdcn18(k, CTDET_COCO))  # ctdet_coco_resdcn18
    build("imagenet_resnet18_torchvision", False, lambda k: (resnet18_body(k), k.linear("fc", 1000, 512)))
    build("imagenet_dla34_ucbdrive", False, dla34_base)  # dla34-ba72cf86.pth
    build("imagenet_mobilenet_v2_torchvision", False, mobilenet_v2)  # mobilenet_v2-b0353104.pth
    return files


def main() -> None:
    for name, shapes in key_files().items():
        text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items()) + "\n}\n"
        (HERE / f"{name}.json").write_text(text, encoding="utf-8")
        print(f"{name}.json: {len(shapes)} tensors")


if __name__ == "__main__":
    main()
