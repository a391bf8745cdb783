"""Landmarks for an item whose landmarks are not known yet: a new box, or an item given another category.

Pure functions over numpy arrays (no store, no Qt). Units: boxes (4,) xyxy in image pixels; landmarks
(L, 3) float64 with x, y in pixels and visibility v (2 visible, 1 occluded), L the category's count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepmark.core.centernet.decode import box_iou
from deepmark.core.domain.structures import Detection
from deepmark.core.domain.taxonomy import Category
from deepmark.core.errors import DeepMarkError

# A prediction stands for the item when it overlaps the item's box at least this much (the COCO match).
MIN_IOU = 0.5


def template_landmarks(category: Category, box) -> np.ndarray:
    """(L, 3): the category's canonical layout stretched over ``box`` (4,) xyxy pixels, all visible.

    The template is normalised to its landmarks' bounding box, and a garment's box is (nearly) the
    bounding box of its landmarks, so stretching puts each landmark where it usually is in that box;
    the annotator then drags the few that differ."""
    box = np.asarray(box, np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
        raise DeepMarkError(f"template for {category.name}: box must be a finite x1, y1, x2, y2 with x2 ≥ x1 "
                            f"and y2 ≥ y1, got {box.tolist()}")
    size = box[2:] - box[:2]
    points = box[:2] + np.asarray(category.template, np.float64) * size
    return np.column_stack([points, np.full(len(points), 2.0)])


def box_ious(box, boxes) -> np.ndarray:
    """IoU of one (4,) xyxy ``box`` with each of ``boxes`` (N, 4): (N,) in [0, 1]."""
    stacked = np.vstack([np.asarray(box, np.float64).reshape(1, 4), np.asarray(boxes, np.float64).reshape(-1, 4)])
    return box_iou(stacked)[0, 1:]


def prediction_landmarks(detection: Detection) -> np.ndarray:
    """(L, 3) annotation landmarks from a detection: its positions, visible where the model found the
    landmark (score > 0), occluded where it only regressed it (as accepting a prediction does)."""
    out = np.array(detection.landmarks, np.float64)
    out[:, 2] = np.where(out[:, 2] > 0, 2.0, 1.0)
    return out


def derive_landmarks(category: Category, box, detections: Sequence[Detection] = (),
                     min_iou: float = MIN_IOU) -> tuple[np.ndarray, str]:
    """Landmarks (L, 3) for an item in ``box`` (4,) xyxy that is (re)labelled as ``category``.

    From the model's detection of that category overlapping the box most (IoU ≥ ``min_iou``) where
    there is one, else the category template fitted to the box. Returns the landmarks and where they
    came from: ``"prediction"`` or ``"template"``."""
    same = [d for d in detections if int(d.category_id) == category.id
            and np.asarray(d.landmarks).shape == (category.num_landmarks, 3)]
    if same:
        ious = box_ious(box, np.stack([np.asarray(d.box, np.float64) for d in same]))
        best = int(np.argmax(ious))
        if ious[best] >= min_iou:
            return prediction_landmarks(same[best]), "prediction"
    return template_landmarks(category, box), "template"
