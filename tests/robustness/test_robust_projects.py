"""Projects that are damaged, read-only, half-imported or half-exported (issue 12, points 4-7).

- a damaged project (a table or column of its revision missing, the version row missing or doubled) is
  refused at open with one named error, through the API, the CLI and the app, and the file is not touched;
  opening a healthy project writes nothing;
- a project that can only be read (a read-only medium, file or folder; a read-only PostgreSQL database)
  is readable (status, export, browsing) and every edit is refused with ``ReadOnlyProjectError`` naming it;
- a predictions import killed (SIGKILL) at any moment, then run again, or run twice, ends with one
  completed model run holding each prediction once;
- an export killed at any moment leaves no staging folder behind once the next export has run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "store"))


from deepmark.core.domain.structures import Detection, PostprocessParams  # noqa: E402
from deepmark.core.formats.df2 import write_df2_predictions  # noqa: E402
from deepmark.core.store import (  # noqa: E402
    NotAProjectError,
    Project,
    SchemaVersionError,
    project_status,
)
from deepmark.core.store.errors import DamagedProjectError, ReadOnlyProjectError  # noqa: E402
from deepmark.core.store.interchange import (  # noqa: E402
    export_dataset,
    import_df2,
    import_images,
    import_predictions,
)
from deepmark.core.store.models import Base  # noqa: E402
from deepmark.core.store.schema import alembic_config, head_revision  # noqa: E402
from deepmark.core.synthetic import SynthConfig, generate_dataset  # noqa: E402

TABLES = sorted(t.name for t in Base.metadata.sorted_tables)
DETECTIONS_PER_IMAGE = 3


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def df2_master(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("df2-master")
    generate_dataset(root / "train", 12, seed=5, config=SynthConfig(image_size=(96, 96), max_items=2))
    return root


@pytest.fixture
def df2(df2_master, tmp_path) -> Path:
    target = tmp_path / "df2"
    shutil.copytree(df2_master, target)
    return target


@pytest.fixture(params=("sqlite", "postgresql"))
def project_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "p.deepmark")
    return request.getfixturevalue("pg_server").new_database()


def _engine(url: str):
    return create_engine(url if "://" in url else f"sqlite:///{url}")


def _downgrade(url: str, revision: str) -> None:
    """Take a project back to an older schema revision, as an older DeepMark Studio left it."""
    from alembic import command

    engine = _engine(url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)
    engine.dispose()


def _fingerprint(url: str) -> tuple:
    """What must not change when a project is only opened: a SQLite file's bytes, modification time and
    journal files with content; a server database's tables, columns, version rows and row counts."""
    if "://" not in url:
        path = Path(url)
        journals = [p.name for p in path.parent.glob(path.name + "-*") if p.stat().st_size > 0
                    and not p.name.endswith("-shm")]
        return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns, journals
    engine = _engine(url)
    with engine.connect() as conn:
        columns = conn.execute(text("SELECT table_name, column_name FROM information_schema.columns "
                                    "WHERE table_schema = 'public' ORDER BY 1, 2")).all()
        versions = conn.execute(text("SELECT version_num FROM alembic_version ORDER BY 1")).scalars().all() \
            if any(t == "alembic_version" for t, _ in columns) else []
        counts = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar()
                  for t in sorted({t for t, _ in columns})}
    engine.dispose()
    return tuple(columns), tuple(versions), tuple(counts.items())


def _filled_project(url: str, root: Path, df2: Path) -> None:
    with Project.create(url, root=root) as project:
        import_df2(project, df2, status="accepted")


@contextlib.contextmanager
def _unwritable(folder: Path):
    """Make ``folder`` (and what it holds) read-only to this process, as really as the machine allows: a
    read-only bind mount where we are root (root writes any file whatever its mode), else permissions."""
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"running as root and cannot bind-mount a read-only folder: {mounted.stderr.strip()}")
        try:
            remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True,
                                     text=True)
            if remount.returncode != 0:
                pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
            yield "it lies on a read-only medium"
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
    for path in modes:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield "the file is read-only"
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


