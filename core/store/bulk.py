"""Checking items and writing many rows at once (imports, predictions, additions), inside a transaction.

Rows are inserted with executemany-style statements that return the new ids in parameter order, so an
image with its items and their landmark rows is a handful of statements whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session

from deepmark.core.domain.structures import Detection
from deepmark.core.domain.taxonomy import Category, Taxonomy
from deepmark.core.errors import DeepMarkError, TaxonomyError
from deepmark.core.formats.coco import checked_box, checked_landmarks
from deepmark.core.store.errors import InvalidValueError
from deepmark.core.store.models import Annotation, Landmark, Prediction, PredictionLandmark, utc_now
from deepmark.core.store.records import ATTRIBUTE_NAMES, DF2_ITEM_FIELDS, ItemData


def checked_item(data: ItemData, taxonomy: Taxonomy, where: str) -> ItemData:
    """``data`` with float64 arrays, checked: known category, finite (4,) box with x2 ≥ x1 and y2 ≥ y1,
    (L, 3) finite landmarks for the category with v in {0, 1, 2}, integer attributes, numeric polygons,
    extra keys that are not DF2 fields with plain JSON values. Raises InvalidValueError naming ``where``."""
    category = _category(taxonomy, data.category_id, where)
    try:
        box = checked_box(data.box, where)
        landmarks = checked_landmarks(data.landmarks, category, where).copy()
    except DeepMarkError as exc:  # their messages name ``where``
        raise InvalidValueError(str(exc)) from None
    if not np.isin(landmarks[:, 2], (0.0, 1.0, 2.0)).all():
        raise InvalidValueError(f"{where}: landmark visibility must be 0, 1 or 2")
    attributes = {}
    for name in ATTRIBUTE_NAMES:
        value = getattr(data, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer)):
            raise InvalidValueError(f"{where}: {name} must be an integer or None, got {value!r}")
        attributes[name] = None if value is None else int(value)
    segmentation = _checked_segmentation(data.segmentation, where)
    return ItemData(category_id=category.id, box=box, landmarks=landmarks, segmentation=segmentation,
                    extra=_checked_extra(data.extra, where), **attributes)


def checked_detection(det: Detection, taxonomy: Taxonomy, where: str) -> None:
    """InvalidValueError naming ``where`` unless the category is known, the box a finite (4,) xyxy with
    x2 ≥ x1 and y2 ≥ y1, the landmarks (L, 3) finite for the category and the score finite."""
    category = _category(taxonomy, det.category_id, where)
    try:
        checked_landmarks(det.landmarks, category, where)
        checked_box(det.box, where)
    except DeepMarkError as exc:  # their messages name ``where``
        raise InvalidValueError(str(exc)) from None
    if not (np.isfinite(det.score) and np.isfinite(det.box_score)):
        raise InvalidValueError(f"{where}: score is not finite")


def _category(taxonomy: Taxonomy, category_id, where: str) -> Category:
    """The taxonomy's category; InvalidValueError naming ``where`` for an unknown id."""
    try:
        return taxonomy.category(category_id)
    except TaxonomyError as exc:
        raise InvalidValueError(f"{where}: {exc}") from None


def _checked_segmentation(value, where: str) -> list[list[float]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(p, list) for p in value):
        raise InvalidValueError(f"{where}: segmentation must be a list of [x, y, ...] polygons")
    out = []
    for poly in value:
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in poly) or len(poly) % 2:
            raise InvalidValueError(f"{where}: a segmentation polygon must be an even-length list of numbers")
        out.append(list(poly))
    return out


def _checked_extra(value, where: str) -> dict[str, Any] | None:
    """An item's extra keys as the JSON a file would hold (a copy; None for none). InvalidValueError naming
    ``where`` for a DF2 field name among them (it is no extra key) or a value JSON cannot hold exactly
    (NaN and infinities are not JSON: a PostgreSQL project refuses them, other tools too)."""
    if not value:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidValueError(f"{where}: extra keys must be an object of named values, got {value!r}")
    fields = sorted(DF2_ITEM_FIELDS & set(value))
    if fields:
        raise InvalidValueError(f"{where}: extra key {fields[0]!r} is a DeepFashion2 field, not an extra key")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValueError(f"{where}: an extra key's value is not plain JSON ({exc})") from None


