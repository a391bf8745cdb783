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

``evaluate`` runs pycocotools, the reference. ``maps`` and ``map_only`` (a grid search's per-point mAPs)
compute the same two numbers with ``fast_eval``, an exact numpy re-implementation of the part of COCOeval
they read, equal to pycocotools' to the last bit on every case tested.

Detections become official-format results whose 294×3 ``keypoints`` hold the category's landmarks. The
other categories' slots matter only against ground truth without any labelled landmark (pycocotools then
measures all 294 points against the item's doubled box). The rule (``deepmark.core.formats.coco.result_entries``):

* detections read from an official results file (``ResultDetection``, each with its 294 × 3 keypoints) keep
  the file's values there, zeros included, so ``deepmark eval`` on such a file gives exactly the official
  evaluator's numbers (plain pycocotools with the 294 sigmas);
* detections that carry no such points (in-memory ones, per-image prediction folders, box-only results)
  get their box centre there, which makes a detection on an unlabelled item an ignored match rather than
  a false positive, as a full 294-point prediction would be.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from deepmark.core.domain.structures import Detection, Item
from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.evaluation.fast_eval import CocoApEvaluator, DetectionArrays, GroundTruthArrays
from deepmark.core.formats.coco import ResultArrays, ground_truth_dataset, result_arrays, result_entries

BOX_MAX_DETECTIONS = 100
"""COCO's largest ``maxDets`` for boxes, the one AP, AP50 and AP75 use."""
LANDMARK_MAX_DETECTIONS = 20
"""DeepFashion2's ``maxDets`` for landmarks; pycocotools applies it per (image, category)."""
_AREA_ALL = [0.0, 1e5**2]


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
        dataset = ground_truth_dataset(ground_truth, self.taxonomy)
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
        gt_arrays = GroundTruthArrays.from_dataset(dataset, self.taxonomy.num_landmarks)
        self._fast = {
            "bbox": CocoApEvaluator(gt_arrays, self._image_ids, self._category_ids["bbox"], "bbox",
                                    BOX_MAX_DETECTIONS),
            "keypoints": CocoApEvaluator(gt_arrays, self._image_ids, self._category_ids["keypoints"], "keypoints",
                                         LANDMARK_MAX_DETECTIONS, sigmas=self._sigmas,
                                         slices={c.id: c.offset for c in self.taxonomy.categories}),
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
        coco_dt, results = self._detections_dataset(detections)
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

    def map_only(self, detections: Mapping[int, Sequence[Detection]] | ResultArrays, *, landmarks: bool) -> float:
        """mAP_pt (``landmarks``) or mAP_box of ``detections``, exactly as ``evaluate`` gives it, computing
        only that one (a grid search whose other metric is already known), with ``fast_eval``."""
        return self._fast_map(self._arrays(detections), "keypoints" if landmarks else "bbox")

    def maps(self, detections: Mapping[int, Sequence[Detection]] | ResultArrays) -> tuple[float, float]:
        """(mAP_pt, mAP_box) of ``detections``, exactly as ``evaluate`` gives them, with ``fast_eval``: what
        a grid search needs at each point. Raises as ``evaluate``."""
        arrays = self._arrays(detections)
        return self._fast_map(arrays, "keypoints"), self._fast_map(arrays, "bbox")

    def _arrays(self, detections: Mapping[int, Sequence[Detection]] | ResultArrays) -> ResultArrays:
        """Checked ``ResultArrays`` of detections (arrays already built, e.g. by the grid's decoder, are
        trusted: they come from checked heads and ground-truth images)."""
        if isinstance(detections, ResultArrays):
            return detections
        return result_arrays(detections, self.taxonomy, self._image_set)

    def _fast_map(self, arrays: ResultArrays, iou_type: str) -> float:
        """mAP over thresholds .50:.95 at area 'all' from ``fast_eval``'s precision table (nan without
        ground truth), averaged as ``_run`` averages pycocotools' table."""
        if not self._category_ids[iou_type]:
            return math.nan
        return _mean_valid(self._fast_precision(arrays, iou_type))

    def _fast_precision(self, arrays: ResultArrays, iou_type: str) -> np.ndarray:
        """(T, R, K) precision table of ``fast_eval``, what ``_run`` reads from pycocotools."""
        taxonomy = self.taxonomy
        dt = DetectionArrays(
            image_id=arrays.image_id,
            category_id=arrays.category_id,
            score=arrays.score,
            bbox=arrays.xywh(),
            landmarks=arrays.landmarks[:, :2],
            start=arrays.start,
            keypoints=lambda rows: arrays.keypoints(taxonomy, rows)[:, :, :2],
        )
        return self._fast[iou_type].precision(dt)

    def _detections_dataset(self, detections: Mapping[int, Sequence[Detection]]) -> tuple[COCO, list[dict]]:
        """Detections as a pycocotools result set (and its entries)."""
        results = result_entries(detections, self.taxonomy, self._image_set, landmark_scores=False)
        for ann_id, ann in enumerate(results, start=1):
            ann["id"] = ann_id  # pycocotools treats id 0 as "unmatched"
            ann["area"] = ann["bbox"][2] * ann["bbox"][3]
            ann["iscrowd"] = 0
        return _quiet_coco({"annotations": results}), results

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
