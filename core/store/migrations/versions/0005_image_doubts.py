"""Per-image doubt scores (``image_doubts``): how much a model doubted each image, keyed by the model file,
test-time augmentation and post-processing parameters they were computed with, so that the review queue and
the image list can follow the model's doubt without taking another model's scores for the current one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-20

A new table only: existing rows are untouched, and an upgraded project has no scores yet ("not computed"
until the model runs on its images again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_doubts",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("doubt_key", sa.String(length=64), nullable=False),
        sa.Column("model_run_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("expected_edits", sa.Float(), nullable=False),
        sa.Column("centre", sa.Float(), nullable=False),
        sa.Column("landmarks", sa.Float(), nullable=False),
        sa.Column("flip", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name=op.f("fk_image_doubts_image_id_images"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_run_id"], ["model_runs.id"],
                                name=op.f("fk_image_doubts_model_run_id_model_runs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("image_id", "doubt_key", name=op.f("pk_image_doubts")),
    )
    op.create_index("ix_image_doubts_doubt_key_score", "image_doubts", ["doubt_key", "score"])


def downgrade() -> None:
    op.drop_index("ix_image_doubts_doubt_key_score", table_name="image_doubts")
    op.drop_table("image_doubts")
