"""The command line uses the model's own post-processing parameters by default (as the app does), says which
set it used, lets ``--params`` / ``--set`` override them, and exports them to a file."""

import json
import shutil
from dataclasses import asdict

import pytest

from deepmark.core.cli.main import main
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.studio.display import demo_folder


def _counts(folder) -> dict[str, int]:
    """Detections per prediction file of a ``deepmark predict`` output folder."""
    return {p.name: sum(k.startswith("item") for k in json.loads(p.read_text())) for p in folder.glob("*.json")}


@pytest.fixture
def tuned_model(tmp_path, tiny_onnx):
    """The tiny model with its own parameters stored: every candidate kept (score 0), at most 3 per image."""
    model = tmp_path / "tuned.onnx"
    shutil.copy(tiny_onnx, model)
    assert main(["model-params", str(model), "--set", "score_threshold=0", "--set", "max_detections=3",
                 "--set", "nms=false"]) == 0
    return model


def test_predict_uses_the_models_own_parameters_and_says_so(tuned_model, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", str(demo_folder() / "image"), "--model", str(tuned_model), "--out", str(out),
                 "--quiet"]) == 0
    assert "post-processing: tuned.onnx's own tuned parameters" in capsys.readouterr().err
    assert set(_counts(out).values()) == {3}
    # --set overrides one field of the model's set; the rest stays the model's
    again = tmp_path / "pred1"
    assert main(["predict", str(demo_folder() / "image"), "--model", str(tuned_model), "--out", str(again),
                 "--quiet", "--set", "max_detections=1"]) == 0
    assert "then --set max_detections=1" in capsys.readouterr().err
    assert set(_counts(again).values()) == {1}


def test_a_model_without_parameters_uses_the_papers_values_and_says_so(tiny_onnx, tmp_path, capsys):
    assert main(["predict", str(demo_folder() / "image" / "000001.jpg"), "--model", str(tiny_onnx), "--out",
                 str(tmp_path / "p"), "--quiet"]) == 0
    assert "the paper's values, all four techniques + NMS" in capsys.readouterr().err


def test_decode_uses_the_parameters_stored_with_the_heads(tuned_model, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", str(demo_folder() / "image"), "--model", str(tuned_model), "--out", str(out),
                 "--quiet", "--heads"]) == 0
    results = tmp_path / "results.json"
    capsys.readouterr()
    assert main(["decode", str(out / "heads"), "--out", str(results)]) == 0
    assert "tuned.onnx's own tuned parameters (stored with the heads)" in capsys.readouterr().err
    per_image: dict[int, int] = {}
    for entry in json.loads(results.read_text()):
        per_image[entry["image_id"]] = per_image.get(entry["image_id"], 0) + 1
    assert set(per_image.values()) == {3}  # what predict wrote, from the same parameters
    # --model names another model's parameters instead
    plain = tmp_path / "plain.json"
    assert main(["decode", str(out / "heads"), "--out", str(plain), "--model", str(tuned_model),
                 "--set", "max_detections=2"]) == 0
    assert "then --set max_detections=2" in capsys.readouterr().err
    assert len(json.loads(plain.read_text())) == 2 * len(per_image)


def test_model_params_export_writes_what_the_model_uses(tuned_model, tiny_onnx, tmp_path, capsys):
    exported = tmp_path / "p.json"
    assert main(["model-params", str(tuned_model), "--export", str(exported)]) == 0
    assert "own tuned parameters" in capsys.readouterr().out
    values = json.loads(exported.read_text())
    assert values["max_detections"] == 3 and values["score_threshold"] == 0 and values["nms"] is False
    assert set(values) == set(asdict(PostprocessParams()))  # a complete set
    # a model that names none exports the paper's values, and exporting stores nothing in it
    before = tiny_onnx.read_bytes()
    assert main(["model-params", str(tiny_onnx), "--export", str(exported)]) == 0
    assert json.loads(exported.read_text()) == asdict(PostprocessParams.all_techniques())
    assert tiny_onnx.read_bytes() == before
    # the exported file as --params reproduces the model's own set on another model
    out = tmp_path / "pred"
    assert main(["model-params", str(tuned_model), "--export", str(exported)]) == 0
    assert main(["predict", str(demo_folder() / "image"), "--model", str(tiny_onnx), "--out", str(out),
                 "--quiet", "--params", str(exported)]) == 0
    assert set(_counts(out).values()) == {3}


def test_model_params_with_nothing_to_do_is_refused(tuned_model, capsys):
    assert main(["model-params", str(tuned_model)]) == 2
    assert "nothing to do" in capsys.readouterr().err
