"""The grid search's fast paths against their references: ``fast_eval`` against pycocotools (the whole
precision table, on random ground truth and detections built to hit COCOeval's corner cases), and
``grid_decode`` against the per-image decoder, on simulated heads and on the default model's real heads.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.cocoeval import COCOeval

from deepmark.core.centernet import decode as dec
from deepmark.core.domain.structures import Detection, Item, PostprocessParams
from deepmark.core.evaluation.evaluate import (
    BOX_MAX_DETECTIONS,
    LANDMARK_MAX_DETECTIONS,
    DeepFashion2Evaluator,
)
from deepmark.core.evaluation.grid_decode import GridDecoder
from deepmark.core.evaluation.tune import _StageCache, grid_search
from deepmark.core.formats.coco import ResultDetection, result_arrays
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

# ---------------------------------------------------------------------------------------------
# fast_eval against pycocotools


def pycocotools_precision(evaluator: DeepFashion2Evaluator, detections, iou_type: str) -> np.ndarray:
    """(T, R, K) precision of plain COCOeval, set up as ``DeepFashion2Evaluator._run`` sets it up."""
    coco_dt, _ = evaluator._detections_dataset(detections)
    cocoeval = COCOeval(evaluator._coco_gt, coco_dt, iou_type)
    params = cocoeval.params
    params.imgIds = evaluator._image_ids
    params.catIds = evaluator._category_ids[iou_type]
    params.areaRng = [[0.0, 1e5**2]]
    params.areaRngLbl = ["all"]
    params.maxDets = [LANDMARK_MAX_DETECTIONS if iou_type == "keypoints" else BOX_MAX_DETECTIONS]
    if iou_type == "keypoints":
        params.kpt_oks_sigmas = evaluator.taxonomy.oks_sigmas
    with contextlib.redirect_stdout(io.StringIO()):
        cocoeval.evaluate()
        cocoeval.accumulate()
    return cocoeval.eval["precision"][:, :, :, 0, 0]


def fast_precision(evaluator: DeepFashion2Evaluator, detections, iou_type: str) -> np.ndarray:
    """(T, R, K) precision of ``fast_eval``, as ``DeepFashion2Evaluator.maps`` computes it."""
    return evaluator._fast_precision(result_arrays(detections, evaluator.taxonomy, None), iou_type)


def random_landmarks(rng, taxonomy, category_id: int, box: np.ndarray, kind: str) -> np.ndarray:
    """(L, 3) landmarks in and around ``box``: visibility mixed 0/1/2, all 0 ('none'), or all 2."""
    n = taxonomy.category(category_id).num_landmarks
    x1, y1, x2, y2 = box
    xy = np.column_stack([rng.uniform(x1 - 2, x2 + 2, n), rng.uniform(y1 - 2, y2 + 2, n)])
    v = {"none": np.zeros(n), "all": np.full(n, 2.0)}.get(kind, rng.integers(0, 3, n).astype(float))
    return np.column_stack([xy, v])


def random_box(rng, scale: float) -> np.ndarray:
    x, y = rng.uniform(0, 200, 2)
    kind = rng.integers(0, 4)
    w, h = (rng.uniform(0, 1.5, 2) if kind == 0 else np.zeros(2) if kind == 1 else rng.uniform(2, scale, 2))
    return np.array([x, y, x + w, y + h])


def near(rng, box: np.ndarray, spread: float) -> np.ndarray:
    """A box near ``box``: IoU around the thresholds, sometimes exactly equal."""
    if rng.random() < 0.2:
        return box.copy()
    size = np.maximum(box[2:] - box[:2], 1.0)
    out = box + rng.normal(0, spread, 4) * np.r_[size, size]
    return np.r_[np.minimum(out[:2], out[2:]), np.maximum(out[:2], out[2:])]


def random_case(seed: int, taxonomy, images: int, items: int, dets: int, categories: int, score_levels: int,
                file_share: float):
    """Ground truth and detections for ``images`` images. Detections: perturbed copies of the ground truth
    (IoU / OKS spread over the thresholds), random boxes, categories absent from the ground truth; scores
    from ``score_levels`` values (ties) or continuous (0); some as ``ResultDetection`` with 294 file points."""
    rng = np.random.default_rng(seed)
    category_pool = rng.choice(np.arange(1, 14), categories, replace=False)
    gt, detections = {}, {}
    for image_id in range(1, images + 1):
        truth = []
        for _ in range(rng.integers(0, items + 1)):
            c = int(rng.choice(category_pool))
            box = random_box(rng, 120)
            kind = rng.choice(["mixed", "none", "all"], p=[0.6, 0.2, 0.2])
            truth.append(Item(c, box, random_landmarks(rng, taxonomy, c, box, kind)))
        found = []
        for _ in range(rng.integers(0, dets + 1)):
            if truth and rng.random() < 0.7:
                t = truth[rng.integers(len(truth))]
                c = t.category_id if rng.random() < 0.9 else int(rng.integers(1, 14))
                box = near(rng, t.box, rng.choice([0.02, 0.08, 0.3]))
                lm = random_landmarks(rng, taxonomy, c, box, "all")
                if c == t.category_id and rng.random() < 0.7:
                    lm[:, :2] = t.landmarks[:, :2] + rng.normal(0, rng.choice([0.5, 3.0, 10.0]), (len(lm), 2))
            else:
                c = int(rng.integers(1, 14)) if rng.random() < 0.3 else int(rng.choice(category_pool))
                box = random_box(rng, 120)
                lm = random_landmarks(rng, taxonomy, c, box, "all")
            lm[:, 2] = rng.uniform(0, 1, len(lm))
            score = float(rng.integers(1, score_levels + 1) / score_levels) if score_levels else float(rng.random())
            n = len(lm)
            if rng.random() < file_share:
                keypoints = np.zeros((taxonomy.num_landmarks, 3))
                keypoints[:, :2] = rng.uniform(-50, 300, (taxonomy.num_landmarks, 2)) * (rng.random() < 0.5)
                found.append(ResultDetection(c, score, score, box, lm, np.zeros(n, bool), keypoints))
            else:
                found.append(Detection(c, score, score, box, lm, np.zeros(n, bool)))
        gt[image_id] = truth
        if found or rng.random() < 0.5:
            detections[image_id] = found
    return gt, detections


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    images=st.integers(1, 5),
    items=st.integers(0, 5),
    dets=st.integers(0, 12),
    categories=st.integers(1, 4),
    score_levels=st.sampled_from([0, 1, 2, 5]),
    file_share=st.sampled_from([0.0, 0.0, 0.5]),
)
def test_fast_eval_gives_pycocotools_precision_table(taxonomy, seed, images, items, dets, categories, score_levels,
                                                     file_share):
    """Random ground truth (items without labelled landmarks, tiny and empty boxes, empty images) and
    detections (ties in score, categories on one side only, near and exact copies): the whole (T, R, K)
    precision table of both metrics, and the mAPs, as pycocotools gives them."""
    gt, detections = random_case(seed, taxonomy, images, items, dets, categories, score_levels, file_share)
    evaluator = DeepFashion2Evaluator(gt, taxonomy)
    for iou_type in ("bbox", "keypoints"):
        if not evaluator._category_ids[iou_type]:
            continue
        reference = pycocotools_precision(evaluator, detections, iou_type)
        np.testing.assert_allclose(fast_precision(evaluator, detections, iou_type), reference, rtol=0, atol=1e-12)
    full = evaluator.evaluate(detections)
    pt, box = evaluator.maps(detections)
    np.testing.assert_allclose([pt, box], [full.map_pt, full.map_box], rtol=0, atol=1e-12)
    np.testing.assert_equal([evaluator.map_only(detections, landmarks=True),
                             evaluator.map_only(detections, landmarks=False)], [pt, box])  # nan == nan here


@pytest.mark.parametrize("per_image", [25, 130])
def test_fast_eval_cuts_to_max_detections_like_pycocotools(taxonomy, per_image):
    """More detections per (image, category) than maxDets (20 for landmarks, 100 for boxes), many tied in
    score: the cut keeps the same ones."""
    rng = np.random.default_rng(per_image)
    gt, detections = {}, {}
    for image_id in (1, 2):
        truth = [Item(1, b, random_landmarks(rng, taxonomy, 1, b, "mixed"))
                 for b in (random_box(rng, 100) for _ in range(6))]
        gt[image_id] = truth
        found = []
        for k in range(per_image):
            t = truth[k % len(truth)]
            box = near(rng, t.box, 0.05)
            lm = random_landmarks(rng, taxonomy, 1, box, "all")
            lm[:, :2] = t.landmarks[:, :2] + rng.normal(0, 2.0, (len(lm), 2))
            score = float(rng.integers(1, 4)) / 4
            found.append(Detection(1, score, score, box, lm, np.zeros(len(lm), bool)))
        detections[image_id] = found
    evaluator = DeepFashion2Evaluator(gt, taxonomy)
    for iou_type in ("bbox", "keypoints"):
        np.testing.assert_allclose(fast_precision(evaluator, detections, iou_type),
                                   pycocotools_precision(evaluator, detections, iou_type), rtol=0, atol=1e-12)


def test_fast_eval_without_detections_or_labelled_ground_truth(taxonomy):
    """No detections at all: precision 0 where there is ground truth. Ground truth whose items have no
    labelled landmark: no landmark AP (nan), box AP as ``evaluate``."""
    rng = np.random.default_rng(3)
    box = np.array([10.0, 10.0, 60.0, 90.0])
    gt = {1: [Item(2, box, random_landmarks(rng, taxonomy, 2, box, "mixed"))], 2: []}
    evaluator = DeepFashion2Evaluator(gt, taxonomy)
    full = evaluator.evaluate({})
    assert evaluator.maps({}) == (full.map_pt, full.map_box) == (0.0, 0.0)
    unlabelled = DeepFashion2Evaluator({1: [Item(2, box, random_landmarks(rng, taxonomy, 2, box, "none"))]}, taxonomy)
    found = {1: [Detection(2, 0.5, 0.5, box, random_landmarks(rng, taxonomy, 2, box, "all"),
                           np.zeros(taxonomy.category(2).num_landmarks, bool))]}
    pt, box_map = unlabelled.maps(found)
    full = unlabelled.evaluate(found)
    assert np.isnan(pt) and np.isnan(full.map_pt) and box_map == full.map_box > 0.99


# ---------------------------------------------------------------------------------------------
# grid_decode against the per-image decoder

SETTINGS = [
    PostprocessParams.all_techniques(),
    replace(PostprocessParams.all_techniques(), sigma_center=0.0, sigma_keypoint=0.0),
    replace(PostprocessParams.all_techniques(), sigma_center=1.0, sigma_keypoint=0.05, gamma=0.2),
    replace(PostprocessParams.all_techniques(), keypoint_rescoring=False),
    replace(PostprocessParams.all_techniques(), nms_per_class=False, nms_iou=0.3),
    replace(PostprocessParams.all_techniques(), nms=False, max_detections=3),
    replace(PostprocessParams.all_techniques(), alpha=0.0),
    replace(PostprocessParams.all_techniques(), alpha=1.0, location_refinement=False),
    PostprocessParams(),
]
LOWEST_ALPHA = replace(PostprocessParams.all_techniques(), alpha=0.0)
"""The grid's floor parameters for SETTINGS: its lowest α, the thresholds every grid point shares."""
HIGH_THRESHOLDS = replace(LOWEST_ALPHA, score_threshold=0.3, peak_threshold=0.3)


