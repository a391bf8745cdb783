"""Heatmap help while a person corrects: landmarks for a box or a centre click, snapping to a peak, and the
per-landmark peak contrast that the doubt scores read.

Pure functions over ``RawHeads`` and numpy, no store and no Qt. Points and boxes come in and go out in
image pixels (the caller's frame); inside, everything is in output-map pixels as in ``decode``. The
matching is the decoder's own (``match_landmarks``), run for one box the user gives instead of a
candidate the center heatmap gives, so a prompted garment gets exactly the landmarks a decoded garment
with that box and those coarse positions would get.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deepmark.core.centernet.decode import (
    MAX_REFINE_DISTANCE,
    Candidates,
    center_boxes,
    coarse_landmarks,
    decode_layout,
    landmark_peaks,
    match_landmarks,
    validate_heads,
)
from deepmark.core.centernet.peaks import find_peaks
from deepmark.core.domain.structures import Affine, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.errors import DecodeError

# A click is rarely on the exact centre pixel; the centre peak of the category is searched this many map
# pixels (stride 4: ± 8 image pixels at the default input scale) around it.
CENTRE_SEARCH = 2
# A box drawn by hand (or labelled) is the landmarks' bounding box, so its outermost landmarks lie on its
# edge, where float32 rounding of a peak's position can put them just outside: peaks this many map pixels
# outside the user's box still count (half a map pixel: 2 image pixels at stride 4).
BOX_TOLERANCE = 0.5
# CenterNet's landmark-peak floor: below it the decoder never uses a peak, so snapping does not either.
SNAP_MIN_SCORE = 0.1


@dataclass(frozen=True, eq=False)
class PromptedLandmarks:
    """Landmarks of one garment the user pointed at.

    ``landmarks`` (L, 3) float64: x, y in image pixels and the landmark score in [0, 1] (the accepted
    peak's, as in a ``Detection``; 0 where no peak was accepted); ``confident`` (L,) bool: True where a
    group-heatmap peak placed the landmark, False where it is the fallback (the template over the box,
    or with a click the regressed position); ``box`` (4,) float64 xyxy image pixels: the user's box, or
    for a click the regressed box at the centre found; ``centre_score`` the category's center-heatmap
    value at the centre used (for a box: at the box's middle)."""

    landmarks: np.ndarray
    confident: np.ndarray
    box: np.ndarray
    centre_score: float


def prompted_landmarks(
    heads: RawHeads,
    prompt,
    category_id: int,
    params: PostprocessParams,
    taxonomy: Taxonomy,
    grouping: Grouping,
    centre_search: int = CENTRE_SEARCH,
) -> PromptedLandmarks:
    """The landmarks of a ``category_id`` garment at ``prompt``, from the group heatmaps.

    ``prompt`` is a box (4,) x1, y1, x2, y2 or a centre click (2,) x, y, in image pixels.

    * Box: the coarse landmarks are the category template stretched over the box (``template_landmarks``
      in ``deepmark.core.studio.templates`` does the same for a new item without heads); peaks up to
      ``BOX_TOLERANCE`` map pixels outside the box count as inside (the outermost landmarks lie on a
      tight box's edge).
    * Click: the centre is the pixel of highest center heatmap of the category within ``centre_search``
      map pixels of the click; the coarse landmarks are the ``hps`` regression there and the box the
      ``reg`` + ``wh`` box there, exactly as the decoder derives them for a candidate at that pixel.

    Then each landmark takes its group's peak by the decoder's rule (``match_landmarks``: nearest or,
    with keypoint rescoring, the best Gaussian-weighted peak; rejected outside the box, below
    ``peak_threshold`` or farther than 0.3 × max(w, h)), and its position is the peak or, with location
    refinement, γ · peak + (1 − γ) · coarse. Landmarks without an accepted peak keep the coarse
    position with score 0 and ``confident`` False.

    Raises DecodeError for heads that do not fit the taxonomy and grouping or a malformed prompt, and
    TaxonomyError for an unknown category.
    """
    validate_heads(heads, taxonomy, grouping)
    category = taxonomy.category(category_id)
    k = taxonomy.category_index(category_id)
    point = np.asarray(prompt, np.float64).reshape(-1)
    if point.shape not in ((2,), (4,)) or not np.isfinite(point).all():
        raise DecodeError(f"prompt must be a finite box (x1, y1, x2, y2) or centre (x, y) in image pixels, "
                          f"got {np.asarray(prompt).tolist()}")
    to_map = heads.image_to_map
    if point.shape == (4,):
        if point[2] <= point[0] or point[3] <= point[1]:
            raise DecodeError(f"prompt box must have x2 > x1 and y2 > y1, got {point.tolist()}")
        groups = grouping.category_groups[k][None]  # (1, L)
        stretched = point[:2] + category.template * (point[2:] - point[:2])  # (L, 2) image pixels
        coarse = to_map.apply(stretched)[None]  # (1, L, 2) map pixels
        box = map_box(to_map, point)[None] + (-BOX_TOLERANCE, -BOX_TOLERANCE, BOX_TOLERANCE, BOX_TOLERANCE)
        box_image = point.copy()
        u, v = to_map.apply((point[:2] + point[2:]) / 2)
        y, x = centre_peak(heads.hm[k], u, v, 0)
        centre_score = float(heads.hm[k, y, x])
    else:
        u, v = to_map.apply(point)
        y, x = centre_peak(heads.hm[k], u, v, centre_search)
        box = center_boxes(heads, np.array([y]), np.array([x]))
        centre_score = float(heads.hm[k, y, x])
        cand = Candidates(np.array([k]), np.array([y]), np.array([x]), box, np.array([centre_score]))
        coarse, groups = coarse_landmarks(heads, cand, decode_layout(taxonomy, grouping))
        box_image = map_box(to_map.inverse(), box[0])
    marks = match_landmarks(coarse, groups, box, landmark_peaks(heads, params), params)
    n = category.num_landmarks
    xy = to_map.inverse().apply(marks.positions(params)[0, :n])
    return PromptedLandmarks(np.column_stack([xy, marks.score[0, :n]]), marks.refined[0, :n].copy(), box_image,
                             centre_score)


def map_box(affine: Affine, box) -> np.ndarray:
    """(4,) xyxy box → (4,) xyxy box through ``affine``: the bounding box of its mapped corners."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    corners = affine.apply(np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]))
    return np.concatenate([corners.min(axis=0), corners.max(axis=0)])


def centre_peak(heat: np.ndarray, u: float, v: float, radius: int) -> tuple[int, int]:
    """(row, column) of the highest value of ``heat`` (H, W) within ``radius`` map pixels (a square) of the
    pixel holding map point (u, v), which is clamped into the map; ties go to the first in raster order."""
    height, width = heat.shape
    row = int(np.clip(math.floor(v), 0, height - 1))
    col = int(np.clip(math.floor(u), 0, width - 1))
    r = max(int(radius), 0)
    y0, x0 = max(row - r, 0), max(col - r, 0)
    window = heat[y0: row + r + 1, x0: col + r + 1]
    dy, dx = np.unravel_index(int(np.argmax(window)), window.shape)
    return y0 + int(dy), x0 + int(dx)


def map_scale(affine: Affine) -> float:
    """The largest factor by which ``affine`` stretches a length (its linear part's largest singular value)."""
    return float(np.linalg.svd(affine.matrix[:, :2], compute_uv=False)[0])


def snap_to_peak(
    heads: RawHeads,
    group: int,
    point,
    radius: float,
    min_score: float = SNAP_MIN_SCORE,
    sigma: float = 0.0,
) -> tuple[np.ndarray, float] | None:
    """The nearest local maximum of group ``group``'s heatmap to ``point`` (2,) x, y image pixels, within
    ``radius`` image pixels: its position (2,) float64 in image pixels (the peak pixel plus ``hp_offset``,
    as the decoder places peaks) and its score in [0, 1]; None when no peak scoring above ``min_score``
    lies that close.

    Peaks are those of the decoder (``find_peaks``, strictly above ``min_score``, after smoothing with
    ``sigma`` map pixels; pass ``params.sigma_keypoint`` to snap to what heatmap rescoring sees). Only a
    window around the point is searched, with a margin so that the peaks found there are exactly the
    whole map's (for offsets within a pixel of [0, 1)); ties in distance go to the higher score.
    """
    if not 0 <= int(group) < heads.num_groups:
        raise DecodeError(f"group {group} is not a group of these heads (0..{heads.num_groups - 1})")
    xy = np.asarray(point, np.float64).reshape(-1)
    if xy.shape != (2,) or not np.isfinite(xy).all() or not math.isfinite(radius) or radius < 0:
        raise DecodeError(f"snap needs a finite point (x, y) and radius ≥ 0, got {np.asarray(point).tolist()}, "
                          f"{radius!r}")
    height, width = heads.map_size
    u, v = heads.image_to_map.apply(xy)
    # + 2: a peak's offset position lies within its pixel for a trained offset in [0, 1), and a network's
    # offsets stray from [0, 1) by well under a pixel
    reach = radius * map_scale(heads.image_to_map) + 2.0
    core = (max(math.floor(v - reach), 0), min(math.floor(v + reach) + 1, height),
            max(math.floor(u - reach), 0), min(math.floor(u + reach) + 1, width))
    if core[0] >= core[1] or core[2] >= core[3]:
        return None
    # The max-pool reads one pixel beyond and the smoothing one more: with that margin the window's own
    # peaks are the map's (at the map's edge the crop's padding is the map's padding).
    margin = 2 if sigma >= 1e-3 else 1
    y0, x0 = max(core[0] - margin, 0), max(core[2] - margin, 0)
    crop = heads.hm_hp[int(group), y0: core[1] + margin, x0: core[3] + margin]
    peaks = find_peaks(crop[None], min_score, sigma, strict=True)
    py, px = peaks.y + y0, peaks.x + x0
    inside = (py >= core[0]) & (py < core[1]) & (px >= core[2]) & (px < core[3])
    if not inside.any():
        return None
    py, px, score = py[inside], px[inside], peaks.score[inside]
    at = np.stack([px + heads.hp_offset[0, py, px], py + heads.hp_offset[1, py, px]], axis=1)
    image_xy = heads.image_to_map.inverse().apply(at.astype(np.float64))
    dist = np.hypot(*(image_xy - xy).T)
    near = np.flatnonzero(dist <= radius)
    if len(near) == 0:
        return None
    best = near[np.lexsort((-score[near], dist[near]))[0]]
    return image_xy[best], float(score[best])


def peak_contrast(
    coarse: np.ndarray,
    groups: np.ndarray,
    box: np.ndarray,
    peaks: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The best and second-best peak scores each landmark could take: ``best``, ``second`` (D, Lmax) in
    [0, 1] (0 where there is none, and for padding).

    Inputs as ``match_landmarks``: ``coarse`` (D, Lmax, 2) and ``box`` (D, 4) in map pixels, ``groups``
    (D, Lmax) (-1 pad), ``peaks`` from ``landmark_peaks``. A peak counts for a landmark when the decoder
    could accept it: inside the box (give or take ``BOX_TOLERANCE``: the outermost landmarks lie on the box's
    edge) and within 0.3 × max(w, h) of the coarse landmark. Scores are the
    peaks' own, not keypoint-rescored, so two equally strong peaks read as equally strong wherever the
    regression points.
    """
    peak_x, peak_y, peak_score = peaks
    num = groups.shape[0] * groups.shape[1]
    best, second = np.zeros(num), np.zeros(num)
    pair_d, pair_l = np.nonzero(groups >= 0)
    if len(pair_d) == 0:
        return best.reshape(groups.shape), second.reshape(groups.shape)
    g = groups[pair_d, pair_l]
    c = coarse[pair_d, pair_l]  # (P, 2)
    px, py, ps = peak_x[g].astype(np.float64), peak_y[g].astype(np.float64), peak_score[g].astype(np.float64)
    b = box[pair_d] + (-BOX_TOLERANCE, -BOX_TOLERANCE, BOX_TOLERANCE, BOX_TOLERANCE)
    reach = MAX_REFINE_DISTANCE * np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    with np.errstate(invalid="ignore"):  # padding at +inf: inf - inf never arises, inf compares False
        usable = ((px >= b[:, :1]) & (px <= b[:, 2:3]) & (py >= b[:, 1:2]) & (py <= b[:, 3:4])
                  & ((px - c[:, :1]) ** 2 + (py - c[:, 1:]) ** 2 <= (reach**2)[:, None]))
    scores = np.where(usable, ps, 0.0)  # (P, Kmax)
    if scores.shape[1] > 1:
        top2 = -np.partition(-scores, 1, axis=1)[:, :2]
    else:
        top2 = np.column_stack([scores[:, 0], np.zeros(len(scores))])
    flat = pair_d * groups.shape[1] + pair_l
    best[flat], second[flat] = top2[:, 0], top2[:, 1]
    return best.reshape(groups.shape), second.reshape(groups.shape)

