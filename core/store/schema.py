"""Schema versions through Alembic, configured in code (no alembic.ini; works from an installed package).

A project records its Alembic revision in ``alembic_version``. Opening one whose revision this program
does not know means a newer DeepMark Studio wrote it: it is refused, untouched (``SchemaVersionError``).
An older revision is upgraded in one transaction.

For developers, a new revision after changing ``models.py``::

    python -c "from deepmark.core.store.schema import make_revision; make_revision('what changed', 'sqlite:///x.deepmark')"
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from deepmark.core.store.errors import NotAProjectError, SchemaVersionError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config pointing at this package's migrations, with ``connection`` for env.py."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest schema revision this program knows."""
    head = _script().get_current_head()
    assert head is not None, f"{MIGRATIONS_DIR}: no migration found"
    return head


def known_revisions() -> list[str]:
    """Every schema revision this program knows, oldest first."""
    return [s.revision for s in reversed(list(_script().walk_revisions()))]


def current_revision(connection: Connection) -> str | None:
    """The database's revision, or None when it has none (an empty database or another program's)."""
    return MigrationContext.configure(connection).get_current_revision()


def check_revision(connection: Connection, where: str, path: Path | None = None) -> str | None:
    """The database's revision after checking this program can use it.

    Raises SchemaVersionError for an unknown (newer) revision and NotAProjectError for a database that
    holds tables but no DeepMark revision; both name ``where`` (``path``: the SQLite file, None on a server).
    """
    revision = current_revision(connection)
    if revision is None:
        tables = set(inspect(connection).get_table_names())
        if tables - {"alembic_version"}:
            raise NotAProjectError(
                f"{where}: holds other tables ({', '.join(sorted(tables)[:5])}) but is not a DeepMark project",
                path=path,
            )
        return None
    if revision not in known_revisions():
        raise SchemaVersionError(
            f"{where}: written by a newer DeepMark Studio (schema revision {revision!r}; this version knows "
            f"up to {head_revision()!r}). Upgrade DeepMark Studio to open it; the project was not changed.",
            path=path,
        )
    return revision


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the schema to ``revision`` inside the connection's transaction."""
    command.upgrade(alembic_config(connection), revision)


def make_revision(message: str, url: str) -> None:
    """Autogenerate a new revision file from the difference between ``models.py`` and the database at
    ``url`` (which must be at head). Developer tool; review the generated file before committing."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as connection:
        number = len(known_revisions()) + 1
        command.revision(alembic_config(connection), message=message, autogenerate=True,
                         rev_id=f"{number:04d}")
    engine.dispose()
