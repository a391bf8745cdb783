"""Undoable edits. Each command writes the store at once (``redo`` runs on push); ``undo`` reverts exactly
the edits it made through the store's own edit log, so flags such as ``corrected`` come back too.

A command may make several store edits (a move of landmarks of two items, a deletion of two items): they
are applied in order and undone in reverse, and a failure half-way takes back the ones already made, so
one command is one undo step and all or nothing.

Two annotators: every edit passes the version of the image the user saw (``Host.image_version``); when
someone else changed the image since, the store refuses it (ConflictError), the command leaves no undo
entry and the window reloads the stored state and says so. Any other refusal (read-only file, full disk,
lost connection, a lock held too long) ends the same way: nothing half-done looks saved.

Re-adding: undoing an added item deletes it; redoing adds it again, and the store gives it a new id.
Commands made later refer to the first id, so the project remembers the alias (``item_id``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from PySide6.QtGui import QUndoCommand

from deepmark.core.domain.structures import VISIBILITY_NAMES, Detection
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import ConflictError, EditReceipt, ItemData, Project
from deepmark.core.store.bulk import item_from_detection

# project → {an item id that an undone-then-redone addition had: the id it has now}
_ALIASES: weakref.WeakKeyDictionary[Project, dict[int, int]] = weakref.WeakKeyDictionary()


def item_id(project: Project, annotation_id: int) -> int:
    """The id that item ``annotation_id`` has now (they only change when an addition is redone)."""
    aliases = _ALIASES.get(project, {})
    while annotation_id in aliases:
        annotation_id = aliases[annotation_id]
    return annotation_id


def _alias(project: Project, old: int, new: int) -> None:
    if old != new:
        _ALIASES.setdefault(project, {})[old] = new


Step = Callable[[int | None], EditReceipt]
"""One store edit: called with the image version it expects (None: unchecked), returns the receipt."""


class Host(Protocol):
    """What a command needs from the window."""

    def image_version(self, image_id: int) -> int | None:
        """The version of the image as the user sees it (None when it is not shown: unchecked)."""

    def edit_saved(self, image_id: int, version: int) -> None:
        """The store took the command's edits; the image is at ``version`` now."""

    def edit_refused(self, image_id: int, message: str) -> None:
        """The store refused (or a failure took back) the command: show ``message`` and the stored state."""

    def refresh_image(self, image_id: int) -> None:
        """Re-read the image's row and, when shown, its items."""


class StoreCommand(QUndoCommand):
    """Base: ``_steps`` lists the store edits (each a call returning its receipt); undo reverts them."""

    def __init__(self, project: Project, image_id: int, host: Host, text: str) -> None:
        super().__init__(text)
        self.project, self.image_id, self.host = project, image_id, host
        self.edit_ids: list[int] = []
        self.receipts: list[EditReceipt] = []

    @property
    def edit_id(self) -> int | None:
        """The last store edit of this command (None before it ran or when it failed)."""
        return self.edit_ids[-1] if self.edit_ids else None

    def _steps(self) -> list[Step]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _apply(self) -> list[EditReceipt]:
        """Run the steps in order, each expecting the version the previous one left; on a failure undo the
        ones made and raise."""
        done: list[EditReceipt] = []
        version = self.host.image_version(self.image_id)
        try:
            for step in self._steps():
                done.append(step(version))
                version = done[-1].image_version
        except DeepMarkError:
            for receipt in reversed(done):
                self.project.history.undo(self.image_id, edit_id=receipt.edit_id)
            raise
        return done

    # Qt calls these from C++: an exception escaping them would only print a traceback, so a failed edit
    # (locked store, conflicting edit) is shown in the window and the command made obsolete instead.
    def redo(self) -> None:
        try:
            self.receipts = self._apply()
            self.edit_ids = [r.edit_id for r in self.receipts]
        except ConflictError as exc:
            self.receipts, self.edit_ids = [], []
            self._failed(f"{self.text()} not saved: someone else changed this image since you opened it; "
                         f"reloaded to show what is stored ({exc})")
        except DeepMarkError as exc:
            self.receipts, self.edit_ids = [], []
            self._failed(f"{self.text()} not saved: {exc}")
        else:
            if self.receipts:
                self.host.edit_saved(self.image_id, self.receipts[-1].image_version)
        self.host.refresh_image(self.image_id)

    def undo(self) -> None:
        # the store refuses to undo an edit whose target changed since, so no version is needed here
        try:
            receipt = None
            for edit_id in reversed(self.edit_ids):
                receipt = self.project.history.undo(self.image_id, edit_id=edit_id)
        except DeepMarkError as exc:
            self._failed(f"undo {self.text()} not saved: {exc}")
        else:
            if receipt is not None:
                self.host.edit_saved(self.image_id, receipt.image_version)
        self.host.refresh_image(self.image_id)

    def _failed(self, message: str) -> None:
        self.setObsolete(True)  # the stack drops it: nothing half-done stays undoable
        self.host.edit_refused(self.image_id, message)


