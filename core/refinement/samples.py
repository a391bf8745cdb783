"""Training samples for the refiner: the detector's own detections on labelled images, matched to the labels.

``collect_detections`` runs a detector (with its post-processing and test-time augmentation, exactly as at
test time) over a DeepFashion2 folder; ``match_samples`` pairs each detection with the ground-truth garment
of its category it overlaps most (IoU ≥ ``MATCH_IOU``); detections that match nothing are false positives,
which refinement cannot repair, and are left out. The result is a ``Samples`` table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepmark.core.centernet.decode import box_iou, decode_detections
from deepmark.core.domain.structures import Detection, Item, PostprocessParams
from deepmark.core.errors import DeepMarkError
from deepmark.core.inference.detector import Detector, TestTimeAugmentation

MATCH_IOU = 0.5  # DeepFashion2's own threshold for a detection to count as the garment


@dataclass(frozen=True, eq=False)
class Samples:
    """N garments, landmark arrays padded to Lmax (the largest category's count).

    ``image_id`` (N,) int; ``category_id`` (N,) int; ``box`` (N, 4) xyxy image pixels (the detection's);
    ``coarse`` (N, Lmax, 2) the detector's landmarks, image pixels; ``target`` (N, Lmax, 3) the matched
    ground truth x, y, v (v = 0: not labelled, no loss); ``gt_box`` (N, 4); ``count`` (N,) landmarks used."""

    image_id: np.ndarray
    category_id: np.ndarray
    box: np.ndarray
    coarse: np.ndarray
    target: np.ndarray
    gt_box: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.image_id)

    def take(self, rows: np.ndarray) -> Samples:
        return Samples(**{k: v[rows] for k, v in self.__dict__.items()})


def collect_detections(detector: Detector, images: Mapping[int, Path], params: PostprocessParams,
                       tta: TestTimeAugmentation, read: Callable[[Path], np.ndarray], batch: int = 8,
                       progress: Callable[[int, int], None] | None = None) -> dict[int, list[Detection]]:
    """Image id → the detector's decoded detections (``params``, ``tta``). Unreadable images and images the
    model fails on are left out (they are reported by whoever lists what was used)."""
    ids = sorted(images)
    found: dict[int, list[Detection]] = {}
    for start in range(0, len(ids), batch):
        chunk, pictures = [], []
        for image_id in ids[start:start + batch]:
            try:
                pictures.append(read(images[image_id]))
                chunk.append(image_id)
            except DeepMarkError:
                continue
        for image_id, heads in zip(chunk, detector.heads_each(pictures, tta), strict=True):
            if not isinstance(heads, DeepMarkError):
                found[image_id] = decode_detections(heads, params, detector.taxonomy, detector.grouping)
        if progress:
            progress(min(start + batch, len(ids)), len(ids))
    return found


def match_samples(detections: Mapping[int, Sequence[Detection]], ground_truth: Mapping[int, Sequence[Item]],
                  max_landmarks: int) -> Samples:
    """Each detection paired with the same-category ground truth it overlaps most (IoU ≥ ``MATCH_IOU``)."""
    rows: list[tuple] = []
    for image_id, dets in sorted(detections.items()):
        items = list(ground_truth.get(image_id, ()))
        if not dets or not items:
            continue
        boxes = np.concatenate([np.stack([d.box for d in dets]), np.stack([g.box for g in items])])
        iou = box_iou(boxes)[: len(dets), len(dets):]
        same = np.array([[d.category_id == g.category_id for g in items] for d in dets])
        iou = np.where(same, iou, 0.0)
        for k, det in enumerate(dets):
            best = int(np.argmax(iou[k]))
            if iou[k, best] >= MATCH_IOU:
                rows.append((image_id, det, items[best]))
    return _table(rows, max_landmarks)


def _table(rows: list[tuple], max_landmarks: int) -> Samples:
    n = len(rows)
    coarse = np.zeros((n, max_landmarks, 2))
    target = np.zeros((n, max_landmarks, 3))
    count = np.zeros(n, np.int64)
    for i, (_, det, item) in enumerate(rows):
        count[i] = len(det.landmarks)
        coarse[i, : count[i]] = det.landmarks[:, :2]
        target[i, : count[i]] = item.landmarks
    return Samples(
        image_id=np.array([r[0] for r in rows], np.int64),
        category_id=np.array([r[1].category_id for r in rows], np.int64),
        box=np.array([r[1].box for r in rows], np.float64).reshape(n, 4),
        coarse=coarse,
        target=target,
        gt_box=np.array([r[2].box for r in rows], np.float64).reshape(n, 4),
        count=count,
    )


def ground_truth_samples(ground_truth: Mapping[int, Sequence[Item]], max_landmarks: int) -> Samples:
    """Every labelled garment as a sample whose box and ``coarse`` landmarks are the labels themselves (the
    starting point for synthesised errors, ``errors.synthesise``)."""
    rows = []
    for image_id, items in sorted(ground_truth.items()):
        for item in items:
            det = Detection(item.category_id, 1.0, 1.0, np.asarray(item.box, np.float64),
                            np.concatenate([item.landmarks[:, :2], np.ones((len(item.landmarks), 1))], 1),
                            np.ones(len(item.landmarks), bool))
            rows.append((image_id, det, item))
    return _table(rows, max_landmarks)
