"""Background jobs: the detector over a selection or the whole project (``deepmark.core.studio.batch.run_batch``) on a
worker QThread, with a progress bar, rate, time left and Cancel in the status bar.

The window stays responsive: the worker does the reading, the network, decoding and storing; the GUI
thread only gets throttled progress (at most every ``PROGRESS_MS``), a signal when the image currently
shown has been processed (that one view refreshes), and the report at the end (the list rows of the
processed images are re-read once, the counts updated, failures listed by file name).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from deepmark.core.errors import DeepMarkError
from deepmark.core.studio.batch import BatchProgress, BatchReport, run_batch

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

PROGRESS_MS = 100


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def progress_text(p: BatchProgress) -> str:
    """"N/M · x img/s · time left" (and the failures so far)."""
    text = f"{p.done:,}/{p.total:,} · {p.rate:.1f} img/s · {format_duration(p.eta_s)} left"
    return text + (f" · {p.errors} failed" if p.errors else "")


class BatchWorker(QThread):
    """Runs ``run_batch`` off the GUI thread. Signals arrive on the GUI thread: ``progressed`` (throttled),
    ``image_done(id)`` for the ``watched`` image only, ``completed(report)`` or ``failed(message)``."""

    progressed = Signal(object)
    image_done = Signal(int)
    completed = Signal(object)
    failed = Signal(str)

    def __init__(self, window: MainWindow, image_ids: list[int], parent: QObject | None = None) -> None:
        super().__init__(parent)
        live, project = window.session.model, window.session.project
        params = window.params()
        self.project, self.detector, self.image_ids, self.params = project, live.detector, image_ids, params
        # prepared on the GUI thread: the live model is not shared with the worker, only its run and cache
        self.run_id = live.run_id(project, params)
        self.tta = live.tta
        self.heads_cache = live.cache.disk
        self.model_key = live.model_key if live.cache.disk is not None else None
        self.cancel_event = threading.Event()
        self.watched: int | None = window.session.record.id if window.session.record is not None else None
        self._last_emit = 0.0

    def run(self) -> None:
        try:
            report = run_batch(self.project, self.detector, self.image_ids, self.params, run_id=self.run_id,
                               tta=self.tta, heads_cache=self.heads_cache, model=self.model_key,
                               progress=self._progress, cancel=self.cancel_event)
        except DeepMarkError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug must end the job visibly, never kill the thread silently
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.completed.emit(report)

    def _progress(self, p: BatchProgress) -> None:
        if p.image_id is not None and p.image_id == self.watched:
            self.image_done.emit(p.image_id)
        now = time.monotonic()
        if now - self._last_emit >= PROGRESS_MS / 1000 or p.done == p.total:
            self._last_emit = now
            self.progressed.emit(p)


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
    """The window's batch jobs (one at a time): ``start(ids)``, ``cancel()``, ``stop()``."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.panel = JobPanel()
        window.statusBar().addPermanentWidget(self.panel)
        self.panel.cancel.clicked.connect(self.cancel)
        self.worker: BatchWorker | None = None
        self.last_report: BatchReport | None = None
        window.image_view.selectionModel().currentChanged.connect(self._follow)

    def running(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    def start(self, image_ids: list[int]) -> bool:
        window = self.window
        if self.running():
            window.show_error("a job is already running (cancel it first)")
            return False
        if window.session.project is None or window.session.model is None:
            window.show_error("open a project and choose a model first")
            return False
        if not image_ids:
            window.show_error("no images to run the model on")
            return False
        try:
            worker = BatchWorker(window, list(image_ids), self)
        except DeepMarkError as exc:
            window.show_error(f"the job cannot start: {exc}", dialog=True)
            return False
        worker.progressed.connect(self.panel.update_progress)
        worker.image_done.connect(self._image_done)
        worker.completed.connect(self._completed)
        worker.failed.connect(self._failed)
        self.worker = worker
        self.panel.start(len(image_ids))
        window.show_info(f"running {window.session.model.path.name} on {len(image_ids):,} images…")
        worker.start()
        return True

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel_event.set()
            self.panel.cancel.setEnabled(False)
            self.panel.label.setText(self.panel.label.text() + " · cancelling…")

    def stop(self, wait_ms: int = 30000) -> None:
        """Cancel and wait for the worker (before the project closes)."""
        if self.worker is not None:
            self.worker.cancel_event.set()
            self.worker.wait(wait_ms)
            self._finish()

    def _follow(self, current, _previous) -> None:
        if self.worker is not None and current.isValid() and current.row() < self.window.image_model.rowCount():
            self.worker.watched = self.window.image_model.record(current.row()).id

    def _image_done(self, image_id: int) -> None:
        window = self.window
        current = window.session.record
        if current is not None and current.id == image_id and window.session.rgb is not None:
            window.session.run_model()  # its heads are in the cache now: decoded and shown, no network run

    def _finish(self) -> BatchWorker | None:
        worker, self.worker = self.worker, None
        self.panel.hide()
        return worker

    def _completed(self, report: BatchReport) -> None:
        worker = self._finish()
        self.last_report = report
        window = self.window
        if worker is not None and window.session.project is worker.project:
            window.image_model.refresh_ids(report.processed_ids)
            if window.session.record is not None and window.session.record.id in report.processed_ids:
                window.refresh_row(window.session.record.id)
            window.update_counts()
        window.show_info(f"{window.session.model.path.name if window.session.model else 'model'}: {report.summary()}")
        if report.errors:
            details = "\n".join(str(e) for e in report.errors[:20])
            more = f"\n… and {len(report.errors) - 20} more" if len(report.errors) > 20 else ""
            window.show_error(f"{len(report.errors)} images could not be processed:\n{details}{more}", dialog=True)

    def _failed(self, message: str) -> None:
        self._finish()
        self.window.show_error(f"the job stopped: {message}", dialog=True)


def jobs_of(window: MainWindow) -> JobController:
    """The window's job controller (made on first use)."""
    controller = getattr(window, "jobs", None)
    if controller is None:
        controller = window.jobs = JobController(window)
    return controller


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
    try:
        ids = window.session.project.images.ids()
    except DeepMarkError as exc:
        window.show_error(str(exc))
        return
    jobs_of(window).start(ids)


def stop_jobs(window: MainWindow) -> None:
    """Cancel a running job and wait for it (the project is about to close or change)."""
    controller = getattr(window, "jobs", None)
    if controller is not None:
        controller.stop()
