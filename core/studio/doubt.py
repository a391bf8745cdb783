"""Where review should go first: how much the model doubts an image, and which labels it disagrees with.

Pure functions over cached heads, items and detections (no store, no Qt); ``docs/decoding.md`` ("Doubt")
defines both scores. Units: image pixels for boxes and landmarks; scores in [0, 1], higher = look first.

* ``image_uncertainty``: from one image's raw heads, the edits to expect, summed from three doubts: center
  peaks near the score threshold (garments the model is unsure exist), landmarks without one clear peak
  (weak, or two similar peaks), and, when the heads of the mirrored image are cached, disagreement between
  the two; squashed into [0, 1].
* ``label_mistakes``: per labelled item, the disagreement with the model's best-matching prediction —
  landmarks far from a confident predicted position, left/right pairs that fit the prediction better
  swapped, another category predicted there, no prediction there at all — as one score plus the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from deepmark.core.centernet.assist import peak_contrast
from deepmark.core.centernet.decode import (
    center_candidates,
    coarse_landmarks,
    decode_layout,
    kept_candidates,
    landmark_peaks,
    match_landmarks,
    rescore,
    validate_heads,
)
from deepmark.core.domain.structures import Detection, Item, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Category, Grouping, Taxonomy
from deepmark.core.errors import DecodeError
from deepmark.core.studio.templates import box_ious

# A center score s is borderline by exp(−(logit s − logit t)² / 2τ²), t the score threshold, τ this (logit
# units): for t = 0.1 about 0.7 at s = 0.07 or 0.15, 0.3 at 0.05 or 0.2, and < 0.03 beyond 0.3.
CENTRE_DOUBT_WIDTH = 0.5
# Centre peaks more than this many τ below the threshold in logit space are not looked at (doubt < 0.011).
CENTRE_DOUBT_REACH = 3.0
# A garment to add or delete costs about this many edits (placing or removing it, then its landmarks).
GARMENT_EDITS = 1.0
# expected edits → score: 1 − exp(−edits / this): 0.63 at this many edits (the bundled model's heads of its
# synthetic validation scenes, 320², expect 5–250, median 81; the simulated annotator needs 2–195, median 65).
EDITS_SCALE = 100.0
# The threshold is clamped into this range for the logit (a threshold of 0 keeps every candidate).
THRESHOLD_RANGE = (0.01, 0.99)
# A landmark needs an edit when it is off by more than the tolerance a label is held to: per-landmark KS
# (OKS's term, DeepFashion2's σ, the garment's box area) below this ...
TOLERANCE_KS = 0.9
# ... and a decoded landmark on the right peak is still off by about this many map pixels per axis (the
# peak's pixel plus a regressed offset; the bundled model's median error is 0.8 map px on its validation
# set), so a small garment's landmarks, held to a tolerance of a pixel or two, need edits more often.
POSITION_ERROR = 1.0

# label_mistakes: a prediction overlapping the item's box this much (IoU) is "there" (the COCO match) ...
MATCH_IOU = 0.5
# ... and a same-category prediction overlapping it at least this much is compared landmark by landmark.
COMPARE_IOU = 0.1
# A landmark whose predicted position only came from the regression (no heatmap peak) weighs this much.
UNREFINED_WEIGHT = 0.5
# Doubt of an item no prediction overlaps: as likely a miss of the model as a spurious label.
NO_PREDICTION_DOUBT = 0.5
# The item's own category where no prediction of it overlaps counts as this score: the mistakes view decodes
# with a threshold of 0.05, so an unseen category scored below it.
UNSEEN_SCORE = 0.05
# Landmarks / flip pairs whose own doubt reaches this are named in the reasons (the model's ordinary error
# stays below it, see POSITION_TOLERANCE).
REASON_DOUBT = 0.3
# Position doubts add this (a fraction of the garment's size, √area) in quadrature to OKS's 2σ: OKS alone
# grades so strictly (KS 0.4 at 0.08 × the size for σ = 0.025) that a model's ordinary error would look like
# a mistake; with it that error reads as a doubt of 0.1–0.25, a landmark 0.25 × the size away as 0.6–0.95.
POSITION_TOLERANCE = 0.1


@dataclass(frozen=True)
class ImageDoubt:
    """How much the model doubts one image. ``score`` in [0, 1], 1 − exp(−``expected_edits`` / ``EDITS_SCALE``):
    sort by it. ``expected_edits`` ≥ 0: the doubts summed, in edits (see ``image_uncertainty``). Its parts,
    each in [0, 1], for a tooltip: ``centre`` the largest center-peak doubt (a garment near the threshold),
    ``landmarks`` the mean landmark doubt of the least certain detection, ``flip`` the disagreement with the
    mirrored image's heads (nan when those were not given)."""

    score: float
    expected_edits: float
    centre: float
    landmarks: float
    flip: float


