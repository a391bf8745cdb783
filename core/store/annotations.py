"""Items (annotations) and their landmarks: reading an image's current truth and editing it.

Every edit is one transaction: it checks and moves on the image's version (pass the version you read as
``expected_version`` to be told, with ``ConflictError``, when someone else edited the image since),
changes the rows and appends one entry to the edit log. Editing a predicted or imported item makes it
``corrected``; a landmark that a person moves or re-labels is flagged ``corrected`` and keeps where it
was before its first correction (``x0, y0``), for the displacement statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from deepmark.core.domain.structures import VISIBILITIES
from deepmark.core.domain.taxonomy import load_taxonomy
from deepmark.core.store.bulk import checked_item, insert_items, item_from_detection
from deepmark.core.store.editlog import apply_state, bump_version, item_state, landmark_state, log_edit
from deepmark.core.store.errors import InvalidValueError, NotFoundError
from deepmark.core.store.models import Annotation, Image, Landmark
from deepmark.core.store.records import ATTRIBUTE_NAMES, EditReceipt, ItemData, ItemRecord

if TYPE_CHECKING:
    from deepmark.core.store.project import Project

_MACHINE_ORIGINS = ("predicted", "imported")
_UNSET: Any = object()


def item_records(session: Session, image_ids: list[int]) -> dict[int, list[ItemRecord]]:
    """image id → its items in ``item_index`` order (two queries for any number of images)."""
    at = Annotation.__table__.c
    anns = session.connection().execute(select(Annotation.__table__).where(at.image_id.in_(image_ids))
                                        .order_by(at.image_id, at.item_index, at.id)).mappings().all()
    points: dict[int, list] = {a["id"]: [] for a in anns}
    if anns:
        lt = Landmark.__table__.c  # plain table columns: a Core query, without the ORM's per-row work
        rows = session.connection().execute(
            select(lt.annotation_id, lt.x, lt.y, lt.v, lt.corrected).where(lt.annotation_id.in_(list(points)))
            .order_by(lt.annotation_id, lt.idx)).all()
        for annotation_id, x, y, v, corrected in rows:
            points[annotation_id].append((x, y, v, corrected))
    out: dict[int, list[ItemRecord]] = {i: [] for i in image_ids}
    for a in anns:
        arr = np.array(points[a["id"]], dtype=np.float64).reshape(-1, 4)
        out[a["image_id"]].append(ItemRecord(
            id=a["id"], image_id=a["image_id"], item_index=a["item_index"], origin=a["origin"],
            prediction_id=a["prediction_id"], category_id=a["category_id"],
            box=np.array([a["x1"], a["y1"], a["x2"], a["y2"]], np.float64), landmarks=arr[:, :3].copy(),
            corrected=arr[:, 3].astype(bool), segmentation=a["segmentation"], extra=a["extra"] or None,
            **{name: a[name] for name in ATTRIBUTE_NAMES}))
    return out


def _state_from_data(base: dict[str, Any], data: ItemData, origin: str, placed=None) -> dict[str, Any]:
    """The item state after replacing its content by ``data`` (its extra keys too); landmarks that moved or
    changed visibility are flagged corrected (with their first position kept) unless the item is manual or
    ``placed`` (L,) bool says an assist, not the person, placed them (they keep the flag they had)."""
    old = dict(enumerate(base["landmarks"]))
    same_category = base is not None and base["category_id"] == data.category_id
    by_machine = set(np.flatnonzero(np.asarray(placed, bool)).tolist()) if placed is not None else set()
    landmarks = []
    for i, (x, y, v) in enumerate(np.asarray(data.landmarks, np.float64).tolist()):
        prev = old.get(i) if same_category else None
        if prev is None or origin == "manual":
            landmarks.append([x, y, int(v), False, None, None])
            continue
        if i in by_machine:
            landmarks.append([x, y, int(v), prev[3], prev[4], prev[5]])
            continue
        changed = (x, y, int(v)) != (prev[0], prev[1], prev[2])
        corrected = prev[3] or changed
        x0, y0 = (prev[4], prev[5]) if prev[3] else ((prev[0], prev[1]) if changed else (None, None))
        landmarks.append([x, y, int(v), corrected, x0, y0])
    state = {**base, "category_id": int(data.category_id), "box": [float(v) for v in data.box], "origin": origin,
             **data.attributes, "segmentation": data.segmentation, "landmarks": landmarks}
    state.pop("extra", None)
    if data.extra:  # as item_state: the key only where there are extra keys
        state["extra"] = data.extra
    return state


class AnnotationRepository:
    """The current truth of each image's items, and the edits of it."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self.taxonomy = load_taxonomy()

    # -- reading ---------------------------------------------------------------------------------

    def for_image(self, image_id: int) -> list[ItemRecord]:
        """The image's items in order (an empty list for an image without items)."""
        return self._project.read(lambda s: item_records(s, [image_id]))[image_id]

    def get(self, annotation_id: int) -> ItemRecord:
        def work(session: Session) -> ItemRecord:
            image_id = session.scalar(select(Annotation.image_id).where(Annotation.id == annotation_id))
            if image_id is None:
                raise NotFoundError(f"item {annotation_id}: not in the project")
            return next(r for r in item_records(session, [image_id])[image_id] if r.id == annotation_id)
        return self._project.read(work)

    def count(self) -> int:
        return int(self._project.read(lambda s: s.scalar(select(func.count(Annotation.id)))))

    # -- edits -----------------------------------------------------------------------------------

    def set_landmark(self, annotation_id: int, idx: int, *, x: float | None = None, y: float | None = None,
                     v: int | None = None, author: str | None = None,
                     expected_version: int | None = None) -> EditReceipt:
        """Move landmark ``idx`` (0-based, of the item's category) to ``x, y`` pixels and/or set its
        visibility ``v`` (0, 1, 2); unchanged where None. One transaction, logged."""
        if v is not None and v not in VISIBILITIES:
            raise InvalidValueError(f"item {annotation_id} landmark {idx}: visibility must be 0, 1 or 2, got {v!r}")
        for name, value in (("x", x), ("y", y)):
            if value is not None and not np.isfinite(value):
                raise InvalidValueError(f"item {annotation_id} landmark {idx}: {name} must be finite, got {value!r}")

        def work(session: Session) -> EditReceipt:
            image_id = self._image_of(session, annotation_id)
            version = bump_version(session, image_id, expected_version)
            before = landmark_state(session, annotation_id, idx)
            if before is None:
                raise NotFoundError(f"item {annotation_id}: has no landmark {idx}")
            after = dict(before)
            after.update({k: val for k, val in (("x", x), ("y", y), ("v", v)) if val is not None})
            after["x"], after["y"] = float(after["x"]), float(after["y"])
            changed = (after["x"], after["y"], after["v"]) != (before["x"], before["y"], before["v"])
            if changed and before["origin"] != "manual":
                after["corrected"] = True
                if not before["corrected"]:
                    after["x0"], after["y0"] = before["x"], before["y"]
                if before["origin"] in _MACHINE_ORIGINS:
                    after["origin"] = "corrected"
            apply_state(session, "landmark", image_id, annotation_id, idx, after)
            edit_id = log_edit(session, image_id=image_id, version=version, author=author or self._project.author,
                               action="set_landmark", target="landmark", before=before, after=after,
                               annotation_id=annotation_id, landmark_idx=idx)
            return EditReceipt(edit_id, version, annotation_id)
        return self._project.write(work)

    def update_item(self, annotation_id: int, *, category_id: int | None = None, box=None, landmarks=None,
                    attributes: dict[str, int | None] | None = None, segmentation=_UNSET, extra=_UNSET,
                    author: str | None = None, expected_version: int | None = None,
                    action: str = "update_item", placed=None) -> EditReceipt:
        """Change an item's category, ``box`` (4,) xyxy, ``landmarks`` (L, 3) x, y, v, DF2 ``attributes``,
        ``segmentation`` and/or ``extra`` keys (name → JSON value; None: none) in one logged edit; what is
        not given is kept, the item's extra keys included. A new category with another landmark count needs
        ``landmarks``. ``placed`` (L,) bool: landmarks an assist re-placed (a re-fit), not the person: they
        are not flagged corrected by this edit."""
        def work(session: Session) -> EditReceipt:
            image_id = self._image_of(session, annotation_id)
            version = bump_version(session, image_id, expected_version)
            before = item_state(session, annotation_id)
            new_category = before["category_id"] if category_id is None else category_id
            points = landmarks
            if points is None:
                points = np.array([row[:3] for row in before["landmarks"]], np.float64)
                if self.taxonomy.category(new_category).num_landmarks != len(points):
                    raise InvalidValueError(f"item {annotation_id}: category {new_category} has another landmark "
                                            "count; give its landmarks too")
            attrs = {name: before[name] for name in ATTRIBUTE_NAMES} | dict(attributes or {})
            unknown = set(attrs) - set(ATTRIBUTE_NAMES)
            if unknown:
                raise InvalidValueError(f"item {annotation_id}: unknown attributes {sorted(unknown)}")
            data = checked_item(ItemData(
                category_id=new_category, box=before["box"] if box is None else box, landmarks=points,
                segmentation=before["segmentation"] if segmentation is _UNSET else segmentation,
                extra=before.get("extra") if extra is _UNSET else extra, **attrs,
            ), self.taxonomy, f"item {annotation_id}")
            origin = "corrected" if before["origin"] in _MACHINE_ORIGINS else before["origin"]
            after = _state_from_data(before, data, origin, placed)
            apply_state(session, "item", image_id, annotation_id, None, after)
            after = item_state(session, annotation_id)
            edit_id = log_edit(session, image_id=image_id, version=version, author=author or self._project.author,
                               action=action, target="item", before=before, after=after, annotation_id=annotation_id)
            return EditReceipt(edit_id, version, annotation_id)
        return self._project.write(work)

    def set_box(self, annotation_id: int, box, **options) -> EditReceipt:
        """Set the (4,) xyxy box in pixels (see ``update_item`` for the options)."""
        return self.update_item(annotation_id, box=box, action="set_box", **options)

    def set_category(self, annotation_id: int, category_id: int, landmarks=None, **options) -> EditReceipt:
        """Change the category (with new (L, 3) landmarks when its landmark count differs)."""
        return self.update_item(annotation_id, category_id=category_id, landmarks=landmarks,
                                action="set_category", **options)

    def add_item(self, image_id: int, data: ItemData, *, origin: str = "manual", prediction_id: int | None = None,
                 author: str | None = None, expected_version: int | None = None) -> EditReceipt:
        """Add an item after the image's others; the receipt's ``annotation_id`` is the new item."""
        data = checked_item(data, self.taxonomy, f"image {image_id} new item")

        def work(session: Session) -> EditReceipt:
            version = bump_version(session, image_id, expected_version)
            last = session.scalar(select(func.max(Annotation.item_index)).where(Annotation.image_id == image_id))
            (new_id,) = insert_items(session, [(image_id, 0 if last is None else last + 1, data, origin,
                                                prediction_id)])
            # a garment on it: no longer "no garments" (the image is exported with its items)
            session.execute(update(Image).where(Image.id == image_id, Image.no_garments).values(no_garments=False),
                            execution_options={"synchronize_session": False})
            after = item_state(session, new_id)
            edit_id = log_edit(session, image_id=image_id, version=version, author=author or self._project.author,
                               action="add_item", target="item", before=None, after=after, annotation_id=new_id)
            return EditReceipt(edit_id, version, new_id)
        return self._project.write(work)

    def delete_item(self, annotation_id: int, *, author: str | None = None,
                    expected_version: int | None = None) -> EditReceipt:
        """Delete an item and its landmarks (logged with its full state, so undo restores it)."""
        def work(session: Session) -> EditReceipt:
            image_id = self._image_of(session, annotation_id)
            version = bump_version(session, image_id, expected_version)
            before = item_state(session, annotation_id)
            apply_state(session, "item", image_id, annotation_id, None, None)
            edit_id = log_edit(session, image_id=image_id, version=version, author=author or self._project.author,
                               action="delete_item", target="item", before=before, after=None,
                               annotation_id=annotation_id)
            return EditReceipt(edit_id, version, annotation_id)
        return self._project.write(work)

    def accept_prediction(self, prediction_id: int, *, replace: int | None = None, visible_threshold: float = 0.0,
                          author: str | None = None, expected_version: int | None = None) -> EditReceipt:
        """Take a prediction as the truth: a new item (origin 'predicted'), or the new content of item
        ``replace`` (its old content stays in the edit log; its extra keys stay unless the prediction is an
        imported item that brings its own). Landmarks with a score above ``visible_threshold`` become
        visible (v 2), the others occluded (v 1)."""
        record = self._project.predictions.get(prediction_id)
        data = checked_item(item_from_detection(record.to_detection(), visible_threshold, record.attributes),
                            self.taxonomy, f"prediction {prediction_id}")
        if replace is None:
            return self.add_item(record.image_id, data, origin="predicted", prediction_id=prediction_id,
                                 author=author, expected_version=expected_version)
        return self.update_item(replace, category_id=data.category_id, box=data.box, landmarks=data.landmarks,
                                attributes=data.attributes, segmentation=data.segmentation,
                                extra=data.extra if data.extra else _UNSET, author=author,
                                expected_version=expected_version, action="accept_prediction")

    @staticmethod
    def _image_of(session: Session, annotation_id: int) -> int:
        image_id = session.scalar(select(Annotation.image_id).where(Annotation.id == annotation_id))
        if image_id is None:
            raise NotFoundError(f"item {annotation_id}: not in the project")
        return int(image_id)

