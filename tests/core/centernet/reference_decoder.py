"""A deliberately plain, loop-based reference decoder, written from ``docs/decoding.md`` alone.

It follows the spec's steps literally, one pixel / candidate / landmark / peak at a time, in float64
Python arithmetic, so that the vectorised ``deepmark.core.centernet.decode.decode_detections`` can be checked against
it.
Clarity over speed: keep the maps small (about 16×16 to 24×24) when using it.

Where the spec leaves a choice open, the choice made here is written next to the code:

- Center candidates (step 2): the ``top_k`` highest peaks over all classes, then (step 7) the detections
  with score < ``score_threshold`` are dropped. Step 7 says the center-rescoring floor of step 2 only
  skips candidates that provably cannot reach the threshold, "so the result is the same as examining
  all top_k"; without center rescoring the floor is ``score_threshold`` itself, and filtering peaks by
  ``s >= score_threshold`` before or after taking the top_k gives the same set. So the floor is not
  implemented here at all.
- Exact ties (equal scores, equal distances) are broken by the first in scan order (channel, y, x);
  the tests avoid inputs where a tie could matter.
"""

from __future__ import annotations

import math

import numpy as np

from deepmark.core.domain.structures import Detection, PostprocessParams, RawHeads

NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def smooth(channel: list[list[float]], sigma: float) -> list[list[float]]:
    """Correlate one H×W channel (nested lists) with the 3×3 kernel w wᵀ, zero padding.

    ``w = [e^(−1/2σ²), 1, e^(−1/2σ²)] / sum``; σ < 0.001 means no smoothing (a copy is returned).
    """
    height, width = len(channel), len(channel[0])
    if sigma < 0.001:
        return [list(row) for row in channel]
    side = math.exp(-1.0 / (2.0 * sigma * sigma))
    total = side + 1.0 + side
    w = [side / total, 1.0 / total, side / total]
    kernel = [[w[i] * w[j] for j in range(3)] for i in range(3)]
    out = [[0.0] * width for _ in range(height)]
    for y in range(height):
        for x in range(width):
            acc = 0.0
            for i in range(3):
                yy = y + i - 1
                if yy < 0 or yy >= height:
                    continue  # zero padding
                for j in range(3):
                    xx = x + j - 1
                    if xx < 0 or xx >= width:
                        continue  # zero padding
                    acc += kernel[i][j] * channel[yy][xx]
            out[y][x] = acc
    return out


def peaks_of(channel: list[list[float]]) -> list[tuple[float, int, int]]:
    """All (score, y, x) whose value is >= each of its up to 8 neighbours inside the map (ties keep both)."""
    height, width = len(channel), len(channel[0])
    found = []
    for y in range(height):
        for x in range(width):
            v = channel[y][x]
            is_peak = True
            for dy, dx in NEIGHBOURS:
                yy, xx = y + dy, x + dx
                if 0 <= yy < height and 0 <= xx < width and channel[yy][xx] > v:
                    is_peak = False
                    break
            if is_peak:
                found.append((v, y, x))
    return found


def top_by_score(items: list, k: int) -> list:
    """The ``k`` highest-scoring items (item[0] is the score); stable, so ties keep scan order."""
    return sorted(items, key=lambda item: -item[0])[:k]


