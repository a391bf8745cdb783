"""The image canvas: a QGraphicsView showing the image, a heatmap overlay, the stored items (editable) and
the model's live detections; wheel zoom around the cursor, fit, 1:1 and hand-drag pan.

Editing gestures, reported to whoever listens (``deepmark.app.edit_controller.Editor``):
- click a box outline / label / landmark: selects its item; click a detection: selects it; Tab cycles;
- drag a landmark: moves it, with every other selected landmark (Ctrl+click adds one, Shift+drag on
  the image draws a rubber band) → ``landmarks_moved`` (or the ``on_moved`` callback for one landmark);
  with Shift held the dragged landmark snaps to a peak of its group heatmap (``snapper``), shown faintly;
- drag a selected item's corner / edge handle → ``box_edited``;
- draw mode (``set_draw_mode``): drag a new box → ``box_drawn``;
- right click → ``context_menu_requested``; keys in ``key_actions`` call their action.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPixmapCache
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
)

from deepmark.app.overlay_items import (
    DetectionGraphic,
    ItemGraphic,
    LandmarkHandle,
    PressCallback,
    cosmetic_pen,
)
from deepmark.app.qt_convert import category_color, map_pixels_transform, rgb_to_pixmap, rgba_to_pixmap
from deepmark.core.domain.structures import VISIBILITY_NAMES, Detection
from deepmark.core.domain.taxonomy import Taxonomy
from deepmark.core.store import ItemRecord
from deepmark.core.studio.display import HeatmapView, best_per_location, colorize

ZOOM_STEP = 1.25
SNAP_RADIUS_PX = 24.0  # screen px: how far a Shift-drag reaches for a heatmap peak, whatever the zoom
SNAP_HEAT_OPACITY = 0.6  # the group heatmap under a Shift-drag: the heatmap overlay's default; transparent where low


class Snapper(Protocol):
    """What the canvas asks while a landmark is Shift-dragged (``deepmark.app.assist_controller``)."""

    def snap(self, annotation_id: int, idx: int, xy: tuple[float, float], radius: float) -> tuple[float, float] | None:
        """The peak of the landmark's group heatmap nearest ``xy`` within ``radius`` image pixels, or None."""

    def snap_heatmap(self, annotation_id: int, idx: int) -> HeatmapView | None:
        """The landmark's group heatmap, to show during the drag (None: none)."""
MIN_DRAWN_BOX = 2.0  # image pixels: a smaller drag in draw mode is a slip, not a box
AFTER_PAINT_LIMIT_MS = 100  # ``after_paint`` work runs by then even when nothing was painted

# Called with (annotation id, landmark index, old (x, y), new (x, y)) when one landmark was dragged.