# One landmark change: (annotation id, landmark index, x or None, y or None, v or None); None = unchanged.
LandmarkChange = tuple[int, int, float | None, float | None, int | None]


class SetLandmarks(StoreCommand):
    """Change several landmarks at once (positions and/or visibilities): one store edit per item (a
    single landmark through ``set_landmark``, several through ``update_item``), one undo step."""

    def __init__(self, project: Project, image_id: int, changes: Sequence[LandmarkChange], host: Host,
                 text: str) -> None:
        super().__init__(project, image_id, host, text)
        self.changes = list(changes)

    def _steps(self):
        by_item: dict[int, list[LandmarkChange]] = {}
        for change in self.changes:
            by_item.setdefault(item_id(self.project, change[0]), []).append(change)
        return [self._item_step(aid, changes) for aid, changes in by_item.items()]

    def _item_step(self, aid: int, changes: list[LandmarkChange]) -> Callable[[], EditReceipt]:
        annotations = self.project.annotations
        if len(changes) == 1:
            _, idx, x, y, v = changes[0]
            return lambda version: annotations.set_landmark(aid, idx, x=x, y=y, v=v, expected_version=version)

        def step(version: int | None) -> EditReceipt:
            landmarks = annotations.get(aid).landmarks.copy()  # read at apply time: a redo sees the present
            for _, idx, x, y, v in changes:
                for column, value in ((0, x), (1, y), (2, v)):
                    if value is not None:
                        landmarks[idx, column] = value
            return annotations.update_item(aid, landmarks=landmarks, action="set_landmarks",
                                           expected_version=version)
        return step


def move_landmarks(project: Project, image_id: int, moves: Sequence[tuple[int, int, tuple[float, float]]],
                   host: Host) -> SetLandmarks:
    """A command moving each (annotation id, index) landmark to its new (x, y) pixels: the one path for
    every landmark drag, of one landmark or several together."""
    changes = [(aid, idx, float(x), float(y), None) for aid, idx, (x, y) in moves]
    what = f"landmark {changes[0][1] + 1}" if len(changes) == 1 else f"{len(changes)} landmarks"
    return SetLandmarks(project, image_id, changes, host, f"move {what}")


def set_visibility(project: Project, image_id: int, targets: Sequence[tuple[int, int]], v: int,
                   host: Host) -> SetLandmarks:
    """A command setting visibility ``v`` (0 not present, 1 occluded, 2 visible) of (annotation id, index)
    landmarks."""
    what = f"landmark {targets[0][1] + 1}" if len(targets) == 1 else f"{len(targets)} landmarks"
    return SetLandmarks(project, image_id, [(aid, idx, None, None, v) for aid, idx in targets], host,
                        f"mark {what} {VISIBILITY_NAMES[v]}")


class SetItemLandmarks(StoreCommand):
    """Give items whole new (L, 3) landmark arrays at once — a move and the re-fit it triggers, or an explicit
    re-fit — in one store edit per item and one undo step. ``changes``: (annotation id, landmarks (L, 3),
    placed (L,) bool: the landmarks the assist re-placed, which the store does not flag as the person's)."""

    def __init__(self, project: Project, image_id: int, changes: Sequence[tuple[int, np.ndarray, np.ndarray]],
                 host: Host, text: str) -> None:
        super().__init__(project, image_id, host, text)
        self.changes = [(aid, np.asarray(lm, np.float64).copy(), np.asarray(placed, bool).copy())
                        for aid, lm, placed in changes]

    def _steps(self):
        update = self.project.annotations.update_item

        def step(aid: int, landmarks: np.ndarray, placed: np.ndarray) -> Step:
            return lambda version: update(item_id(self.project, aid), landmarks=landmarks, placed=placed,
                                          action="refit_landmarks", expected_version=version)
        return [step(aid, lm, placed) for aid, lm, placed in self.changes]


class SetBox(StoreCommand):
    def __init__(self, project: Project, image_id: int, annotation_id: int, box, host: Host) -> None:
        super().__init__(project, image_id, host, "resize box")
        self.annotation_id, self.box = annotation_id, np.asarray(box, np.float64).copy()

    def _steps(self):
        aid = item_id(self.project, self.annotation_id)
        return [lambda version: self.project.annotations.set_box(aid, self.box, expected_version=version)]


