"""The annotation store's tables (SQLAlchemy 2.0 ORM). The schema itself is created by the Alembic
migrations in ``core/store/migrations``; a test checks that these models and the migrations agree.

Units: every coordinate (box corners ``x1, y1, x2, y2``, landmark ``x, y``) is in image pixels of the
upright image, boxes are xyxy. Landmarks are rows: one per (item, landmark index ``idx``, 0-based local
index of the item's category). Times are UTC.

``images.version`` is the optimistic-concurrency counter: every edit of an image or of one of its items
increments it, and an edit made against an older version is refused (``ConflictError``).
The ``edits`` table is append-only (database triggers refuse UPDATE and DELETE on it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUSES = ("new", "predicted", "in_review", "accepted", "rejected", "skipped")
"""Review status of an image, in workflow order."""
NEEDS_REVIEW = ("new", "predicted", "in_review")
"""The statuses listed as "needs review"."""
ORIGINS = ("predicted", "corrected", "manual", "imported")
"""Where an item's current truth comes from."""
RUN_KINDS = ("model", "import")
"""A model run is a detector's output, or annotations that a re-import set beside human corrections."""
DF2_ATTRIBUTES = ("style", "occlusion", "scale", "zoom_in", "viewpoint")
"""Integer DeepFashion2 item attributes kept when known (None when not)."""

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ProjectSetting(Base):
    """Key/value settings of the project (``root``: the folder image paths are relative to)."""

    __tablename__ = "project_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Image(Base):
    """One image: ``path`` relative to the project root (POSIX separators; absolute when outside it),
    ``content_hash`` SHA-256 hex of the file, ``size_bytes``, ``width``/``height`` in pixels."""

    __tablename__ = "images"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint("version >= 1", name="version"),
        Index("ix_images_status_id", "status", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(16))
    pair_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="new")
    reviewer: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # accepted as holding no garments (a true negative): only then is an image without items exported
    no_garments: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ModelRun(Base):
    """A detector run (model file hash and metadata, post-processing parameters) or an import source.

    ``source_key``: for an imported predictions source, SHA-256 hex of what it holds (``prediction_source_key``),
    so that importing it again, or again after an interruption, continues this run instead of starting
    another; unique. ``completed_at``: when its import finished (None: interrupted; importing the source
    again finishes it). Runs made before revision 0003 count as completed when they were created."""

    __tablename__ = "model_runs"
    __table_args__ = (CheckConstraint(_in("kind", RUN_KINDS), name="kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16), default="model")
    model_path: Mapped[str | None] = mapped_column(String(1024))
    model_hash: Mapped[str | None] = mapped_column(String(64))
    model_meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    # a unique index, not a constraint: SQLite adds an index in place, a constraint only by copying the table
    source_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Prediction(Base):
    """One predicted item: category, xyxy box, final ``score`` and ``box_score`` in [0, 1]."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("model_run_id", "image_id", "item_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    model_run_id: Mapped[int] = mapped_column(ForeignKey("model_runs.id", ondelete="CASCADE"), index=True)
    item_index: Mapped[int] = mapped_column(Integer)
    category_id: Mapped[int] = mapped_column(Integer)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    box_score: Mapped[float] = mapped_column(Float)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PredictionLandmark(Base):
    """One predicted landmark: x, y in pixels, ``score`` in [0, 1], ``refined`` by a heatmap peak."""

    __tablename__ = "prediction_landmarks"
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    refined: Mapped[bool] = mapped_column(Boolean, default=False)


class Annotation(Base):
    """The current truth of one item: category, xyxy box, ``origin``, DF2 attributes when known and
    ``segmentation`` (list of flat [x, y, ...] polygons in pixels) when known. ``item_index`` orders the
    items of an image (``item1``.. on export). ``extra``: the imported item's keys that are not DeepFashion2
    fields (a team's own ``"annotator"``, ``"quality"``...), name → JSON value exactly as read, carried by
    every export; None for an item without any."""

    __tablename__ = "annotations"
    __table_args__ = (CheckConstraint(_in("origin", ORIGINS), name="origin"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    item_index: Mapped[int] = mapped_column(Integer)
    category_id: Mapped[int] = mapped_column(Integer)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    origin: Mapped[str] = mapped_column(String(16))
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id", ondelete="SET NULL"))
    style: Mapped[int | None] = mapped_column(Integer)
    occlusion: Mapped[int | None] = mapped_column(Integer)
    scale: Mapped[int | None] = mapped_column(Integer)
    zoom_in: Mapped[int | None] = mapped_column(Integer)
    viewpoint: Mapped[int | None] = mapped_column(Integer)
    segmentation: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # revision 0004


class Landmark(Base):
    """One landmark of an item: x, y in pixels, ``v`` 0 not labelled / 1 occluded / 2 visible.
    ``corrected``: a person moved it or changed its visibility; ``x0, y0``: where it was before the
    first such correction (for displacement statistics)."""

    __tablename__ = "landmarks"
    __table_args__ = (CheckConstraint("v IN (0, 1, 2)", name="visibility"),)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    v: Mapped[int] = mapped_column(SmallInteger)
    corrected: Mapped[bool] = mapped_column(Boolean, default=False)
    x0: Mapped[float | None] = mapped_column(Float)
    y0: Mapped[float | None] = mapped_column(Float)


class Edit(Base):
    """One change, append-only: ``target`` 'landmark' / 'item' / 'image', ``before`` and ``after`` the
    target's state as JSON (None where it did not exist), who (``author``) and when. An undo is itself an
    edit whose ``undoes_id`` names the edit it reverted."""

    __tablename__ = "edits"
    __table_args__ = (Index("ix_edits_image_id_id", "image_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    author: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(16))
    annotation_id: Mapped[int | None] = mapped_column(Integer)
    landmark_idx: Mapped[int | None] = mapped_column(SmallInteger)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("edits.id"), unique=True)
    image_version: Mapped[int] = mapped_column(Integer)


class Preset(Base):
    """A saved set of post-processing parameters (``PostprocessParams`` fields as JSON)."""

    __tablename__ = "presets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class ImageDoubtScore(Base):
    """How much a model doubts one image (``deepmark.core.studio.doubt.image_uncertainty``), kept under
    ``doubt_key``: a digest of the model file, the test-time augmentation and the post-processing parameters
    it was computed with (``deepmark.core.studio.uncertainty.doubt_key``), so that a score of another model or
    of other parameters is never read as the current one. ``score`` in [0, 1] (sort by it), ``expected_edits``
    ≥ 0, its parts ``centre`` / ``landmarks`` in [0, 1] and ``flip`` (None: computed without the mirrored
    image's heads); ``model_run_id`` the run whose predictions came with it (None: unknown or removed).
    Revision 0005."""

    __tablename__ = "image_doubts"
    __table_args__ = (Index("ix_image_doubts_doubt_key_score", "doubt_key", "score"),)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    doubt_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_run_id: Mapped[int | None] = mapped_column(ForeignKey("model_runs.id", ondelete="SET NULL"))
    score: Mapped[float] = mapped_column(Float)
    expected_edits: Mapped[float] = mapped_column(Float)
    centre: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[float] = mapped_column(Float)
    flip: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


TRAINING_STATES = ("preparing", "training", "finishing", "cancelled", "done", "failed", "discarded")
"""Where a retraining job stands: its data being exported, ``deepmark train`` running (or interrupted while it
ran), the new model being exported and evaluated, stopped by the user (resumable), finished, failed (the
reason in ``message``), or set aside by the user (its folder may be gone)."""


class TrainingJob(Base):
    """A retraining job on the project's accepted images (``deepmark.core.studio.retrain``), revision 0006.

    ``job_dir``: its folder (exported data, run folder, ``config.toml``, the new model). ``base_model_*``: the
    model it starts from and is compared with; ``base_checkpoint``: the training checkpoint it was initialised
    from (None: the documented recipe from random weights). ``config``: the run configuration as written;
    ``split``: image ids per part (``train``, ``validation``) and how the split was made. ``pid``: the process
    running its current phase (None when none). ``model_path``/``model_run_id``: the model it produced."""

    __tablename__ = "training_jobs"
    __table_args__ = (CheckConstraint(_in("state", TRAINING_STATES), name="state"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="preparing")
    job_dir: Mapped[str] = mapped_column(String(1024))
    base_model_path: Mapped[str | None] = mapped_column(String(1024))
    base_model_hash: Mapped[str | None] = mapped_column(String(64))
    base_checkpoint: Mapped[str | None] = mapped_column(String(1024))
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    split: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pid: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    model_path: Mapped[str | None] = mapped_column(String(1024))
    model_run_id: Mapped[int | None] = mapped_column(ForeignKey("model_runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelEvaluation(Base):
    """One model evaluated on a set of the project's images (revision 0006): the model file (path and SHA-256
    hex), ``image_ids`` (JSON list), ``metrics`` (``EvaluationResult.to_dict()``: mAP_pt, mAP_box, per
    category...), the post-processing ``params`` used, and the training job that made it (None: on its own).
    ``label`` says which model it is to that job ('current', 'new')."""

    __tablename__ = "model_evaluations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    training_job_id: Mapped[int | None] = mapped_column(ForeignKey("training_jobs.id", ondelete="SET NULL"),
                                                        index=True)
    label: Mapped[str] = mapped_column(String(32))
    model_path: Mapped[str] = mapped_column(String(1024))
    model_hash: Mapped[str] = mapped_column(String(64), index=True)
    image_ids: Mapped[list[Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