class Canvas(QGraphicsView):
    """Call ``set_image`` first, then ``set_items`` / ``set_detections`` / ``set_heatmap`` as they change."""

    landmarks_moved = Signal(object)  # [(annotation id, landmark index, (x, y)), ...] moved together
    box_edited = Signal(int, object)  # annotation id, new (4,) xyxy box
    box_drawn = Signal(object)  # (4,) xyxy box drawn in draw mode
    selection_changed = Signal()
    context_menu_requested = Signal(QPoint, QPoint)  # view position, global position

    def __init__(self, taxonomy: Taxonomy, parent=None) -> None:
        super().__init__(parent)
        self.taxonomy = taxonomy
        self._after_paint: list[Callable[[], None]] = []
        self._after_paint_flushes = 0
        self.setScene(QGraphicsScene(self))
        # no BSP index: the overlay is rebuilt on every slider move, and indexing ~40 items costs more
        # than the linear hit tests it would save
        self.scene().setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        # room for the stored items' device caches (20 garments of ~600 × 800 px at a high zoom)
        QPixmapCache.setCacheLimit(max(QPixmapCache.cacheLimit(), 64 * 1024))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)  # items that accept the press (landmarks) win
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor(45, 45, 48))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the editing keys act on the focused canvas
        # no scroll bars: hand-drag pans (they still hold the scroll range), and fitting never makes them
        # appear and shrink the viewport it just fitted
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.fit_mode = True  # refit on resize until the user zooms
        self._image = QGraphicsPixmapItem()
        self._image.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._heat = QGraphicsPixmapItem()
        self._heat.setZValue(1)
        self._heat.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._image)
        self.scene().addItem(self._heat)
        # the dragged landmark's group heatmap while Shift snaps it (over the overlay, under the garments)
        self._snap_heat = QGraphicsPixmapItem()
        self._snap_heat.setZValue(2)
        self._snap_heat.setOpacity(SNAP_HEAT_OPACITY)
        self._snap_heat.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._snap_heat.setVisible(False)
        self.scene().addItem(self._snap_heat)
        self._snap_shown: tuple[int, int] | None = None  # (annotation id, landmark index) whose heatmap is shown
        self.snapper: Snapper | None = None
        self.pointer: QPointF | None = None  # the scene point under the mouse while it is over the image
        self.setMouseTracking(True)
        self._detection_layer: list[DetectionGraphic] = []
        self.item_graphics: dict[int, ItemGraphic] = {}
        self._handles: dict[int, list[LandmarkHandle]] = {}  # annotation id → its landmarks' handles
        self._kept_selection: dict[int, set[int]] = {}  # selected landmarks of items being rebuilt
        self._callbacks: tuple = (None, None)
        self.landmark_items: list[LandmarkHandle] = []
        self.show_items = True
        self.show_detections = True
        self.all_classes = False  # every class at a location, or only the best (set_detections)
        # what is whose: the stored labels are drawn solid, the model's detections dashed
        self.legend = QLabel("<span style='color:#fff'>━━ your labels</span>&nbsp;&nbsp;&nbsp;"
                             "<span style='color:#ffd27f'>┅┅ model</span>", self)
        self.legend.setStyleSheet("background: rgba(0, 0, 0, 150); padding: 3px 6px; border-radius: 3px")
        self.legend.setToolTip("Solid: the labels stored in the project (yours, or imported). Dashed: the model's "
                               "detections with their score; only the best class at each place unless View → All "
                               "classes at a location")
        self.legend.adjustSize()
        self.legend.move(8, 8)
        self.selected_id: int | None = None  # the selected stored item
        self.selected_detection: int | None = None  # index into the shown detections
        self.hovered: tuple[int, int] | None = None  # (annotation id, landmark index) under the cursor
        self.key_actions: dict[int, Callable[[], None]] = {}
        self.draw_mode = False
        self._draw_start: QPointF | None = None
        self._draw_preview: QGraphicsRectItem | None = None
        self._rubber_band = False
        self.scene().selectionChanged.connect(self._landmark_selection_changed)

    # -- content ---------------------------------------------------------------------------------

    def set_image(self, rgb: np.ndarray | None) -> None:
        if rgb is None:
            self._image.setPixmap(rgb_to_pixmap(np.zeros((1, 1, 3), np.uint8)))
            self.scene().setSceneRect(QRectF(0, 0, 1, 1))
            return
        self._image.setPixmap(rgb_to_pixmap(rgb))
        self.scene().setSceneRect(QRectF(0, 0, rgb.shape[1], rgb.shape[0]))

    def set_heatmap(self, view: HeatmapView | None, opacity: float = 0.6) -> None:
        if view is None:
            self._heat.setVisible(False)
            return
        self._heat.setPixmap(rgba_to_pixmap(colorize(view.values)))
        self._heat.setTransform(map_pixels_transform(view.map_to_image))
        self._heat.setOpacity(opacity)
        self._heat.setVisible(True)

    def heatmap_visible(self) -> bool:
        return self._heat.isVisible()

    def set_items(self, items: Sequence[ItemRecord], editable: bool = True,
                  on_pressed: PressCallback | None = None) -> None:
        """The stored truth: one painted graphic per item and (``editable``) a draggable handle per shown
        landmark; a drag of one landmark or of several together goes out as one ``landmarks_moved``. Only
        the items that changed are rebuilt (an edit touches one item of maybe twenty, and the others keep
        their painted cache); the selection survives by ids."""
        callbacks = (editable, on_pressed)
        if not self.show_items or callbacks != self._callbacks:
            for aid in list(self.item_graphics):
                self._drop_item(aid)
        self._callbacks = callbacks
        if not self.show_items:
            self.item_graphics, self.landmark_items, self.selected_id = {}, [], None
            self._kept_selection.clear()
            return
        wanted = {item.id: item for item in items}
        for aid, graphic in list(self.item_graphics.items()):
            if aid not in wanted or not graphic.shows(wanted[aid]):
                self._drop_item(aid)
        pixel = self.pixel_size()
        graphics: dict[int, ItemGraphic] = {}
        for item in items:
            graphic = self.item_graphics.get(item.id)
            if graphic is None:
                graphic = self._build_item(item, pixel, editable, on_pressed)
            graphic.item = item  # the same drawing; the record may differ in what is not drawn
            graphics[item.id] = graphic
        self.item_graphics = graphics  # in the items' order (Tab follows it)
        self.landmark_items = [h for aid in graphics for h in self._handles[aid]]
        self._kept_selection.clear()  # what was selected on items now gone
        self._landmark_selection_changed()  # ring the landmarks still selected on rebuilt items
        if self.selected_id not in self.item_graphics:
            self.selected_id = None
        elif self.selected_id is not None:
            self.item_graphics[self.selected_id].set_selected(True)

    def _build_item(self, item: ItemRecord, pixel: float, editable: bool,
                    on_pressed: PressCallback | None) -> ItemGraphic:
        category = self.taxonomy.category(item.category_id)
        graphic = ItemGraphic(item, category, category_color(item.category_id), pixel,
                              on_click=self.select_item, on_box=self._box_edited if editable else None)
        self.scene().addItem(graphic)
        selected = self._kept_selection.pop(item.id, set())
        handles = []
        for idx in np.flatnonzero(graphic.shown()).tolist():
            v = int(graphic.v[idx])
            tip = f"{category.name} #{idx + 1} {category.landmark_names[idx]} ({VISIBILITY_NAMES[v]})"
            handle = LandmarkHandle(graphic, idx, tip, self._landmarks_dragged if editable else None,
                                    on_pressed=self._pressed_then(on_pressed), on_hover=self._hover,
                                    on_snap=self._snap_drag if editable else None)
            self.scene().addItem(handle)
            handles.append(handle)
            if idx in selected:
                handle.setSelected(True)
        self._handles[item.id] = handles
        return graphic

    def discard_items(self) -> None:
        """Take every item graphic off, so that the next ``set_items`` draws all of them anew from the
        records (after a refused edit: a dragged handle goes back to the stored position)."""
        for aid in list(self.item_graphics):
            self._drop_item(aid)
        self.item_graphics, self.landmark_items = {}, []

    def _drop_item(self, annotation_id: int) -> None:
        """Take an item's graphic and handles off the scene, remembering which landmarks were selected
        (the item comes back rebuilt when it changed)."""
        handles = self._handles.pop(annotation_id, [])
        chosen = {h.idx for h in handles if h.isSelected()}
        if chosen:
            self._kept_selection[annotation_id] = chosen
        for handle in handles:
            self.scene().removeItem(handle)
        graphic = self.item_graphics.pop(annotation_id, None)
        if graphic is not None and graphic.scene() is self.scene():
            self.scene().removeItem(graphic)
        if self.hovered is not None and self.hovered[0] == annotation_id:
            self.hovered = None

    def set_detections(self, detections: Sequence[Detection], before: Sequence[Detection] | None = None) -> None:
        """The model's live detections, one painted graphic each (dashed box, category and score,
        score-shaded landmark squares): by default only the best class at each location
        (``all_classes`` shows every one), best-scoring on top, labels placed so that none covers another.
        ``before``: the same detections before landmark refinement (same order), drawn as rings joined to
        the refined landmarks."""
        self._clear(self._detection_layer)
        self.selected_detection = None  # indices change with every decode
        if not self.show_detections:
            return
        pixel = self.pixel_size()
        shown = range(len(detections)) if self.all_classes else best_per_location(detections)
        order = sorted(shown, key=lambda i: -detections[i].score)
        placed: list[QRectF] = []
        for index in order:
            det = detections[index]
            graphic = DetectionGraphic(det, index, self.taxonomy.category(det.category_id),
                                       category_color(det.category_id), pixel, on_click=self.select_detection,
                                       before=before[index].landmarks[:, :2] if before is not None else None)
            step = graphic.label.size.height() + 1.0
            for _ in range(len(placed)):  # best first: it keeps its place, the others move down
                rect = graphic.label_rect()
                if not any(rect.intersects(other) for other in placed):
                    break
                graphic.label_shift += step
            placed.append(graphic.label_rect())
            self._add(self._detection_layer, graphic)

    def set_all_classes(self, on: bool) -> None:
        """Show every class the model found at a location (on), or only the best one (off, the default)."""
        self.all_classes = on

    def detection_graphics(self) -> list[DetectionGraphic]:
        return list(self._detection_layer)

    def _add(self, layer: list, item: QGraphicsItem) -> None:
        self.scene().addItem(item)
        layer.append(item)

    def _clear(self, layer: list) -> None:
        for item in layer:
            self.scene().removeItem(item)
        layer.clear()

    # -- selection -------------------------------------------------------------------------------

    def select_item(self, annotation_id: int | None) -> None:
        """Make ``annotation_id`` the selected item (None: none); a detection selection is dropped."""
        if self.selected_id is not None and self.selected_id in self.item_graphics:
            self.item_graphics[self.selected_id].set_selected(False)
        self.selected_id = annotation_id if annotation_id in self.item_graphics else None
        if self.selected_id is not None:
            self.item_graphics[self.selected_id].set_selected(True)
        self._select_detection_only(None)
        self.selection_changed.emit()

    def select_detection(self, index: int | None) -> None:
        """Make detection ``index`` the selected one (None: none); the item selection is dropped."""
        if self.selected_id is not None and self.selected_id in self.item_graphics:
            self.item_graphics[self.selected_id].set_selected(False)
        self.selected_id = None
        self._select_detection_only(index)
        self.selection_changed.emit()

    def _select_detection_only(self, index: int | None) -> None:
        if self.selected_detection is not None and self.selected_detection < len(self._detection_layer):
            self._detection_layer[self.selected_detection].set_selected(False)
        valid = index is not None and 0 <= index < len(self._detection_layer)
        self.selected_detection = index if valid else None
        if self.selected_detection is not None:
            self._detection_layer[self.selected_detection].set_selected(True)

    def cycle_selection(self, step: int = 1) -> None:
        """Tab / Shift+Tab: the next / previous stored item in order (from none: the first / last)."""
        ids = list(self.item_graphics)
        if not ids:
            return
        if self.selected_id in ids:
            at = (ids.index(self.selected_id) + step) % len(ids)
        else:
            at = 0 if step > 0 else len(ids) - 1
        self.select_item(ids[at])
        self.ensureVisible(self.item_graphics[ids[at]].boundingRect(), 20, 20)

    def clear_selection(self) -> None:
        self.scene().clearSelection()
        self.select_item(None)

    def _landmark_selection_changed(self) -> None:
        chosen: dict[int, set[int]] = {aid: set() for aid in self.item_graphics}
        for handle in self.selected_landmarks_items():
            chosen.setdefault(handle.annotation_id, set()).add(handle.idx)
        for aid, graphic in self.item_graphics.items():
            graphic.mark_landmarks(chosen[aid])
        self.selection_changed.emit()

    def selected_landmarks_items(self) -> list[LandmarkHandle]:
        return [i for i in self.scene().selectedItems() if isinstance(i, LandmarkHandle)]

    def selected_landmarks(self) -> list[tuple[int, int]]:
        """(annotation id, landmark index) of the selected landmarks, in drawing order."""
        return [(h.annotation_id, h.idx) for h in self.landmark_items if h.isSelected()]

    def hit(self, view_pos: QPoint) -> QGraphicsItem | None:
        """The topmost landmark handle, item or detection graphic under a viewport position."""
        for item in self.items(view_pos):
            if isinstance(item, (LandmarkHandle, ItemGraphic, DetectionGraphic)):
                return item
        return None

    def _hover(self, annotation_id: int | None, idx: int | None) -> None:
        self.hovered = None if annotation_id is None else (annotation_id, idx)

    def _pressed_then(self, on_pressed: PressCallback | None) -> PressCallback:
        def pressed(annotation_id: int, idx: int) -> None:
            if self.selected_id != annotation_id:
                self.select_item(annotation_id)
            if on_pressed is not None:
                on_pressed(annotation_id, idx)
        return pressed

    def _snap_drag(self, handle: LandmarkHandle, shift: bool | None) -> None:
        """A drag step of ``handle`` (``shift`` None: the drag ended): with Shift, show its group heatmap
        faintly and put it on the nearest peak within ``SNAP_RADIUS_PX`` screen pixels; else no heatmap."""
        key = (handle.annotation_id, handle.idx)
        if not shift or self.snapper is None:
            self.show_snap_heatmap(None)
            return
        if self._snap_shown != key:
            self.show_snap_heatmap(self.snapper.snap_heatmap(*key), key)
        at = handle.pos()
        peak = self.snapper.snap(*key, (at.x(), at.y()), SNAP_RADIUS_PX * self.pixel_size())
        if peak is not None:
            handle.setPos(QPointF(*peak))

    def show_snap_heatmap(self, view: HeatmapView | None, key: tuple[int, int] | None = None) -> None:
        """Show ``view`` faintly over the image (None: hide it); ``key`` the landmark it belongs to."""
        self._snap_shown = key if view is not None else None
        if view is None:
            self._snap_heat.setVisible(False)
            return
        self._snap_heat.setPixmap(rgba_to_pixmap(colorize(view.values)))
        self._snap_heat.setTransform(map_pixels_transform(view.map_to_image))
        self._snap_heat.setVisible(True)

    def snap_heatmap_visible(self) -> bool:
        return self._snap_heat.isVisible()

    def _landmarks_dragged(self, moves: list[tuple[int, int, tuple[float, float]]]) -> None:
        self.landmarks_moved.emit(moves)

    def _box_edited(self, annotation_id: int, box: np.ndarray) -> None:
        self.box_edited.emit(annotation_id, box)

    # -- draw mode -------------------------------------------------------------------------------

    def set_draw_mode(self, on: bool) -> None:
        """In draw mode a left drag draws a new box (``box_drawn``) instead of panning; one box, then off."""
        self.draw_mode = on
        self.setDragMode(QGraphicsView.DragMode.NoDrag if on else QGraphicsView.DragMode.ScrollHandDrag)
        if on:
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.viewport().unsetCursor()
            self._end_preview()

    def _end_preview(self) -> None:
        if self._draw_preview is not None:
            self.scene().removeItem(self._draw_preview)
        self._draw_preview = None
        self._draw_start = None

    def _image_point(self, view_pos: QPointF) -> QPointF:
        """The scene point under a viewport position, clamped into the image."""
        p = self.mapToScene(view_pos.toPoint())
        rect = self.scene().sceneRect()
        return QPointF(min(max(p.x(), rect.left()), rect.right()), min(max(p.y(), rect.top()), rect.bottom()))

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and not self.draw_mode:
            # a prediction's label is on top of whatever is drawn under it: a click there selects the prediction
            at = self.mapToScene(event.position().toPoint())
            for graphic in sorted(self._detection_layer, key=lambda g: -g.zValue()):
                if graphic.label_rect().contains(at) and not isinstance(self.hit(event.position().toPoint()),
                                                                         LandmarkHandle):
                    self.select_detection(graphic.index)
                    event.accept()
                    return
        if self.draw_mode and event.button() == Qt.MouseButton.LeftButton:
            self._draw_start = self._image_point(event.position())
            self._draw_preview = QGraphicsRectItem(QRectF(self._draw_start, self._draw_start))
            self._draw_preview.setPen(cosmetic_pen(QColor(255, 255, 255), 1.5, Qt.PenStyle.DashLine))
            self._draw_preview.setZValue(10)
            self.scene().addItem(self._draw_preview)
            event.accept()
            return
        on_nothing = self.hit(event.position().toPoint()) is None
        if (event.button() == Qt.MouseButton.LeftButton and on_nothing
                and event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self._rubber_band = True  # Shift+drag on the image selects the landmarks inside a rectangle
            self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        self.pointer = self.mapToScene(event.position().toPoint())  # the target of "garment at cursor"
        if self._draw_start is not None:
            self._draw_preview.setRect(QRectF(self._draw_start, self._image_point(event.position())).normalized())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._draw_start is not None:
            rect = QRectF(self._draw_start, self._image_point(event.position())).normalized()
            self.set_draw_mode(False)
            event.accept()
            if rect.width() >= MIN_DRAWN_BOX and rect.height() >= MIN_DRAWN_BOX:
                self.box_drawn.emit(np.array([rect.left(), rect.top(), rect.right(), rect.bottom()]))
            return
        super().mouseReleaseEvent(event)
        if self._rubber_band:
            self._rubber_band = False
            self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)

    def leaveEvent(self, event) -> None:
        self.pointer = None
        super().leaveEvent(event)

    def contextMenuEvent(self, event) -> None:
        self.context_menu_requested.emit(event.pos(), event.globalPos())
        event.accept()

    # -- keys ------------------------------------------------------------------------------------

    def event(self, event) -> bool:
        # Tab would move the focus out of the canvas before keyPressEvent sees it: it cycles items here
        if (event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab)
                and event.key() in self.key_actions):
            self.key_actions[event.key()]()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        action = self.key_actions.get(event.key())
        blocked = event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
        if action is not None and not blocked:
            action()
            event.accept()
            return
        super().keyPressEvent(event)

    # -- zoom and pan ----------------------------------------------------------------------------

    def pixel_size(self) -> float:
        """Scene length of one screen pixel at the current zoom."""
        scale = self.transform().m11()
        return 1.0 / scale if scale > 0 else 1.0

    def _zoom_changed(self) -> None:
        pixel = self.pixel_size()
        for graphic in [*self.item_graphics.values(), *self._detection_layer]:
            graphic.set_pixel(pixel)

    def paintEvent(self, event) -> None:
        # a transform set from outside (the side view leads the zoom with setTransform) reaches the
        # graphics here, before they are painted with stale hit areas
        graphics = self._detection_layer or list(self.item_graphics.values())
        if graphics and graphics[0].pixel != self.pixel_size():
            self._zoom_changed()
        super().paintEvent(event)
        if self._after_paint:
            QTimer.singleShot(0, self, self._run_after_paint)  # queued: runs once this paint is on screen

    def after_paint(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the canvas has been repainted (a new image on screen before slower work follows);
        within ``AFTER_PAINT_LIMIT_MS`` even when no paint comes (a hidden window)."""
        self._after_paint.append(fn)
        self.viewport().update()
        waiting_since = self._after_paint_flushes  # the limit applies to this wait, not to a later one
        QTimer.singleShot(AFTER_PAINT_LIMIT_MS, self,
                          lambda: self._run_after_paint() if self._after_paint_flushes == waiting_since else None)

    def _run_after_paint(self) -> None:
        waiting, self._after_paint = self._after_paint, []
        self._after_paint_flushes += 1
        for fn in waiting:
            fn()

    def zoom_fit(self) -> None:
        self.fit_mode = True
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._zoom_changed()

    def zoom_actual(self) -> None:
        self.fit_mode = False
        self.resetTransform()
        self._zoom_changed()

    def zoom_by(self, factor: float) -> None:
        self.fit_mode = False
        self.scale(factor, factor)
        self._zoom_changed()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fit_mode:
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
            self._zoom_changed()

    def zoom_level(self) -> float:
        return self.transform().m11()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP ** steps)
        event.accept()
