"""Atomic file writes: a temporary file in the target's folder, flushed, then renamed over the target,
so a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomically(path: str | Path, write: Callable[[IO], None], binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file, then rename it to ``path``; returns ``path``."""
    target = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)  # mkstemp creates 0600; these files are meant to be shared
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomically(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda handle: handle.write(text))
