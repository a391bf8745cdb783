"""One ``core`` call run in a QThread for the tuning view and the import / export dialogs: progress, the
result or the error come back through signals (delivered in the GUI thread); cancellable through a
``threading.Event`` that the call polls, or that its progress callback checks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThread, Signal

from deepmark.core.errors import Cancelled, DeepMarkError

TaskFn = Callable[[Callable[[int, int, str], None], threading.Event], Any]
"""``fn(progress(done, total, stage), cancel)`` → the task's result."""


class BackgroundTask(QThread):
    """Runs ``fn`` once in its own thread. ``progressed(done, total, stage)`` while it runs; then exactly one
    of ``succeeded(result)``, ``failed(message)`` or ``cancelled()``."""

    progressed = Signal(int, int, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, fn: TaskFn, parent=None) -> None:
        super().__init__(parent)
        self.fn = fn
        self.cancel_flag = threading.Event()

    def cancel(self) -> None:
        self.cancel_flag.set()

    def stop(self, timeout_ms: int = 30000) -> None:
        """Ask the task to stop and wait for its thread (before its owner goes away)."""
        self.cancel_flag.set()
        if self.isRunning():
            self.wait(timeout_ms)

    def _progress(self, done: int, total: int, stage: str = "") -> None:
        """Report progress; once cancelled, raise Cancelled to stop a ``core`` call that reports progress but
        has no cancel flag of its own (exports stage their files, imports commit whole batches)."""
        self.progressed.emit(int(done), int(total), str(stage))
        if self.cancel_flag.is_set():
            raise Cancelled("cancelled")

    def run(self) -> None:
        try:
            result = self.fn(self._progress, self.cancel_flag)
        except Cancelled:
            self.cancelled.emit()
        except DeepMarkError as exc:
            if self.cancel_flag.is_set():
                self.cancelled.emit()
            else:
                self.failed.emit(str(exc))
        except Exception as exc:  # a bug in a task must reach the window, not die silently in the thread
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            if self.cancel_flag.is_set():
                self.cancelled.emit()
            else:
                self.succeeded.emit(result)
