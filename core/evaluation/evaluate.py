"""DeepFashion2 evaluation: box AP and landmark (OKS) AP, the official protocol through pycocotools.

Ground truth is converted exactly as the official ``evaluation/deepfashion2_to_coco.py``: one COCO
annotation per item with ``bbox`` [x, y, w, h], ``area`` = w·h (the *box* area, which OKS uses as the
object scale), ``keypoints`` a 294×3 vector holding the item's category slice (x, y, v; unlabelled points
as 0, 0, 0), ``num_keypoints`` = count(v > 0), ``iscrowd`` 0 and category ids 1..13.

Box AP is COCOeval ``'bbox'`` with the standard parameters; landmark AP is COCOeval ``'keypoints'`` with the
294 DeepFashion2 OKS sigmas, ``maxDets = [20]`` and ``useCats = 1`` (a detection is only matched to ground
truth of its own category in its own image). pycocotools ignores ground truth with ``num_keypoints == 0``
for landmark AP; such items still count for box AP. Only the numbers reported here are computed: area
range 'all', one ``maxDets`` value per metric and the categories that have ground truth, which leaves
AP, AP50 and AP75 unchanged.

Detections become official-format results whose 294×3 ``keypoints`` hold the category's landmarks and,
in the other categories' slots, the box centre (not zeros; see ``_result_entries`` for why).
"""

from __future__ import annotations

import contextlib
import io
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from deepmark.core.domain.structures import Detection, Item
from deepmark.core.domain.taxonomy import Category, Taxonomy, load_taxonomy
from deepmark.core.errors import EvaluationError, TaxonomyError

BOX_MAX_DETECTIONS = 100
"""COCO's largest ``maxDets`` for boxes, the one AP, AP50 and AP75 use."""
LANDMARK_MAX_DETECTIONS = 20
"""DeepFashion2's ``maxDets`` for landmarks; pycocotools applies it per (image, category)."""
_AREA_ALL = [0.0, 1e5**2]
_GT_VISIBILITY = (0.0, 1.0, 2.0)


@dataclass(frozen=True)
class EvaluationResult:
    """DeepFashion2 metrics in [0, 1]; ``nan`` where there is no ground truth to measure against.

    ``*_pt`` are landmark (OKS) AP, ``*_box`` box (IoU) AP; ``map`` is averaged over the thresholds
    .50:.05:.95. ``per_category_*`` map every taxonomy category id to its mAP over the same thresholds.
    ``num_images`` and ``num_items`` count the ground truth, ``num_detections`` every detection given.
    """

    map_pt: float
    ap50_pt: float
    ap75_pt: float
    map_box: float
    ap50_box: float
    ap75_box: float
    per_category_pt: dict[int, float]
    per_category_box: dict[int, float]
    num_images: int
    num_items: int
    num_detections: int

    def to_dict(self) -> dict:
        """A JSON-serialisable copy; ``nan`` becomes ``None``."""
        out: dict = {}
        for name in ("map_pt", "ap50_pt", "ap75_pt", "map_box", "ap50_box", "ap75_box"):
            out[name] = _json_float(getattr(self, name))
        out["per_category_pt"] = {k: _json_float(v) for k, v in self.per_category_pt.items()}
        out["per_category_box"] = {k: _json_float(v) for k, v in self.per_category_box.items()}
        out["num_images"] = self.num_images
        out["num_items"] = self.num_items
        out["num_detections"] = self.num_detections
        return out

    def table(self, taxonomy: Taxonomy | None = None) -> str:
        """A fixed-width text table: overall AP, AP50, AP75, then one mAP row per category."""
        taxonomy = taxonomy or load_taxonomy()
        name_width = max(24, *(len(c.name) + 4 for c in taxonomy.categories))
        header = f"{'':<{name_width}}{'landmarks':>11}{'boxes':>11}"
        lines = [
            f"DeepFashion2 evaluation: {self.num_images} images, {self.num_items} items, "
            f"{self.num_detections} detections",
            header,
            "-" * len(header),
        ]
        overall = (
            ("mAP @ .50:.95", self.map_pt, self.map_box),
            ("AP50", self.ap50_pt, self.ap50_box),
            ("AP75", self.ap75_pt, self.ap75_box),
        )
        for label, pt, box in overall:
            lines.append(f"{label:<{name_width}}{_cell(pt)}{_cell(box)}")
        lines.append("-" * len(header))
        for cat in taxonomy.categories:
            pt = self.per_category_pt.get(cat.id, math.nan)
            box = self.per_category_box.get(cat.id, math.nan)
            lines.append(f"{f'{cat.id:>2} {cat.name}':<{name_width}}{_cell(pt)}{_cell(box)}")
        return "\n".join(lines)


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _cell(value: float) -> str:
    return f"{'n/a':>11}" if math.isnan(value) else f"{value:>11.3f}"


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
    if not np.isin(lm[:, 2], _GT_VISIBILITY).all():
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


