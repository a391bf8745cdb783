"""Raw CenterNet heads → detections: CenterNet's multi-pose decode plus the four DeepMark++ techniques.

The chain, each step a function below (all lengths in output-map pixels until the last step):

1. center candidates: peaks of the (σ_c-smoothed) center heatmaps, the ``top_k`` best over all classes,
   minus those that cannot reach ``score_threshold`` even with perfect landmark scores (and, with center
   rescoring, those below ``candidate_floor``);
2. boxes from size + sub-pixel offset; coarse landmarks regressed from the integer center, only for the
   landmarks of each candidate's category;
3. landmark peaks: per group channel, peaks of the (σ_k-smoothed) group heatmap scoring above
   ``peak_threshold``, at most ``top_k`` per group, each moved by its sub-pixel offset;
4. matching: each coarse landmark takes its nearest peak (with keypoint rescoring: the peak of highest
   score × Gaussian(distance, σ = min(w, h)/9)); the peak is rejected when it lies outside the box, its
   score is below ``peak_threshold`` or it is farther than 0.3 × max(w, h); refined = γ·peak + (1 − γ)·coarse;
5. scores: α·score_box + (1 − α)·mean landmark score (unrefined landmarks score 0);
6. score threshold, box NMS, ``max_detections``; then back to image pixels through the inverse transform.

Everything is vectorised over candidates × landmarks × peaks: the app re-runs this on every slider move.
``docs/decoding.md`` is the exact definition; ``tests/core/centernet/reference_decoder.py`` follows it with loops.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from deepmark.core.centernet.peaks import Peaks, find_peaks, top_k_overall, top_k_per_channel
from deepmark.core.domain.structures import HEATMAP_HEADS, Detection, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.errors import DecodeError

# CenterNet's rule: a peak farther than this × max(box w, h) from the coarse landmark is not used.
MAX_REFINE_DISTANCE = 0.3
# DeepMark++ §3.2.4: the keypoint mask's σ is min(box w, h) / 9.
KEYPOINT_MASK_DIVISOR = 9.0

_validated: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class DecodeLayout:
    """Per class index: landmark groups padded to Lmax. ``groups`` (C, Lmax) int (-1 pad), ``count`` (C,);
    ``group_mean`` (C, G): 1/count where the class has a landmark in the group, else 0, so that
    ``group_mean @ v`` is each class's mean of a per-group value ``v`` (G,) over its landmarks."""

    groups: np.ndarray
    count: np.ndarray
    category_ids: np.ndarray
    group_mean: np.ndarray


@lru_cache(maxsize=8)
def decode_layout(taxonomy: Taxonomy, grouping: Grouping) -> DecodeLayout:
    counts = np.array([len(g) for g in grouping.category_groups])
    groups = np.full((len(counts), counts.max()), -1, np.int64)
    group_mean = np.zeros((len(counts), grouping.num_groups))
    for k, g in enumerate(grouping.category_groups):
        groups[k, : len(g)] = g
        if len(g):  # a class has at most one landmark per group (validated), so this is its mean
            group_mean[k, g] = 1.0 / len(g)
    return DecodeLayout(groups, counts, np.array(taxonomy.category_ids), group_mean)


@dataclass(frozen=True, eq=False)
class Candidates:
    """D center candidates in map pixels: class index, integer center, box (D, 4) xyxy, score (D,)."""

    cls: np.ndarray
    y: np.ndarray
    x: np.ndarray
    box: np.ndarray
    score: np.ndarray

    def take(self, index) -> Candidates:
        return Candidates(self.cls[index], self.y[index], self.x[index], self.box[index], self.score[index])


@dataclass(frozen=True, eq=False)
class MatchedLandmarks:
    """Per candidate landmarks, padded to Lmax, map pixels: ``coarse`` (D, Lmax, 2) regressed positions,
    ``peak`` (D, Lmax, 2) the accepted heatmap peak (equal to coarse where not refined), ``score``
    (D, Lmax), ``refined`` (D, Lmax) bool."""

    coarse: np.ndarray
    peak: np.ndarray
    score: np.ndarray
    refined: np.ndarray

    def take(self, index) -> MatchedLandmarks:
        return MatchedLandmarks(self.coarse[index], self.peak[index], self.score[index], self.refined[index])

    def positions(self, params: PostprocessParams) -> np.ndarray:
        """(D, Lmax, 2) final positions: the peak, or γ·peak + (1 − γ)·coarse with location refinement."""
        if not params.location_refinement:
            return self.peak
        blended = params.gamma * self.peak + (1.0 - params.gamma) * self.coarse
        return np.where(self.refined[..., None], blended, self.coarse)


