"""The network never runs on the GUI thread (issue 11, point 11): an image shows at once and its detections
follow; the next images' heads are computed ahead, so stepping to them needs no network run then."""

import threading

import pytest
from PySide6.QtCore import Qt

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.studio import session as session_module


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
    computed = []  # image ids the network ran on, in order
    real_compute = win.session.model.compute

    def compute(image_id, *args, **kwargs):
        computed.append(image_id)
        return real_compute(image_id, *args, **kwargs)

    win.session.model.compute = compute
    win.computed_ids = computed
    win.set_project(demo_project)
    return win


def test_an_image_shows_at_once_and_its_detections_follow(background_window, qtbot):
    window = background_window
    assert window.session.rgb is not None  # shown before any network run finished
    qtbot.waitUntil(lambda: bool(window.session.detections), timeout=10000)
    assert window.canvas.detection_graphics()
    assert window.network_threads and threading.main_thread() not in window.network_threads


def test_the_next_images_are_computed_ahead(background_window, qtbot, demo_project, monkeypatch):
    window = background_window
    model = window.session.model
    qtbot.waitUntil(lambda: model.runs >= 3, timeout=20000)  # the shown image and the next two
    window.setFocus()
    reads = []  # images read on the GUI thread
    real_read = session_module.read_image

    def read(path):
        if threading.current_thread() is threading.main_thread():
            reads.append(path)
        return real_read(path)

    monkeypatch.setattr(session_module, "read_image", read)
    qtbot.keyClick(window, Qt.Key.Key_D)
    # the image is painted first, from the pixels read ahead (nothing read on the GUI thread) ...
    assert window.session.rgb is not None and not window.session.detections and not reads
    # ... and its detections follow in the next turn of the event loop, with no network run now
    qtbot.waitUntil(lambda: bool(window.session.detections), timeout=1000)
    assert window.computed_ids.count(window.session.record.id) == 1 and not reads  # computed ahead, once
    assert demo_project.images.get(window.session.record.id).status == "predicted"
    assert threading.main_thread() not in window.network_threads


def test_the_image_is_painted_before_its_detections_are_drawn(background_window, qtbot):
    """D: the canvas paints the new image before the session decodes its (cached) heads."""
    from PySide6.QtCore import QEvent, QObject

    window = background_window
    qtbot.waitUntil(lambda: window.session.model.runs >= 3, timeout=20000)
    order = []

    class PaintSpy(QObject):
        def eventFilter(self, watched, event):
            if event.type() == QEvent.Type.Paint:
                order.append(("paint", len(window.session.detections)))
            return False

    spy = PaintSpy()
    window.canvas.viewport().installEventFilter(spy)
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: bool(window.session.detections), timeout=2000)
    window.canvas.viewport().removeEventFilter(spy)
    assert order and order[0] == ("paint", 0)  # the first paint after D: the image, no detections yet


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
    # the images passed were computed ahead (the first one, left before it was painted, never ran), and the
    # two ahead of the last
    qtbot.waitUntil(lambda: not window.session._pending and model.runs >= 6, timeout=30000)
    runs = model.runs
    qtbot.keyClick(window, Qt.Key.Key_A)  # back: its heads were kept when they arrived
    assert window.current_row() == 3
    qtbot.waitUntil(lambda: bool(window.session.detections), timeout=1000)
    assert model.runs == runs


def test_heads_saved_on_disk_are_read_off_the_gui_thread(qtbot, demo_project, tiny_model, tmp_path, monkeypatch):
    """A second window (the next day): the heads of the first are on disk; opening and stepping through the
    images reads them in the background — no cache file is read on the GUI thread, and no network runs."""
    from deepmark.app.window import MainWindow
    from deepmark.core.studio import heads_cache

    monkeypatch.setenv("DEEPMARK_CACHE_DIR", str(tmp_path / "cache"))
    first = MainWindow(PostprocessParams.all_techniques(score_threshold=0.0))
    qtbot.addWidget(first)
    first.show()
    assert first.set_model_path(tiny_model)
    first.set_project(demo_project)
    qtbot.waitUntil(lambda: first.session.model.runs >= 3 and not first.session._pending, timeout=20000)
    first.close()

    loads = []  # threads that read a heads file
    real_load = heads_cache.HeadsDiskCache.load

    def load(self, *args, **kwargs):
        loads.append(threading.current_thread())
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(heads_cache.HeadsDiskCache, "load", load)
    project = type(demo_project).open(demo_project.where)
    second = MainWindow(PostprocessParams.all_techniques(score_threshold=0.0))
    qtbot.addWidget(second)
    second.show()
    assert second.set_model_path(tiny_model)
    second.set_project(project)
    qtbot.waitUntil(lambda: bool(second.session.detections) and not second.session._pending, timeout=20000)
    second.setFocus()
    qtbot.keyClick(second, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: bool(second.session.detections) and not second.session._pending, timeout=20000)
    assert loads and threading.main_thread() not in loads
    assert second.session.model.runs == 1  # the first three images came from the disk; the fourth (ahead) is new
