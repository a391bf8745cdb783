"""Batch jobs: the detector over a selection or the whole project (``deepmark.core.studio.batch.run_batch``) as a
``BackgroundTask``, with a progress bar, rate, time left and Cancel in the status bar.

The window stays responsive: the worker does the reading, the network, decoding and storing; the GUI
thread only gets throttled progress (at most every ``PROGRESS_MS``), a signal when the image currently
shown has been processed (that one view refreshes), and the report at the end (the list rows of the
processed images are re-read once, the counts updated, failures listed by file name).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QWidget

from deepmark.app.background_task import BackgroundTask
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import Project
from deepmark.core.studio.batch import BatchProgress, BatchReport, run_batch
from deepmark.core.util.duration import format_duration

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

PROGRESS_MS = 100


def progress_text(p: BatchProgress) -> str:
    """"N/M · x img/s · time left" (and the failures so far)."""
    text = f"{p.done:,}/{p.total:,} · {p.rate:.1f} img/s · {format_duration(p.eta_s)} left"
    return text + (f" · {p.errors} failed" if p.errors else "")


class JobPanel(QWidget):
    """Status-bar widget: progress bar, "N/M · x img/s · time left", Cancel. Hidden while no job runs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(220)
        self.label = QLabel("")
        self.cancel = QPushButton("Cancel")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.label)
        layout.addWidget(self.cancel)
        self.hide()

    def start(self, total: int) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(0)
        self.label.setText(f"0/{total:,} · starting…")
        self.cancel.setEnabled(True)
        self.show()

    def update_progress(self, p: BatchProgress) -> None:
        self.bar.setValue(p.done)
        self.label.setText(progress_text(p))


class JobController(QObject):
    """The window's batch jobs (one at a time): ``start(ids)``, ``cancel()``, ``stop()``. Each job is a
    ``BackgroundTask`` running ``run_batch``; ``reported`` carries its BatchProgress (throttled), and the
    image currently shown is re-decoded as soon as the job has processed it."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.panel = JobPanel()
        window.statusBar().addPermanentWidget(self.panel)
        self.panel.cancel.clicked.connect(self.cancel)
        self.task: BackgroundTask | None = None
        self.project: Project | None = None  # the project the running job writes into
        self.watched: int | None = None  # the image shown; read by the job's thread
        self.last_report: BatchReport | None = None
        self._last_emit = 0.0
        window.image_view.selectionModel().currentChanged.connect(self._follow)

    def running(self) -> bool:
        return self.task is not None and self.task.isRunning()

    def start(self, image_ids: list[int]) -> bool:
        window, session = self.window, self.window.session
        if self.running():
            window.show_error("a job is already running (cancel it first)")
            return False
        if session.project is None or session.model is None:
            window.show_error("open a project and choose a model first")
            return False
        if not image_ids:
            window.show_error("no images to run the model on")
            return False
        # prepared on the GUI thread: the live model is not shared with the job, only its run and disk cache
        live, project, params, ids = session.model, session.project, window.params(), list(image_ids)
        try:
            run_id = live.run_id(project, params)
        except DeepMarkError as exc:
            window.show_error(f"the job cannot start: {exc}", dialog=True)
            return False
        disk = live.cache.disk
        model_key = live.model_key if disk is not None else None
        detector, tta = live.detector, live.tta

        def work(_progress, cancel):
            return run_batch(project, detector, ids, params, run_id=run_id, tta=tta, heads_cache=disk,
                             model=model_key, progress=self._forward, cancel=cancel)

        task = BackgroundTask(work, self)
        task.reported.connect(self._progressed)
        task.succeeded.connect(self._completed)
        task.failed.connect(self._failed)
        self.task, self.project = task, project
        self.watched = session.record.id if session.record is not None else None
        self._last_emit = 0.0
        self.panel.start(len(ids))
        window.show_info(f"running {live.path.name} on {len(ids):,} images…")
        task.start()
        return True

    def _forward(self, p: BatchProgress) -> None:
        """In the job's thread: pass progress on at most every PROGRESS_MS, and always for the shown image."""
        now = time.monotonic()
        if p.image_id == self.watched or now - self._last_emit >= PROGRESS_MS / 1000 or p.done == p.total:
            self._last_emit = now
            self.task.report(p)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.panel.cancel.setEnabled(False)
            self.panel.label.setText(self.panel.label.text() + " · cancelling…")

    def stop(self, wait_ms: int = 30000) -> None:
        """Cancel and wait for the job (before the project closes)."""
        if self.task is not None:
            self.task.stop(wait_ms)
            self._finish()

    def _follow(self, current, _previous) -> None:
        if self.task is not None and current.isValid() and current.row() < self.window.image_model.rowCount():
            self.watched = self.window.image_model.record(current.row()).id

    def _progressed(self, p: BatchProgress) -> None:
        self.panel.update_progress(p)
        session = self.window.session
        if p.image_id is not None and session.record is not None and session.record.id == p.image_id \
                and session.rgb is not None:
            session.run_model()  # its heads are in the cache now: decoded and shown, no network run

    def _finish(self) -> Project | None:
        task, project = self.task, self.project
        self.task, self.project = None, None
        self.panel.hide()
        if task is not None:
            task.wait()
            task.deleteLater()
        return project

    def _completed(self, report: BatchReport) -> None:
        project = self._finish()
        self.last_report = report
        window = self.window
        session = window.session
        if project is not None and session.project is project:
            window.image_model.refresh_ids(report.processed_ids)
            window.doubts.reload()  # the job scored each image's doubt
            if session.record is not None and session.record.id in report.processed_ids:
                window.refresh_row(session.record.id)
            window.update_counts()
        window.show_info(f"{session.model.path.name if session.model else 'model'}: {report.summary()}")
        if report.errors:
            details = "\n".join(str(e) for e in report.errors[:20])
            more = f"\n… and {len(report.errors) - 20} more" if len(report.errors) > 20 else ""
            window.show_error(f"{len(report.errors)} images could not be processed:\n{details}{more}", dialog=True)

    def _failed(self, message: str) -> None:
        self._finish()
        self.window.show_error(f"the job stopped: {message}", dialog=True)