def assert_same_at_every_setting(heads: dict, taxonomy, grouping) -> None:
    assert_same_detections(heads, taxonomy, grouping, LOWEST_ALPHA, SETTINGS)
    high = [replace(p, score_threshold=0.3, peak_threshold=0.3) for p in SETTINGS[:3]]
    assert_same_detections(heads, taxonomy, grouping, HIGH_THRESHOLDS, high)


def assert_same_detections(heads: dict, taxonomy, grouping, floor_params: PostprocessParams,
                           settings: list[PostprocessParams]) -> None:
    """Every field of every detection of the batched decoder equals the per-image stage cache's and
    ``decode_detections``'s, bit for bit (``floor_params``: the lowest α of ``settings``, as a grid sets it)."""
    layout = dec.decode_layout(taxonomy, grouping)
    ids = sorted(heads)
    caches = [_StageCache(heads[i], layout, floor_params) for i in ids]
    decoder = GridDecoder(caches, ids, layout, floor_params)
    for p in settings:
        batched = decoder.detections(p)
        expected = result_arrays({i: c.detections(p) for i, c in zip(ids, caches, strict=True)}, taxonomy, None)
        direct = result_arrays({i: dec.decode_detections(heads[i], p, taxonomy, grouping) for i in ids}, taxonomy,
                               None)
        for field in ("image_id", "category_id", "score", "box", "landmarks", "start"):
            np.testing.assert_array_equal(getattr(batched, field), getattr(expected, field), err_msg=f"{field} {p}")
            np.testing.assert_array_equal(getattr(batched, field), getattr(direct, field), err_msg=f"{field} {p}")


