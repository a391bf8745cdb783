"""The main window end to end, offscreen: open the demo, run the model, tune, overlay, correct, review."""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from deepmark.core.domain.structures import PostprocessParams


def test_demo_opens_with_its_labels(window, demo_project):
    assert window.image_model.rowCount() == 8
    assert window.session.record is not None and window.session.record.id == window.image_model.record(0).id
    assert window.session.items and window.canvas.landmark_items
    assert "0 reviewed · 8 remaining" in window.counts_label.text()


def test_model_runs_once_and_stores_predictions(window, demo_project):
    assert window.session.model.runs == 1
    assert len(window.session.detections) > 0  # threshold 0: every candidate of the random model
    stored = demo_project.predictions.for_image(window.session.record.id)
    assert len(stored) == len(window.session.detections)
    assert demo_project.images.get(window.session.record.id).status == "predicted"
    assert window.image_model.record(0).status == "predicted"  # the list row shows it


def test_moving_a_slider_re_decodes_without_running_the_network(window, qtbot):
    before = [d.score for d in window.session.detections]
    high = float(np.max(before))  # float16-rounded heads: the random model's scores tie below the best one
    spin = window.params_panel.numbers["score_threshold"].spin
    spin.setDecimals(6)  # the random model's scores differ in the 4th decimal; 3 could round them all away
    spin.setValue(high)
    qtbot.waitUntil(lambda: len(window.session.detections) < len(before), timeout=2000)
    threshold = window.params().score_threshold
    assert threshold == pytest.approx(high, abs=1e-6)
    assert window.session.detections and all(d.score >= threshold for d in window.session.detections)
    # a burst of slider moves: one coalesced decode, and still no second network run
    slider = window.params_panel.numbers["alpha"].slider
    for value in range(0, 1000, 50):
        slider.setValue(value)
    qtbot.waitUntil(lambda: window.params().alpha == pytest.approx(0.95), timeout=2000)
    qtbot.wait(30)
    assert window.session.model.runs == 1


def test_switching_a_technique_changes_the_scores(window, qtbot):
    before = np.array([d.score for d in window.session.detections])
    window.params_panel.switches["center_rescoring"].setChecked(False)
    qtbot.waitUntil(lambda: not window.params().center_rescoring, timeout=1000)
    qtbot.wait(30)
    after = np.array([d.score for d in window.session.detections])
    # without center rescoring the score is the box score (the random model's landmarks score 0)
    np.testing.assert_allclose(after, [d.box_score for d in window.session.detections], atol=1e-6)
    assert not np.allclose(np.sort(before), np.sort(after))
    assert not window.params_panel.numbers["alpha"].isEnabled()
    assert window.session.model.runs == 1


def test_heatmap_overlay(window):
    heads = window.session.model.cached(window.session.record.id)
    window.heatmap_panel.select("center")
    assert window.canvas.heatmap_visible()
    pixmap = window.canvas._heat.pixmap()
    assert (pixmap.height(), pixmap.width()) == heads.map_size
    # the overlay lands on the image: the map's far corner maps into the image's far corner region
    corner = window.canvas._heat.mapToScene(QPointF(pixmap.width(), pixmap.height()))
    width, height = heads.image_size
    assert corner.x() >= width - 1 and corner.y() >= height - 1
    window.heatmap_panel.select("group", 3)
    assert window.heatmap_panel.choice() == ("group", 3) and window.canvas.heatmap_visible()
    window.heatmap_panel.select("off")
    assert not window.canvas.heatmap_visible()


def _drag(view, start: QPointF, end: QPointF) -> None:
    """Press, move and release the left button in the view (QTest's mouseMove cannot hold a button)."""
    viewport = view.viewport()
    a, b = view.mapFromScene(start), view.mapFromScene(end)
    for kind, at, buttons in ((QEvent.Type.MouseButtonPress, a, Qt.MouseButton.LeftButton),
                              (QEvent.Type.MouseMove, QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2),
                               Qt.MouseButton.LeftButton),
                              (QEvent.Type.MouseMove, b, Qt.MouseButton.LeftButton),
                              (QEvent.Type.MouseButtonRelease, b, Qt.MouseButton.NoButton)):
        pos = QPointF(at)
        event = QMouseEvent(kind, pos, viewport.mapToGlobal(pos), Qt.MouseButton.LeftButton, buttons,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)


