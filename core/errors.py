"""Exception types raised by ``core`` for bad input. Each message names the file or value at fault."""

from __future__ import annotations

from pathlib import Path


class DeepMarkError(Exception):
    """Base class of every error ``core`` raises on bad input. ``path``: the file the error is about, when
    there is one (callers read it here, never out of the message)."""

    def __init__(self, message: str = "", *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


def path_of(source: str | Path | None) -> Path | None:
    """``source`` when it is a file (a ``Path``), None when it is a label ("--set", "<config>", a preset name):
    the ``path=`` of an error whose source may be either."""
    return source if isinstance(source, Path) else None


class Cancelled(DeepMarkError):  # noqa: N818 - a request, not a failure
    """A long job stopped because its caller asked it to (a progress callback raised it)."""


class TaxonomyError(DeepMarkError):
    """A taxonomy or grouping file, a category id or a landmark list does not fit the taxonomy."""


class EncodeError(DeepMarkError):
    """Ground-truth items cannot be turned into training targets."""


class DecodeError(DeepMarkError):
    """Raw head arrays or post-processing parameters are unusable."""


class EvaluationError(DeepMarkError):
    """Annotations or predictions cannot be evaluated."""


class HeadsFileError(DeepMarkError):
    """A saved raw-heads file is missing, corrupt or of another format version."""