def _ground_truth_dataset(ground_truth: Mapping[int, Sequence[Item]], taxonomy: Taxonomy) -> dict:
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
    dataset = _ground_truth_dataset(ground_truth, taxonomy or load_taxonomy())
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


def _result_entries(
    detections: Mapping[int, Sequence[Detection]],
    taxonomy: Taxonomy,
    known_images: set[int] | None,
    landmark_scores: bool,
) -> list[dict]:
    """Checked official-format result dicts; ``keypoints`` are (882,) views into one float64 array.

    The category's slice of the 294×3 ``keypoints`` holds (x, y, v) with v = 1, or the landmark score
    when ``landmark_scores`` (pycocotools never reads a result's v). The other categories' slots hold the
    detection's box centre with v = 0 rather than zeros: against ground truth with labelled landmarks they
    are never read, but against an item without labelled landmarks (an *ignored* one) pycocotools
    measures every one of the 294 points against the item's doubled box, and points at (0, 0) would turn
    a detection on that item into a false positive instead of an ignored match. A full 294-point
    prediction, as in the official example results, behaves like this too.
    """
    located = _located_detections(detections, taxonomy, known_images)
    if not located:
        return []
    boxes, scores, landmarks = _batch_arrays(located)
    keypoints = np.zeros((len(located), taxonomy.num_landmarks, 3))
    keypoints[:, :, 0] = (0.5 * (boxes[:, 0] + boxes[:, 2]))[:, None]
    keypoints[:, :, 1] = (0.5 * (boxes[:, 1] + boxes[:, 3]))[:, None]
    start = 0
    for row, (_, _, _, cat) in enumerate(located):
        lm = landmarks[start : start + cat.num_landmarks]
        start += cat.num_landmarks
        own = keypoints[row, cat.offset : cat.offset + cat.num_landmarks]
        own[:, :2] = lm[:, :2]
        own[:, 2] = lm[:, 2] if landmark_scores else 1.0
    keypoints = keypoints.reshape(len(located), -1)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).tolist()
    return [
        {"image_id": image_id, "category_id": cat.id, "bbox": bbox, "score": score, "keypoints": kp}
        for (image_id, _, _, cat), bbox, score, kp in zip(located, xywh, scores.tolist(), keypoints, strict=True)
    ]


def detections_to_coco(
    detections: Mapping[int, Sequence[Detection]],
    taxonomy: Taxonomy | None = None,
    landmark_scores: bool = False,
) -> list[dict]:
    """Detections as a JSON-serialisable list in the official results format.

    Each entry: ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score`` and ``keypoints``
    (294 × 3 floats, see ``_result_entries``). Raises EvaluationError / TaxonomyError on bad input.
    """
    entries = _result_entries(detections, taxonomy or load_taxonomy(), None, landmark_scores)
    for entry in entries:
        entry["keypoints"] = entry["keypoints"].tolist()
    return entries


# ---------------------------------------------------------------------------------------------
# Evaluation


def _quiet_coco(dataset: dict) -> COCO:
    """A COCO object over an in-memory dataset, without pycocotools' progress prints."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _mean_valid(precision: np.ndarray) -> float:
    """Mean over entries > −1 (pycocotools marks 'no ground truth' with −1), as ``summarize()``; nan if none."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else math.nan


@dataclass(frozen=True)
class _Metrics:
    map: float
    ap50: float
    ap75: float
    per_category: dict[int, float]


