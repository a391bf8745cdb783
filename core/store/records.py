"""Plain values the store takes and returns (no ORM objects leave the store, so no session leaks).

Units: boxes (4,) float64 xyxy in image pixels; landmarks (L, 3) float64, L the category's landmark count:
x, y in pixels and v (0 not labelled, 1 occluded, 2 visible) for annotations, or the landmark score in
[0, 1] for predictions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from deepmark.core.domain.structures import Detection, Item

ATTRIBUTE_NAMES = ("style", "occlusion", "scale", "zoom_in", "viewpoint")
DF2_ITEM_FIELDS = frozenset({"category_id", "category_name", "bounding_box", "landmarks", "segmentation",
                             *ATTRIBUTE_NAMES})
"""The DeepFashion2 item keys (``category_name`` follows from ``category_id``); any other key of an item is
one of its ``extra`` keys."""


def same_json(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are the same JSON (1, 1.0 and true differ, as they do in a file; the order of
    an object's keys does not count). None and {} both mean "no extra keys"."""
    return json.dumps(a or None, sort_keys=True) == json.dumps(b or None, sort_keys=True)


@dataclass(frozen=True, eq=False, kw_only=True)
class ItemData:
    """An item to store: category, ``box`` (4,) xyxy, ``landmarks`` (L, 3) x, y, v; the DeepFashion2
    attributes when known (None when not), ``segmentation``: flat [x, y, ...] polygons, or None, and
    ``extra``: an imported item's keys that are not DeepFashion2 fields, name → JSON value as read (None:
    none; an item a person or a model made has none)."""

    category_id: int
    box: np.ndarray
    landmarks: np.ndarray
    style: int | None = None
    occlusion: int | None = None
    scale: int | None = None
    zoom_in: int | None = None
    viewpoint: int | None = None
    segmentation: list[list[float]] | None = None
    extra: dict[str, Any] | None = None

    @staticmethod
    def from_item(item: Item, **attributes: Any) -> ItemData:
        return ItemData(category_id=item.category_id, box=np.asarray(item.box, np.float64),
                        landmarks=np.asarray(item.landmarks, np.float64), **attributes)

    def to_item(self) -> Item:
        """The ``deepmark.core.domain.structures.Item`` (category, box, landmarks) of this item."""
        return Item(self.category_id, np.array(self.box, np.float64), np.array(self.landmarks, np.float64))

    @property
    def attributes(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in ATTRIBUTE_NAMES}

    def agrees_with(self, existing: ItemData) -> bool:
        """True when this (incoming) item says nothing that contradicts ``existing``: same category, box
        and landmarks, and equal attributes / segmentation / extra keys wherever this one has them."""
        return (self.category_id == existing.category_id
                and np.array_equal(np.asarray(self.box, float), np.asarray(existing.box, float))
                and np.array_equal(np.asarray(self.landmarks, float), np.asarray(existing.landmarks, float))
                and all(v is None or v == getattr(existing, k) for k, v in self.attributes.items())
                and (not self.segmentation or self.segmentation == existing.segmentation)
                and (not self.extra or same_json(self.extra, existing.extra)))

    def same_content(self, other: ItemData) -> bool:
        """Equal category, box, landmarks, attributes, segmentation and extra keys."""
        return (self.category_id == other.category_id
                and np.array_equal(np.asarray(self.box, float), np.asarray(other.box, float))
                and np.array_equal(np.asarray(self.landmarks, float), np.asarray(other.landmarks, float))
                and self.attributes == other.attributes
                and (self.segmentation or None) == (other.segmentation or None)
                and same_json(self.extra, other.extra))


@dataclass(frozen=True, eq=False, kw_only=True)
class ItemRecord(ItemData):
    """A stored item (an annotation row and its landmark rows). ``corrected`` (L,) bool: the landmarks a
    person moved or re-labelled; ``item_index`` orders the image's items."""

    id: int
    image_id: int
    item_index: int
    origin: str
    prediction_id: int | None = None
    corrected: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


@dataclass(frozen=True)
class ImageRecord:
    """A stored image; ``path`` is relative to the project root (absolute when outside it)."""

    id: int
    path: str
    content_hash: str | None
    size_bytes: int | None
    width: int | None
    height: int | None
    source: str | None
    pair_id: int | None
    status: str
    reviewer: str | None
    created_at: datetime
    updated_at: datetime
    reviewed_at: datetime | None
    version: int
    no_garments: bool = False  # accepted as holding no garments (a true negative)


@dataclass(frozen=True, eq=False)
class PredictionRecord:
    """A stored predicted item: ``landmarks`` (L, 3) x, y, score; ``refined`` (L,) bool; ``attributes``
    the DeepFashion2 attributes / segmentation of an imported item set beside a human correction."""

    id: int
    image_id: int
    model_run_id: int
    item_index: int
    category_id: int
    score: float
    box_score: float
    box: np.ndarray
    landmarks: np.ndarray
    refined: np.ndarray
    attributes: dict[str, Any] | None = None

    def to_detection(self) -> Detection:
        return Detection(self.category_id, self.score, self.box_score, self.box.copy(), self.landmarks.copy(),
                         self.refined.copy())


@dataclass(frozen=True)
class ModelRunRecord:
    """A detector run (``kind`` 'model') or an import set beside human corrections (``kind`` 'import').
    ``completed_at`` None: an import of it was interrupted (``source_key`` names its source; see ModelRun)."""

    id: int
    name: str
    kind: str
    model_path: str | None
    model_hash: str | None
    model_meta: dict[str, Any] | None
    params: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None = None
    source_key: str | None = None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None


@dataclass(frozen=True)
class PresetRecord:
    """Saved post-processing parameters (``PostprocessParams`` fields)."""

    id: int
    name: str
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class EditRecord:
    """One entry of the edit log. ``before``/``after``: the target's state (None where it did not exist);
    ``undoes_id``: the edit an undo reverted; ``undone_by``: the undo that reverted this one, if any."""

    id: int
    image_id: int
    created_at: datetime
    author: str
    action: str
    target: str
    annotation_id: int | None
    landmark_idx: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    undoes_id: int | None
    image_version: int
    undone_by: int | None = None


@dataclass(frozen=True)
class EditReceipt:
    """What an edit returns: the new log entry's id and the image's new version (pass it as
    ``expected_version`` to the next edit of that image)."""

    edit_id: int
    image_version: int
    annotation_id: int | None = None
