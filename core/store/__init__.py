"""The annotation store: a project database of images, model runs, predictions, the current truth of
every item (annotations and landmark rows), an append-only edit log with undo, and saved presets.

SQLite by default (a project file; WAL, foreign keys on), PostgreSQL through a URL for teams; the
schema is managed by Alembic (``core/store/migrations``). See ``Project`` to start, and
``deepmark.core.store.interchange`` for DeepFashion2 / COCO import and export.
"""

from deepmark.core.store.engine import default_project_path, project_url
from deepmark.core.store.errors import (
    ConflictError,
    DamagedProjectError,
    DatabaseLockedError,
    InvalidValueError,
    NotAProjectError,
    NotFoundError,
    ReadOnlyProjectError,
    SchemaVersionError,
    StoreError,
    UndoError,
)
from deepmark.core.store.models import NEEDS_REVIEW, ORIGINS, STATUSES
from deepmark.core.store.project import Project
from deepmark.core.store.records import (
    EditReceipt,
    EditRecord,
    ImageRecord,
    ItemData,
    ItemRecord,
    ModelRunRecord,
    PredictionRecord,
    PresetRecord,
)
from deepmark.core.store.stats import ProjectStatus, project_status

__all__ = [
    "NEEDS_REVIEW", "ORIGINS", "STATUSES", "ConflictError", "DamagedProjectError", "DatabaseLockedError",
    "EditReceipt", "EditRecord", "ImageRecord", "InvalidValueError", "ItemData", "ItemRecord", "ModelRunRecord",
    "NotAProjectError", "NotFoundError", "PredictionRecord", "PresetRecord", "Project", "ProjectStatus",
    "ReadOnlyProjectError", "SchemaVersionError", "StoreError", "UndoError", "default_project_path",
    "project_status", "project_url",
]
