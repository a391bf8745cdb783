"""DeepFashion2 file IO (``deepmark.core.formats.df2``): annotation folders, prediction files, official results JSON.

Fixtures in ``tests/data``: ``official_example_{keys,bbox}_results.json`` are copies of the official
evaluator's examples (switchablenorms/DeepFashion2 ``evaluation/example``); the per-image annotation
sample follows the real file layout described in the DeepFashion2 README (raw key order ``item2, source,
pair_id, item1``, every item key present, unlabelled landmarks stored as 0, 0, 0) with invented values.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepmark.core.domain.structures import Detection, Item
from deepmark.core.domain.taxonomy import load_taxonomy
from deepmark.core.errors import EvaluationError
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator
from deepmark.core.formats.df2 import FileError, read_df2_annotations, read_predictions, write_results_json

DATA = Path(__file__).resolve().parents[2] / "data"
TAXONOMY = load_taxonomy()


def df2_item(category_id: int, box, landmarks: np.ndarray, score: float | None = None) -> dict:
    """An item dict as in the DF2 annotation files (plus ``score`` for prediction files)."""
    raw = {
        "category_id": category_id,
        "category_name": TAXONOMY.category(category_id).name,
        "bounding_box": list(box),
        "landmarks": np.asarray(landmarks).ravel().tolist(),
        "style": 0,
        "scale": 2,
        "occlusion": 1,
        "zoom_in": 1,
        "viewpoint": 2,
        "segmentation": [[box[0], box[1], box[2], box[1], box[2], box[3]]],
    }
    if score is not None:
        raw["score"] = score
    return raw


def write_image(folder: Path, image_id: int, items: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{image_id:06d}.json"
    doc = {"source": "shop", "pair_id": 7, **{f"item{i + 1}": it for i, it in enumerate(items)}}
    path.write_text(json.dumps(doc))
    return path


def landmarks(category_id: int, seed: int, third=(0, 1, 2)) -> np.ndarray:
    """(L, 3) landmarks with integer-valued x, y and a random third column from ``third``."""
    rng = np.random.default_rng(seed)
    n = TAXONOMY.category(category_id).num_landmarks
    lm = np.column_stack([rng.integers(0, 500, (n, 2)), rng.choice(third, n)]).astype(np.float64)
    lm[lm[:, 2] == 0] = 0.0
    return lm


# ---------------------------------------------------------------------------------------------
# Annotations


def test_reads_a_real_format_annotation_file(tmp_path):
    annos = tmp_path / "validation" / "annos"
    annos.mkdir(parents=True)
    shutil.copy(DATA / "df2_annos_000001_format_sample.json", annos / "000001.json")
    raw = json.loads((annos / "000001.json").read_text())
    # the parent dataset folder and the annos folder itself are both accepted
    for folder in (tmp_path / "validation", annos):
        gt, errors = read_df2_annotations(folder)
        assert errors == []
        assert list(gt) == [1]
        top, trousers = gt[1]  # item1 first, whatever the key order in the file
        assert (top.category_id, trousers.category_id) == (1, 8)
        np.testing.assert_array_equal(top.box, raw["item1"]["bounding_box"])
        assert top.landmarks.shape == (25, 3) and trousers.landmarks.shape == (14, 3)
        np.testing.assert_array_equal(trousers.landmarks.ravel(), raw["item2"]["landmarks"])
        assert set(np.unique(top.landmarks[:, 2])) == {0.0, 1.0, 2.0}
        assert (top.landmarks[top.landmarks[:, 2] == 0] == 0).all()


def test_annotation_round_trip(tmp_path):
    items = {
        3: [
            Item(1, np.array([10.0, 20, 200, 300]), landmarks(1, 0)),
            Item(9, np.array([0.0, 0, 5, 5]), landmarks(9, 1)),
        ],
        12: [Item(13, np.array([1.5, 2.5, 100.25, 400.0]), landmarks(13, 2))],
        40: [],
    }
    for image_id, its in items.items():
        write_image(tmp_path, image_id, [df2_item(it.category_id, it.box.tolist(), it.landmarks) for it in its])
    gt, errors = read_df2_annotations(tmp_path)
    assert errors == []
    assert list(gt) == [3, 12, 40]
    for image_id, its in items.items():
        assert [it.category_id for it in gt[image_id]] == [it.category_id for it in its]
        for got, want in zip(gt[image_id], its, strict=True):
            np.testing.assert_array_equal(got.box, want.box)
            np.testing.assert_array_equal(got.landmarks, want.landmarks)
            assert got.box.dtype == np.float64 and got.landmarks.dtype == np.float64


def test_malformed_annotation_files_are_reported_and_skipped(tmp_path):
    good = df2_item(7, [0, 0, 50, 50], landmarks(7, 0))
    write_image(tmp_path, 1, [good])
    (tmp_path / "000002.json").write_text('{"item1": {"category_id": 7,')  # truncated JSON
    write_image(tmp_path, 3, [good, {**good, "category_id": 14}])
    write_image(tmp_path, 4, [{**good, "landmarks": good["landmarks"][:-3]}])
    write_image(tmp_path, 5, [{**good, "bounding_box": [50, 0, 0, 50]}])
    write_image(tmp_path, 6, [{**good, "bounding_box": [0, 0, "50", 50]}])
    write_image(tmp_path, 7, [{**good, "landmarks": [*good["landmarks"][:-1], 5]}])
    write_image(tmp_path, 8, [{k: v for k, v in good.items() if k != "bounding_box"}])
    (tmp_path / "notes.json").write_text("{}")
    gt, errors = read_df2_annotations(tmp_path)
    assert list(gt) == [1]
    assert gt[1][0].category_id == 7
    messages = {e.path.name: e.message for e in errors}
    assert all(isinstance(e, FileError) and str(e).startswith(str(e.path)) for e in errors)
    assert "not valid JSON" in messages["000002.json"]
    assert "unknown category id 14" in messages["000003.json"]
    assert "27 landmark numbers, expected 3 × 10" in messages["000004.json"]
    assert "negative width or height" in messages["000005.json"]
    assert "non-numeric value '50'" in messages["000006.json"]
    assert "visibility must be 0, 1 or 2" in messages["000007.json"]
    assert "bounding_box must be a list of numbers" in messages["000008.json"]
    assert "not an image number" in messages["notes.json"]
    assert len(errors) == 8


def test_missing_folder_raises(tmp_path):
    with pytest.raises(EvaluationError, match="not a folder"):
        read_df2_annotations(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# Predictions


def test_reads_the_official_keypoints_results_example():
    raw = json.loads((DATA / "official_example_keys_results.json").read_text())
    dets, errors = read_predictions(DATA / "official_example_keys_results.json")
    assert errors == []
    assert list(dets) == [1, 2, 3, 4, 5]
    for entry in raw:
        (det,) = dets[entry["image_id"]]
        kp = np.asarray(entry["keypoints"]).reshape(294, 3)
        assert det.category_id == 1 and det.score == entry["score"] == det.box_score
        # short sleeve top: the first 25 of the 294 landmarks; v (= 1 here) is the landmark score
        np.testing.assert_array_equal(det.landmarks, kp[:25])
        # no bbox in this format: the box is the extent of the category's landmarks
        np.testing.assert_array_equal(det.box, [*kp[:25, :2].min(axis=0), *kp[:25, :2].max(axis=0)])
        assert det.refined.shape == (25,) and not det.refined.any()


def test_reads_the_official_bbox_results_example():
    raw = json.loads((DATA / "official_example_bbox_results.json").read_text())
    dets, errors = read_predictions(DATA / "official_example_bbox_results.json")
    assert errors == []
    for entry in raw:
        (det,) = dets[entry["image_id"]]
        x, y, w, h = entry["bbox"]
        np.testing.assert_allclose(det.box, [x, y, x + w, y + h])
        # box-only results: landmarks at the box centre with score 0
        np.testing.assert_allclose(det.landmarks[:, :2], np.tile([x + w / 2, y + h / 2], (25, 1)))
        assert (det.landmarks[:, 2] == 0).all()


def test_bad_result_entries_are_reported_and_skipped(tmp_path):
    good = {"image_id": 4, "category_id": 9, "score": 0.5, "bbox": [1, 2, 3, 4]}
    entries = [
        good,
        {**good, "score": None},
        {**good, "category_id": 0},
        {**good, "keypoints": [0.0] * 881},
        {"image_id": 4, "category_id": 9, "score": 0.5},
        {**good, "bbox": [1, 2, -3, 4]},
        {**good, "image_id": "4"},
        [1, 2],
        {**good, "image_id": 2, "score": 0.25},
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(entries))
    dets, errors = read_predictions(path)
    assert {k: [d.score for d in v] for k, v in dets.items()} == {2: [0.25], 4: [0.5]}
    messages = [e.message for e in errors]
    assert messages[0].startswith("entry 1: score must be a number")
    assert messages[1].startswith("entry 2: ") and "unknown category id 0" in messages[1]
    assert messages[2] == "entry 3: keypoints has 881 numbers, expected 882"
    assert messages[3] == "entry 4: has neither bbox nor keypoints"
    assert messages[4].startswith("entry 5: ") and "negative width" in messages[4]
    assert messages[5].startswith("entry 6: image_id must be an integer")
    assert messages[6].startswith("entry 7: expected an object")
    assert len(errors) == 7


def test_unreadable_results_file_is_one_error(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"image_id": 1}')
    assert read_predictions(path) == ({}, [FileError(path, "expected a JSON list of results, got dict")])
    path.write_text("[{")
    dets, errors = read_predictions(path)
    assert dets == {} and "not valid JSON" in errors[0].message
    with pytest.raises(EvaluationError, match="no such file"):
        read_predictions(tmp_path / "missing.json")


def test_reads_a_folder_of_per_image_predictions(tmp_path):
    lm = landmarks(5, 3, third=(0.0, 0.25, 0.9))
    write_image(tmp_path, 17, [df2_item(5, [1, 2, 30, 40], lm, score=0.75)])
    write_image(tmp_path, 18, [df2_item(5, [1, 2, 30, 40], lm)])  # no score
    dets, errors = read_predictions(tmp_path)
    (det,) = dets[17]
    assert (det.category_id, det.score, det.box_score) == (5, 0.75, 0.75)
    np.testing.assert_array_equal(det.box, [1, 2, 30, 40])
    np.testing.assert_array_equal(det.landmarks, lm)
    assert not det.refined.any()
    assert [e.path.name for e in errors] == ["000018.json"] and "score must be a number" in errors[0].message


def random_detections(seed: int) -> dict[int, list[Detection]]:
    rng = np.random.default_rng(seed)
    out = {}
    for image_id in (2, 5, 9):
        dets = []
        for _ in range(3):
            cat = int(rng.integers(1, 14))
            n = TAXONOMY.category(cat).num_landmarks
            x1, y1 = rng.uniform(0, 300, 2)
            box = np.array([x1, y1, x1 + rng.uniform(10, 200), y1 + rng.uniform(10, 200)])
            lm = np.column_stack([rng.uniform(x1, box[2], n), rng.uniform(y1, box[3], n), rng.uniform(0, 1, n)])
            score = float(rng.uniform())
            dets.append(Detection(cat, score, score, box, lm, np.zeros(n, bool)))
        out[image_id] = dets
    return out


def test_results_json_round_trip_and_atomic_write(tmp_path):
    dets = random_detections(0)
    path = tmp_path / "results.json"
    path.write_text("old content")
    write_results_json(path, dets)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # replaced, no temp file left
    entries = json.loads(path.read_text())
    assert len(entries) == 9 and set(entries[0]) == {"image_id", "category_id", "bbox", "score", "keypoints"}
    assert all(len(e["keypoints"]) == 882 for e in entries)
    back, errors = read_predictions(path)
    assert errors == [] and list(back) == [2, 5, 9]
    for image_id, originals in dets.items():
        for got, want in zip(back[image_id], originals, strict=True):
            assert (got.category_id, got.score) == (want.category_id, want.score)
            np.testing.assert_allclose(got.box, want.box, rtol=0, atol=1e-9)
            np.testing.assert_array_equal(got.landmarks, want.landmarks)  # landmark scores travel as v


def test_results_json_bad_detection_leaves_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old content")
    bad = Detection(1, 0.5, 0.5, np.array([0, 0, np.nan, 1]), np.zeros((25, 3)), np.zeros(25, bool))
    with pytest.raises(EvaluationError, match="not finite"):
        write_results_json(path, {1: [bad]})
    assert path.read_text() == "old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_written_results_evaluate_like_the_detections(tmp_path):
    # Files → evaluator: annotations written and read back, results written and read back, same metrics.
    dets = random_detections(1)
    gt = {}
    for image_id, its in dets.items():
        # ground truth near the first two detections: box moved 3 px, landmarks 2 px, all visible
        gt[image_id] = [
            Item(d.category_id, d.box + 3.0, np.column_stack([d.landmarks[:, :2] + 2.0, np.full(len(d.landmarks), 2)]))
            for d in its[:2]
        ]
        raw_items = [df2_item(it.category_id, it.box.tolist(), it.landmarks) for it in gt[image_id]]
        write_image(tmp_path / "annos", image_id, raw_items)
    write_results_json(tmp_path / "results.json", dets)
    gt_read, gt_errors = read_df2_annotations(tmp_path)
    dets_read, det_errors = read_predictions(tmp_path / "results.json")
    assert gt_errors == [] and det_errors == []
    direct = DeepFashion2Evaluator(gt).evaluate(dets)
    via_files = DeepFashion2Evaluator(gt_read).evaluate(dets_read)
    assert via_files == direct
    assert 0 < direct.map_box < 1 and 0 < direct.map_pt < 1
