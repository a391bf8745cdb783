"""Likely label mistakes in a project (in the spirit of FiftyOne's mistakenness): every imported item still as
imported, scored by ``deepmark.core.studio.doubt.label_mistakes`` against the stored predictions of one model
(its newest run that predicted the image), highest score first. Qt-free; read in chunks, with progress and a
cancel flag, for a background job.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from deepmark.core.domain.taxonomy import Taxonomy
from deepmark.core.store import Project
from deepmark.core.store.annotations import item_records
from deepmark.core.store.models import Annotation, Image, ModelRun
from deepmark.core.store.predictions import prediction_records
from deepmark.core.studio.doubt import label_mistakes

CHUNK = 200  # images read per query


@dataclass(frozen=True)
class MistakeRow:
    """One imported item: its image (``image_id``, ``path``), ``annotation_id``, ``item_index`` and category;
    ``score`` in [0, 1] (higher: more likely wrong), ``oks`` against the compared prediction (nan: none),
    ``reasons`` one short line each (empty: the model agrees)."""

    image_id: int
    path: str
    annotation_id: int
    item_index: int
    category_id: int
    score: float
    oks: float
    reasons: tuple[str, ...]


def model_run_ids(project: Project, model_key: str) -> list[int]:
    """The ids of the model runs of the model file whose content key (``heads_cache.model_key``: the first hex
    digits of its SHA-256) is ``model_key``, newest first."""
    stmt = (select(ModelRun.id).where(ModelRun.kind == "model", ModelRun.model_hash.like(f"{model_key}%"))
            .order_by(ModelRun.id.desc()))
    return [int(i) for i in project.read(lambda s: s.scalars(stmt).all())]


def images_with_imported_items(project: Project) -> list[int]:
    """Ids of the images that hold an item still as imported, ascending."""
    stmt = select(Annotation.image_id).where(Annotation.origin == "imported").distinct().order_by(Annotation.image_id)
    return [int(i) for i in project.read(lambda s: s.scalars(stmt).all())]


def likely_mistakes(project: Project, run_ids: list[int], taxonomy: Taxonomy,
                    progress: Callable[[int, int], object] | None = None,
                    cancel: threading.Event | None = None) -> list[MistakeRow]:
    """Every imported item of the images predicted by one of ``run_ids`` (newest first: an image's predictions
    are those of the first run in this list that has any there), sorted by likely-mistake score, highest first
    (ties: image, item). Images no run predicted are left out (nothing to compare with). ``progress(done,
    total)`` after each chunk of images; a set ``cancel`` stops and returns what was scored."""
    image_ids = images_with_imported_items(project)
    rank = {run: k for k, run in enumerate(run_ids)}
    rows: list[MistakeRow] = []
    for start in range(0, len(image_ids), CHUNK):
        if cancel is not None and cancel.is_set():
            break
        chunk = image_ids[start:start + CHUNK]
        items, predictions, paths = project.read(lambda s, c=chunk: _chunk(s, c, run_ids))
        for image_id in chunk:
            found = predictions.get(image_id, [])
            if not found:
                continue
            newest = min(rank[p.model_run_id] for p in found)
            detections = [p.to_detection() for p in found if rank[p.model_run_id] == newest]
            imported = [i for i in items.get(image_id, []) if i.origin == "imported"]
            for item, doubt in zip(imported, label_mistakes([i.to_item() for i in imported], detections, taxonomy),
                                   strict=True):
                rows.append(MistakeRow(image_id, paths[image_id], item.id, item.item_index, item.category_id,
                                       doubt.score, doubt.oks, doubt.reasons))
        if progress is not None:
            progress(min(start + CHUNK, len(image_ids)), len(image_ids))
    rows.sort(key=lambda r: (-r.score, r.image_id, r.item_index))
    return rows


def _chunk(session: Session, image_ids: list[int], run_ids: list[int]):
    items = item_records(session, image_ids)
    predictions: dict[int, list] = {}
    if run_ids:
        for p in prediction_records(session, image_ids):
            if p.model_run_id in run_ids:
                predictions.setdefault(p.image_id, []).append(p)
    paths = dict(session.execute(select(Image.id, Image.path).where(Image.id.in_(image_ids))).all())
    return items, predictions, paths


def describe_row(row: MistakeRow) -> str:
    """The reasons in one line (for a tooltip or the status bar)."""
    oks = "" if math.isnan(row.oks) else f"OKS {row.oks:.2f}; "
    return oks + ("; ".join(row.reasons) if row.reasons else "the model agrees")
