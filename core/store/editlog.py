"""The append-only edit log: every human change with its before/after state, who and when; undo.

A change has a target and that target's state as JSON, before and after:

* ``landmark`` (item id + landmark index): ``{x, y, v, corrected, x0, y0, origin}`` (origin: the item's);
* ``item`` (item id): the whole item (category, box, attributes, segmentation, landmarks, and ``extra``
  when it has extra keys), or None where the item did not exist (an addition's before, a deletion's after);
* ``image``: ``{status, reviewer, reviewed_at}``.

Undo applies an edit's ``before`` and appends a new ``undo`` edit naming it, in one transaction that
also moves the image's version on; the log itself is never changed (the database refuses it). An edit
can be undone only while its target is still as the edit left it, so an undo never silently discards a
later change; the last edit of an image can always be undone, in this session or any later one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from deepmark.core.store.errors import ConflictError, NotFoundError, UndoError
from deepmark.core.store.models import Annotation, Edit, Image, Landmark, Prediction, utc_now
from deepmark.core.store.records import ATTRIBUTE_NAMES, EditReceipt, EditRecord

if TYPE_CHECKING:
    from deepmark.core.store.project import Project

_LANDMARK_KEYS = ("x", "y", "v", "corrected", "x0", "y0")


# ---------------------------------------------------------------------------------------------
# Versions and log entries


def bump_version(session: Session, image_id: int, expected_version: int | None) -> int:
    """Move the image's version on (optimistic concurrency); the new version.

    Raises ConflictError when ``expected_version`` is given and the image is no longer at it (someone
    else edited it since it was read), NotFoundError when there is no such image.
    """
    stmt = update(Image).where(Image.id == image_id)
    if expected_version is not None:
        stmt = stmt.where(Image.version == expected_version)
    stmt = stmt.values(version=Image.version + 1, updated_at=utc_now()).returning(Image.version)
    new = session.execute(stmt, execution_options={"synchronize_session": False}).scalar()
    if new is not None:
        return int(new)
    current = session.scalar(select(Image.version).where(Image.id == image_id))
    if current is None:
        raise NotFoundError(f"image {image_id}: not in the project")
    last = session.execute(select(Edit.author, Edit.created_at, Edit.action).where(Edit.image_id == image_id)
                           .order_by(Edit.id.desc()).limit(1)).first()
    by = f" by {last.author} ({last.action}, {_when(last.created_at)})" if last else ""
    raise ConflictError(
        f"image {image_id}: changed{by} since you read it (now version {current}, you edited version "
        f"{expected_version}); reload the image and make your change again"
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def log_edit(session: Session, *, image_id: int, version: int, author: str, action: str, target: str,
             before: dict | None, after: dict | None, annotation_id: int | None = None,
             landmark_idx: int | None = None, undoes_id: int | None = None) -> int:
    """Append one entry; its id."""
    return int(session.execute(insert(Edit).returning(Edit.id), {
        "image_id": image_id, "created_at": utc_now(), "author": author, "action": action, "target": target,
        "annotation_id": annotation_id, "landmark_idx": landmark_idx, "before": before, "after": after,
        "undoes_id": undoes_id, "image_version": version,
    }).scalar_one())


# ---------------------------------------------------------------------------------------------
# Target states


def landmark_state(session: Session, annotation_id: int, idx: int) -> dict[str, Any] | None:
    row = session.execute(
        select(Landmark.x, Landmark.y, Landmark.v, Landmark.corrected, Landmark.x0, Landmark.y0, Annotation.origin)
        .join(Annotation, Annotation.id == Landmark.annotation_id)
        .where(Landmark.annotation_id == annotation_id, Landmark.idx == idx)
    ).first()
    if row is None:
        return None
    state = dict(zip(_LANDMARK_KEYS, row[:6], strict=True))
    state["v"], state["corrected"], state["origin"] = int(state["v"]), bool(state["corrected"]), row.origin
    return state


def item_state(session: Session, annotation_id: int) -> dict[str, Any] | None:
    ann = session.execute(select(Annotation.__table__).where(Annotation.id == annotation_id)).mappings().first()
    if ann is None:
        return None
    rows = session.execute(
        select(Landmark.x, Landmark.y, Landmark.v, Landmark.corrected, Landmark.x0, Landmark.y0)
        .where(Landmark.annotation_id == annotation_id).order_by(Landmark.idx)
    ).all()
    state = {
        "id": ann["id"], "image_id": ann["image_id"], "item_index": ann["item_index"],
        "category_id": ann["category_id"], "box": [ann["x1"], ann["y1"], ann["x2"], ann["y2"]],
        "origin": ann["origin"], "prediction_id": ann["prediction_id"],
        **{name: ann[name] for name in ATTRIBUTE_NAMES}, "segmentation": ann["segmentation"],
        "landmarks": [[r.x, r.y, int(r.v), bool(r.corrected), r.x0, r.y0] for r in rows],
    }
    if ann["extra"]:  # only then: a state logged before revision 0004 still equals the item's (undo compares)
        state["extra"] = ann["extra"]
    return state


def image_state(session: Session, image_id: int) -> dict[str, Any] | None:
    row = session.execute(select(Image.status, Image.reviewer, Image.reviewed_at, Image.no_garments)
                          .where(Image.id == image_id)).first()
    if row is None:
        return None
    return {"status": row.status, "reviewer": row.reviewer,
            "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
            "no_garments": bool(row.no_garments)}


def current_state(session: Session, edit: Edit) -> dict[str, Any] | None:
    if edit.target == "landmark":
        return landmark_state(session, edit.annotation_id, edit.landmark_idx)
    if edit.target == "item":
        return item_state(session, edit.annotation_id)
    return image_state(session, edit.image_id)


def apply_state(session: Session, target: str, image_id: int, annotation_id: int | None, landmark_idx: int | None,
                state: dict[str, Any] | None) -> None:
    """Make the target's state ``state`` (None deletes an item)."""
    now = utc_now()
    if target == "landmark":
        session.execute(update(Landmark).where(Landmark.annotation_id == annotation_id, Landmark.idx == landmark_idx)
                        .values(**{k: state[k] for k in _LANDMARK_KEYS}),
                        execution_options={"synchronize_session": False})
        session.execute(update(Annotation).where(Annotation.id == annotation_id)
                        .values(origin=state["origin"], updated_at=now),
                        execution_options={"synchronize_session": False})
    elif target == "image":
        reviewed = datetime.fromisoformat(state["reviewed_at"]) if state["reviewed_at"] else None
        session.execute(update(Image).where(Image.id == image_id)
                        .values(status=state["status"], reviewer=state["reviewer"], reviewed_at=reviewed,
                                no_garments=bool(state.get("no_garments", False))),  # older log entries lack it
                        execution_options={"synchronize_session": False})
    elif state is None:
        session.execute(delete(Annotation).where(Annotation.id == annotation_id),
                        execution_options={"synchronize_session": False})
    else:
        write_item_state(session, state, now)


