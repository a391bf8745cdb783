"""Model runs and their predictions, stored beside the annotations (never over them)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from deepmark.core.domain.structures import Detection
from deepmark.core.store.bulk import checked_detection, insert_predictions
from deepmark.core.store.errors import InvalidValueError, NotFoundError, StoreError
from deepmark.core.store.models import RUN_KINDS, Image, ModelRun, Prediction, PredictionLandmark, utc_now
from deepmark.core.store.records import ModelRunRecord, PredictionRecord

if TYPE_CHECKING:
    from deepmark.core.store.project import Project


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read model file ({exc.strerror or exc})", path=path) from None
    return digest.hexdigest()


def _run_record(row: ModelRun) -> ModelRunRecord:
    return ModelRunRecord(row.id, row.name, row.kind, row.model_path, row.model_hash, row.model_meta, row.params,
                          row.created_at, row.completed_at, row.source_key)


def new_run(session: Session, name: str, kind: str = "model", model_path: str | None = None,
            model_hash: str | None = None, model_meta: dict | None = None, params: dict | None = None, *,
            source_key: str | None = None, completed: bool = True) -> int:
    """Insert a model run inside a transaction; its id. ``completed`` False: an import that finishes it
    later (``complete_run``)."""
    if kind not in RUN_KINDS:
        raise InvalidValueError(f"model run kind must be one of {RUN_KINDS}, got {kind!r}")
    now = utc_now()
    return int(session.execute(insert(ModelRun).returning(ModelRun.id), {
        "name": name, "kind": kind, "model_path": model_path, "model_hash": model_hash, "model_meta": model_meta,
        "params": params, "created_at": now, "source_key": source_key,
        "completed_at": now if completed else None}).scalar_one())


def run_of_source(session: Session, source_key: str) -> tuple[int, bool] | None:
    """(id, completed) of the run imported from the source with this key; None when there is none."""
    row = session.execute(select(ModelRun.id, ModelRun.completed_at).where(ModelRun.source_key == source_key)
                          ).first()
    return None if row is None else (int(row.id), row.completed_at is not None)


def complete_run(session: Session, run_id: int) -> None:
    """Mark a run's import finished (once: a finished run keeps its time)."""
    session.execute(update(ModelRun).where(ModelRun.id == run_id, ModelRun.completed_at.is_(None))
                    .values(completed_at=utc_now()), execution_options={"synchronize_session": False})


def prediction_records(session: Session, image_ids: list[int], run_id: int | None = None,
                       prediction_ids: list[int] | None = None) -> list[PredictionRecord]:
    """Predictions of the images (optionally of one run, or exactly these ids), by image, run, index."""
    stmt = select(Prediction.__table__)
    if prediction_ids is not None:
        stmt = stmt.where(Prediction.id.in_(prediction_ids))
    else:
        stmt = stmt.where(Prediction.image_id.in_(image_ids))
    if run_id is not None:
        stmt = stmt.where(Prediction.model_run_id == run_id)
    preds = session.execute(stmt.order_by(Prediction.image_id, Prediction.model_run_id, Prediction.item_index)
                            ).mappings().all()
    points: dict[int, list] = {p["id"]: [] for p in preds}
    if preds:
        lt = PredictionLandmark.__table__.c  # a Core query: no per-row ORM work
        rows = session.connection().execute(
            select(lt.prediction_id, lt.x, lt.y, lt.score, lt.refined).where(lt.prediction_id.in_(list(points)))
            .order_by(lt.prediction_id, lt.idx)).all()
        for prediction_id, x, y, score, refined in rows:
            points[prediction_id].append((x, y, score, refined))
    out = []
    for p in preds:
        arr = np.array(points[p["id"]], np.float64).reshape(-1, 4)
        out.append(PredictionRecord(p["id"], p["image_id"], p["model_run_id"], p["item_index"], p["category_id"],
                                    p["score"], p["box_score"], np.array([p["x1"], p["y1"], p["x2"], p["y2"]]),
                                    arr[:, :3].copy(), arr[:, 3].astype(bool), p["attributes"]))
    return out


