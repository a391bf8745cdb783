"""Initial weights from public checkpoints (issue 13, point 3): the name mapping, checked against the
public files' key names and shapes (resources/pretrained_keys/*.json, written from the public architecture
definitions), the report, one-line errors for wrong-arch / unknown / damaged files, and ``deepmark train``.

Each data file becomes a synthetic checkpoint of random tensors with exactly its keys and shapes, saved as
the public file is (CenterNet: ``{'epoch', 'state_dict'}``, with and without ``module.``; ImageNet: bare).
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from deepmark.core.domain.structures import HEAD_NAMES
from deepmark.core.network import ARCHITECTURES, build_model
from deepmark.core.network.heads import HEATMAP_BIAS
from deepmark.core.network.initial_weights import (
    BN_COUNTER,
    DCN_OFFSETS,
    MAPPINGS,
    InitialWeightsError,
    InitReport,
    Target,
    describe,
    format_report,
    load_initial_weights,
    read_state_dict,
    recognise_layout,
)

ROOT = Path(__file__).resolve().parents[3]
KEY_FILES = sorted((ROOT / "resources" / "pretrained_keys").glob("*.json"))
HEAD_CONV = {"mdla34": 256, "resnet18": 64, "mobilenetv2": 64}  # CenterNet's head_conv per backbone
# Our backbone tensors that have no public counterpart in a layout by design (everything else must load).
EXPECTED_RANDOM_BACKBONE = {
    "centernet_resdcn": r"backbone\.up\.\d\.2\.",  # the conv that stands in for a ConvTranspose, and its BN
    "imagenet_resnet": r"backbone\.up\.",  # a classifier has no up path
    "imagenet_dla34": r"backbone\.(dla_up|ida_up)\.",
    "imagenet_mobilenetv2": r"backbone\.(top|laterals|fuse)\.",
}


def _public_state(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the file's keys and shapes (BN variances positive, step counters integers)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith(BN_COUNTER):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator)
    return state


def _save_as_published(path: Path, state: dict, name: str, module_prefix: bool) -> Path:
    if name.startswith("centernet_"):
        state = {("module." if module_prefix else "") + k: v for k, v in state.items()}
        torch.save({"epoch": 140, "state_dict": state}, path)
    else:
        torch.save(state, path)
    return path


def _is_head(key: str) -> bool:
    """A head tensor: ours (``heads.hm.…``), CenterNet's or our Hourglass's (``hm.…``)."""
    return key.startswith("heads.") or key.split(".")[0] in HEAD_NAMES


def _arch_available(arch: str) -> bool:
    return arch in ARCHITECTURES


def _model(arch: str, head_conv: int | None = None):
    torch.manual_seed(1)
    return build_model(arch, "semantic62", head_conv=head_conv or HEAD_CONV.get(arch))


def test_every_public_layout_has_a_key_file():
    names = {p.stem for p in KEY_FILES}
    assert {"centernet_dla34_ctdet", "centernet_dla34_multi_pose", "centernet_resdcn18_ctdet",
            "imagenet_resnet18_torchvision", "imagenet_dla34_ucbdrive", "imagenet_mobilenet_v2_torchvision"} <= names
    for path in KEY_FILES:
        shapes = json.loads(path.read_text(encoding="utf-8"))
        assert shapes and all(isinstance(s, list) and all(isinstance(d, int) for d in s) for s in shapes.values())
        assert recognise_layout(shapes) is not None, path.name


@pytest.mark.parametrize("key_file", KEY_FILES, ids=lambda p: p.stem)
def test_public_checkpoint_loads_every_tensor_it_has_a_place_for(key_file, tmp_path):
    shapes = json.loads(key_file.read_text(encoding="utf-8"))
    # Some released CenterNet files were saved from nn.DataParallel: their keys start with "module.".
    module_prefix = "multi_pose" in key_file.stem
    layout = recognise_layout(shapes)
    if not _arch_available(layout.arch):
        pytest.skip(f"arch {layout.arch} is not built in this tree")
    public = _public_state(shapes)
    path = _save_as_published(tmp_path / f"{key_file.stem}.pth", public, key_file.stem, module_prefix)
    model = _model(layout.arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    report = load_initial_weights(model, path)
    after = model.state_dict()

    # The report partitions the public tensors (step counters aside) ...
    public_keys = {k for k in shapes if not k.endswith(BN_COUNTER)}
    reinit_public = {p for _, p, _, _ in report.reinitialised}
    listed = [*report.loaded.values(), *report.folded, *reinit_public, *report.unused]
    assert sorted(listed) == sorted(public_keys)
    assert report.public_count == len(public_keys)
    # ... and ours: every tensor is loaded, reinitialised or at random, exactly once.
    ours = [k for k in after if not k.endswith(BN_COUNTER)]
    reinit_ours = {o for o, *_ in report.reinitialised}
    assert sorted([*report.loaded, *reinit_ours, *report.random]) == sorted(ours)

    # Every backbone tensor of ours loads, except the parts the layout has no counterpart for.
    expected_random = EXPECTED_RANDOM_BACKBONE.get(layout.name)
    backbone = [k for k in ours if not _is_head(k)]
    assert backbone
    for key in backbone:
        if not (expected_random and re.match(expected_random, key)):
            assert key in report.loaded, f"{key} has a public counterpart but did not load"

    # The values landed: copied ones equal the public tensor, folded BN means are mean − conv bias.
    folded_into = {mean: bias for bias, mean in report.folded.items()}
    for mine, theirs in report.loaded.items():
        expected = public[theirs] - public[folded_into[mine]] if mine in folded_into else public[theirs]
        assert torch.equal(after[mine], expected.to(after[mine].dtype)), mine
    # Reinitialised and random tensors keep their own init (heads: the −2.19 heatmap bias).
    for mine in [*reinit_ours, *report.random]:
        assert torch.equal(after[mine], before[mine]), mine

    if layout.name.startswith("centernet_"):
        # Every public head tensor has its place (loaded or, where channels differ, reinitialised) ...
        public_heads = {k for k in public_keys if _is_head(k)}
        assert public_heads and not public_heads & set(report.unused)
        head_names = {k.split(".")[0] for k in public_heads}
        # ... COCO's 80 classes / 1 person class and 17 keypoints never fit 13 classes / 62 groups, and the
        # 2-channel size and offset heads load whole.
        reinit_heads = {theirs.split(".")[0] for _, theirs, _, _ in report.reinitialised}
        assert "hm" in reinit_heads and ("hps" in head_names) <= ({"hps", "hm_hp"} <= reinit_heads)
        assert {"wh", "reg"} <= {theirs.split(".")[0] for theirs in report.loaded.values()}
        for mine, theirs, _, _ in report.reinitialised:
            if theirs.startswith("hm.") and theirs.endswith("bias") and len(shapes[theirs]) == 1:
                assert torch.all(after[mine] == HEATMAP_BIAS), mine
        assert all(reason == DCN_OFFSETS for key, reason in report.unused.items() if "conv_offset_mask" in key)

    table = format_report(report)
    assert f"{len(report.loaded) + len(report.folded)} of {report.public_count} public tensors" in table
    assert str(path) in table and all(line.strip() for line in table.splitlines())


def test_head_conv_that_differs_from_centernets_reinitialises_the_first_head_conv(tmp_path):
    shapes = json.loads((ROOT / "resources/pretrained_keys/centernet_dla34_ctdet.json").read_text())
    path = _save_as_published(tmp_path / "dla.pth", _public_state(shapes), "centernet_dla34_ctdet", True)
    report = load_initial_weights(_model("mdla34", head_conv=64), path)
    reinit = {o: (mine_shape, theirs_shape) for o, _, mine_shape, theirs_shape in report.reinitialised}
    assert reinit["heads.wh.0.weight"] == ((64, 64, 3, 3), (256, 64, 3, 3))
    assert "heads.wh.0 256×64×3×3 → 64×64×3×3" in format_report(report)


def test_folding_a_conv_bias_into_the_batchnorm_mean_is_exact():
    """What the loader does with a DCN's bias: BN(conv(x) + b) with mean μ = BN(conv(x)) with mean μ − b."""
    torch.manual_seed(0)
    with_bias, bn = nn.Conv2d(4, 6, 3, padding=1, bias=True), nn.BatchNorm2d(6)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.normal_()
    bn.bias.data.normal_()
    plain = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    plain.weight.data.copy_(with_bias.weight.data)
    folded_bn = nn.BatchNorm2d(6)
    folded_bn.load_state_dict(bn.state_dict())
    folded_bn.running_mean.sub_(with_bias.bias.data)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(nn.Sequential(plain, folded_bn).eval()(x), nn.Sequential(with_bias, bn).eval()(x))


