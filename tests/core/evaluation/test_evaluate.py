"""DeepFashion2 evaluation (``deepmark.core.evaluation.evaluate``): hand-computed cases, agreement with plain
pycocotools, bad input.

Background for the hand computations (COCOeval as pycocotools implements it):
- thresholds t = .50, .55, ..., .95 (10); a detection matches a ground truth when IoU (or OKS) ≥ t;
- AP at one t is the mean of the interpolated precision at 101 recall points 0, .01, ..., 1;
- with a single ground truth and a single true positive ranked first, precision is 1 at every recall
  point, so AP(t) = 1 where it matches and 0 where it does not; mAP = (thresholds passed) / 10;
- OKS = mean over labelled (v > 0) ground-truth landmarks of exp(−d² / (2 · area · (2σ)²)), with
  area = the ground-truth box w·h (as the official DeepFashion2 → COCO conversion sets it).
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from deepmark.core.domain.structures import Detection, Item
from deepmark.core.domain.taxonomy import load_taxonomy
from deepmark.core.errors import EvaluationError, TaxonomyError
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator, EvaluationResult, evaluate_detections
from deepmark.core.formats.coco import detections_to_coco, ground_truth_to_coco

TAXONOMY = load_taxonomy()


def grid_landmarks(category_id: int, box, v: float = 2.0) -> np.ndarray:
    """(L, 3) landmarks spread on a grid strictly inside ``box`` (xyxy), all with visibility ``v``."""
    n = TAXONOMY.category(category_id).num_landmarks
    x1, y1, x2, y2 = box
    u = (np.arange(n) % 5 + 1) / 6.0
    w = (np.arange(n) // 5 + 1) / (n // 5 + 2)
    return np.column_stack([x1 + u * (x2 - x1), y1 + w * (y2 - y1), np.full(n, v)])


def item(category_id: int, box, landmarks=None) -> Item:
    box = np.asarray(box, dtype=np.float64)
    return Item(category_id, box, grid_landmarks(category_id, box) if landmarks is None else landmarks)


def detection(category_id: int, box, score: float = 0.9, landmarks=None) -> Detection:
    """A detection; landmarks default to the ground-truth grid of the same box, landmark score 1."""
    box = np.asarray(box, dtype=np.float64)
    if landmarks is None:
        landmarks = grid_landmarks(category_id, box, v=1.0)
    n = TAXONOMY.category(category_id).num_landmarks
    return Detection(category_id, score, score, box, np.asarray(landmarks, dtype=np.float64), np.zeros(n, bool))


def perfect(gt: Item, score: float = 0.9) -> Detection:
    lm = gt.landmarks.copy()
    lm[:, 2] = 1.0
    return detection(gt.category_id, gt.box, score, lm)


def assert_all(result: EvaluationResult, pt: tuple[float, float, float], box: tuple[float, float, float]) -> None:
    assert (result.map_pt, result.ap50_pt, result.ap75_pt) == pytest.approx(pt, abs=1e-12)
    assert (result.map_box, result.ap50_box, result.ap75_box) == pytest.approx(box, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# (a)–(f): cases computed by hand


def test_perfect_detection_scores_one_everywhere():
    # (a) One ground truth, one identical detection: IoU = OKS = 1 ≥ every threshold → every AP is 1.
    gt = item(1, [10, 20, 110, 220])
    result = evaluate_detections({1: [gt]}, {1: [perfect(gt)]})
    assert_all(result, (1, 1, 1), (1, 1, 1))
    # (pycocotools' precision is tp / (tp + fp + 2.2e-16), hence approx)
    assert result.per_category_box[1] == pytest.approx(1) and result.per_category_pt[1] == pytest.approx(1)
    # categories without ground truth have no AP
    assert all(math.isnan(result.per_category_box[c]) for c in range(2, 14))
    assert (result.num_images, result.num_items, result.num_detections) == (1, 1, 1)


def test_box_iou_062_passes_three_thresholds():
    # (b) GT box [0,0,100,100] (area 10 000); detection [0,0,100,62]: intersection 6 200, union 10 000,
    # IoU = 0.62 ≥ .50, .55, .60 but < .65 → AP50 = 1, AP75 = 0, mAP_box = 3/10 = 0.3.
    # Its landmarks are exact: OKS only looks at landmarks and the *GT* area, so landmark AP stays 1.
    gt = item(7, [0, 0, 100, 100])
    lm = gt.landmarks.copy()
    det = detection(7, [0, 0, 100, 62], landmarks=lm)
    result = evaluate_detections({5: [gt]}, {5: [det]})
    assert_all(result, (1, 1, 1), (0.3, 1, 0))


def test_oks_one_landmark_shifted():
    # (c) Short sleeve top (σ₀ = 0.012), GT box 100×100 → area A = 10 000; only landmark 0 is labelled.
    # Shift it by d = 2 px: e = d² / (2·A·(2σ₀)²) = 4 / (2·10⁴·0.000576) = 4 / 11.52 = 0.34722,
    # OKS = exp(−0.34722) = 0.70665 → passes .50, .55, .60, .65, .70 (5 of 10) → mAP_pt = 0.5.
    sigma0 = TAXONOMY.category(1).oks_sigmas[0]
    assert sigma0 == pytest.approx(0.012)
    lm = np.zeros((25, 3))
    lm[0] = [50, 50, 2]
    gt = item(1, [0, 0, 100, 100], lm)
    det_lm = np.full((25, 3), 1000.0)  # unlabelled GT landmarks are not compared: put these far away
    det_lm[0] = [52, 50, 1]
    result = evaluate_detections({1: [gt]}, {1: [detection(1, [0, 0, 100, 100], landmarks=det_lm)]})
    assert math.exp(-4 / (2 * 10_000 * (2 * sigma0) ** 2)) == pytest.approx(0.70665, abs=1e-5)
    assert_all(result, (0.5, 1, 0), (1, 1, 1))


def test_oks_averages_over_labelled_landmarks_including_occluded():
    # (c') Landmark 0 visible (v=2) and exact → term 1; landmark 1 occluded (v=1, σ₁ = 0.0158) moved by 5 px:
    # e = 25 / (2·10⁴·4·0.0158²) = 25 / 19.9712 = 1.25180 → term exp(−1.25180) = 0.28600;
    # OKS = (1 + 0.28600) / 2 = 0.64300 → passes .50, .55, .60 (3 of 10) → mAP_pt = 0.3.
    sigma1 = TAXONOMY.category(1).oks_sigmas[1]
    assert sigma1 == pytest.approx(0.0158)
    lm = np.zeros((25, 3))
    lm[0] = [30, 30, 2]
    lm[1] = [60, 40, 1]
    gt = item(1, [0, 0, 100, 100], lm)
    det_lm = np.full((25, 3), -500.0)
    det_lm[0] = [30, 30, 1]
    det_lm[1] = [63, 44, 1]  # d² = 3² + 4² = 25
    result = evaluate_detections({1: [gt]}, {1: [detection(1, [0, 0, 100, 100], landmarks=det_lm)]})
    assert (1 + math.exp(-25 / (2 * 10_000 * (2 * sigma1) ** 2))) / 2 == pytest.approx(0.64300, abs=1e-5)
    assert_all(result, (0.3, 1, 0), (1, 1, 1))


def test_wrong_category_never_matches():
    # (d) GT short sleeve top (1); a long sleeve top (2) detection on the very same box: matching is per
    # (image, category), so the GT is missed (AP 0) and the detection's category has no GT (nan, dropped
    # from the means).
    gt = item(1, [10, 10, 200, 300])
    result = evaluate_detections({1: [gt]}, {1: [detection(2, [10, 10, 200, 300])]})
    assert_all(result, (0, 0, 0), (0, 0, 0))
    assert result.per_category_box[1] == 0.0 and result.per_category_pt[1] == 0.0
    assert math.isnan(result.per_category_box[2]) and math.isnan(result.per_category_pt[2])


def scene_with_unlabelled_item():
    """GT A (labelled landmarks) and GT B (same category, every v = 0) far apart, far from the origin."""
    a = item(1, [300, 50, 400, 150])
    b = item(1, [50, 250, 150, 350], np.zeros((25, 3)))
    det_a = perfect(a, score=0.8)
    det_b = detection(1, b.box, score=0.9)  # grid landmarks inside B's box
    return a, b, det_a, det_b


def test_item_without_landmarks_is_ignored_for_landmark_ap_only():
    # (e) B has no labelled landmark (num_keypoints = 0): pycocotools ignores it for landmark AP, and the
    # higher-scored detection on it is matched to the ignored item (OKS against B's doubled box = 1) and
    # ignored too: landmark AP = 1 (one TP, no FP). For boxes B is ordinary ground truth: both TP, AP 1.
    a, b, det_a, det_b = scene_with_unlabelled_item()
    evaluator = DeepFashion2Evaluator({3: [a, b]})
    assert_all(evaluator.evaluate({3: [det_a, det_b]}), (1, 1, 1), (1, 1, 1))
    # Without the detection on B: landmark AP is still 1 (B does not count), but box recall stops at 1/2:
    # precision 1 at the 51 recall points 0 … .50 and 0 above → box AP = 51/101 at every threshold.
    assert_all(evaluator.evaluate({3: [det_a]}), (1, 1, 1), (51 / 101,) * 3)


def test_zero_padded_keypoints_would_make_the_ignored_match_a_false_positive():
    # Why the evaluator fills the other categories' keypoint slots with the box centre: with zeros there,
    # plain pycocotools compares (0, 0) points with B's doubled box [-50, 250]×[150, 450], OKS ≈ 25/294 <
    # .5, so det B (score .9) is a false positive ranked above det A's true positive: precision 1/2 at
    # recall 1 and (interpolated) at every recall point → AP = 0.5 instead of 1.
    a, b, det_a, det_b = scene_with_unlabelled_item()
    gt = COCO()
    gt.dataset = ground_truth_to_coco({3: [a, b]})
    results = detections_to_coco({3: [det_a, det_b]})
    for entry in results:
        kp = np.asarray(entry["keypoints"]).reshape(-1, 3)
        kp[25:] = 0.0  # zero everything outside the short sleeve top slice (0..24)
        entry["keypoints"] = kp.ravel().tolist()
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        cocoeval = COCOeval(gt, gt.loadRes(results), "keypoints")
        cocoeval.params.kpt_oks_sigmas = TAXONOMY.oks_sigmas
        cocoeval.evaluate()
        cocoeval.accumulate()
        cocoeval.summarize()
    assert cocoeval.stats[0] == pytest.approx(0.5)


def test_landmark_ap_keeps_only_twenty_detections_per_image_and_category():
    # (f) One GT and 21 detections of its category: 20 false positives (far away, scores .99 … .80) and the
    # perfect one last (score .5). Landmarks use maxDets = 20 per (image, category), so the true positive is
    # cut → landmark AP 0. Boxes keep 100: the TP is 21st → precision 1/21 at recall 1, and interpolated
    # precision 1/21 at every recall point → box AP = 1/21 at every threshold.
    gt = item(1, [0, 0, 100, 100])
    false = [detection(1, [500 + 10 * i, 500, 600 + 10 * i, 600], score=0.99 - 0.01 * i) for i in range(20)]
    result = evaluate_detections({1: [gt]}, {1: [*false, perfect(gt, score=0.5)]})
    assert_all(result, (0, 0, 0), (1 / 21,) * 3)
    # With 19 false positives the TP is the 20th and kept: both APs are 1/20.
    result = evaluate_detections({1: [gt]}, {1: [*false[:19], perfect(gt, score=0.5)]})
    assert_all(result, (1 / 20,) * 3, (1 / 20,) * 3)


# ---------------------------------------------------------------------------------------------
# (g): agreement with plain pycocotools on files written to disk


def random_scene(seed: int):
    """~12 images: items of random categories (some without any labelled landmark), noisy detections,
    some with the wrong category, some duplicates and some spurious."""
    rng = np.random.default_rng(seed)
    gt, dets = {}, {}
    for image_id in range(1, 13):
        items, found = [], []
        for _ in range(int(rng.integers(0, 4))):
            cat = int(rng.integers(1, 14))
            x1, y1 = rng.uniform(0, 400, 2)
            box = [x1, y1, x1 + rng.uniform(20, 300), y1 + rng.uniform(20, 300)]
            lm = grid_landmarks(cat, box)
            lm[:, 2] = rng.choice([0, 1, 2], len(lm), p=[0.2, 0.3, 0.5])
            if rng.uniform() < 0.15:
                lm[:, 2] = 0
            lm[lm[:, 2] == 0] = 0.0
            items.append(Item(cat, np.asarray(box), lm))
            for _ in range(int(rng.integers(0, 3))):
                noisy = np.asarray(box) + rng.normal(0, 6, 4)
                noisy[2:] = np.maximum(noisy[2:], noisy[:2] + 1)
                det_lm = grid_landmarks(cat, box) + np.column_stack([rng.normal(0, 3, (len(lm), 2)), np.zeros(len(lm))])
                det_cat = cat if rng.uniform() < 0.85 else int(rng.integers(1, 14))
                if det_cat != cat:
                    det_lm = grid_landmarks(det_cat, noisy)
                found.append(detection(det_cat, noisy, float(rng.uniform(0.05, 1)), det_lm))
        for _ in range(int(rng.integers(0, 3))):
            cat = int(rng.integers(1, 14))
            x1, y1 = rng.uniform(0, 400, 2)
            found.append(detection(cat, [x1, y1, x1 + 50, y1 + 80], float(rng.uniform(0, 0.5))))
        gt[image_id] = items
        if found:
            dets[image_id] = found
    return gt, dets


def plain_pycocotools(gt_file: str, results_file: str, iou_type: str) -> tuple[np.ndarray, np.ndarray, list]:
    """stats and (T, R, K) precision at area 'all', largest maxDets, from COCO(file) / loadRes / summarize."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_file)
        cocoeval = COCOeval(coco_gt, coco_gt.loadRes(results_file), iou_type)
        if iou_type == "keypoints":
            cocoeval.params.kpt_oks_sigmas = TAXONOMY.oks_sigmas
        cocoeval.evaluate()
        cocoeval.accumulate()
        cocoeval.summarize()
    return cocoeval.stats, cocoeval.eval["precision"][:, :, :, 0, -1], cocoeval.params.catIds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_plain_pycocotools_on_json_files(tmp_path, seed):
    gt, dets = random_scene(seed)
    gt_file, results_file = tmp_path / "gt.json", tmp_path / "results.json"
    gt_file.write_text(json.dumps(ground_truth_to_coco(gt)))
    results_file.write_text(json.dumps(detections_to_coco(dets)))
    result = DeepFashion2Evaluator(gt).evaluate(dets)
    for iou_type, ours, per_category in (
        ("bbox", (result.map_box, result.ap50_box, result.ap75_box), result.per_category_box),
        ("keypoints", (result.map_pt, result.ap50_pt, result.ap75_pt), result.per_category_pt),
    ):
        stats, precision, cat_ids = plain_pycocotools(str(gt_file), str(results_file), iou_type)
        assert ours == pytest.approx(tuple(stats[:3]), abs=1e-12), iou_type
        for k, cat_id in enumerate(cat_ids):
            column = precision[:, :, k]
            expected = column[column > -1].mean() if (column > -1).any() else math.nan
            assert per_category[cat_id] == pytest.approx(expected, abs=1e-12, nan_ok=True), (iou_type, cat_id)


