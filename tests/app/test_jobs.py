"""Batch jobs from the window: the model over all or selected images on a worker thread, progress in the
status bar, cancel, a corrupt image reported while the rest is processed, the shown image refreshed once
(not every image), and afterwards post-processing changes never re-run the network. Model information."""

from PySide6.QtCore import QItemSelectionModel

import deepmark.app.jobs as jobs
from deepmark.app.jobs import jobs_of, progress_text, run_on_all, run_on_selected
from deepmark.app.model_dialog import show_model_info
from deepmark.core.studio.batch import BatchProgress


def _wait_done(qtbot, window, timeout=30000):
    qtbot.waitUntil(lambda: not jobs_of(window).running() and jobs_of(window).task is None, timeout=timeout)
    return jobs_of(window).last_report


def _run_on_all(window) -> None:
    """Model → Run on all images, then Yes in the confirmation, which says how long it will take."""
    from PySide6.QtWidgets import QMessageBox

    run_on_all(window)
    box = window.last_message_box
    count = window.session.project.images.count()
    assert f"all {count:,} images" in box.text() and "s per image as measured here" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()


def test_run_on_all_images(window, demo_project, qtbot, isolated_cache, monkeypatch):
    shown = window.session.record.id
    calls = []
    original = window.session.run_model
    monkeypatch.setattr(window.session, "run_model", lambda: (calls.append(window.session.record.id), original())[1])
    runs_before = window.session.model.runs
    _run_on_all(window)
    assert jobs_of(window).panel.isVisible() or jobs_of(window).last_report is not None
    report = _wait_done(qtbot, window)
    assert not report.errors and len(report.processed_ids) == 8
    # the first image was already detected when shown: stored once, under the same run
    assert report.already == 1 and report.stored == 7 and report.network_runs == 7
    run_id = window.session.model.run_id(demo_project, window.params())
    for record in demo_project.images.page():
        assert demo_project.predictions.for_image(record.id, run_id)
        assert record.status == "predicted"
    assert len(demo_project.model_runs.list()) == 1
    assert len(list((isolated_cache / "heads").rglob("*.npz"))) == 8  # the shown image's too
    assert calls in ([], [shown])  # the view refreshed at most for the image shown, never per image
    assert window.session.model.runs == runs_before  # the job ran the network, not the live model
    assert all(window.image_model.record(r).status == "predicted" for r in range(8))  # rows re-read once
    assert "8/8 images" in window.statusBar().currentMessage()

    # afterwards: another image's heads come from the disk cache, and sliders only re-decode
    window.select_row(4)
    assert window.session.detections and window.session.model.runs == runs_before
    window.params_panel.numbers["score_threshold"].spin.setValue(0.5)
    qtbot.wait(50)
    window.params_panel.numbers["score_threshold"].spin.setValue(0.0)
    qtbot.waitUntil(lambda: len(window.session.detections) > 0, timeout=2000)
    assert window.session.model.runs == runs_before


def test_run_on_selected_images(window, demo_project, qtbot):
    selection = window.image_view.selectionModel()
    selection.clearSelection()
    for row in (2, 3):
        selection.select(window.image_model.index(row), QItemSelectionModel.SelectionFlag.Select)
    run_on_selected(window)
    report = _wait_done(qtbot, window)
    assert report.total == 2 and sorted(report.processed_ids) == sorted(
        window.image_model.record(r).id for r in (2, 3))
    assert not demo_project.predictions.for_image(window.image_model.record(5).id)


def test_cancel_stops_the_job_early(window, demo_project, qtbot, monkeypatch):
    real = jobs.run_batch

    def cancelling(*args, progress, cancel, **kwargs):
        def progress_then_cancel(p: BatchProgress) -> None:
            progress(p)
            if p.done == 2:
                window.jobs.cancel()  # as the Cancel button does (setting a thread-safe flag)
        return real(*args, progress=progress_then_cancel, cancel=cancel, **kwargs)

    monkeypatch.setattr(jobs, "run_batch", cancelling)
    _run_on_all(window)
    report = _wait_done(qtbot, window)
    assert report.cancelled and len(report.processed_ids) == 2
    assert "cancelled" in window.statusBar().currentMessage()
    assert not jobs_of(window).panel.isVisible()


def test_a_corrupt_image_is_reported_and_the_rest_processed(window, demo_project, qtbot, tmp_path):
    import cv2
    import numpy as np

    bad = tmp_path / "corrupt.jpg"
    cv2.imwrite(str(bad), np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    record = demo_project.images.add(bad)
    bad.write_bytes(bad.read_bytes()[:300])
    _run_on_all(window)
    report = _wait_done(qtbot, window)
    assert [e.path.name for e in report.errors] == ["corrupt.jpg"]
    assert len(report.processed_ids) == 8 and record.id not in report.processed_ids
    assert "corrupt.jpg" in window.last_message_box.text()
    assert "1 images could not be processed" in window.last_message_box.text()


def test_a_second_job_waits_for_the_first(window, qtbot):
    assert jobs_of(window).start(window.session.project.images.ids())
    assert not jobs_of(window).start([1])
    assert "already running" in window.statusBar().currentMessage()
    _wait_done(qtbot, window)


def test_progress_text():
    p = BatchProgress(done=30, total=90, errors=1, elapsed_s=10.0)
    assert progress_text(p) == "30/90 · 3.0 img/s · 20 s left · 1 failed"
    assert "…" in progress_text(BatchProgress(0, 5, 0, 0.0))
    assert "1 min 40 s" in jobs.format_duration(100) and "1 h 00 min" in jobs.format_duration(3600)


def test_model_information(window, tiny_model):
    dialog = show_model_info(window)
    assert dialog is not None and dialog.isVisible()
    assert dialog.labels["File"].text() == str(tiny_model)
    assert dialog.labels["Architecture"].text() == "mobilenetv2"
    assert dialog.labels["Input size"].text().startswith("128 × 128")
    assert "semantic62: 62 landmark heatmaps" in dialog.labels["Grouping"].text()
    assert dialog.labels["Categories"].text().startswith("13: 1 short sleeve top")
    assert "hm" in dialog.labels["Outputs"].text() and "ONNX" in dialog.labels["Format"].text()
    dialog.close()


def test_a_checkpoint_can_be_chosen(window, tmp_path, semantic62, qtbot):
    import torch

    from deepmark.core.network import build_model

    model = build_model("mobilenetv2", semantic62, head_conv=32).eval()
    checkpoint = {"version": 1, "model": model.state_dict(), "arch": "mobilenetv2", "head_conv": 32,
                  "grouping": "semantic62", "input_size": [128, 96]}
    torch.save(checkpoint, tmp_path / "model.pt")
    assert window.set_model_path(tmp_path / "model.pt")
    assert window.session.model.path.suffix == ".pt" and window.session.detections
    dialog = show_model_info(window)
    assert "checkpoint" in dialog.labels["Format"].text()
    _run_on_all(window)
    report = _wait_done(qtbot, window)
    assert not report.errors and len(report.processed_ids) == 8
