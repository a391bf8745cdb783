"""Atomic file writes: a temporary file in the target's folder, flushed, then renamed over the target,
so a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from deepmark.core.errors import DeepMarkError


def write_atomically(path: str | Path, write: Callable[[IO], None], binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file, then rename it to ``path`` (its folder made when missing);
    returns ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
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
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_atomically(path, lambda handle: handle.write(text))


def append_text_atomically(path: str | Path, text: str) -> Path:
    """``path``'s text (none when it does not exist) followed by ``text``, written atomically, so a crash
    never leaves half a line. The whole file is rewritten: for small logs (a line per epoch), not streams."""
    target = Path(path)
    before = target.read_text(encoding="utf-8") if target.exists() else ""
    return write_text_atomically(target, before + text)


def copy_atomically(source: str | Path, path: str | Path) -> Path:
    """Copy the bytes of ``source`` to ``path`` atomically; returns ``path``."""
    with open(source, "rb") as original:
        return write_atomically(path, lambda handle: shutil.copyfileobj(original, handle), binary=True)


def os_error_text(exc: OSError) -> str:
    """The reason an OS call failed, in words ("No space left on device"), without the Python wrapping."""
    return exc.strerror or str(exc) or type(exc).__name__


def writable_folder(path: str | Path) -> Path:
    """Check, before any work, that a folder can be made at ``path`` (or is there) and takes new files: a file
    is written and removed in it, or in its nearest existing parent when it is not there yet (nothing is
    created then), so a read-only, full or pseudo file system is named first. Raises DeepMarkError naming the
    folder and the reason; returns ``path``."""
    folder = Path(path).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(existing))
        fd, probe = tempfile.mkstemp(prefix=".deepmark-write-check.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DeepMarkError(f"{folder}: cannot write here ({os_error_text(exc)})", path=folder) from None
    return folder


@contextmanager
def writing_to(target: str | Path, after: str = "") -> Iterator[None]:
    """Turn an OS error met while writing ``target`` (disk full, file too large, read-only) into one
    DeepMarkError naming ``target`` and the reason, then ``after`` (what was kept). For code whose inputs
    raise DeepMarkError on their own, so that any OS error here is about the output."""
    try:
        yield
    except OSError as exc:
        raise DeepMarkError(f"{target}: cannot write ({os_error_text(exc)}){after}", path=target) from None
