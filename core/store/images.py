"""Images of a project: adding, looking up, paging the review queue (optionally filtered, see
``ImageFilter``), and review status changes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import exists, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from deepmark.core.errors import DeepMarkError
from deepmark.core.imaging.read import check_complete, image_size
from deepmark.core.store.editlog import apply_state, bump_version, image_state, log_edit
from deepmark.core.store.errors import InvalidValueError, NotFoundError, StoreError
from deepmark.core.store.models import (
    NEEDS_REVIEW,
    STATUSES,
    Annotation,
    Edit,
    Image,
    ModelRun,
    Prediction,
    utc_now,
)
from deepmark.core.store.records import EditReceipt, ImageRecord

if TYPE_CHECKING:
    from deepmark.core.store.project import Project

REVIEWED = ("accepted", "rejected", "skipped")
HUMAN_ORIGINS = ("corrected", "manual")  # item origins that only a person's edit produces


@dataclass(frozen=True)
class ImageFilter:
    """Which images a paged listing shows; every condition set must hold (None / False: not filtered).

    ``statuses``: review statuses. ``category_id``: images with an item (annotation) or a prediction of
    this category. ``min_score_below``: images whose lowest detection score, among the predictions of the
    image's latest detector run (model runs of kind 'model'), is below this value in [0, 1] (images
    without such predictions never match). ``has_corrections``: images a person corrected — an item of
    origin 'corrected' or 'manual', or an item deletion that was not undone. ``name_contains``: the
    stored path contains this text (case-insensitive; the file name is the path's last part).
    """

    statuses: tuple[str, ...] | None = None
    category_id: int | None = None
    min_score_below: float | None = None
    has_corrections: bool = False
    name_contains: str | None = None

    def is_empty(self) -> bool:
        return (self.statuses is None and self.category_id is None and self.min_score_below is None
                and not self.has_corrections and not self.name_contains)

    def conditions(self) -> list:
        """The SQL conditions on ``images`` (correlated EXISTS subqueries, each served by an image_id index)."""
        out = []
        if self.statuses is not None:
            out.append(Image.status.in_([check_status(s) for s in self.statuses]))
        if self.category_id is not None:
            cat = int(self.category_id)
            out.append(or_(
                exists().where(Annotation.image_id == Image.id, Annotation.category_id == cat),
                exists().where(Prediction.image_id == Image.id, Prediction.category_id == cat)))
        if self.min_score_below is not None:
            latest = (select(func.max(Prediction.model_run_id))
                      .join(ModelRun, ModelRun.id == Prediction.model_run_id)
                      .where(Prediction.image_id == Image.id, ModelRun.kind == "model")
                      .correlate(Image).scalar_subquery())
            low = Prediction.__table__.alias("low")
            out.append(exists().where(low.c.image_id == Image.id, low.c.model_run_id == latest,
                                      low.c.score < float(self.min_score_below)))
        if self.has_corrections:
            undo = Edit.__table__.alias("undo")
            deleted = exists().where(Edit.image_id == Image.id, Edit.action == "delete_item",
                                     ~exists().where(undo.c.undoes_id == Edit.id))
            out.append(or_(exists().where(Annotation.image_id == Image.id, Annotation.origin.in_(HUMAN_ORIGINS)),
                           deleted))
        if self.name_contains:
            out.append(func.lower(Image.path).contains(self.name_contains.lower(), autoescape=True))
        return out


@dataclass(frozen=True)
class FileFacts:
    """What the store records of an image file: SHA-256 hex, size in bytes, upright width × height in pixels."""

    content_hash: str
    size_bytes: int
    width: int
    height: int


def file_facts(path: str | Path) -> FileFacts:
    """Hash, size and pixel size of an image file; StoreError naming the file when it is missing, unreadable,
    truncated or corrupt (``check_complete``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"{path}: image file not found", path=path) from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read image file ({exc.strerror or exc})", path=path) from None
    try:
        width, height = image_size(path)
        check_complete(path, data)  # a truncated file is named now, not when someone opens it
    except DeepMarkError as exc:  # an ImageError naming the file
        raise StoreError(str(exc), path=path) from None
    return FileFacts(hashlib.sha256(data).hexdigest(), len(data), width, height)


def image_record(row: Image) -> ImageRecord:
    return ImageRecord(row.id, row.path, row.content_hash, row.size_bytes, row.width, row.height, row.source,
                       row.pair_id, row.status, row.reviewer, row.created_at, row.updated_at, row.reviewed_at,
                       row.version, bool(row.no_garments))


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise InvalidValueError(f"unknown review status {status!r}; one of {', '.join(STATUSES)}")
    return status


class ImageRepository:
    """The project's images. Paths are given as files; they are stored relative to the project root."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def add(self, path: str | Path, *, status: str = "new", source: str | None = None,
            pair_id: int | None = None) -> ImageRecord:
        """Add an image file (hashed and measured now). StoreError when it is missing or already added."""
        check_status(status)
        facts = file_facts(path)
        stored = self._project.relative_path(path)
        now = utc_now()
        row = {"path": stored, "content_hash": facts.content_hash, "size_bytes": facts.size_bytes,
               "width": facts.width, "height": facts.height, "source": source, "pair_id": pair_id,
               "status": status, "created_at": now, "updated_at": now, "version": 1}

        def work(session: Session) -> int:
            return int(session.execute(insert(Image).returning(Image.id), row).scalar_one())
        try:
            image_id = self._project.write(work)
        except IntegrityError:
            raise StoreError(f"{path}: already in the project (as {stored})", path=path) from None
        return self.get(image_id)

    def get(self, image_id: int) -> ImageRecord:
        """The image; NotFoundError when there is none with this id."""
        row = self._project.read(lambda s: s.get(Image, image_id))
        if row is None:
            raise NotFoundError(f"image {image_id}: not in the project {self._project.where}")
        return image_record(row)

    def by_path(self, path: str | Path) -> ImageRecord | None:
        """The image stored for a file (or a stored relative path), or None."""
        stored = path if isinstance(path, str) and not Path(path).is_absolute() else self._project.relative_path(path)
        row = self._project.read(lambda s: s.scalars(select(Image).where(Image.path == str(stored))).first())
        return image_record(row) if row else None

    def page(self, statuses: tuple[str, ...] | None = None, after_id: int = 0, limit: int = 50, *,
             filter: ImageFilter | None = None) -> list[ImageRecord]:
        """Up to ``limit`` images with id > ``after_id`` in id order, optionally only these statuses and
        those ``filter`` lets through (keyset paging: pass the last id of a page to get the next; walks
        the primary key, or the (status, id) index, and stops after ``limit`` matches)."""
        stmt = select(Image).where(Image.id > after_id).order_by(Image.id).limit(limit)
        if statuses is not None:
            stmt = stmt.where(Image.status.in_([check_status(s) for s in statuses]))
        if filter is not None:
            stmt = stmt.where(*filter.conditions())
        return [image_record(r) for r in self._project.read(lambda s: s.scalars(stmt).all())]

    def ids(self, filter: ImageFilter | None = None) -> list[int]:
        """Every image id (that ``filter`` lets through), in id order: what a batch job walks."""
        stmt = select(Image.id).order_by(Image.id)
        if filter is not None:
            stmt = stmt.where(*filter.conditions())
        return [int(i) for i in self._project.read(lambda s: s.scalars(stmt).all())]

    def get_many(self, image_ids: list[int]) -> dict[int, ImageRecord]:
        """id → image for the ids that exist (one query per 500 ids)."""
        out: dict[int, ImageRecord] = {}
        for start in range(0, len(image_ids), 500):
            chunk = image_ids[start : start + 500]
            rows = self._project.read(lambda s, chunk=chunk: s.scalars(select(Image).where(Image.id.in_(chunk))).all())
            out.update((r.id, image_record(r)) for r in rows)
        return out

    def needs_review(self, after_id: int = 0, limit: int = 50) -> list[ImageRecord]:
        """The review queue: images that are new, predicted or in review, in id order."""
        return self.page(NEEDS_REVIEW, after_id, limit)

    def count(self, statuses: tuple[str, ...] | None = None, *, filter: ImageFilter | None = None) -> int:
        stmt = select(func.count(Image.id))
        if statuses is not None:
            stmt = stmt.where(Image.status.in_([check_status(s) for s in statuses]))
        if filter is not None:
            stmt = stmt.where(*filter.conditions())
        return int(self._project.read(lambda s: s.scalar(stmt)))

    def counts_by_status(self) -> dict[str, int]:
        """Image count of every status (zeros included), in workflow order."""
        rows = self._project.read(lambda s: s.execute(select(Image.status, func.count()).group_by(Image.status)).all())
        found = dict(rows)
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def set_status(self, image_id: int, status: str, *, reviewer: str | None = None, author: str | None = None,
                   expected_version: int | None = None, no_garments: bool = False) -> EditReceipt:
        """Change the review status (logged). Accepted / rejected / skipped record the reviewer (default:
        the author) and the time. ``no_garments`` (with 'accepted' only): the image holds no garments, a
        true negative, which lets it be exported without items; InvalidValueError when it has items.
        ConflictError when the image moved past ``expected_version``."""
        check_status(status)
        if no_garments and status != "accepted":
            raise InvalidValueError(f"image {image_id}: only an accepted image can be marked as having no garments")
        author = author or self._project.author

        def work(session: Session) -> EditReceipt:
            version = bump_version(session, image_id, expected_version)
            before = image_state(session, image_id)
            if no_garments:
                count = session.scalar(select(func.count()).select_from(Annotation)
                                       .where(Annotation.image_id == image_id))
                if count:
                    raise InvalidValueError(f"image {image_id} has {count} garments labelled; delete them before "
                                            "marking it as having none")
            reviewed = status in REVIEWED
            after = {"status": status, "reviewer": (reviewer or author) if reviewed else before["reviewer"],
                     "reviewed_at": utc_now().isoformat() if reviewed else before["reviewed_at"],
                     "no_garments": no_garments}
            apply_state(session, "image", image_id, None, None, after)
            after = image_state(session, image_id)  # as stored (the time's exact representation)
            edit_id = log_edit(session, image_id=image_id, version=version, author=author, action="set_status",
                               target="image", before=before, after=after)
            return EditReceipt(edit_id, version)
        return self._project.write(work)
