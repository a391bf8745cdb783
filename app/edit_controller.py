"""Correcting on the canvas: the canvas's gestures, keys and context menus turned into undoable store
commands (``deepmark.app.commands``), each written to the store at once.

Keys: V / O / X set the visibility of the selected landmarks, or of the one under
the cursor, to visible / occluded / not present; B draws a new item (drag a box, then choose its
category); C changes the selected item's category; Delete removes the selected item(s); Enter accepts
the selected detection as it is; Tab / Shift+Tab select the next / previous item; Escape cancels
drawing or clears the selection (these last four on the focused canvas only). The same actions are in
the right-click menu and the Edit menu.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QPoint, Qt, QTimer
from PySide6.QtGui import QAction, QCursor
from PySide6.QtWidgets import QMenu

from deepmark.app.commands import (
    AcceptPrediction,
    AcceptPredictions,
    AddItem,
    DeleteItems,
    SetBox,
    SetCategory,
    StoreCommand,
    move_landmarks,
    set_visibility,
)
from deepmark.app.keymap import default_sequences
from deepmark.app.overlay_items import DetectionGraphic, ItemGraphic, LandmarkHandle
from deepmark.core.domain.structures import VISIBILITY_NAMES, Detection
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import ItemData, ItemRecord
from deepmark.core.store.bulk import item_from_detection
from deepmark.core.studio.templates import derive_landmarks

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

VISIBILITY_KEY_IDS = {2: "landmark.visible", 1: "landmark.occluded", 0: "landmark.absent"}  # keymap ids


class CategoryMenu(QMenu):
    """The category pop-up: each entry shows its number, and typing the number chooses it ("7", or "1" then
    "2" for 12; a lone "1" waits ``DIGIT_WAIT_MS`` for a second digit, then means 1)."""

    DIGIT_WAIT_MS = 600

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._typed = ""
        self._timer = QTimer(self, singleShot=True, interval=self.DIGIT_WAIT_MS)
        self._timer.timeout.connect(self._choose_typed)

    def _by_number(self) -> dict[int, QAction]:
        return {a.data(): a for a in self.actions() if isinstance(a.data(), int)}

    def keyPressEvent(self, event) -> None:
        text = event.text()
        if not (text.isdigit() and len(text) == 1):
            super().keyPressEvent(event)
            return
        self._typed += text
        numbers = self._by_number()
        longer = any(str(n).startswith(self._typed) and str(n) != self._typed for n in numbers)
        if not longer:
            self._choose_typed()
        elif int(self._typed) in numbers:
            self._timer.start()  # "1" may be 1, or the start of 10..13

    def _choose_typed(self) -> None:
        self._timer.stop()
        typed, self._typed = self._typed, ""
        action = self._by_number().get(int(typed)) if typed else None
        if action is None:
            return
        self.setActiveAction(action)
        action.trigger()
        self.close()


class Editor(QObject):
    """Owns no state beyond the latest popup menu: the selection lives in the canvas, the truth in the
    store, the history in the window's undo stack."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = window.canvas
        self.last_menu: QMenu | None = None  # the latest popup (category chooser or context menu)
        self.canvas.landmarks_moved.connect(self.move_landmarks)
        self.canvas.box_edited.connect(self.set_box)
        self.canvas.box_drawn.connect(self.box_drawn)
        self.canvas.context_menu_requested.connect(self._context_menu)
        # Letter keys are window shortcuts, as the review keys: they work whichever dock has the focus and
        # are listed in the shortcut help. Delete, Enter, Tab and Escape mean something in text fields and
        # dialogs, so only the focused canvas takes them.
        self.actions: list[QAction] = []
        for text, slot, key_id in [
            ("Draw new item", self.toggle_draw, "edit.draw"),
            ("Change category…", self.change_selected_category, "edit.category"),
            *((f"Landmark {VISIBILITY_NAMES[v]}", lambda v=v: self.set_visibility(v), key_id)
              for v, key_id in VISIBILITY_KEY_IDS.items()),
        ]:
            action = QAction(text, window)
            action.setObjectName(key_id)
            action.setShortcuts(default_sequences(key_id))
            action.triggered.connect(lambda *_, slot=slot: slot())
            window.addAction(action)
            self.actions.append(action)
        # shown in the menu with their key, handled by the canvas
        for text, slot in [("Delete item\tDel", self.delete_selected),
                           ("Accept selected prediction\tEnter", self.accept_selected),
                           ("Next item\tTab", lambda: self.canvas.cycle_selection(1)),
                           ("Previous item\tShift+Tab", lambda: self.canvas.cycle_selection(-1)),
                           ("Cancel drawing, clear the selection\tEsc", self.cancel)]:
            action = QAction(text, window)
            action.triggered.connect(lambda *_, slot=slot: slot())
            self.actions.append(action)
        self.canvas.key_actions.update({
            Qt.Key.Key_Delete: self.delete_selected,
            Qt.Key.Key_Backspace: self.delete_selected,
            Qt.Key.Key_Return: self.accept_selected,
            Qt.Key.Key_Enter: self.accept_selected,
            Qt.Key.Key_Tab: lambda: self.canvas.cycle_selection(1),
            Qt.Key.Key_Backtab: lambda: self.canvas.cycle_selection(-1),
            Qt.Key.Key_Escape: self.cancel,
        })

    def add_menu_actions(self, menu: QMenu) -> None:
        """Put the editing actions in ``menu`` (the Edit menu)."""
        for action in self.actions:
            menu.addAction(action)

    # -- helpers ---------------------------------------------------------------------------------

    def _image_id(self) -> int | None:
        if self.window.session.project is None or self.window.session.record is None:
            self.window.show_error("open a project and an image first")
            return None
        return self.window.session.record.id

    def _push(self, command: StoreCommand) -> StoreCommand:
        self.window.undo_stack.push(command)
        return command

    def _item(self, annotation_id: int) -> ItemRecord | None:
        return next((i for i in self.window.session.items if i.id == annotation_id), None)

    def landmark_targets(self) -> list[tuple[int, int]]:
        """The landmarks a visibility key acts on, as the user sees them: the one under the cursor (all the
        selected ones when it is one of them), else the selected (ringed) ones."""
        selected = self.canvas.selected_landmarks()
        hovered = self.canvas.hovered
        if hovered is not None and hovered not in selected:
            return [hovered]
        return selected

    def target_items(self) -> list[int]:
        """The items an item action acts on: the selected item, else the items of the selected landmarks."""
        if self.canvas.selected_id is not None:
            return [self.canvas.selected_id]
        return list(dict.fromkeys(aid for aid, _ in self.canvas.selected_landmarks()))

    # -- landmarks -------------------------------------------------------------------------------

    def _inside(self, x: float, y: float) -> tuple[float, float]:
        """(x, y) pixels moved into the current image (what the user edits never leaves it)."""
        h, w = self.window.session.rgb.shape[:2] if self.window.session.rgb is not None else (np.inf, np.inf)
        return float(min(max(x, 0.0), w)), float(min(max(y, 0.0), h))

    def move_landmarks(self, moves: list[tuple[int, int, tuple[float, float]]]) -> None:
        """One landmark or several dragged together: one command, one undo step."""
        image_id = self._image_id()
        moves = [(aid, idx, self._inside(*xy)) for aid, idx, xy in moves]
        if image_id is not None and moves:
            # with re-fit after a fix on, the garment's unconfirmed landmarks follow in the same step
            refit = self.window.assists.move_command(image_id, moves)
            self._push(refit or move_landmarks(self.window.session.project, image_id, moves, self.window))

    def set_visibility(self, v: int, targets: list[tuple[int, int]] | None = None) -> None:
        image_id = self._image_id()
        if image_id is None:
            return
        targets = targets if targets is not None else self.landmark_targets()
        if not targets:
            self.window.show_info("point at a landmark, or select some (click, Ctrl+click, Shift+drag), first")
            return
        self._push(set_visibility(self.window.session.project, image_id, targets, v, self.window))

    # -- items -----------------------------------------------------------------------------------

    def set_box(self, annotation_id: int, box: np.ndarray) -> None:
        image_id = self._image_id()
        box = np.array([*self._inside(box[0], box[1]), *self._inside(box[2], box[3])])
        if image_id is not None:
            self._push(SetBox(self.window.session.project, image_id, annotation_id, box, self.window))

    def change_category(self, annotation_id: int, category_id: int) -> None:
        """Give the item ``category_id``; its landmarks come from the live detection of that category
        overlapping it where there is one, else from the category's template fitted to its box."""
        image_id = self._image_id()
        item = self._item(annotation_id)
        if image_id is None or item is None:
            return
        if item.category_id == category_id:
            return
        category = self.window.taxonomy.category(category_id)
        try:
            landmarks, source = derive_landmarks(category, item.box, self.window.session.detections)
        except DeepMarkError as exc:
            self.window.show_error(f"change category: {exc}")
            return
        self._push(SetCategory(self.window.session.project, image_id, annotation_id, category_id, landmarks,
                               self.window,
                               category.name))
        self.window.show_info(f"now {category.name}: {category.num_landmarks} landmarks from the {source}")

    def change_selected_category(self) -> None:
        items = self.target_items()
        if not items:
            self.window.show_info("select an item first (click its box, or Tab)")
            return
        aid = items[0]
        self.choose_category(lambda cid: self.change_category(aid, cid))

    def choose_category(self, on_chosen: Callable[[int], None], at: QPoint | None = None) -> QMenu:
        """Pop up the 13 categories (without waiting); choosing one calls ``on_chosen(category id)``."""
        menu = self._category_menu(CategoryMenu(self.window), on_chosen)
        self._popup(menu, at)
        return menu

    def _category_menu(self, menu: QMenu, on_chosen: Callable[[int], None]) -> QMenu:
        for category in self.window.taxonomy.categories:
            action = menu.addAction(f"{category.id}. {category.name}")
            action.setData(category.id)
            action.triggered.connect(lambda *_, cid=category.id: on_chosen(cid))
        return menu

    def _popup(self, menu: QMenu, at: QPoint | None) -> None:
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.last_menu = menu
        menu.popup(at if at is not None else QCursor.pos())  # popup, not exec: no nested event loop

    def toggle_draw(self) -> None:
        if self._image_id() is None or self.window.session.rgb is None:
            return
        self.canvas.set_draw_mode(not self.canvas.draw_mode)
        if self.canvas.draw_mode:
            self.window.show_info("drag a box around the garment (Escape cancels)")

    def box_drawn(self, box: np.ndarray) -> None:
        """A box drawn in draw mode: choose its category, then it is added with landmarks from the heatmaps."""
        self.choose_category(lambda cid: self.add_item(box, cid))

    def add_item(self, prompt, category_id: int) -> int | None:
        """Add a manual item at ``prompt``: a box (4,) xyxy pixels, or a garment's centre (2,) x, y. Its
        landmarks come from the image's group heatmaps where a peak is confident, else the category template
        (``deepmark.app.assist_controller``). One undo step. Returns the new item's id (it becomes selected)."""
        image_id = self._image_id()
        if image_id is None:
            return None
        category = self.window.taxonomy.category(category_id)
        prompt = np.asarray(prompt, np.float64).reshape(-1)
        if prompt.shape == (4,):
            prompt = np.array([*self._inside(prompt[0], prompt[1]), *self._inside(prompt[2], prompt[3])])
        item = self.window.assists.new_item(prompt, category_id)
        if item is None:
            return None
        data = ItemData(category_id=category_id, box=item.box, landmarks=item.landmarks)
        command = self._push(AddItem(self.window.session.project, image_id, data, self.window,
                                     text=f"add {category.name}"))
        if command.annotation_id is not None:
            self.canvas.selected_id = command.annotation_id  # selected once the items are rebuilt
            self.window.show_info(self.window.assists.describe(item, category.name))
        return command.annotation_id

    def delete_selected(self) -> None:
        image_id = self._image_id()
        items = self.target_items()
        if image_id is None:
            return
        if not items:
            self.window.show_info("select an item first (click its box, or Tab)")
            return
        self._push(DeleteItems(self.window.session.project, image_id, items, self.window))
        self.canvas.clear_selection()

    # -- predictions -----------------------------------------------------------------------------

    def accept_selected(self) -> None:
        index = self.canvas.selected_detection
        if index is None or index >= len(self.window.session.detections):
            self.window.show_info("click a prediction first, then Enter accepts it")
            return
        self.accept_detection(self.window.session.detections[index])

    def accept_detection(self, detection: Detection) -> int | None:
        """Take a live detection as a new item, as it is. When it is one of the predictions stored for the
        image (the detections at the parameters the image was first shown with), the item is linked to
        it; otherwise (parameters changed since) it is added from the detection itself."""
        image_id = self._image_id()
        if image_id is None:
            return None
        try:
            prediction_id = self._stored_prediction(image_id, detection)
        except DeepMarkError as exc:
            self.window.show_error(f"accept prediction: {exc}")
            return None
        if prediction_id is not None and any(i.prediction_id == prediction_id for i in self.window.session.items):
            self.window.show_info("this prediction is already accepted")
            return None
        if prediction_id is not None:
            command = AcceptPrediction(self.window.session.project, image_id, prediction_id, self.window)
        else:
            command = AddItem(self.window.session.project, image_id, item_from_detection(detection), self.window,
                              origin="predicted", text="accept prediction")
        self._push(command)
        if command.annotation_id is not None:
            self.canvas.selected_id = command.annotation_id
        return command.annotation_id

    def accept_all_detections(self) -> None:
        """Take every shown detection not accepted yet as an item, in one undo step."""
        image_id = self._image_id()
        if image_id is None:
            return
        session = self.window.session
        shown = [session.detections[g.index] for g in sorted(self.canvas.detection_graphics(), key=lambda g: g.index)
                 if g.index < len(session.detections)]  # what the canvas shows: the best class at each place
        if not shown:
            self.window.show_info("no predictions shown to accept (is the model loaded, are detections shown?)")
            return
        try:
            stored = [self._stored_prediction(image_id, d) for d in shown]
        except DeepMarkError as exc:
            self.window.show_error(f"accept predictions: {exc}")
            return
        taken = {i.prediction_id for i in session.items if i.prediction_id is not None}

        def accepted(d: Detection, prediction_id: int | None) -> bool:  # linked, or taken as it was before
            return prediction_id in taken or any(i.category_id == d.category_id
                                                 and np.allclose(i.box, d.box, atol=1e-3) for i in session.items)
        chosen = [(d, p) for d, p in zip(shown, stored, strict=True) if not accepted(d, p)]
        if not chosen:
            self.window.show_info("every shown prediction is already accepted")
            return
        self._push(AcceptPredictions(session.project, image_id, chosen, self.window))

    def _stored_prediction(self, image_id: int, detection: Detection) -> int | None:
        for stored in self.window.session.project.predictions.for_image(image_id):
            if (stored.category_id == detection.category_id
                    and np.allclose(stored.box, detection.box, atol=1e-4)
                    and np.allclose(stored.landmarks, detection.landmarks, atol=1e-4)):
                return stored.id
        return None

    # -- cancel, context menu --------------------------------------------------------------------

    def cancel(self) -> None:
        if self.canvas.draw_mode:
            self.canvas.set_draw_mode(False)
        else:
            self.canvas.clear_selection()

    def _context_menu(self, view_pos: QPoint, global_pos: QPoint) -> None:
        self._popup(self.context_menu(view_pos), global_pos)

    def context_menu(self, view_pos: QPoint) -> QMenu:
        """The right-click menu for what is under ``view_pos`` (viewport coordinates)."""
        menu = QMenu(self.window)
        hit = self.canvas.hit(view_pos)
        if isinstance(hit, LandmarkHandle):
            targets = self.canvas.selected_landmarks()
            if (hit.annotation_id, hit.idx) not in targets:
                targets = [(hit.annotation_id, hit.idx)]
            for v, key_id in VISIBILITY_KEY_IDS.items():
                keys = next((a.shortcut().toString() for a in self.actions if a.objectName() == key_id), "")
                label = f"{VISIBILITY_NAMES[v].capitalize()}\t{keys}"
                action = menu.addAction(label, lambda v=v, t=targets: self.set_visibility(v, t))
                action.setCheckable(True)
                action.setChecked(len(targets) == 1 and hit.v == v)
            menu.addSeparator()
            self._item_entries(menu, hit.annotation_id)
        elif isinstance(hit, ItemGraphic):
            self._item_entries(menu, hit.annotation_id)
        elif isinstance(hit, DetectionGraphic):
            self.canvas.select_detection(hit.index)
            detection = hit.detection
            menu.addAction("Accept prediction\tEnter", lambda: self.accept_detection(detection))
        else:
            menu.addAction("Draw new item\tB", self.toggle_draw)
            at = self.canvas.mapToScene(view_pos)
            menu.addAction("Add garment centred here…\tG", lambda: self.window.assists.garment_at(at))
        return menu

    def _item_entries(self, menu: QMenu, annotation_id: int) -> None:
        self.canvas.select_item(annotation_id)
        submenu = CategoryMenu(menu)
        submenu.setTitle("Change category")
        menu.addMenu(submenu)
        self._category_menu(submenu, lambda cid: self.change_category(annotation_id, cid))
        menu.addAction("Delete item\tDel", lambda: self._push(
            DeleteItems(self.window.session.project, self.window.session.record.id, [annotation_id], self.window)))
