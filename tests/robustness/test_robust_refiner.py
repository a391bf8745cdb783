"""Bad refiner files: every kind gives one line naming the file — from the API (RefinerFileError, a
ModelFileError) and from `deepmark predict --refine` (exit status 2, one error line, nothing written)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepmark.core.formats.model_file import ModelFileError
from deepmark.core.inference.detector import default_model_path
from deepmark.core.refinement.runner import REFINER_METADATA_KEY, Refiner, RefinerFileError

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


def _rewrite(source: Path, target: Path, edit) -> Path:
    import onnx

    model = onnx.load(str(source))
    edit(model)
    onnx.save(model, str(target))
    return target


def _metadata(edit_data):
    def edit(model):
        for prop in model.metadata_props:
            if prop.key == REFINER_METADATA_KEY:
                data = json.loads(prop.value)
                prop.value = edit_data(data) if callable(edit_data) else edit_data
    return edit


def _drop_metadata(model):
    del model.metadata_props[:]


def _rename_input(model):
    for node in model.graph.node:
        node.input[:] = ["pose_map" if name == "pose" else name for name in node.input]
    model.graph.input[1].name = "pose_map"


def _set(key, value):
    def edit(data):
        data[key] = value
        return json.dumps(data)
    return edit


def _drop(key):
    def edit(data):
        del data[key]
        return json.dumps(data)
    return edit


def _bytes(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path


BAD = {
    "empty": lambda good, p: _bytes(b"", p),
    "text": lambda good, p: _bytes(b"not a model\n", p),
    "truncated": lambda good, p: _bytes(good.read_bytes()[:5000], p),
    "missing": lambda good, p: p,
    "detector": lambda good, p: default_model_path(),
    "no metadata": lambda good, p: _rewrite(good, p, _drop_metadata),
    "metadata not JSON": lambda good, p: _rewrite(good, p, _metadata("{oops")),
    "other version": lambda good, p: _rewrite(good, p, _metadata(_set("version", 99))),
    "field missing": lambda good, p: _rewrite(good, p, _metadata(_drop("crop_size"))),
    "bad crop size": lambda good, p: _rewrite(good, p, _metadata(_set("crop_size", [50, 64]))),
    "crop size not the graph's": lambda good, p: _rewrite(good, p, _metadata(_set("crop_size", [96, 128]))),
    "unknown field": lambda good, p: _rewrite(good, p, _metadata(_set("colour", "red"))),
    "blend out of range": lambda good, p: _rewrite(good, p, _metadata(_set("blend", 1.5))),
    "bad grouping": lambda good, p: _rewrite(good, p, _metadata(_set("landmark_to_group", [0] * 294))),
    "wrong input": lambda good, p: _rewrite(good, p, _rename_input),
}


@pytest.fixture(params=sorted(BAD))
def bad_refiner(request, refiner_onnx, tmp_path):
    return BAD[request.param](refiner_onnx, tmp_path / "bad-refiner.onnx")


def test_api_one_line_naming_the_file(bad_refiner):
    with pytest.raises(RefinerFileError) as caught:
        Refiner(bad_refiner, threads=1)
    assert isinstance(caught.value, ModelFileError)
    message = str(caught.value)
    assert "\n" not in message and str(bad_refiner) in message and len(message) < 1000


@pytest.mark.parametrize("kind", ["text", "detector", "no metadata", "wrong input"])
def test_predict_refine_with_a_bad_file(kind, refiner_onnx, tmp_path):
    bad = BAD[kind](refiner_onnx, tmp_path / "bad-refiner.onnx")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", "predict", str(DEMO / "image"), "--out",
                          str(out), "--refine", str(bad), "--quiet"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad) in errors[0] and "Traceback" not in run.stderr
    assert not out.exists() or not any(out.iterdir())
