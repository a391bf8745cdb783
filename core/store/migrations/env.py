"""Alembic environment of the annotation store, driven programmatically by ``deepmark.core.store.schema``.

The caller passes an open SQLAlchemy connection in ``config.attributes["connection"]``; there is no
alembic.ini. Offline (SQL script) mode is supported for reviewing a migration as SQL.
"""

from __future__ import annotations

from alembic import context

from deepmark.core.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("the store's migrations need config.attributes['connection'] (see core/store/schema.py)")
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
