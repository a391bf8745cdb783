"""Model → Retrain on accepted images…: a training job on the project's accepted images
(``deepmark.core.studio.retrain``), its progress, Cancel, and at the end the current and the new model side
by side on the same held-out images, with one button to switch to the new model and its tuned
post-processing.

Nothing here blocks the GUI thread: the export runs in a ``BackgroundTask``, the training and the evaluation
in processes of their own; a timer reads their progress. The job talks to the store through a project
connection of its own, so opening another project does not disturb it. Closing the window stops a running
job (its checkpoint stays); opening the project again offers to resume or discard it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from deepmark.app.background_task import BackgroundTask
from deepmark.core.errors import DeepMarkError
from deepmark.core.inference.detector import default_model_path
from deepmark.core.store import Project
from deepmark.core.store.predictions import file_sha256
from deepmark.core.studio.retrain import (
    RetrainError,
    RetrainJob,
    RetrainOptions,
    RetrainProgress,
    RetrainResult,
    base_checkpoint,
    planned_split,
    training_unavailable,
)

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

POLL_MS = 500
DEVICES = ("auto", "cpu", "cuda")


def _own_project(project: Project) -> Project:
    """A second connection to ``project`` for the job (it outlives a project switch in the window)."""
    return Project.open(project.file or project.engines.url, root=project.root, author=project.author)


def _cell(value: object) -> str:
    return "—" if not isinstance(value, (int, float)) or math.isnan(value) else f"{value:.3f}"


class RetrainController(QObject):
    """The window's one retraining job: start, follow (a timer), cancel, resume, use its model."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.job: RetrainJob | None = None
        self.progress: RetrainProgress | None = None
        self.preparing: BackgroundTask | None = None
        self.dialog: RetrainDialog | None = None
        self.offer_box: QMessageBox | None = None  # "a training job was interrupted — Resume / Discard"
        self.failure: str | None = None  # why the last start failed (shown until the next start)
        self.started_job: RetrainJob | None = None  # the job the last start made (set in its thread)
        self.owned = False  # the job followed was started or resumed here
        self.options = RetrainOptions()
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        window.session.events.connect("project", self._project_opened)
        window.installEventFilter(self)

    # -- the job ---------------------------------------------------------------------------------------

    def running(self) -> bool:
        return self.preparing is not None or (self.progress is not None and not self.progress.ended)

    def start(self, epochs: int, device: str) -> None:
        """Export and start in the background (the export of a big project takes a while)."""
        window = self.window
        if self.running():
            window.show_error("a training job is already running (cancel it first)")
            return
        if window.session.project is None:
            window.show_error("open a project first")
            return
        try:
            project = _own_project(window.session.project)
        except DeepMarkError as exc:
            window.show_error(f"cannot retrain: {exc}", dialog=True)
            return
        model = window.session.model.path if window.session.model is not None else None
        options = replace(self.options, epochs=epochs, device=device)

        def work(progress, _cancel):
            job = RetrainJob.start(project, model, options, progress=lambda done, total: progress(done, total))
            self.started_job = job  # seen by shutdown even when the window closes before ``succeeded`` arrives
            return job

        self.failure = None
        task = BackgroundTask(work, self)
        task.progressed.connect(lambda done, total, _stage: self._export_progress(done, total))
        task.succeeded.connect(self._started)
        task.failed.connect(lambda message: self._not_started(message, project))
        task.cancelled.connect(lambda: self._not_started("cancelled", project))
        self.preparing = task
        self._changed()
        task.start()

    def _export_progress(self, done: int, total: int) -> None:
        if self.dialog is not None:
            self.dialog.show_export(done, total)

    def _started(self, job: RetrainJob) -> None:
        self.preparing = None
        self._follow(job)

    def _not_started(self, message: str, project: Project) -> None:
        self.preparing = None
        project.close()
        self.failure = message
        self.window.show_error(message, dialog=self.dialog is None or not self.dialog.isVisible())
        self._changed()

    def _follow(self, job: RetrainJob, owned: bool = True) -> None:
        """Follow ``job``; ``owned``: this window started or resumed it (closing the window stops it), else it
        runs for a script or another window and is left running."""
        if self.job is not None and self.job is not job:
            self.job.project.close()
        self.job = job
        self.owned = owned
        self.progress = job.progress()
        self.timer.start()
        self._changed()

    def poll(self) -> None:
        if self.job is None:
            self.timer.stop()
            return
        try:
            self.progress = self.job.poll()
        except DeepMarkError as exc:
            self.timer.stop()
            self.window.show_error(f"the training job cannot be followed: {exc}")
            return
        if self.progress.ended:
            self.timer.stop()
            if self.progress.state == "failed":
                self.window.show_error(f"retraining {self.progress.message}", dialog=self.dialog is None
                                       or not self.dialog.isVisible())
            elif self.progress.state == "done":
                self.window.show_info("retraining finished: the new model and the current one are compared in "
                                      "Model → Retrain on accepted images…")
        self._changed()

    def cancel(self) -> None:
        if self.preparing is not None:
            self.preparing.cancel()
            return
        if self.job is not None:
            self.timer.stop()
            self.progress = self.job.cancel()
            self.window.show_info(f"training job {self.job.id} cancelled; its checkpoint stays (resume it from "
                                  "Model → Retrain on accepted images…)")
            self._changed()

    def resume(self, job_id: int | None = None) -> None:
        if self.window.session.project is None:
            return
        try:
            project = _own_project(self.window.session.project)
            job = RetrainJob.resume(project, job_id)
        except DeepMarkError as exc:
            self.window.show_error(str(exc), dialog=True)
            return
        self._follow(job)

    def follow_latest(self) -> None:
        """With no job followed: the project's newest job when it has finished, so that its comparison (and
        "Use the new model") is there after a restart."""
        project = self.window.session.project
        if self.job is not None or self.preparing is not None or project is None:
            return
        try:
            jobs = project.training.list()
            if jobs and jobs[-1].state == "done":
                self._follow(RetrainJob(_own_project(project), jobs[-1]))
        except DeepMarkError as exc:
            self.window.show_error(f"cannot read the project's training jobs: {exc}")

    def discard(self, job_id: int) -> None:
        if self.window.session.project is None:
            return
        project = self.window.session.project
        try:
            RetrainJob(project, project.training.get(job_id)).discard()
        except DeepMarkError as exc:
            self.window.show_error(str(exc), dialog=True)
            return
        self.window.show_info(f"training job {job_id} discarded")

    def result(self) -> RetrainResult | None:
        if self.job is None or self.progress is None or self.progress.state != "done":
            return None
        try:
            return self.job.result()
        except DeepMarkError as exc:
            self.window.show_error(str(exc))
            return None

    def use_new_model(self) -> bool:
        """Switch the app to the new model WITH its tuned post-processing (kept in the project first, so that
        loading the model has nothing to offer)."""
        result = self.result()
        if result is None:
            return False
        window, session = self.window, self.window.session
        before = session.params
        window.params_panel.set_params(result.params)
        session.params = result.params
        session.save_params()
        if not window.set_model_path(result.model_path):
            window.params_panel.set_params(before)
            session.params = before
            session.save_params()
            window.show_error(window.statusBar().currentMessage(), dialog=True)
            return False
        window.show_info(f"now using {result.model_path} with its tuned post-processing")
        self._changed()
        return True

    def _changed(self) -> None:
        if self.dialog is not None:
            self.dialog.refresh()

    # -- project open / window close ---------------------------------------------------------------------

    def _project_opened(self) -> None:
        project = self.window.session.project
        if project is None or self.running():
            return
        try:
            unfinished = project.training.latest_unfinished()
            if unfinished is None:
                return
            if RetrainJob.interrupted(project) is not None:
                self._offer_resume(unfinished.id, unfinished.state)
                return
            # started by a script or another window, and still running: follow it
            self._follow(RetrainJob(_own_project(project), unfinished), owned=False)
        except DeepMarkError as exc:
            self.window.show_error(f"cannot read the project's training jobs: {exc}")
            return
        self.window.show_info(f"training job {unfinished.id} of this project is running (Model → Retrain on "
                              "accepted images…)")

    def _offer_resume(self, job_id: int, state: str) -> None:
        what = "was cancelled" if state == "cancelled" else "was interrupted"
        box = QMessageBox(QMessageBox.Icon.Question, "DeepMark Studio",
                          f"A training job on this project's accepted images {what} (job {job_id}). Resume it "
                          "from its last checkpoint?", QMessageBox.StandardButton.NoButton, self.window)
        resume = box.addButton("Resume", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(resume)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def chosen(button) -> None:
            if button is resume:
                self.resume(job_id)
            elif button is discard:
                self.discard(job_id)
            self.offer_box = None

        box.buttonClicked.connect(chosen)
        box.open()
        self.offer_box = box

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        if watched is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self) -> None:
        """The window closes: stop the job it started or resumed (its checkpoint stays; reopening the project
        offers to resume it; a job it only follows keeps running) and close the job's connection."""
        if self.preparing is not None:
            self.preparing.stop()
            self.preparing = None
            if self.started_job is not None and self.started_job is not self.job:
                self._follow(self.started_job)  # it started as the window closed: stopped below as any other
        self.timer.stop()
        if self.job is not None:
            if self.owned and self.progress is not None and not self.progress.ended:
                self.job.cancel()
            self.job.project.close()
            self.job = None


