"""Starting the app: command line, a missing default model, the screenshot script."""

import pytest

from deepmark.app.main import build_window, parse_args


def test_without_a_model_the_window_says_so_and_still_works(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("deepmark.core.studio.session.default_model_path", lambda: tmp_path / "absent.onnx")
    window = build_window(parse_args(["--demo"]))
    qtbot.addWidget(window)
    assert window.session.model is None
    assert "no model" in window.model_label.text()
    assert "default model is not installed" in window.statusBar().currentMessage()
    assert window.image_model.rowCount() == 8 and window.canvas.landmark_items
    window.step(1)
    assert window.current_row() == 1 and window.session.detections == []
    assert not window.set_model_path(tmp_path / "absent.onnx")  # a chosen file that is missing: reported


def test_project_and_paths_from_the_command_line(qtbot, tmp_path, tiny_model):
    from deepmark.core.studio.display import demo_folder

    target = tmp_path / "work.deepmark"
    window = build_window(parse_args(["--project", str(target), "--model", str(tiny_model),
                                      str(demo_folder() / "image" / "000002.jpg")]))
    qtbot.addWidget(window)
    assert target.exists()
    qtbot.waitUntil(lambda: window.adding.task is None, timeout=10000)  # paths are added in the background
    assert window.image_model.rowCount() == 1
    qtbot.waitUntil(lambda: window.session.model.runs == 1, timeout=10000)  # and the network runs there too


def test_a_project_that_cannot_be_opened_is_reported(qtbot, tmp_path):
    bogus = tmp_path / "notes.deepmark"
    bogus.write_text("not a database")
    window = build_window(parse_args(["--project", str(bogus), "--model", str(tmp_path / "none.onnx")]))
    qtbot.addWidget(window)
    assert window.session.project is None
    assert "cannot open the project" in window.statusBar().currentMessage()


@pytest.mark.slow
def test_screenshot_script_writes_a_png(qtbot, tmp_path, tiny_model):
    from PySide6.QtGui import QImage

    from deepmark.app.screenshot import main

    out = tmp_path / "shot.png"
    assert main([str(out), "--model", str(tiny_model), "--size", "900x600"]) == 0
    image = QImage(str(out))
    assert (image.width(), image.height()) == (900, 600)


def test_a_first_start_uses_the_parameters_the_model_recommends(qtbot, tmp_path, tiny_model):
    import shutil

    from deepmark.core.formats.model_file import set_recommended_params

    model = tmp_path / "tuned.onnx"
    shutil.copy(tiny_model, model)
    set_recommended_params(model, {"alpha": 0.35, "sigma_keypoint": 0.6, "gamma": 0.95})
    window = build_window(parse_args(["--project", str(tmp_path / "p.deepmark"), "--model", str(model)]),
                          use_settings=False)
    qtbot.addWidget(window)
    p = window.params()
    assert (p.alpha, p.sigma_keypoint, p.gamma) == (0.35, 0.6, 0.95)


def test_garbage_is_collected_only_in_the_gui_thread(qapp):
    import gc

    from deepmark.app.main import _GC_TIMER, collect_garbage_in_gui_thread

    collect_garbage_in_gui_thread()
    assert not gc.isenabled()  # no automatic collection, which could run in a worker thread
    assert _GC_TIMER and _GC_TIMER[0].timer.isActive()  # but a GUI-thread timer that collects
    collect_garbage_in_gui_thread()
    assert len(_GC_TIMER) == 1
