"""Items keep the keys of an imported item that are not DeepFashion2 fields (``annotations.extra``, JSON), so
that exports carry a team's own keys (``"annotator"``, ``"quality"``...) exactly as they were read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-17

The column is added in place (no table copy: copying annotations on SQLite would go through the landmark rows'
cascading foreign keys); existing items have none (NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("annotations", sa.Column("extra", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("annotations", recreate="never") as batch:
        batch.drop_column("extra")