def test_ground_truth_conversion_matches_the_official_converter():
    lm = grid_landmarks(8, [10, 20, 60, 220])
    lm[3] = [99, 99, 0]  # v = 0 is written as 0, 0, 0 whatever x, y say
    dataset = ground_truth_to_coco({42: [Item(8, np.array([10.0, 20, 60, 220]), lm)]})
    (ann,) = dataset["annotations"]
    assert ann["bbox"] == [10, 20, 50, 200] and ann["area"] == 50 * 200
    assert ann["iscrowd"] == 0 and ann["category_id"] == 8 and ann["image_id"] == 42 and ann["id"] >= 1
    kp = np.asarray(ann["keypoints"]).reshape(294, 3)
    offset = TAXONOMY.category(8).offset  # trousers: global landmarks 168..181
    assert offset == 168
    assert (kp[:offset] == 0).all() and (kp[offset + 14 :] == 0).all()
    expected = lm.copy()
    expected[3] = 0
    np.testing.assert_array_equal(kp[offset : offset + 14], expected)
    assert ann["num_keypoints"] == 13
    assert [c["id"] for c in dataset["categories"]] == list(range(1, 14))
    assert dataset["categories"][7]["name"] == "trousers"
    assert dataset["categories"][0]["keypoints"] == [str(i) for i in range(1, 295)]
    assert dataset["images"] == [{"id": 42, "file_name": "000042.jpg"}]


