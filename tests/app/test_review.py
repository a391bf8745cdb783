"""The review workflow in the window: next / previous unreviewed, correction counts in the status bar,
the per-category summary, and predictions that never overwrite what a person corrected."""

import numpy as np
import pytest
from PySide6.QtCore import Qt

from deepmark.core.domain.structures import Detection


def _first_landmark(window):
    marker = window.canvas.landmark_items[0]
    return marker.annotation_id, marker.idx, marker.pos()


def test_next_and_previous_unreviewed_by_key(window, demo_project, qtbot):
    ids = [window.image_model.record(r).id for r in range(8)]
    for row in (1, 2, 6, 7):
        demo_project.images.set_status(ids[row], "accepted")
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_U)
    assert window.current_row() == 3
    qtbot.keyClick(window, Qt.Key.Key_U)
    qtbot.keyClick(window, Qt.Key.Key_U)
    assert window.current_row() == 5
    qtbot.keyClick(window, Qt.Key.Key_U)
    assert window.current_row() == 0  # wrapped
    qtbot.keyClick(window, Qt.Key.Key_U, Qt.KeyboardModifier.ShiftModifier)
    assert window.current_row() == 5  # wrapped backwards
    qtbot.keyClick(window, Qt.Key.Key_U, Qt.KeyboardModifier.ShiftModifier)
    assert window.current_row() == 4
    for row in (0, 3, 5):
        demo_project.images.set_status(ids[row], "skipped")
    qtbot.keyClick(window, Qt.Key.Key_U)
    assert window.current_row() == 4 and "no other image needs review" in window.statusBar().currentMessage()


def test_status_bar_counts_corrections(window, demo_project, qtbot):
    assert "0 reviewed · 8 remaining · 0 corrected landmarks (0 items)" in window.counts_label.text()
    aid, idx, at = _first_landmark(window)
    window.canvas.landmarks_moved.emit([(aid, idx, (at.x() + 3.0, at.y() + 4.0))])
    assert "1 corrected landmark (1 item)" in window.counts_label.text()
    window.undo_stack.undo()
    assert "0 corrected landmarks (0 items)" in window.counts_label.text()


def test_summary_by_category(window, demo_project, qtbot, taxonomy):
    aid, idx, at = _first_landmark(window)
    category = demo_project.annotations.get(aid).category_id
    window.canvas.landmarks_moved.emit([(aid, idx, (at.x() + 3.0, at.y() + 4.0))])  # 5 px
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_F9)
    dialog = window.summary_dialog
    assert dialog.isVisible()
    model = dialog.model
    assert model.rowCount() == 14 and model.columnCount() == 5
    row = category - 1
    assert model.cell(row, 0).endswith(taxonomy.category(category).name)
    assert model.cell(row, 2) == "1" and model.cell(row, 3) == "5.0"
    items = sum(len(demo_project.annotations.for_image(window.image_model.record(r).id)) for r in range(8))
    assert model.cell(13, 0) == "all categories" and model.cell(13, 1) == str(items)
    assert "8 images" in dialog.statuses.text()
    window.undo_stack.undo()  # the dialog follows edits while it is open
    assert model.cell(row, 2) == "0" and model.cell(row, 3) == "–"


def test_predictions_never_overwrite_a_human_correction(window, demo_project, tiny_model):
    aid, idx, at = _first_landmark(window)
    image_id = window.session.record.id
    window.canvas.landmarks_moved.emit([(aid, idx, (at.x() + 6.0, at.y() - 2.0))])
    window.set_status("accepted", advance=False)
    corrected = demo_project.annotations.for_image(image_id)
    assert corrected[[i.id for i in corrected].index(aid)].origin == "corrected"

    # the model again, as a new run (a reloaded model stores its predictions once more) ...
    assert window.set_model_path(tiny_model)
    window.select_row(1)
    window.select_row(0)
    assert len(demo_project.model_runs.list()) == 2
    assert len(demo_project.predictions.for_image(image_id)) == 2 * len(window.session.detections)
    # ... and predictions stored straight through the store, one over every corrected item's place
    run = demo_project.model_runs.add("another detector")
    dets = [Detection(item.category_id, 0.99, 0.99, item.box + 5.0,
                      np.column_stack([item.landmarks[:, :2] + 9.0, np.ones(len(item.landmarks))]),
                      np.zeros(len(item.landmarks), bool)) for item in corrected]
    demo_project.predictions.add(image_id, run.id, dets)

    after = demo_project.annotations.for_image(image_id)
    assert [i.id for i in after] == [i.id for i in corrected]
    for before, now in zip(corrected, after, strict=True):
        assert now.origin == before.origin and now.category_id == before.category_id
        np.testing.assert_array_equal(now.landmarks, before.landmarks)
        np.testing.assert_array_equal(now.corrected, before.corrected)
        np.testing.assert_array_equal(now.box, before.box)
    moved = after[[i.id for i in after].index(aid)]
    assert moved.landmarks[idx, 0] == pytest.approx(at.x() + 6.0) and moved.corrected[idx]
    assert demo_project.images.get(image_id).status == "accepted"  # nor the review decision
