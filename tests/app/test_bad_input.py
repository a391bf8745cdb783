"""Bad input in the real window: a corrupt, truncated or missing image, a model file that does not load,
a project from a newer version, a locked store during edits, and an unexpected exception in a slot.
Each is a clear message in the window, and the rest keeps working."""

import shutil
import sqlite3
import sys

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog

from deepmark.app import menus
from deepmark.app.main import build_window, install_excepthook, parse_args
from deepmark.core.store import Project
from deepmark.core.studio.display import demo_folder, open_inputs


@pytest.fixture
def own_demo(tmp_path):
    """A project over a private copy of the demo folder (the files may be damaged), lock timeout 0.5 s."""
    folder = tmp_path / "demo"
    shutil.copytree(demo_folder(), folder)
    project = Project.open(tmp_path / "own.deepmark", root=folder, create=True, lock_timeout_s=0.5)
    assert open_inputs(project, [folder]).images_added == 8
    yield project, folder
    project.close()


@pytest.fixture
def own_window(qtbot, own_demo, tiny_model):
    from deepmark.app.window import MainWindow
    from deepmark.core.domain.structures import PostprocessParams

    win = MainWindow(PostprocessParams.all_techniques(score_threshold=0.0))  # the network in the background
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    assert win.set_model_path(tiny_model)
    win.set_project(own_demo[0])
    qtbot.waitUntil(lambda: bool(win.session.detections), timeout=10000)
    return win


def _row_of(window, name: str) -> int:
    return next(r for r in range(window.image_model.rowCount()) if window.image_model.record(r).path.endswith(name))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_an_unreadable_image_is_named_and_the_next_one_loads(own_window, own_demo, damage, qtbot):
    _, folder = own_demo
    target = folder / "image" / "000003.jpg"
    if damage == "garbage":
        target.write_bytes(b"\x00not an image at all" * 50)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:600])  # a valid JPEG header, most of the data gone
    else:
        target.unlink()
    row = _row_of(own_window, "000003.jpg")
    own_window.select_row(row)
    message = own_window.statusBar().currentMessage()
    assert "image/000003.jpg" in message and "cannot show" in message
    expected = {"garbage": "not a recognised image", "truncated": "truncated or corrupt", "missing": "not found"}
    assert expected[damage] in message
    assert own_window.session.rgb is None and own_window.session.detections == []
    own_window.step(1)  # the rest keeps working
    assert own_window.current_row() == row + 1 and own_window.session.rgb is not None
    qtbot.waitUntil(lambda: bool(own_window.session.detections), timeout=10000)
    own_window.step(-1)  # and going back is the same clear message, not a crash
    assert "000003.jpg" in own_window.statusBar().currentMessage()


def test_a_model_file_that_does_not_load(window, tmp_path, monkeypatch):
    garbage = tmp_path / "broken.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 100)
    before = window.session.model
    assert not window.set_model_path(garbage)
    assert "broken.onnx" in window.statusBar().currentMessage()
    assert window.session.model is before and window.model_label.text() == before.describe()  # still the old model
    # through the menu: a message box, and detection goes on with the model in use
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(garbage), ""))
    menus.choose_model(window)
    box = window.last_message_box
    assert box is not None and box.isVisible() and "broken.onnx" in box.text()
    window.step(1)
    assert window.session.detections and window.session.model is before


def _nan_heatmap(source, target):
    """``source`` with NaN added to its center heatmap: it loads in onnxruntime, its dry run fails."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    producer = next(node for node in model.graph.node if "hm" in node.output)
    producer.output[list(producer.output).index("hm")] = "hm_before_nan"
    model.graph.initializer.append(numpy_helper.from_array(np.array(np.nan, np.float32), "nan"))
    model.graph.node.append(helper.make_node("Add", ["hm_before_nan", "nan"], ["hm"]))
    onnx.save(model, str(target))
    return target


def _mean_as_text(source, target):
    """``source`` whose metadata's mean is text: a field of the wrong type."""
    import json

    import onnx

    model = onnx.load(str(source))
    for prop in model.metadata_props:
        prop.value = json.dumps({**json.loads(prop.value), "mean": "imagenet"})
    onnx.save(model, str(target))
    return target


@pytest.mark.parametrize(("damage", "problem"), [(_nan_heatmap, "NaN"), (_mean_as_text, "field 'mean'")])
def test_a_model_that_fails_its_load_checks_leaves_the_model_in_use(window, tiny_model, tmp_path, monkeypatch,
                                                                    damage, problem):
    bad = damage(tiny_model, tmp_path / "checked.onnx")
    before = window.session.model
    assert not window.set_model_path(bad)
    message = window.statusBar().currentMessage()
    assert "checked.onnx" in message and problem in message and "still using tiny.onnx" in message
    assert window.session.model is before and window.model_label.text() == before.describe()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    menus.choose_model(window)  # through the menu: one line in a message box
    box = window.last_message_box
    assert box is not None and "checked.onnx" in box.text() and "\n" not in box.text()
    window.step(1)
    assert window.session.detections and window.session.model is before