class ModelRunRepository:
    """Detector runs (model file hash and metadata, post-processing parameters) and import sources."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def add(self, name: str, *, kind: str = "model", model_path: str | Path | None = None,
            model_hash: str | None = None, model_meta: dict[str, Any] | None = None,
            params: dict[str, Any] | None = None) -> ModelRunRecord:
        """Record a run; the model file is hashed when ``model_path`` is given without ``model_hash``."""
        if model_path is not None and model_hash is None:
            model_hash = file_sha256(model_path)
        path = None if model_path is None else str(model_path)
        run_id = self._project.write(lambda s: new_run(s, name, kind, path, model_hash, model_meta, params))
        return self.get(run_id)

    def get(self, run_id: int) -> ModelRunRecord:
        row = self._project.read(lambda s: s.get(ModelRun, run_id))
        if row is None:
            raise NotFoundError(f"model run {run_id}: not in the project")
        return _run_record(row)

    def list(self, *, unfinished: bool = True) -> list[ModelRunRecord]:
        """Every run, oldest first; with ``unfinished`` False only those whose import finished."""
        stmt = select(ModelRun).order_by(ModelRun.id)
        if not unfinished:
            stmt = stmt.where(ModelRun.completed_at.is_not(None))
        rows = self._project.read(lambda s: s.scalars(stmt).all())
        return [_run_record(r) for r in rows]

    def remove(self, run_id: int) -> None:
        """Delete a run and its predictions (items accepted from them stay, unlinked)."""
        self.get(run_id)
        self._project.write(lambda s: s.execute(delete(ModelRun).where(ModelRun.id == run_id)))


class PredictionRepository:
    """Predicted items per image and model run."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def add(self, image_id: int, run_id: int, detections: Sequence[Detection]) -> list[int]:
        """Store one image's detections of a run (one transaction); a 'new' image becomes 'predicted'.
        ``Detection.landmarks`` (L, 3) x, y, score; ``refined`` (L,) bool. Once per (image, run): when the
        image already holds predictions of the run — stored by another writer, e.g. the live view while a
        batch job runs under the same run — nothing is stored and the result is ``[]``."""
        for k, det in enumerate(detections):
            checked_detection(det, self._project.annotations.taxonomy, f"image {image_id} detection {k}")

        def work(session: Session) -> list[int]:
            if session.get(Image, image_id) is None:
                raise NotFoundError(f"image {image_id}: not in the project")
            held = select(Prediction.id).where(Prediction.image_id == image_id, Prediction.model_run_id == run_id)
            if session.scalar(held.limit(1)) is not None:
                return []
            ids = insert_predictions(session, run_id, image_id, detections)
            session.execute(update(Image).where(Image.id == image_id, Image.status == "new")
                            .values(status="predicted"), execution_options={"synchronize_session": False})
            return ids
        try:
            return self._project.write(work)
        except IntegrityError:  # a concurrent writer (PostgreSQL, read committed) stored them first
            if self.for_image(image_id, run_id):
                return []
            raise

    def for_image(self, image_id: int, run_id: int | None = None) -> list[PredictionRecord]:
        return self._project.read(lambda s: prediction_records(s, [image_id], run_id))

    def get(self, prediction_id: int) -> PredictionRecord:
        found = self._project.read(lambda s: prediction_records(s, [], prediction_ids=[prediction_id]))
        if not found:
            raise NotFoundError(f"prediction {prediction_id}: not in the project")
        return found[0]

    def count(self, run_id: int | None = None) -> int:
        stmt = select(func.count(Prediction.id))
        if run_id is not None:
            stmt = stmt.where(Prediction.model_run_id == run_id)
        return int(self._project.read(lambda s: s.scalar(stmt)))