def write_item_state(session: Session, state: dict[str, Any], now: datetime) -> None:
    """Insert or overwrite the item of an ``item`` state (same id), landmarks included."""
    prediction_id = state["prediction_id"]
    if prediction_id is not None and session.get(Prediction, prediction_id) is None:
        prediction_id = None  # its model run was removed since
    x1, y1, x2, y2 = state["box"]
    values = {"image_id": state["image_id"], "item_index": state["item_index"], "category_id": state["category_id"],
              "x1": x1, "y1": y1, "x2": x2, "y2": y2, "origin": state["origin"], "prediction_id": prediction_id,
              "segmentation": state["segmentation"], "extra": state.get("extra"), "updated_at": now,
              **{name: state[name] for name in ATTRIBUTE_NAMES}}
    table = Annotation.__table__
    if session.scalar(select(Annotation.id).where(Annotation.id == state["id"])) is None:
        session.execute(insert(table), {"id": state["id"], "created_at": now, **values})
    else:
        session.execute(update(table).where(table.c.id == state["id"]).values(**values))
        session.execute(delete(Landmark.__table__).where(Landmark.annotation_id == state["id"]))
    session.execute(insert(Landmark.__table__), [
        {"annotation_id": state["id"], "idx": i, **dict(zip(_LANDMARK_KEYS, row, strict=True))}
        for i, row in enumerate(state["landmarks"])
    ])


