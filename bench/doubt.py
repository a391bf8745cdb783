"""Benchmark of the assist and doubt functions (a script, not a test): time per call, and how well they work.

    .venv/bin/python bench/doubt.py [--images 40] [--runs 5] [--seed 3]

Heads of 64×64 maps (inputs 256², 13 classes, ``semantic62``), two kinds:
- *simulated*: ``deepmark.core.synthetic.simulate`` scenes (Gaussian peaks at 0.9, background noise up to 0.05,
  regressions off by up to ±1.5 map px);
- *model*: the bundled default model on rendered synthetic scenes (``render_scene``, seed ``--seed``: neither
  the model's training set, seed 0, nor its validation set, seed 1), and on their mirror images for the flip
  part (``flip_heads`` maps those back).
Times (median and p95 over every image × run, after one untimed call per image): ``image_uncertainty``
without and with the flip heads, ``label_mistakes`` per image, ``prompted_landmarks`` per garment (box,
click), ``snap_to_peak`` per landmark.

Quality, on the same images:
- likely mistakes: errors injected into 15 % of the labels (a landmark moved by 0.2 × the box diagonal, a
  flip pair exchanged, another category with its template over the box), ranked with the clean labels:
  the share of injected errors in the top N = 2 × injected, and the precision of the top n_injected;
- uncertainty: the edits the model's detections need (each labelled landmark of a matched garment with
  KS < 0.9, every landmark of a missed garment, each spurious detection) found in the first 20 % of images
  in uncertainty order, against 20 % expected in random order;
- prompted landmarks: mean distance to the labels of the box-prompted landmarks vs the template over the
  same box (pixels of the 256² images), and the share of confident landmarks;
- per-landmark doubt: how well it picks out the landmarks of the decoded garments that need a correction.
Timings on a shared machine vary with its load: the minimum is the uncontended cost.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace

import numpy as np

from deepmark.core.centernet.assist import prompted_landmarks, snap_to_peak
from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import Item, PostprocessParams
from deepmark.core.domain.taxonomy import load_grouping, load_taxonomy
from deepmark.core.studio.doubt import image_uncertainty, keypoint_similarity, label_mistakes
from deepmark.core.studio.templates import box_ious, template_landmarks
from deepmark.core.synthetic.simulate import random_scene, simulated_heads

TAXONOMY = load_taxonomy()
GROUPING = load_grouping("semantic62", TAXONOMY)
PARAMS = PostprocessParams.all_techniques()
LOW = replace(PARAMS, score_threshold=0.05)  # the mistakes view compares with weak predictions too
SIZE = (256, 256)
ERROR_RATE = 0.15


def simulated_set(count: int, seed: int):
    """[(labels, heads, flipped or None)] of simulated scenes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        items = random_scene(rng, TAXONOMY, SIZE)
        out.append((items, simulated_heads(items, SIZE, TAXONOMY, GROUPING, rng, 0.05, 1.5), None))
    return out


def model_set(count: int, seed: int):
    """[(labels, heads, flipped)] of rendered scenes through the bundled model."""
    from deepmark.core.inference.detector import Detector, flip_heads
    from deepmark.core.synthetic.config import SynthConfig
    from deepmark.core.synthetic.scene import render_scene

    detector = Detector(threads=1)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        image, items = render_scene(rng, TAXONOMY, SynthConfig(image_size=SIZE))
        heads = detector.heads(image)
        mirrored = detector.heads(np.ascontiguousarray(image[:, ::-1]))
        out.append(([s.item for s in items], heads, flip_heads(mirrored, detector.grouping.group_flip)))
    return out


def timed(fn, runs: int) -> list[float]:
    fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def summary(times: list[float]) -> str:
    p95 = float(np.percentile(times, 95))
    return f"{min(times):7.2f} {statistics.median(times):7.2f} {p95:7.2f}"


def time_rows(images, runs: int) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {k: [] for k in ("image_uncertainty", "image_uncertainty + flip",
                                                    "label_mistakes (per image)", "prompted_landmarks, box",
                                                    "prompted_landmarks, click", "snap_to_peak (r = 16 px)")}
    for labels, heads, flipped in images:
        detections = decode_detections(heads, LOW, TAXONOMY, GROUPING)
        rows["image_uncertainty"] += timed(lambda h=heads: image_uncertainty(h, PARAMS, TAXONOMY, GROUPING), runs)
        if flipped is not None:
            rows["image_uncertainty + flip"] += timed(
                lambda h=heads, f=flipped: image_uncertainty(h, PARAMS, TAXONOMY, GROUPING, flipped=f), runs)
        rows["label_mistakes (per image)"] += timed(lambda i=labels, d=detections: label_mistakes(i, d, TAXONOMY),
                                                    runs)
        for item in labels:
            k = TAXONOMY.category_index(item.category_id)
            rows["prompted_landmarks, box"] += timed(
                lambda h=heads, it=item: prompted_landmarks(h, it.box, it.category_id, PARAMS, TAXONOMY, GROUPING),
                runs)
            centre = (item.box[:2] + item.box[2:]) / 2
            rows["prompted_landmarks, click"] += timed(
                lambda h=heads, it=item, c=centre: prompted_landmarks(h, c, it.category_id, PARAMS, TAXONOMY,
                                                                      GROUPING), runs)
            i = int(np.argmax(item.landmarks[:, 2] > 0))
            group = int(GROUPING.category_groups[k][i])
            rows["snap_to_peak (r = 16 px)"] += timed(
                lambda h=heads, g=group, p=item.landmarks[i, :2] + 5.0: snap_to_peak(h, g, p, 16.0), runs)
    return {k: v for k, v in rows.items() if v}


