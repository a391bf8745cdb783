"""Schema: Alembic migrations agree with the models, SQLite settings, versions refused, the log append-only."""

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from deepmark.core.store import NotAProjectError, Project, SchemaVersionError, StoreError
from deepmark.core.store.models import Base
from deepmark.core.store.schema import head_revision, known_revisions


def test_migrations_create_exactly_the_models(project):
    def diff(session):
        context = MigrationContext.configure(session.connection(), opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)
    assert project.read(diff) == []
    assert project.schema_revision() == head_revision() == known_revisions()[-1]


def test_sqlite_uses_wal_and_foreign_keys(sqlite_project):
    def pragmas(session):
        conn = session.connection()
        return (conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                conn.exec_driver_sql("PRAGMA foreign_keys").scalar())
    assert sqlite_project.read(pragmas) == ("wal", 1)
    assert sqlite_project.write(pragmas) == ("wal", 1)


def test_project_reopens_with_its_root(tmp_path):
    path = tmp_path / "sub" / "p.deepmark"
    Project.create(path, root=tmp_path / "images").close()
    with Project.open(path) as project:
        assert project.root == (tmp_path / "images").resolve()
        assert project.relative_path(tmp_path / "images" / "a" / "1.jpg") == "a/1.jpg"
        assert project.relative_path("/elsewhere/2.jpg") == "/elsewhere/2.jpg"
    with Project.open(path, root=tmp_path) as project:
        assert project.root == tmp_path.resolve()


def test_creating_twice_is_refused(project_url, tmp_path):
    Project.create(project_url, root=tmp_path).close()
    with pytest.raises(StoreError, match="already"):
        Project.create(project_url, root=tmp_path)
    Project.create(project_url, exist_ok=True).close()


def test_newer_schema_is_refused_untouched(project_url, tmp_path):
    Project.create(project_url, root=tmp_path).close()
    url = project_url if "://" in project_url else f"sqlite:///{project_url}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaVersionError, match=r"newer DeepMark Studio \(schema revision '9999'.*Upgrade"):
        Project.open(project_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999"
    engine.dispose()


def test_other_files_are_not_projects(tmp_path):
    with pytest.raises(NotAProjectError, match="no such project file"):
        Project.open(tmp_path / "missing.deepmark")
    junk = tmp_path / "junk.deepmark"
    junk.write_text("hello, not a database")
    with pytest.raises(NotAProjectError, match="not a SQLite database"):
        Project.open(junk)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE things (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(NotAProjectError, match="other tables"):
        Project.open(other, create=True)
    with pytest.raises(NotAProjectError, match="is a folder"):
        Project.open(tmp_path)


def test_edit_log_is_append_only(project, df2):
    image = project.images.add(df2 / "train" / "image" / "000001.jpg")
    project.images.set_status(image.id, "in_review")
    for statement in ("UPDATE edits SET author = 'mallory'", "DELETE FROM edits"):
        with pytest.raises(DBAPIError, match="append-only"):
            project.write(lambda s, sql=statement: s.execute(text(sql)))
    assert [e.author for e in project.history.for_image(image.id)] == [project.author]


def test_downgrade_and_upgrade_round_trip(tmp_path):
    from deepmark.core.store import schema

    path = tmp_path / "p.deepmark"
    Project.create(path).close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        schema.upgrade(conn, "head")  # already there: no-op
        from alembic import command
        command.downgrade(schema.alembic_config(conn), "base")
    with engine.connect() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert names <= {"alembic_version"}
    engine.dispose()
    with Project.open(path, create=True) as project:
        assert project.schema_revision() == head_revision()


def test_postgres_fixture_explains_why_it_skips(monkeypatch):
    import store_pg

    monkeypatch.delenv("DEEPMARK_TEST_POSTGRES_URL", raising=False)
    monkeypatch.setattr(store_pg, "find_binaries", lambda: None)
    reason = store_pg.start_server()
    assert isinstance(reason, str) and "initdb" in reason and ".ci/postgres.sh" in reason


def test_a_project_of_the_first_schema_is_upgraded_on_open(project_url, tmp_path):
    """Schema 0001 (before the 'no garments' mark): opened by this version, upgraded in place, data kept."""
    from alembic import command
    from PIL import Image as PILImage

    from deepmark.core.store.schema import alembic_config

    PILImage.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    with Project.create(project_url, root=tmp_path) as project:
        image_id = project.images.add(tmp_path / "a.jpg", status="accepted").id
    url = project_url if "://" in project_url else f"sqlite:///{project_url}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001")
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    engine.dispose()
    with Project.open(project_url) as project:
        assert project.schema_revision() == head_revision()
        image = project.images.get(image_id)
        assert image.status == "accepted" and image.no_garments is False