def annotation_row(image_id: int, item_index: int, data: ItemData, origin: str, prediction_id: int | None,
                   now: datetime) -> dict:
    x1, y1, x2, y2 = (float(v) for v in data.box)
    return {"image_id": image_id, "item_index": item_index, "category_id": int(data.category_id),
            "x1": x1, "y1": y1, "x2": x2, "y2": y2, "origin": origin, "prediction_id": prediction_id,
            "segmentation": data.segmentation, "extra": data.extra, "created_at": now, "updated_at": now,
            **data.attributes}


def insert_items(session: Session, items: Sequence[tuple[int, int, ItemData, str, int | None]]) -> list[int]:
    """Insert (image id, item index, checked item, origin, prediction id) annotations and their
    landmark rows; the new annotation ids in order."""
    if not items:
        return []
    now = utc_now()
    rows = [annotation_row(image_id, index, data, origin, pred, now)
            for image_id, index, data, origin, pred in items]
    ids = [int(i) for i in session.scalars(
        insert(Annotation).returning(Annotation.id, sort_by_parameter_order=True), rows)]
    landmark_rows = []
    for annotation_id, (_, _, data, _, _) in zip(ids, items, strict=True):
        for idx, (x, y, v) in enumerate(np.asarray(data.landmarks, np.float64).tolist()):
            landmark_rows.append({"annotation_id": annotation_id, "idx": idx, "x": x, "y": y, "v": int(v),
                                  "corrected": False, "x0": None, "y0": None})
    if landmark_rows:
        session.execute(insert(Landmark.__table__), landmark_rows)
    return ids


def insert_predictions(session: Session, run_id: int, image_id: int, detections: Sequence[Detection],
                       attributes: Sequence[dict | None] | None = None) -> list[int]:
    """Insert one image's detections of a model run (with their landmark rows); the new prediction ids.
    ``attributes`` (one dict or None per detection) keeps DF2 attributes of imported items."""
    if not detections:
        return []
    rows = []
    for k, det in enumerate(detections):
        x1, y1, x2, y2 = (float(v) for v in det.box)
        rows.append({"image_id": image_id, "model_run_id": run_id, "item_index": k,
                     "category_id": int(det.category_id), "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                     "score": float(det.score), "box_score": float(det.box_score),
                     "attributes": attributes[k] if attributes else None})
    ids = [int(i) for i in session.scalars(
        insert(Prediction).returning(Prediction.id, sort_by_parameter_order=True), rows)]
    landmark_rows = []
    for prediction_id, det in zip(ids, detections, strict=True):
        refined = np.asarray(det.refined, bool).tolist()
        for idx, (x, y, score) in enumerate(np.asarray(det.landmarks, np.float64).tolist()):
            landmark_rows.append({"prediction_id": prediction_id, "idx": idx, "x": x, "y": y, "score": score,
                                  "refined": bool(refined[idx]) if idx < len(refined) else False})
    if landmark_rows:
        session.execute(insert(PredictionLandmark.__table__), landmark_rows)
    return ids


def item_from_detection(det: Detection, visible_threshold: float = 0.0, attributes: dict | None = None) -> ItemData:
    """An annotation seeded from a prediction: landmarks with score > ``visible_threshold`` get v = 2
    (visible), the others v = 1 (occluded); the annotator corrects from there. An imported item set
    beside a human correction carries its exact ``visibility`` list, DF2 attributes, segmentation and
    extra keys in ``attributes``."""
    landmarks = np.array(det.landmarks, np.float64)
    attributes = dict(attributes or {})
    visibility = attributes.pop("visibility", None)
    if visibility is not None and len(visibility) == len(landmarks):
        landmarks[:, 2] = visibility  # an imported item set beside: its exact labels
    else:
        landmarks[:, 2] = np.where(landmarks[:, 2] > visible_threshold, 2.0, 1.0)
    segmentation = attributes.pop("segmentation", None)
    known = {k: attributes.get(k) for k in ATTRIBUTE_NAMES}
    return ItemData(category_id=int(det.category_id), box=np.array(det.box, np.float64), landmarks=landmarks,
                    segmentation=segmentation, extra=attributes.get("extra"), **known)
