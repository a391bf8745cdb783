"""The stacked hourglass: outputs per mode, input multiple, heads, export-friendly ops, and the public key names."""

import json

import pytest
import torch
from torch import nn

from deepmark.core.domain.structures import HEAD_NAMES, HEATMAP_HEADS
from deepmark.core.network import ARCHITECTURES, ExportWrapper, HourglassNet, build_model, input_multiple
from deepmark.core.network.layers import Upsample2x
from deepmark.core.util.resources import resource_path

HOURGLASSES = ("hourglass104", "hourglass_small")
ALLOWED_LEAVES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Identity, Upsample2x)


@pytest.fixture(scope="module")
def small(semantic62):
    torch.manual_seed(0)
    return build_model("hourglass_small", semantic62)


@pytest.fixture(scope="module")
def big(semantic62):
    """hourglass104 without its 780 MB of weights: shapes and names only."""
    with torch.device("meta"):
        return build_model("hourglass104", semantic62)


def _shapes(out: dict) -> dict:
    return {name: tuple(t.shape) for name, t in out.items()}


def test_every_architecture_reports_the_input_multiple_its_model_has(semantic62, big, small):
    assert set(HOURGLASSES) <= set(ARCHITECTURES)
    with torch.device("meta"):
        models = {arch: build_model(arch, semantic62) for arch in ARCHITECTURES}
    assert {arch: m.input_multiple for arch, m in models.items()} == {a: input_multiple(a) for a in ARCHITECTURES}
    assert big.input_multiple == small.input_multiple == 128
    assert input_multiple("not-registered") == 32  # building it names the unknown architecture