def test_detection_conversion_is_the_official_results_format():
    det = detection(8, [10, 20, 60, 220], score=0.7)
    (entry,) = detections_to_coco({5: [det]})
    assert set(entry) == {"image_id", "category_id", "bbox", "score", "keypoints"}
    assert entry["bbox"] == [10, 20, 50, 200] and entry["score"] == 0.7 and entry["image_id"] == 5
    kp = np.asarray(entry["keypoints"]).reshape(294, 3)
    np.testing.assert_array_equal(kp[168:182, :2], det.landmarks[:, :2])
    assert (kp[168:182, 2] == 1).all()
    # other categories' slots: the box centre, v = 0 (see test_zero_padded_keypoints_...)
    assert (kp[:168, :2] == [35, 120]).all() and (kp[:168, 2] == 0).all()


# ---------------------------------------------------------------------------------------------
# Edge cases, reuse, result object


def test_no_detections_scores_zero_and_no_ground_truth_scores_nan():
    gt = item(1, [0, 0, 50, 50])
    assert_all(evaluate_detections({1: [gt]}, {}), (0, 0, 0), (0, 0, 0))
    result = evaluate_detections({1: []}, {1: [detection(1, [0, 0, 10, 10])]})
    assert all(math.isnan(v) for v in (result.map_pt, result.ap50_pt, result.map_box, result.ap75_box))
    assert result.num_detections == 1