def _logit(p: np.ndarray | float) -> np.ndarray:
    return np.log(p) - np.log1p(-np.asarray(p))


def centre_doubt(scores: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) center scores → (N,) doubt in [0, 1]: 1 at the threshold, falling as a Gaussian of the logit
    distance (width ``CENTRE_DOUBT_WIDTH``); scores are clipped to (1e-6, 1 − 1e-6)."""
    t = float(np.clip(threshold, *THRESHOLD_RANGE))
    s = np.clip(np.asarray(scores, np.float64), 1e-6, 1 - 1e-6)
    return np.exp(-((_logit(s) - _logit(t)) ** 2) / (2 * CENTRE_DOUBT_WIDTH**2))


def flip_disagreement(heads: RawHeads, flipped: RawHeads, params: PostprocessParams) -> float:
    """Mean relative difference |a − b| / max(a, b) in [0, 1] between the center and group heatmaps of
    ``heads`` and ``flipped`` (the mirrored image's heads, mirrored back to this image's frame), over
    the pixels where either reaches the threshold (center: ``score_threshold``, clamped to
    ``THRESHOLD_RANGE``; groups: ``peak_threshold``); 0 when no pixel does."""
    total, count = 0.0, 0
    for a, b, floor in ((heads.hm, flipped.hm, np.clip(params.score_threshold, *THRESHOLD_RANGE)),
                        (heads.hm_hp, flipped.hm_hp, max(params.peak_threshold, THRESHOLD_RANGE[0]))):
        high = np.maximum(a, b)
        hot = high >= floor
        total += float(np.sum(np.abs(a[hot] - b[hot]) / high[hot]))
        count += int(hot.sum())
    return total / count if count else 0.0


@lru_cache(maxsize=4)
def taxonomy_sigmas(taxonomy: Taxonomy) -> np.ndarray:
    """(C, Lmax) DeepFashion2 OKS σ of each class index's landmarks, 0 for padding."""
    lmax = max(c.num_landmarks for c in taxonomy.categories)
    out = np.zeros((len(taxonomy.categories), lmax))
    for k, category in enumerate(taxonomy.categories):
        out[k, : category.num_landmarks] = category.oks_sigmas
    return out