def inject(item: Item, rng: np.random.Generator) -> Item | None:
    """One labelling error of a random kind, or None when the kind does not apply to this item."""
    kind = int(rng.integers(3))
    landmarks = item.landmarks.copy()
    labelled = np.flatnonzero(landmarks[:, 2] > 0)
    size = float(np.hypot(*(item.box[2:] - item.box[:2])))
    if kind == 0 and len(labelled):
        i = int(rng.choice(labelled))
        angle = rng.uniform(0, 2 * np.pi)
        landmarks[i, :2] += 0.2 * size * np.array([np.cos(angle), np.sin(angle)])
        return replace(item, landmarks=landmarks)
    if kind == 1:
        pairs = TAXONOMY.category(item.category_id).flip_pairs
        pairs = pairs[(landmarks[pairs, 2] > 0).all(1)]
        far = pairs[np.hypot(*(landmarks[pairs[:, 0], :2] - landmarks[pairs[:, 1], :2]).T) > 0.1 * size]
        if len(far) == 0:
            return None
        i, j = far[rng.integers(len(far))]
        landmarks[[i, j], :2] = landmarks[[j, i], :2]
        return replace(item, landmarks=landmarks)
    if kind == 2:
        other = int(rng.choice([c for c in TAXONOMY.category_ids if c != item.category_id]))
        return Item(other, item.box.copy(), template_landmarks(TAXONOMY.category(other), item.box))
    return None


def mistakes_quality(images, seed: int) -> tuple[int, int, float, float]:
    rng = np.random.default_rng(seed)
    scored = []
    for labels, heads, _ in images:
        detections = decode_detections(heads, LOW, TAXONOMY, GROUPING)
        altered, kinds = [], []
        for item in labels:
            wrong = inject(item, rng) if rng.random() < ERROR_RATE else None
            altered.append(wrong or item)
            kinds.append(wrong is not None)
        scored += [(d.score, k) for d, k in zip(label_mistakes(altered, detections, TAXONOMY), kinds, strict=True)]
    scored.sort(key=lambda s: -s[0])
    injected = sum(k for _, k in scored)
    recall = sum(k for _, k in scored[: 2 * injected]) / max(injected, 1)
    precision = sum(k for _, k in scored[:injected]) / max(injected, 1)
    return injected, len(scored), recall, precision


def needed_edits(labels, detections) -> int:
    """Edits to bring the detections to the labels: landmarks with KS < 0.9 on matched garments, every
    landmark of a missed garment, one per spurious detection (a greedy IoU ≥ 0.5 same-category match)."""
    used = np.zeros(len(detections), bool)
    edits = 0
    for item in labels:
        labelled = item.landmarks[:, 2] > 0
        same = [i for i, d in enumerate(detections) if d.category_id == item.category_id and not used[i]]
        ious = box_ious(item.box, np.array([detections[i].box for i in same])) if same else np.zeros(0)
        if len(ious) == 0 or ious.max() < 0.5:
            edits += int(labelled.sum()) + 1
            continue
        d = detections[same[int(np.argmax(ious))]]
        used[same[int(np.argmax(ious))]] = True
        box = item.box
        area = float((box[2] - box[0]) * (box[3] - box[1]))
        ks = keypoint_similarity(item.landmarks[:, :2], d.landmarks[:, :2],
                                 TAXONOMY.category(item.category_id).oks_sigmas, area)
        edits += int(((ks < 0.9) & labelled).sum())
    return edits + int((~used).sum())


def uncertainty_quality(images) -> tuple[float, float]:
    """Share of all needed edits in the first 20 % of images, uncertainty order without and with flip."""
    edits, plain, flip = [], [], []
    for labels, heads, flipped in images:
        edits.append(needed_edits(labels, decode_detections(heads, PARAMS, TAXONOMY, GROUPING)))
        plain.append(image_uncertainty(heads, PARAMS, TAXONOMY, GROUPING).score)
        flip.append(image_uncertainty(heads, PARAMS, TAXONOMY, GROUPING, flipped=flipped).score
                    if flipped is not None else np.nan)
    edits = np.array(edits)
    top = max(1, round(0.2 * len(images)))

    def share(order_by) -> float:
        return float(edits[np.argsort(-np.asarray(order_by), kind="stable")[:top]].sum() / max(edits.sum(), 1))

    return share(plain), (share(flip) if not np.isnan(flip).any() else np.nan)


