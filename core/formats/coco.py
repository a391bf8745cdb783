"""DeepFashion2 items and detections as COCO dicts, exactly as the official ``deepfashion2_to_coco.py``
builds ground truth and as the official results format holds detections, with every value checked
(EvaluationError / TaxonomyError naming the image and item at fault). Running pycocotools on them is
``deepmark.core.evaluation``'s work; the store's COCO export and the DF2 result files use them too.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deepmark.core.domain.structures import VISIBILITIES, Detection, Item
from deepmark.core.domain.taxonomy import Category, Taxonomy, load_taxonomy
from deepmark.core.errors import EvaluationError, TaxonomyError


@dataclass(frozen=True, eq=False)
class ResultDetection(Detection):
    """A detection read from an official results file, keeping the file's whole ``keypoints`` (294, 3)
    float64 (x, y, v per taxonomy landmark). Its other categories' slots go to the evaluator as the file
    gives them (zeros in official files), so a file is evaluated exactly as the official evaluator does;
    the category's own slot is taken from ``landmarks``."""

    keypoints: np.ndarray


# ---------------------------------------------------------------------------------------------
# Input checks


def _image_id(value, where: str) -> int:
    """An image id as a plain int (numpy integers accepted; bools, floats and strings are not)."""
    if isinstance(value, bool):
        raise EvaluationError(f"{where}: image id must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise EvaluationError(f"{where}: image id must be an integer, got {value!r}") from None


def _category(taxonomy: Taxonomy, category_id, where: str) -> Category:
    try:
        return taxonomy.category(category_id)
    except TaxonomyError as exc:
        raise TaxonomyError(f"{where}: {exc}") from None


def _float_array(value, where: str, what: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise EvaluationError(f"{where}: {what} is not numeric") from None


def checked_box(box, where: str) -> np.ndarray:
    """(4,) float64 xyxy box, finite with x2 ≥ x1 and y2 ≥ y1; EvaluationError naming ``where`` otherwise."""
    arr = _float_array(box, where, "box")
    if arr.shape != (4,):
        raise EvaluationError(f"{where}: box must have shape (4,) as x1, y1, x2, y2; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise EvaluationError(f"{where}: box {arr.tolist()} is not finite")
    if arr[2] < arr[0] or arr[3] < arr[1]:
        raise EvaluationError(f"{where}: box {arr.tolist()} has negative width or height (x2 < x1 or y2 < y1)")
    return arr


def checked_landmarks(landmarks, category: Category, where: str) -> np.ndarray:
    """(L, 3) finite float64 landmarks for ``category``; EvaluationError naming ``where`` otherwise."""
    arr = _float_array(landmarks, where, "landmarks")
    expected = (category.num_landmarks, 3)
    if arr.shape != expected:
        raise EvaluationError(
            f"{where}: landmarks have shape {arr.shape}, expected {expected} for category {category.id} "
            f"({category.name})"
        )
    if not np.isfinite(arr).all():
        raise EvaluationError(f"{where}: landmarks contain NaN or infinite values")
    return arr


def _checked_score(score, where: str) -> float:
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise EvaluationError(f"{where}: score {score!r} is not a number") from None
    if not math.isfinite(value):
        raise EvaluationError(f"{where}: score {value} is not finite")
    return value


# ---------------------------------------------------------------------------------------------
# Conversion to COCO


def coco_categories(taxonomy: Taxonomy) -> list[dict]:
    """The COCO ``categories`` list of ``deepfashion2_to_coco.py``: keypoint names '1'..'294', no skeleton."""
    names = [str(i) for i in range(1, taxonomy.num_landmarks + 1)]
    return [
        {"id": c.id, "name": c.coco_name, "supercategory": "clothes", "keypoints": names, "skeleton": []}
        for c in taxonomy.categories
    ]


def _gt_annotation(item: Item, image_id: int, ann_id: int, taxonomy: Taxonomy, where: str) -> dict:
    """One item as the official converter writes it; ``keypoints`` (882,) float64 array."""
    cat = _category(taxonomy, item.category_id, where)
    box = checked_box(item.box, where)
    lm = checked_landmarks(item.landmarks, cat, where).copy()
    if not np.isin(lm[:, 2], VISIBILITIES).all():
        raise EvaluationError(f"{where}: landmark visibility must be 0, 1 or 2; got {np.unique(lm[:, 2]).tolist()}")
    lm[lm[:, 2] == 0] = 0.0  # the dataset stores unlabelled points as 0, 0, 0
    keypoints = np.zeros((taxonomy.num_landmarks, 3))
    keypoints[cat.offset : cat.offset + cat.num_landmarks] = lm
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    return {
        "id": ann_id,  # pycocotools treats id 0 as "unmatched", so ids start at 1
        "image_id": image_id,
        "category_id": cat.id,
        "bbox": [float(box[0]), float(box[1]), w, h],
        "area": w * h,
        "iscrowd": 0,
        "num_keypoints": int(np.count_nonzero(lm[:, 2] > 0)),
        "keypoints": keypoints.ravel(),
    }


def ground_truth_dataset(ground_truth: Mapping[int, Sequence[Item]], taxonomy: Taxonomy) -> dict:
    """COCO dataset dict with ``keypoints`` as (882,) arrays (see ``ground_truth_to_coco``)."""
    images, annotations = [], []
    for key in sorted(ground_truth, key=lambda k: _image_id(k, "ground truth")):
        image_id = _image_id(key, "ground truth")
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg"})
        for index, item in enumerate(ground_truth[key]):
            where = f"ground truth image {image_id}, item {index}"
            annotations.append(_gt_annotation(item, image_id, len(annotations) + 1, taxonomy, where))
    return {"images": images, "annotations": annotations, "categories": coco_categories(taxonomy)}


def ground_truth_to_coco(ground_truth: Mapping[int, Sequence[Item]], taxonomy: Taxonomy | None = None) -> dict:
    """A JSON-serialisable COCO ground-truth dataset, as ``deepfashion2_to_coco.py`` builds it.

    ``ground_truth`` maps image id → items (an empty list is an image without garments).
    Raises EvaluationError / TaxonomyError naming the image and item at fault.
    """
    dataset = ground_truth_dataset(ground_truth, taxonomy or load_taxonomy())
    for ann in dataset["annotations"]:
        ann["keypoints"] = ann["keypoints"].tolist()
    return dataset


def _located_detections(
    detections: Mapping[int, Sequence[Detection]], taxonomy: Taxonomy, known_images: set[int] | None
) -> list[tuple[int, int, Detection, Category]]:
    """(image id, index in image, detection, category) in ascending image id, input order within an image."""
    located = []
    for key in sorted(detections, key=lambda k: _image_id(k, "detections")):
        image_id = _image_id(key, "detections")
        if known_images is not None and image_id not in known_images:
            raise EvaluationError(
                f"detections given for image {image_id}, which is absent from the ground truth "
                f"({len(known_images)} images)"
            )
        for index, det in enumerate(detections[key]):
            cat = _category(taxonomy, det.category_id, f"detections image {image_id}, detection {index}")
            located.append((image_id, index, det, cat))
    return located


def _check_each(located: list[tuple[int, int, Detection, Category]]) -> None:
    """Slow path: check detections one by one so the error names the first bad one."""
    for image_id, index, det, cat in located:
        where = f"detections image {image_id}, detection {index}"
        checked_box(det.box, where)
        checked_landmarks(det.landmarks, cat, where)
        _checked_score(det.score, where)


def _batch_arrays(
    located: list[tuple[int, int, Detection, Category]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 4) xyxy boxes, (N,) scores and (ΣL, 3) landmarks stacked in order; all checked.

    Checked in one vectorised pass; only when something is wrong does ``_check_each`` find and name it.
    """
    landmarks = None
    try:
        boxes = np.array([det.box for _, _, det, _ in located], dtype=np.float64).reshape(len(located), -1)
        scores = np.array([det.score for _, _, det, _ in located], dtype=np.float64)
        if all(np.shape(det.landmarks) == (cat.num_landmarks, 3) for _, _, det, cat in located):
            landmarks = np.concatenate([det.landmarks for _, _, det, _ in located], dtype=np.float64)
    except (TypeError, ValueError):
        landmarks = None
    valid = (
        landmarks is not None
        and boxes.shape[1] == 4
        and np.isfinite(boxes).all()
        and np.isfinite(scores).all()
        and np.isfinite(landmarks).all()
        and (boxes[:, 2] >= boxes[:, 0]).all()
        and (boxes[:, 3] >= boxes[:, 1]).all()
    )
    if not valid:
        _check_each(located)  # raises, naming the detection
        raise EvaluationError("detections hold boxes, scores or landmarks that cannot be evaluated")
    return boxes, scores, landmarks


@dataclass(frozen=True, eq=False)
class ResultArrays:
    """Checked detections as arrays, in results order (ascending image id, input order within an image).

    ``image_id``, ``category_id`` (N,) int64; ``score`` (N,) and ``box`` (N, 4) xyxy float64 (image pixels);
    ``landmarks`` (ΣL, 3) float64 (x, y, score), each detection's own category's points stacked, detection
    i's from row ``start[i]``; ``files`` row → (294, 3) keypoints of the ``ResultDetection``s among them.
    ``keypoints(rows)`` builds the official 294 × 3 vectors of some of them.
    """

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray
    start: np.ndarray
    files: dict[int, np.ndarray]

    def __len__(self) -> int:
        return len(self.score)

    def xywh(self) -> np.ndarray:
        """(N, 4) [x, y, w, h] boxes, as the results format holds them."""
        return np.column_stack([self.box[:, :2], self.box[:, 2:] - self.box[:, :2]])

    def keypoints(self, taxonomy: Taxonomy, rows: np.ndarray, landmark_scores: bool = False) -> np.ndarray:
        """(len(rows), 294, 3) official keypoints of detections ``rows`` (see ``result_entries``)."""
        rows = np.asarray(rows, np.int64)
        box = self.box[rows]
        keypoints = np.zeros((len(rows), taxonomy.num_landmarks, 3))
        keypoints[:, :, 0] = (0.5 * (box[:, 0] + box[:, 2]))[:, None]
        keypoints[:, :, 1] = (0.5 * (box[:, 1] + box[:, 3]))[:, None]
        for out, row in enumerate(rows.tolist()):
            if row in self.files:
                keypoints[out] = self.files[row]
        offset, count = _category_slices(taxonomy)
        cats = self.category_id[rows]
        n = count[cats]
        which = np.repeat(np.arange(len(rows)), n)  # (ΣL,) output row of each own point
        local = np.arange(len(which)) - np.repeat(np.cumsum(n) - n, n)
        own = self.landmarks[self.start[rows][which] + local]
        slot = offset[cats][which] + local
        keypoints[which, slot, :2] = own[:, :2]
        keypoints[which, slot, 2] = own[:, 2] if landmark_scores else 1.0
        return keypoints


def _category_slices(taxonomy: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """(first global point, number of points) of each category, indexed by category id."""
    size = max(c.id for c in taxonomy.categories) + 1
    offset, count = np.zeros(size, np.int64), np.zeros(size, np.int64)
    for c in taxonomy.categories:
        offset[c.id], count[c.id] = c.offset, c.num_landmarks
    return offset, count


def result_arrays(
    detections: Mapping[int, Sequence[Detection]], taxonomy: Taxonomy, known_images: set[int] | None
) -> ResultArrays:
    """Checked detections as ``ResultArrays``; EvaluationError / TaxonomyError naming the one at fault."""
    located = _located_detections(detections, taxonomy, known_images)
    if not located:
        return ResultArrays(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4)),
                            np.zeros((0, 3)), np.zeros(0, np.int64), {})
    boxes, scores, landmarks = _batch_arrays(located)
    counts = np.array([cat.num_landmarks for _, _, _, cat in located], np.int64)
    return ResultArrays(
        image_id=np.array([image_id for image_id, _, _, _ in located], np.int64),
        category_id=np.array([cat.id for _, _, _, cat in located], np.int64),
        score=scores,
        box=boxes,
        landmarks=landmarks,
        start=np.cumsum(counts) - counts,
        files=_file_keypoints(located, taxonomy),
    )


def result_entries(
    detections: Mapping[int, Sequence[Detection]],
    taxonomy: Taxonomy,
    known_images: set[int] | None,
    landmark_scores: bool,
) -> list[dict]:
    """Checked official-format result dicts; ``keypoints`` are (882,) views into one float64 array.

    The category's slice of the 294×3 ``keypoints`` holds (x, y, v) with v = 1, or the landmark score
    when ``landmark_scores`` (pycocotools never reads a result's v). The other categories' slots:

    * a ``ResultDetection`` (read from an official results file) keeps them as the file gives them, so
      the numbers are the official evaluator's on that file (zeros there make a detection on a ground-truth
      item without labelled landmarks a false positive, as in the official evaluation);
    * any other detection (in-memory, per-image prediction folders) has no such points: they are filled
      with its box centre, v = 0. Against ground truth with labelled landmarks they are never read; against
      an item without labelled landmarks (an *ignored* one) pycocotools measures all 294 points against the
      item's doubled box, and the centre makes a detection on it an ignored match, as a full 294-point
      prediction (the official example results) would be, rather than a false positive of points at (0, 0).
    """
    arrays = result_arrays(detections, taxonomy, known_images)
    if not len(arrays):
        return []
    keypoints = arrays.keypoints(taxonomy, np.arange(len(arrays)), landmark_scores).reshape(len(arrays), -1)
    return [
        {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score, "keypoints": kp}
        for image_id, category_id, bbox, score, kp in zip(
            arrays.image_id.tolist(), arrays.category_id.tolist(), arrays.xywh().tolist(), arrays.score.tolist(),
            keypoints, strict=True
        )
    ]


def _file_keypoints(located: list[tuple[int, int, Detection, Category]], taxonomy: Taxonomy) -> dict[int, np.ndarray]:
    """Row → checked (294, 3) keypoints of the ``ResultDetection``s (read from a results file)."""
    files = {}
    for row, (image_id, index, det, _) in enumerate(located):
        if not isinstance(det, ResultDetection):
            continue
        where = f"detections image {image_id}, detection {index}"
        arr = _float_array(det.keypoints, where, "keypoints")
        if arr.shape != (taxonomy.num_landmarks, 3) or not np.isfinite(arr).all():
            raise EvaluationError(f"{where}: keypoints must be {taxonomy.num_landmarks} × 3 finite numbers, "
                                  f"got shape {arr.shape}")
        files[row] = arr
    return files


def detections_to_coco(
    detections: Mapping[int, Sequence[Detection]],
    taxonomy: Taxonomy | None = None,
    landmark_scores: bool = False,
) -> list[dict]:
    """Detections as a JSON-serialisable list in the official results format.

    Each entry: ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score`` and ``keypoints``
    (294 × 3 floats, see ``result_entries``). Raises EvaluationError / TaxonomyError on bad input.
    """
    entries = result_entries(detections, taxonomy or load_taxonomy(), None, landmark_scores)
    for entry in entries:
        entry["keypoints"] = entry["keypoints"].tolist()
    return entries
