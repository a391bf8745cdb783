"""Initial schema: images, model runs, predictions, annotations, landmarks, edit log, presets, settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

The edit log is made append-only by triggers (SQLite and PostgreSQL) that refuse UPDATE and DELETE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = "the edit log is append-only: edits cannot be changed or deleted"


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False)]


def _box() -> list[sa.Column]:
    return [sa.Column(name, sa.Float(), nullable=False) for name in ("x1", "y1", "x2", "y2")]


def _fk(column: str, table: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"),
                                   ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("pair_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=128), nullable=True),
        *_timestamps(),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("status IN ('new', 'predicted', 'in_review', 'accepted', 'rejected', 'skipped')",
                           name=op.f("ck_images_status")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_images_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("path", name=op.f("uq_images_path")),
    )
    op.create_index(op.f("ix_images_content_hash"), "images", ["content_hash"])
    op.create_index("ix_images_status_id", "images", ["status", "id"])

    op.create_table(
        "model_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model_path", sa.String(length=1024), nullable=True),
        sa.Column("model_hash", sa.String(length=64), nullable=True),
        sa.Column("model_meta", sa.JSON(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('model', 'import')", name=op.f("ck_model_runs_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_runs")),
    )
    op.create_table(
        "presets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presets")),
        sa.UniqueConstraint("name", name=op.f("uq_presets_name")),
    )
    op.create_table(
        "project_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_project_settings")),
    )
    op.create_table(
        "edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=True),
        sa.Column("landmark_idx", sa.SmallInteger(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("undoes_id", sa.Integer(), nullable=True),
        sa.Column("image_version", sa.Integer(), nullable=False),
        _fk("image_id", "edits", "images"),
        _fk("undoes_id", "edits", "edits"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edits")),
        sa.UniqueConstraint("undoes_id", name=op.f("uq_edits_undoes_id")),
    )
    op.create_index("ix_edits_image_id_id", "edits", ["image_id", "id"])

    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("model_run_id", sa.Integer(), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        *_box(),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("box_score", sa.Float(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=True),
        _fk("image_id", "predictions", "images", "CASCADE"),
        _fk("model_run_id", "predictions", "model_runs", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint("model_run_id", "image_id", "item_index",
                            name=op.f("uq_predictions_model_run_id_image_id_item_index")),
    )
    op.create_index(op.f("ix_predictions_image_id"), "predictions", ["image_id"])
    op.create_index(op.f("ix_predictions_model_run_id"), "predictions", ["model_run_id"])

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        *_box(),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=True)
          for name in ("style", "occlusion", "scale", "zoom_in", "viewpoint")],
        sa.Column("segmentation", sa.JSON(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("origin IN ('predicted', 'corrected', 'manual', 'imported')",
                           name=op.f("ck_annotations_origin")),
        _fk("image_id", "annotations", "images", "CASCADE"),
        _fk("prediction_id", "annotations", "predictions", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    op.create_index(op.f("ix_annotations_image_id"), "annotations", ["image_id"])

    op.create_table(
        "prediction_landmarks",
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.SmallInteger(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("refined", sa.Boolean(), nullable=False),
        _fk("prediction_id", "prediction_landmarks", "predictions", "CASCADE"),
        sa.PrimaryKeyConstraint("prediction_id", "idx", name=op.f("pk_prediction_landmarks")),
    )
    op.create_table(
        "landmarks",
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.SmallInteger(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("v", sa.SmallInteger(), nullable=False),
        sa.Column("corrected", sa.Boolean(), nullable=False),
        sa.Column("x0", sa.Float(), nullable=True),
        sa.Column("y0", sa.Float(), nullable=True),
        sa.CheckConstraint("v IN (0, 1, 2)", name=op.f("ck_landmarks_visibility")),
        _fk("annotation_id", "landmarks", "annotations", "CASCADE"),
        sa.PrimaryKeyConstraint("annotation_id", "idx", name=op.f("pk_landmarks")),
    )
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION deepmark_edits_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
        op.execute("CREATE TRIGGER edits_append_only BEFORE UPDATE OR DELETE ON edits "
                   "FOR EACH ROW EXECUTE FUNCTION deepmark_edits_append_only()")
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER edits_no_{event.lower()} BEFORE {event} ON edits "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER edits_append_only ON edits")
        op.execute("DROP FUNCTION deepmark_edits_append_only()")
    for table in ("landmarks", "prediction_landmarks", "annotations", "predictions", "edits",
                  "project_settings", "presets", "model_runs", "images"):
        op.drop_table(table)  # their indexes and (SQLite) triggers go with them