def test_hourglass_mapping_is_the_identity_after_module():
    fn = MAPPINGS[("centernet_hourglass104", "hourglass104")]
    for key in ("pre.0.conv.weight", "kps.0.up1.0.conv1.weight", "hm.0.1.bias", "hm.1.1.bias", "cnvs_.0.0.weight"):
        assert fn(key) == Target(key)
    assert recognise_layout(["pre.0.conv.weight", "kps.0.up1.0.conv1.weight", "cnvs.0.conv.weight"]).arch == \
        "hourglass104"


@pytest.mark.skipif(importlib.util.find_spec("deepmark.core.network.hourglass") is None,
                    reason="deepmark.core.network.hourglass is not in this tree yet")
def test_hourglass_checkpoint_loads_into_hourglass104(tmp_path):
    """A CenterNet Hourglass checkpoint with our Hourglass-104's own names loads every backbone tensor; the
    per-stack heads whose channels differ are reinitialised."""
    model = build_model("hourglass104", "semantic62")
    ours = model.state_dict()
    coco = {"hm": 80, "wh": 2, "reg": 2}
    public = {}
    for key, tensor in ours.items():
        shape = list(tensor.shape)
        if key.startswith("hm.") and key.endswith((".1.weight", ".1.bias")):  # each stack's last heatmap conv
            shape[0] = coco["hm"]
        public[key] = torch.randn(shape) if tensor.is_floating_point() else tensor.clone()
    public = {k: v for k, v in public.items() if k.split(".")[0] not in ("hps", "hm_hp", "hp_offset")}
    path = _save_as_published(tmp_path / "ctdet_coco_hg.pth", public, "centernet_hourglass104", True)
    report = load_initial_weights(model, path)
    heads = ("hm", "wh", "reg", "hps", "hm_hp", "hp_offset")
    for key in ours:
        if not key.endswith(BN_COUNTER) and key.split(".")[0] not in heads:
            assert key in report.loaded, key
    assert any(o.startswith("hm.") for o, *_ in report.reinitialised)


