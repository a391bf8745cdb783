"""Model runs remember the predictions source they were imported from (``source_key``, unique) and when
their import finished (``completed_at``), so that importing a source again, or after an interruption,
finishes the one run instead of adding duplicates. Existing runs are taken as finished when created.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10

Both columns are added in place (no table copy: on SQLite, copying model_runs would cascade-delete the
predictions that reference it), and the key is a unique index for the same reason.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_runs", sa.Column("source_key", sa.String(length=64), nullable=True))
    op.add_column("model_runs", sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_model_runs_source_key"), "model_runs", ["source_key"], unique=True)
    op.execute("UPDATE model_runs SET completed_at = created_at")


def downgrade() -> None:
    op.drop_index(op.f("ix_model_runs_source_key"), table_name="model_runs")
    with op.batch_alter_table("model_runs", recreate="never") as batch:
        batch.drop_column("completed_at")
        batch.drop_column("source_key")