def test_a_checkpoint_without_pytorch(window, tmp_path, monkeypatch):
    """The frozen build and a plain install have no PyTorch: a .pt file is refused with the reason."""
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"\x80\x02 a pickle, supposedly")
    monkeypatch.setitem(sys.modules, "deepmark.core.network.checkpoint", None)  # import fails, as without torch
    assert not window.set_model_path(checkpoint)
    message = window.statusBar().currentMessage()
    assert "last.pt" in message and "needs PyTorch" in message and ".onnx" in message


def _newer(path):
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")


def test_a_project_from_a_newer_version(qtbot, tmp_path, tiny_model, window, monkeypatch):
    newer = tmp_path / "newer.deepmark"
    Project.create(newer).close()
    _newer(newer)
    started = build_window(parse_args(["--project", str(newer), "--model", str(tiny_model)]))
    qtbot.addWidget(started)
    box = started.last_message_box
    assert box is not None and box.isVisible()
    assert "newer DeepMark Studio" in box.text() and "newer.deepmark" in box.text()
    assert started.session.project is None

    # File → Open on a running window: the message, and the open project stays in use
    current = window.session.project
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(newer), ""))
    menus.open_project(window)
    assert "newer DeepMark Studio" in window.last_message_box.text()
    assert window.session.project is current
    window.step(1)
    assert window.session.rgb is not None and window.session.items
    with sqlite3.connect(newer) as conn:  # refused untouched
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)


class _Lock:
    """Another program holding the project's SQLite database with an exclusive write lock."""

    def __init__(self, path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_locked_store_during_edits(own_window, own_demo, tmp_path, qtbot):
    project, _ = own_demo
    window = own_window
    marker = window.canvas.landmark_items[0]
    aid, idx, at = marker.annotation_id, marker.idx, marker.pos()
    before = project.annotations.get(aid).landmarks.copy()
    first = window.session.record.id
    lock = _Lock(tmp_path / "own.deepmark")
    try:
        window.canvas.landmarks_moved.emit([(aid, idx, (at.x() + 10.0, at.y() + 10.0))])
        message = window.statusBar().currentMessage()
        assert "move landmark" in message and "locked by another program" in message
        assert window.undo_stack.count() == 0  # nothing half-done is left to undo
        np.testing.assert_array_equal(project.annotations.get(aid).landmarks, before)

        window.set_status("accepted")
        assert "locked" in window.statusBar().currentMessage()
        assert window.session.record.id == first  # not advanced past an image whose decision was not stored
        assert project.images.get(first).status == "predicted"

        window.step(1)  # browsing goes on; the predictions just cannot be stored now
        qtbot.waitUntil(lambda: bool(window.session.detections), timeout=10000)
        assert window.session.rgb is not None
        assert "predictions not stored" in window.statusBar().currentMessage()
    finally:
        lock.release()
    window.step(-1)
    window.set_status("accepted")
    assert project.images.get(first).status == "accepted" and window.current_row() == 1
    QApplication.processEvents()


@pytest.mark.qt_no_exception_capture
def test_an_unexpected_error_in_a_slot_is_shown_and_logged(window, qtbot, monkeypatch, caplog):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    install_excepthook(lambda: window)

    def broken_slot() -> None:
        raise ValueError("something nobody expected")

    QTimer.singleShot(0, broken_slot)
    qtbot.waitUntil(lambda: window.last_message_box is not None and window.last_message_box.isVisible(),
                    timeout=2000)
    box = window.last_message_box
    assert "ValueError: something nobody expected" in box.text()
    assert "broken_slot" in box.detailedText()  # the traceback, for a bug report
    assert any(r.levelname == "ERROR" and r.exc_info for r in caplog.records)
    window.step(1)  # and the app keeps working
    assert window.current_row() == 1 and window.session.rgb is not None


def test_a_model_giving_nan_marks_nothing_and_says_so(window, demo_project, qtbot):
    from dataclasses import replace as dc_replace

    import numpy as np

    detector = window.session.model.detector
    real = detector.heads
    detector.heads = lambda rgb, tta: dc_replace(real(rgb, tta), hm=np.full_like(real(rgb, tta).hm, np.nan))
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_D)  # the next image, never seen: the network runs
    record = window.session.record
    assert window.problem_label.isVisible() and record.path in window.problem_label.toolTip()
    assert demo_project.images.get(record.id).status == "new"
    assert demo_project.predictions.for_image(record.id) == []
    assert window.session.detections == [] and window.canvas.detection_graphics() == []
    detector.heads = real
    qtbot.keyClick(window, Qt.Key.Key_D)  # a working model again: the warning goes
    assert not window.problem_label.isVisible()
