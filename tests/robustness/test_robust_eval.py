"""``deepmark eval`` against plain pycocotools (the official DeepFashion2 evaluator: COCOeval on the keypoint
iouType with the 294 sigmas) on hand-made ground truth that holds items without any labelled landmark.

The rule under test (``deepmark.core.formats.coco.result_entries``): a results file in the official format
(each detection's 294 × 3 keypoints) is evaluated with the keypoints the file gives, other categories' slots
(zeros) included, so the numbers are the official ones; detections that carry no such points (per-image
prediction folders, in-memory detections) get the box centre in those slots. Both are compared with plain
pycocotools, on a COCO ground truth built here independently of the project's converter.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from deepmark.core.domain.structures import Detection, Item
from deepmark.core.domain.taxonomy import load_taxonomy
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator
from deepmark.core.formats.df2 import read_df2_annotations, read_predictions

TAXONOMY = load_taxonomy()
N = TAXONOMY.num_landmarks


# ---------------------------------------------------------------------------------------------
# Hand-made sets


def _grid(category_id: int, box) -> np.ndarray:
    """(L, 2) points on a grid strictly inside ``box``."""
    n = TAXONOMY.category(category_id).num_landmarks
    x1, y1, x2, y2 = box
    u = (np.arange(n) % 5 + 1) / 6.0
    w = (np.arange(n) // 5 + 1) / (n // 5 + 2)
    return np.column_stack([x1 + u * (x2 - x1), y1 + w * (y2 - y1)])


def _scene(seed: int) -> tuple[dict[int, list[Item]], dict[int, list[Detection]]]:
    """~10 images; about a third of the items have no labelled landmark (every v = 0, stored 0, 0, 0), the
    others mixed visibilities. Detections: noisy ones on most items (sometimes of another category, some
    with higher scores on the unlabelled items), and spurious ones."""
    rng = np.random.default_rng(seed)
    gt: dict[int, list[Item]] = {}
    dets: dict[int, list[Detection]] = {}
    for image_id in range(1, 11):
        items, found = [], []
        for _ in range(int(rng.integers(1, 4))):
            cat = int(rng.integers(1, 14))
            x1, y1 = rng.uniform(20, 500, 2)
            box = np.array([x1, y1, x1 + rng.uniform(40, 300), y1 + rng.uniform(40, 300)])
            lm = np.column_stack([_grid(cat, box), rng.choice([0.0, 1.0, 2.0], TAXONOMY.category(cat).num_landmarks,
                                                              p=[0.2, 0.3, 0.5])])
            if rng.uniform() < 0.35 or image_id == 1:
                lm[:, 2] = 0  # no labelled landmark: ignored for landmark AP
            lm[lm[:, 2] == 0] = 0.0
            items.append(Item(cat, box, lm))
            for _ in range(int(rng.integers(0, 3))):
                noisy = box + rng.normal(0, 5, 4)
                noisy[2:] = np.maximum(noisy[2:], noisy[:2] + 2)
                det_cat = cat if rng.uniform() < 0.85 else int(rng.integers(1, 14))
                pts = _grid(det_cat, box) + rng.normal(0, 3, (TAXONOMY.category(det_cat).num_landmarks, 2))
                found.append(_detection(det_cat, noisy, float(rng.uniform(0.05, 1.0)), pts))
        for _ in range(int(rng.integers(0, 2))):
            cat = int(rng.integers(1, 14))
            x1, y1 = rng.uniform(0, 500, 2)
            box = np.array([x1, y1, x1 + 60, y1 + 90])
            found.append(_detection(cat, box, float(rng.uniform(0, 0.6)), _grid(cat, box)))
        gt[image_id], dets[image_id] = items, found
    return gt, dets


def _detection(category_id: int, box, score: float, points: np.ndarray) -> Detection:
    n = TAXONOMY.category(category_id).num_landmarks
    landmarks = np.column_stack([points, np.ones(n)])
    return Detection(category_id, score, score, np.asarray(box, np.float64), landmarks, np.zeros(n, bool))


def _write_df2_annos(folder: Path, gt: dict[int, list[Item]]) -> Path:
    folder.mkdir(parents=True)
    for image_id, items in gt.items():
        doc = {"source": "user", "pair_id": 1}
        for k, it in enumerate(items, start=1):
            doc[f"item{k}"] = {"category_id": it.category_id, "bounding_box": it.box.tolist(),
                               "landmarks": it.landmarks.ravel().tolist()}
        (folder / f"{image_id:06d}.json").write_text(json.dumps(doc))
    return folder


def _coco_ground_truth(gt: dict[int, list[Item]]) -> dict:
    """As the official deepfashion2_to_coco.py: box area, 294 × 3 keypoints, num_keypoints = count(v > 0)."""
    anns = []
    for image_id, items in gt.items():
        for it in items:
            cat = TAXONOMY.category(it.category_id)
            kp = np.zeros((N, 3))
            kp[cat.offset : cat.offset + cat.num_landmarks] = it.landmarks
            x1, y1, x2, y2 = it.box.tolist()
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat.id, "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                         "keypoints": kp.ravel().tolist(), "num_keypoints": int((it.landmarks[:, 2] > 0).sum())})
    categories = [{"id": c.id, "name": c.coco_name, "supercategory": "clothes",
                   "keypoints": [str(i) for i in range(1, N + 1)], "skeleton": []} for c in TAXONOMY.categories]
    return {"images": [{"id": i, "file_name": f"{i:06d}.jpg"} for i in gt], "annotations": anns,
            "categories": categories}


def _entry(image_id: int, det: Detection, other_slots: str, with_bbox: bool) -> dict:
    """One official-format result; ``other_slots`` 'zero' (the official files) or 'centre'."""
    cat = TAXONOMY.category(det.category_id)
    kp = np.zeros((N, 3))
    if other_slots == "centre":
        kp[:, :2] = [(det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2]
    kp[cat.offset : cat.offset + cat.num_landmarks] = det.landmarks
    entry = {"image_id": image_id, "category_id": cat.id, "score": det.score, "keypoints": kp.ravel().tolist()}
    if with_bbox:
        x1, y1, x2, y2 = det.box.tolist()
        entry["bbox"] = [x1, y1, x2 - x1, y2 - y1]
    return entry


def _entries(dets: dict[int, list[Detection]], other_slots: str, with_bbox: bool = True) -> list[dict]:
    return [_entry(i, d, other_slots, with_bbox) for i, ds in dets.items() for d in ds]


def _official(gt_file: Path, results: list[dict]) -> tuple[list[float], dict[int, float]]:
    """Plain pycocotools, as the official evaluation script: COCO(gt) / loadRes / COCOeval 'keypoints' with
    the DF2 sigmas, summarize(). (AP, AP50, AP75) and per-category mAP at area 'all', maxDets 20."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_file))
        cocoeval = COCOeval(coco_gt, coco_gt.loadRes(results), "keypoints")
        cocoeval.params.kpt_oks_sigmas = np.array(TAXONOMY.oks_sigmas)
        cocoeval.evaluate()
        cocoeval.accumulate()
        cocoeval.summarize()
    precision = cocoeval.eval["precision"][:, :, :, 0, -1]
    per_category = {}
    for k, cat_id in enumerate(cocoeval.params.catIds):
        column = precision[:, :, k]
        per_category[cat_id] = float(column[column > -1].mean()) if (column > -1).any() else math.nan
    return [float(v) for v in cocoeval.stats[:3]], per_category


