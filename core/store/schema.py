"""Schema versions through Alembic, configured in code (no alembic.ini; works from an installed package).

A project records its Alembic revision in ``alembic_version``. Opening one whose revision this program
does not know means a newer DeepMark Studio wrote it: it is refused, untouched (``SchemaVersionError``).
An older revision is upgraded in one transaction.

Before anything is written, the database is also compared with what its revision promises: exactly one
version row, and every table and column of that revision (the ORM models for the newest one; for an older
one, the schema its migrations build, made once in an in-memory SQLite database). A project that fails is
damaged (``DamagedProjectError``): refused, untouched, whatever its revision. Extra tables, columns or
indexes are not damage (a later revision, or someone's own additions, may hold them).

For developers, a new revision after changing ``models.py``::

    python -c "from deepmark.core.store.schema import make_revision; make_revision('what changed', 'sqlite:///x.deepmark')"
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, text

from deepmark.core.store.errors import DamagedProjectError, NotAProjectError, SchemaVersionError

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


def version_rows(connection: Connection) -> list[str]:
    """Every row of ``alembic_version`` (empty when the table is absent): one in a healthy project."""
    if not inspect(connection).has_table("alembic_version"):
        return []
    return [str(v) for v in connection.execute(text("SELECT version_num FROM alembic_version")).scalars()]


@cache
def expected_columns(revision: str) -> dict[str, frozenset[str]]:
    """Table name → column names a project at ``revision`` must hold (without ``alembic_version``)."""
    if revision == head_revision():
        from deepmark.core.store.models import Base

        return {t.name: frozenset(c.name for c in t.columns) for t in Base.metadata.sorted_tables}
    # an older revision: what its migrations build (the models describe only the newest)
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            upgrade(connection, revision)
            inspector = inspect(connection)
            return {t: frozenset(c["name"] for c in inspector.get_columns(t))
                    for t in inspector.get_table_names() if t != "alembic_version"}
    finally:
        engine.dispose()


def missing_parts(connection: Connection, revision: str) -> list[str]:
    """The tables and columns of ``revision`` the database lacks ('table edits', 'column images.status')."""
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    expected = expected_columns(revision)
    have = {key[1]: {c["name"] for c in columns}
            for key, columns in inspector.get_multi_columns(filter_names=sorted(present & set(expected))).items()}
    missing = [f"table {t}" for t in sorted(set(expected) - present)]
    for table in sorted(set(expected) & present):
        missing += [f"column {table}.{c}" for c in sorted(expected[table] - have.get(table, set()))]
    return missing


def _damaged(where: str, path: Path | None, problem: str) -> DamagedProjectError:
    return DamagedProjectError(f"{where}: damaged project ({problem}); refused and left unchanged (restore it "
                               "from a backup)", path=path)


def check_revision(connection: Connection, where: str, path: Path | None = None) -> str | None:
    """The database's revision after checking this program can use it, writing nothing.

    Raises SchemaVersionError for an unknown (newer) revision, NotAProjectError for a database that holds
    tables but no DeepMark revision, and DamagedProjectError for several version rows, or DeepMark tables
    without one, or a table or column missing for the revision; each names ``where`` (``path``: the SQLite
    file, None on a server).
    """
    rows = version_rows(connection)
    if not rows:
        tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
        ours = tables & set(expected_columns(head_revision()))
        if len(ours) * 2 > len(expected_columns(head_revision())):  # mostly DeepMark's tables: one of ours
            raise _damaged(where, path, "its tables are there but the schema version row is missing")
        if tables:
            raise NotAProjectError(
                f"{where}: holds other tables ({', '.join(sorted(tables)[:5])}) but is not a DeepMark project",
                path=path,
            )
        return None
    if len(rows) > 1:
        raise _damaged(where, path, f"{len(rows)} schema version rows ({', '.join(rows)}) where there is one")
    revision = rows[0]
    if revision not in known_revisions():
        raise SchemaVersionError(
            f"{where}: written by a newer DeepMark Studio (schema revision {revision!r}; this version knows "
            f"up to {head_revision()!r}). Upgrade DeepMark Studio to open it; the project was not changed.",
            path=path,
        )
    missing = missing_parts(connection, revision)
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise _damaged(where, path, f"schema {revision} without {shown}")
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
