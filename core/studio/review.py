"""What the review workflow shows, without Qt: the next / previous image still to review (in file order, or
following the model's doubt: ``step_unreviewed``), the correction
counts for the status bar, and the per-category summary (items, corrected landmarks, mean displacement).

Displacement is measured from where a landmark was before its first human correction (``x0, y0`` in the
``landmarks`` table, kept by the store on the first move of a predicted or imported landmark), so moving a
landmark twice counts its total displacement from the machine's position, not the last step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.store.images import image_record
from deepmark.core.store.models import NEEDS_REVIEW, STATUSES, Annotation, Image, Landmark
from deepmark.core.store.records import ImageRecord
from deepmark.core.store.stats import corrected_displacements, mean_known

if TYPE_CHECKING:
    from deepmark.core.store.project import Project


def next_unreviewed(project: Project, current_id: int, wrap: bool = True) -> ImageRecord | None:
    """The first image after ``current_id`` (id order) that still needs review; with ``wrap`` the first
    one of the project when none follows. None when no image needs review (``current_id`` itself never
    counts: the caller is already on it)."""
    found = project.images.needs_review(after_id=current_id, limit=1)
    if not found and wrap:
        found = [r for r in project.images.needs_review(after_id=0, limit=1) if r.id != current_id]
    return found[0] if found else None


def previous_unreviewed(project: Project, current_id: int, wrap: bool = True) -> ImageRecord | None:
    """The last image before ``current_id`` that still needs review; with ``wrap`` the project's last
    one when none precedes. Uses the (status, id) index like the forward query."""
    def before(session: Session, bound: int | None) -> Image | None:
        stmt = select(Image).where(Image.status.in_(NEEDS_REVIEW)).order_by(Image.id.desc()).limit(1)
        if bound is not None:
            stmt = stmt.where(Image.id < bound)
        return session.scalars(stmt).first()

    row = project.read(lambda s: before(s, current_id))
    if row is None and wrap:
        row = project.read(lambda s: before(s, None))
        if row is not None and row.id == current_id:
            row = None
    return image_record(row) if row is not None else None


def step_unreviewed(project: Project, current_id: int, forward: bool = True, doubt_key: str | None = None,
                    wrap: bool = True) -> ImageRecord | None:
    """The next (``forward``) or previous image that still needs review: in file (id) order, or with
    ``doubt_key`` in doubt order — the images scored under that key highest score first (ties by id), then
    the unscored ones in file order (``DoubtRepository.next_by_doubt``)."""
    if doubt_key is not None:
        return project.doubts.next_by_doubt(current_id, doubt_key, forward, wrap)
    return (next_unreviewed if forward else previous_unreviewed)(project, current_id, wrap)


@dataclass(frozen=True)
class CorrectionCounts:
    """Items a person corrected (origin 'corrected') and their corrected landmarks."""

    items: int
    landmarks: int

    def __str__(self) -> str:
        items = f"{self.items} item" + ("" if self.items == 1 else "s")
        return f"{self.landmarks} corrected landmark" + ("" if self.landmarks == 1 else "s") + f" ({items})"


def correction_counts(project: Project) -> CorrectionCounts:
    """Counted on every edit for the status bar, so kept cheap: corrected landmarks only ever belong to
    items whose origin is 'corrected' (a correction sets both; undo restores both), and the landmarks'
    primary key starts with the item id, so only those items' landmarks are visited."""
    def work(session: Session) -> CorrectionCounts:
        corrected = select(Annotation.id).where(Annotation.origin == "corrected")
        items = session.scalar(select(func.count()).select_from(corrected.subquery()))
        landmarks = session.scalar(select(func.count()).select_from(Landmark)
                                   .where(Landmark.annotation_id.in_(corrected), Landmark.corrected.is_(True)))
        return CorrectionCounts(int(items or 0), int(landmarks or 0))
    return project.read(work)