def _deepmark_eval(annos: Path, predictions: Path, out: Path) -> dict:
    """``deepmark eval`` as a user runs it (a subprocess); the metrics JSON it writes."""
    done = subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", "eval", str(annos), str(predictions),
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def _same(ours: dict, expected: tuple[list[float], dict[int, float]]) -> None:
    stats, per_category = expected
    assert [ours["map_pt"], ours["ap50_pt"], ours["ap75_pt"]] == pytest.approx(stats, abs=1e-12)
    for cat_id, value in per_category.items():
        got = {str(k): v for k, v in ours["per_category_pt"].items()}[str(cat_id)]
        if math.isnan(value):
            assert got is None, cat_id
        else:
            assert got == pytest.approx(value, abs=1e-12), cat_id


@pytest.fixture(params=[0, 1, 2], ids=lambda s: f"scene{s}")
def scene(request, tmp_path):
    gt, dets = _scene(request.param)
    annos = _write_df2_annos(tmp_path / "annos", gt)
    gt_file = tmp_path / "gt_coco.json"
    gt_file.write_text(json.dumps(_coco_ground_truth(gt)))
    return gt, dets, annos, gt_file


# ---------------------------------------------------------------------------------------------
# Official-format results files: exactly pycocotools on the file


@pytest.mark.parametrize("with_bbox", [True, False], ids=["bbox+keypoints", "keypoints only"])
def test_eval_of_an_official_results_file_is_plain_pycocotools(tmp_path, scene, with_bbox):
    gt, dets, annos, gt_file = scene
    results = _entries(dets, "zero", with_bbox)
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(results))
    ours = _deepmark_eval(annos, results_file, tmp_path / "metrics.json")
    _same(ours, _official(gt_file, json.loads(results_file.read_text())))


