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


# Two landmarks fix a similarity transform (scale, rotation, translation); fewer fix no scale.
MIN_FIXED = 2


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[complex, complex] | None:
    """Least-squares similarity from ``source`` (N, 2) to ``target`` (N, 2) points: (a, b) with each point
    as a complex number z, z ↦ a·z + b (|a| the scale, arg a the rotation, b the translation; no
    reflection). The closed form of Umeyama's fit in 2-D. None when the source points all coincide
    (nothing fixes scale or rotation) or N < 2."""
    src = np.asarray(source, np.float64) @ np.array([1.0, 1j])
    dst = np.asarray(target, np.float64) @ np.array([1.0, 1j])
    if len(src) < MIN_FIXED:
        return None
    src_c, dst_c = src - src.mean(), dst - dst.mean()
    spread = float(np.sum(np.abs(src_c) ** 2))
    if spread <= 1e-12 * max(float(np.max(np.abs(src))) ** 2, 1.0):
        return None
    a = complex(np.sum(np.conj(src_c) * dst_c) / spread)
    return a, complex(dst.mean() - a * src.mean())


def refit_to_template(category: Category, landmarks, fixed) -> np.ndarray:
    """(L, 2): ``landmarks`` (L, 2) pixels with every landmark that is not ``fixed`` (L,) bool re-placed on
    the category template fitted to the fixed ones by a least-squares similarity (``similarity_fit``);
    fixed landmarks are returned unchanged.

    The template is taken in its drawing's proportions (x × ``template_aspect``), as a similarity keeps
    proportions: a garment drawn wider or narrower than the template is fitted as well as a similarity
    can. With fewer than ``MIN_FIXED`` (2) fixed landmarks, or fixed landmarks whose template positions
    coincide, nothing determines the scale and rotation: a copy of ``landmarks`` is returned unchanged
    (the caller can test ``fixed.sum() >= MIN_FIXED`` first to tell the user)."""
    points = np.asarray(landmarks, np.float64)
    mask = np.asarray(fixed, bool)
    n = category.num_landmarks
    if points.shape != (n, 2) or mask.shape != (n,):
        raise DeepMarkError(f"re-fit for {category.name}: expected landmarks ({n}, 2) and fixed ({n},), "
                            f"got {points.shape} and {mask.shape}")
    if not np.isfinite(points[mask]).all():
        raise DeepMarkError(f"re-fit for {category.name}: a fixed landmark is not a finite position")
    template = np.asarray(category.template, np.float64) * (category.template_aspect, 1.0)
    fit = similarity_fit(template[mask], points[mask])
    out = points.copy()
    if fit is None:
        return out
    a, b = fit
    placed = a * (template[~mask] @ np.array([1.0, 1j])) + b
    out[~mask] = np.column_stack([placed.real, placed.imag])
    return out
