"""Per-image doubt scores (``image_doubts``, revision 0005): how much a model doubts each image, kept under the
key of what it was computed with (model file, test-time augmentation, post-processing parameters; made by
``deepmark.core.studio.uncertainty.doubt_key``). Only scores under the current key are read as current: the
others are simply not asked for, so another model's or other parameters' scores never pass for this one's.

The review order (``next_by_doubt``) goes through the images that need review highest score first (ties by
id), then those without a score under the key, in file (id) order; one indexed query per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from deepmark.core.store.errors import InvalidValueError, NotFoundError
from deepmark.core.store.images import image_record
from deepmark.core.store.models import NEEDS_REVIEW, Image, ImageDoubtScore, utc_now
from deepmark.core.store.records import ImageRecord

if TYPE_CHECKING:
    from deepmark.core.store.project import Project

CHUNK = 900  # ids per IN (...) query (SQLite's variable limit is 999 on old builds)


@dataclass(frozen=True)
class DoubtRecord:
    """One image's stored doubt under ``doubt_key``: ``score`` in [0, 1], ``expected_edits`` ≥ 0, the parts
    ``centre`` / ``landmarks`` in [0, 1] and ``flip`` (nan: computed without the mirror's heads)."""

    image_id: int
    doubt_key: str
    model_run_id: int | None
    score: float
    expected_edits: float
    centre: float
    landmarks: float
    flip: float
    created_at: datetime


def _record(row: ImageDoubtScore) -> DoubtRecord:
    return DoubtRecord(row.image_id, row.doubt_key, row.model_run_id, row.score, row.expected_edits, row.centre,
                       row.landmarks, math.nan if row.flip is None else row.flip, row.created_at)


def _checked(name: str, value: float, high: float | None = 1.0) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (high is not None and value > high):
        bound = f"[0, {high:g}]" if high is not None else "≥ 0"
        raise InvalidValueError(f"doubt {name} must be a finite number in {bound}, got {value!r}")
    return value


class DoubtRepository:
    """Doubt scores per (image, key): ``put``, ``get``, ``scores``, ``order``, ``next_by_doubt``."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def put(self, image_id: int, doubt_key: str, *, score: float, expected_edits: float, centre: float,
            landmarks: float, flip: float | None = None, run_id: int | None = None) -> DoubtRecord:
        """Store (or replace) the image's doubt under ``doubt_key`` in one transaction. InvalidValueError for a
        value out of range (nothing stored), NotFoundError for an image not in the project."""
        if not doubt_key or len(doubt_key) > 64:
            raise InvalidValueError(f"doubt key must have 1 to 64 characters, got {doubt_key!r}")
        values = {"image_id": image_id, "doubt_key": doubt_key, "model_run_id": run_id,
                  "score": _checked("score", score), "expected_edits": _checked("expected_edits", expected_edits, None),
                  "centre": _checked("centre", centre), "landmarks": _checked("landmarks", landmarks),
                  "flip": None if flip is None or math.isnan(flip) else _checked("flip", flip),
                  "created_at": utc_now()}

        def work(session: Session) -> None:
            if session.get(Image, image_id) is None:
                raise NotFoundError(f"image {image_id}: not in the project")
            session.execute(delete(ImageDoubtScore).where(ImageDoubtScore.image_id == image_id,
                                                          ImageDoubtScore.doubt_key == doubt_key))
            session.execute(insert(ImageDoubtScore), values)
        self._project.write(work)
        found = self.get(image_id, doubt_key)
        assert found is not None
        return found

    def get(self, image_id: int, doubt_key: str) -> DoubtRecord | None:
        """The image's doubt under ``doubt_key``; None: not computed under it."""
        row = self._project.read(lambda s: s.get(ImageDoubtScore, (image_id, doubt_key)))
        return None if row is None else _record(row)

    def scores(self, doubt_key: str, image_ids: Sequence[int] | None = None) -> dict[int, float]:
        """image id → score under ``doubt_key`` (of ``image_ids``, or every image); images without one are
        absent."""
        c = ImageDoubtScore.__table__.c

        def work(session: Session) -> dict[int, float]:
            stmt = select(c.image_id, c.score).where(c.doubt_key == doubt_key)
            if image_ids is None:
                return {int(i): float(s) for i, s in session.execute(stmt)}
            found: dict[int, float] = {}
            ids = list(image_ids)
            for start in range(0, len(ids), CHUNK):
                part = stmt.where(c.image_id.in_(ids[start:start + CHUNK]))
                found.update({int(i): float(s) for i, s in session.execute(part)})
            return found
        return self._project.read(work)

    def count(self, doubt_key: str | None = None) -> int:
        """Stored scores (under ``doubt_key``, or all)."""
        stmt = select(func.count()).select_from(ImageDoubtScore)
        if doubt_key is not None:
            stmt = stmt.where(ImageDoubtScore.doubt_key == doubt_key)
        return int(self._project.read(lambda s: s.scalar(stmt)) or 0)

    def order(self, image_ids: Sequence[int], doubt_key: str) -> list[int]:
        """``image_ids`` in doubt order: scored ones highest score first (ties by id), then the unscored ones
        by id."""
        scores = self.scores(doubt_key, image_ids if len(image_ids) < CHUNK else None)
        return sorted(image_ids, key=lambda i: (i not in scores, -scores.get(i, 0.0), i))

    def next_by_doubt(self, current_id: int, doubt_key: str, forward: bool = True,
                      wrap: bool = True) -> ImageRecord | None:
        """The image that needs review after (``forward``) or before ``current_id`` in doubt order (see the
        module docstring); with ``wrap`` the order's first (last) one when none follows (precedes). None when
        no other image needs review; ``current_id`` itself never counts (0: start from the beginning)."""
        return self._project.read(lambda s: _step(s, current_id, doubt_key, forward, wrap))


def _step(session: Session, current_id: int, doubt_key: str, forward: bool, wrap: bool) -> ImageRecord | None:
    d = ImageDoubtScore
    score = d.score
    base = (select(Image).outerjoin(d, and_(d.image_id == Image.id, d.doubt_key == doubt_key))
            .where(Image.status.in_(NEEDS_REVIEW), Image.id != current_id))
    unscored = score.is_(None)
    # the order: scored (score desc, id asc), then unscored (id asc); reversed for stepping back
    order = (unscored.asc(), score.desc(), Image.id.asc()) if forward else \
        (unscored.desc(), score.asc(), Image.id.desc())
    if current_id <= 0:  # no current image: the order's first (last)
        return _first(session, base.order_by(*order))
    mine = session.scalar(select(d.score).where(d.image_id == current_id, d.doubt_key == doubt_key))
    if mine is None:
        after = and_(unscored, Image.id > current_id) if forward else \
            or_(score.is_not(None), and_(unscored, Image.id < current_id))
    else:
        later = or_(score < mine, and_(score == mine, Image.id > current_id))
        earlier = or_(score > mine, and_(score == mine, Image.id < current_id))
        after = or_(unscored, later) if forward else earlier
    found = _first(session, base.where(after).order_by(*order))
    return _first(session, base.order_by(*order)) if found is None and wrap else found


def _first(session: Session, stmt) -> ImageRecord | None:
    row = session.scalars(stmt.limit(1)).first()
    return None if row is None else image_record(row)
