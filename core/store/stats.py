"""The figures a team lead asks for: images per status, items per category, corrected landmarks and how far
annotators moved them (mean displacement in pixels, per category), edits per author."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.store.models import ORIGINS, STATUSES, Annotation, Edit, Image, Landmark, ModelRun, Prediction

if TYPE_CHECKING:
    from deepmark.core.store.project import Project


@dataclass(frozen=True)
class ProjectStatus:
    """Counts over the whole project. ``mean_displacement`` (pixels) per category averages, over the
    corrected landmarks whose pre-correction position is known, the distance they were moved."""

    images_by_status: dict[str, int]
    items_by_category: dict[int, int]
    items_by_origin: dict[str, int]
    corrected_landmarks: dict[int, int]
    mean_displacement: dict[int, float]
    predictions: int
    model_runs: int
    edits: int
    edits_by_author: dict[str, int] = field(default_factory=dict)
    unfinished_runs: int = 0  # runs whose import was interrupted (importing the source again finishes them)

    @property
    def images(self) -> int:
        return sum(self.images_by_status.values())

    @property
    def items(self) -> int:
        return sum(self.items_by_category.values())

    def to_dict(self) -> dict:
        return {"images": self.images, "images_by_status": self.images_by_status, "items": self.items,
                "items_by_category": self.items_by_category, "items_by_origin": self.items_by_origin,
                "corrected_landmarks": self.corrected_landmarks, "mean_displacement_px": self.mean_displacement,
                "predictions": self.predictions, "model_runs": self.model_runs, "edits": self.edits,
                "edits_by_author": self.edits_by_author, "unfinished_runs": self.unfinished_runs}

    def table(self, taxonomy: Taxonomy | None = None) -> str:
        """Fixed-width text: statuses, then one row per category, then edits per author."""
        taxonomy = taxonomy or load_taxonomy()
        unfinished = (f" ({self.unfinished_runs} unfinished: an import was interrupted; import the same source "
                      "again to finish it)") if self.unfinished_runs else ""
        lines = [f"{self.images} images, {self.items} items, {self.predictions} predictions from "
                 f"{self.model_runs} runs{unfinished}, {self.edits} edits", ""]
        lines += [f"  {status:<10} {self.images_by_status[status]:>8}" for status in STATUSES]
        lines += ["", "  items by origin: " + ", ".join(f"{k} {v}" for k, v in self.items_by_origin.items()), ""]
        header = f"  {'category':<24}{'items':>8}{'corrected landmarks':>21}{'mean displacement px':>22}"
        lines += [header, "  " + "-" * (len(header) - 2)]
        for cat in taxonomy.categories:
            mean = self.mean_displacement.get(cat.id)
            cell = f"{mean:>22.2f}" if mean is not None else f"{'-':>22}"
            lines.append(f"  {f'{cat.id:>2} {cat.name}':<24}{self.items_by_category.get(cat.id, 0):>8}"
                         f"{self.corrected_landmarks.get(cat.id, 0):>21}{cell}")
        if self.edits_by_author:
            lines += ["", "  edits by author: " + ", ".join(f"{k} {v}" for k, v in self.edits_by_author.items())]
        return "\n".join(lines)


def corrected_displacements(session: Session) -> dict[int, list[float]]:
    """Per category id, one entry per human-corrected landmark: its distance (image px) from where it was
    before the first correction, or NaN when that position is unknown (``x0``/``y0`` unset)."""
    rows = session.execute(
        select(Annotation.category_id, Landmark.x, Landmark.y, Landmark.x0, Landmark.y0)
        .join(Annotation, Annotation.id == Landmark.annotation_id).where(Landmark.corrected.is_(True))
    ).all()
    moved: dict[int, list[float]] = {}
    for category_id, x, y, x0, y0 in rows:
        known = x0 is not None and y0 is not None
        moved.setdefault(category_id, []).append(float(np.hypot(x - x0, y - y0)) if known else math.nan)
    return moved


def mean_known(values: list[float]) -> float | None:
    """Mean of the non-NaN ``values``; None when there are none."""
    known = [v for v in values if not math.isnan(v)]
    return float(np.mean(known)) if known else None


def _displacements(session: Session) -> tuple[dict[int, int], dict[int, float]]:
    moved = corrected_displacements(session)
    counts = {k: len(v) for k, v in sorted(moved.items())}
    means = {k: m for k, v in sorted(moved.items()) if (m := mean_known(v)) is not None}
    return counts, means


def project_status(project: Project) -> ProjectStatus:
    """Gather the counts in one read snapshot."""
    def work(session: Session) -> ProjectStatus:
        by_status = dict(session.execute(select(Image.status, func.count()).group_by(Image.status)).all())
        by_category = dict(session.execute(select(Annotation.category_id, func.count())
                                           .group_by(Annotation.category_id)).all())
        by_origin = dict(session.execute(select(Annotation.origin, func.count()).group_by(Annotation.origin)).all())
        by_author = dict(session.execute(select(Edit.author, func.count()).group_by(Edit.author)
                                         .order_by(func.count().desc())).all())
        corrected, means = _displacements(session)
        return ProjectStatus(
            images_by_status={s: int(by_status.get(s, 0)) for s in STATUSES},
            items_by_category={int(k): int(v) for k, v in sorted(by_category.items())},
            items_by_origin={o: int(by_origin.get(o, 0)) for o in ORIGINS},
            corrected_landmarks=corrected, mean_displacement=means,
            predictions=int(session.scalar(select(func.count(Prediction.id)))),
            model_runs=int(session.scalar(select(func.count(ModelRun.id)))),
            edits=int(session.scalar(select(func.count(Edit.id)))),
            edits_by_author={str(k): int(v) for k, v in by_author.items()},
            unfinished_runs=int(session.scalar(select(func.count(ModelRun.id))
                                               .where(ModelRun.completed_at.is_(None)))),
        )
    return project.read(work)