def test_batched_decode_equals_per_image_decode_on_simulated_heads(taxonomy, semantic62):
    """Noisy simulated scenes (and one image without garments) at every setting of techniques, σ, NMS and
    thresholds above."""
    rng = np.random.default_rng(5)
    heads = {}
    for image_id in range(1, 9):
        items = random_scene(rng, taxonomy, (256, 192)) if image_id != 4 else []
        heads[image_id] = simulated_heads(items, (256, 192), taxonomy, semantic62, rng, noise=0.08,
                                          regression_noise=1.5)
    assert_same_at_every_setting(heads, taxonomy, semantic62)


@pytest.fixture(scope="module")
def model_set(tmp_path_factory, taxonomy):
    """Six synthetic validation images (seed 1) with their labels and the default model's real heads."""
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.inference.detector import Detector
    from deepmark.core.synthetic.dataset import write_example

    folder = tmp_path_factory.mktemp("val")
    (folder / "image").mkdir()
    (folder / "annos").mkdir()
    for image_id in range(1, 7):
        write_example(folder, image_id, seed=1, taxonomy=taxonomy)
    gt, skipped = read_df2_annotations(folder / "annos", taxonomy)
    assert not skipped
    detector = Detector(threads=1)
    images = [cv2.cvtColor(cv2.imread(str(folder / "image" / f"{i:06d}.jpg")), cv2.COLOR_BGR2RGB) for i in gt]
    return gt, dict(zip(gt, detector.heads_batch(images), strict=True))