def head_values_problem(name: str, values: np.ndarray) -> str | None:
    """What is wrong with the values of head ``name`` (any shape), or None: a NaN or ±inf anywhere, or a
    heatmap (``HEATMAP_HEADS``) outside [0, 1]. Reads only min and max (NaN and ±inf show there): two passes,
    no array of the map's size."""
    lo, hi = float(values.min()), float(values.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"head '{name}' contains NaN or infinite values"
    if name in HEATMAP_HEADS and (lo < 0.0 or hi > 1.0):
        return f"heatmap '{name}' spans [{lo:.3g}, {hi:.3g}], expected [0, 1] (was the sigmoid applied?)"
    return None


def validate_heads(heads: RawHeads, taxonomy: Taxonomy, grouping: Grouping) -> None:
    """Raise DecodeError unless the heads have the shapes of this taxonomy and grouping, finite values
    and heatmaps in [0, 1]. Checked once per RawHeads object (heads are treated as immutable)."""
    key = (taxonomy.num_classes, grouping.num_groups)
    if _validated.get(heads) == key:
        return
    arrays = heads.arrays()
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray) or arr.ndim != 3:
            got = getattr(arr, "shape", type(arr).__name__)
            raise DecodeError(f"head '{name}' must be a (C, H, W) array, got {got}")
    height, width = heads.hm.shape[1:]
    if height == 0 or width == 0:
        raise DecodeError(f"empty output map ({height}×{width})")
    expected = grouping.head_channels(taxonomy.num_classes)
    for name, arr in arrays.items():
        if arr.shape != (expected[name], height, width):
            raise DecodeError(
                f"head '{name}' has shape {arr.shape}, expected {(expected[name], height, width)} "
                f"for {taxonomy.num_classes} classes and grouping '{grouping.name}' ({grouping.num_groups} groups)"
            )
    for name, arr in arrays.items():
        problem = head_values_problem(name, arr)
        if problem is not None:
            raise DecodeError(problem)
    matrix = heads.image_to_map.matrix
    if matrix.shape != (2, 3) or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:, :2])) < 1e-12:
        raise DecodeError(f"image_to_map must be an invertible 2×3 affine, got {matrix.tolist()}")
    _validated[heads] = key


def candidate_floors(params: PostprocessParams, layout: DecodeLayout, peak_score: np.ndarray) -> np.ndarray:
    """(C,) lowest box score per class a candidate needs to be examined.

    Without center rescoring that is the threshold itself. With it, a class's landmark score is at
    most the mean over its landmarks of their group's best peak (``peak_score`` (G, Kmax)), which gives
    the lowest box score that can still reach the threshold; and never below the user's
    min(``candidate_floor``, ``score_threshold``), the one approximation (0 turns it off).
    """
    num_classes = len(layout.count)
    if not params.center_rescoring or params.alpha >= 1.0:
        return np.full(num_classes, params.score_threshold)
    # + 1e-9: an upper bound must stay one whatever the rounding of the sum
    class_bound = layout.group_mean @ np.maximum(peak_score.max(axis=1), 0.0) + 1e-9  # (C,)
    lowest = max(min(params.candidate_floor, params.score_threshold), 0.0)
    if params.alpha < 1e-9:  # the score is (almost) the landmark score alone; avoid dividing by ~0
        return np.where(class_bound >= params.score_threshold - params.alpha, lowest, np.inf)
    reachable = (params.score_threshold - (1 - params.alpha) * class_bound) / params.alpha
    return np.maximum(reachable, lowest)


def center_candidates(heads: RawHeads, params: PostprocessParams, floors: np.ndarray) -> Candidates:
    """Steps 1–2a: the ``top_k`` center peaks, minus those below their class floor → boxes (map pixels).

    Taking the top-K over all peaks above the lowest floor before dropping per-class stragglers keeps
    the candidates exactly those CenterNet's top-K would examine.
    """
    sigma = params.sigma_center if params.heatmap_rescoring else 0.0
    peaks = top_k_overall(find_peaks(heads.hm, float(floors.min()), sigma), params.top_k)
    peaks = peaks.take(np.flatnonzero(peaks.score >= floors[peaks.channel]))
    y, x = peaks.y, peaks.x
    return Candidates(peaks.channel, y, x, center_boxes(heads, y, x), peaks.score.astype(np.float64))


