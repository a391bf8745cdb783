"""CenterNet models: head layout, output shapes, init, export wrapper, gradients, export-friendly ops."""

import math

import pytest
import torch
from torch import nn

from deepmark.core.domain.structures import HEAD_NAMES, OUTPUT_STRIDE
from deepmark.core.domain.taxonomy import load_grouping
from deepmark.core.network import ARCHITECTURES, CenterNet, ExportWrapper, build_model, count_parameters
from deepmark.core.network.factory import input_multiple
from deepmark.core.network.layers import Upsample2x

# The backbone + heads CenterNets (inputs multiples of 32); the stacked hourglasses: test_hourglass.py.
ARCHS = tuple(arch for arch in ARCHITECTURES if input_multiple(arch) == 32)
# Leaf modules an int8-quantizable, BN-foldable graph may contain (Add, Concat and Resize are functional).
ALLOWED_LEAVES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.Identity, Upsample2x)


@pytest.fixture(scope="module")
def none_grouping(taxonomy):
    return load_grouping("none", taxonomy)


@pytest.fixture(scope="module")
def models(semantic62):
    """One semantic62 model per architecture, seeded, shared by the read-only tests."""
    torch.manual_seed(0)
    return {arch: build_model(arch, semantic62).eval() for arch in ARCHS}


def _run(model: nn.Module, h: int, w: int, batch: int = 1):
    with torch.no_grad():
        return model(torch.randn(batch, 3, h, w))


def test_architectures_registry():
    assert set(ARCHS) == {"resnet18", "mdla34", "mobilenetv2"}
    assert set(ARCHITECTURES) == set(ARCHS) | {"hourglass104", "hourglass_small"}
    assert all(isinstance(d, str) and d for d in ARCHITECTURES.values())


@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_semantic62(models, semantic62, arch):
    out = _run(models[arch], 64, 96, batch=2)
    assert isinstance(models[arch], CenterNet)
    assert tuple(out) == HEAD_NAMES
    expected = semantic62.head_channels()
    for name, t in out.items():
        assert t.shape == (2, expected[name], 64 // OUTPUT_STRIDE, 96 // OUTPUT_STRIDE), name
    assert sum(t.shape[1] for t in out.values()) == 205


@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_no_grouping(none_grouping, arch):
    model = build_model(arch, none_grouping, head_conv=16).eval()  # narrow heads: shapes only
    out = _run(model, 96, 64)
    channels = {name: t.shape[1] for name, t in out.items()}
    assert channels == {"hm": 13, "reg": 2, "wh": 2, "hps": 588, "hm_hp": 294, "hp_offset": 2}
    assert sum(channels.values()) == 901
    assert all(t.shape[-2:] == (24, 16) for t in out.values())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(256, 384), (320, 192), (32, 160)])
