"""The network never runs on the GUI thread (issue 11, point 11): an image shows at once and its detections
follow; the next images' heads are computed ahead, so stepping to them needs no network run then."""

import threading

import pytest
from PySide6.QtCore import Qt

from deepmark.core.domain.structures import PostprocessParams


@pytest.fixture
def background_window(qtbot, demo_project, tiny_model):
    from deepmark.app.window import MainWindow

    win = MainWindow(PostprocessParams.all_techniques(score_threshold=0.0))  # as the app runs: background
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    assert win.set_model_path(tiny_model)
    threads = []
    real = win.session.model.detector.heads

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    win.session.model.detector.heads = recorded
    win.network_threads = threads
    win.set_project(demo_project)
    return win


def test_an_image_shows_at_once_and_its_detections_follow(background_window, qtbot):
    window = background_window
    assert window.session.rgb is not None  # shown before any network run finished
    qtbot.waitUntil(lambda: bool(window.session.detections), timeout=10000)
    assert window.canvas.detection_graphics()
    assert window.network_threads and threading.main_thread() not in window.network_threads


def test_the_next_images_are_computed_ahead(background_window, qtbot, demo_project):
    window = background_window
    model = window.session.model
    qtbot.waitUntil(lambda: model.runs >= 3, timeout=20000)  # the shown image and the next two
    runs = model.runs
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_D)
    assert window.session.detections and model.runs == runs  # there at once: no network run now
    assert demo_project.images.get(window.session.record.id).status == "predicted"
    assert threading.main_thread() not in window.network_threads


def test_leaving_an_image_before_its_detections_arrive(background_window, qtbot, demo_project):
    """Stepping on while the network works: nothing is mixed up; each image gets its own detections."""
    window = background_window
    window.setFocus()
    for _ in range(4):
        qtbot.keyClick(window, Qt.Key.Key_D)
    shown = window.session.record.id
    qtbot.waitUntil(lambda: bool(window.session.detections), timeout=20000)
    assert window.session.record.id == shown and window.current_row() == 4
    assert demo_project.images.get(shown).status == "predicted"
    model = window.session.model
    qtbot.waitUntil(lambda: model.runs >= 7, timeout=30000)  # the five passed and the two ahead of the last
    runs = model.runs
    qtbot.keyClick(window, Qt.Key.Key_A)  # back: its heads were kept when they arrived
    assert window.current_row() == 3 and window.session.detections and model.runs == runs
