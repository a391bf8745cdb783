"""COCOeval's AP, re-done with numpy for what a grid search needs: the (T, R, K) precision table at area
'all' and one ``maxDets``, for boxes (IoU) and landmarks (OKS), equal to pycocotools' number for number.

pycocotools (``evaluate.py``) stays the reference and gives the full result; this module exists because a
21 × 21 grid spends most of its time in COCOeval's per-(image, category) Python loops. Every step below
follows ``pycocotools/cocoeval.py`` (v2.0) and keeps its order of floating-point operations, so the
numbers are the same bits, not merely close:

* detections of an (image, category) are sorted by descending score, stably (``mergesort``: ties keep
  the results order), and cut to ``maxDets``; ground truth is sorted ignored-last, stably;
* similarity: box IoU as ``maskUtils.iou`` (``bbIou`` in C: i / (da + ga − i), 0 unless both overlaps
  are > 0); OKS as ``computeOks`` (exp(−d² / (2σ)² / (area + eps) / 2), summed by numpy over the labelled
  points, or over all points against the doubled box for ground truth without labelled points);
* matching per threshold: each detection, best first, takes the unmatched ground truth of highest
  similarity ≥ t (the last one among equals), preferring non-ignored ground truth; it then takes that
  one's ignore flag; unmatched detections outside the area range are ignored too;
* accumulation per category: all its detections sorted by descending score stably (ties in image order,
  then results order), cumulative TP/FP, precision made non-increasing from the right, read at the 101
  recall thresholds by ``searchsorted(side='left')`` (0 past the last detection); −1 where the category
  has no non-ignored ground truth.

Matching is the one sequential step: it loops over detection rank (at most ``maxDets``), vectorised over
every (image, category) and threshold at once, and only over detections that reach the lowest threshold
against some ground truth (the others match nothing at any threshold and change nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pycocotools.cocoeval import Params

_PARAMS = Params(iouType="keypoints")
IOU_THRESHOLDS: np.ndarray = _PARAMS.iouThrs
"""(T,) COCO's .50:.05:.95, exactly as pycocotools builds them (``np.linspace``)."""
RECALL_THRESHOLDS: np.ndarray = _PARAMS.recThrs
"""(R,) COCO's 0:.01:1."""
AREA_ALL = (0.0, 1e5**2)
"""COCO's area range 'all' (box area w·h, image pixels²)."""
_EPS = np.spacing(1)


@dataclass(frozen=True, eq=False)
class GroundTruthArrays:
    """M ground-truth annotations as COCO holds them, in annotation order: ``image_id``, ``category_id``
    (M,) int64, ``bbox`` (M, 4) [x, y, w, h], ``area`` (M,) w·h, ``keypoints`` (M, L, 3) (x, y, v),
    ``num_keypoints`` (M,) count(v > 0); image pixels."""

    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    keypoints: np.ndarray
    num_keypoints: np.ndarray

    @staticmethod
    def from_dataset(dataset: dict, num_landmarks: int) -> GroundTruthArrays:
        """From a COCO dataset dict (``deepmark.core.formats.coco.ground_truth_dataset``)."""
        anns = dataset["annotations"]
        return GroundTruthArrays(
            image_id=np.array([a["image_id"] for a in anns], np.int64),
            category_id=np.array([a["category_id"] for a in anns], np.int64),
            bbox=np.array([a["bbox"] for a in anns], np.float64).reshape(len(anns), 4),
            area=np.array([a["area"] for a in anns], np.float64),
            keypoints=np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), num_landmarks, 3),
            num_keypoints=np.array([a["num_keypoints"] for a in anns], np.int64),
        )


@dataclass(frozen=True, eq=False)
class DetectionArrays:
    """N detections in results order: ``image_id``, ``category_id`` (N,) int64, ``score`` (N,), ``bbox``
    (N, 4) [x, y, w, h] (area = w·h); for OKS ``landmarks`` (ΣL, 2) x, y of each detection's own category's
    points from row ``start[i]`` (its slice of the 294), and ``keypoints(rows)`` → (n, 294, 2) all 294
    points of some detections (asked only against ground truth without labelled points)."""

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray
    landmarks: np.ndarray | None = None
    start: np.ndarray | None = None
    keypoints: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True, eq=False)
class _Pairs:
    """Every (detection, ground truth) pair of one (image, category), detections cut to maxDets."""

    det: np.ndarray  # (P,) detection row
    gt: np.ndarray  # (P,) annotation row
    group: np.ndarray  # (P,) (image, category) group of the pair
    det_rank: np.ndarray  # (P,) the detection's rank in its group
    gt_slot: np.ndarray  # (P,) the ground truth's place in its group, ignored last


