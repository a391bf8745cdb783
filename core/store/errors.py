"""Errors of the annotation store. Each message names the project file (or URL), image or row at fault."""

from __future__ import annotations

from deepmark.core.errors import DeepMarkError


class StoreError(DeepMarkError):
    """Base class of every error the annotation store raises."""


class NotAProjectError(StoreError):
    """The file or database exists but is not a DeepMark project (or cannot be opened as one)."""


class SchemaVersionError(StoreError):
    """The project was written by a newer DeepMark Studio (an unknown schema revision): refused, not touched."""


class DamagedProjectError(StoreError):
    """The project's schema does not match what its revision promises (a missing table or column, several
    or no version rows beside DeepMark tables): refused at open, before anything is written."""


class ReadOnlyProjectError(StoreError):
    """A write to a project that can only be read (a read-only file or medium, a read-only database role)."""


class ConflictError(StoreError):
    """Optimistic concurrency: someone else changed the image since it was read (its version moved on)."""


class DatabaseLockedError(StoreError):
    """The database stayed locked by another writer for longer than the retry budget."""


class NotFoundError(StoreError):
    """An image, item, landmark, model run or preset id that is not in the project."""


class UndoError(StoreError):
    """There is nothing to undo, or the edit cannot be undone."""


class InvalidValueError(StoreError):
    """A value given to an edit does not fit (category, visibility, box, status...)."""
