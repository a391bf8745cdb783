"""Landmark refinement in the app, driven as a user does: Shift+F switches it on, the refined landmarks are
shown (and what Shift+Return accepts), a slider move never runs it, it runs again once the sliders rest,
Shift+B shows where the decoder had put each landmark, and a broken refiner file is refused."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from deepmark.core.studio.refinement import default_refiner_path


def _landmarks(detections):
    return [d.landmarks[:, :2].copy() for d in detections]


def _moved(session) -> bool:
    return any(not np.allclose(a, b) for a, b in zip(_landmarks(session.detections), _landmarks(session.unrefined),
                                                     strict=True))


def test_refinement_from_switch_to_accepted_label(qtbot, make_window, demo_project):
    assert default_refiner_path().is_file()
    window = make_window(demo_project)
    assert window.set_model_path(None)  # the bundled detector the bundled refiner was trained behind
    session = window.session
    window.select_row(0)
    for item in demo_project.annotations.for_image(session.record.id):  # an image nobody has labelled yet
        demo_project.annotations.delete_item(item.id)
    session.show_image(demo_project.images.get(session.record.id))
    qtbot.waitUntil(lambda: len(session.unrefined) > 0, timeout=20000)
    assert session.detections is session.unrefined and session.refiner is None  # off until asked for

    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.canvas.setFocus()  # the user works on the image (the list's filter field would take the letter)
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: session.refinement_state().startswith("refined by"), timeout=20000)
    assert window.params_panel.refine.isChecked()
    assert "refined by" in window.params_panel.refine_state.text()
    assert len(session.detections) == len(session.unrefined) and _moved(session)
    for refined, decoded in zip(session.detections, session.unrefined, strict=True):
        assert refined.category_id == decoded.category_id and np.array_equal(refined.box, decoded.box)
    runs = session.refiner.runs

    # a slider move re-decodes but never refines: the decoder's landmarks are shown until the sliders rest
    gamma = window.params_panel.numbers["gamma"]
    gamma.slider.setFocus()
    qtbot.keyClick(gamma.slider, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: session.refinement_state().startswith("waiting")
                    and session.detections is session.unrefined, timeout=5000)
    assert session.refiner.runs == runs and session.params.gamma < window.params_panel.defaults().gamma
    qtbot.waitUntil(lambda: session.refinement_state().startswith("refined by"), timeout=20000)
    assert session.refiner.runs == runs + 1

    window.canvas.setFocus()
    # Shift+B: the canvas draws the decoder's positions beside the refined ones
    qtbot.keyClick(window, Qt.Key.Key_B, Qt.KeyboardModifier.ShiftModifier)
    graphics = window.canvas.detection_graphics()
    assert graphics and all(g.before is not None for g in graphics)
    for g in graphics:
        assert np.allclose(g.before, session.unrefined[g.index].landmarks[:, :2])

    # what is accepted is what is shown: the refined landmarks
    shown = {g.index for g in graphics}
    qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: len(session.items) == len(shown), timeout=5000)
    stored = sorted(item.landmarks[:, 0].sum() for item in session.items)
    expected = sorted(session.detections[i].landmarks[:, 0].sum() for i in shown)
    assert np.allclose(stored, expected, atol=1e-3)

    # another detector (the int8 twin): its own detections, refined anew (never the other model's refined garments)
    refined_before = session.detections
    assert window.set_model_path(default_refiner_path().parent / "deepmark-default-int8.onnx")
    qtbot.waitUntil(lambda: session.refinement_state().startswith("refined by"), timeout=20000)
    assert session.detections is not refined_before and len(session.detections) == len(session.unrefined)
    for refined, decoded in zip(session.detections, session.unrefined, strict=True):
        assert np.array_equal(refined.box, decoded.box)

    offer = getattr(window, "last_message_box", None)  # the int8 model recommends other parameters: keep ours
    if offer is not None and offer.isVisible():
        offer.button(offer.StandardButton.No).click()
    window.activateWindow()
    window.canvas.setFocus()
    # off again: the decoder's landmarks
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ShiftModifier)
    assert not window.params_panel.refine.isChecked() and session.detections is session.unrefined


def test_a_refiner_behind_another_detector_loads_with_a_warning(qtbot, window):
    assert window.session.load_refiner()  # the bundled refiner, trained behind the fp32 model; here the tiny one
    message = window.statusBar().currentMessage()
    assert "deepmark-refiner-fp32.onnx loaded, but it was trained behind deepmark-default-fp32.onnx" in message


def test_a_broken_refiner_file_is_refused_and_the_switch_stays_off(qtbot, window, tmp_path):
    broken = tmp_path / "refiner.onnx"
    broken.write_bytes(b"not a model")
    assert not window.session.load_refiner(broken)
    assert "refiner.onnx" in window.statusBar().currentMessage()
    assert window.session.refiner is None
    # a detector is no refiner either
    assert not window.session.load_refiner(window.session.model.path)
    assert window.session.refiner is None and not window.session.refine_on


def test_refinement_runs_off_the_gui_thread_as_the_app_runs_it(qtbot, demo_project, monkeypatch):
    import threading

    from deepmark.app.window import MainWindow
    from deepmark.core.domain.structures import PostprocessParams
    from deepmark.core.studio.refinement import LiveRefiner

    threads = []
    real_refine = LiveRefiner.refine

    def refine(self, image, detections):
        threads.append(threading.current_thread() is threading.main_thread())
        return real_refine(self, image, detections)

    monkeypatch.setattr(LiveRefiner, "refine", refine)
    window = MainWindow(PostprocessParams.all_techniques())  # as the app runs: network and refinement in the background
    qtbot.addWidget(window)
    window.show()
    assert window.set_model_path(None)
    window.set_project(demo_project)
    session = window.session
    qtbot.waitUntil(lambda: len(session.unrefined) > 0, timeout=30000)
    window.params_panel.refine.click()
    assert session.refine_on
    qtbot.waitUntil(lambda: session.refinement_state().startswith("refined by"), timeout=30000)
    assert threads == [False] and _moved(session)
    # the next image: decoded, then refined in the background too, and its result replaces the decoder's
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.canvas.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: session.refinement_state().startswith("refined by") and session.detections
                    and session.detections is not session.unrefined, timeout=30000)
    assert threads == [False, False]
