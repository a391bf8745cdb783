"""Accepting never creates an empty label by accident (issue 11, point 3), and the keymap is the user's:
review keys that match labelme / X-AnyLabeling, and keys changed in the settings file (point 8)."""

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from deepmark.core.store.interchange import export_dataset


def _empty_current_image(window, demo_project) -> int:
    """Delete the shown image's labels (as if nobody labelled it) and show it again."""
    image_id = window.session.record.id
    for item in demo_project.annotations.for_image(image_id):
        demo_project.annotations.delete_item(item.id)
    window.session.show_image(demo_project.images.get(image_id))
    assert window.session.items == [] and window.session.detections
    return image_id


def _exported(demo_project, tmp_path, name: str) -> dict[int, int]:
    """image id → item count of each exported image."""
    report = export_dataset(demo_project, tmp_path / name, val_fraction=0.0, images="none")
    manifest = json.loads((tmp_path / name / "export.json").read_text())["splits"]["train"]
    counts = {}
    for entry in manifest:
        number = entry["file"].split(".")[0]
        doc = json.loads((tmp_path / name / "train" / "annos" / f"{number}.json").read_text())
        counts[entry["image_id"]] = sum(k.startswith("item") for k in doc)
    return counts, report


def test_accepting_an_unlabelled_image_is_refused_then_predictions_are_taken(window, demo_project, qtbot,
                                                                             tmp_path):
    image_id = _empty_current_image(window, demo_project)
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert demo_project.images.get(image_id).status != "accepted" and window.undo_stack.count() == 0
    message = window.statusBar().currentMessage()
    assert "not accepted" in message and "Shift+Return" in message and "Shift+E" in message
    assert window.session.record.id == image_id  # stays on the image

    shown = len(window.canvas.detection_graphics())  # the best class at each place
    qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)  # accept all shown predictions
    assert len(demo_project.annotations.for_image(image_id)) == shown and window.undo_stack.count() == 1
    qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)  # again: nothing new
    assert len(demo_project.annotations.for_image(image_id)) == shown
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert demo_project.images.get(image_id).status == "accepted"
    counts, _ = _exported(demo_project, tmp_path, "out")
    assert counts[image_id] == shown
    window.undo_stack.undo()  # the acceptance
    window.undo_stack.undo()  # all the taken predictions, in one step
    assert demo_project.annotations.for_image(image_id) == []


def test_no_garments_is_an_explicit_mark_and_exports_an_empty_label(window, demo_project, qtbot, tmp_path):
    image_id = _empty_current_image(window, demo_project)
    counts, report = _exported(demo_project, tmp_path, "before")
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ShiftModifier)
    record = demo_project.images.get(image_id)
    assert record.status == "accepted" and record.no_garments and window.current_row() == 1
    demo_project.images.set_status(demo_project.images.get(window.image_model.record(2).id).id, "accepted")
    counts, report = _exported(demo_project, tmp_path, "after")
    assert counts[image_id] == 0  # exported, empty, because someone said so
    # an image with garments cannot be marked empty
    labelled = window.session.record.id
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ShiftModifier)
    assert not demo_project.images.get(labelled).no_garments
    assert "garments labelled" in window.statusBar().currentMessage()


def test_an_accepted_empty_image_is_not_exported_silently(demo_project, tmp_path):
    image = demo_project.images.page(limit=1)[0]
    for item in demo_project.annotations.for_image(image.id):
        demo_project.annotations.delete_item(item.id)
    demo_project.images.set_status(image.id, "accepted")  # by a script or an older version
    counts, report = _exported(demo_project, tmp_path, "out")
    assert image.id not in counts
    assert any("not marked 'no garments'" in e.message for e in report.errors)


@pytest.fixture
def user_keys(isolated_settings):
    """A settings file in which the user moved accept to Return and next image to Right, with two mistakes."""
    from deepmark.app.settings import studio_settings

    settings = studio_settings()
    settings.setValue("keys/review.accept", "Return")
    settings.setValue("keys/image.next", "Right;D")
    settings.setValue("keys/no.such.action", "K")
    settings.setValue("keys/review.skip", "Ctrl+Nope+Q")
    settings.sync()


def test_keys_changed_in_the_settings_file_take_effect(user_keys, qtbot, demo_project, tiny_model):
    from deepmark.app.window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.set_model_path(tiny_model)
    warning = window.last_message_box.text()
    window.set_project(demo_project)
    keys = {a.objectName(): [k.toString() for k in a.shortcuts()] for a in window.actions() if a.objectName()}
    assert keys["review.accept"] == ["Return"] and keys["image.next"] == ["Right", "D"]
    assert keys["review.skip"] == ["Shift+S"]  # the unusable value is not applied
    assert "no.such.action" in warning and "review.skip" in warning
    window.last_message_box.close()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2000)
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.current_row() == 1
    first = window.session.record.id
    qtbot.keyClick(window, Qt.Key.Key_Return)
    assert demo_project.images.get(first).status == "accepted"
