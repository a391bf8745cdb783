"""Graphics items drawn over the image: garment boxes with labels, skeletons and landmarks.

Landmark markers and labels ignore the view's zoom (``ItemIgnoresTransformations``) so they stay the
same size on screen; one ``QGraphicsPathItem`` per skeleton keeps a garment with 39 landmarks cheap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
)

LANDMARK_RADIUS = 4.5
# Called with (annotation id, landmark index, old (x, y), new (x, y)) when a drag ends.
MoveCallback = Callable[[int, int, tuple[float, float], tuple[float, float]], None]
# Called with (annotation id, landmark index) when a landmark is pressed.
PressCallback = Callable[[int, int], None]


def cosmetic_pen(color: QColor, width: float = 2.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color, width, style)
    pen.setCosmetic(True)  # width in screen pixels whatever the zoom
    return pen


class LabelItem(QGraphicsRectItem):
    """A text tag on a coloured background; ``at`` is its top-left corner in image pixels."""

    def __init__(self, text: str, color: QColor, at: QPointF) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.text = QGraphicsSimpleTextItem(text, self)
        light = color.lightness() > 150  # dark text on yellow / pink, white on the rest
        self.text.setBrush(QBrush(Qt.GlobalColor.black if light else Qt.GlobalColor.white))
        self.setRect(self.text.boundingRect().adjusted(-3, -1, 3, 1))
        self.setBrush(QBrush(color))
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self.setPos(at)  # inside the box's corner: a box touching the image top keeps its label on screen
        self.setZValue(4)


class LandmarkItem(QGraphicsEllipseItem):
    """One landmark. ``v`` 2 (visible): filled disc; 1 (occluded): hollow ring; 0 (not present): small
    grey disc. Draggable when ``on_moved`` is given (the store is written on release)."""

    def __init__(self, x: float, y: float, v: int, color: QColor, tooltip: str, annotation_id: int, idx: int,
                 on_moved: MoveCallback | None, on_pressed: PressCallback | None = None) -> None:
        r = LANDMARK_RADIUS if v else LANDMARK_RADIUS * 0.6
        super().__init__(QRectF(-r, -r, 2 * r, 2 * r))
        self.annotation_id, self.idx, self._on_moved, self._on_pressed = annotation_id, idx, on_moved, on_pressed
        self.setPos(x, y)
        self._start = QPointF(x, y)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        if on_moved is not None:
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
            self.setCursor(Qt.CursorShape.SizeAllCursor)
        if v == 2:
            self.setBrush(QBrush(color))
            self.setPen(QPen(Qt.GlobalColor.white, 1.2))
        elif v == 1:
            self.setBrush(QBrush(QColor(255, 255, 255, 90)))
            self.setPen(QPen(color, 2.0))
        else:
            self.setBrush(QBrush(QColor(150, 150, 150, 200)))
            self.setPen(QPen(QColor(60, 60, 60), 1.0, Qt.PenStyle.DotLine))
        self.setToolTip(tooltip)
        self.setZValue(5)

    def mousePressEvent(self, event) -> None:
        self._start = self.pos()
        super().mousePressEvent(event)
        if self._on_pressed is not None:
            self._on_pressed(self.annotation_id, self.idx)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        end = self.pos()
        if self._on_moved is not None and end != self._start:
            self._on_moved(self.annotation_id, self.idx, (self._start.x(), self._start.y()), (end.x(), end.y()))


def skeleton_path(points: np.ndarray, edges: np.ndarray, present: np.ndarray) -> QPainterPath:
    """The category's contour skeleton between landmarks that are present (``edges`` (E, 2) local)."""
    path = QPainterPath()
    for a, b in np.asarray(edges, int).reshape(-1, 2):
        if a < len(points) and b < len(points) and present[a] and present[b]:
            path.moveTo(float(points[a, 0]), float(points[a, 1]))
            path.lineTo(float(points[b, 0]), float(points[b, 1]))
    return path


def box_item(box: np.ndarray, color: QColor, dashed: bool) -> QGraphicsRectItem:
    x1, y1, x2, y2 = (float(v) for v in box)
    item = QGraphicsRectItem(QRectF(x1, y1, x2 - x1, y2 - y1))
    style = Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
    item.setPen(cosmetic_pen(color, 1.5 if dashed else 2.0, style))
    item.setZValue(3)
    return item


def skeleton_item(points: np.ndarray, edges: np.ndarray, present: np.ndarray, color: QColor,
                  dashed: bool) -> QGraphicsPathItem:
    item = QGraphicsPathItem(skeleton_path(points, edges, present))
    line = QColor(color)
    line.setAlpha(170 if dashed else 220)
    item.setPen(cosmetic_pen(line, 1.2 if dashed else 1.8, Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine))
    item.setZValue(3)
    return item


def prediction_marker(x: float, y: float, score: float, color: QColor, tooltip: str) -> QGraphicsRectItem:
    """A predicted landmark: a small square, opaque in proportion to its score (not draggable)."""
    s = 3.0
    item = QGraphicsRectItem(QRectF(-s, -s, 2 * s, 2 * s))
    item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
    item.setPos(x, y)
    fill = QColor(color)
    fill.setAlphaF(0.25 + 0.75 * float(np.clip(score, 0.0, 1.0)))
    item.setBrush(QBrush(fill))
    item.setPen(QPen(Qt.GlobalColor.black, 0.8))
    item.setToolTip(tooltip)
    item.setZValue(4)
    return item