def test_non_square_inputs_give_exact_quarter_maps(models, arch, size):
    h, w = size
    out = _run(models[arch], h, w)
    assert all(t.shape[-2:] == (h // 4, w // 4) for t in out.values())


@pytest.mark.parametrize("size", [(64, 70), (48, 64)])
def test_input_not_multiple_of_32_is_rejected(models, size):
    with pytest.raises(ValueError, match="multiples of 32"):
        _run(models["mobilenetv2"], *size)


@pytest.mark.parametrize("arch", ARCHS)
def test_head_init(models, arch):
    heads = models[arch].heads
    for name in ("hm", "hm_hp"):
        bias = heads[name][-1].bias
        assert torch.allclose(bias, torch.full_like(bias, -2.19))
        assert torch.sigmoid(bias[0]).item() == pytest.approx(0.1, abs=0.001)
    for name in ("reg", "wh", "hps", "hp_offset"):
        for conv in (heads[name][0], heads[name][-1]):
            assert conv.weight.std().item() == pytest.approx(0.001, rel=0.2)
            assert torch.count_nonzero(conv.bias) == 0
    # Each head: conv3×3 → ReLU → conv1×1, default head width per CenterNet (DLA 256, the rest 64).
    hm = heads["hm"]
    assert hm[0].kernel_size == (3, 3) and isinstance(hm[1], nn.ReLU) and hm[2].kernel_size == (1, 1)
    assert hm[0].out_channels == (256 if arch == "mdla34" else 64)


@pytest.mark.parametrize("arch", ARCHS)
def test_heatmaps_start_near_one_tenth(semantic62, arch):
    # Train mode: BN normalises with batch statistics, as in the first training steps.
    torch.manual_seed(1)
    wrapper = ExportWrapper(build_model(arch, semantic62)).train()
    with torch.no_grad():
        hm, _, _, _, hm_hp, _ = wrapper(torch.randn(2, 3, 64, 64))
    assert hm.mean().item() == pytest.approx(0.1, abs=0.03)
    assert hm_hp.mean().item() == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize("arch", ARCHS)
def test_export_wrapper_tuple(models, arch):
    model = models[arch]
    wrapper = ExportWrapper(model).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        raw = model(x)
        out = wrapper(x)
    assert isinstance(out, tuple) and len(out) == len(HEAD_NAMES)
    assert wrapper.output_names == HEAD_NAMES
    for name, t in zip(HEAD_NAMES, out, strict=True):
        if name in ("hm", "hm_hp"):
            assert 0.0 <= t.min().item() and t.max().item() <= 1.0
            torch.testing.assert_close(t, raw[name].sigmoid())
        else:
            torch.testing.assert_close(t, raw[name])


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter(semantic62, arch):
    torch.manual_seed(2)
    model = build_model(arch, semantic62, head_conv=32).train()
    out = model(torch.randn(2, 3, 64, 64))
    sum(t.sum() for t in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    backbone_grads = [p.grad for p in model.backbone.parameters()]
    assert all(torch.isfinite(g).all() for g in backbone_grads)
    assert any(g.abs().sum() > 0 for g in backbone_grads)


@pytest.mark.parametrize("arch", ARCHS)
def test_only_export_friendly_modules(models, arch):
    model = models[arch]
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    leaves = [m for m in model.modules() if not list(m.children())]
    odd = {type(m).__name__ for m in leaves if not isinstance(m, ALLOWED_LEAVES)}
    assert not odd
    # Every BN directly follows a conv with the same width, so it folds into that conv.
    folded = 0
    for seq in (m for m in model.modules() if isinstance(m, nn.Sequential)):
        mods = list(seq)
        for prev, bn in zip(mods, mods[1:], strict=False):
            if isinstance(bn, nn.BatchNorm2d):
                assert isinstance(prev, nn.Conv2d) and prev.out_channels == bn.num_features
                folded += 1
    assert folded == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_unknown_arch_names_the_valid_ones(semantic62):
    with pytest.raises(ValueError, match="unknown architecture 'vgg16'") as info:
        build_model("vgg16", semantic62)
    assert all(name in str(info.value) for name in ARCHS)


def test_build_options(semantic62):
    model = build_model("mobilenetv2", "semantic62", head_conv=24, width_mult=0.5, upsample_mode="bilinear")
    assert model.config == {
        "arch": "mobilenetv2",
        "grouping": "semantic62",
        "num_groups": 62,
        "num_classes": 13,
        "head_conv": 24,
        "backbone_kwargs": {"width_mult": 0.5, "upsample_mode": "bilinear"},
    }
    assert model.heads["hps"][0].out_channels == 24
    out = _run(model.eval(), 64, 128)
    assert out["hm"].shape == (1, 13, 16, 32)
    assert count_parameters(model) < count_parameters(build_model("mobilenetv2", semantic62))
    with pytest.raises(ValueError, match="upsample_mode"):
        build_model("resnet18", semantic62, upsample_mode="bicubic")
    assert build_model("resnet18", semantic62, num_classes=3).head_channels["hm"] == 3


def test_count_parameters(models):
    for model in models.values():
        n = count_parameters(model)
        assert n == sum(p.numel() for p in model.parameters())
    assert 10e6 < count_parameters(models["resnet18"]) < 20e6
    assert 15e6 < count_parameters(models["mdla34"]) < 25e6
    assert count_parameters(models["mobilenetv2"]) < 4e6
    frozen = build_model("mobilenetv2", "semantic62")
    frozen.backbone.requires_grad_(False)
    assert count_parameters(frozen, trainable_only=True) == count_parameters(frozen.heads)


def test_dla34_base_matches_reference_size():
    from deepmark.core.network.dla import DLA

    # DLA-34's ImageNet model has 15.74 M parameters, 0.51 M of them in its 512→1000 classifier.
    assert math.isclose(count_parameters(DLA()), 15.23e6, rel_tol=0.01)


def test_torch_export_keeps_input_size_symbolic(models):
    # One exported graph must serve every H, W multiple of 32 (ONNX export builds on this graph).
    wrapper = ExportWrapper(models["mobilenetv2"]).eval()
    h, w = torch.export.Dim("h", min=1, max=64), torch.export.Dim("w", min=1, max=64)
    program = torch.export.export(wrapper, (torch.randn(1, 3, 64, 64),), dynamic_shapes={"x": {2: 32 * h, 3: 32 * w}})
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        got, want = program.module()(x), wrapper(x)
    for a, b in zip(got, want, strict=True):
        assert a.shape[-2:] == (24, 40)
        torch.testing.assert_close(a, b)