# ---------------------------------------------------------------------------------------------
# point 4: damaged projects


def _drop_table(conn, table: str) -> None:
    conn.execute(text(f'DROP TABLE "{table}"' + (" CASCADE" if conn.dialect.name == "postgresql" else "")))


def _drop_column(conn, table: str, column: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text(f'ALTER TABLE "{table}" DROP COLUMN "{column}" CASCADE'))
        return
    # SQLite drops only unconstrained columns in place: rebuild the table without it (foreign keys are off
    # on this plain connection, so nothing cascades)
    keep = [c.name for c in Base.metadata.tables[table].columns if c.name != column]
    names = ", ".join(f'"{c}"' for c in keep)
    conn.execute(text(f'CREATE TABLE "_damaged" AS SELECT {names} FROM "{table}"'))
    conn.execute(text(f'DROP TABLE "{table}"'))
    conn.execute(text(f'ALTER TABLE "_damaged" RENAME TO "{table}"'))


DAMAGE = {
    **{f"no table {t}": (lambda conn, t=t: _drop_table(conn, t), f"table {t}") for t in TABLES},
    **{f"no column {t}.{c}": (lambda conn, t=t, c=c: _drop_column(conn, t, c), f"column {t}.{c}")
       for t in TABLES for c in [list(Base.metadata.tables[t].columns)[-1].name]},
    "two version rows": (lambda conn: conn.execute(text("INSERT INTO alembic_version VALUES ('0001')")),
                         "2 schema version rows"),
    "no version row": (lambda conn: conn.execute(text("DELETE FROM alembic_version")),
                       "schema version row is missing"),
}
PG_DAMAGE = ("no table images", "no column model_runs.completed_at", "no column landmarks.y0", "two version rows",
             "no version row")


def _damage(url: str, how: str) -> None:
    engine = _engine(url)
    with engine.begin() as conn:
        DAMAGE[how][0](conn)
    engine.dispose()