def landmark_auc(images) -> dict[str, float]:
    """ROC AUC of per-landmark doubts for "the detection's landmark needs a correction" (KS < 0.5), over the
    labelled landmarks of detections matched to a label (same category, IoU ≥ 0.5): the doubt used,
    1 − s · (1 − second / best), against 1 − s and 1 − (best − second) alone."""
    from deepmark.core.centernet import decode as dec
    from deepmark.core.centernet.assist import peak_contrast

    doubts: dict[str, list[float]] = {"1 - s (1 - second/best)": [], "1 - s": [], "1 - (best - second)": []}
    wrong: list[bool] = []
    layout = dec.decode_layout(TAXONOMY, GROUPING)
    for labels, heads, _ in images:
        peaks = dec.landmark_peaks(heads, PARAMS)
        cand = dec.center_candidates(heads, PARAMS, dec.candidate_floors(PARAMS, layout, peaks[2]))
        coarse, groups = dec.coarse_landmarks(heads, cand, layout)
        marks = dec.match_landmarks(coarse, groups, cand.box, peaks, PARAMS)
        keep = dec.kept_candidates(cand, dec.rescore(cand, marks, layout.count[cand.cls], PARAMS), PARAMS)
        best, second = peak_contrast(coarse[keep], groups[keep], cand.box[keep], peaks)
        detections = dec.finalize_detections(heads, cand, marks, PARAMS, layout)  # the same order as keep
        for row, (k, d) in enumerate(zip(keep, detections, strict=True)):
            match = [it for it in labels if it.category_id == d.category_id and box_ious(it.box, d.box[None])[0] >= 0.5]
            if not match:
                continue
            item = match[0]
            n = len(item.landmarks)
            area = float((item.box[2] - item.box[0]) * (item.box[3] - item.box[1]))
            ks = keypoint_similarity(item.landmarks[:, :2], d.landmarks[:, :2],
                                     TAXONOMY.category(item.category_id).oks_sigmas, area)
            labelled = item.landmarks[:, 2] > 0
            s, b, r = marks.score[k, :n], best[row, :n], second[row, :n]
            ratio = np.divide(r, b, out=np.zeros_like(b), where=b > 0)
            doubts["1 - s (1 - second/best)"] += list((1 - s * (1 - ratio))[labelled])
            doubts["1 - s"] += list((1 - s)[labelled])
            doubts["1 - (best - second)"] += list((1 - (b - r))[labelled])
            wrong += list((ks < 0.5)[labelled])
    y = np.array(wrong)

    def auc(score) -> float:  # Mann–Whitney, ties counted half
        score = np.asarray(score)
        ranks = np.argsort(np.argsort(score, kind="stable"), kind="stable").astype(float)
        for value in np.unique(score):  # average ranks of ties
            tied = score == value
            ranks[tied] = ranks[tied].mean()
        return float((ranks[y].mean() - (y.sum() - 1) / 2) / max((~y).sum(), 1))

    return {name: auc(v) for name, v in doubts.items()} if y.any() and (~y).any() else {}


def prompted_quality(images) -> tuple[float, float, float]:
    prompted, template, confident = [], [], []
    for labels, heads, _ in images:
        for item in labels:
            labelled = item.landmarks[:, 2] > 0
            out = prompted_landmarks(heads, item.box, item.category_id, PARAMS, TAXONOMY, GROUPING)
            guess = template_landmarks(TAXONOMY.category(item.category_id), item.box)
            prompted.append(np.hypot(*(out.landmarks[labelled, :2] - item.landmarks[labelled, :2]).T).mean())
            template.append(np.hypot(*(guess[labelled, :2] - item.landmarks[labelled, :2]).T).mean())
            confident.append(out.confident.mean())
    return float(np.mean(prompted)), float(np.mean(template)), float(np.mean(confident))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}; {args.images} images per kind, 64×64 maps")
    kinds = {"simulated": simulated_set(args.images, args.seed), "model": model_set(args.images, args.seed)}
    print(f"\n{'ms per call':<34}{'kind':<11}{'min':>7} {'median':>7} {'p95':>7}")
    for kind, images in kinds.items():
        for name, times in time_rows(images, args.runs).items():
            print(f"{name:<34}{kind:<11}{summary(times)}")
    print(f"\n{'quality':<11}{'injected':>9}{'items':>7}{'in top 2N':>11}{'prec@N':>8}"
          f"{'edits@20%':>11}{'+flip':>7}{'prompt px':>11}{'tmpl px':>9}{'confident':>11}")
    for kind, images in kinds.items():
        injected, items, recall, precision = mistakes_quality(images, args.seed)
        plain, flip = uncertainty_quality(images)
        prompted, template, confident = prompted_quality(images)
        print(f"{kind:<11}{injected:>9}{items:>7}{recall:>11.2f}{precision:>8.2f}{plain:>11.2f}{flip:>7.2f}"
              f"{prompted:>11.1f}{template:>9.1f}{confident:>11.2f}")
    print("\nper-landmark doubt, ROC AUC for 'needs a correction' (KS < 0.5)")
    for kind, images in kinds.items():
        print(f"{kind:<11}" + "  ".join(f"{name}: {value:.3f}" for name, value in landmark_auc(images).items()))


if __name__ == "__main__":
    main()
