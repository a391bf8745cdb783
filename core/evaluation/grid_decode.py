"""The grid search's decoding, batched over all its images: the detections ``tune._StageCache`` gives image by
image (``decode.prune_unreachable``, ``match_landmarks``, ``finalize_detections``), as one set of arrays.

A grid point decodes every image again, and done image by image most of its time is numpy's per-call cost on
small arrays (150 images × some 60 calls). Here each step runs once per grid point over all images. Every
value is computed by the same elementwise operations, in the same order and dtypes, as the per-image
functions, so the detections are the same bits; only the layout differs:

* the peaks are a flat list of real peaks, each (image, group) a segment (instead of a padded (G, Kmax)
  array per image, whose padding is never chosen: +inf away, score −1);
* "the first best peak" (argmax / argmin over a padded row) is the first best of the segment;
* NMS compares only boxes of one image (and class), best first, as ``nms_keep`` does per image.

Candidates (per σ_c) and peaks (per σ_k) are built once from the per-image stage caches and kept. Two σ
whose smoothing changes nothing (σ ≤ 0.15 px on the model's heads) give equal candidates or peaks; those
share one batch, so their grid points are decoded once (a quarter of a 21 × 21 grid): equal inputs, equal
detections. Matches and detections are kept for the last few settings only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from deepmark.core.centernet import decode as dec
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.formats.coco import ResultArrays

_KEPT_MARKS = 4
"""How many (candidates, peaks, technique 4) match sets stay cached (an α or γ sweep reuses one)."""
_KEPT_DETECTIONS = 64
"""How many decoded grid points stay cached (to serve points whose candidates and peaks equal theirs, such
as a whole row of σ_c = 0.05 after the row of σ_c = 0)."""


@dataclass(frozen=True, eq=False)
class _CandidateBatch:
    """Every image's center candidates, image after image: ``image`` (N,) index into the image list,
    ``cand`` map pixels, ``coarse`` (N, Lmax, 2), ``groups`` (N, Lmax), ``image_box`` (N, 4) xyxy image pixels."""

    image: np.ndarray
    cand: dec.Candidates
    coarse: np.ndarray
    groups: np.ndarray
    image_box: np.ndarray


@dataclass(frozen=True, eq=False)
class _PeakBatch:
    """Every image's real group-heatmap peaks, by image then group then rank: ``x``, ``y``, ``score``,
    ``log_score`` (Q,) float32 (map pixels), ``group`` (Q,); segment of (image i, group g) from ``start[i, g]``,
    ``count[i, g]`` long; image i's peaks from ``image_start[i]``, ``image_count[i]`` long."""

    x: np.ndarray
    y: np.ndarray
    score: np.ndarray
    log_score: np.ndarray
    group: np.ndarray
    start: np.ndarray
    count: np.ndarray
    image_start: np.ndarray
    image_count: np.ndarray


@dataclass(frozen=True, eq=False)
class _Marks:
    """Kept candidates (indices into the candidate batch) and their matched landmarks."""

    kept: np.ndarray
    marks: dec.MatchedLandmarks


