"""Undoable edits. Each command writes the store at once (``redo`` runs on push); ``undo`` reverts exactly
that edit through the store's own edit log, so flags such as ``corrected`` come back too."""

from __future__ import annotations

from typing import Protocol

from PySide6.QtGui import QUndoCommand

from core.errors import DeepMarkError
from core.store import Project


class Host(Protocol):
    """What a command needs from the window: re-read an image's view, and show an error."""

    def refresh_image(self, image_id: int) -> None: ...

    def show_error(self, message: str) -> None: ...


class StoreCommand(QUndoCommand):
    """Base: ``_apply`` performs the edit and returns its receipt; undo reverts that edit id."""

    def __init__(self, project: Project, image_id: int, host: Host, text: str) -> None:
        super().__init__(text)
        self.project, self.image_id, self.host = project, image_id, host
        self.edit_id: int | None = None

    def _apply(self):  # pragma: no cover - overridden
        raise NotImplementedError

    # Qt calls these from C++: an exception escaping them would only print a traceback, so a failed edit
    # (locked store, conflicting edit) is shown in the window and the command made obsolete instead.
    def redo(self) -> None:
        try:
            self.edit_id = self._apply().edit_id
        except DeepMarkError as exc:
            self._failed(f"{self.text()}: {exc}")
        self.host.refresh_image(self.image_id)

    def undo(self) -> None:
        try:
            self.project.history.undo(self.image_id, edit_id=self.edit_id)
        except DeepMarkError as exc:
            self._failed(f"undo {self.text()}: {exc}")
        self.host.refresh_image(self.image_id)

    def _failed(self, message: str) -> None:
        self.setObsolete(True)  # the stack drops it: nothing half-done stays undoable
        self.host.show_error(message)


class MoveLandmark(StoreCommand):
    def __init__(self, project: Project, image_id: int, annotation_id: int, idx: int, new: tuple[float, float],
                 host: Host) -> None:
        super().__init__(project, image_id, host, f"move landmark {idx + 1}")
        self.annotation_id, self.idx, self.new = annotation_id, idx, new

    def _apply(self):
        return self.project.annotations.set_landmark(self.annotation_id, self.idx, x=self.new[0], y=self.new[1])


class SetStatus(StoreCommand):
    def __init__(self, project: Project, image_id: int, status: str, host: Host) -> None:
        super().__init__(project, image_id, host, f"mark {status}")
        self.status = status

    def _apply(self):
        return self.project.images.set_status(self.image_id, self.status)