# -- errors: one line naming the file ------------------------------------------------------------------


def _one_line(exc: InitialWeightsError, path: Path) -> str:
    message = str(exc)
    assert "\n" not in message and str(path) in message and exc.path == path
    return message


@pytest.fixture(scope="module")
def untouched_models():
    """One model per arch for the tests where loading fails (a failed load leaves the model as it was)."""
    return {arch: _model(arch) for arch in ("resnet18", "mdla34", "mobilenetv2")}


@pytest.mark.parametrize("key_file", KEY_FILES, ids=lambda p: p.stem)
def test_a_file_for_another_arch_fits_nothing(key_file, tmp_path, untouched_models):
    shapes = json.loads(key_file.read_text(encoding="utf-8"))
    layout = recognise_layout(shapes)
    public = _public_state(shapes)
    path = _save_as_published(tmp_path / "public.pth", public, key_file.stem, False)
    for arch in ("resnet18", "mdla34", "mobilenetv2"):
        if arch == layout.arch:
            continue
        with pytest.raises(InitialWeightsError) as caught:
            load_initial_weights(untouched_models[arch], path)
        message = _one_line(caught.value, path)
        n = len([k for k in shapes if not k.endswith(BN_COUNTER)])
        assert f"0 of {n} tensors fit arch {arch}; this looks like a {describe(layout, public)}" in message
        assert f"it fits arch {layout.arch!r}" in message


def test_a_narrower_mobilenet_fits_nothing(tmp_path):
    shapes = json.loads((ROOT / "resources/pretrained_keys/imagenet_mobilenet_v2_torchvision.json").read_text())
    path = _save_as_published(tmp_path / "mbv2.pth", _public_state(shapes), "imagenet", False)
    torch.manual_seed(0)
    model = build_model("mobilenetv2", "semantic62", width_mult=0.5)
    with pytest.raises(InitialWeightsError, match=r"0 of 262 tensors fit arch mobilenetv2"):
        load_initial_weights(model, path)


class _Custom:  # a pickled object that only a full (code-running) unpickle could restore
    pass


