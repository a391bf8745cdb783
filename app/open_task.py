"""Adding folders and images to the project in the background: walking a folder of 100,000 images and
reading each file's size, dimensions and hash takes minutes, so it runs in a ``BackgroundTask`` with a
progress bar and Cancel in the status bar while the window stays usable. Batches are committed as
they go; adding the same inputs again later finishes a cancelled run (known images are skipped)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from deepmark.app.background_task import BackgroundTask
from deepmark.app.jobs import JobPanel
from deepmark.core.store.interchange import ImportReport
from deepmark.core.studio.display import open_inputs

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow


class AddPanel(JobPanel):
    """The batch jobs' status-bar widget (progress bar, text, Cancel), worded for adding images."""

    def start(self, total: int = 0) -> None:
        super().start(total)
        self.bar.setRange(0, 0)  # busy until the first batch says how many files there are
        self.label.setText("adding images: listing files…")

    def update_progress(self, done: int, total: int, _stage: str = "") -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        self.label.setText(f"adding images: {done:,}/{total:,}")


class AddImagesController(QObject):
    """One add at a time: ``start(paths)``, ``cancel()``, ``running()``, ``stop()`` (window closing).
    When it ends the window re-reads its list (``MainWindow.inputs_added``)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.panel = AddPanel()
        window.statusBar().addPermanentWidget(self.panel)
        self.panel.cancel.clicked.connect(self.cancel)
        self.task: BackgroundTask | None = None
        self.last_report: ImportReport | None = None

    def running(self) -> bool:
        return self.task is not None and self.task.isRunning()

    def start(self, paths: list[str | Path]) -> bool:
        window = self.window
        if self.running():
            window.show_error("images are still being added (cancel that first)")
            return False
        project = window.session.project
        inputs = list(paths)
        task = BackgroundTask(lambda progress, _cancel: open_inputs(
            project, inputs, progress=lambda done, total: progress(done, total, "adding images")), self)
        task.progressed.connect(self.panel.update_progress)
        task.succeeded.connect(self._succeeded)
        task.failed.connect(self._failed)
        task.cancelled.connect(self._cancelled)
        self.task = task
        self.panel.start()
        window.show_info(f"adding {', '.join(Path(p).name for p in inputs[:3])}{'…' if len(inputs) > 3 else ''}")
        task.start()
        return True

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.panel.cancel.setEnabled(False)
            self.panel.label.setText("adding images: cancelling…")

    def stop(self, wait_ms: int = 30000) -> None:
        if self.task is not None:
            self.task.stop(wait_ms)

    def _done(self) -> None:
        self.panel.hide()
        if self.task is not None:
            self.task.wait()
            self.task.deleteLater()
            self.task = None

    def _succeeded(self, report: ImportReport) -> None:
        self._done()
        self.last_report = report
        self.window.inputs_added(report)

    def _failed(self, message: str) -> None:
        self._done()
        self.window.inputs_added(None)
        self.window.show_error(f"adding images failed: {message}", dialog=True)

    def _cancelled(self) -> None:
        self._done()
        self.window.inputs_added(None)
        self.window.show_info("adding images cancelled; the images added so far stay (add again to finish)")
