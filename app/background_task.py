"""The app's one background-job mechanism: a ``core`` call run in a QThread (batch jobs, adding images, the
tuning view, the import / export dialogs). Progress, the result or the error come back through signals
(delivered in the GUI thread); cancellable through a ``threading.Event`` that the call polls, or that its
progress callback checks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThread, Signal

from deepmark.core.errors import Cancelled, DeepMarkError

TaskFn = Callable[[Callable[[int, int, str], None], threading.Event], Any]
"""``fn(progress(done, total, stage), cancel)`` → the task's result."""


class BackgroundTask(QThread):
    """Runs ``fn`` once in its own thread. ``progressed(done, total, stage)`` while it runs (and ``reported``
    with whatever richer progress value ``fn`` hands to ``report``); then exactly one of ``succeeded(result)``
    (``fn`` returned: also after a cancel that ``fn`` honoured by returning what it had done), ``failed(message)``
    or ``cancelled()`` (``fn`` stopped with Cancelled, or failed once cancelled)."""

    progressed = Signal(int, int, str)
    reported = Signal(object)
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

    def report(self, value: object) -> None:
        """Hand a progress value to the GUI thread (``reported``); callable from ``fn``'s thread."""
        self.reported.emit(value)

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
            self.succeeded.emit(result)
