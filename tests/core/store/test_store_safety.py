"""Safety: a child process killed (SIGKILL) inside an import or an edit transaction leaves a consistent
database that lost only the unfinished work; a locked database is retried, then reported."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from deepmark.core.store import DatabaseLockedError, ItemData, Project
from deepmark.core.store.interchange import import_df2

IMPORT_CHILD = """
import sys, time
from deepmark.core.store import interchange
from deepmark.core.store import Project
original, calls = interchange._write_annotated, [0]
def slow(session, batch, status, run):
    counts = original(session, batch, status, run)   # rows written, transaction still open
    calls[0] += 1
    if calls[0] == 3:
        print("IN-TRANSACTION", flush=True)
        time.sleep(120)
    return counts
interchange._write_annotated = slow
interchange.import_df2(Project.open(sys.argv[1]), sys.argv[2], batch_size=4)
"""

EDIT_CHILD = """
import sys, time
from deepmark.core.store import Project, annotations
original, calls = annotations.log_edit, [0]
def slow(session, **entry):
    calls[0] += 1
    if calls[0] == 6:                                 # landmark 5 already updated, not committed
        print("IN-EDIT", flush=True)
        time.sleep(120)
    return original(session, **entry)
annotations.log_edit = slow
project = Project.open(sys.argv[1])
for i in range(10):
    project.annotations.set_landmark(int(sys.argv[2]), i, x=1000.0 + i, y=2000.0 + i)
    print("DONE", i, flush=True)
"""


def _run_and_kill(code: str, args: list[str], marker: str) -> list[str]:
    """Run ``code`` in a child Python, SIGKILL it when it prints ``marker``; the lines it printed."""
    child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    deadline = time.monotonic() + 60
    try:
        for line in child.stdout:
            lines.append(line.strip())
            if line.strip() == marker:
                break
            assert time.monotonic() < deadline, "child never reached the kill point"
        assert lines and lines[-1] == marker, f"child ended early: {lines}"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return lines


def _check_consistent(path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_import_killed_mid_transaction_keeps_whole_images_and_resumes(tmp_path, df2):
    path = tmp_path / "p.deepmark"
    Project.create(path, root=tmp_path).close()
    _run_and_kill(IMPORT_CHILD, [str(path), str(df2)], "IN-TRANSACTION")
    _check_consistent(path)
    with Project.open(path) as project:
        images = project.images.page(limit=100)
        assert len(images) == 8  # two committed batches of 4; the third rolled back
        for image in images:
            doc = json.loads((tmp_path / image.path.replace("/image/", "/annos/")).with_suffix(".json").read_text())
            assert len(project.annotations.for_image(image.id)) == sum(k.startswith("item") for k in doc)
        report = import_df2(project, df2)
        assert (report.images_added, report.unchanged) == (8, 8)


def test_edit_killed_mid_transaction_loses_only_that_edit(tmp_path, df2):
    path = tmp_path / "p.deepmark"
    with Project.create(path, root=tmp_path) as project:
        image = project.images.add(df2 / "train" / "image" / "000001.jpg")
        landmarks = np.column_stack([np.arange(25.0), np.arange(25.0), np.full(25, 2.0)])
        added = project.annotations.add_item(image.id, ItemData(category_id=1, box=np.array([0, 0, 90, 90.0]),
                                                                landmarks=landmarks))
    lines = _run_and_kill(EDIT_CHILD, [str(path), str(added.annotation_id)], "IN-EDIT")
    assert lines[:-1] == [f"DONE {i}" for i in range(5)]
    _check_consistent(path)
    with Project.open(path) as project:
        item = project.annotations.get(added.annotation_id)
        assert item.landmarks[:5, 0].tolist() == [1000.0 + i for i in range(5)]
        assert item.landmarks[5:, 0].tolist() == landmarks[5:, 0].tolist()
        assert project.images.get(image.id).version == added.image_version + 5
        history = project.history.for_image(image.id)
        assert [e.action for e in history] == ["add_item"] + ["set_landmark"] * 5
        project.history.undo(image.id)
        assert project.annotations.get(added.annotation_id).landmarks[4, 0] == 4.0


class _Locker:
    """Holds the write lock of a project's database from another connection until released."""

    def __init__(self, backend: str, url: str, image_id: int) -> None:
        if backend == "sqlite":
            self.conn = sqlite3.connect(url, isolation_level=None, check_same_thread=False)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            self.conn.execute("SELECT id FROM images WHERE id = %s FOR UPDATE", (image_id,))

    def release(self) -> None:
        self.conn.rollback() if hasattr(self.conn, "info") else self.conn.execute("ROLLBACK")
        self.conn.close()


def test_locked_database_is_retried_then_reported(backend, project_url, project, df2):
    image = project.images.add(df2 / "train" / "image" / "000001.jpg")
    with Project.open(project_url, lock_timeout_s=0.6) as impatient:
        locker = _Locker(backend, project_url, image.id)
        started = time.monotonic()
        try:
            with pytest.raises(DatabaseLockedError, match="locked by another program or annotator; gave up"):
                impatient.images.set_status(image.id, "in_review")
        finally:
            locker.release()
        assert time.monotonic() - started < 5
        assert impatient.images.get(image.id).status == "new"
    with Project.open(project_url, lock_timeout_s=10) as patient:
        locker = _Locker(backend, project_url, image.id)
        threading.Timer(0.5, locker.release).start()
        patient.images.set_status(image.id, "in_review")
        assert patient.images.get(image.id).status == "in_review"