class SetCategory(StoreCommand):
    """Give an item another category with new (L, 3) ``landmarks`` for it."""

    def __init__(self, project: Project, image_id: int, annotation_id: int, category_id: int, landmarks,
                 host: Host, category_name: str = "") -> None:
        super().__init__(project, image_id, host, f"change category to {category_name or category_id}")
        self.annotation_id, self.category_id = annotation_id, category_id
        self.landmarks = np.asarray(landmarks, np.float64).copy()

    def _steps(self):
        aid = item_id(self.project, self.annotation_id)
        set_category = self.project.annotations.set_category
        return [lambda version: set_category(aid, self.category_id, landmarks=self.landmarks, expected_version=version)]


class AddItem(StoreCommand):
    """Add ``data`` as a new item of the image (``origin`` 'manual' for a drawn box, 'predicted' for a
    detection taken as it is). ``annotation_id`` is the new item's first id, valid after a redo."""

    def __init__(self, project: Project, image_id: int, data: ItemData, host: Host, origin: str = "manual",
                 prediction_id: int | None = None, text: str = "add item") -> None:
        super().__init__(project, image_id, host, text)
        self.data, self.origin, self.prediction_id = data, origin, prediction_id
        self.annotation_id: int | None = None

    def _add(self, version: int | None) -> EditReceipt:
        return self.project.annotations.add_item(self.image_id, self.data, origin=self.origin,
                                                 prediction_id=self.prediction_id, expected_version=version)

    def _steps(self):
        return [self._add]

    def redo(self) -> None:
        super().redo()
        if self.receipts:
            new = self.receipts[0].annotation_id
            if self.annotation_id is None:
                self.annotation_id = new
            else:
                _alias(self.project, self.annotation_id, new)


class AcceptPrediction(AddItem):
    """Take stored prediction ``prediction_id`` as a new item, as it is (store's ``accept_prediction``)."""

    def __init__(self, project: Project, image_id: int, prediction_id: int, host: Host) -> None:
        super().__init__(project, image_id, None, host, origin="predicted", prediction_id=prediction_id,
                         text="accept prediction")

    def _add(self, version: int | None) -> EditReceipt:
        return self.project.annotations.accept_prediction(self.prediction_id, expected_version=version)


class AcceptPredictions(StoreCommand):
    """Take several detections as items at once (one undo step): each linked to its stored prediction
    when it has one (``prediction_id``), else added from the detection as it is."""

    def __init__(self, project: Project, image_id: int, chosen: Sequence[tuple[Detection, int | None]],
                 host: Host) -> None:
        n = len(chosen)
        super().__init__(project, image_id, host, "accept prediction" if n == 1 else f"accept {n} predictions")
        self.chosen = list(chosen)

    def _steps(self):
        annotations = self.project.annotations

        def step(detection: Detection, prediction_id: int | None) -> Step:
            if prediction_id is not None:
                return lambda version: annotations.accept_prediction(prediction_id, expected_version=version)
            data = item_from_detection(detection)
            return lambda version: annotations.add_item(self.image_id, data, origin="predicted",
                                                        expected_version=version)
        return [step(d, p) for d, p in self.chosen]


class DeleteItems(StoreCommand):
    """Delete items (undo brings each back with its id, landmarks and flags)."""

    def __init__(self, project: Project, image_id: int, annotation_ids: Sequence[int], host: Host) -> None:
        n = len(annotation_ids)
        super().__init__(project, image_id, host, "delete item" if n == 1 else f"delete {n} items")
        self.annotation_ids = list(annotation_ids)

    def _steps(self):
        delete = self.project.annotations.delete_item
        ids = [item_id(self.project, a) for a in self.annotation_ids]
        return [lambda version, aid=aid: delete(aid, expected_version=version) for aid in ids]


class SetStatus(StoreCommand):
    """The image's review status; ``no_garments``: accepted as holding no garments (a true negative)."""

    def __init__(self, project: Project, image_id: int, status: str, host: Host, no_garments: bool = False) -> None:
        super().__init__(project, image_id, host, "mark no garments" if no_garments else f"mark {status}")
        self.status, self.no_garments = status, no_garments

    def _steps(self):
        set_status = self.project.images.set_status
        return [lambda version: set_status(self.image_id, self.status, expected_version=version,
                                           no_garments=self.no_garments)]