def _damaged_files(tmp_path: Path) -> dict[str, Path]:
    shapes = json.loads((ROOT / "resources/pretrained_keys/imagenet_resnet18_torchvision.json").read_text())
    good = _save_as_published(tmp_path / "good.pth", _public_state(shapes), "imagenet", False)
    files = {
        "empty": b"",
        "zeros": b"\x00" * 4096,
        "text": b"<html>404 Not Found</html>\n",
        "truncated": good.read_bytes()[: good.stat().st_size // 2],
        "plain pickle": pickle.dumps({"conv1.weight": [1.0, 2.0]}),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.pth"
        paths[name].write_bytes(data)
    torch.save({"net": _Custom(), "w": torch.zeros(2)}, tmp_path / "objects.pth")
    paths["python objects"] = tmp_path / "objects.pth"
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    paths["a list"] = tmp_path / "list.pth"
    torch.save({"epoch": 3, "state_dict": {"lr": 0.1}}, tmp_path / "no_tensors.pth")
    paths["no tensors"] = tmp_path / "no_tensors.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3), "decoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    paths["unknown layout"] = tmp_path / "other.pth"
    paths["missing"] = tmp_path / "nothing-here.pth"
    paths["a folder"] = tmp_path
    return paths


def test_damaged_or_foreign_files_are_one_line_errors(tmp_path, untouched_models):
    expected = {
        "empty": "cannot read initial weights", "zeros": "cannot read initial weights",
        "text": "not a PyTorch checkpoint", "truncated": "cannot read initial weights",
        "plain pickle": "not a PyTorch checkpoint",
        "python objects": "holds Python objects besides tensors", "a list": "holds a list, not a state dict",
        "no tensors": "holds no tensors", "unknown layout": "not a checkpoint layout DeepMark knows",
        "missing": "not found", "a folder": "not found",
    }
    model = untouched_models["resnet18"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, path in _damaged_files(tmp_path).items():
        with pytest.raises(InitialWeightsError) as caught:
            load_initial_weights(model, path)
        assert re.search(expected[name], _one_line(caught.value, path)), (name, str(caught.value))
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), name  # model untouched


def test_read_state_dict_unwraps_and_strips(tmp_path):
    tensor = torch.ones(2)
    torch.save({"model": {"module.a.weight": tensor}}, tmp_path / "m.pth")
    assert list(read_state_dict(tmp_path / "m.pth")) == ["a.weight"]
    torch.save({"state_dict": {"module.b": tensor, "step": 3}, "epoch": 1}, tmp_path / "s.pth")
    assert list(read_state_dict(tmp_path / "s.pth")) == ["b"]


def test_report_lists_are_compact():
    report = InitReport(Path("x.pth"), "ImageNet ResNet (torchvision) checkpoint", "resnet18", 4,
                        loaded={"backbone.stem.0.0.weight": "conv1.weight"},
                        unused={"fc.weight": "ImageNet classifier", "fc.bias": "ImageNet classifier"},
                        random=[f"backbone.up.{i}.{j}.0.weight" for i in range(3) for j in (0, 2)])
    table = format_report(report)
    assert "ImageNet classifier (2): fc (2)" in table
    assert "backbone.up.*.*.* (6)" in table


# -- deepmark train with init ------------------------------------------------------------------------


def test_deepmark_train_prints_the_table_and_resume_ignores_init(tmp_path, monkeypatch, capsys):
    from deepmark.core.cli.main import main
    from deepmark.core.synthetic import SynthConfig, generate_dataset

    generate_dataset(tmp_path / "data" / "train", 4, seed=3, config=SynthConfig(image_size=(128, 128), max_items=2))
    shapes = json.loads((ROOT / "resources/pretrained_keys/imagenet_mobilenet_v2_torchvision.json").read_text())
    (tmp_path / "weights").mkdir()
    _save_as_published(tmp_path / "weights" / "mobilenet_v2-b0353104.pth", _public_state(shapes), "imagenet", False)
    config = tmp_path / "run.toml"
    config.write_text(
        '[data]\ntrain = "data/train"\ninput_size = [128, 128]\n'
        '[model]\narch = "mobilenetv2"\nhead_conv = 32\ninit = "weights/mobilenet_v2-b0353104.pth"\n'
        '[train]\nepochs = 1\nbatch_size = 2\nmax_steps_per_epoch = 2\nworkers = 0\nval_images = 0\n'
        '[output]\nrun_dir = "run"\n', encoding="utf-8")

    # The real command, in a process of its own: relative paths are taken from where it runs.
    first = subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", "train", str(config), "--quiet"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "ImageNet MobileNetV2 (torchvision) checkpoint → mobilenetv2" in first.stdout
    assert "loaded            255 of 262 public tensors" in first.stdout
    assert "ImageNet classifier (2): classifier.1 (2)" in first.stdout
    assert "finished 1 epochs (2 steps)" in first.stdout
    assert "255 of 262 public tensors" in (tmp_path / "run" / "train.log").read_text(encoding="utf-8")

    monkeypatch.chdir(tmp_path)
    assert main(["train", str(config), "--quiet"]) == 0  # resumes from last.pt (nothing left to do)
    out = capsys.readouterr().out
    assert "init = " in out and "is ignored" in out and "public tensors" not in out
    assert "is ignored" in (tmp_path / "run" / "train.log").read_text(encoding="utf-8")

    # a DeepMark checkpoint of that run starts another (fine-tuning): our names as they are, with a run of
    # another grouping keeping its own landmark heads
    finetune = tmp_path / "finetune.toml"
    finetune.write_text(config.read_text().replace('init = "weights/mobilenet_v2-b0353104.pth"', 'init = "run/last.pt"')
                        .replace('run_dir = "run"', 'run_dir = "run2"')
                        .replace('input_size = [128, 128]', 'input_size = [128, 128]\ngrouping = "none"'),
                        encoding="utf-8")
    assert main(["train", str(finetune), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "DeepMark mobilenetv2 checkpoint → mobilenetv2" in out
    assert "heads.hps" in out and "heads.hm_hp" in out  # 124 → 588 and 62 → 294 channels: reinitialised
    model = _model("mobilenetv2", 32)
    report = load_initial_weights(model, tmp_path / "run" / "last.pt")
    assert not report.random and not report.reinitialised and not report.unused

    config.write_text(config.read_text().replace('arch = "mobilenetv2"', 'arch = "resnet18"'), encoding="utf-8")
    assert main(["train", str(config), "--quiet", "--restart"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mobilenet_v2-b0353104.pth: 0 of 262 tensors fit arch resnet18" in err


def test_half_precision_files_load_as_float32(tmp_path):
    shapes = json.loads((ROOT / "resources/pretrained_keys/imagenet_mobilenet_v2_torchvision.json").read_text())
    public = {k: v.half() for k, v in _public_state(shapes).items()}
    path = _save_as_published(tmp_path / "half.pth", public, "imagenet", False)
    model = _model("mobilenetv2")
    report = load_initial_weights(model, path)
    weight = model.state_dict()["backbone.encoder.stem.0.weight"]
    assert weight.dtype == torch.float32 and torch.equal(weight, public["features.0.0.weight"].float())
    assert len(report.loaded) == 255


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad_value, untouched_models):
    shapes = json.loads((ROOT / "resources/pretrained_keys/centernet_resdcn18_ctdet.json").read_text())
    public = _public_state(shapes)
    public["layer3.1.bn2.running_var"][5] = bad_value
    path = _save_as_published(tmp_path / "diverged.pth", public, "centernet_resdcn18_ctdet", True)
    with pytest.raises(InitialWeightsError) as caught:
        load_initial_weights(untouched_models["resnet18"], path)
    message = _one_line(caught.value, path)
    assert "1 tensor(s) hold NaN or infinite values, e.g. layer3.1.bn2.running_var" in message


def test_resnet_depth_is_read_from_the_keys(tmp_path):
    shapes = json.loads((ROOT / "resources/pretrained_keys/imagenet_resnet18_torchvision.json").read_text())
    state = _public_state(shapes)
    assert describe(recognise_layout(state), state) == "ImageNet ResNet-18 (torchvision) checkpoint"
    # ResNet-34: [3, 4, 6, 3] basic blocks; its extra blocks have no counterpart in our ResNet-18.
    resnet34 = dict(state)
    for layer, blocks, ch in ((1, 3, 64), (2, 4, 128), (3, 6, 256), (4, 3, 512)):
        for block in range(2, blocks):
            for conv in (1, 2):
                resnet34[f"layer{layer}.{block}.conv{conv}.weight"] = torch.randn(ch, ch, 3, 3)
                for param in ("weight", "bias", "running_mean", "running_var"):
                    resnet34[f"layer{layer}.{block}.bn{conv}.{param}"] = torch.rand(ch) + 0.5
    assert describe(recognise_layout(resnet34), resnet34) == "ImageNet ResNet-34 (torchvision) checkpoint"
    torch.save(resnet34, tmp_path / "resnet34.pth")
    report = load_initial_weights(_model("resnet18"), tmp_path / "resnet34.pth")
    assert len(report.loaded) == 100 and not report.reinitialised
    assert sorted(report.unused.values()) == ["ImageNet classifier"] * 2 + ["no counterpart in resnet18"] * 80
