"""The image canvas: a QGraphicsView showing the image, a heatmap overlay, the stored items (editable
landmarks) and the model's live detections; wheel zoom around the cursor, fit, 1:1 and hand-drag pan."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

from app.overlay_items import (
    LabelItem,
    LandmarkItem,
    MoveCallback,
    PressCallback,
    box_item,
    prediction_marker,
    skeleton_item,
)
from app.qt_convert import category_color, map_pixels_transform, rgb_to_pixmap, rgba_to_pixmap
from core.store import ItemRecord
from core.structures import Detection
from core.studio import HeatmapView, colorize
from core.taxonomy import Taxonomy

ZOOM_STEP = 1.25
VISIBILITY_NAMES = {0: "not present", 1: "occluded", 2: "visible"}


class Canvas(QGraphicsView):
    """Call ``set_image`` first, then ``set_items`` / ``set_detections`` / ``set_heatmap`` as they change."""

    def __init__(self, taxonomy: Taxonomy, parent=None) -> None:
        super().__init__(parent)
        self.taxonomy = taxonomy
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)  # items that accept the press (landmarks) win
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor(45, 45, 48))
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
        self._item_layer: list[QGraphicsItem] = []
        self._detection_layer: list[QGraphicsItem] = []
        self.landmark_items: list[LandmarkItem] = []
        self.show_items = True
        self.show_detections = True

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

    def set_items(self, items: Sequence[ItemRecord], on_moved: MoveCallback | None,
                  on_pressed: PressCallback | None = None) -> None:
        """The stored truth: solid boxes, skeletons and draggable landmarks."""
        self._clear(self._item_layer)
        self.landmark_items = []
        if not self.show_items:
            return
        for item in items:
            category = self.taxonomy.category(item.category_id)
            color = category_color(item.category_id)
            points, v = item.landmarks[:, :2], item.landmarks[:, 2].astype(int)
            self._add(self._item_layer, box_item(item.box, color, dashed=False))
            label = f"{category.name} · {item.origin}"
            self._add(self._item_layer, LabelItem(label, color, QPointF(item.box[0], item.box[1])))
            self._add(self._item_layer, skeleton_item(points, category.skeleton, v > 0, color, dashed=False))
            for idx, (x, y) in enumerate(points):
                if v[idx] == 0 and x == 0 and y == 0:
                    continue  # DeepFashion2 stores unlabelled landmarks at the origin: nothing to show
                tip = f"{category.name} #{idx + 1} {category.landmark_names[idx]} ({VISIBILITY_NAMES[int(v[idx])]})"
                marker = LandmarkItem(float(x), float(y), int(v[idx]), color, tip, item.id, idx, on_moved,
                                      on_pressed)
                self._add(self._item_layer, marker)
                self.landmark_items.append(marker)

    def set_detections(self, detections: Sequence[Detection]) -> None:
        """The model's live detections: dashed boxes with category and score, score-shaded landmarks."""
        self._clear(self._detection_layer)
        if not self.show_detections:
            return
        for det in detections:
            category = self.taxonomy.category(det.category_id)
            color = category_color(det.category_id)
            self._add(self._detection_layer, box_item(det.box, color, dashed=True))
            at = QPointF(det.box[0], det.box[3])  # at the bottom corner: does not hide the item's own label
            self._add(self._detection_layer, LabelItem(f"{category.name} {det.score:.2f}", color.darker(130), at))
            present = det.landmarks[:, 2] > 0
            self._add(self._detection_layer, skeleton_item(det.landmarks[:, :2], category.skeleton, present, color,
                                                           dashed=True))
            for idx, (x, y, s) in enumerate(det.landmarks):
                tip = f"{category.name} #{idx + 1} {category.landmark_names[idx]}: score {s:.2f}"
                self._add(self._detection_layer, prediction_marker(float(x), float(y), float(s), color, tip))

    def _add(self, layer: list[QGraphicsItem], item: QGraphicsItem) -> None:
        self.scene().addItem(item)
        layer.append(item)

    def _clear(self, layer: list[QGraphicsItem]) -> None:
        for item in layer:
            self.scene().removeItem(item)
        layer.clear()

    # -- zoom and pan ----------------------------------------------------------------------------

    def zoom_fit(self) -> None:
        self.fit_mode = True
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def zoom_actual(self) -> None:
        self.fit_mode = False
        self.resetTransform()

    def zoom_by(self, factor: float) -> None:
        self.fit_mode = False
        self.scale(factor, factor)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fit_mode:
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def zoom_level(self) -> float:
        return self.transform().m11()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP ** steps)
        event.accept()

