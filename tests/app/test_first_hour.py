"""What a newcomer meets in the first hour (issue 11, points 13 and 14): the bundled model says what it is,
and the model card fits a laptop screen."""

import pytest

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
