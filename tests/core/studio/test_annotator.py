"""The simulated annotator: edits counted exactly on hand-built cases, assists that cannot help change nothing,
and what it stores is the truth within tolerance (simulated heads, and the bundled model on the demo images)."""

import math
from dataclasses import replace

import numpy as np
import pytest

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import Detection, Item, PostprocessParams
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.studio.annotator import (
    ALL_ASSISTS,
    ERROR_KINDS,
    MODES,
    PLAIN,
    Assists,
    EditCount,
    correct_image,
    found_share,
    inject_error,
    inject_errors,
    match_garments,
    order_gain,
    random_share,
    simulate_correction,
    tolerance_radius,
    top_n_precision,
    top_n_recall,
)
from deepmark.core.studio.doubt import keypoint_similarity
from deepmark.core.studio.templates import template_landmarks
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

TAXONOMY = load_taxonomy()
GROUPING = load_grouping("semantic62", TAXONOMY)
SIZE = (256, 256)
PARAMS = PostprocessParams.all_techniques()


def _garment(category_id: int = 1, box=(40.0, 50.0, 160.0, 200.0), visibility: float = 2.0) -> Item:
    category = TAXONOMY.category(category_id)
    landmarks = template_landmarks(category, box)
    landmarks[:, 2] = visibility
    return Item(category_id, np.asarray(box, np.float64), landmarks)


def _prediction(item: Item, category_id: int | None = None, score: float = 0.9) -> Detection:
    """A detection exactly on ``item``, every landmark placed by a peak (stored visible)."""
    n = len(item.landmarks)
    return Detection(category_id or item.category_id, score, score, item.box.copy(),
                     np.column_stack([item.landmarks[:, :2], np.full(n, 0.8)]), np.ones(n, bool))


def _edits(items, detections, assists=PLAIN, **kw) -> EditCount:
    return correct_image(items, detections, TAXONOMY, assists, noise=0.0, **kw).edits


def _within_tolerance(stored: Item, truth: Item) -> bool:
    category = TAXONOMY.category(truth.category_id)
    labelled = truth.landmarks[:, 2] > 0
    box = truth.box
    area = float((box[2] - box[0]) * (box[3] - box[1]))
    ks = keypoint_similarity(truth.landmarks[:, :2], stored.landmarks[:, :2], category.oks_sigmas, area)
    return (stored.category_id == truth.category_id and (ks[labelled] >= 0.9 - 1e-9).all()
            and np.array_equal(stored.landmarks[:, 2], truth.landmarks[:, 2])
            and (stored.landmarks[~labelled] == 0).all())


# ---------------------------------------------------------------------------------------------
# Exact counts on hand-built cases


def test_a_perfect_prediction_needs_no_edit():
    item = _garment()
    assert _edits([item], [_prediction(item)]) == EditCount(garments=1)


@pytest.mark.parametrize("moved", [1, 3, 6])
def test_each_moved_landmark_is_one_drag(moved):
    item = _garment()
    detection = _prediction(item)
    detection.landmarks[:moved, 0] += 20.0
    assert _edits([item], [detection]) == EditCount(drags=moved, garments=1)


def test_a_landmark_just_inside_the_tolerance_is_kept():
    item = _garment()
    radius = tolerance_radius(item, TAXONOMY.category(item.category_id))
    detection = _prediction(item)
    detection.landmarks[:, 0] += 0.99 * radius
    assert _edits([item], [detection]).drags == 0
    detection.landmarks[:, 0] += 0.02 * radius
    assert _edits([item], [detection]).drags == len(radius)


def test_a_missed_garment_is_a_box_a_category_and_its_wrong_landmarks():
    truth = _garment()
    moved = truth.landmarks.copy()
    moved[:4, 1] += 25.0  # four landmarks away from where the template over the box puts them
    item = Item(truth.category_id, truth.box, moved)
    assert _edits([item], []) == EditCount(drags=4, boxes=1, category=1, garments=1)


def test_a_spurious_detection_is_one_delete_and_a_duplicate_too():
    item = _garment()
    other = _garment(box=(170.0, 20.0, 250.0, 120.0))
    assert _edits([item], [_prediction(item), _prediction(other), _prediction(item, score=0.5)]) == \
        EditCount(deletes=2, garments=1)


def test_a_wrong_category_is_one_key_then_the_new_categorys_landmarks():
    item = _garment(category_id=1)
    edits = _edits([item], [_prediction(_garment(category_id=2, box=tuple(item.box)), category_id=2)])
    # re-categorised, the item gets the template over the box: the truth here, so nothing to drag
    assert edits == EditCount(category=1, garments=1)


