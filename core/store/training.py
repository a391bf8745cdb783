"""Retraining jobs and model evaluations in the store (revision 0006).

A job row is what lets a retraining survive the app: its state, folder, configuration and split are here,
so reopening the project finds a job that was interrupted and can resume it (``deepmark.core.studio.retrain``
runs the jobs; the store only keeps what they are). An evaluation is one model file's metrics on a set of the
project's images, with the post-processing parameters used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from deepmark.core.store.errors import InvalidValueError, NotFoundError
from deepmark.core.store.models import TRAINING_STATES, ModelEvaluation, TrainingJob, utc_now

if TYPE_CHECKING:
    from deepmark.core.store.project import Project

RESUMABLE_STATES = ("preparing", "training", "finishing", "cancelled")
"""States of a job that has not ended: it can be resumed (or discarded)."""
ENDED_STATES = ("done", "failed", "discarded")


@dataclass(frozen=True)
class TrainingJobRecord:
    """A training job as stored (see ``models.TrainingJob``)."""

    id: int
    state: str
    job_dir: Path
    base_model_path: str | None
    base_model_hash: str | None
    base_checkpoint: str | None
    config: dict[str, Any] | None
    split: dict[str, Any] | None
    pid: int | None
    message: str | None
    model_path: str | None
    model_run_id: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE_STATES


@dataclass(frozen=True)
class ModelEvaluationRecord:
    """One model's metrics (``EvaluationResult.to_dict()``) on ``image_ids`` with ``params``."""

    id: int
    training_job_id: int | None
    label: str
    model_path: str
    model_hash: str
    image_ids: list[int]
    metrics: dict[str, Any]
    params: dict[str, Any] | None
    created_at: datetime


def _job(row: TrainingJob) -> TrainingJobRecord:
    return TrainingJobRecord(row.id, row.state, Path(row.job_dir), row.base_model_path, row.base_model_hash,
                             row.base_checkpoint, row.config, row.split, row.pid, row.message, row.model_path,
                             row.model_run_id, row.created_at, row.updated_at, row.finished_at)


def _evaluation(row: ModelEvaluation) -> ModelEvaluationRecord:
    return ModelEvaluationRecord(row.id, row.training_job_id, row.label, row.model_path, row.model_hash,
                                 list(row.image_ids), dict(row.metrics), row.params, row.created_at)


_JOB_FIELDS = ("state", "job_dir", "base_model_path", "base_model_hash", "base_checkpoint", "config", "split",
               "pid", "message", "model_path", "model_run_id")


class TrainingRepository:
    """Training jobs (``add``, ``update``, ``get``, ``list``, ``latest_unfinished``) and model evaluations
    (``add_evaluation``, ``evaluations``)."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def add(self, job_dir: str | Path, **values: Any) -> TrainingJobRecord:
        """A new job in state 'preparing' (``values``: any other column of ``TrainingJob``)."""
        values = self._checked({"state": "preparing", **values, "job_dir": str(job_dir)})
        now = utc_now()
        job_id = self._project.write(lambda s: int(s.execute(
            insert(TrainingJob).returning(TrainingJob.id), {**values, "created_at": now, "updated_at": now}
        ).scalar_one()))
        return self.get(job_id)

    def update(self, job_id: int, **values: Any) -> TrainingJobRecord:
        """Change some columns of a job; an ended state ('done', 'failed', 'discarded') also sets
        ``finished_at``."""
        values = self._checked(values)
        now = utc_now()
        values["updated_at"] = now
        if values.get("state") in ENDED_STATES:
            values["finished_at"] = now

        def work(session: Session) -> int:
            return session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(**values),
                                   execution_options={"synchronize_session": False}).rowcount

        if not self._project.write(work):
            raise NotFoundError(f"training job {job_id}: not in the project")
        return self.get(job_id)

    @staticmethod
    def _checked(values: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(values) - set(_JOB_FIELDS))
        if unknown:
            raise InvalidValueError(f"training job: unknown field(s) {unknown}")
        if "state" in values and values["state"] not in TRAINING_STATES:
            raise InvalidValueError(f"training job state must be one of {TRAINING_STATES}, got {values['state']!r}")
        return dict(values)

    def get(self, job_id: int) -> TrainingJobRecord:
        row = self._project.read(lambda s: s.get(TrainingJob, job_id))
        if row is None:
            raise NotFoundError(f"training job {job_id}: not in the project")
        return _job(row)

    def list(self) -> list[TrainingJobRecord]:
        """Every job, oldest first."""
        rows = self._project.read(lambda s: s.scalars(select(TrainingJob).order_by(TrainingJob.id)).all())
        return [_job(r) for r in rows]

    def latest_unfinished(self) -> TrainingJobRecord | None:
        """The newest job that has not ended (running, interrupted or cancelled); None when there is none."""
        stmt = (select(TrainingJob).where(TrainingJob.state.in_(RESUMABLE_STATES))
                .order_by(TrainingJob.id.desc()).limit(1))
        row = self._project.read(lambda s: s.scalars(stmt).first())
        return None if row is None else _job(row)

    def job_of_model(self, model_hash: str) -> TrainingJobRecord | None:
        """The finished job whose new model has this hash (its evaluation labelled 'new'); None otherwise."""
        stmt = (select(TrainingJob).join(ModelEvaluation, ModelEvaluation.training_job_id == TrainingJob.id)
                .where(ModelEvaluation.model_hash == model_hash, ModelEvaluation.label == "new",
                       TrainingJob.state == "done").order_by(TrainingJob.id.desc()).limit(1))
        row = self._project.read(lambda s: s.scalars(stmt).first())
        return None if row is None else _job(row)

    def add_evaluation(self, label: str, model_path: str | Path, model_hash: str, image_ids: list[int],
                       metrics: dict[str, Any], params: dict[str, Any] | None = None,
                       training_job_id: int | None = None) -> ModelEvaluationRecord:
        """Record one model's metrics on ``image_ids``."""
        if not label or len(label) > 32:
            raise InvalidValueError(f"evaluation label must have 1 to 32 characters, got {label!r}")
        values = {"training_job_id": training_job_id, "label": label, "model_path": str(model_path),
                  "model_hash": model_hash, "image_ids": [int(i) for i in image_ids], "metrics": metrics,
                  "params": params, "created_at": utc_now()}
        evaluation_id = self._project.write(lambda s: int(s.execute(
            insert(ModelEvaluation).returning(ModelEvaluation.id), values).scalar_one()))
        row = self._project.read(lambda s: s.get(ModelEvaluation, evaluation_id))
        return _evaluation(row)

    def evaluations(self, training_job_id: int | None = None) -> list[ModelEvaluationRecord]:
        """Evaluations (of one job, or all), oldest first."""
        stmt = select(ModelEvaluation).order_by(ModelEvaluation.id)
        if training_job_id is not None:
            stmt = stmt.where(ModelEvaluation.training_job_id == training_job_id)
        return [_evaluation(r) for r in self._project.read(lambda s: s.scalars(stmt).all())]
