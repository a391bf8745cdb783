"""A label is never written or shown wrong without a word: two annotators on one project file never
overwrite each other, and a write the store refuses never looks saved (issue 11, points 1 and 2).
Driven as users do: mouse drags on the canvas and the review keys."""

import os
import stat

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from deepmark.core.store import Project

LEFT = Qt.MouseButton.LeftButton


def _send(view, kind, scene_pos: QPointF, buttons) -> None:
    viewport = view.viewport()
    pos = QPointF(view.mapFromScene(scene_pos))
    QApplication.sendEvent(viewport, QMouseEvent(kind, pos, viewport.mapToGlobal(pos), LEFT, buttons,
                                                 Qt.KeyboardModifier.NoModifier))


def _drag(view, start: QPointF, end: QPointF) -> None:
    _send(view, QEvent.Type.MouseButtonPress, start, LEFT)
    _send(view, QEvent.Type.MouseMove, (start + end) / 2, LEFT)
    _send(view, QEvent.Type.MouseMove, end, LEFT)
    _send(view, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def _free_handle(canvas, annotation_id: int | None = None):
    """A landmark handle that is the topmost thing under its own centre (of ``annotation_id`` if given)."""
    return next(h for h in canvas.landmark_items if (annotation_id is None or h.annotation_id == annotation_id)
                and canvas.hit(canvas.mapFromScene(h.pos())) is h)


def _handle(canvas, annotation_id: int, idx: int):
    return next(h for h in canvas.landmark_items if h.annotation_id == annotation_id and h.idx == idx)


def _settle(qtbot) -> None:
    qtbot.wait(10)
    QApplication.processEvents()


def _activate(qtbot, window) -> None:
    """Make ``window`` the active one (its shortcuts take the keys), as a click on it does."""
    window.activateWindow()
    window.raise_()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2000)
    window.setFocus()


@pytest.fixture
def two_windows(make_window, demo_project):
    """Annotators A and B: two windows, each with its own connection to the same project file."""
    other = Project.open(demo_project.where)
    a, b = make_window(demo_project), make_window(other)
    for win in (a, b):
        win.canvas.zoom_fit()
    yield a, b
    b.close()
    a.close()


def test_a_landmark_moved_by_a_is_not_overwritten_by_b(two_windows, qtbot, demo_project):
    a, b = two_windows
    handle = _free_handle(a.canvas)
    aid, idx, start = handle.annotation_id, handle.idx, QPointF(handle.pos())
    _drag(a.canvas, start, start + QPointF(12, 9))
    _settle(qtbot)
    stored_by_a = demo_project.annotations.get(aid).landmarks[idx, :2].copy()
    assert np.allclose(stored_by_a, [start.x() + 12, start.y() + 9], atol=0.5)

    b_handle = _handle(b.canvas, aid, idx)  # B still shows the position before A's move
    assert b_handle.pos() == start
    _drag(b.canvas, start, start + QPointF(-15, 4))
    _settle(qtbot)
    # B's write was refused: the store keeps A's move, B is told, B's canvas shows the stored position
    np.testing.assert_allclose(demo_project.annotations.get(aid).landmarks[idx, :2], stored_by_a)
    message = b.statusBar().currentMessage()
    assert "not saved" in message and "someone else changed this image" in message
    assert b.undo_stack.count() == 0
    moved = _handle(b.canvas, aid, idx).pos()
    assert np.allclose([moved.x(), moved.y()], stored_by_a, atol=1e-6)
    # now that B sees the stored state, B's next edit goes through
    _drag(b.canvas, moved, moved + QPointF(5, 5))
    _settle(qtbot)
    assert np.allclose(demo_project.annotations.get(aid).landmarks[idx, :2], stored_by_a + 5, atol=0.5)
    assert b.undo_stack.count() == 1


def test_a_status_set_by_a_is_not_overwritten_by_b(two_windows, qtbot, demo_project):
    a, b = two_windows
    image_id = a.session.record.id
    _activate(qtbot, a)
    qtbot.keyClick(a, Qt.Key.Key_Space)  # accept
    assert demo_project.images.get(image_id).status == "accepted"
    _activate(qtbot, b)
    qtbot.keyClick(b, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)  # reject, on the version B read before
    assert demo_project.images.get(image_id).status == "accepted"
    assert "not saved" in b.statusBar().currentMessage() and b.undo_stack.count() == 0
    assert b.session.record.id == image_id  # B stays on the image, which now shows its stored status
    assert b.session.record.status == "accepted"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
def test_a_refused_write_never_looks_saved_read_only(window, qtbot, demo_project):
    _refused_drag_reverts(window, qtbot, demo_project, lambda: os.chmod(demo_project.where, stat.S_IRUSR))


def test_a_refused_write_never_looks_saved(window, qtbot, demo_project, monkeypatch):
    """Whatever the store's reason (here: its write raising as a lost connection or a full disk would)."""
    from deepmark.core.store import StoreError

    def refuse(*_a, **_k):
        raise StoreError(f"{demo_project.where}: database or disk is full", path=demo_project.where)

    _refused_drag_reverts(window, qtbot, demo_project, lambda: monkeypatch.setattr(demo_project, "write", refuse))


def _refused_drag_reverts(window, qtbot, demo_project, break_the_store) -> None:
    canvas = window.canvas
    canvas.zoom_fit()
    handle = _free_handle(canvas)
    aid, idx, start = handle.annotation_id, handle.idx, QPointF(handle.pos())
    before = demo_project.annotations.get(aid).landmarks[idx].copy()
    break_the_store()
    _drag(canvas, start, start + QPointF(20, 10))
    _settle(qtbot)
    assert window.undo_stack.count() == 0  # no "move landmark" to undo
    assert "not saved" in window.statusBar().currentMessage()
    back = _handle(canvas, aid, idx).pos()
    assert (back.x(), back.y()) == (start.x(), start.y())  # the marker is back where the store has it
    np.testing.assert_allclose(demo_project.annotations.get(aid).landmarks[idx], before)


def test_a_new_project_starts_clean(window, qtbot, demo_project, tmp_path, monkeypatch):
    """Creating a project (File → New) clears the canvas, the panels and the undo stack; nothing shown belongs
    to the previous project and no key claims a write."""
    from PySide6.QtWidgets import QFileDialog

    from deepmark.app import menus

    handle = _free_handle(window.canvas)
    _drag(window.canvas, QPointF(handle.pos()), QPointF(handle.pos()) + QPointF(5, 5))
    assert window.undo_stack.count() == 1
    target = tmp_path / "fresh.deepmark"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    menus.new_project(window)
    session = window.session
    assert session.project is not demo_project and session.project.where.endswith("fresh.deepmark")
    assert session.record is None and session.items == [] and session.detections == []
    assert window.canvas.item_graphics == {} and window.canvas.landmark_items == []
    assert window.canvas.detection_graphics() == [] and not window.canvas.heatmap_visible()
    assert window.undo_stack.count() == 0 and window.image_model.rowCount() == 0
    assert window.statusBar().currentMessage() == f"created {session.project.where}"
    _activate(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_Space)  # accept: there is no image, nothing happens, nothing claimed
    assert window.undo_stack.count() == 0 and "accepted" not in window.statusBar().currentMessage()