def test_visibility_keys_and_absent_landmarks_need_no_drag():
    item = _garment()
    item.landmarks[[0, 1], 2] = 1.0  # occluded: one key each (the prediction stores them visible)
    item.landmarks[2] = 0.0  # not present: one key, never dragged
    detection = _prediction(_garment())
    detection.landmarks[2, 0] += 30.0
    assert _edits([item], [detection]) == EditCount(visibility=3, garments=1)


def test_a_regressed_landmark_is_stored_occluded():
    item = _garment()
    detection = _prediction(item)
    detection.landmarks[5, 2] = 0.0  # no peak: accepting stores it occluded, the truth says visible
    detection.refined[5] = False
    assert _edits([item], [detection]) == EditCount(visibility=1, garments=1)


def test_a_box_far_from_the_truth_is_redrawn():
    item = _garment()
    detection = _prediction(item)
    detection = replace(detection, box=item.box + np.array([0.0, 0.0, 50.0, 40.0]))
    assert _edits([item], [detection]) == EditCount(boxes=1, garments=1)


def test_matching_prefers_the_same_category():
    item = _garment(category_id=3)
    wrong = _prediction(item, category_id=4, score=0.95)
    right = replace(_prediction(item), box=item.box + 6.0)  # lower IoU, right category
    assert match_garments([item], [wrong, right]) == [1]
    assert match_garments([item], []) == [None]


def test_hand_noise_can_take_more_than_one_drag():
    item = _garment(box=(40.0, 50.0, 60.0, 70.0))  # tiny: sub-pixel tolerances
    detection = _prediction(item)
    detection.landmarks[:, 0] += 10.0
    edits = correct_image([item], [detection], TAXONOMY, noise=2.0).edits
    assert edits.drags > len(item.landmarks)
    assert correct_image([item], [detection], TAXONOMY, noise=2.0).edits == edits  # same hand, same count


def test_prompted_and_snap_need_heads():
    item = _garment()
    with pytest.raises(DeepMarkError, match="heads"):
        correct_image([item], [], TAXONOMY, Assists(snap=True))


# ---------------------------------------------------------------------------------------------
# Assists


def _scene(seed: int, noise: float = 0.05, regression_noise: float = 1.5):
    rng = np.random.default_rng(seed)
    items = random_scene(rng, TAXONOMY, SIZE)
    return items, simulated_heads(items, SIZE, TAXONOMY, GROUPING, rng, noise, regression_noise)


@pytest.mark.parametrize("assists", MODES[1:4])
def test_assists_change_nothing_where_they_cannot_help(assists):
    """Every detected landmark placed by a peak (nothing to re-fit), empty heatmaps (nothing to snap to or
    prompt from): each assist alone gives plain's count exactly. The prompted one gets a missed garment: the
    template over its box again, only stored occluded (no peak placed it)."""
    items, heads = _scene(3)
    empty = replace(heads, hm=np.zeros_like(heads.hm), hm_hp=np.zeros_like(heads.hm_hp))
    rng = np.random.default_rng(1)
    detections = []
    for item in items[1:] if assists.prompted else items:
        detection = _prediction(item)
        detection.landmarks[:, :2] += rng.normal(0, 4.0, (len(item.landmarks), 2))
        detections.append(detection)
    kw = dict(heads=empty, params=PARAMS, grouping=GROUPING, seed=5, image=1)
    plain = correct_image(items, detections, TAXONOMY, PLAIN, **kw).edits
    v = items[0].landmarks[:, 2]
    extra = int((v == 2).sum() - (v == 1).sum()) if assists.prompted else 0
    assert correct_image(items, detections, TAXONOMY, assists, **kw).edits == replace(
        plain, visibility=plain.visibility + extra)


@pytest.mark.parametrize("seed", range(6))
def test_snap_never_costs_a_drag(seed):
    """Snap only ever lands a drag that would have missed: with the same hand, never more drags."""
    items, heads = _scene(seed)
    detections = decode_detections(heads, PARAMS, TAXONOMY, GROUPING)
    kw = dict(heads=heads, params=PARAMS, grouping=GROUPING, seed=seed, image=seed, noise=2.0)
    plain = correct_image(items, detections, TAXONOMY, PLAIN, **kw).edits
    snap = correct_image(items, detections, TAXONOMY, Assists(snap=True), **kw).edits
    assert snap.drags <= plain.drags
    assert replace(snap, drags=0) == replace(plain, drags=0)


