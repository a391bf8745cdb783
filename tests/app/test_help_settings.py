"""Keyboard first: the shortcut list and About; settings kept between sessions; the demo cleans up."""

from dataclasses import replace

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget

from deepmark.app.help_dialog import MOUSE, OTHER, show_about, show_shortcuts
from deepmark.app.main import build_window, parse_args
from deepmark.app.settings import studio_settings


def test_help_lists_every_shortcut_by_menu(window, qtbot):
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_F1)
    dialog = window.shortcuts_dialog
    assert dialog.isVisible()
    native = lambda k: QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText)  # noqa: E731
    assert dialog.keys_for("Accept image") == native("Space")
    assert dialog.keys_for("Next image") == f"D, {native('PgDown')}"
    assert dialog.keys_for("Previous image") == f"A, {native('PgUp')}"
    assert dialog.keys_for("Next unreviewed image") == "U"
    assert dialog.keys_for("Zoom in").endswith(native("Ctrl+="))
    for listed in ("Previous item", "Cancel drawing, clear the selection", "Select several landmarks",
                   "Resize a box", "No garments here (accept as empty)", "Accept all shown predictions"):
        assert dialog.keys_for(listed), listed
    groups = {group for group, _, _ in dialog.rows}
    assert {"File", "Review", "View", "Help", MOUSE} <= groups
    assert ("Review", "Accept image", native("Space")) in dialog.rows
    assert dialog.rows[-1][0] == MOUSE and any("landmark" in what for _, what, _ in dialog.rows)
    # built from window.actions() when opened: an action registered later by any part of the app is listed
    extra = QAction("Frobnicate", window)
    extra.setShortcut(QKeySequence("Ctrl+Alt+F"))
    window.addAction(extra)
    # and a menu entry whose key a widget handles itself, named after a tab in its text
    window.menuBar().actions()[0].menu().addAction(QAction("Twiddle\tQ", window))
    again = show_shortcuts(window)
    assert (OTHER, "Frobnicate", extra.shortcut().toString(QKeySequence.SequenceFormat.NativeText)) in again.rows
    assert ("File", "Twiddle", "Q") in again.rows
    assert dialog.tree.topLevelItemCount() >= 5


def test_about_names_the_model_and_project(window):
    box = show_about(window)
    assert box.isVisible() and "DeepMark Studio" in box.text()
    assert window.session.model.describe() in box.text() and window.session.project.where in box.text()


def test_layout_and_parameters_survive_a_restart(qtbot, tiny_model, isolated_settings):
    project = str(isolated_settings / "work.deepmark")  # parameters live in the project, layout in the settings
    first = build_window(parse_args(["--project", project, "--model", str(tiny_model)]))
    qtbot.addWidget(first)
    first.show()
    first.resize(710, 520)
    first.params_panel.set_params(replace(first.params(), score_threshold=0.33, alpha=0.6, nms=False))
    first.heatmap_panel.opacity.setValue(25)
    first.findChild(QDockWidget, "Images").hide()  # dock layout: the image list closed
    qtbot.waitUntil(lambda: first.size().width() == 710)
    size = (first.width(), first.height())  # the height may be held up by the docks' minimum
    first.close()
    assert (isolated_settings / "DeepMark" / "DeepMark Studio.ini").is_file()  # the tests' folder, not the user's

    second = build_window(parse_args(["--project", project]))  # no --model: the last one used
    qtbot.addWidget(second)
    second.show()
    assert (second.width(), second.height()) == size != (1400, 860)
    p = second.params()
    assert (p.score_threshold, p.alpha, p.nms) == (pytest.approx(0.33), pytest.approx(0.6), False)
    assert second.heatmap_panel.opacity.value() == 25
    assert second.findChild(QDockWidget, "Images").isHidden()
    assert not second.findChild(QDockWidget, "Post-processing").isHidden()
    assert second.session.model is not None and second.session.model.path == tiny_model


def test_unusable_saved_settings_are_ignored(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("deepmark.core.studio.session.default_model_path", lambda: tmp_path / "absent.onnx")
    settings = studio_settings()
    settings.setValue("window/geometry", "garbage")
    settings.setValue("model/path", str(tmp_path / "gone.onnx"))
    settings.sync()
    window = build_window(parse_args(["--demo"]))
    qtbot.addWidget(window)
    assert window.params().alpha == pytest.approx(0.8)  # the defaults, not an error
    assert window.image_model.rowCount() == 8
    assert QSettings.defaultFormat() == QSettings.Format.IniFormat


def test_the_demo_folder_is_removed_when_the_window_closes(qtbot, tiny_model):
    window = build_window(parse_args(["--demo", "--model", str(tiny_model)]))
    qtbot.addWidget(window)
    folder = window.demo_folder.path
    assert folder.is_dir() and any(folder.iterdir())
    assert window.session.project.where.startswith(str(folder))
    window.close()
    assert not folder.exists()


def test_the_demo_folder_is_removed_when_the_app_exits(qtbot, tiny_model):
    from PySide6.QtWidgets import QApplication

    window = build_window(parse_args(["--demo", "--model", str(tiny_model)]))
    qtbot.addWidget(window)
    folder = window.demo_folder.path
    QApplication.instance().aboutToQuit.emit()  # what app.exec() does on the way out
    assert not folder.exists() and window.session.project is None
    window.close()  # and closing afterwards is harmless


def test_smoke_option(tiny_model, tmp_path, capsys, isolated_settings):
    from deepmark.app.main import main

    assert main(["--smoke", "--model", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("smoke ok: 8 demo images, model tiny.onnx") and out.count("\n") == 1
    saved = studio_settings().allKeys()
    assert "window/geometry" not in saved  # a check: the session is not remembered
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"nope")
    assert main(["--smoke", "--model", str(garbage)]) == 1
    assert "smoke FAILED: no model" in capsys.readouterr().err
