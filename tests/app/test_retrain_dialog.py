"""Model → Retrain on accepted images…, driven by clicks: Start exports the accepted images and starts the
training process (the status follows it), Cancel stops it and leaves it resumable, reopening the project
offers Resume / Discard, and a finished job's comparison table and "Use the new model" switch the app's model
together with its tuned post-processing. The whole training is tested in tests/core/studio/test_retrain.py."""

from __future__ import annotations

import shutil
from dataclasses import asdict

from PySide6.QtCore import Qt

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.formats.model_file import set_recommended_params
from deepmark.core.store import Project
from deepmark.core.store.predictions import file_sha256
from deepmark.core.store.presets import project_params
from deepmark.core.studio.retrain import RetrainJob, RetrainOptions, jobs_root

QUICK = RetrainOptions(epochs=2, batch_size=2, max_steps_per_epoch=1, workers=0, val_fraction=0.3, tune_step=0.5,
                       device="cpu", overrides={"data": {"input_size": [128, 128]}})


def _accept_all(project: Project) -> None:
    for image_id in project.images.ids():
        project.images.set_status(image_id, "accepted")


def _open_dialog(window, qtbot):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: window.retrain.dialog is not None and window.retrain.dialog.isVisible())
    return window.retrain.dialog


def test_start_progress_cancel_and_resume_offer_after_reopening(make_window, demo_project, qtbot):
    _accept_all(demo_project)
    window = make_window(demo_project)
    window.retrain.options = QUICK
    dialog = _open_dialog(window, qtbot)
    assert "8 accepted" in dialog.summary.text() and "random weights" in dialog.start_from.text()
    assert not dialog.cancel_button.isEnabled() and not dialog.use_button.isEnabled()
    dialog.epochs.setValue(2)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.retrain.job is not None, timeout=30000)
    job = window.retrain.job
    assert job.record.state == "training" and job.record.pid
    qtbot.waitUntil(lambda: dialog.status.text().startswith("training: epoch 1/2"), timeout=5000)
    assert dialog.cancel_button.isEnabled() and not dialog.start_button.isEnabled()
    split = job.record.split
    assert len(split["train"]) + len(split["validation"]) == 8

    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert window.retrain.progress.state == "cancelled" and "can be resumed" in dialog.status.text()
    assert dialog.resume_button.isEnabled() and dialog.start_button.isEnabled()
    project_file = demo_project.file
    window.close()

    reopened = Project.open(project_file, root=demo_project.root)
    second = make_window(reopened)  # opening the project offers the job
    box = second.retrain.offer_box
    assert box is not None and f"job {job.id}" in box.text()
    resume = next(b for b in box.buttons() if b.text() == "Resume")
    qtbot.mouseClick(resume, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: second.retrain.job is not None and second.retrain.progress.running, timeout=10000)
    assert second.retrain.job.id == job.id and second.retrain.job.record.state == "training"
    second.close()  # closing the window stops the job again: resumable, nothing left running
    with Project.open(project_file) as check:
        assert check.training.get(job.id).state == "cancelled" and check.training.get(job.id).pid is None


def test_discard_from_the_offer(make_window, demo_project, qtbot):
    _accept_all(demo_project)
    first = make_window(demo_project)
    first.retrain.options = QUICK
    first.retrain.start(2, "cpu")
    qtbot.waitUntil(lambda: first.retrain.job is not None, timeout=30000)
    job_dir = first.retrain.job.job_dir
    project_file = demo_project.file
    first.close()
    second = make_window(Project.open(project_file, root=demo_project.root))
    box = second.retrain.offer_box
    qtbot.mouseClick(next(b for b in box.buttons() if b.text() == "Discard"), Qt.MouseButton.LeftButton)
    assert second.session.project.training.list()[-1].state == "discarded" and not job_dir.exists()
    assert "discarded" in second.statusBar().currentMessage()


def test_too_few_accepted_images_is_one_line(window, qtbot):
    dialog = _open_dialog(window, qtbot)
    assert "0 accepted" in dialog.summary.text()
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.status.text().startswith("failed:"), timeout=10000)
    assert "\n" not in dialog.status.text() and "0 accepted image(s)" in dialog.status.text()
    assert window.retrain.job is None and dialog.start_button.isEnabled()


def test_finished_job_shows_the_comparison_and_use_the_new_model_switches_model_and_params(
        make_window, demo_project, tiny_model, qtbot):
    """A finished job (as the core writes it) after a restart: the table compares both models; one click loads
    the new one with its tuned parameters, no question asked."""
    project = demo_project
    tuned = PostprocessParams.all_techniques(alpha=0.35, sigma_center=0.2, sigma_keypoint=0.6, gamma=0.8,
                                             score_threshold=0.0)
    job_dir = jobs_root(project) / "0001"
    job_dir.mkdir(parents=True)
    new_model = job_dir / "model.onnx"
    shutil.copyfile(tiny_model, new_model)
    set_recommended_params(new_model, asdict(tuned))
    record = project.training.add(job_dir, base_model_path=str(tiny_model))
    ids = project.images.ids()[:3]
    metrics = {"current": {"map_pt": 0.41, "map_box": 0.52, "per_category_pt": {"1": 0.4, "2": None}},
               "new": {"map_pt": 0.47, "map_box": 0.5, "per_category_pt": {"1": 0.5, "2": None}}}
    for label, path in (("current", tiny_model), ("new", new_model)):
        project.training.add_evaluation(label, path, file_sha256(path), ids, metrics[label],
                                        asdict(tuned) if label == "new" else None, training_job_id=record.id)
    project.training.update(record.id, state="done", model_path=str(new_model))

    window = make_window(project)
    assert window.retrain.offer_box is None  # a finished job is nothing to resume
    dialog = _open_dialog(window, qtbot)
    table = dialog.table
    cells = [[table.item(r, c).text() for c in range(3)] for r in range(table.rowCount())]
    assert cells[0] == ["mAP_pt (3 images)", "0.410", "0.470"] and cells[1] == ["mAP_box", "0.520", "0.500"]
    assert cells[2][0].strip().startswith("short sleeve top") and cells[2][1:] == ["0.400", "0.500"]
    assert dialog.use_button.isEnabled()
    qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert window.session.model.path == new_model
    assert window.params() == tuned and window.session.params == tuned
    box = window.last_message_box
    assert box is None or not box.isVisible()  # no "use the model's values?" question
    assert project_params(project) == tuned  # kept in the project


def test_a_job_running_for_a_script_is_followed_and_left_running(make_window, demo_project, qtbot):
    _accept_all(demo_project)
    script = RetrainJob.start(demo_project, options=QUICK)  # headless, e.g. a benchmark
    window = make_window(demo_project)
    assert window.retrain.offer_box is None and window.retrain.job.id == script.id
    assert window.retrain.progress.running and f"job {script.id}" in window.statusBar().currentMessage()
    dialog = _open_dialog(window, qtbot)
    assert dialog.status.text().startswith("training:") and dialog.cancel_button.isEnabled()
    window.close()
    assert script.poll().running  # not the window's to stop
    script.cancel()
