"""The heatmap assists while correcting (issue 14, "Assisted correction"; docs/app.md): a new item's
landmarks from the cached heads of the image (box drawn with W / R / B, or G at a garment's centre), snapping
a landmark to a peak of its group heatmap (Shift while dragging, or P), and re-fitting the garment's
unconfirmed landmarks to the category template after a fix (on / off with Shift+T, or T once).

Every assist ends in an ordinary undoable store command (``deepmark.app.commands``), one undo step each, so
it is saved, refused and undone like any other edit. The arithmetic is Qt-free in
``deepmark.core.studio.assisted``; this class only reads the window's state and the user's intent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QPoint, QPointF
from PySide6.QtGui import QAction

from deepmark.app.commands import SetItemLandmarks
from deepmark.app.keymap import default_sequences
from deepmark.app.settings import studio_settings
from deepmark.core.centernet.assist import CENTRE_SEARCH, SNAP_MIN_SCORE, centre_peak, snap_to_peak
from deepmark.core.domain.structures import RawHeads
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import ItemRecord
from deepmark.core.studio.assisted import NewItem, landmark_group, peak_backed, prompted_item, refit_others
from deepmark.core.studio.display import HeatmapView, heatmap_view

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

REFIT_SETTING = "assist/refit_after_fix"
REFIT_DEFAULT = True  # on: the measurement on the demo images (docs/app.md, "Assisted correction") shows it helps
SNAP_KEY_RADIUS_PX = 40.0  # screen px: how far the snap key (P) reaches for a peak, whatever the zoom


def _bool(value, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return default


class Assists(QObject):
    """Owns the assists' actions and the one state the store cannot hold: the landmarks the user moved on
    manual items (the store flags corrections only on predicted and imported items), which a re-fit keeps."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = window.canvas
        self.canvas.snapper = self
        self._touched: dict[int, set[int]] = {}  # annotation id → landmark indices the user moved (this session)
        self._said_no_heads = False  # the "no heatmaps: template" line is said once
        self.refit_on = _bool(studio_settings().value(REFIT_SETTING), REFIT_DEFAULT)
        self.actions: list[QAction] = []
        for text, slot, key_id in [("Add garment at cursor…", self.garment_at_cursor, "edit.garment_at_cursor"),
                                   ("Snap landmark to heatmap peak", self.snap_targets, "edit.snap"),
                                   ("Re-fit garment to template", self.refit_selected, "edit.refit")]:
            action = QAction(text, window)
            action.setObjectName(key_id)
            action.setShortcuts(default_sequences(key_id))
            action.triggered.connect(lambda *_, slot=slot: slot())
            window.addAction(action)
            self.actions.append(action)
        self.refit_action = QAction("Re-fit after a fix (on / off)", window)
        self.refit_action.setObjectName("edit.refit_after_fix")
        self.refit_action.setShortcuts(default_sequences("edit.refit_after_fix"))
        self.refit_action.setCheckable(True)
        self.refit_action.setChecked(self.refit_on)
        self.refit_action.toggled.connect(self.set_refit)
        window.addAction(self.refit_action)
        self.actions.append(self.refit_action)

    def add_menu_actions(self, menu) -> None:
        """Put the assists in ``menu`` (the Edit menu), after a separator."""
        menu.addSeparator()
        for action in self.actions:
            menu.addAction(action)

    # -- what the window has -----------------------------------------------------------------------

    def _heads(self) -> RawHeads | None:
        return self.window.session.heads()

    def _grouping(self):
        model = self.window.session.model
        return model.detector.grouping if model is not None else None

    def _image_size(self) -> tuple[int, int] | None:
        rgb = self.window.session.rgb
        return (rgb.shape[1], rgb.shape[0]) if rgb is not None else None

    def _item(self, annotation_id: int) -> ItemRecord | None:
        return self.window.session.item(annotation_id)

    # -- new items: box or click -------------------------------------------------------------------

    def new_item(self, prompt, category_id: int) -> NewItem | None:
        """The landmarks for a new ``category_id`` item at ``prompt`` (box (4,) or click (2,), image pixels):
        from the heatmaps when the image's heads are cached, else the template over the box."""
        category = self.window.taxonomy.category(category_id)
        heads = self._heads()
        try:
            item = prompted_item(heads, prompt, category, self.window.session.params, self.window.taxonomy,
                                 self._grouping(), self._image_size())
        except DeepMarkError as exc:
            self.window.show_error(f"add {category.name}: {exc}")
            return None
        return item

    def describe(self, item: NewItem, name: str) -> str:
        """One status line: how many landmarks the heatmaps placed (without heads, why: said once)."""
        if item.source == "template":
            if self._said_no_heads:
                return f"added {name}: its template over the box"
            self._said_no_heads = True
            return (f"added {name}: its template over the box — no model heatmaps for this image (no model loaded, "
                    "or not run yet), so new garments get their category template; move the landmarks that differ")
        return (f"added {name}: {int(item.confident.sum())} of {len(item.confident)} landmarks on heatmap peaks "
                "(visible), the rest from the template (occluded)")

    def garment_at_cursor(self) -> None:
        """G: add a garment whose centre is under the cursor (category chosen from a menu, the category the
        center heatmap scores highest there preselected)."""
        point = self.canvas.pointer
        if point is None or not self.canvas.sceneRect().contains(point):
            self.window.show_info("point at a garment's centre on the image, then press G")
            return
        self.garment_at(point)

    def garment_at(self, point: QPointF, at: QPoint | None = None) -> None:
        """Ask for the category of the garment centred at ``point`` (scene = image pixels), then add it."""
        if self.window.editor._image_id() is None:
            return
        heads = self._heads()
        if heads is None or self._grouping() is None:
            self.window.show_error("adding a garment at a point needs the model's heatmaps for this image (no model "
                                   "loaded, or not run yet); draw its box instead (W)")
            return
        xy = np.array([point.x(), point.y()])
        menu = self.window.editor.choose_category(lambda cid: self.window.editor.add_item(xy, cid), at)
        best = self.best_category(heads, xy)
        chosen = next((a for a in menu.actions() if a.data() == best), None)
        if chosen is not None:
            menu.setActiveAction(chosen)  # Enter takes the model's guess

    def best_category(self, heads: RawHeads, xy: np.ndarray) -> int:
        """The category id whose center heatmap peaks highest within ``CENTRE_SEARCH`` map pixels of ``xy``."""
        u, v = heads.image_to_map.apply(xy)
        scores = [heads.hm[k][centre_peak(heads.hm[k], u, v, CENTRE_SEARCH)] for k in range(heads.hm.shape[0])]
        return self.window.taxonomy.categories[int(np.argmax(scores))].id

    # -- snap to peak --------------------------------------------------------------------------------

    def _group(self, annotation_id: int, idx: int) -> int | None:
        item, grouping = self._item(annotation_id), self._grouping()
        if item is None or grouping is None:
            return None
        return landmark_group(self.window.taxonomy, grouping, item.category_id, idx)

    def snap(self, annotation_id: int, idx: int, xy, radius: float) -> tuple[float, float] | None:
        """The canvas's ``Snapper.snap``: the nearest peak of the landmark's group (above the decoder's floor)."""
        heads, group = self._heads(), self._group(annotation_id, idx)
        if heads is None or group is None:
            return None
        found = snap_to_peak(heads, group, xy, radius, max(self.window.session.params.peak_threshold, 1e-6))
        if found is None:
            return None
        size = self._image_size()
        x, y = found[0]
        if size is not None:
            x, y = min(max(x, 0.0), size[0]), min(max(y, 0.0), size[1])
        return float(x), float(y)

    def snap_heatmap(self, annotation_id: int, idx: int) -> HeatmapView | None:
        heads, group = self._heads(), self._group(annotation_id, idx)
        if heads is None or group is None:
            if not self._said_no_heads:
                self._said_no_heads = True
                self.window.show_info("no model heatmaps for this image: Shift-drag cannot snap")
            return None
        view = heatmap_view(heads, "group", group)
        # scaled to the group's own maximum: where its peaks are is what matters here, and a group whose
        # peaks score 0.3 would be all but transparent in the colour scale (never below the snap floor)
        top = max(float(view.values.max()), SNAP_MIN_SCORE)
        return HeatmapView(np.clip(view.values / top, 0.0, 1.0), view.map_to_image)

    def snap_targets(self) -> None:
        """P: snap the landmark under the cursor (or the selected ones) to the nearest peak of its group within
        ``SNAP_KEY_RADIUS_PX`` screen pixels; one move, one undo step."""
        targets = self.window.editor.landmark_targets()
        if not targets:
            self.window.show_info("point at a landmark, or select some, then P snaps it to its heatmap peak")
            return
        if self._heads() is None:
            self.window.show_info("no model heatmaps for this image: nothing to snap to")
            return
        radius = SNAP_KEY_RADIUS_PX * self.canvas.pixel_size()
        moves = []
        for aid, idx in targets:
            item = self._item(aid)
            if item is None:
                continue
            peak = self.snap(aid, idx, item.landmarks[idx, :2], radius)
            if peak is not None and not np.allclose(peak, item.landmarks[idx, :2]):
                moves.append((aid, idx, peak))
        if not moves:
            self.window.show_info("no heatmap peak near the landmark (or it is on it already)")
            return
        self.window.editor.move_landmarks(moves)

    # -- re-fit --------------------------------------------------------------------------------------

    def set_refit(self, on: bool) -> None:
        """Re-fit after a fix on / off (remembered for the next start)."""
        self.refit_on = bool(on)
        if self.refit_action.isChecked() != self.refit_on:
            self.refit_action.setChecked(self.refit_on)
        if self.window.remember_settings:
            studio_settings().setValue(REFIT_SETTING, self.refit_on)
        self.window.show_info(f"re-fit after a fix: {'on' if self.refit_on else 'off'}")

    def machine_placed(self, item: ItemRecord) -> bool:
        """True when the item's landmarks were placed by the model or an assist (a prediction taken, a box
        drawn), so that a fix may re-fit them; False for imported labels, which a person placed."""
        if item.origin in ("predicted", "manual"):
            return True
        if item.origin != "corrected":
            return False
        if item.prediction_id is not None:
            return True
        try:  # a corrected item began as a prediction when the store logged its addition as one
            edits = self.window.session.project.history.for_image(item.image_id)
        except DeepMarkError:
            return False
        return any(e.annotation_id == item.id and e.before is None and (e.after or {}).get("origin") == "predicted"
                   for e in edits)

    def _fixed(self, item: ItemRecord, landmarks: np.ndarray) -> np.ndarray:
        """(L,) bool: the item's landmarks a re-fit keeps: confirmed by the user (flagged corrected in the
        store, or moved on a manual item in this session) or on a confident peak of their group heatmap."""
        fixed = np.zeros(len(landmarks), bool)
        if len(item.corrected) == len(landmarks):
            fixed |= item.corrected
        fixed[sorted(i for i in self._touched.get(item.id, ()) if i < len(fixed))] = True
        heads, grouping = self._heads(), self._grouping()
        if heads is not None and grouping is not None:
            try:
                fixed |= peak_backed(heads, grouping, self.window.taxonomy, item.category_id, landmarks, item.box,
                                     self.window.session.params)
            except DeepMarkError as exc:  # heads that do not fit this taxonomy: the user's landmarks only
                self.window.show_error(f"re-fit: {exc}")
        return fixed

    def _refit(self, item: ItemRecord, landmarks: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        category = self.window.taxonomy.category(item.category_id)
        new, replaced = refit_others(category, landmarks, fixed)
        size = self._image_size()
        if size is not None:  # what is stored never leaves the image
            new[:, 0], new[:, 1] = np.clip(new[:, 0], 0.0, size[0]), np.clip(new[:, 1], 0.0, size[1])
        return new, replaced

    @staticmethod
    def _moved(landmarks: np.ndarray, item_moves) -> tuple[np.ndarray, np.ndarray]:
        """(``landmarks`` (L, 3) with the (index, (x, y)) moves applied, (L,) False: no landmark placed by an
        assist)."""
        out = landmarks.copy()
        for idx, (x, y) in item_moves:
            out[idx, :2] = (x, y)
        return out, np.zeros(len(out), bool)

    def move_command(self, image_id: int, moves: list[tuple[int, int, tuple[float, float]]]):
        """The command for landmark ``moves`` with re-fit on: the moves plus each moved garment's re-placed
        landmarks, one undo step; None when the re-fit is off or re-places nothing (a plain move then)."""
        by_item: dict[int, list[tuple[int, tuple[float, float]]]] = {}
        for aid, idx, xy in moves:
            by_item.setdefault(aid, []).append((idx, xy))
        for aid, item_moves in by_item.items():  # confirmed by the user from now on, whatever the store flags
            self._touched.setdefault(aid, set()).update(idx for idx, _ in item_moves)
        if not self.refit_on:
            return None
        changes, refit_count = [], 0
        for aid, item_moves in by_item.items():
            item = self._item(aid)
            if item is None:
                return None
            landmarks = item.landmarks.copy()
            if not self.machine_placed(item):  # imported labels are a person's: a fix re-places none of them
                changes.append((aid, *self._moved(landmarks, item_moves)))
                continue
            landmarks, _ = self._moved(landmarks, item_moves)
            moved = np.zeros(len(landmarks), bool)
            moved[[idx for idx, _ in item_moves]] = True
            new, replaced = self._refit(item, landmarks, self._fixed(item, landmarks) | moved)
            changes.append((aid, new, replaced))
            refit_count += int(replaced.sum())
        if refit_count == 0:
            return None
        what = f"landmark {moves[0][1] + 1}" if len(moves) == 1 else f"{len(moves)} landmarks"
        self.window.show_info(f"moved {what}; re-fit {refit_count} landmarks without a peak or your confirmation "
                              f"(Ctrl+Z undoes both; Shift+T switches re-fit off)")
        return SetItemLandmarks(self.window.session.project, image_id, changes, self.window,
                                f"move {what} + re-fit {refit_count}")

    def refit_selected(self) -> None:
        """T: re-fit the selected garment's landmarks that are neither confirmed nor on a peak, now."""
        editor = self.window.editor
        image_id = editor._image_id()
        targets = editor.target_items()
        if image_id is None:
            return
        if not targets:
            self.window.show_info("select a garment first (click its box, or Tab), then T re-fits it")
            return
        item = self._item(targets[0])
        if item is None:
            return
        fixed = self._fixed(item, item.landmarks)
        new, replaced = self._refit(item, item.landmarks, fixed)
        if not replaced.any():
            self.window.show_info(f"nothing to re-fit: {int((fixed & (item.landmarks[:, 2] > 0)).sum())} landmarks "
                                  "are confirmed or on a peak; a re-fit needs two, and others to place")
            return
        editor._push(SetItemLandmarks(self.window.session.project, image_id, [(item.id, new, replaced)], self.window,
                                      f"re-fit {int(replaced.sum())} landmarks"))
        self.window.show_info(f"re-fit {int(replaced.sum())} landmarks to the {int(fixed.sum())} confirmed or on "
                              "a peak (Ctrl+Z undoes it)")