def center_boxes(heads: RawHeads, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Step 2a: (D, 4) float64 xyxy map-pixel boxes of objects centred at integer pixels ``y``, ``x`` (D,):
    the center plus its sub-pixel offset, ± half the regressed size."""
    cx = x + heads.reg[0, y, x]
    cy = y + heads.reg[1, y, x]
    half_w, half_h = heads.wh[0, y, x] / 2, heads.wh[1, y, x] / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(np.float64)


def landmark_peaks(heads: RawHeads, params: PostprocessParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 3: group-heatmap peaks padded per group.

    Returns ``x``, ``y`` (G, Kmax) float32 map pixels (sub-pixel offset applied; +inf pad: infinitely
    far, so never the nearest, never weighted above 0 and never inside a box) and ``score`` (G, Kmax)
    float32 (-1 pad), at most ``top_k`` peaks per group, each group's peaks first.
    """
    sigma = params.sigma_keypoint if params.heatmap_rescoring else 0.0
    peaks: Peaks = top_k_per_channel(
        find_peaks(heads.hm_hp, params.peak_threshold, sigma, strict=True), params.top_k
    )
    num_groups = heads.hm_hp.shape[0]
    counts = np.bincount(peaks.channel, minlength=num_groups)
    k_max = max(int(counts.max()) if len(peaks) else 0, 1)
    starts = np.cumsum(counts) - counts  # first index of each group's peaks
    rank = np.arange(len(peaks)) - starts[peaks.channel]
    x = np.full((num_groups, k_max), np.inf, np.float32)
    y = np.full((num_groups, k_max), np.inf, np.float32)
    score = np.full((num_groups, k_max), -1.0, np.float32)
    x[peaks.channel, rank] = peaks.x + heads.hp_offset[0, peaks.y, peaks.x]
    y[peaks.channel, rank] = peaks.y + heads.hp_offset[1, peaks.y, peaks.x]
    score[peaks.channel, rank] = peaks.score
    return x, y, score


def coarse_landmarks(heads: RawHeads, cand: Candidates, layout: DecodeLayout) -> tuple[np.ndarray, np.ndarray]:
    """Step 2b: regressed landmarks ``xy`` (D, Lmax, 2) map pixels and ``groups`` (D, Lmax) (-1 pad)."""
    groups = layout.groups[cand.cls]
    safe = np.maximum(groups, 0)
    hps = heads.hps[:, cand.y, cand.x]  # (2G, D)
    cols = np.arange(len(cand.y))[:, None]
    xy = np.stack([cand.x[:, None] + hps[2 * safe, cols], cand.y[:, None] + hps[2 * safe + 1, cols]], axis=-1)
    return xy.astype(np.float64), groups


def match_landmarks(
    coarse: np.ndarray,
    groups: np.ndarray,
    box: np.ndarray,
    peaks: tuple[np.ndarray, np.ndarray, np.ndarray],
    params: PostprocessParams,
) -> MatchedLandmarks:
    """Step 4: refine coarse landmarks (D, Lmax, 2) with the group peaks; see the module docstring.

    Works on the flat list of real (candidate, landmark) pairs against their group's peaks: (P, Kmax).
    """
    # take() on flat indices: several times faster than fancy indexing on arrays this small
    peak_x, peak_y, peak_score = peaks
    pair_d, pair_l = np.nonzero(groups >= 0)
    pair = pair_d * groups.shape[1] + pair_l  # flat (D·Lmax) index of each pair
    g = groups.reshape(-1).take(pair)
    coarse_xy = coarse.reshape(-1, 2).take(pair, axis=0)  # (P, 2)
    cx = coarse_xy[:, 0].astype(np.float32)
    cy = coarse_xy[:, 1].astype(np.float32)
    px, py, ps = peak_x.take(g, axis=0), peak_y.take(g, axis=0), peak_score.take(g, axis=0)  # (P, Kmax)
    dist2 = (px - cx[:, None]) ** 2 + (py - cy[:, None]) ** 2
    box_w = box[:, 2] - box[:, 0]
    box_h = box[:, 3] - box[:, 1]
    if params.keypoint_rescoring:
        sigma = np.maximum(np.minimum(box_w, box_h) / KEYPOINT_MASK_DIVISOR, 1e-6).take(pair_d)
        exponent = dist2 / (2 * sigma * sigma)[:, None]  # float64; +inf for padding
        # Compared in log space: for small boxes every weight underflows, yet the order must hold. Peak
        # scores are > 0 (peaks are above the threshold); the floor 1e-45 (a float32 denormal) only keeps
        # the padding's log finite, and its infinite exponent makes it -inf. Logs taken per group, (G, Kmax).
        log_score = np.log(np.maximum(peak_score, 1e-45)).take(g, axis=0)
        pick = np.arange(len(g)) * dist2.shape[1] + (log_score - exponent).argmax(1)  # flat (P·Kmax) index
        best = ps.reshape(-1).take(pick)
        chosen_score = np.where(best > 0, best * np.exp(-exponent.reshape(-1).take(pick)), -1.0)
    else:
        pick = np.arange(len(g)) * dist2.shape[1] + dist2.argmin(1)  # padding is infinitely far
        chosen_score = ps.reshape(-1).take(pick)
    qx = px.reshape(-1).take(pick).astype(np.float64)
    qy = py.reshape(-1).take(pick).astype(np.float64)
    pb = box.take(pair_d, axis=0)
    # a group without peaks chose padding: at +inf it lies in no box and is never accepted
    accept = (
        (qx >= pb[:, 0]) & (qx <= pb[:, 2]) & (qy >= pb[:, 1]) & (qy <= pb[:, 3])
        & (chosen_score >= params.peak_threshold)
        & (np.sqrt(dist2.reshape(-1).take(pick)) <= MAX_REFINE_DISTANCE * np.maximum(box_w, box_h).take(pair_d))
    )
    peak = coarse.copy()
    peak.reshape(-1, 2)[pair[accept]] = np.stack([qx[accept], qy[accept]], axis=1)
    score = np.zeros(groups.size)
    score[pair] = np.where(accept, chosen_score, 0.0)
    score = score.reshape(groups.shape)
    refined = np.zeros(groups.size, bool)
    refined[pair] = accept
    refined = refined.reshape(groups.shape)
    return MatchedLandmarks(coarse, peak, score, refined)


def prune_unreachable(
    cand: Candidates,
    layout: DecodeLayout,
    peaks: tuple[np.ndarray, np.ndarray, np.ndarray],
    params: PostprocessParams,
    return_index: bool = False,
):
    """Drop candidates that cannot reach ``score_threshold`` even after center rescoring.

    A landmark's score is at most the best peak of its group inside the candidate's box (peaks outside
    are rejected and the keypoint mask is <= 1), so α·score_box + (1 − α)·mean of those maxima bounds
    the final score. Only candidates below the threshold are examined; the pruned ones would fail the
    threshold after matching anyway, so pruning changes no result. The grid search uses it (its matches
    are cached across grid points); one decode does not: matching a weak candidate costs less than
    bounding it. Returns the kept candidates, or their indices with ``return_index``.
    """
    everything = np.arange(len(cand.score))
    low = np.flatnonzero(cand.score < params.score_threshold)
    if not params.center_rescoring or params.alpha >= 1.0 or len(low) == 0:
        return everything if return_index else cand
    peak_x, peak_y, peak_score = peaks
    group, slot = np.nonzero(peak_score >= 0)  # the real peaks, grouped by group
    if len(group) == 0:
        per_landmark = np.zeros((len(low), 1))
    else:
        px, py, ps = peak_x[group, slot], peak_y[group, slot], peak_score[group, slot]
        box = cand.box[low]
        inside = (px >= box[:, :1]) & (px <= box[:, 2:3]) & (py >= box[:, 1:2]) & (py <= box[:, 3:4])
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        best = np.zeros((len(low), peak_score.shape[0] + 1))  # last column: padding → 0
        best[:, group[starts]] = np.maximum.reduceat(np.where(inside, ps, 0.0), starts, axis=1)
        # Padding groups are -1, which reads the zero last column.
        per_landmark = np.take_along_axis(best, layout.groups[cand.cls[low]], axis=1)
    bound = params.alpha * cand.score[low] + (1 - params.alpha) * per_landmark.sum(1) / layout.count[cand.cls[low]]
    kept = np.setdiff1d(everything, low[bound < params.score_threshold])
    return kept if return_index else cand.take(kept)


def rescore(cand: Candidates, marks: MatchedLandmarks, counts: np.ndarray, params: PostprocessParams) -> np.ndarray:
    """Step 5: final scores (D,)."""
    if not params.center_rescoring:
        return cand.score
    kps_score = marks.score.sum(1) / counts
    return params.alpha * cand.score + (1.0 - params.alpha) * kps_score


def box_iou(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy → (N, N) pairwise IoU (0 where the union is empty)."""
    x1, y1, x2, y2 = np.asarray(boxes, np.float64).T
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    inter = (np.clip(np.minimum.outer(x2, x2) - np.maximum.outer(x1, x1), 0, None)
             * np.clip(np.minimum.outer(y2, y2) - np.maximum.outer(y1, y1), 0, None))
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms_keep(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, per_class: bool) -> np.ndarray:
    """Greedy box NMS of ``boxes`` (N, 4) xyxy with ``scores`` (N,) and class indices ``classes`` (N,)
    int >= 0 (only compared when ``per_class``); returns kept indices, best score first."""
    order = np.argsort(-scores, kind="stable")
    if per_class and np.bincount(classes).max() < 2:  # one box per class: nothing can suppress
        return order
    x1, y1, x2, y2 = np.asarray(boxes, np.float64)[order].T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    inter = (np.maximum(np.minimum.outer(x2, x2) - np.maximum.outer(x1, x1), 0)
             * np.maximum(np.minimum.outer(y2, y2) - np.maximum.outer(y1, y1), 0))
    # IoU > t  ⇔  inter > t · (a_i + a_j − inter): no division, and an empty union never suppresses;
    # only the upper triangle counts (a box suppresses later, lower-scored ones)
    suppresses = np.triu(inter * (1.0 + iou) > iou * np.add.outer(area, area), 1)
    if per_class:
        sorted_classes = classes[order]
        suppresses &= np.equal.outer(sorted_classes, sorted_classes)
    if not suppresses.any():  # the usual case on a slider move: nothing overlaps enough
        return order
    keep = np.ones(len(order), bool)
    for i in np.flatnonzero(suppresses.any(axis=1)):  # greedy, best first: only a kept box suppresses
        if keep[i]:
            keep &= ~suppresses[i]
    return order[keep]


def decode_detections(
    heads: RawHeads, params: PostprocessParams, taxonomy: Taxonomy, grouping: Grouping
) -> list[Detection]:
    """Decode one image's raw heads into detections in image pixels, best score first."""
    validate_heads(heads, taxonomy, grouping)
    layout = decode_layout(taxonomy, grouping)
    peaks = landmark_peaks(heads, params)
    cand = center_candidates(heads, params, candidate_floors(params, layout, peaks[2]))
    coarse, groups = coarse_landmarks(heads, cand, layout)
    marks = match_landmarks(coarse, groups, cand.box, peaks, params)
    return finalize_detections(heads, cand, marks, params, layout)


def finalize_detections(
    heads: RawHeads, cand: Candidates, marks: MatchedLandmarks, params: PostprocessParams, layout: DecodeLayout
) -> list[Detection]:
    """Steps 5–6: rescoring, threshold, NMS, ``max_detections``, image pixels."""
    score = rescore(cand, marks, layout.count[cand.cls], params)
    keep = kept_candidates(cand, score, params)
    return _to_image(heads, cand.take(keep), score[keep], marks.take(keep), params, layout)


def kept_candidates(cand: Candidates, score: np.ndarray, params: PostprocessParams) -> np.ndarray:
    """Steps 7–9 on final ``score`` (D,): indices of the candidates that become detections, best first
    (score threshold, NMS, ``max_detections``)."""
    keep = np.flatnonzero(score >= params.score_threshold)
    if params.nms and len(keep) > 1:
        keep = keep[nms_keep(cand.box[keep], score[keep], cand.cls[keep], params.nms_iou, params.nms_per_class)]
    return keep[np.argsort(-score[keep], kind="stable")][: params.max_detections]


def _to_image(
    heads: RawHeads, cand: Candidates, score, marks: MatchedLandmarks, params: PostprocessParams, layout: DecodeLayout
) -> list[Detection]:
    to_image = heads.image_to_map.inverse()
    corners = to_image.apply(cand.box.reshape(-1, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    xy = to_image.apply(marks.positions(params))
    out = []
    for i, cls in enumerate(cand.cls):
        n = layout.count[cls]
        landmarks = np.concatenate([xy[i, :n], marks.score[i, :n, None]], axis=1)
        out.append(
            Detection(
                category_id=int(layout.category_ids[cls]),
                score=float(np.clip(score[i], 0.0, 1.0)),
                box_score=float(cand.score[i]),
                box=boxes[i],
                landmarks=landmarks,
                refined=marks.refined[i, :n].copy(),
            )
        )
    return out


def decode_batch(
    heads: Sequence[RawHeads], params: PostprocessParams, taxonomy: Taxonomy, grouping: Grouping
) -> list[list[Detection]]:
    """Decode each image of a batch (see ``RawHeads.split_batch`` for batched arrays)."""
    return [decode_detections(h, params, taxonomy, grouping) for h in heads]