@dataclass(frozen=True)
class CategoryRow:
    """One line of the summary; ``mean_displacement`` in pixels over the corrected landmarks whose original
    position is known (None when there is none)."""

    category_id: int
    name: str
    items: int
    corrected_landmarks: int
    mean_displacement: float | None
    outside: int = 0  # items whose box or a labelled landmark lies outside their image


@dataclass(frozen=True)
class OutsideItem:
    """An item that lies partly outside its image (an import's, or an older version's): ``what`` says how."""

    image_id: int
    path: str
    item_index: int
    category_id: int
    what: str


@dataclass(frozen=True)
class ReviewSummary:
    """Per-category rows (every category of the taxonomy, zeros included), an all-categories total, and the
    images per review status."""

    rows: list[CategoryRow]
    total: CategoryRow
    images_by_status: dict[str, int]
    outside: list[OutsideItem]


OUTSIDE_TOLERANCE_PX = 1.0  # rounding at the border is not "outside"


def outside_items(session: Session, limit: int = 1000) -> list[OutsideItem]:
    """Items whose box, or a labelled (v > 0) landmark, lies more than ``OUTSIDE_TOLERANCE_PX`` outside their
    image (images of unknown size are not checked), at most ``limit``, by image then item."""
    t = OUTSIDE_TOLERANCE_PX
    w, h = Image.width, Image.height
    box_out = (Annotation.x1 < -t) | (Annotation.y1 < -t) | (Annotation.x2 > w + t) | (Annotation.y2 > h + t)
    point_out = (Landmark.v > 0) & ((Landmark.x < -t) | (Landmark.y < -t) | (Landmark.x > w + t) | (Landmark.y > h + t))
    points = (select(Landmark.annotation_id, func.count().label("n")).join(Annotation).join(Image)
              .where(point_out, Image.width.is_not(None)).group_by(Landmark.annotation_id).subquery())
    rows = session.execute(
        select(Image.id, Image.path, Annotation.item_index, Annotation.category_id, box_out, points.c.n)
        .join(Image, Annotation.image_id == Image.id)
        .outerjoin(points, points.c.annotation_id == Annotation.id)
        .where(Image.width.is_not(None), box_out | points.c.n.is_not(None))
        .order_by(Image.id, Annotation.item_index).limit(limit)).all()
    found = []
    for image_id, path, index, category_id, box, n in rows:
        what = " and ".join(part for part in ("its box" if box else "", f"{n} landmarks" if n else "") if part)
        found.append(OutsideItem(image_id, path, index, category_id, what))
    return found


def review_summary(project: Project, taxonomy: Taxonomy | None = None) -> ReviewSummary:
    """The per-category review summary, from one read snapshot."""
    taxonomy = taxonomy or load_taxonomy()

    def work(session: Session):
        by_status = dict(session.execute(select(Image.status, func.count()).group_by(Image.status)).all())
        items = dict(session.execute(select(Annotation.category_id, func.count())
                                     .group_by(Annotation.category_id)).all())
        return by_status, items, corrected_displacements(session), outside_items(session)

    by_status, items, moved, outside = project.read(work)
    corrected = {category_id: len(values) for category_id, values in moved.items()}
    out_by_category: dict[int, int] = {}
    for o in outside:
        out_by_category[o.category_id] = out_by_category.get(o.category_id, 0) + 1
    rows = [CategoryRow(c.id, c.name, int(items.get(c.id, 0)), corrected.get(c.id, 0), mean_known(moved.get(c.id, [])),
                        out_by_category.get(c.id, 0)) for c in taxonomy.categories]
    total = CategoryRow(0, "all categories", sum(r.items for r in rows), sum(r.corrected_landmarks for r in rows),
                        mean_known([d for values in moved.values() for d in values]), len(outside))
    return ReviewSummary(rows, total, {s: int(by_status.get(s, 0)) for s in STATUSES}, outside)