def test_prompted_landmarks_beat_the_template_for_a_missed_garment():
    """Simulated heads hold each garment's peaks: prompted from the drawn box, a missed garment needs
    fewer drags than the template over it."""
    plain_total, prompted_total = 0, 0
    for seed in range(6):
        items, heads = _scene(seed, noise=0.02, regression_noise=0.3)
        kw = dict(heads=heads, params=PARAMS, grouping=GROUPING, seed=seed, image=seed)
        plain_total += correct_image(items, [], TAXONOMY, PLAIN, **kw).edits.drags
        prompted_total += correct_image(items, [], TAXONOMY, Assists(prompted=True), **kw).edits.drags
    assert prompted_total < plain_total


def test_refit_places_the_unconfident_landmarks_after_two_drags():
    """The truth is the template's own shape; the prediction has two wrong landmarks from peaks and the rest
    regressed, all off: plain drags every landmark, re-fit only the two anchors and places the rest."""
    category = TAXONOMY.category(1)
    n = category.num_landmarks
    height = 150.0
    item = _garment(box=(40.0, 50.0, 40.0 + category.template_aspect * height, 50.0 + height))
    item.landmarks[2:, 2] = 1.0
    detection = _prediction(_garment(box=(52.0, 61.0, 62.0 + category.template_aspect * 170.0, 231.0)))
    detection = replace(detection, box=item.box.copy())
    detection.landmarks[2:, 2] = 0.0
    detection.refined[2:] = False
    detection.landmarks[:2, 0] -= 30.0
    assert _edits([item], [detection]) == EditCount(drags=n, garments=1)
    assert _edits([item], [detection], Assists(refit=True)) == EditCount(drags=2, garments=1)


# ---------------------------------------------------------------------------------------------
# What the annotator stores


@pytest.mark.parametrize("assists", [PLAIN, ALL_ASSISTS])
def test_simulate_correction_stores_the_truth_within_tolerance(assists):
    truth, heads, predictions = {}, {}, {}
    for image_id in range(1, 7):
        items, h = _scene(image_id + 10)
        truth[image_id], heads[image_id] = items, h
        predictions[image_id] = decode_detections(h, PARAMS, TAXONOMY, GROUPING)
    predictions.pop(6)  # an image without predictions: everything drawn
    stored = simulate_correction(predictions, truth, TAXONOMY, assists, heads, PARAMS, GROUPING, seed=2)
    assert stored.keys() == truth.keys()
    for image_id, items in truth.items():
        assert len(stored[image_id]) == len(items)
        assert all(_within_tolerance(s, t) for s, t in zip(stored[image_id], items, strict=True))


def test_simulate_correction_keeps_what_was_already_right():
    item = _garment()
    detection = _prediction(item)
    detection.landmarks[:, :2] += 0.3  # within tolerance: kept as predicted, not replaced by the truth
    detection.landmarks[0, 0] += 30.0
    (stored,) = simulate_correction({1: [detection]}, {1: [item]}, TAXONOMY)[1]
    np.testing.assert_array_equal(stored.landmarks[1:, :2], detection.landmarks[1:, :2])
    assert np.hypot(*(stored.landmarks[0, :2] - item.landmarks[0, :2])) < 10.0
    np.testing.assert_array_equal(stored.box, detection.box)


def test_simulate_correction_keeps_what_it_stores_inside_the_image():
    """A garment at the border: the hand-drawn box (and a dragged landmark) may land past the edge; the app keeps
    them inside the image, and so must the labels the loop imports (the store refuses a box outside)."""
    item = _garment()
    width = float(item.box[2]) - 0.5  # the true box touches the right edge of a slightly narrower image
    height = float(item.box[3]) + 50.0
    item = replace(item, landmarks=np.column_stack([np.minimum(item.landmarks[:, 0], width), item.landmarks[:, 1:]]))
    outside = {seed: simulate_correction({}, {1: [item]}, TAXONOMY, seed=seed)[1][0] for seed in range(20)}
    assert any(s.box[2] > width for s in outside.values())  # without the size some drawn boxes stick out
    for seed in range(20):
        (stored,) = simulate_correction({}, {1: [item]}, TAXONOMY, seed=seed, image_sizes={1: (width, height)})[1]
        assert 0.0 <= stored.box[0] <= stored.box[2] <= width and 0.0 <= stored.box[1] <= stored.box[3] <= height
        labelled = stored.landmarks[:, 2] > 0
        assert (stored.landmarks[labelled, 0] <= width).all() and (stored.landmarks[labelled, :2] >= 0).all()
        np.testing.assert_array_equal(stored.landmarks[:, 2], outside[seed].landmarks[:, 2])


