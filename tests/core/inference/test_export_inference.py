"""Export to ONNX (fp32 and static int8), model-file checks, onnxruntime inference, batch prediction."""

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.cli.main import main
from deepmark.core.domain.structures import HEAD_NAMES, PostprocessParams
from deepmark.core.formats.model_file import ModelFileError, model_info, read_model_info
from deepmark.core.inference.detector import Detector, TestTimeAugmentation, flip_heads
from deepmark.core.network import ExportWrapper, build_model
from deepmark.core.training.export import export_onnx, quantize_int8


@pytest.fixture(scope="module")
def exported(tmp_path_factory, taxonomy, semantic62):
    torch.manual_seed(0)
    model = build_model("mobilenetv2", semantic62, head_conv=32).eval()
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_onnx(model, model_info("mobilenetv2", semantic62, taxonomy, (128, 96)), path)
    return model, path


@pytest.mark.parametrize("size", [(128, 96), (64, 160)])
def test_onnxruntime_matches_torch(exported, size):
    model, path = exported
    x = np.random.default_rng(0).normal(size=(2, 3, size[1], size[0])).astype(np.float32)
    with torch.no_grad():
        expected = [t.numpy() for t in ExportWrapper(model)(torch.from_numpy(x))]
    got = Detector(path, threads=1)._backend.run(x)
    for name, e, g in zip(HEAD_NAMES, expected, got, strict=True):
        assert g.shape == e.shape == (2, e.shape[1], size[1] // 4, size[0] // 4), name
        assert np.abs(e - g).max() < 1e-4, f"{name}: max abs diff {np.abs(e - g).max():.2e}"


def test_model_file_describes_itself(exported, taxonomy, semantic62):
    info = read_model_info(exported[1])
    assert info.grouping_name == "semantic62" and info.input_size == (128, 96) and info.color_order == "RGB"
    assert info.output_names == HEAD_NAMES and info.category_ids == taxonomy.category_ids
    np.testing.assert_array_equal(info.grouping(taxonomy).landmark_to_group, semantic62.landmark_to_group)


def test_bad_model_files(tmp_path, exported):
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="notes.onnx: not an ONNX model"):
        Detector(text)
    bare = onnx.load(str(exported[1]))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelFileError, match="bare.onnx: no DeepMark metadata"):
        Detector(tmp_path / "bare.onnx")
    renamed = onnx.load(str(exported[1]))
    renamed.graph.output[0].name = "heatmap"
    onnx.save(renamed, str(tmp_path / "renamed.onnx"))
    with pytest.raises(ModelFileError, match="outputs"):
        read_model_info(tmp_path / "renamed.onnx")
    with pytest.raises(ModelFileError, match="not found"):
        Detector(tmp_path / "missing.onnx")


@pytest.mark.parametrize("shape", [(37, 91), (200, 640), (500, 333), (96, 128)])
def test_inference_on_odd_sizes(exported, taxonomy, semantic62, shape):
    detector = Detector(exported[1], threads=1)
    image = np.random.default_rng(1).integers(0, 255, (*shape, 3), dtype=np.uint8)
    heads = detector.heads(image)
    assert heads.image_size == (shape[1], shape[0]) and heads.map_size == (24, 32)
    # The letterbox maps the whole image inside the map.
    corners = heads.image_to_map.apply(np.array([[0.0, 0.0], [shape[1], shape[0]]]))
    assert (corners >= -1e-6).all() and corners[1, 0] <= 32 + 1e-6 and corners[1, 1] <= 24 + 1e-6
    decode_detections(heads, PostprocessParams(score_threshold=0.0), taxonomy, semantic62)
    tta = detector.heads(image, TestTimeAugmentation(flip=True, scales=(0.85, 1.0, 1.1)))
    assert tta.map_size == heads.map_size and tta.hm.dtype == np.float32


def test_flip_heads_is_an_involution(exported, semantic62):
    heads = Detector(exported[1], threads=1).heads(np.zeros((96, 128, 3), np.uint8))
    twice = flip_heads(flip_heads(heads, semantic62.group_flip), semantic62.group_flip)
    for a, b in zip(heads.arrays().values(), twice.arrays().values(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_int8_model_runs_and_keeps_metadata(exported, tmp_path):
    rng = np.random.default_rng(2)
    calibration = [rng.normal(size=(3, 96, 128)).astype(np.float32) for _ in range(4)]
    out = quantize_int8(exported[1], tmp_path / "int8.onnx", calibration)
    assert read_model_info(out).precision == "int8"
    heads = Detector(out, threads=1).heads(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    assert heads.hm.shape == (13, 24, 32) and 0.0 <= heads.hm.min() and heads.hm.max() <= 1.0


def test_predict_cli_reports_a_corrupt_file_and_processes_the_rest(exported, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for k, shape in enumerate([(120, 90), (60, 200)]):
        cv2.imwrite(str(images / f"{k + 1:06d}.jpg"), np.full((*shape, 3), 120 + 40 * k, np.uint8))
    (images / "000003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "pred"
    code = main(["predict", str(images), "--out", str(out), "--model", str(exported[1]), "--heads", "--quiet",
                 "--set", "score_threshold=0.0", "--set", "max_detections=3"])
    captured = capsys.readouterr()
    assert code == 1
    assert "000003.jpg" in captured.err and "2 images" in captured.out
    doc = json.loads((out / "000001.json").read_text())
    assert doc["image_file"] == "000001.jpg" and len([k for k in doc if k.startswith("item")]) == 3
    assert sorted(p.name for p in (out / "heads").iterdir()) == ["000001.npz", "000002.npz"]
    assert not (out / "000003.json").exists()


def test_checkpoint_backend_matches_onnx(tmp_path, exported, semantic62):
    model, path = exported
    checkpoint = {"version": 1, "model": model.state_dict(), "arch": "mobilenetv2", "head_conv": 32,
                  "grouping": "semantic62", "input_size": [128, 96]}
    torch.save(checkpoint, tmp_path / "model.pt")
    image = np.random.default_rng(3).integers(0, 255, (70, 110, 3), dtype=np.uint8)
    a = Detector(tmp_path / "model.pt", threads=1).heads(image)
    b = Detector(path, threads=1).heads(image)
    for x, y in zip(a.arrays().values(), b.arrays().values(), strict=True):
        assert np.abs(x - y).max() < 1e-4
    assert Path(tmp_path / "model.pt").exists()