def test_every_kind_of_damage_is_refused_untouched(tmp_path, df2):
    """Each table missing, a column of each table missing, the version row doubled or missing: one named
    error, and the project file is exactly as it was."""
    healthy = tmp_path / "healthy.deepmark"
    _filled_project(str(healthy), tmp_path, df2)
    for how, (_, named) in DAMAGE.items():
        path = tmp_path / f"{how.replace(' ', '_')}.deepmark"
        shutil.copy(healthy, path)
        _damage(str(path), how)
        before = _fingerprint(str(path))
        with pytest.raises(DamagedProjectError) as caught:
            Project.open(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: damaged project") and named in message and "\n" not in message, how
        assert caught.value.path == path
        assert _fingerprint(str(path)) == before, f"{how}: opening changed the file"


def test_damage_is_refused_on_postgresql_too(pg_server, tmp_path, df2):
    for how in PG_DAMAGE:
        url = pg_server.new_database()
        _filled_project(url, tmp_path, df2)
        _damage(url, how)
        before = _fingerprint(url)
        with pytest.raises(DamagedProjectError, match=DAMAGE[how][1]):
            Project.open(url)
        assert _fingerprint(url) == before, how


def test_a_damaged_old_project_is_refused_before_its_upgrade(project_url, tmp_path, df2):
    """A healthy older project is upgraded on open (a legitimate upgrade); a damaged one is refused first."""
    from alembic import command

    _filled_project(project_url, tmp_path, df2)
    engine = _engine(project_url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
        _drop_table(conn, "presets")
    before = _fingerprint(project_url)
    with pytest.raises(DamagedProjectError, match="schema 0002 without table presets"):
        Project.open(project_url)
    assert _fingerprint(project_url) == before
    engine.dispose()


def test_a_healthy_old_project_is_upgraded_and_its_runs_count_as_finished(project_url, tmp_path, df2):

    with Project.create(project_url, root=tmp_path) as project:
        import_df2(project, df2)
        run = project.model_runs.add("before 0003")
    _downgrade(project_url, "0002")
    with Project.open(project_url) as project:
        assert project.schema_revision() == head_revision()
        (old,) = project.model_runs.list()
        assert old.id == run.id and old.completed and old.source_key is None
        assert project.images.count() == 12


def test_a_project_before_extra_keys_is_upgraded_and_its_edits_still_undo(project_url, tmp_path, df2):
    """Revision 0004 adds ``annotations.extra`` in place: a 0003 project opens upgraded, its items without
    extra keys, and an edit logged before the upgrade can still be undone."""

    with Project.create(project_url, root=tmp_path) as project:
        import_df2(project, df2)
        image = project.images.page(limit=1)[0]
        item = project.annotations.for_image(image.id)[0]
        project.annotations.set_box(item.id, (item.box + [0, 0, -1, -1]).tolist())
        project.annotations.delete_item(item.id)
    _downgrade(project_url, "0003")
    with Project.open(project_url) as project:
        assert project.schema_revision() == head_revision()
        assert all(i.extra is None for i in project.annotations.for_image(image.id))
        project.history.undo(image.id)  # the deletion
        project.history.undo(image.id)  # the box
        back = project.annotations.get(item.id)
        assert back.extra is None and back.box.tolist() == item.box.tolist()


def test_opening_a_healthy_project_writes_nothing(tmp_path, df2):
    path = tmp_path / "p.deepmark"
    _filled_project(str(path), tmp_path, df2)
    before = _fingerprint(str(path))
    time.sleep(0.02)  # a write would move the modification time
    with Project.open(path) as project:
        assert project.read_only is None
        assert project_status(project).images == 12
        export_dataset(project, tmp_path / "export", images="none")
    assert _fingerprint(str(path)) == before
    assert not path.with_name(path.name + "-journal").exists()


def test_unknown_revision_and_other_files_keep_their_own_errors(tmp_path):
    path = tmp_path / "p.deepmark"
    Project.create(path).close()
    engine = _engine(str(path))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="newer DeepMark Studio"):
        Project.open(path)
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE images (id INTEGER)")  # one name in common is not a damaged project
        conn.commit()
    with pytest.raises(NotAProjectError, match="other tables"):
        Project.open(other)


def test_cli_names_the_damaged_project(tmp_path, df2):
    path = tmp_path / "p.deepmark"
    _filled_project(str(path), tmp_path, df2)
    _damage(str(path), "no column images.no_garments")
    for command in (["status"], ["project", "info"], ["export", str(tmp_path / "out")]):
        done = _cli(*command, "--project", str(path))
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert lines == [f"error: {path}: damaged project (schema {head_revision()} without column "
                         "images.no_garments); refused and left unchanged (restore it from a backup)"]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# point 5: read-only projects


def _edits(project: Project, df2: Path) -> dict:
    """One write of each kind (the import: an image the project lacks)."""
    new_image = df2.parent / "new.jpg"
    shutil.copy(next((df2 / "train" / "image").glob("*.jpg")), new_image)
    image = project.images.page(limit=1)[0]
    item = project.annotations.for_image(image.id)[0]
    return {
        "status": lambda: project.images.set_status(image.id, "rejected"),
        "landmark": lambda: project.annotations.set_landmark(item.id, 0, x=1.0, y=1.0),
        "delete item": lambda: project.annotations.delete_item(item.id),
        "setting": lambda: project.set_setting("x", "y"),
        "model run": lambda: project.model_runs.add("run"),
        "import": lambda: import_images(project, [new_image]),
    }


def test_a_read_only_project_is_readable_and_refuses_every_edit(tmp_path, df2):
    media = tmp_path / "media"
    media.mkdir()
    path = media / "p.deepmark"
    _filled_project(str(path), tmp_path, df2)
    before = _fingerprint(str(path))
    with _unwritable(media) as reason:
        with Project.open(path, root=tmp_path) as project:
            assert project.read_only == reason
            status = project_status(project)
            assert status.images == 12 and status.images_by_status["accepted"] == 12
            report = export_dataset(project, tmp_path / "export", val_fraction=0.25)
            assert sum(report.images.values()) == 12 and not report.errors
            for what, edit in _edits(project, df2).items():
                with pytest.raises(ReadOnlyProjectError, match=f"^{path}: not saved: .*{reason}") as caught:
                    edit()
                assert caught.value.path == path, what
            assert project_status(project) == status
        assert _fingerprint(str(path)) == before


@pytest.mark.parametrize("revision", ["0002", "0003"])
def test_a_read_only_project_that_needs_an_upgrade_says_so_untouched(tmp_path, df2, revision):

    media = tmp_path / "media"
    media.mkdir()
    path = media / "p.deepmark"
    _filled_project(str(path), tmp_path, df2)
    _downgrade(str(path), revision)
    before = _fingerprint(str(path))
    with _unwritable(media) as reason:
        with pytest.raises(ReadOnlyProjectError, match=f"^{path}: needs an upgrade from schema {revision} to "
                                                        f"{head_revision()}, but can only be read here \\({reason}"):
            Project.open(path)
    assert _fingerprint(str(path)) == before


def test_cli_reads_a_read_only_project_and_refuses_an_import(tmp_path, df2):
    media = tmp_path / "media"
    media.mkdir()
    path = media / "p.deepmark"
    _filled_project(str(path), tmp_path, df2)
    with _unwritable(media):
        done = _cli("status", "--json", "--project", str(path))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["images"] == 12
        done = _cli("export", str(tmp_path / "export"), "--quiet", "--project", str(path), "--root", str(tmp_path))
        assert done.returncode == 0, done.stderr
        assert len(list((tmp_path / "export").glob("*/annos/*.json"))) == 12
        done = _cli("import", str(df2), "--quiet", "--project", str(path))
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line, no traceback
        assert done.stderr.startswith(f"error: {path}: not saved: the project can only be read")


def test_a_read_only_postgresql_database_is_readable_and_refuses_edits(pg_server, tmp_path, df2):
    url = pg_server.new_database()
    _filled_project(url, tmp_path, df2)
    engine = _engine(url)
    name = url.rsplit("/", 1)[-1]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    engine.dispose()
    with Project.open(url) as project:
        assert project_status(project).images == 12
        assert sum(export_dataset(project, tmp_path / "export").images.values()) == 12
        for what, edit in _edits(project, df2).items():
            with pytest.raises(ReadOnlyProjectError, match="can only be read here .*read-only transaction"):
                edit()
            assert project_status(project).images_by_status["accepted"] == 12, what


# ---------------------------------------------------------------------------------------------
# the app: a damaged project keeps the previous one open; a read-only one is browsed, edits refused


@pytest.fixture
def app_window(qtbot, tmp_path_factory, monkeypatch):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from deepmark.app.window import MainWindow
    from deepmark.core.studio.cache import CACHE_ENV

    settings = tmp_path_factory.mktemp("settings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(settings))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
    window = MainWindow(PostprocessParams.all_techniques(), background_network=False)
    window.remember_settings = False
    qtbot.addWidget(window)
    window.show()
    return window


def test_app_keeps_the_open_project_when_another_is_damaged(app_window, tmp_path, df2):
    from deepmark.app.menus import open_project_file

    good, bad = tmp_path / "good.deepmark", tmp_path / "bad.deepmark"
    _filled_project(str(good), tmp_path, df2)
    shutil.copy(good, bad)
    _damage(str(bad), "two version rows")
    open_project_file(app_window, str(good), create=False)
    kept = app_window.session.project
    assert kept is not None and kept.file == good
    before = _fingerprint(str(bad))
    open_project_file(app_window, str(bad), create=False)
    assert app_window.session.project is kept and kept.images.count() == 12  # still open, still usable
    shown = app_window.last_message_box.text()
    assert shown.startswith(f"{bad}: damaged project (2 schema version rows")
    assert _fingerprint(str(bad)) == before


def test_app_browses_a_read_only_project_and_shows_refused_edits(app_window, tmp_path, df2, qtbot):
    from deepmark.app.menus import open_project_file

    media = tmp_path / "media"
    media.mkdir()
    path = media / "p.deepmark"
    _filled_project(str(path), tmp_path, df2)
    with _unwritable(media) as reason:
        open_project_file(app_window, str(path), create=False)
        project = app_window.session.project
        assert project is not None and project.read_only == reason
        assert reason in app_window.statusBar().currentMessage()
        first = project.images.page(limit=1)[0]
        app_window.session.show_image(first)
        assert app_window.session.items  # browsing: the stored items are shown
        app_window.set_status("rejected", advance=False)  # an edit: refused through the edit-refused path
        message = app_window.statusBar().currentMessage()
        assert "not saved" in message and str(path) in message and reason in message
        assert project.images.get(first.id).status == "accepted"
        assert app_window.undo_stack.count() == 0
        app_window.session.close_project()


# ---------------------------------------------------------------------------------------------
# point 6: a predictions import killed at any moment, then run again


def _prediction_folder(df2: Path, out: Path) -> int:
    """``deepmark predict``-style output for the 12 images (3 detections each); the predictions count."""
    out.mkdir()
    rng = np.random.default_rng(1)
    for image in sorted((df2 / "train" / "image").glob("*.jpg")):
        dets = [Detection(9, s, s, np.array([5.0, 5.0, 60.0, 70.0]),
                          np.column_stack([rng.uniform(5, 60, (8, 2)), rng.uniform(0, 1, 8)]), np.ones(8, bool))
                for s in (0.9, 0.6, 0.1)[:DETECTIONS_PER_IMAGE]]
        write_df2_predictions(out / f"{image.stem}.json", dets, image_file=image.name)
    return 12 * DETECTIONS_PER_IMAGE


IMPORT_CHILD = """
import sys, time
from deepmark.core.store import interchange, Project
moment = sys.argv[3]
def pause(name):
    if name == moment:
        print("KILL-ME", flush=True)
        time.sleep(120)
run_of, write, complete = interchange._source_run, interchange._write_predictions, interchange.complete_run
def source_run(*a, **k):
    run_id = run_of(*a, **k)
    pause("after the run row")
    return run_id
calls = [0]
def write_predictions(*a, **k):
    counts = write(*a, **k)                  # rows written, transaction still open
    calls[0] += 1
    pause(f"inside batch {calls[0]}")
    return counts
def complete_run(*a, **k):
    pause("before completion")
    return complete(*a, **k)
interchange._source_run, interchange._write_predictions = source_run, write_predictions
interchange.complete_run = complete_run
progress = lambda done, total: pause(f"after {done} of {total}")
interchange.import_predictions(Project.open(sys.argv[1]), sys.argv[2], run_name="killed", batch_size=3,
                               images_dir=sys.argv[4], progress=progress)
"""
MOMENTS = ("after the run row", "inside batch 1", "after 3 of 12", "inside batch 3", "after 9 of 12",
           "inside batch 4", "before completion")


def _run_and_kill(code: str, args: list[str]) -> None:
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = child.stdout.readline().strip()
        assert line == "KILL-ME", f"child never reached the kill point: {line!r} {child.stderr.read()[-2000:]}"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def _check_once(project: Project, total: int, run_id: int) -> None:
    """One completed run holding each prediction once; each image seeded once (its confident predictions)."""
    runs = project.model_runs.list()
    assert [(r.id, r.completed) for r in runs] == [(run_id, True)]
    assert project.predictions.count() == project.predictions.count(run_id) == total
    for image in project.images.page(limit=100):
        predictions = project.predictions.for_image(image.id)
        assert [p.item_index for p in predictions] == list(range(DETECTIONS_PER_IMAGE))
        assert len(project.annotations.for_image(image.id)) == 2  # the 0.9 and 0.6 ones, not twice
    assert project_status(project).unfinished_runs == 0


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_killed_prediction_import_run_again_holds_each_prediction_once(moment, tmp_path, df2):
    path = tmp_path / "p.deepmark"
    Project.create(path, root=tmp_path).close()
    total = _prediction_folder(df2, tmp_path / "pred")
    _run_and_kill(IMPORT_CHILD, [str(path), str(tmp_path / "pred"), moment, str(df2 / "train" / "image")])
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Project.open(path) as project:
        runs = project.model_runs.list()
        assert len(runs) <= 1 and not any(r.completed for r in runs)  # never offered as finished
        assert project.model_runs.list(unfinished=False) == []
        if runs:
            assert project_status(project).unfinished_runs == 1
            assert "unfinished" in project_status(project).table()
        report = import_predictions(project, tmp_path / "pred", run_name="again", batch_size=5,
                                    images_dir=df2 / "train" / "image")
        assert not report.errors
        assert report.predictions_added + report.unchanged * DETECTIONS_PER_IMAGE == total
        _check_once(project, total, report.model_run_id)
        assert project.model_runs.get(report.model_run_id).name == ("killed" if runs else "again")


def test_a_prediction_source_imported_twice_is_one_run(project_url, tmp_path, df2):
    total = _prediction_folder(df2, tmp_path / "pred")
    with Project.create(project_url, root=tmp_path) as project:
        first = import_predictions(project, tmp_path / "pred", images_dir=df2 / "train" / "image")
        assert (first.predictions_added, first.images_added) == (total, 12)
        moved = tmp_path / "moved"
        shutil.copytree(tmp_path / "pred", moved)  # the same predictions elsewhere are the same source
        for source in (tmp_path / "pred", moved):
            again = import_predictions(project, source)
            assert (again.model_run_id, again.predictions_added, again.unchanged) == (first.model_run_id, 0, 12)
        _check_once(project, total, first.model_run_id)
        # a changed source is another run
        (moved / sorted(p.name for p in moved.iterdir())[0]).unlink()
        other = import_predictions(project, moved)
        assert other.model_run_id != first.model_run_id and other.predictions_added == total - DETECTIONS_PER_IMAGE


# ---------------------------------------------------------------------------------------------
# point 7: interrupted exports leave no staging folders


EXPORT_CHILD = """
import sys, time
from deepmark.core.store import Project
from deepmark.core.store.interchange import export_dataset
from deepmark.core.store import exporting
at = sys.argv[3]
def progress(done, total):
    if at == f"image {done}":
        print("KILL-ME", flush=True)
        time.sleep(120)
swap = exporting._swap_in
def swap_in(staging, out):
    if at == "swap":
        old = out.parent / f".{out.name}.old-{exporting.os.getpid()}"
        exporting.os.replace(out, old)   # the previous export set aside, the new one not yet in place
        print("KILL-ME", flush=True)
        time.sleep(120)
    return swap(staging, out)
exporting._swap_in = swap_in
export_dataset(Project.open(sys.argv[1]), sys.argv[2], images="copy", overwrite=True, progress=progress)
"""


@pytest.mark.parametrize("moment", ["image 0", "image 7", "swap"])
def test_a_killed_export_leaves_no_staging_folder_after_the_next(moment, tmp_path, df2):
    path = tmp_path / "p.deepmark"
    _filled_project(str(path), tmp_path, df2)
    out = tmp_path / "exports" / "set"
    with Project.open(path) as project:
        export_dataset(project, out, val_fraction=0.25)  # a previous export, to be replaced
    previous = sorted(p.relative_to(out) for p in out.rglob("*"))
    _run_and_kill(EXPORT_CHILD, [str(path), str(out), moment])
    left = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    assert left, "the kill should have left a staging folder"
    if moment == "swap":
        assert not out.exists()
    with Project.open(path) as project:
        if moment == "swap":  # the set-aside export comes back; without --overwrite it is kept
            with pytest.raises(Exception, match="not empty"):
                export_dataset(project, out)
            assert sorted(p.relative_to(out) for p in out.rglob("*")) == previous
        report = export_dataset(project, out, val_fraction=0.25, overwrite=True)
    assert sum(report.images.values()) == 12
    assert [p.name for p in out.parent.iterdir()] == ["set"]
    assert len(list(out.glob("*/annos/*.json"))) == 12
