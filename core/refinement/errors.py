"""The detector's error statistics, measured on its own matched detections, and errors synthesised from them.

PoseFix's recipe: learn the errors the pose estimator really makes. Per landmark error, with lengths
relative to the ground-truth garment's size s = sqrt(box area):

* ``swap``: the landmark lies nearer its mirror partner's true position than its own (left/right confused);
  per category, the share of labelled landmarks that have a partner;
* ``miss``: not a swap, and farther than ``MISS_DISTANCE`` · s from the truth; per category;
* ``jitter``: the RMS of the per-axis error of the remaining (ordinary) landmarks, per landmark (294),
  shrunk towards its category's value when the landmark has few samples;
* ``box``: the RMS of each box side's error relative to the box's own width or height.

``synthesise`` applies these to ground-truth garments (``samples.ground_truth_samples``): Gaussian jitter
of σ = jitter · s, each flip pair swapped with the category's swap rate, misses placed uniformly in the box.
"""

from __future__ import annotations

import numpy as np

from deepmark.core.domain.taxonomy import Taxonomy
from deepmark.core.refinement.samples import Samples

MISS_DISTANCE = 0.25  # a non-swap error beyond this share of the garment's size is a miss (gross error)
SHRINK_COUNT = 20  # a landmark's own jitter counts as this many of its category's (few samples → category's)


def _layout(taxonomy: Taxonomy, max_landmarks: int) -> tuple[np.ndarray, np.ndarray]:
    """(13, Lmax) global landmark index (−1 pad) and (13, Lmax) local flip partner of each category."""
    glob = np.full((taxonomy.num_classes, max_landmarks), -1)
    partner = np.tile(np.arange(max_landmarks), (taxonomy.num_classes, 1))
    for k, cat in enumerate(taxonomy.categories):
        glob[k, : cat.num_landmarks] = cat.global_indices
        partner[k, : cat.num_landmarks] = cat.flip_permutation
    return glob, partner


def _sizes(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy → (N,) sqrt(area), at least 1 pixel."""
    return np.sqrt(np.clip((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1.0, None))


def measure(samples: Samples, taxonomy: Taxonomy) -> dict:
    """The error statistics of ``samples`` (detections matched to ground truth) as a JSON-ready dict:
    ``jitter`` (294,), ``swap`` and ``miss`` (13,) rates, ``box`` (4,) RMS relative side errors, ``count``
    (13,) labelled landmarks per category, ``miss_distance``."""
    lmax = samples.coarse.shape[1]
    glob, partner = _layout(taxonomy, lmax)
    k = samples.category_id - 1
    size = _sizes(samples.gt_box)[:, None]
    labelled = (samples.target[..., 2] > 0) & (np.arange(lmax)[None] < samples.count[:, None])
    own = np.linalg.norm(samples.coarse - samples.target[..., :2], axis=-1) / size
    mate = partner[k]
    mate_xy = np.take_along_axis(samples.target[..., :2], mate[..., None], axis=1)
    mate_labelled = np.take_along_axis(labelled, mate, axis=1) & (mate != np.arange(lmax)[None])
    to_mate = np.linalg.norm(samples.coarse - mate_xy, axis=-1) / size
    swap = labelled & mate_labelled & (to_mate < own)
    miss = labelled & ~swap & (own > MISS_DISTANCE)
    ordinary = labelled & ~swap & ~miss
    sq = ((samples.coarse - samples.target[..., :2]) / size[..., None]) ** 2
    per_axis = sq.mean(-1)  # (N, Lmax): mean of the x and y squared errors
    stats_cat = np.zeros((3, taxonomy.num_classes))  # swap, miss, jitter² per category
    count = np.zeros(taxonomy.num_classes, np.int64)
    jitter = np.zeros(taxonomy.num_landmarks)
    for c in range(taxonomy.num_classes):
        rows = k == c
        n_lab = labelled[rows].sum()
        count[c] = n_lab
        paired = (labelled & mate_labelled)[rows].sum()
        stats_cat[0, c] = swap[rows].sum() / max(paired, 1)
        stats_cat[1, c] = miss[rows].sum() / max(n_lab, 1)
        ok = ordinary[rows]
        cat_sq = per_axis[rows][ok].mean() if ok.any() else 0.0
        stats_cat[2, c] = cat_sq
        n = taxonomy.categories[c].num_landmarks
        own_n = ok[:, :n].sum(0)
        own_sq = np.where(ok[:, :n], per_axis[rows][:, :n], 0.0).sum(0)
        jitter[glob[c, :n]] = np.sqrt((own_sq + SHRINK_COUNT * cat_sq) / (own_n + SHRINK_COUNT))
    box_size = np.stack([samples.gt_box[:, 2] - samples.gt_box[:, 0], samples.gt_box[:, 3] - samples.gt_box[:, 1]] * 2,
                        axis=1)
    box = np.sqrt((((samples.box - samples.gt_box) / np.clip(box_size, 1.0, None)) ** 2).mean(0)) \
        if len(samples) else np.zeros(4)
    return {"jitter": jitter.round(5).tolist(), "swap": stats_cat[0].round(5).tolist(),
            "miss": stats_cat[1].round(5).tolist(), "box": box.round(5).tolist(), "count": count.tolist(),
            "miss_distance": MISS_DISTANCE, "garments": int(len(samples))}


def synthesise(truth: Samples, stats: dict, taxonomy: Taxonomy, rng: np.random.Generator,
               scale: float = 1.0) -> Samples:
    """``truth`` (ground truth as samples) with errors drawn from ``stats`` (``measure``); ``scale`` multiplies
    the jitter and box errors. Returns new Samples whose ``box`` and ``coarse`` carry the errors."""
    n, lmax = truth.coarse.shape[:2]
    glob, partner = _layout(taxonomy, lmax)
    k = truth.category_id - 1
    size = _sizes(truth.gt_box)[:, None, None]
    sigma = np.asarray(stats["jitter"])[np.clip(glob[k], 0, None)] * scale  # (N, Lmax)
    coarse = truth.target[..., :2] + rng.normal(size=(n, lmax, 2)) * sigma[..., None] * size
    # swap whole flip pairs: decide on the lower index of each pair, apply to both
    mate = partner[k]
    decide = rng.random((n, lmax)) < np.asarray(stats["swap"])[k][:, None]
    pair_swap = np.where(mate < np.arange(lmax)[None], np.take_along_axis(decide, mate, axis=1), decide)
    pair_swap &= mate != np.arange(lmax)[None]
    coarse = np.where(pair_swap[..., None], np.take_along_axis(coarse, mate[..., None], axis=1), coarse)
    box = truth.gt_box
    miss = rng.random((n, lmax)) < np.asarray(stats["miss"])[k][:, None]
    anywhere = box[:, None, :2] + rng.random((n, lmax, 2)) * (box[:, None, 2:] - box[:, None, :2])
    coarse = np.where(miss[..., None], anywhere, coarse)
    sides = np.stack([box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]] * 2, axis=1)
    noisy_box = box + rng.normal(size=(n, 4)) * np.asarray(stats["box"]) * scale * sides
    noisy_box = np.concatenate([np.minimum(noisy_box[:, :2], noisy_box[:, 2:] - 1), noisy_box[:, 2:]], axis=1)
    return Samples(truth.image_id, truth.category_id, noisy_box, coarse, truth.target, truth.gt_box, truth.count)
