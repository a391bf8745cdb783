"""Landmarks for new and re-categorised items: the template fitted to a box, or the overlapping prediction."""

import numpy as np
import pytest

from deepmark.core.domain.structures import Detection
from deepmark.core.errors import DeepMarkError
from deepmark.core.studio.templates import box_ious, derive_landmarks, prediction_landmarks, template_landmarks


def _detection(taxonomy, category_id: int, box, seed: int = 0) -> Detection:
    rng = np.random.default_rng(seed)
    n = taxonomy.category(category_id).num_landmarks
    x1, y1, x2, y2 = box
    points = np.column_stack([rng.uniform(x1, x2, n), rng.uniform(y1, y2, n), rng.uniform(0, 1, n)])
    points[::3, 2] = 0.0  # landmarks the model only regressed
    return Detection(category_id, 0.9, 0.9, np.array(box, float), points, np.zeros(n, bool))


@pytest.mark.parametrize("category_id", range(1, 14))
def test_template_fills_the_box_with_visible_landmarks(taxonomy, category_id):
    category = taxonomy.category(category_id)
    box = np.array([40.0, 25.0, 240.0, 325.0])
    out = template_landmarks(category, box)
    assert out.shape == (category.num_landmarks, 3)
    assert (out[:, 2] == 2).all()
    # the template spans its own bounding box, so the fitted landmarks span the box exactly
    np.testing.assert_allclose(out[:, :2].min(0), box[:2])
    np.testing.assert_allclose(out[:, :2].max(0), box[2:])
    # and keep the template's layout: positions relative to the box are the template
    np.testing.assert_allclose((out[:, :2] - box[:2]) / (box[2:] - box[:2]), category.template, atol=1e-12)


def test_template_of_a_degenerate_box_is_refused(taxonomy):
    category = taxonomy.category(1)
    with pytest.raises(DeepMarkError, match="x2 ≥ x1"):
        template_landmarks(category, [10, 10, 5, 20])
    with pytest.raises(DeepMarkError):
        template_landmarks(category, [0, 0, np.nan, 20])
    # a zero-size box is allowed: every landmark on the point
    np.testing.assert_allclose(template_landmarks(category, [3, 4, 3, 4])[:, :2], [[3, 4]] * category.num_landmarks)


def test_box_ious():
    ious = box_ious([0, 0, 10, 10], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    np.testing.assert_allclose(ious, [1.0, 50 / 150, 0.0, 0.0])


def test_prediction_landmarks_mark_unfound_landmarks_occluded(taxonomy):
    det = _detection(taxonomy, 7, (0, 0, 50, 80))
    out = prediction_landmarks(det)
    np.testing.assert_allclose(out[:, :2], det.landmarks[:, :2])
    np.testing.assert_array_equal(out[:, 2], np.where(det.landmarks[:, 2] > 0, 2, 1))


def test_derive_prefers_the_best_overlapping_prediction_of_the_category(taxonomy):
    skirt = taxonomy.category(9)
    box = np.array([100.0, 100.0, 200.0, 300.0])
    near = _detection(taxonomy, 9, (105, 102, 205, 298), seed=1)
    farther = _detection(taxonomy, 9, (130, 140, 230, 330), seed=2)
    other_category = _detection(taxonomy, 8, (100, 100, 200, 300), seed=3)  # exact box, wrong category
    landmarks, source = derive_landmarks(skirt, box, [farther, other_category, near])
    assert source == "prediction"
    np.testing.assert_allclose(landmarks, prediction_landmarks(near))


def test_derive_falls_back_to_the_template(taxonomy):
    skirt = taxonomy.category(9)
    box = np.array([100.0, 100.0, 200.0, 300.0])
    apart = _detection(taxonomy, 9, (300, 300, 400, 500))
    for detections in ([], [apart], [_detection(taxonomy, 8, (100, 100, 200, 300))]):
        landmarks, source = derive_landmarks(skirt, box, detections)
        assert source == "template"
        np.testing.assert_allclose(landmarks, template_landmarks(skirt, box))
    # the overlap threshold decides
    half = _detection(taxonomy, 9, (100, 100, 200, 200))  # IoU 0.5 with the box
    assert derive_landmarks(skirt, box, [half], min_iou=0.5)[1] == "prediction"
    assert derive_landmarks(skirt, box, [half], min_iou=0.6)[1] == "template"
