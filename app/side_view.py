"""The heatmap alone, beside the image: a second view that follows the canvas's zoom and pan (and leads
it when zoomed or dragged itself), so a peak on the left sits exactly where it does on the right.

The canvas is not changed for this: the view listens to the canvas's scroll bars (pan, and the range
change a zoom brings) and to its viewport's paint events (zooms that move no scroll bar, e.g. when the
whole image fits), and copies the transform and the scene point at the centre.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsRectItem, QGraphicsScene, QGraphicsView

from deepmark.app.canvas import ZOOM_STEP, Canvas
from deepmark.app.qt_convert import map_pixels_transform, rgba_to_pixmap
from deepmark.core.studio.display import HeatmapView, colorize


def opaque_colors(values: np.ndarray) -> np.ndarray:
    """The overlay's colours without its transparency: alone, the heatmap is the picture, and low values
    (transparent on the image, so as not to hide it) must still show as the table's dark blue."""
    rgba = colorize(values)
    rgba[..., 3] = 255
    return rgba


class SideView(QGraphicsView):
    """``set_heatmap(view)`` shows a heatmap (None: nothing); zoom and pan stay those of ``canvas``."""

    def __init__(self, canvas: Canvas, parent=None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor(45, 45, 48))  # as the canvas: the image area (black) stands out
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._frame = QGraphicsRectItem()
        self._frame.setBrush(QBrush(QColor(0, 0, 0)))
        self._frame.setPen(QPen(Qt.PenStyle.NoPen))
        self._heat = QGraphicsPixmapItem()
        self._heat.setZValue(1)
        self._heat.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._heat.setVisible(False)
        self.scene().addItem(self._frame)
        self.scene().addItem(self._heat)
        self._syncing = False
        self._dragging = False
        for bar in (canvas.horizontalScrollBar(), canvas.verticalScrollBar()):
            bar.valueChanged.connect(self.follow)
            bar.rangeChanged.connect(self.follow)
        for bar in (self.horizontalScrollBar(), self.verticalScrollBar()):
            bar.valueChanged.connect(self._lead_drag)
        canvas.viewport().installEventFilter(self)

    # -- content ---------------------------------------------------------------------------------

    def set_heatmap(self, view: HeatmapView | None) -> None:
        if view is None:
            self._heat.setVisible(False)
        else:
            self._heat.setPixmap(rgba_to_pixmap(opaque_colors(view.values)))
            self._heat.setTransform(map_pixels_transform(view.map_to_image))
            self._heat.setVisible(True)
        self.follow()

    def heat_pixmap(self) -> QPixmap | None:
        """The heatmap shown (map pixels), None when there is none."""
        return self._heat.pixmap() if self._heat.isVisible() else None

    # -- following the canvas --------------------------------------------------------------------

    def follow(self, *_) -> None:
        """Copy the canvas's scene rect, zoom and centre (nothing to do while hidden: showing calls it)."""
        if self._syncing or not self.isVisible():
            return
        self._syncing = True
        try:
            rect = self.canvas.sceneRect()
            self.scene().setSceneRect(rect)
            self._frame.setRect(rect)
            if self.transform() != self.canvas.transform():
                self.setTransform(self.canvas.transform())
            self.centerOn(self.canvas.mapToScene(self.canvas.viewport().rect().center()))
        finally:
            self._syncing = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and self.transform() != self.canvas.transform():
            self.follow()
        return False

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.follow()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.follow()

    # -- leading the canvas (zoom and drag here move the image too) -----------------------------

    def _lead(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.canvas.fit_mode = False  # as a zoom on the canvas itself: a resize no longer refits
            self.canvas.setTransform(self.transform())
            self.canvas.centerOn(self.mapToScene(self.viewport().rect().center()))
        finally:
            self._syncing = False

    def _lead_drag(self, *_) -> None:
        if self._dragging:  # only the user's drag: our own resizes and follows must not move the canvas
            self._lead()

    def mousePressEvent(self, event) -> None:
        self._dragging = True
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        self._dragging = False

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP ** steps)
        event.accept()

    def zoom_by(self, factor: float) -> None:
        """Zoom here (around the cursor) and on the canvas alike."""
        self.scale(factor, factor)
        self._lead()

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()