def jobs_of(window: MainWindow) -> JobController:
    """The window's job controller (made on first use)."""
    if window.jobs is None:
        window.jobs = JobController(window)
    return window.jobs


def run_on_selected(window: MainWindow) -> None:
    from deepmark.app.image_list import selected_image_ids

    ids = selected_image_ids(window)
    if not ids and window.session.record is not None:
        ids = [window.session.record.id]
    jobs_of(window).start(ids)


def run_on_all(window: MainWindow) -> None:
    if window.session.project is None:
        window.show_error("open a project first")
        return
    if window.session.model is None:
        window.show_error("choose a model first (Model → Choose model file…)")
        return
    try:
        ids = window.session.project.images.ids()
    except DeepMarkError as exc:
        window.show_error(str(exc))
        return
    box = QMessageBox(QMessageBox.Icon.Question, "Run on all images", run_all_question(window, len(ids)),
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, window)
    box.setDefaultButton(QMessageBox.StandardButton.Yes)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.accepted.connect(lambda: jobs_of(window).start(ids))
    box.open()  # window-modal, no nested event loop
    window.last_message_box = box


def run_all_question(window: MainWindow, count: int) -> str:
    """What running the model on ``count`` images will take, as far as this session has measured."""
    seconds = window.session.model.seconds_per_image()
    if seconds is None:
        estimate = "the time per image is not measured yet (run the model on one image first for an estimate)"
    else:
        estimate = (f"about {format_duration(seconds * count)} at {seconds:.2f} s per image as measured here "
                    "(less for images whose results are cached already)")
    return (f"Run {window.session.model.path.name} on all {count:,} images of the project? It takes {estimate}. "
            "It runs in the background; you can go on working and cancel it.")


def stop_jobs(window: MainWindow) -> None:
    """Cancel a running job and wait for it (the project is about to close or change)."""
    controller = window.jobs
    if controller is not None:
        controller.stop()
