"""Where DeepMark keeps files it can always make again (thumbnails, raw heads of the network): the
user cache folder, or ``$DEEPMARK_CACHE_DIR`` (tests point it at a temporary folder)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import platformdirs

from deepmark.core.store.engine import APP_NAME

CACHE_ENV = "DEEPMARK_CACHE_DIR"


def cache_root() -> Path:
    """``$DEEPMARK_CACHE_DIR`` when set, else ``<user cache dir>/deepmark-studio`` (not created here)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def thumbnails_dir() -> Path:
    return cache_root() / "thumbnails"


def heads_dir() -> Path:
    return cache_root() / "heads"

# Upper bounds on the caches' disk use (bytes): a whole-project batch job would otherwise keep ~3 MB of
# heads per image. ``$DEEPMARK_HEADS_CACHE_MB`` / ``$DEEPMARK_THUMBNAIL_CACHE_MB`` override them.
HEADS_CACHE_BYTES = 4 * 2**30
THUMBNAIL_CACHE_BYTES = 1 * 2**30


def budget_from_env(name: str, default: int) -> int:
    """``$name`` in MB as bytes when set to a positive number, else ``default``."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return int(value * 2**20) if value > 0 else default


class CacheBudget:
    """Keeps the files of a cache folder (matching ``pattern``) under ``max_bytes``: call ``added(path)``
    after writing each file; the least recently written files are deleted while the total is over.

    The folder is scanned once, at the first ``added``; after that only this process's writes are
    counted (another process writing the same folder is noticed at the next scan: a new instance).
    Thread-safe. A file that vanished (deleted by someone else) is simply forgotten."""

    def __init__(self, folder: str | Path, max_bytes: int, pattern: str = "*") -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self.pattern = pattern
        self.total = 0
        self.removed = 0  # files deleted to stay under the budget so far
        self._files: OrderedDict[Path, int] | None = None
        self._lock = threading.Lock()

    def _scan(self) -> OrderedDict[Path, int]:
        found = []
        for path in self.folder.rglob(self.pattern):
            try:
                st = path.stat()
            except OSError:
                continue
            if path.is_file():
                found.append((st.st_mtime_ns, path, st.st_size))
        found.sort()
        self.total = sum(size for _, _, size in found)
        return OrderedDict((path, size) for _, path, size in found)

    def added(self, path: str | Path) -> None:
        path = Path(path)
        with self._lock:
            if self._files is None:
                self._files = self._scan()  # includes the new file
            else:
                try:
                    size = path.stat().st_size
                except OSError:
                    return
                self.total += size - self._files.pop(path, 0)
                self._files[path] = size
            while self.total > self.max_bytes and len(self._files) > 1:
                oldest, size = self._files.popitem(last=False)
                if oldest == path:  # never the file just written
                    self._files[oldest] = size
                    continue
                oldest.unlink(missing_ok=True)
                self.total -= size
                self.removed += 1