class GridDecoder:
    """Decodes all images of a grid search at once. ``caches`` the per-image ``tune._StageCache``s in image
    order, ``image_ids`` their ids, ``floor_params`` the grid's lowest-α parameters (as the caches use)."""

    def __init__(self, caches: Sequence, image_ids: Sequence[int], layout: dec.DecodeLayout,
                 floor_params: PostprocessParams) -> None:
        self.caches = list(caches)
        self.image_ids = np.asarray(image_ids, np.int64)
        self.layout = layout
        self.floor_params = floor_params
        self._to_image = np.stack([c.heads.image_to_map.inverse().matrix for c in self.caches])  # (I, 2, 3)
        self._candidates: dict = {}
        self._peaks: dict = {}
        self._marks: OrderedDict = OrderedDict()
        self._decoded: OrderedDict = OrderedDict()

    def detections(self, p: PostprocessParams) -> ResultArrays:
        """The detections of every image at ``p``, as ``result_arrays`` would hold the per-image decode's."""
        batch, peaks = self._candidate_batch(p), self._peak_batch(p)
        # σ only chose the candidates and peaks; every later step reads the other parameters
        key = (id(batch), id(peaks), replace(p, sigma_center=0.0, sigma_keypoint=0.0))
        if key not in self._decoded:
            self._decoded[key] = self._finalize(batch, self._matched(batch, peaks, p), p)
            if len(self._decoded) > _KEPT_DETECTIONS:
                self._decoded.popitem(last=False)
        self._decoded.move_to_end(key)
        return self._decoded[key]

    # -----------------------------------------------------------------------------------------
    # cached stages

    def _candidate_batch(self, p: PostprocessParams) -> _CandidateBatch:
        key = p.sigma_center if p.heatmap_rescoring else None
        if key not in self._candidates:
            parts = [c.candidates(p) for c in self.caches]
            cand = dec.Candidates(*(np.concatenate([getattr(c, f) for c, _, _ in parts])
                                    for f in ("cls", "y", "x", "box", "score")))
            image = np.repeat(np.arange(len(parts)), [len(c.score) for c, _, _ in parts])
            coarse = np.concatenate([xy for _, xy, _ in parts])
            groups = np.concatenate([g for _, _, g in parts])
            corners = _apply(self._to_image[image][:, None], cand.box.reshape(-1, 2, 2))
            image_box = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
            built = _CandidateBatch(image, cand, coarse, groups, image_box)
            self._candidates[key] = next((b for b in self._candidates.values() if _same_candidates(b, built)), built)
        return self._candidates[key]

    def _peak_batch(self, p: PostprocessParams) -> _PeakBatch:
        key = p.sigma_keypoint if p.heatmap_rescoring else None
        if key not in self._peaks:
            per_image = [c.peaks(p) for c in self.caches]
            num_groups = per_image[0][2].shape[0]
            real = [np.nonzero(score >= 0) for _, _, score in per_image]  # row-major: by group, then rank
            x = np.concatenate([px[g, k] for (px, _, _), (g, k) in zip(per_image, real, strict=True)])
            y = np.concatenate([py[g, k] for (_, py, _), (g, k) in zip(per_image, real, strict=True)])
            score = np.concatenate([ps[g, k] for (_, _, ps), (g, k) in zip(per_image, real, strict=True)])
            group = np.concatenate([g for g, _ in real])
            count = np.stack([np.bincount(g, minlength=num_groups) for g, _ in real])  # (I, G)
            start = (np.cumsum(count.ravel()) - count.ravel()).reshape(count.shape)
            image_count = count.sum(axis=1)
            # as match_landmarks takes it: log of the float32 score, floored at a float32 denormal
            log_score = np.log(np.maximum(score, 1e-45))
            built = _PeakBatch(x, y, score, log_score, group, start, count, start[:, 0].copy(), image_count)
            self._peaks[key] = next((b for b in self._peaks.values() if _same_peaks(b, built)), built)
        return self._peaks[key]

    def _matched(self, batch: _CandidateBatch, peaks: _PeakBatch, p: PostprocessParams) -> _Marks:
        key = (id(batch), id(peaks), p.keypoint_rescoring)
        if key in self._marks:
            self._marks.move_to_end(key)
            return self._marks[key]
        floor_params = replace(self.floor_params, sigma_center=p.sigma_center, sigma_keypoint=p.sigma_keypoint)
        kept = _prune(batch, peaks, self.layout, floor_params)
        self._marks[key] = _Marks(kept, _match(batch, kept, peaks, p))
        if len(self._marks) > _KEPT_MARKS:
            self._marks.popitem(last=False)
        return self._marks[key]

    # -----------------------------------------------------------------------------------------

    def _finalize(self, batch: _CandidateBatch, found: _Marks, p: PostprocessParams) -> ResultArrays:
        """Steps 5–6 of ``finalize_detections`` over all images: rescoring, threshold, NMS, best first per
        image, ``max_detections``, image pixels."""
        layout, kept, marks = self.layout, found.kept, found.marks
        cand = batch.cand.take(kept)
        image = batch.image[kept]
        score = dec.rescore(cand, marks, layout.count[cand.cls], p)
        keep = np.flatnonzero(score >= p.score_threshold)
        if p.nms:
            keep = _nms(keep, image, cand, score, p)
        keep = keep[np.lexsort((keep, -score[keep], image[keep]))]  # per image, best first, stable
        keep = keep[_rank_in_run(image[keep]) < p.max_detections]
        img = image[keep]
        cls = cand.cls[keep]
        xy = _apply(self._to_image[img][:, None], marks.take(keep).positions(p))  # (D, Lmax, 2)
        own = np.arange(layout.groups.shape[1]) < layout.count[cls][:, None]  # (D, Lmax) the category's points
        landmarks = np.column_stack([xy[own], marks.score[keep][own]])
        counts = layout.count[cls]
        return ResultArrays(
            image_id=self.image_ids[img],
            category_id=np.asarray(layout.category_ids[cls], np.int64),
            score=np.clip(score[keep], 0.0, 1.0),
            box=batch.image_box[kept[keep]],
            landmarks=landmarks,
            start=np.cumsum(counts) - counts,
            files={},
        )


