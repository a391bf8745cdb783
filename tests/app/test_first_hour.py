"""What a newcomer meets in the first hour (issue 11, points 13 and 14): the bundled model says what it is,
and the model card fits a laptop screen."""

import pytest
from PySide6.QtCore import Qt

from deepmark.app.model_dialog import show_model_info
from deepmark.core.store import Project


@pytest.fixture
def default_model_window(qtbot, demo_project):
    from deepmark.app.window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1366, 768)
    win.show()
    assert win.set_model_path(None)  # the bundled model, trained on synthetic garments
    return win


def test_the_synthetic_model_says_so_on_other_images(default_model_window, demo_project, tmp_path):
    window = default_model_window
    assert window.session.model.detector.info.synthetic_only
    window.set_project(demo_project)  # the demo's own images: no notice
    assert not window.notice.isVisible()
    photos = Project.create(tmp_path / "photos.deepmark", root=tmp_path)
    window.set_project(photos)
    assert window.notice.isVisible()
    text = window.notice.text()
    assert "synthetic garments only" in text and "not meaningful" in text and "Choose model file" in text
    window.set_project(Project.open(demo_project.where))
    assert not window.notice.isVisible()


def test_a_model_trained_on_photographs_shows_no_notice(window, tmp_path):
    assert not window.session.model.detector.info.synthetic_only  # the tests' model says nothing
    window.set_project(Project.create(tmp_path / "photos.deepmark", root=tmp_path))
    assert not window.notice.isVisible()


def test_the_model_card_fits_a_laptop_screen(default_model_window):
    dialog = show_model_info(default_model_window)
    assert dialog.width() <= 1366 and dialog.height() <= 768 * 0.9
    texts = {name: label.text() for name, label in dialog.labels.items()}
    assert "synthetic garments" in texts["Learned from"] and "not meaningful" in texts["Learned from"]
    assert texts["Training"].startswith("19 epochs") and "mAP_pt" in texts["Training"]
    assert "α 0.6" in texts["Recommended"]
    assert not any("{" in text for text in texts.values())  # read as a card, not a JSON dump


def test_with_nothing_open_the_start_screen_offers_the_ways_in(qtbot, tiny_model, isolated_settings, tmp_path):
    from deepmark.app.main import build_window, parse_args

    window = build_window(parse_args(["--model", str(tiny_model)]))  # first start: nothing to reopen
    qtbot.addWidget(window)
    window.show()
    screen = window.start_screen
    assert window.session.project is None and window.central.currentWidget() is screen
    assert not screen.recent.isVisible()
    screen.demo.click()  # one click: the demo with its labels
    assert window.central.currentWidget() is not screen and window.image_model.rowCount() == 8
    demo_where = window.session.project.where
    window.close()

    again = build_window(parse_args(["--model", str(tiny_model)]))  # the demo is temporary: not reopened
    qtbot.addWidget(again)
    assert again.session.project is None
    assert not again.start_screen.recent.findItems(demo_where, Qt.MatchFlag.MatchContains)
    again.close()


def test_the_last_project_reopens_and_recent_ones_are_listed(qtbot, tiny_model, isolated_settings, tmp_path):
    from deepmark.app.main import build_window, parse_args

    first = build_window(parse_args(["--project", str(tmp_path / "a.deepmark"), "--model", str(tiny_model)]))
    qtbot.addWidget(first)
    first.close()
    window = build_window(parse_args(["--model", str(tiny_model)]))
    qtbot.addWidget(window)
    assert window.session.project is not None and window.session.project.where.endswith("a.deepmark")
    (tmp_path / "a.deepmark").unlink()  # gone: the next start shows the start screen, without it
    window.close()
    later = build_window(parse_args(["--model", str(tiny_model)]))
    qtbot.addWidget(later)
    later.show()
    assert later.session.project is None and later.central.currentWidget() is later.start_screen


def test_file_dialogs_start_in_the_last_folder(window, tmp_path, monkeypatch, isolated_settings):
    from PySide6.QtWidgets import QFileDialog

    from deepmark.app import menus

    seen = []
    chosen = tmp_path / "models" / "m.onnx"
    chosen.parent.mkdir()

    def ask(parent, title, start, filt):
        seen.append(start)
        return str(chosen), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", ask)
    menus.choose_model(window)  # the file does not load; its folder is remembered all the same
    menus.open_project(window)
    assert seen[0] == str(__import__("pathlib").Path.home()) and seen[1] == str(chosen.parent)


def test_view_reset_layout_brings_the_docks_back(window, qtbot):
    from PySide6.QtWidgets import QDockWidget

    images = window.findChild(QDockWidget, "Images")
    images.hide()
    window.heatmap_panel.side_by_side.setChecked(True)
    next(a for a in window.actions() if a.text() == "Reset layout").trigger()
    assert not images.isHidden() and window.side_view.isHidden()