# ---------------------------------------------------------------------------------------------
# The repository


def _record(edit: Edit, undone_by: int | None) -> EditRecord:
    return EditRecord(edit.id, edit.image_id, edit.created_at, edit.author, edit.action, edit.target,
                      edit.annotation_id, edit.landmark_idx, edit.before, edit.after, edit.undoes_id,
                      edit.image_version, undone_by)


class HistoryRepository:
    """An image's history and undo (see the module docstring)."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def for_image(self, image_id: int) -> list[EditRecord]:
        """Every edit of the image, oldest first, with ``undone_by`` filled in."""
        def work(session: Session) -> list[EditRecord]:
            edits = session.scalars(select(Edit).where(Edit.image_id == image_id).order_by(Edit.id)).all()
            undone = {e.undoes_id: e.id for e in edits if e.undoes_id is not None}
            return [_record(e, undone.get(e.id)) for e in edits]
        return self._project.read(work)

    def recent(self, limit: int = 50, author: str | None = None) -> list[EditRecord]:
        """The latest edits over the whole project, newest first (optionally one author's)."""
        def work(session: Session) -> list[EditRecord]:
            stmt = select(Edit).order_by(Edit.id.desc()).limit(limit)
            if author is not None:
                stmt = stmt.where(Edit.author == author)
            return [_record(e, None) for e in session.scalars(stmt)]
        return self._project.read(work)

    def undo(self, image_id: int, edit_id: int | None = None, *, author: str | None = None,
             expected_version: int | None = None) -> EditReceipt:
        """Undo the image's last edit not yet undone (or ``edit_id``); one transaction.

        Raises UndoError when there is nothing to undo, the edit is an undo itself or already undone,
        or its target changed since; ConflictError as any edit.
        """
        def work(session: Session) -> EditReceipt:
            edits = session.scalars(select(Edit).where(Edit.image_id == image_id).order_by(Edit.id)).all()
            undone = {e.undoes_id for e in edits if e.undoes_id is not None}
            open_edits = [e for e in edits if e.action != "undo" and e.id not in undone]
            edit = _choose(edits, open_edits, undone, image_id, edit_id)
            if current_state(session, edit) != edit.after:
                later = [e.id for e in edits if e.id > edit.id and _same_target(e, edit)]
                raise UndoError(f"image {image_id}: edit {edit.id} ({edit.action}) cannot be undone, its "
                                f"{edit.target} was changed since" + (f" by edit {later[-1]}" if later else ""))
            version = bump_version(session, image_id, expected_version)
            apply_state(session, edit.target, image_id, edit.annotation_id, edit.landmark_idx, edit.before)
            new_id = log_edit(session, image_id=image_id, version=version, author=author or self._project.author,
                              action="undo", target=edit.target, before=edit.after, after=edit.before,
                              annotation_id=edit.annotation_id, landmark_idx=edit.landmark_idx, undoes_id=edit.id)
            return EditReceipt(new_id, version, edit.annotation_id)
        return self._project.write(work)


def _choose(edits: list[Edit], open_edits: list[Edit], undone: set[int], image_id: int, edit_id: int | None) -> Edit:
    if edit_id is None:
        if not open_edits:
            raise UndoError(f"image {image_id}: nothing to undo")
        return open_edits[-1]
    edit = next((e for e in edits if e.id == edit_id), None)
    if edit is None:
        raise NotFoundError(f"edit {edit_id}: not an edit of image {image_id}")
    if edit.action == "undo":
        raise UndoError(f"edit {edit_id} is an undo and cannot itself be undone (make the change again)")
    if edit.id in undone:
        raise UndoError(f"edit {edit_id} is already undone")
    return edit


def _same_target(a: Edit, b: Edit) -> bool:
    if a.target == "image" or b.target == "image":
        return a.target == b.target
    return a.annotation_id == b.annotation_id