def test_official_zero_slots_are_not_replaced_by_the_centre(tmp_path, scene):
    # The scenes hold unlabelled items with detections on them: with zeros in the other slots these are
    # false positives for the official evaluator, with the centre they are ignored matches. The file's
    # zeros must be what is evaluated, so the two files give different numbers and each its own.
    gt, dets, annos, gt_file = scene
    zero, centre = _entries(dets, "zero"), _entries(dets, "centre")
    official_zero, official_centre = _official(gt_file, zero)[0], _official(gt_file, centre)[0]
    assert official_zero[0] < official_centre[0]  # the category of difference the issue reported
    for entries, expected in ((zero, official_zero), (centre, official_centre)):
        path = tmp_path / "r.json"
        path.write_text(json.dumps(entries))
        predictions, errors = read_predictions(path)
        assert errors == []
        got = DeepFashion2Evaluator(read_df2_annotations(annos)[0]).evaluate(predictions)
        assert [got.map_pt, got.ap50_pt, got.ap75_pt] == pytest.approx(expected, abs=1e-12)


def test_hand_computed_unlabelled_item_case(tmp_path):
    # Image 1: A (labelled landmarks) and B (same category, every v = 0). Det on B (score .9) above the
    # perfect det on A (.8). Official file, zeros elsewhere: B's det is compared over all 294 points with
    # B's doubled box; the (0, 0) points lie far outside → OKS < .5 → a false positive ranked first →
    # precision 1/2 at every recall point → AP = 0.5 at every threshold. Centre-filled: an ignored match → 1.
    a_box, b_box = np.array([300.0, 50, 400, 150]), np.array([50.0, 250, 150, 350])
    a = Item(1, a_box, np.column_stack([_grid(1, a_box), np.full(25, 2.0)]))
    b = Item(1, b_box, np.zeros((25, 3)))
    dets = {1: [_detection(1, a_box, 0.8, a.landmarks[:, :2]), _detection(1, b_box, 0.9, _grid(1, b_box))]}
    annos = _write_df2_annos(tmp_path / "annos", {1: [a, b]})
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(_entries(dets, "zero", with_bbox=False)))
    ours = _deepmark_eval(annos, results_file, tmp_path / "m.json")
    assert [ours["map_pt"], ours["ap50_pt"], ours["ap75_pt"]] == pytest.approx([0.5] * 3, abs=1e-12)
    in_memory = DeepFashion2Evaluator({1: [a, b]}).evaluate(dets)
    assert [in_memory.map_pt, in_memory.ap50_pt, in_memory.ap75_pt] == pytest.approx([1.0] * 3, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Detections without the other categories' points: the box centre, documented


def test_per_image_prediction_folder_is_evaluated_with_the_centre_fill(tmp_path, scene):
    gt, dets, annos, gt_file = scene
    folder = tmp_path / "predictions"
    folder.mkdir()
    for image_id, found in dets.items():
        doc = {f"item{k}": {"category_id": d.category_id, "bounding_box": d.box.tolist(), "score": d.score,
                            "landmarks": d.landmarks.ravel().tolist()} for k, d in enumerate(found, start=1)}
        (folder / f"{image_id:06d}.json").write_text(json.dumps(doc))
    ours = _deepmark_eval(annos, folder, tmp_path / "metrics.json")
    _same(ours, _official(gt_file, _entries(dets, "centre")))


def test_in_memory_detections_are_evaluated_with_the_centre_fill(scene):
    gt, dets, _, gt_file = scene
    result = DeepFashion2Evaluator(gt).evaluate(dets)
    _same(result.to_dict(), _official(gt_file, _entries(dets, "centre")))
