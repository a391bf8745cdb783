"""Thumbnails for the image list, made off the GUI thread.

The list asks for a row's icon only when the view paints that row (Qt requests DecorationRole for the
visible rows only). A request goes to a small queue served newest first by a thread pool (so scrolling
fast through 100,000 rows decodes what is on screen now, and stale requests are dropped); the workers
call ``deepmark.core.studio.thumbnails.ThumbnailCache`` (disk + memory cache) and hand back QImages through a plain
queue that a GUI-thread timer drains. Workers never touch a QObject, so closing the window while a
thumbnail is being decoded is safe.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap

from deepmark.app.qt_convert import rgb_to_qimage
from deepmark.core.studio.thumbnails import ThumbnailCache
from deepmark.core.util.lru import LruDict

MAX_QUEUE = 256  # pending requests kept; older ones are dropped (asked again if their row is still shown)
POLL_MS = 30
ICON_PX = 64


def _frame(color: str) -> QPixmap:
    pixmap = QPixmap(ICON_PX, ICON_PX)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(QColor(color), 2))
    painter.setBrush(QColor(color).lighter(170))
    painter.drawRoundedRect(4, 4, ICON_PX - 8, ICON_PX - 8, 6, 6)
    return pixmap


_ICONS: dict[str, QIcon] = {}


def placeholder_icon() -> QIcon:
    """A grey frame: the thumbnail is on its way."""
    if "placeholder" not in _ICONS:
        _ICONS["placeholder"] = QIcon(_frame("#9e9e9e"))
    return _ICONS["placeholder"]


def error_icon() -> QIcon:
    """A red frame with a cross: the file cannot be shown (the tooltip says why)."""
    if "error" not in _ICONS:
        pixmap = _frame("#d32f2f")
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor("#d32f2f"), 5))
        m = ICON_PX // 3
        painter.drawLine(m, m, ICON_PX - m, ICON_PX - m)
        painter.drawLine(ICON_PX - m, m, m, ICON_PX - m)
        painter.end()
        _ICONS["error"] = QIcon(pixmap)
    return _ICONS["error"]


class _Task(QRunnable):
    def __init__(self, work) -> None:
        super().__init__()
        self._work = work

    def run(self) -> None:
        self._work()


class ThumbnailLoader(QObject):
    """``icon(key, path)``: the thumbnail's QIcon when ready, else None (and it is requested).
    ``ready(keys)`` is emitted on the GUI thread when thumbnails (or errors) arrive. ``key`` names the
    image (the list uses its stored path); ``error(key)`` is the problem of a file that cannot be shown."""

    ready = Signal(list)

    def __init__(self, cache: ThumbnailCache | None = None, threads: int = 2, capacity: int = 2000,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = cache if cache is not None else ThumbnailCache()
        self.capacity = capacity
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(max(1, threads))
        self._icons: LruDict[str, QIcon] = LruDict(capacity)
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, str, Path]] = deque()  # newest last
        self._queued: set[str] = set()
        self._results: deque[tuple[int, str, QImage | None, str | None]] = deque()
        self._busy = 0
        self._generation = 0
        self._closed = False
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self._collect)

    # -- GUI thread --------------------------------------------------------------------------------

    def icon(self, key: str, path: Path) -> QIcon | None:
        found = self._icons.get(key)
        if found is not None:
            return found
        if key in self._errors:
            return error_icon()
        self.request(key, path)
        return None

    def error(self, key: str) -> str | None:
        return self._errors.get(key)

    def state(self, key: str) -> str:
        """'ready', 'error' or 'pending' (for tests and tooltips)."""
        return "ready" if key in self._icons else "error" if key in self._errors else "pending"

    def idle(self) -> bool:
        """True when no thumbnail is being made or waiting to be collected."""
        with self._lock:
            return self._busy == 0 and not self._results

    def request(self, key: str, path: Path) -> None:
        if self._closed:
            return
        with self._lock:
            if key in self._queued:
                return
            self._queue.append((self._generation, key, path))
            self._queued.add(key)
            while len(self._queue) > MAX_QUEUE:  # the oldest requests are rows scrolled past
                self._queued.discard(self._queue.popleft()[1])
            self._busy += 1
        self._pool.start(_Task(self._work_one))
        if not self._timer.isActive():
            self._timer.start()

    def clear(self) -> None:
        """Forget everything (another project): pending work is dropped, late results ignored."""
        with self._lock:
            self._generation += 1
            self._queue.clear()
            self._queued.clear()
            self._results.clear()
        self._icons.clear()
        self._errors.clear()

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Stop taking requests and wait for the running decodes (at window close)."""
        self._closed = True
        self.clear()
        self._timer.stop()
        self._pool.waitForDone(wait_ms)

    def _collect(self) -> None:
        keys = []
        while self._results:
            generation, key, image, error = self._results.popleft()
            if generation != self._generation:
                continue
            if image is None:
                self._errors[key] = error or "cannot be shown"
                self._icons.pop(key)
            else:
                self._errors.pop(key, None)
                self._icons.put(key, QIcon(QPixmap.fromImage(image)))
            keys.append(key)
        with self._lock:
            idle = self._busy == 0 and not self._results
        if idle:
            self._timer.stop()
        if keys:
            self.ready.emit(keys)

    # -- worker threads (Python objects only) ------------------------------------------------------

    def _work_one(self) -> None:
        try:
            with self._lock:
                if not self._queue:
                    return
                generation, key, path = self._queue.pop()  # newest first: the rows on screen now
                self._queued.discard(key)
            try:
                thumb = self.cache.get(path)
                image, error = (rgb_to_qimage(thumb.pixels), None) if thumb.ok else (None, thumb.error)
            except Exception as exc:  # a worker must never die silently: the row shows the problem
                image, error = None, f"{path}: thumbnail failed ({type(exc).__name__}: {exc})"
            self._results.append((generation, key, image, error))
        finally:
            with self._lock:
                self._busy -= 1
