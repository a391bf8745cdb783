"""Every error about a file carries that file as ``path`` (callers read it there, never out of the
message), and the message still names it. One case per kind of file and way it can be wrong."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from deepmark.core.errors import DeepMarkError

GARBAGE = b"\x00\x01 this is not the file you are looking for \xff\xfe"


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _project(path: Path) -> Path:
    from deepmark.core.store import Project

    Project.create(path).close()
    return path


def _heads_without(tmp: Path, key: str) -> Path:
    from deepmark.core.formats.heads_file import save_heads
    from deepmark.core.synthetic.simulate import random_scene, simulated_heads

    saved = save_heads(tmp / "full.npz", simulated_heads(random_scene(np.random.default_rng(0), _taxonomy(), (64, 64)),
                                                          (64, 64), _taxonomy(), _grouping()))
    with np.load(saved) as data:
        arrays = {k: data[k] for k in data.files if k != key}
    np.savez(tmp / "partial.npz", **arrays)
    return tmp / "partial.npz"


def _taxonomy():
    from deepmark.core.domain.taxonomy import load_taxonomy
    return load_taxonomy()


def _grouping():
    from deepmark.core.domain.taxonomy import load_grouping
    return load_grouping("semantic62", _taxonomy())


def _onnx_without_metadata(tmp: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), tmp / "plain.onnx")
    return tmp / "plain.onnx"


def _newer_project(tmp: Path) -> Path:
    path = _project(tmp / "newer.deepmark")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = 'from_the_future'")
    return path


def _cases() -> dict[str, tuple[type[DeepMarkError] | str, Callable[[Path], tuple[Path, Callable[[], object]]]]]:
    """name → (error type or its dotted name, make(tmp) → (the file at fault, the call that reads it))."""
    from deepmark.core.cli.params import read_params_file
    from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
    from deepmark.core.formats.df2 import read_coco_keypoints, read_df2_annotations, read_predictions
    from deepmark.core.formats.heads_file import load_heads
    from deepmark.core.formats.model_file import read_model_info
    from deepmark.core.imaging.read import image_size, read_image
    from deepmark.core.inference.detector import Detector
    from deepmark.core.network.checkpoint import load_checkpoint
    from deepmark.core.store import Project
    from deepmark.core.store.images import file_facts
    from deepmark.core.store.sources import df2_splits, read_coco_source, read_df2_file
    from deepmark.core.studio.thumbnails import make_thumbnail
    from deepmark.core.training.config import load_config
    from deepmark.core.training.dataset import DF2Dataset

    def missing(name):
        return lambda tmp: tmp / name

    def garbage(name):
        return lambda tmp: _write(tmp / name, GARBAGE)

    def case(error, make_file, read):
        return error, lambda tmp: (lambda f: (f, lambda: read(f)))(make_file(tmp))

    return {
        "heads: missing": case("HeadsFileError", missing("h.npz"), load_heads),
        "heads: corrupt": case("HeadsFileError", garbage("h.npz"), load_heads),
        "heads: not raw heads": case("HeadsFileError", lambda t: _heads_without(t, "hm"), load_heads),
        "model: missing": case("ModelFileError", missing("m.onnx"), read_model_info),
        "model: not ONNX": case("ModelFileError", garbage("m.onnx"), read_model_info),
        "model: no DeepMark metadata": case("ModelFileError", _onnx_without_metadata, read_model_info),
        "detector: not ONNX": case("ModelFileError", garbage("m.onnx"), Detector),
        "checkpoint: missing": case("CheckpointError", missing("c.pt"), load_checkpoint),
        "checkpoint: corrupt": case("CheckpointError", garbage("c.pt"), load_checkpoint),
        "image: missing": case("ImageError", missing("i.jpg"), read_image),
        "image: empty": case("ImageError", lambda t: _write(t / "i.jpg", b""), read_image),
        "image: corrupt": case("ImageError", garbage("i.jpg"), read_image),
        "image header: corrupt": case("ImageError", garbage("i.png"), image_size),
        "thumbnail: corrupt": case("ImageError", garbage("i.jpg"), make_thumbnail),
        "config: missing": case("ConfigError", missing("run.toml"), load_config),
        "config: not TOML": case("ConfigError", lambda t: _write(t / "run.toml", "[data"), load_config),
        "config: unknown section": case("ConfigError", lambda t: _write(t / "run.toml", "[nope]\n"), load_config),
        "config: wrong value type": case("ConfigError", lambda t: _write(t / "run.toml", '[data]\ntrain = "x"\n'
                                                                                        "[train]\nepochs = 'ten'\n"),
                                         load_config),
        "taxonomy: missing": case("TaxonomyError", missing("tax.json"), load_taxonomy),
        "taxonomy: not JSON": case("TaxonomyError", garbage("tax.json"), load_taxonomy),
        "grouping: wrong length": case("TaxonomyError", lambda t: _write(t / "g.json", '{"landmark_to_group": [0]}'),
                                       lambda f: load_grouping(str(f), _taxonomy())),
        "annotations: not a folder": case("EvaluationError", missing("annos"), read_df2_annotations),
        "predictions: missing": case("EvaluationError", missing("r.json"), read_predictions),
        "COCO: not COCO": case("EvaluationError", garbage("c.json"), read_coco_keypoints),
        "dataset: no image folder": case("DatasetError", lambda t: _folder(t / "ds") / "image",
                                         lambda f: DF2Dataset(f.parent, _taxonomy(), _grouping(), (64, 64))),
        "parameters: not JSON": case("DecodeError", garbage("p.json"), read_params_file),
        "parameters: not an object": case("DecodeError", lambda t: _write(t / "p.json", "[1]"), read_params_file),
        "parameters: wrong type": case("DecodeError", lambda t: _write(t / "p.json", '{"top_k": 2.5}'),
                                       read_params_file),
        "store: image missing": case("StoreError", missing("i.jpg"), file_facts),
        "store: image corrupt": case("StoreError", garbage("i.jpg"), file_facts),
        "store: no project file": case("NotAProjectError", missing("p.deepmark"), Project.open),
        "store: not SQLite": case("NotAProjectError", garbage("p.deepmark"), Project.open),
        "store: a folder, not a project": case("NotAProjectError", lambda t: _folder(t / "d.deepmark"), Project.open),
        "store: newer schema": case("SchemaVersionError", _newer_project, Project.open),
        "store: project exists": case("StoreError", lambda t: _project(t / "p.deepmark"), Project.create),
        "store: DF2 source not a folder": case("StoreError", missing("df2"), df2_splits),
        "store: DF2 file not JSON": case("StoreError", garbage("annos/000001.json"),
                                         lambda f: read_df2_file(f, f.parent, _taxonomy())),
        "store: COCO not COCO": case("StoreError", garbage("c.json"), lambda f: read_coco_source(f, None, _taxonomy())),
    }


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_an_error_about_a_file_carries_the_file(tmp_path, name):
    error_type, make = CASES[name]
    file, read = make(tmp_path)
    with pytest.raises(DeepMarkError) as caught:
        read()
    assert error_type in [c.__name__ for c in type(caught.value).__mro__], type(caught.value)
    assert caught.value.path == Path(file), f"{name}: path {caught.value.path}, message {caught.value}"
    assert str(file) in str(caught.value)  # and the message still names it


def test_a_report_line_names_its_file_once(tmp_path, taxonomy, semantic62):
    """Errors re-reported per file (a FileError from the error) name the file once, not "f: f: why"."""
    from deepmark.core.formats.df2 import FileError
    from deepmark.core.training.dataset import DF2Dataset

    root = tmp_path / "ds"
    annos, images = root / "annos", root / "image"
    annos.mkdir(parents=True)
    images.mkdir()
    (annos / "000001.json").write_text(json.dumps({"source": "user", "pair_id": 1}))
    bad = _write(images / "000001.jpg", GARBAGE)
    errors = DF2Dataset(root, taxonomy, semantic62, (64, 64)).validate_images()
    assert [e.path for e in errors] == [bad]
    assert str(errors[0]).count(str(bad)) == 1 and str(errors[0]).startswith(f"{bad}: ")
    plain = FileError.from_error(ValueError("no file in this one"), bad)
    assert str(plain) == f"{bad}: no file in this one"


def test_coco_entries_are_told_by_index_not_by_message(tmp_path, taxonomy):
    from deepmark.core.formats.df2 import read_coco_keypoints

    annotation = {"image_id": 1, "category_id": 99, "bbox": [0, 0, 1, 1], "keypoints": [0] * 882}
    path = _write(tmp_path / "c.json", json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}],
                                                   "annotations": [dict(annotation, category_id=1), annotation]}))
    _, _, errors = read_coco_keypoints(path, taxonomy)
    assert [(e.path, e.entry) for e in errors] == [(path, 1)]