class CocoApEvaluator:
    """COCOeval's precision table for fixed ground truth, one image set and one category set.

    ``image_ids`` every image evaluated (COCO's ``imgIds``), ``category_ids`` COCO's ``catIds``;
    For ``iou_type`` 'keypoints': ``sigmas`` (L,) the OKS sigmas (COCO's ``kpt_oks_sigmas``) and ``slices``
    category id → first global point index of its slice (where a detection's ``landmarks`` go).
    """

    def __init__(
        self,
        gt: GroundTruthArrays,
        image_ids,
        category_ids,
        iou_type: str,
        max_dets: int,
        sigmas: np.ndarray | None = None,
        slices: dict[int, int] | None = None,
        area_range: tuple[float, float] = AREA_ALL,
    ) -> None:
        if iou_type not in ("bbox", "keypoints"):
            raise ValueError(f"iou_type must be 'bbox' or 'keypoints', got {iou_type!r}")
        self.iou_type = iou_type
        self.max_dets = int(max_dets)
        self.area_range = area_range
        self.image_ids = np.unique(np.asarray(image_ids, np.int64))
        self.category_ids = np.unique(np.asarray(category_ids, np.int64))
        self._vars = None if sigmas is None else (np.asarray(sigmas, np.float64) * 2) ** 2
        if iou_type == "keypoints" and (self._vars is None or slices is None):
            raise ValueError("OKS needs the keypoint sigmas and the categories' slices")
        self._offset = np.zeros(max(slices or {0: 0}) + 1, np.int64)
        for category_id, offset in (slices or {}).items():
            self._offset[category_id] = offset
        self.gt = gt
        # COCO evaluates only ground truth of the images and categories asked for
        rows = np.flatnonzero(np.isin(gt.image_id, self.image_ids) & np.isin(gt.category_id, self.category_ids))
        ignore = (gt.area[rows] < area_range[0]) | (gt.area[rows] > area_range[1])  # iscrowd is always 0
        if iou_type == "keypoints":
            ignore |= gt.num_keypoints[rows] == 0
        group = self._group(gt.image_id[rows], gt.category_id[rows])
        order = np.lexsort((rows, ignore, group))  # per group, non-ignored first, annotation order
        self._gt_rows = rows[order]
        self._gt_ignore = ignore[order]
        self._gt_group = group[order]
        num_groups = len(self.image_ids) * len(self.category_ids)
        self._gt_count = np.bincount(self._gt_group, minlength=num_groups)
        self._gt_first = np.cumsum(self._gt_count) - self._gt_count
        category_index = self._gt_group % len(self.category_ids) if len(self.category_ids) else self._gt_group
        self._npig = np.bincount(category_index[~self._gt_ignore], minlength=len(self.category_ids))
        self._has_gt = np.bincount(category_index, minlength=len(self.category_ids)) > 0
        if iou_type == "keypoints":
            self._prepare_oks()

    def _group(self, image_id: np.ndarray, category_id: np.ndarray) -> np.ndarray:
        """(image, category) group index: image's place × K + category's place."""
        return (np.searchsorted(self.image_ids, image_id) * len(self.category_ids)
                + np.searchsorted(self.category_ids, category_id))

    def _prepare_oks(self) -> None:
        """Per annotation: its labelled points (global indices, padded) and the bounds of its doubled box."""
        gt = self.gt
        visible = gt.keypoints[:, :, 2] > 0
        self._k1 = visible.sum(axis=1)
        width = max(int(self._k1.max()) if len(self._k1) else 0, 1)
        self._vis_index = np.zeros((len(visible), width), np.int64)
        for row in np.flatnonzero(self._k1):  # once per evaluator
            self._vis_index[row, : self._k1[row]] = np.flatnonzero(visible[row])
        bb = gt.bbox
        self._outer = np.column_stack([bb[:, 0] - bb[:, 2], bb[:, 0] + bb[:, 2] * 2,
                                       bb[:, 1] - bb[:, 3], bb[:, 1] + bb[:, 3] * 2])

    # -----------------------------------------------------------------------------------------

    def precision(self, dt: DetectionArrays) -> np.ndarray:
        """(T, R, K) interpolated precision, COCOeval's ``eval['precision'][:, :, :, 0, 0]``; −1 for a
        category without non-ignored ground truth."""
        rows, group, rank = self._kept_detections(dt)
        pairs = self._pairs(rows, group, rank)
        similarity = self._box_iou(dt, pairs) if self.iou_type == "bbox" else self._oks(dt, pairs)
        matched, matched_ignored = self._match(pairs, similarity, len(dt.score))
        area = dt.bbox[rows, 2] * dt.bbox[rows, 3]
        outside = (area < self.area_range[0]) | (area > self.area_range[1])
        matched, matched_ignored = matched[:, rows], matched_ignored[:, rows]
        ignored = matched_ignored | (~matched & outside[None, :])
        return self._accumulate(dt, rows, group, matched, ignored)

    def _kept_detections(self, dt: DetectionArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the detections COCO evaluates (asked-for image and category, within maxDets of their
        group), sorted by group then descending score (stable); their group and rank in it."""
        rows = np.flatnonzero(np.isin(dt.image_id, self.image_ids) & np.isin(dt.category_id, self.category_ids))
        group = self._group(dt.image_id[rows], dt.category_id[rows])
        order = np.lexsort((rows, -dt.score[rows], group))
        rows, group = rows[order], group[order]
        first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else np.zeros(0, np.int64)
        rank = np.arange(len(group)) - np.repeat(first, np.diff(np.r_[first, len(group)]))
        keep = rank < self.max_dets
        return rows[keep], group[keep], rank[keep]

    def _pairs(self, rows: np.ndarray, group: np.ndarray, rank: np.ndarray) -> _Pairs:
        """Each kept detection against each ground truth of its group."""
        count = self._gt_count[group] if len(group) else np.zeros(0, np.int64)
        det_index = np.repeat(np.arange(len(rows)), count)
        slot = np.arange(len(det_index)) - np.repeat(np.cumsum(count) - count, count)
        gt_index = self._gt_first[group[det_index]] + slot
        return _Pairs(rows[det_index], self._gt_rows[gt_index], group[det_index], rank[det_index], slot)

    def _box_iou(self, dt: DetectionArrays, pairs: _Pairs) -> np.ndarray:
        """(P,) IoU as pycocotools' ``bbIou``: w = min(x + w) − max(x), i = w·h, u = da + ga − i."""
        d = dt.bbox[pairs.det]
        g = self.gt.bbox[pairs.gt]
        da = d[:, 2] * d[:, 3]
        ga = g[:, 2] * g[:, 3]
        w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
        h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
        overlap = (w > 0) & (h > 0)
        i = w * h
        u = da + ga - i
        return np.divide(i, u, out=np.zeros(len(i)), where=overlap)

    def _oks(self, dt: DetectionArrays, pairs: _Pairs) -> np.ndarray:
        """(P,) OKS as pycocotools' ``computeOks``, pairs of equal labelled-point counts at once (numpy's
        sum over a row of k points adds in the same order as over a 1-D array of k)."""
        oks = np.zeros(len(pairs.det))
        k1 = self._k1[pairs.gt]
        for k in np.unique(k1):
            at = np.flatnonzero(k1 == k)
            oks[at] = self._oks_labelled(dt, pairs, at, int(k)) if k > 0 else self._oks_unlabelled(dt, pairs, at)
        return oks

    def _oks_labelled(self, dt: DetectionArrays, pairs: _Pairs, at: np.ndarray, k: int) -> np.ndarray:
        """OKS of pairs ``at`` whose ground truth has k > 0 labelled points: over those points only. They
        lie in the category's slice, which holds the detection's own landmarks."""
        gt_rows = pairs.gt[at]
        slots = self._vis_index[gt_rows, :k]  # (n, k) global point index
        local = slots - self._offset[self.gt.category_id[gt_rows]][:, None]
        det_rows = dt.start[pairs.det[at]][:, None] + local
        xd, yd = dt.landmarks[det_rows, 0], dt.landmarks[det_rows, 1]
        g = self.gt.keypoints[gt_rows[:, None], slots]  # (n, k, 3)
        dx = xd - g[:, :, 0]
        dy = yd - g[:, :, 1]
        e = (dx**2 + dy**2) / self._vars[slots] / (self.gt.area[gt_rows] + _EPS)[:, None] / 2
        return np.sum(np.exp(-e), axis=1) / k

    def _oks_unlabelled(self, dt: DetectionArrays, pairs: _Pairs, at: np.ndarray) -> np.ndarray:
        """OKS of pairs ``at`` whose ground truth has no labelled point: every point's distance outside
        the doubled box."""
        gt_rows = pairs.gt[at]
        kp = dt.keypoints(pairs.det[at])  # (n, L, 2)
        xd, yd = kp[:, :, 0], kp[:, :, 1]
        x0, x1, y0, y1 = (self._outer[gt_rows, j][:, None] for j in range(4))
        dx = np.maximum(0.0, x0 - xd) + np.maximum(0.0, xd - x1)
        dy = np.maximum(0.0, y0 - yd) + np.maximum(0.0, yd - y1)
        e = (dx**2 + dy**2) / self._vars / (self.gt.area[gt_rows] + _EPS)[:, None] / 2
        return np.sum(np.exp(-e), axis=1) / e.shape[1]

    def _match(self, pairs: _Pairs, similarity: np.ndarray, num_dets: int) -> tuple[np.ndarray, np.ndarray]:
        """(T, N) matched and matched-to-ignored flags per detection row, COCOeval's greedy matching."""
        thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
        matched = np.zeros((len(thresholds), num_dets), bool)
        matched_ignored = np.zeros_like(matched)
        # a detection below the lowest threshold against all its ground truth matches nothing, anywhere
        live = similarity >= thresholds.min()
        if not live.any():
            return matched, matched_ignored
        det, gt_slot, group = pairs.det[live], pairs.gt_slot[live], pairs.group[live]
        det_rank, value = pairs.det_rank[live], similarity[live]
        groups, group_index = np.unique(group, return_inverse=True)
        ranks, rank_index = np.unique(det_rank, return_inverse=True)  # ascending: best detection first
        width = int(self._gt_count[groups].max())
        table = np.full((len(groups), len(ranks), width), -np.inf)
        table[group_index, rank_index, gt_slot] = value
        det_at = np.full((len(groups), len(ranks)), -1)
        det_at[group_index, rank_index] = det
        slots = np.arange(width)
        gt_ignore = self._gt_ignore[np.minimum(self._gt_first[groups][:, None] + slots, len(self._gt_ignore) - 1)]
        gt_ignore &= slots < self._gt_count[groups][:, None]
        taken = np.zeros((len(groups), len(thresholds), width), bool)
        for r in range(len(ranks)):
            present = np.flatnonzero(det_at[:, r] >= 0)
            s = table[present, r][:, None, :]  # (n, 1, G)
            free = ~taken[present] & (s >= thresholds[None, :, None])  # (n, T, G)
            ignore = gt_ignore[present][:, None, :]
            pick, found = _last_best(np.where(free & ~ignore, s, -np.inf))
            pick_ig, found_ig = _last_best(np.where(free & ignore, s, -np.inf))
            pick = np.where(found, pick, pick_ig)
            found |= found_ig
            n_at, t_at = np.nonzero(found)
            rows = det_at[present[n_at], r]
            matched[t_at, rows] = True
            matched_ignored[t_at, rows] = gt_ignore[present[n_at], pick[n_at, t_at]]
            taken[present[n_at], t_at, pick[n_at, t_at]] = True
        return matched, matched_ignored

    def _accumulate(self, dt: DetectionArrays, rows: np.ndarray, group: np.ndarray, matched: np.ndarray,
                    ignored: np.ndarray) -> np.ndarray:
        """(T, R, K) precision from the kept detections' (T, n) flags, per category as ``accumulate``."""
        num_categories = len(self.category_ids)
        precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), num_categories))
        category = group % num_categories if num_categories else group
        image = group // num_categories if num_categories else group
        order = np.lexsort((rows, image, -dt.score[rows], category))  # ties: image order, then results order
        category, matched, ignored = category[order], matched[:, order], ignored[:, order]
        bounds = np.searchsorted(category, np.arange(num_categories + 1))
        tps = matched & ~ignored
        fps = ~matched & ~ignored
        for k in range(num_categories):
            if self._npig[k] == 0:  # also: no ground truth at all (COCO skips the category either way)
                continue
            lo, hi = bounds[k], bounds[k + 1]
            tp = np.cumsum(tps[:, lo:hi], axis=1).astype(float)
            fp = np.cumsum(fps[:, lo:hi], axis=1).astype(float)
            rc = tp / self._npig[k]
            pr = tp / (fp + tp + _EPS)
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # non-increasing from the right
            nd = hi - lo
            for t in range(len(IOU_THRESHOLDS)):
                inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                q = np.zeros(len(RECALL_THRESHOLDS))
                inside = inds < nd
                q[inside] = pr[t, inds[inside]]
                precision[t, :, k] = q
        return precision


def _last_best(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the largest finite value along the last axis, the last one among equals (COCO moves its
    best match on ``>=``), and whether there is one."""
    width = values.shape[-1]
    pick = width - 1 - np.argmax(values[..., ::-1], axis=-1)
    return pick, np.isfinite(np.take_along_axis(values, pick[..., None], axis=-1)[..., 0])
