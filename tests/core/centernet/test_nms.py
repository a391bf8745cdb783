"""Greedy box NMS: hand-made cases whose answer is known."""

import numpy as np

from deepmark.core.centernet.decode import box_iou, nms_keep


def test_greedy_chain_keeps_the_box_whose_suppressor_was_suppressed():
    # A overlaps B (IoU 0.67), B overlaps C (IoU 0.67), A and C barely touch: A suppresses B, so C stays
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10]], float)
    assert box_iou(boxes)[0, 1] > 0.6 and box_iou(boxes)[0, 2] < 0.5
    keep = nms_keep(boxes, np.array([0.9, 0.8, 0.7]), np.zeros(3, int), 0.5, per_class=True)
    assert keep.tolist() == [0, 2]


def test_order_follows_scores_and_classes_are_separate():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    scores = np.array([0.2, 0.9, 0.5])
    classes = np.array([1, 1, 2])
    assert nms_keep(boxes, scores, classes, 0.5, per_class=True).tolist() == [1, 2]
    assert nms_keep(boxes, scores, classes, 0.5, per_class=False).tolist() == [1]


def test_threshold_is_strict_and_empty_boxes_never_suppress():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], float)  # IoU exactly 1/3
    assert nms_keep(boxes, np.array([0.9, 0.8]), np.zeros(2, int), 1 / 3 + 1e-9, True).tolist() == [0, 1]
    assert nms_keep(boxes, np.array([0.9, 0.8]), np.zeros(2, int), 0.3, True).tolist() == [0]
    empty = np.array([[3, 3, 3, 3], [3, 3, 3, 3]], float)
    assert nms_keep(empty, np.array([0.9, 0.8]), np.zeros(2, int), 0.0, True).tolist() == [0, 1]