def test_evaluator_is_reusable_and_images_without_detections_count():
    gt, dets = random_scene(3)
    evaluator = DeepFashion2Evaluator(gt)
    first = evaluator.evaluate(dets)
    assert evaluator.evaluate({}).map_box == 0.0
    again = evaluator.evaluate(dets)
    assert again == first  # nothing left over from earlier runs (pycocotools marks the GT dicts in place)


def test_result_to_dict_and_table():
    gt = item(1, [10, 20, 110, 220])
    result = evaluate_detections({1: [gt], 2: []}, {1: [perfect(gt)]})
    as_dict = result.to_dict()
    json.dumps(as_dict)
    assert as_dict["map_box"] == pytest.approx(1) and as_dict["per_category_box"][2] is None
    assert as_dict["num_images"] == 2 and as_dict["num_items"] == 1
    table = result.table()
    assert "short sleeve top" in table and "sling dress" in table and "n/a" in table and "1.000" in table
    assert len({len(line) for line in table.splitlines()[1:]}) == 1  # fixed width below the title


# ---------------------------------------------------------------------------------------------
# (h): bad input


def test_detections_for_an_image_without_ground_truth():
    with pytest.raises(EvaluationError, match="image 7, which is absent from the ground truth"):
        evaluate_detections({1: []}, {7: [detection(1, [0, 0, 10, 10])]})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(box=np.array([0, 0, np.nan, 10.0])), "not finite"),
        (dict(box=np.array([10, 0, 0, 10.0])), "negative width or height"),
        (dict(box=np.array([0, 0, 10.0])), r"shape \(4,\)"),
        (dict(landmarks=np.zeros((24, 3))), r"shape \(24, 3\), expected \(25, 3\)"),
        (dict(landmarks=np.full((25, 3), np.inf)), "NaN or infinite"),
        (dict(score=float("nan")), "score nan is not finite"),
    ],
)
def test_bad_detection_values(bad, message):
    good = detection(1, [0, 0, 10, 10])
    fields = dict(category_id=1, score=0.5, box_score=0.5, box=good.box, landmarks=good.landmarks, refined=good.refined)
    fields.update(bad)
    dets = {1: [good, Detection(**fields)]}
    with pytest.raises(EvaluationError, match=f"image 1, detection 1: .*{message}"):
        evaluate_detections({1: [item(1, [0, 0, 10, 10])]}, dets)


