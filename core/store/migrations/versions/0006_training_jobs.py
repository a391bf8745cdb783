"""Retraining jobs and model evaluations: ``training_jobs`` (state, folder, the model it starts from, run
configuration, train / validation split, the model it produced) and ``model_evaluations`` (a model file's
metrics on a set of the project's images, with the post-processing parameters used).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Two new tables; nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATES = ("preparing", "training", "finishing", "cancelled", "done", "failed", "discarded")


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("job_dir", sa.String(length=1024), nullable=False),
        sa.Column("base_model_path", sa.String(length=1024), nullable=True),
        sa.Column("base_model_hash", sa.String(length=64), nullable=True),
        sa.Column("base_checkpoint", sa.String(length=1024), nullable=True),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("split", sa.JSON(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("model_path", sa.String(length=1024), nullable=True),
        sa.Column("model_run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN (" + ", ".join(repr(s) for s in STATES) + ")",
                           name=op.f("ck_training_jobs_state")),
        sa.ForeignKeyConstraint(["model_run_id"], ["model_runs.id"], ondelete="SET NULL",
                                name=op.f("fk_training_jobs_model_run_id_model_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_jobs")),
    )
    op.create_table(
        "model_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("training_job_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("model_path", sa.String(length=1024), nullable=False),
        sa.Column("model_hash", sa.String(length=64), nullable=False),
        sa.Column("image_ids", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["training_job_id"], ["training_jobs.id"], ondelete="SET NULL",
                                name=op.f("fk_model_evaluations_training_job_id_training_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_evaluations")),
    )
    op.create_index(op.f("ix_model_evaluations_training_job_id"), "model_evaluations", ["training_job_id"])
    op.create_index(op.f("ix_model_evaluations_model_hash"), "model_evaluations", ["model_hash"])


def downgrade() -> None:
    op.drop_index(op.f("ix_model_evaluations_model_hash"), table_name="model_evaluations")
    op.drop_index(op.f("ix_model_evaluations_training_job_id"), table_name="model_evaluations")
    op.drop_table("model_evaluations")
    op.drop_table("training_jobs")