@pytest.mark.parametrize("size", [(128, 256), (256, 128), (384, 128)])
def test_eval_gives_the_last_stack_train_gives_every_stack(small, semantic62, size):
    h, w = size
    x = torch.randn(2, 3, h, w)
    expected = {name: (2, c, h // 4, w // 4) for name, c in semantic62.head_channels().items()}
    with torch.no_grad():
        evaluated = small.eval()(x)
        # train mode with BN on its running statistics: the same numbers as eval for the last stack
        small.train()
        for m in small.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        stacks = small(x)
    small.eval()
    assert isinstance(evaluated, dict) and tuple(evaluated) == HEAD_NAMES and _shapes(evaluated) == expected
    assert isinstance(stacks, list) and len(stacks) == small.num_stacks == 2
    assert all(tuple(s) == HEAD_NAMES and _shapes(s) == expected for s in stacks)
    for name in HEAD_NAMES:
        torch.testing.assert_close(stacks[-1][name], evaluated[name])
    assert not torch.allclose(stacks[0]["hm"], stacks[1]["hm"])  # two stacks, two predictions


@pytest.mark.parametrize("size", [(64, 64), (128, 96), (160, 256), (256, 192)])
def test_sizes_not_multiples_of_128_are_refused(small, size):
    with pytest.raises(ValueError, match="multiples of 128"), torch.no_grad():
        small.eval()(torch.randn(1, 3, *size))


def test_export_wrapper_reads_the_last_stack_in_either_mode(small):
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        heads = small.eval()(x)
        wrapped = ExportWrapper(small).eval()(x)
        trained = ExportWrapper(small).train()(x)
    small.eval()
    assert len(wrapped) == len(trained) == len(HEAD_NAMES)
    for name, t in zip(HEAD_NAMES, wrapped, strict=True):
        torch.testing.assert_close(t, heads[name].sigmoid() if name in HEATMAP_HEADS else heads[name])
    assert all(a.shape == b.shape for a, b in zip(wrapped, trained, strict=True))


@pytest.mark.parametrize("arch", HOURGLASSES)
def test_heads_per_stack_layout_and_init(semantic62, small, big, arch):
    model = small if arch == "hourglass_small" else big
    head_conv = 32 if arch == "hourglass_small" else 256
    for name, channels in semantic62.head_channels().items():
        per_stack = getattr(model, name)
        assert len(per_stack) == 2
        for head in per_stack:
            hidden, last = head[0].conv, head[1]
            assert hidden.kernel_size == (3, 3) and hidden.out_channels == head_conv and hidden.bias is not None
            assert isinstance(head[0].bn, nn.Identity) and last.kernel_size == (1, 1)
            assert last.out_channels == channels
            if arch == "hourglass_small" and name in HEATMAP_HEADS:
                assert torch.all(last.bias == -2.19)
            elif arch == "hourglass_small":
                assert torch.count_nonzero(last.bias) == 0 and last.weight.std().item() < 0.002


def test_heatmaps_start_near_one_tenth(semantic62):
    torch.manual_seed(1)
    wrapper = ExportWrapper(build_model("hourglass_small", semantic62)).train()
    with torch.no_grad():
        hm, _, _, _, hm_hp, _ = wrapper(torch.randn(2, 3, 128, 128))
    assert hm.mean().item() == pytest.approx(0.1, abs=0.03)
    assert hm_hp.mean().item() == pytest.approx(0.1, abs=0.03)


def test_gradients_reach_every_parameter_through_every_stack(semantic62):
    torch.manual_seed(2)
    model = build_model("hourglass_small", semantic62).train()
    stacks = model(torch.randn(2, 3, 128, 128))
    sum(t.sum() for out in stacks for t in out.values()).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("arch", HOURGLASSES)
def test_only_export_friendly_modules(small, big, arch):
    model = small if arch == "hourglass_small" else big
    leaves = [m for m in model.modules() if not list(m.children())]
    assert {type(m).__name__ for m in leaves if not isinstance(m, ALLOWED_LEAVES)} == set()
    assert isinstance(model, HourglassNet)


def test_build_options_and_config(semantic62):
    model = build_model("hourglass_small", "semantic62", num_classes=3, head_conv=16)
    assert model.config == {"arch": "hourglass_small", "grouping": "semantic62", "num_groups": 62, "num_classes": 3,
                            "head_conv": 16, "backbone_kwargs": {}}
    assert model.head_channels["hm"] == 3 and model.hm[0][0].conv.out_channels == 16
    with pytest.raises(ValueError, match="n ≥ 1"):
        HourglassNet(semantic62.head_channels(), n=3, dims=(8, 8), modules=(1, 1))


def _public(task: str) -> dict:
    """The public checkpoint's keys → shapes, and its heads → output channels (the last conv of each head)."""
    keys = json.loads(resource_path("pretrained_keys", f"centernet_hourglass104_{task}.json").read_text())
    heads = {k.split(".")[0]: shape[0] for k, shape in keys.items() if k.split(".")[0] in HEAD_NAMES
             and k.endswith(".1.weight")}
    return {"keys": keys, "heads": heads}


@pytest.mark.parametrize("task", ["multi_pose", "ctdet"])
def test_public_checkpoint_keys_map_one_to_one(big, task):
    """Every key and shape of CenterNet's public hourglass checkpoint is ours, except the heads whose
    channel count differs (their last 1×1 conv); a head public ctdet lacks (hps, hm_hp, hp_offset) is ours only."""
    public = _public(task)
    theirs = {k: tuple(v) for k, v in public["keys"].items()}
    ours = {k: tuple(v.shape) for k, v in big.state_dict().items()}
    heads = set(HEAD_NAMES)

    def trunk(keys):
        return {k: v for k, v in keys.items() if k.split(".")[0] not in heads}

    assert trunk(ours) == trunk(theirs) and len(trunk(ours)) > 900
    assert {k.split(".")[0] for k in theirs if k.split(".")[0] in heads} == set(public["heads"])
    for key, shape in theirs.items():
        head = key.split(".")[0]
        if head not in heads:
            continue
        assert key in ours, key  # every public head tensor has a place here
        if public["heads"][head] == big.head_channels[head] or ".0.conv." in key:
            assert ours[key] == shape, key  # loads as it is
        else:
            assert ours[key][1:] == shape[1:] and ours[key][0] == big.head_channels[head], key  # re-initialised
    only_ours = {k.split(".")[0] for k in set(ours) - set(theirs)}
    assert only_ours == heads - set(public["heads"])
