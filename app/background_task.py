"""The app's one background-job mechanism: a ``core`` call run in a QThread (batch jobs, adding images, the
tuning view, the import / export dialogs). Progress, the result or the error come back through signals
(delivered in the GUI thread); cancellable through a ``threading.Event`` that the call polls, or that its
progress callback checks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

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


class _Delivery(QObject):
    """Carries a finished call back to the GUI thread (a signal emitted from the worker is queued)."""

    done = Signal(object)


class NetworkRunner(QObject):
    """The session's ``background`` (``deepmark.core.studio.session``): one worker thread that runs the
    network calls in turn, each one's ``done(result)`` delivered in the GUI thread (an exception object when
    the call raised), so that the network never runs on the GUI thread. ``shutdown`` waits for the running
    call and drops the queued ones."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="network")
        self._delivery = _Delivery()
        self._delivery.done.connect(lambda pair: pair[0](pair[1]))
        self._closed = False

    def __call__(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        if self._closed:
            return

        def run() -> None:
            try:
                result = work()
            except Exception as exc:  # noqa: BLE001 - handed to ``done``, which names it to the user
                result = exc
            if not self._closed:
                self._delivery.done.emit((done, result))

        self._pool.submit(run)

    def shutdown(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