def _same_candidates(a: _CandidateBatch, b: _CandidateBatch) -> bool:
    """Equal candidates, image by image (class, center, box, score; the rest follows from the center and
    the heads)."""
    return np.array_equal(a.image, b.image) and all(
        np.array_equal(getattr(a.cand, f), getattr(b.cand, f)) for f in ("cls", "y", "x", "box", "score"))


def _same_peaks(a: _PeakBatch, b: _PeakBatch) -> bool:
    """Equal peaks: the same number per (image, group), at the same places, with the same scores."""
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("count", "x", "y", "score"))


# ---------------------------------------------------------------------------------------------
# batched steps


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``Affine.apply`` with one (2, 3) matrix per row: ``matrix`` (..., 2, 3) broadcast against ``points``
    (..., 2); the same products and sums, so the same bits."""
    x, y = points[..., 0], points[..., 1]
    m = matrix
    return np.stack([m[..., 0, 0] * x + m[..., 0, 1] * y + m[..., 0, 2],
                     m[..., 1, 0] * x + m[..., 1, 1] * y + m[..., 1, 2]], axis=-1)


def _expand(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ranges: (owner, index) of every element of range [starts[i], starts[i] + lengths[i]), in order."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    shift = starts - (np.cumsum(lengths) - lengths)  # index − position in the expansion, per range
    return owner, np.arange(len(owner)) + shift[owner]


def _rank_in_run(key: np.ndarray) -> np.ndarray:
    """(n,) place of each element in its run of equal ``key`` values."""
    if not len(key):
        return np.zeros(0, np.int64)
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return np.arange(len(key)) - np.repeat(first, np.diff(np.r_[first, len(key)]))


def _first_best(values: np.ndarray, owner: np.ndarray, lengths: np.ndarray, largest: bool) -> np.ndarray:
    """Flat index of the first largest (smallest) value of each consecutive segment (``owner`` (n,) its
    segment, ``lengths`` all > 0): what ``argmax`` (``argmin``) gives on a padded row whose padding never wins."""
    best = (np.maximum if largest else np.minimum).reduceat(values, np.cumsum(lengths) - lengths)
    hit = np.flatnonzero(values == best[owner])
    segment = owner[hit]
    return hit[np.r_[True, segment[1:] != segment[:-1]]]


def _prune(batch: _CandidateBatch, peaks: _PeakBatch, layout: dec.DecodeLayout,
           params: PostprocessParams) -> np.ndarray:
    """``prune_unreachable(..., return_index=True)`` over all images: kept candidate indices, ascending."""
    cand = batch.cand
    everything = np.arange(len(cand.score))
    low = np.flatnonzero(cand.score < params.score_threshold)
    if not params.center_rescoring or params.alpha >= 1.0 or len(low) == 0:
        return everything
    # per (low candidate, landmark): the best peak of the landmark's group inside the box, else 0 (what
    # prune_unreachable reads from its (candidate, group) table); padding landmarks read 0 there too
    groups = layout.groups[cand.cls[low]]
    pair_d, pair_l = np.nonzero(groups >= 0)
    image, group = batch.image[low][pair_d], groups[pair_d, pair_l]
    count = peaks.count[image, group]
    has = np.flatnonzero(count > 0)
    owner, q = _expand(peaks.start[image, group][has], count[has])
    per_landmark = np.zeros(groups.shape)
    if len(q):
        px, py = peaks.x[q], peaks.y[q]
        box = cand.box[low][pair_d[has]]
        inside = ((px >= box[owner, 0]) & (px <= box[owner, 2]) & (py >= box[owner, 1]) & (py <= box[owner, 3]))
        best = np.maximum.reduceat(np.where(inside, peaks.score[q], 0.0), np.cumsum(count[has]) - count[has])
        per_landmark[pair_d[has], pair_l[has]] = best
    bound = params.alpha * cand.score[low] + (1 - params.alpha) * per_landmark.sum(1) / layout.count[cand.cls[low]]
    keep = np.ones(len(everything), bool)
    keep[low[bound < params.score_threshold]] = False
    return np.flatnonzero(keep)


def _match(batch: _CandidateBatch, kept: np.ndarray, peaks: _PeakBatch, params: PostprocessParams
           ) -> dec.MatchedLandmarks:
    """``match_landmarks`` of the kept candidates over all images, each landmark against its own image's
    group peaks."""
    box = batch.cand.box[kept]
    coarse, groups = batch.coarse[kept], batch.groups[kept]
    pair_d, pair_l = np.nonzero(groups >= 0)
    pair = pair_d * groups.shape[1] + pair_l
    g = groups.reshape(-1).take(pair)
    segment_start = peaks.start[batch.image[kept][pair_d], g]
    segment_count = peaks.count[batch.image[kept][pair_d], g]
    has = np.flatnonzero(segment_count > 0)  # a group without peaks chose padding, which is never accepted
    pair_d, pair = pair_d[has], pair[has]
    owner, q = _expand(segment_start[has], segment_count[has])
    coarse_xy = coarse.reshape(-1, 2).take(pair, axis=0)
    cx = coarse_xy[:, 0].astype(np.float32)
    cy = coarse_xy[:, 1].astype(np.float32)
    px, py = peaks.x[q], peaks.y[q]
    dist2 = (px - cx[owner]) ** 2 + (py - cy[owner]) ** 2
    box_w = box[:, 2] - box[:, 0]
    box_h = box[:, 3] - box[:, 1]
    lengths = segment_count[has]
    if params.keypoint_rescoring:
        sigma = np.maximum(np.minimum(box_w, box_h) / dec.KEYPOINT_MASK_DIVISOR, 1e-6).take(pair_d)
        exponent = dist2 / (2 * sigma * sigma)[owner]
        pick = _first_best(peaks.log_score[q] - exponent, owner, lengths, largest=True)
        best = peaks.score[q[pick]]
        chosen_score = np.where(best > 0, best * np.exp(-exponent[pick]), -1.0)
    else:
        pick = _first_best(dist2, owner, lengths, largest=False)
        chosen_score = peaks.score[q[pick]]
    qx = px[pick].astype(np.float64)
    qy = py[pick].astype(np.float64)
    pb = box.take(pair_d, axis=0)
    accept = (
        (qx >= pb[:, 0]) & (qx <= pb[:, 2]) & (qy >= pb[:, 1]) & (qy <= pb[:, 3])
        & (chosen_score >= params.peak_threshold)
        & (np.sqrt(dist2[pick]) <= dec.MAX_REFINE_DISTANCE * np.maximum(box_w, box_h).take(pair_d))
    )
    peak = coarse.copy()
    peak.reshape(-1, 2)[pair[accept]] = np.stack([qx[accept], qy[accept]], axis=1)
    score = np.zeros(groups.size)
    score[pair] = np.where(accept, chosen_score, 0.0)
    refined = np.zeros(groups.size, bool)
    refined[pair] = accept
    return dec.MatchedLandmarks(coarse, peak, score.reshape(groups.shape), refined.reshape(groups.shape))


def _nms(keep: np.ndarray, image: np.ndarray, cand: dec.Candidates, score: np.ndarray,
         params: PostprocessParams) -> np.ndarray:
    """``nms_keep`` within each image: the boxes of ``keep`` no better box of the same image (and class, with
    ``nms_per_class``) overlaps by more than ``nms_iou``; returned in ascending order."""
    key = image[keep] * (int(cand.cls.max()) + 1) + cand.cls[keep] if params.nms_per_class else image[keep]
    perm = np.lexsort((keep, -score[keep], key))  # per block, best first, stable (as nms_keep sorts)
    order, block = keep[perm], key[perm]
    lengths = np.diff(np.r_[np.flatnonzero(np.r_[True, block[1:] != block[:-1]]), len(order)])
    if not len(lengths) or lengths.max() < 2:
        return keep
    # every pair (i, j), i before j, of a block
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    size = np.repeat(lengths, lengths)
    position = np.arange(len(order))
    later = size - (position - first) - 1  # how many come after each box in its block
    i, j = _expand(position + 1, later)
    i = position[i]
    x1, y1, x2, y2 = np.asarray(cand.box[order], np.float64).T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    inter = (np.maximum(np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j]), 0)
             * np.maximum(np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j]), 0))
    suppresses = inter * (1.0 + params.nms_iou) > params.nms_iou * (area[i] + area[j])
    i, j = i[suppresses], j[suppresses]  # ascending in i
    alive = np.ones(len(order), bool)
    boxes, first, count = np.unique(i, return_index=True, return_counts=True)
    for box, lo, n in zip(boxes.tolist(), first.tolist(), count.tolist(), strict=True):
        if alive[box]:  # greedy, best first: only a kept box suppresses
            alive[j[lo : lo + n]] = False
    return np.sort(order[alive])