def off_tolerance(box: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """(D, Lmax) the chance that a landmark decoded on its right peak is still out of tolerance: its
    tolerance radius r = 2σ · √area · √(2 ln(1 / ``TOLERANCE_KS``)) (``box`` (D, 4) and r in map pixels,
    ``sigmas`` (D, Lmax)) against a Gaussian error of ``POSITION_ERROR`` per axis: exp(−r² / 2e²)."""
    area = np.clip(box[:, 2] - box[:, 0], 0, None) * np.clip(box[:, 3] - box[:, 1], 0, None)
    radius2 = (2.0 * sigmas) ** 2 * area[:, None] * 2.0 * math.log(1.0 / TOLERANCE_KS)
    return np.exp(-radius2 / (2.0 * POSITION_ERROR**2))


def image_uncertainty(
    heads: RawHeads,
    params: PostprocessParams,
    taxonomy: Taxonomy,
    grouping: Grouping,
    flipped: RawHeads | None = None,
) -> ImageDoubt:
    """How much the model doubts one image, from its raw heads (see ``docs/decoding.md``, "Doubt").

    Each doubt below is read as the chance that one edit is needed, so their sum is the edits to expect
    and an image with more doubtful garments and landmarks ranks higher:

    * centre: the decoder's candidates (center peaks down to ``CENTRE_DOUBT_REACH`` τ below the threshold in
      logit space) with their final scores (center rescoring as in ``params``); each one's
      ``centre_doubt`` (a garment to add or delete) counts ``GARMENT_EDITS`` edits;
    * landmarks: for each detection the decoder keeps (threshold, NMS, ``max_detections``), each landmark's
      doubt is 1 − s · (1 − second / best): s its score as the decoder gives it (the accepted peak's,
      keypoint-rescored with technique 4; 0 when no peak was accepted), best and second the two strongest
      group peaks it could take (``peak_contrast``). 0 for a sure peak of 1 without a rival; 1 without a
      peak, or with two equal ones (on the bundled model's heads this ranks landmarks that need a
      correction better than the peak score, or best − second, alone: ``bench/doubt.py``). A landmark on
      its right peak still needs an edit when it misses the tolerance a label is held to (``off_tolerance``:
      KS ≥ ``TOLERANCE_KS`` against an error of ``POSITION_ERROR`` map pixels, so more often on a small
      garment): its doubt is 1 − s · (1 − second / best) · (1 − off_tolerance);
    * flip: ``flip_disagreement`` f when ``flipped`` is given; each landmark's doubt u becomes
      1 − (1 − u)(1 − f).

    expected_edits = ``GARMENT_EDITS`` · Σ centre doubts + Σ over detections of score · Σ its landmark doubts
    (a detection is a garment with the chance its final score gives; if it is not, its landmarks need no
    edit). ``flipped`` must have the same shapes as ``heads``. Raises DecodeError for heads that do not fit
    the taxonomy and grouping.
    """
    validate_heads(heads, taxonomy, grouping)
    layout = decode_layout(taxonomy, grouping)
    peaks = landmark_peaks(heads, params)
    t = float(np.clip(params.score_threshold, *THRESHOLD_RANGE))
    floor = 1.0 / (1.0 + math.exp(-(_logit(t) - CENTRE_DOUBT_REACH * CENTRE_DOUBT_WIDTH)))
    cand = center_candidates(heads, params, np.full(taxonomy.num_classes, floor))
    coarse, groups = coarse_landmarks(heads, cand, layout)
    marks = match_landmarks(coarse, groups, cand.box, peaks, params)
    score = rescore(cand, marks, layout.count[cand.cls], params)
    centre = centre_doubt(score, t)
    flip = math.nan
    if flipped is not None:
        validate_heads(flipped, taxonomy, grouping)
        if flipped.hm.shape != heads.hm.shape:
            raise DecodeError(f"flipped heads have a {flipped.map_size} map, the image's {heads.map_size}")
        flip = flip_disagreement(heads, flipped, params)
    keep = kept_candidates(cand, score, params)
    landmarks, landmark_edits = 0.0, 0.0
    if len(keep):
        best, second = peak_contrast(coarse[keep], groups[keep], cand.box[keep], peaks)
        agree = 1.0 if math.isnan(flip) else 1.0 - flip
        rival = np.divide(second, best, out=np.zeros_like(best), where=best > 0)
        on_peak = marks.score[keep] * (1.0 - rival) * agree
        within = 1.0 - off_tolerance(cand.box[keep], taxonomy_sigmas(taxonomy)[cand.cls[keep]])
        per_landmark = np.where(groups[keep] >= 0, 1.0 - on_peak * within, 0.0)  # (D, Lmax)
        landmarks = float((per_landmark.sum(1) / layout.count[cand.cls[keep]]).max())
        # a detection is a garment with the chance its score says; else its landmarks need no edit at all
        landmark_edits = float(np.clip(score[keep], 0.0, 1.0) @ per_landmark.sum(1))
    edits = GARMENT_EDITS * float(centre.sum()) + landmark_edits
    return ImageDoubt(float(1.0 - math.exp(-edits / EDITS_SCALE)), edits, float(centre.max(initial=0.0)),
                      landmarks, flip)


# ---------------------------------------------------------------------------------------------
# Likely label mistakes


@dataclass(frozen=True)
class ItemDoubt:
    """How likely one labelled item is wrong, by the model's predictions.

    ``index`` the item's position in the list given; ``score`` in [0, 1] (sort by it, highest first);
    ``oks`` the OKS of the label against the compared prediction (nan when none, or no labelled
    landmark); ``detection`` that prediction's index (None: no same-category prediction overlaps);
    ``moved`` local indices of landmarks far from a confident predicted position; ``swapped`` flip pairs
    (i, j) that fit the prediction much better exchanged; ``predicted_category`` the category the model
    predicts there instead (None: no disagreement); ``reasons`` one short line each, for a view."""

    index: int
    score: float
    oks: float
    detection: int | None
    moved: tuple[int, ...]
    swapped: tuple[tuple[int, int], ...]
    predicted_category: int | None
    reasons: tuple[str, ...]


def keypoint_similarity(label: np.ndarray, predicted: np.ndarray, sigmas: np.ndarray, area: float,
                        tolerance: float = 0.0) -> np.ndarray:
    """Per-landmark KS (..., L) in (0, 1] of labelled positions ``label`` (L, 2) against ``predicted``
    (..., L, 2), pixels: exp(−d² / (2 · area · ((2σ)² + tolerance²))); with ``tolerance`` 0 COCO's OKS term
    with DeepFashion2's σ (L,) and ``area`` the item's box area in pixels² (its scale, as the official
    evaluation takes it); ``tolerance`` widens it by a fraction of the size √area."""
    d2 = np.sum((np.asarray(predicted, np.float64) - label) ** 2, axis=-1)
    return np.exp(-d2 / (2.0 * max(area, 1e-9) * ((2.0 * sigmas) ** 2 + tolerance**2)))


def rival_share(rival: float, own: float, unseen: float = UNSEEN_SCORE) -> float:
    """The category doubt in [0, 1): the rival category's share of the two scores, rival / (rival +
    max(own, ``unseen``)), when the rival scores higher, else 0. A rival at 0.3 where the labelled category
    is not predicted at all (0.86) is more telling than one at 0.9 over the labelled one at 0.6 (0.6)."""
    if rival <= own:
        return 0.0
    return rival / (rival + max(own, unseen))


def _category_name(taxonomy: Taxonomy, category_id: int) -> str:
    return taxonomy.category(category_id).name


def label_mistakes(items: Sequence[Item], detections: Sequence[Detection], taxonomy: Taxonomy,
                   tolerance: float = POSITION_TOLERANCE) -> list[ItemDoubt]:
    """One ``ItemDoubt`` per item of one image (same order), from that image's ``detections`` (decode with a
    low score threshold so that weak predictions count too).

    Per item, four doubts in [0, 1]; the score is the largest:

    * position: among same-category predictions with box IoU ≥ ``COMPARE_IOU``, the one with the best OKS
      (as labelled or with every flip pair exchanged, so a mirrored label still finds its garment); KS
      is then taken with ``tolerance`` (``POSITION_TOLERANCE``, a fraction of the garment's size) added
      in quadrature to 2σ, so that the model's ordinary error is not a mistake. Each labelled landmark's
      doubt is (1 − KS) × weight (1 where the prediction's heatmap peak placed it, ``UNREFINED_WEIGHT``
      where only the regression did) × the mean KS of the other labelled landmarks (each as labelled or
      mirrored, the better; 1 without others): far from the model where the rest fits it is a mistake,
      where the rest is off too rather the model's error; the largest, and 1 − the mean KS, whichever is
      higher;
    * swapped flip pairs: for each pair with both labelled, mean KS exchanged − mean KS as labelled (same
      tolerance, × the smaller weight × the others' mean KS as above), clipped at 0; the largest;
    * category: where another category's prediction with IoU ≥ ``MATCH_IOU`` scores above the best of the
      item's own category there, ``rival_share`` of the two (0 otherwise);
    * no prediction of any category with IoU ≥ ``MATCH_IOU``: ``NO_PREDICTION_DOUBT``.
    """
    boxes = np.array([np.asarray(d.box, np.float64) for d in detections]).reshape(-1, 4)
    categories = np.array([int(d.category_id) for d in detections], np.int64)
    scores = np.array([float(d.score) for d in detections])
    out = []
    for index, item in enumerate(items):
        ious = box_ious(item.box, boxes) if len(boxes) else np.zeros(0)
        out.append(_item_doubt(index, item, detections, ious, categories, scores, taxonomy, tolerance))
    return out


def _item_doubt(index: int, item: Item, detections: Sequence[Detection], ious: np.ndarray, categories: np.ndarray,
                scores: np.ndarray, taxonomy: Taxonomy, tolerance: float) -> ItemDoubt:
    category = taxonomy.category(item.category_id)
    own = categories == category.id
    reasons: list[str] = []
    doubts = [0.0]
    there = ious >= MATCH_IOU
    if not there.any():
        doubts.append(NO_PREDICTION_DOUBT)
        reasons.append("no prediction matches this box")
    other = there & ~own
    predicted_category = None
    if other.any():
        rival = int(np.flatnonzero(other)[np.argmax(scores[other])])
        own_best = float(scores[there & own].max()) if (there & own).any() else 0.0
        category_doubt = rival_share(float(scores[rival]), own_best)
        if category_doubt > 0:
            predicted_category = int(categories[rival])
            doubts.append(category_doubt)
            reasons.append(f"the model predicts {_category_name(taxonomy, predicted_category)} here "
                           f"({scores[rival]:.2f}), not {category.name}")
    compared = np.flatnonzero(own & (ious >= COMPARE_IOU))
    labelled = np.asarray(item.landmarks, np.float64)[:, 2] > 0
    if len(compared) == 0 or not labelled.any():
        return ItemDoubt(index, max(doubts), math.nan, None, (), (), predicted_category, tuple(reasons))
    fit = _compare_landmarks(item, category, [detections[i] for i in compared], labelled, tolerance)
    doubts.extend(fit.doubts)
    reasons.extend(fit.reasons)
    return ItemDoubt(index, float(max(doubts)), fit.oks, int(compared[fit.best]), fit.moved, fit.swapped,
                     predicted_category, tuple(reasons))


@dataclass(frozen=True)
class _LandmarkFit:
    best: int
    oks: float
    doubts: tuple[float, ...]
    moved: tuple[int, ...]
    swapped: tuple[tuple[int, int], ...]
    reasons: tuple[str, ...]


def _compare_landmarks(item: Item, category: Category, candidates: list[Detection], labelled: np.ndarray,
                       tolerance: float) -> _LandmarkFit:
    """Position and flip doubts of ``item`` against the best of ``candidates`` (same category, N ≥ 1)."""
    label = np.asarray(item.landmarks, np.float64)[:, :2]
    box = np.asarray(item.box, np.float64)
    area = float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))
    predicted = np.stack([np.asarray(d.landmarks, np.float64)[:, :2] for d in candidates])  # (N, L, 2)
    weight = np.stack([np.where(np.asarray(d.refined, bool), 1.0, UNREFINED_WEIGHT) for d in candidates])
    perm = category.flip_permutation
    sigmas = category.oks_sigmas
    oks = keypoint_similarity(label, predicted, sigmas, area)[:, labelled].mean(1)  # (N,) official OKS
    mirrored_oks = keypoint_similarity(label, predicted[:, perm], sigmas, area)[:, labelled].mean(1)
    best = int(np.argmax(np.maximum(oks, mirrored_oks)))
    ks = keypoint_similarity(label, predicted[best], sigmas, area, tolerance)  # (L,) tolerant
    ks_x = keypoint_similarity(label, predicted[best][perm], sigmas, area, tolerance)
    w = weight[best]
    # flip pairs, both labelled: KS exchanged vs as labelled, by the pair's weaker weight
    pairs = category.flip_pairs.reshape(-1, 2)
    pairs = pairs[labelled[pairs].all(1)]
    # a label far from the model's landmark while the rest of the garment fits the model (as labelled or
    # mirrored) is a mistake; when the rest does not fit either, it is rather the model that is off: doubts
    # × the others' mean KS (1 when there are no others)
    fit = np.maximum(ks, ks_x)
    total, count = float(fit[labelled].sum()), int(labelled.sum())
    others = (total - fit) / (count - 1) if count > 1 else np.ones_like(ks)  # (L,)
    pair_others = (total - fit[pairs].sum(1)) / (count - 2) if count > 2 else np.ones(len(pairs))
    pair_doubt = (np.clip(ks_x[pairs].mean(1) - ks[pairs].mean(1), 0.0, 1.0) * w[pairs].min(1, initial=1.0)
                  * pair_others)
    swapped = pairs[pair_doubt >= REASON_DOUBT]
    in_swap = np.zeros(len(ks), bool)
    in_swap[swapped.reshape(-1)] = True
    landmark_doubt = np.where(labelled, (1.0 - ks) * w * others, 0.0)
    moved = np.flatnonzero((landmark_doubt >= REASON_DOUBT) & ~in_swap)
    names = category.landmark_names
    offset = np.hypot(*(predicted[best] - label).T)
    reasons = [f"left/right swapped: {names[i]} ↔ {names[j]}" for i, j in swapped]
    reasons += [f"{names[i]} is {offset[i]:.0f} px from the model's position" for i in moved]
    doubts = (float(landmark_doubt.max()), 1.0 - float(ks[labelled].mean()), float(pair_doubt.max(initial=0.0)))
    if doubts[1] >= REASON_DOUBT and not reasons:
        reasons.append(f"OKS {oks[best]:.2f} with the model's prediction")
    return _LandmarkFit(best, float(oks[best]), doubts, tuple(int(i) for i in moved),
                        tuple((int(i), int(j)) for i, j in swapped), tuple(reasons))