class DeepFashion2Evaluator:
    """Evaluates detections against fixed ground truth; built once, ``evaluate`` may be called many times.

    ``ground_truth`` maps image id → items; every image listed (even with no items) is evaluated, and
    detections on it that match nothing are false positives. Raises EvaluationError / TaxonomyError on
    bad ground truth.
    """

    def __init__(self, ground_truth: Mapping[int, Sequence[Item]], taxonomy: Taxonomy | None = None) -> None:
        self.taxonomy = taxonomy or load_taxonomy()
        dataset = _ground_truth_dataset(ground_truth, self.taxonomy)
        self._coco_gt = _quiet_coco(dataset)
        self._image_ids = [img["id"] for img in dataset["images"]]
        self._image_set = set(self._image_ids)
        self._num_items = len(dataset["annotations"])
        self._sigmas = self.taxonomy.oks_sigmas
        # Categories without (non-ignored) ground truth score −1 in every cell and drop out of every mean,
        # so leaving them out changes no number and saves pycocotools' per-(image, category) loops.
        anns = dataset["annotations"]
        self._category_ids = {
            "bbox": sorted({a["category_id"] for a in anns}),
            "keypoints": sorted({a["category_id"] for a in anns if a["num_keypoints"] > 0}),
        }
        thresholds = COCOeval(iouType="bbox").params.iouThrs
        self._t50 = int(np.flatnonzero(np.isclose(thresholds, 0.50))[0])
        self._t75 = int(np.flatnonzero(np.isclose(thresholds, 0.75))[0])

    @property
    def num_images(self) -> int:
        return len(self._image_ids)

    @property
    def num_items(self) -> int:
        return self._num_items

    def evaluate(self, detections: Mapping[int, Sequence[Detection]]) -> EvaluationResult:
        """Box and landmark AP of ``detections`` (image id → detections; images may be missing).

        Raises EvaluationError for detections on an image absent from the ground truth or with
        non-finite or wrongly shaped values, TaxonomyError for an unknown category id.
        """
        results = _result_entries(detections, self.taxonomy, self._image_set, landmark_scores=False)
        for ann_id, ann in enumerate(results, start=1):
            ann["id"] = ann_id  # pycocotools treats id 0 as "unmatched"
            ann["area"] = ann["bbox"][2] * ann["bbox"][3]
            ann["iscrowd"] = 0
        coco_dt = _quiet_coco({"annotations": results})
        box = self._run(coco_dt, "bbox", BOX_MAX_DETECTIONS)
        pt = self._run(coco_dt, "keypoints", LANDMARK_MAX_DETECTIONS)
        return EvaluationResult(
            map_pt=pt.map,
            ap50_pt=pt.ap50,
            ap75_pt=pt.ap75,
            map_box=box.map,
            ap50_box=box.ap50,
            ap75_box=box.ap75,
            per_category_pt=pt.per_category,
            per_category_box=box.per_category,
            num_images=self.num_images,
            num_items=self.num_items,
            num_detections=len(results),
        )

    def _run(self, coco_dt: COCO, iou_type: str, max_dets: int) -> _Metrics:
        """One COCOeval pass at area 'all' and one maxDets; overall AP, AP50, AP75 and per-category mAP."""
        category_ids = self._category_ids[iou_type]
        per_category = {c.id: math.nan for c in self.taxonomy.categories}
        if not category_ids:
            return _Metrics(math.nan, math.nan, math.nan, per_category)
        cocoeval = COCOeval(self._coco_gt, coco_dt, iou_type)
        params = cocoeval.params
        params.imgIds = self._image_ids
        params.catIds = category_ids
        params.areaRng = [_AREA_ALL]
        params.areaRngLbl = ["all"]
        params.maxDets = [max_dets]
        if iou_type == "keypoints":
            params.kpt_oks_sigmas = self._sigmas
        with contextlib.redirect_stdout(io.StringIO()):
            cocoeval.evaluate()
            cocoeval.accumulate()
        precision = cocoeval.eval["precision"][:, :, :, 0, 0]  # (T thresholds, R recall points, K categories)
        for k, category_id in enumerate(params.catIds):
            per_category[int(category_id)] = _mean_valid(precision[:, :, k])
        return _Metrics(
            map=_mean_valid(precision),
            ap50=_mean_valid(precision[self._t50]),
            ap75=_mean_valid(precision[self._t75]),
            per_category=per_category,
        )


def evaluate_detections(
    ground_truth: Mapping[int, Sequence[Item]],
    detections: Mapping[int, Sequence[Detection]],
    taxonomy: Taxonomy | None = None,
) -> EvaluationResult:
    """One-off ``DeepFashion2Evaluator(ground_truth, taxonomy).evaluate(detections)``."""
    return DeepFashion2Evaluator(ground_truth, taxonomy).evaluate(detections)