@pytest.fixture(scope="module")
def demo_predictions():
    """The bundled model on four demo images with their labels: (labels, heads, detections)."""
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.imaging.read import read_image
    from deepmark.core.inference.detector import Detector
    from deepmark.core.studio.display import demo_folder

    detector = Detector(threads=1)
    labels, _ = read_df2_annotations(demo_folder() / "annos", TAXONOMY)
    out = {}
    for path in sorted((demo_folder() / "image").glob("*.jpg"))[:4]:
        heads = detector.heads(read_image(path))
        out[int(path.stem)] = (labels[int(path.stem)], heads, decode_detections(heads, PARAMS, TAXONOMY, GROUPING))
    return out


def test_real_heads_every_mode_reaches_tolerance(demo_predictions):
    truth = {k: v[0] for k, v in demo_predictions.items()}
    predictions = {k: v[2] for k, v in demo_predictions.items()}
    heads = {k: v[1] for k, v in demo_predictions.items()}
    for assists in MODES:
        stored = simulate_correction(predictions, truth, TAXONOMY, assists, heads, PARAMS, GROUPING)
        for image_id, items in truth.items():
            assert all(_within_tolerance(s, t) for s, t in zip(stored[image_id], items, strict=True))
        edits = [correct_image(truth[k], predictions[k], TAXONOMY, assists, heads[k], PARAMS, GROUPING,
                               image=k).edits for k in truth]
        total = sum(edits, EditCount())
        assert total.garments == sum(len(v) for v in truth.values()) and total.total > 0


# ---------------------------------------------------------------------------------------------
# Review order and likely mistakes


def test_the_perfect_order_has_all_the_gain_and_a_random_one_none():
    edits = np.array([5, 0, 12, 3, 3, 7, 1, 0, 9, 2])
    perfect = np.argsort(-edits)
    assert found_share(edits, perfect) == pytest.approx((12 + 9) / edits.sum())  # 20 % of 10 images: two
    assert order_gain(edits, perfect) == pytest.approx(1.0)
    assert order_gain(edits, perfect[::-1]) < 0
    assert random_share(edits, orders=4000) == pytest.approx(0.2, abs=0.01)
    assert math.isnan(order_gain(np.full(10, 3), np.arange(10)))  # nothing to gain: every image alike
    assert found_share(np.zeros(4), np.arange(4)) == 0.0


def test_top_n_on_a_hand_built_ranking():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    injected = np.array([True, False, True, False, False, True, False, False])
    # N = 2 × 3 injected = 6: items 0..5 hold all three; the first three hold two
    assert top_n_recall(scores, injected) == pytest.approx(1.0)
    assert top_n_recall(scores, injected, n=3) == pytest.approx(2 / 3)
    assert top_n_precision(scores, injected) == pytest.approx(2 / 3)
    assert top_n_precision(scores, injected, n=2) == pytest.approx(0.5)
    assert math.isnan(top_n_recall(scores, np.zeros(8, bool)))


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_each_injected_error_is_what_it_says(kind):
    rng = np.random.default_rng(4)
    item = _garment(category_id=1)
    wrong = inject_error(item, kind, rng, TAXONOMY)
    changed = np.flatnonzero(np.hypot(*(wrong.landmarks[:, :2] - item.landmarks[:, :2]).T) > 1e-9) \
        if wrong.category_id == item.category_id else None
    if kind == "moved":
        assert len(changed) == 1
        size = np.hypot(*(item.box[2:] - item.box[:2]))
        assert np.hypot(*(wrong.landmarks[changed[0], :2] - item.landmarks[changed[0], :2])) == pytest.approx(
            0.2 * size)
    elif kind == "swapped":
        assert len(changed) == 2 and tuple(sorted(changed)) in {tuple(sorted(p)) for p in
                                                               TAXONOMY.category(1).flip_pairs.reshape(-1, 2)}
    else:
        assert wrong.category_id != item.category_id
    np.testing.assert_array_equal(wrong.box, item.box)


def test_injected_at_a_known_rate():
    rng = np.random.default_rng(0)
    images = {i: [_garment(category_id=1 + i % 13)] * 5 for i in range(200)}
    altered, flags = inject_errors(images, 0.1, rng, TAXONOMY)
    rate = np.concatenate(list(flags.values())).mean()
    assert 0.07 < rate < 0.13
    for image_id, items in images.items():
        for before, after, injected in zip(items, altered[image_id], flags[image_id], strict=True):
            assert (after is before) != bool(injected)