class RetrainDialog(QDialog):
    """The dialog: what a job would train on, its settings, Start / Cancel, progress, the comparison and
    "Use the new model"."""

    def __init__(self, window: MainWindow, controller: RetrainController) -> None:
        super().__init__(window)
        self.setWindowTitle("Retrain on accepted images")
        self.window_ = window
        self.controller = controller
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.start_from = QLabel("")
        self.start_from.setWordWrap(True)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(controller.options.epochs)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        form = QFormLayout()
        form.addRow("Images", self.summary)
        form.addRow("Starts from", self.start_from)
        form.addRow("Epochs", self.epochs)
        form.addRow("Device", self.device)
        self.bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["held-out images", "current model", "new model"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 200)
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel training")
        self.resume_button = QPushButton("Resume")
        self.use_button = QPushButton("Use the new model")
        self.close_button = QPushButton("Close")
        self.start_button.clicked.connect(lambda: controller.start(self.epochs.value(), self.device.currentText()))
        self.cancel_button.clicked.connect(controller.cancel)
        self.resume_button.clicked.connect(lambda: controller.resume(controller.job.id if controller.job else None))
        self.use_button.clicked.connect(controller.use_new_model)
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.resume_button, self.use_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.resize(620, 520)
        self.describe_project()
        self.refresh()

    def describe_project(self) -> None:
        """How many accepted images, how they would split, and which weights the job starts from."""
        session = self.window_.session
        if session.project is None:
            self.summary.setText("no project open")
            return
        options = self.controller.options
        try:
            train, validation = planned_split(session.project, options.val_fraction, options.seed)
            path = session.model.path if session.model is not None else default_model_path()
            checkpoint = base_checkpoint(session.project, path, file_sha256(path))
        except DeepMarkError as exc:
            self.summary.setText(f"cannot read the project: {exc}")
            return
        self.summary.setText(f"{train + validation:,} accepted: {train:,} for training, {validation:,} held out for "
                             f"validation ({options.val_fraction:.0%}, by image content: an image keeps its part "
                             "as the project grows)")
        self.start_from.setText(f"{path.name} (checkpoint {checkpoint.name})" if checkpoint is not None else
                                f"random weights, the bundled model's recipe ({path.name} has no training checkpoint)")
        unavailable = training_unavailable()
        if unavailable is not None:
            self.status.setText(unavailable)

    def _resumable(self) -> bool:
        """A cancelled or interrupted job of the open project (the one followed, or one found in the store)."""
        p = self.controller.progress
        if p is not None and p.state == "cancelled":
            return True
        project = self.window_.session.project
        try:
            return project is not None and RetrainJob.interrupted(project) is not None
        except DeepMarkError:
            return False

    def show_export(self, done: int, total: int) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        self.status.setText(f"exporting the accepted images: {done:,}/{total:,}")

    def refresh(self) -> None:
        controller = self.controller
        p = controller.progress
        running = controller.running()
        self.start_button.setEnabled(not running and training_unavailable() is None)
        self.epochs.setEnabled(not running)
        self.device.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.resume_button.setEnabled(not running and self._resumable())
        result = controller.result()
        model = self.window_.session.model
        in_use = result is not None and model is not None and model.path == result.model_path
        self.use_button.setEnabled(result is not None and not in_use)
        self.use_button.setText("The new model is in use" if in_use else "Use the new model")
        if controller.preparing is not None:
            return  # the export reports its own progress
        if p is None:
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.status.setText(f"failed: {controller.failure}" if controller.failure else "")
        else:
            self.bar.setRange(0, max(p.steps_total, 1))
            self.bar.setValue(p.steps_total if p.state in ("finishing", "done") else min(p.step, p.steps_total))
            self.status.setText(self._finished_text(p) if result is not None else p.describe())
        self._fill_table(result)

    def _finished_text(self, p: RetrainProgress) -> str:
        split = self.controller.job.record.split or {}
        return (f"finished (job {p.job_id}): {p.epochs} epochs on {len(split.get('train', [])):,} images; both "
                f"models evaluated on the same {len(split.get('validation', [])):,} held-out images, each with its "
                "post-processing tuned there")

    def _fill_table(self, result: RetrainResult | None) -> None:
        if result is None:
            self.table.setRowCount(0)
            return
        current, new = result.current.metrics, result.new.metrics
        rows = [(f"mAP_pt ({len(result.new.image_ids)} images)", current.get("map_pt"), new.get("map_pt")),
                ("mAP_box", current.get("map_box"), new.get("map_box"))]
        names = {c.id: c.name for c in self.window_.taxonomy.categories}
        for key, a in (current.get("per_category_pt") or {}).items():
            b = (new.get("per_category_pt") or {}).get(key)
            if a is not None or b is not None:
                rows.append((f"  {names.get(int(key), key)} (mAP_pt)", a, b))
        self.table.setRowCount(len(rows))
        for r, (label, a, b) in enumerate(rows):
            for c, text in enumerate((label, _cell(a), _cell(b))):
                item = QTableWidgetItem(text)
                if c and isinstance(a, (int, float)) and isinstance(b, (int, float)) and a != b:
                    better = (b > a) == (c == 2)
                    item.setForeground(Qt.GlobalColor.darkGreen if better else Qt.GlobalColor.darkRed)
                self.table.setItem(r, c, item)


def install_retrain(window: MainWindow) -> RetrainController:
    """The window's retraining controller (made once, when the menus are built: it offers to resume an
    interrupted job as soon as a project opens)."""
    controller = getattr(window, "retrain", None)
    if controller is None:
        controller = RetrainController(window)
        window.retrain = controller
    return controller


def show_retrain_dialog(window: MainWindow) -> RetrainDialog:
    controller = install_retrain(window)
    controller.follow_latest()
    if controller.dialog is None:
        controller.dialog = RetrainDialog(window, controller)
    controller.dialog.describe_project()
    controller.dialog.refresh()
    controller.dialog.show()
    controller.dialog.raise_()
    return controller.dialog


__all__ = ["RetrainController", "RetrainDialog", "RetrainError", "install_retrain", "show_retrain_dialog"]