def test_batched_decode_and_fast_eval_on_the_models_heads(taxonomy, semantic62, model_set):
    """The default model's heads (more and weaker peaks than the simulation): same detections, same mAPs."""
    gt, heads = model_set
    assert_same_at_every_setting(heads, taxonomy, semantic62)
    evaluator = DeepFashion2Evaluator(gt, taxonomy)
    for p in SETTINGS[:4]:
        detections = {i: dec.decode_detections(heads[i], p, taxonomy, semantic62) for i in gt}
        full = evaluator.evaluate(detections)
        assert evaluator.maps(detections) == pytest.approx((full.map_pt, full.map_box), abs=1e-12, nan_ok=True)


def test_grid_table_is_what_each_point_evaluates_to(taxonomy, semantic62, model_set):
    """A small (σ_c, σ_k) grid on the model's heads: each cell equals pycocotools on that point's
    per-image decode."""
    gt, heads = model_set
    values = [[0.0, 0.6], [0.3, 1.0]]
    base = PostprocessParams.all_techniques()
    result = grid_search(heads, gt, ["sigma_center", "sigma_keypoint"], taxonomy, semantic62, base=base,
                         values=values)
    evaluator = DeepFashion2Evaluator(gt, taxonomy)
    for a, sc in enumerate(values[0]):
        for b, sk in enumerate(values[1]):
            p = replace(base, sigma_center=sc, sigma_keypoint=sk)
            full = evaluator.evaluate({i: dec.decode_detections(heads[i], p, taxonomy, semantic62) for i in gt})
            assert (result.map_pt[a, b], result.map_box[a, b]) == pytest.approx((full.map_pt, full.map_box),
                                                                                 abs=1e-12)


@pytest.mark.slow
def test_the_default_models_heads_at_a_few_grid_points(tmp_path, taxonomy, semantic62):
    """The bundled fp32 model's real heads on 40 synthetic validation-seed images (as the benchmark's
    ``deepmark predict --heads`` gives them): batched decode and fast mAPs equal the references."""
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.imaging.read import read_image
    from deepmark.core.inference.detector import Detector
    from deepmark.core.synthetic import generate_dataset

    generate_dataset(tmp_path / "val", 40, seed=1)
    gt, errors = read_df2_annotations(tmp_path / "val" / "annos", taxonomy)
    assert not errors
    detector = Detector()
    heads = {int(p.stem): detector.heads(read_image(p)) for p in sorted((tmp_path / "val" / "image").iterdir())}
    base = PostprocessParams.all_techniques()
    points = [replace(base, sigma_center=sc, sigma_keypoint=sk) for sc, sk in ((0.0, 0.0), (0.45, 0.9), (1.0, 0.35))]
    assert_same_detections(heads, taxonomy, semantic62, base, points)
    evaluator = DeepFashion2Evaluator(gt, taxonomy)
    for p in points:
        detections = {i: dec.decode_detections(heads[i], p, taxonomy, semantic62) for i in gt}
        full = evaluator.evaluate(detections)
        assert evaluator.maps(detections) == pytest.approx((full.map_pt, full.map_box), abs=1e-12)