def channel_maps(stack: np.ndarray, sigma: float, smoothing: bool) -> list[list[list[float]]]:
    maps = []
    for c in range(stack.shape[0]):
        channel = np.asarray(stack[c], dtype=np.float64).tolist()
        maps.append(smooth(channel, sigma) if smoothing else channel)
    return maps


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_decode(heads: RawHeads, params: PostprocessParams, taxonomy, grouping) -> list[Detection]:
    """Decode one image's heads per ``docs/decoding.md`` (no input validation); best score first."""
    hm = np.asarray(heads.hm, dtype=np.float64)
    reg = np.asarray(heads.reg, dtype=np.float64)
    wh = np.asarray(heads.wh, dtype=np.float64)
    hps = np.asarray(heads.hps, dtype=np.float64)
    hp_offset = np.asarray(heads.hp_offset, dtype=np.float64)
    num_classes = hm.shape[0]
    num_groups = heads.hm_hp.shape[0]

    # Step 1: landmark peaks per group: (score, px, py), strictly above peak_threshold, top_k highest.
    group_maps = channel_maps(heads.hm_hp, params.sigma_keypoint, params.heatmap_rescoring)
    group_peaks: list[list[tuple[float, float, float]]] = []
    for g in range(num_groups):
        above = [(v, y, x) for (v, y, x) in peaks_of(group_maps[g]) if v > params.peak_threshold]
        chosen = top_by_score(above, params.top_k)
        group_peaks.append(
            [(v, x + float(hp_offset[0, y, x]), y + float(hp_offset[1, y, x])) for (v, y, x) in chosen]
        )

    # Step 2: center candidates, the top_k highest peaks over all classes (see the module docstring).
    center_maps = channel_maps(heads.hm, params.sigma_center, params.heatmap_rescoring)
    all_peaks = []
    for c in range(num_classes):
        for v, y, x in peaks_of(center_maps[c]):
            all_peaks.append((v, c, y, x))
    candidates = top_by_score(all_peaks, params.top_k)
    if params.center_rescoring and params.alpha < 1.0:
        # Step 2's one approximation: with center rescoring, box scores below
        # min(candidate_floor, score_threshold) are not examined.
        floor = min(params.candidate_floor, params.score_threshold)
        candidates = [cand for cand in candidates if cand[0] >= floor]

    results = []  # (score, box_score, class, box, landmarks [(x, y, score)], refined [bool])
    for s, c, y, x in candidates:
        # Step 3: box.
        cx = x + float(reg[0, y, x])
        cy = y + float(reg[1, y, x])
        w = float(wh[0, y, x])
        h = float(wh[1, y, x])
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2

        landmarks = []
        refined = []
        for g in [int(v) for v in grouping.category_groups[c]]:
            # Step 4: coarse landmark.
            kx = x + float(hps[2 * g, y, x])
            ky = y + float(hps[2 * g + 1, y, x])

            # Step 5: choice of peak.
            best = None  # (score, px, py, distance)
            if params.keypoint_rescoring:
                sigma_m = min(w, h) / 9.0
                for v, px, py in group_peaks[g]:
                    d = math.hypot(px - kx, py - ky)
                    rescored = v * math.exp(-(d * d) / (2.0 * sigma_m * sigma_m))
                    if best is None or rescored > best[0]:
                        best = (rescored, px, py, d)
            else:
                for v, px, py in group_peaks[g]:
                    d = math.hypot(px - kx, py - ky)
                    if best is None or d < best[3]:
                        best = (v, px, py, d)

            rejected = (
                best is None
                or best[1] < x1
                or best[1] > x2
                or best[2] < y1
                or best[2] > y2
                or best[0] < params.peak_threshold
                or best[3] > 0.3 * max(w, h)
            )
            if rejected:
                landmarks.append((kx, ky, 0.0))
                refined.append(False)
            else:
                score, px, py, _ = best
                if params.location_refinement:
                    gamma = params.gamma
                    px = gamma * px + (1.0 - gamma) * kx
                    py = gamma * py + (1.0 - gamma) * ky
                landmarks.append((px, py, score))
                refined.append(True)

        # Step 6: center rescoring.
        if params.center_rescoring:
            mean = sum(lm[2] for lm in landmarks) / len(landmarks) if landmarks else 0.0
            score = params.alpha * s + (1.0 - params.alpha) * mean
        else:
            score = s

        # Step 7: filtering.
        if score < params.score_threshold:
            continue
        results.append((score, s, c, (x1, y1, x2, y2), landmarks, refined))

    # Step 8: greedy NMS, highest score first (stable sort: ties keep candidate order).
    results.sort(key=lambda r: -r[0])
    if params.nms:
        kept = []
        for r in results:
            suppressed = False
            for k in kept:
                if params.nms_per_class and k[2] != r[2]:
                    continue
                if iou(r[3], k[3]) > params.nms_iou:
                    suppressed = True
                    break
            if not suppressed:
                kept.append(r)
        results = kept

    # Step 9: output, at most max_detections, in image pixels.
    results = results[: params.max_detections]
    full = np.vstack([np.asarray(heads.image_to_map.matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)

    def to_image(px: float, py: float) -> tuple[float, float]:
        return (
            float(inv[0, 0] * px + inv[0, 1] * py + inv[0, 2]),
            float(inv[1, 0] * px + inv[1, 1] * py + inv[1, 2]),
        )

    detections = []
    for score, s, c, (x1, y1, x2, y2), landmarks, refined in results:
        ax, ay = to_image(x1, y1)
        bx, by = to_image(x2, y2)
        box = np.array([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)], dtype=np.float64)
        marks = np.zeros((len(landmarks), 3), dtype=np.float64)
        for i, (lx, ly, ls) in enumerate(landmarks):
            marks[i, 0], marks[i, 1] = to_image(lx, ly)
            marks[i, 2] = ls
        detections.append(
            Detection(
                category_id=taxonomy.categories[c].id,
                score=min(1.0, max(0.0, score)),
                box_score=s,
                box=box,
                landmarks=marks,
                refined=np.array(refined, dtype=bool),
            )
        )
    return detections