def test_unknown_category_ids():
    with pytest.raises(TaxonomyError, match="detection 0: unknown category id 14"):
        evaluate_detections({1: []}, {1: [Detection(14, 0.5, 0.5, np.zeros(4), np.zeros((3, 3)), np.zeros(3))]})
    with pytest.raises(TaxonomyError, match="ground truth image 1, item 0: unknown category id 0"):
        DeepFashion2Evaluator({1: [Item(0, np.array([0, 0, 1, 1.0]), np.zeros((3, 3)))]})


def test_bad_ground_truth():
    with pytest.raises(EvaluationError, match="item 0: landmark visibility must be 0, 1 or 2"):
        DeepFashion2Evaluator({1: [item(9, [0, 0, 10, 10], np.full((8, 3), 3.0))]})
    with pytest.raises(EvaluationError, match=r"item 1: landmarks have shape \(25, 3\), expected \(8, 3\)"):
        DeepFashion2Evaluator({1: [item(9, [0, 0, 10, 10]), item(9, [0, 0, 10, 10], np.zeros((25, 3)))]})
    with pytest.raises(EvaluationError, match="negative width or height"):
        DeepFashion2Evaluator({1: [item(9, [5, 0, 0, 10])]})
    with pytest.raises(EvaluationError, match="image id must be an integer"):
        DeepFashion2Evaluator({"000001": [item(9, [0, 0, 10, 10])]})
