"""The assists the app offers while a person corrects, as plain functions over heads and arrays (no store, no
Qt): a new item's landmarks from a drawn box or a centre click, the landmarks a group-heatmap peak backs,
and the re-fit of the other landmarks after a fix.

Units: image pixels throughout; boxes (4,) xyxy; landmarks (L, 3) x, y, v as stored (v 2 visible, 1
occluded, 0 not present), L the category's count. The heatmap work itself is
``deepmark.core.centernet.assist`` (``prompted_landmarks``, ``snap_to_peak``); the fit is
``deepmark.core.studio.templates.refit_to_template``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepmark.core.centernet.assist import map_scale, prompted_landmarks, snap_to_peak
from deepmark.core.centernet.decode import MAX_REFINE_DISTANCE
from deepmark.core.domain.structures import PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Category, Grouping, Taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.studio.templates import MIN_FIXED, refit_to_template, template_landmarks

VISIBLE, OCCLUDED = 2, 1
# A landmark counts as backed by a peak when one of its group lies this many map pixels from it (a peak's
# offset position against the landmark's stored float: rounding and an offset slightly outside [0, 1)).
BACKED_MAP_PX = 1.5


@dataclass(frozen=True, eq=False)
class NewItem:
    """A new item's content: ``box`` (4,) xyxy and ``landmarks`` (L, 3) x, y, v in image pixels;
    ``confident`` (L,) bool: placed on a group-heatmap peak; ``source`` 'heatmaps' or 'template' (no heads)."""

    box: np.ndarray
    landmarks: np.ndarray
    confident: np.ndarray
    source: str


def prompted_item(heads: RawHeads | None, prompt, category: Category, params: PostprocessParams,
                  taxonomy: Taxonomy, grouping: Grouping | None,
                  image_size: tuple[int, int] | None = None) -> NewItem:
    """The item the user asks for by a ``prompt``: a box (4,) x1, y1, x2, y2 or a centre click (2,) x, y.

    With ``heads`` (the image's cached heads, decoded with ``params`` as the live view is): the landmarks of
    ``prompted_landmarks`` — visible (v 2) where a group-heatmap peak placed them, occluded (v 1) where no
    peak is confident and they stay at the fallback (the template over the box; for a click the regressed
    position), as accepting a prediction marks the landmarks the model only regressed. The box is the
    user's, or for a click the one the model regresses at the centre found. Without heads (no model) a box
    gets the category template stretched over it, every landmark visible (the manual tool as it always
    was), and a click is refused (DeepMarkError: it needs the heatmaps).

    ``image_size`` (width, height): positions and box are moved into the image (nothing added leaves it).
    """
    point = np.asarray(prompt, np.float64).reshape(-1)
    if heads is None or grouping is None:
        if point.shape != (4,):
            raise DeepMarkError(f"adding a {category.name} at a click needs the model's heatmaps (no model loaded); "
                                "draw its box instead")
        landmarks = template_landmarks(category, point)
        item = NewItem(point.copy(), landmarks, np.zeros(len(landmarks), bool), "template")
    else:
        found = prompted_landmarks(heads, point, category.id, params, taxonomy, grouping)
        v = np.where(found.confident, VISIBLE, OCCLUDED).astype(np.float64)
        item = NewItem(np.asarray(found.box, np.float64).copy(), np.column_stack([found.landmarks[:, :2], v]),
                       found.confident.copy(), "heatmaps")
    return clipped(item, image_size) if image_size is not None else item


def clipped(item: NewItem, image_size: tuple[int, int]) -> NewItem:
    """``item`` with its box and landmark positions moved into a ``image_size`` (width, height) image."""
    w, h = image_size
    box = np.clip(item.box, 0.0, [w, h, w, h])
    landmarks = item.landmarks.copy()
    landmarks[:, 0] = np.clip(landmarks[:, 0], 0.0, w)
    landmarks[:, 1] = np.clip(landmarks[:, 1], 0.0, h)
    return NewItem(box, landmarks, item.confident, item.source)


def landmark_group(taxonomy: Taxonomy, grouping: Grouping, category_id: int, idx: int) -> int:
    """The heatmap channel (group) of landmark ``idx`` (0-based) of category ``category_id``."""
    return int(grouping.category_groups[taxonomy.category_index(category_id)][idx])


def backing_radius(heads: RawHeads, box, params: PostprocessParams) -> float:
    """Image pixels within which a peak counts as the one a decoded landmark of a garment in ``box`` (4,)
    xyxy sits on: ``BACKED_MAP_PX`` map pixels, plus, with location refinement, the most that blending
    with the coarse landmark moves it off the peak, (1 − γ) · 0.3 · max(w, h) (the decoder accepts no peak
    farther than 0.3 × max(w, h) from the coarse landmark)."""
    per_image_px = map_scale(heads.image_to_map)  # map pixels per image pixel
    b = np.asarray(box, np.float64)
    radius = BACKED_MAP_PX / per_image_px
    if params.location_refinement:
        radius += (1.0 - params.gamma) * MAX_REFINE_DISTANCE * float(max(b[2] - b[0], b[3] - b[1]))
    return radius


def peak_backed(heads: RawHeads, grouping: Grouping, taxonomy: Taxonomy, category_id: int, landmarks, box,
                params: PostprocessParams) -> np.ndarray:
    """(L,) bool: the landmarks (L, 3) of a ``category_id`` item in ``box`` that sit on a confident peak of
    their group heatmap — one scoring above ``params.peak_threshold`` (the decoder's floor) within
    ``backing_radius``. Not-present landmarks (v 0) are never backed."""
    points = np.asarray(landmarks, np.float64)
    groups = grouping.category_groups[taxonomy.category_index(category_id)]
    radius = backing_radius(heads, box, params)
    floor = max(params.peak_threshold, 0.0)
    return np.array([points[i, 2] > 0 and snap_to_peak(heads, int(groups[i]), points[i, :2], radius, floor)
                     is not None for i in range(len(points))], bool)


def refit_others(category: Category, landmarks, fixed) -> tuple[np.ndarray, np.ndarray]:
    """Re-place the landmarks that are neither ``fixed`` (L,) bool nor not present (v 0) on the category
    template fitted (least-squares similarity) to the fixed ones: (new landmarks (L, 3), re-placed (L,) bool).
    Visibilities are kept; a not-present landmark never fixes the fit either (its stored position means
    nothing). With fewer than two fixed landmarks nothing fixes the fit: nothing is re-placed."""
    points = np.asarray(landmarks, np.float64)
    mask = np.asarray(fixed, bool) & (points[:, 2] > 0)
    movable = ~mask & (points[:, 2] > 0)
    out = points.copy()
    if mask.sum() < MIN_FIXED or not movable.any():
        return out, np.zeros(len(points), bool)
    out[:, :2] = refit_to_template(category, points[:, :2], mask)
    out[~movable, :2] = points[~movable, :2]  # not-present landmarks stay where they are stored
    replaced = movable & (np.abs(out[:, :2] - points[:, :2]) > 1e-9).any(axis=1)
    return out, replaced