def test_drag_a_landmark_then_undo_and_redo(window, demo_project, qtbot):
    marker = max(window.canvas.landmark_items, key=lambda m: m.zValue())
    aid, idx = marker.annotation_id, marker.idx
    start = marker.pos()
    original = demo_project.annotations.get(aid).landmarks[idx].copy()
    window.canvas.zoom_fit()
    target = start + QPointF(12.0, 7.0)
    _drag(window.canvas, start, target)
    stored = demo_project.annotations.get(aid)
    assert stored.landmarks[idx, 0] == pytest.approx(target.x(), abs=1.5)
    assert stored.landmarks[idx, 1] == pytest.approx(target.y(), abs=1.5)
    assert stored.corrected[idx] and stored.origin == "corrected"
    moved = stored.landmarks[idx].copy()
    assert window.undo_stack.count() == 1

    window.undo_stack.undo()
    back = demo_project.annotations.get(aid)
    np.testing.assert_allclose(back.landmarks[idx], original)
    assert not back.corrected[idx] and back.origin == "imported"
    qtbot.waitUntil(lambda: any(m.annotation_id == aid and m.idx == idx and m.pos() == start
                                for m in window.canvas.landmark_items), timeout=1000)

    window.undo_stack.redo()
    np.testing.assert_allclose(demo_project.annotations.get(aid).landmarks[idx], moved)


def test_pressing_a_landmark_shows_its_group_heatmap(window, taxonomy, semantic62):
    canvas = window.canvas
    marker = next(h for h in canvas.landmark_items if canvas.hit(canvas.mapFromScene(h.pos())) is h)
    item = next(i for i in window.session.items if i.id == marker.annotation_id)
    group = int(semantic62.landmark_to_group[taxonomy.category(item.category_id).offset + marker.idx])
    window.heatmap_panel.select("center")
    viewport, at = canvas.viewport(), QPointF(canvas.mapFromScene(marker.pos()))
    for kind, buttons in ((QEvent.Type.MouseButtonPress, Qt.MouseButton.LeftButton),
                          (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton)):
        QApplication.sendEvent(viewport, QMouseEvent(kind, at, viewport.mapToGlobal(at), Qt.MouseButton.LeftButton,
                                                     buttons, Qt.KeyboardModifier.NoModifier))
    assert window.heatmap_panel.choice() == ("group", group) and window.canvas.heatmap_visible()


def test_review_keys_set_the_status_and_advance(window, demo_project, qtbot):
    first = window.session.record.id
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Space)  # accept (labelImg's "verify")
    assert demo_project.images.get(first).status == "accepted"
    assert window.current_row() == 1 and window.session.record.id != first
    assert "1 reviewed · 7 remaining" in window.counts_label.text()
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    assert demo_project.images.get(window.image_model.record(1).id).status == "rejected"
    window.undo_stack.undo()
    assert demo_project.images.get(window.image_model.record(1).id).status == "predicted"
    qtbot.keyClick(window, Qt.Key.Key_A)  # previous image, as in labelme and X-AnyLabeling
    assert window.current_row() == 1
    qtbot.keyClick(window, Qt.Key.Key_D)  # next image
    assert window.current_row() == 2


def test_a_broken_image_is_reported_and_the_rest_works(window, demo_project, tmp_path, qtbot):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    window.open_paths([bad])  # not addable: reported, not raised
    qtbot.waitUntil(lambda: window.adding.task is None, timeout=10000)
    assert "could not be opened" in window.statusBar().currentMessage()
    assert window.image_model.rowCount() == 8
    window.step(1)
    assert window.session.rgb is not None and window.canvas.landmark_items


def _write_images(folder, count):
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(count):
        cv2.imwrite(str(folder / f"extra{k:04d}.png"), rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))


def test_adding_a_folder_runs_in_the_background(window, qtbot, tmp_path):
    folder = tmp_path / "many"
    _write_images(folder, 450)
    window.open_paths([folder])
    assert window.adding.panel.isVisibleTo(window)  # returned at once; the work goes on in its thread
    assert window.image_model.rowCount() == 8
    qtbot.waitUntil(lambda: window.adding.task is None, timeout=30000)
    assert window.image_model.rowCount() == 8 + 450
    assert window.adding.last_report.images_added == 450
    assert not window.adding.panel.isVisibleTo(window)
    assert window.session.record is not None  # the image shown before stays shown


def test_cancelling_an_add_keeps_the_committed_batches(window, qtbot, tmp_path):
    folder = tmp_path / "many"
    _write_images(folder, 450)  # three batches of 200
    window.open_paths([folder])
    window.adding.cancel()  # before the first batch ends: its progress report stops the import
    qtbot.waitUntil(lambda: window.adding.task is None, timeout=30000)
    assert "cancelled" in window.statusBar().currentMessage()
    added = window.session.project.images.count() - 8
    assert 0 <= added < 450 and added % 200 == 0
    window.open_paths([folder])  # adding again finishes the job
    qtbot.waitUntil(lambda: window.adding.task is None, timeout=30000)
    assert window.session.project.images.count() == 8 + 450


def test_parameters_set_on_the_panel_are_what_the_session_decodes_with(window, qtbot):
    """A preset, a reset or the tuning view's best goes through the panel: the next image is decoded with it."""
    wanted = PostprocessParams.centernet(score_threshold=0.9)
    window.params_panel.set_params(wanted)
    qtbot.waitUntil(lambda: window.session.params == wanted, timeout=2000)
    window.step(1)
    assert window.session.params == wanted == window.params()
    assert all(d.score >= 0.9 for d in window.session.detections)
