"""Graphics items drawn over the image: one custom-painted item per garment, plus a hit handle per stored
landmark.

Speed: the slider → repaint path rebuilds the detections, so a detection is ONE item that paints its
box, label, skeleton and landmark squares itself (``DetectionGraphic``): building the layer costs
O(detections), not O(landmarks), and painting batches the squares and lines into a few calls.
Markers keep their size on screen whatever the zoom: ``paint`` maps the points through the painter's
world transform with numpy and draws in device pixels. A stored item is likewise painted by one
``ItemGraphic``; its landmarks also get a ``LandmarkHandle`` each, which paints nothing and exists to be
hovered, selected and dragged individually.

Every item here needs the scene length of one screen pixel (``pixel``) to size its bounding rect and
hit area around the fixed-size markers; the canvas keeps it current (``set_pixel``) on every zoom.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QStaticText, QTransform
from PySide6.QtWidgets import QGraphicsItem

from deepmark.core.domain.structures import Detection
from deepmark.core.domain.taxonomy import Category
from deepmark.core.store import ItemRecord

LANDMARK_RADIUS = 4.5  # screen px: a stored landmark's disc
PREDICTION_HALF = 3.0  # screen px: half the side of a predicted landmark's square
HANDLE_HALF = 4.0  # screen px: half the side of a box handle
HIT_PX = 6.0  # screen px: how near the cursor must come to a point or line to hit it
LABEL_PAD = (3.0, 1.0)  # screen px around a label's text
SCORE_LEVELS = 5  # predicted squares are drawn with this many opacity levels (one brush, one call each)

# Called with [(annotation id, landmark index, (x, y) new position in pixels), ...] when a drag ends.
MovesCallback = Callable[[list[tuple[int, int, tuple[float, float]]]], None]
# Called with (annotation id, landmark index) when a landmark is pressed.
PressCallback = Callable[[int, int], None]
# Called with (annotation id, landmark index) entering a landmark, or (None, None) leaving it.
HoverCallback = Callable[[int | None, int | None], None]
# Called with (the dragged handle, Shift held: True / False, or None when the drag ends) on each drag step,
# after the handles moved: it may move the dragged handle on (snapping it to a heatmap peak).
SnapCallback = Callable[["LandmarkHandle", bool | None], None]


@lru_cache(maxsize=1)
def label_font() -> QFont:
    font = QFont()
    font.setPointSizeF(8.5)
    return font


@lru_cache(maxsize=1)
def label_metrics() -> QFontMetricsF:
    return QFontMetricsF(label_font())


@lru_cache(maxsize=1)
def index_font() -> QFont:
    font = QFont()
    font.setPointSizeF(7.0)
    font.setBold(True)
    return font


@lru_cache(maxsize=64)
def index_text(number: int) -> QStaticText:
    """A landmark's 1-based number, laid out once (QStaticText skips the text layout on each paint)."""
    text = QStaticText(str(number))
    text.prepare(QTransform(), index_font())
    return text


def to_device(transform: QTransform, points: np.ndarray) -> np.ndarray:
    """(N, 2) item coordinates → (N, 2) device pixels through an affine ``transform`` (the view only
    scales and translates; no perspective)."""
    t = transform
    x, y = points[:, 0], points[:, 1]
    return np.column_stack([t.m11() * x + t.m21() * y + t.dx(), t.m12() * x + t.m22() * y + t.dy()])


def square_rects(device: np.ndarray, half: float) -> list[QRectF]:
    """Squares of side ``2 * half`` centred on (N, 2) device points."""
    return [QRectF(x - half, y - half, 2 * half, 2 * half) for x, y in device.tolist()]


def segment_lines(device: np.ndarray, edges: np.ndarray) -> list[QLineF]:
    """One line per (E, 2) edge between (N, 2) device points."""
    ends = np.concatenate([device[edges[:, 0]], device[edges[:, 1]]], axis=1)
    return [QLineF(x1, y1, x2, y2) for x1, y1, x2, y2 in ends.tolist()]


def present_edges(edges: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(E', 2) the skeleton ``edges`` (E, 2, local indices) whose two ends are both ``present`` (L,)."""
    edges = np.asarray(edges, int).reshape(-1, 2)
    inside = (edges < len(present)).all(axis=1)
    edges = edges[inside]
    return edges[present[edges[:, 0]] & present[edges[:, 1]]]


def near_segments(point: np.ndarray, starts: np.ndarray, ends: np.ndarray, tolerance: float) -> bool:
    """True when ``point`` (2,) lies within ``tolerance`` of any segment ``starts`` → ``ends`` (N, 2)."""
    d = ends - starts
    length2 = np.maximum((d * d).sum(axis=1), 1e-12)
    t = np.clip(((point - starts) * d).sum(axis=1) / length2, 0.0, 1.0)
    nearest = starts + t[:, None] * d
    return bool((((nearest - point) ** 2).sum(axis=1) <= tolerance * tolerance).any())


def box_segments(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The four sides of a (4,) xyxy box as (4, 2) starts and ends."""
    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    return corners, np.roll(corners, -1, axis=0)


def cosmetic_pen(color: QColor, width: float = 2.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color, width, style)
    pen.setCosmetic(True)  # width in screen pixels whatever the zoom
    return pen


class Label:
    """A text tag on a coloured background, painted in device pixels (same size at any zoom)."""

    def __init__(self, text: str, color: QColor) -> None:
        self.text = text
        self.static = QStaticText(text)
        self.static.prepare(QTransform(), label_font())
        metrics = label_metrics()
        self.size = QSizeF(metrics.horizontalAdvance(text) + 2 * LABEL_PAD[0], metrics.height() + 2 * LABEL_PAD[1])
        self.brush = QBrush(color)
        light = color.lightness() > 150  # dark text on yellow / pink, white on the rest
        self.pen = QPen(Qt.GlobalColor.black if light else Qt.GlobalColor.white)

    def paint(self, painter: QPainter, at: QPointF) -> None:
        """Draw with the top-left corner ``at`` (device pixels; the painter's transform reset)."""
        painter.fillRect(QRectF(at, self.size), self.brush)
        painter.setPen(self.pen)
        painter.setFont(label_font())
        painter.drawStaticText(at + QPointF(*LABEL_PAD), self.static)

    def scene_rect(self, at: QPointF, pixel: float) -> QRectF:
        """Its rectangle in scene units when its top-left corner is at scene point ``at``."""
        return QRectF(at, QSizeF(self.size.width() * pixel, self.size.height() * pixel))


class OverlayGraphic(QGraphicsItem):
    """Base of the custom-painted garments: knows ``pixel``, the scene length of one screen pixel."""

    def __init__(self, pixel: float) -> None:
        super().__init__()
        self.pixel = pixel

    def set_pixel(self, pixel: float) -> None:
        if pixel != self.pixel:
            self.prepareGeometryChange()  # the fixed-size markers cover another scene area now
            self.pixel = pixel

    def _padded(self, extent: np.ndarray, pad_px: float) -> QRectF:
        """(4,) x1, y1, x2, y2 scene extent grown by ``pad_px`` screen pixels."""
        pad = pad_px * self.pixel
        return QRectF(extent[0] - pad, extent[1] - pad, extent[2] - extent[0] + 2 * pad,
                      extent[3] - extent[1] + 2 * pad)

    def contains(self, pos: QPointF) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def collidesWithPath(self, path: QPainterPath, mode=Qt.ItemSelectionMode.IntersectsItemShape) -> bool:
        # The scene finds the items under the cursor (clicks, hover, tooltips) by asking each whether it
        # collides with a one-screen-pixel square: answered by contains(), exact and vectorised, rather than
        # by intersecting a shape path built from dozens of markers. Larger areas (rubber band) only need
        # the bounds: these graphics are not selectable.
        rect = path.boundingRect()
        if rect.width() <= 4 * self.pixel and rect.height() <= 4 * self.pixel:
            return self.contains(rect.center())
        return rect.intersects(self.boundingRect())

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.boundingRect())
        return path


class DetectionStyle:
    """The pens and brushes of one colour's detections, made once (a slider move makes ~20 detections)."""

    def __init__(self, color: QColor) -> None:
        self.box_pen = cosmetic_pen(color, 1.0, Qt.PenStyle.DashLine)
        self.selected_pen = cosmetic_pen(color, 3.0, Qt.PenStyle.DashLine)
        line = QColor(color)
        line.setAlpha(170)
        self.line_pen = cosmetic_pen(line, 1.2, Qt.PenStyle.DashLine)
        self.marker_pen = QPen(Qt.GlobalColor.black, 0.8)
        self.label_color = color.darker(130)
        self.level_brushes = []
        for level in range(SCORE_LEVELS):
            fill = QColor(color)
            fill.setAlphaF(0.25 + 0.75 * level / (SCORE_LEVELS - 1))
            self.level_brushes.append(QBrush(fill))


@lru_cache(maxsize=32)
def detection_style(rgba: int) -> DetectionStyle:
    return DetectionStyle(QColor.fromRgba(rgba))


class DetectionGraphic(OverlayGraphic):
    """One live detection: dashed box, "category score" label under its bottom-left corner, dashed
    skeleton between the landmarks the model found (score > 0), and a square per landmark, opaque in
    proportion to its score. Hovering a landmark shows its name and score. The outline, label and
    landmarks take clicks (``on_click(index)``); the inside of the box does not, so it still pans.
    ``before`` (L, 2) image pixels: where the decoder put the landmarks before refinement, drawn as small
    rings joined to the refined squares by a thin line (shown on demand)."""

    def __init__(self, detection: Detection, index: int, category: Category, color: QColor, pixel: float,
                 on_click: Callable[[int], None] | None = None, before: np.ndarray | None = None) -> None:
        super().__init__(pixel)
        self.detection, self.index, self.category = detection, index, category
        self._on_click = on_click
        self.box = np.asarray(detection.box, np.float64)
        self.points = np.asarray(detection.landmarks[:, :2], np.float64)
        self.before = None if before is None else np.asarray(before, np.float64).reshape(-1, 2)[: len(self.points)]
        self.scores = np.clip(np.asarray(detection.landmarks[:, 2], np.float64), 0.0, 1.0)
        self.edges = present_edges(category.skeleton, self.scores > 0)
        self.label = Label(f"{category.name} {detection.score:.2f}", detection_style(color.rgba()).label_color)
        every = self.points if self.before is None else np.concatenate([self.points, self.before])
        self.extent = np.array([min(self.box[0], every[:, 0].min(initial=self.box[0])),
                                min(self.box[1], every[:, 1].min(initial=self.box[1])),
                                max(self.box[2], every[:, 0].max(initial=self.box[2])),
                                max(self.box[3], every[:, 1].max(initial=self.box[3]))])
        self.selected = False
        self.style = detection_style(color.rgba())
        levels = np.rint(self.scores * (SCORE_LEVELS - 1)).astype(int)
        self._groups = [(self.style.level_brushes[level], np.flatnonzero(levels == level))
                        for level in np.flatnonzero(np.bincount(levels, minlength=SCORE_LEVELS))]
        self.setZValue(3 + float(np.clip(detection.score, 0.0, 1.0)))  # the best-scoring drawn on top
        self.label_shift = 0.0  # screen pixels the label moves down so that it does not cover another
        self.setAcceptHoverEvents(True)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        self.setToolTip(self.box_tooltip())

    def box_tooltip(self) -> str:
        d = self.detection
        return f"prediction: {self.category.name}, score {d.score:.2f} (box {d.box_score:.2f})"

    def landmark_tooltip(self, idx: int) -> str:
        c = self.category
        return f"{c.name} #{idx + 1} {c.landmark_names[idx]}: score {self.scores[idx]:.2f}"

    def set_selected(self, on: bool) -> None:
        if on != self.selected:
            self.selected = on
            self.update()

    def label_at(self) -> QPointF:
        # under the box (does not hide the stored item's label), moved down past labels placed before it
        return QPointF(self.box[0], self.box[3] + self.label_shift * self.pixel)

    def label_rect(self) -> QRectF:
        return self.label.scene_rect(self.label_at(), self.pixel)

    def boundingRect(self) -> QRectF:
        rect = self._padded(self.extent, PREDICTION_HALF + 2.0)
        return rect.united(self.label.scene_rect(self.label_at(), self.pixel))

    def landmark_at(self, pos: QPointF) -> int | None:
        """The landmark whose square is under ``pos`` (item coordinates), the nearest one; or None."""
        if not len(self.points):
            return None
        d2 = ((self.points - (pos.x(), pos.y())) ** 2).sum(axis=1)
        best = int(np.argmin(d2))
        return best if d2[best] <= (HIT_PX * self.pixel) ** 2 else None

    def contains(self, pos: QPointF) -> bool:
        if self.label.scene_rect(self.label_at(), self.pixel).contains(pos):
            return True
        if self.landmark_at(pos) is not None:
            return True
        return near_segments(np.array([pos.x(), pos.y()]), *box_segments(self.box), HIT_PX * self.pixel)

    def hoverMoveEvent(self, event) -> None:
        idx = self.landmark_at(event.pos())
        self.setToolTip(self.box_tooltip() if idx is None else self.landmark_tooltip(idx))

    def mousePressEvent(self, event) -> None:
        if self._on_click is not None:
            self._on_click(self.index)
        event.accept()

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = painter.worldTransform()
        corners = to_device(t, self.box.reshape(2, 2))
        points = to_device(t, self.points)
        painter.save()
        painter.resetTransform()  # draw in device pixels: fixed-size markers at any zoom
        if len(self.edges):
            painter.setPen(self.style.line_pen)
            painter.drawLines(segment_lines(points, self.edges))
        # axis-aligned shapes gain nothing from antialiasing, and a dashed antialiased outline costs
        # the raster engine several times more
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(self.style.selected_pen if self.selected else self.style.box_pen)
        painter.drawRect(QRectF(QPointF(*corners[0]), QPointF(*corners[1])))
        if self.before is not None and len(self.before) == len(points):
            before = to_device(t, self.before)
            painter.setPen(cosmetic_pen(self.style.label_color, 1.0))
            painter.drawLines([QLineF(QPointF(*a), QPointF(*b)) for a, b in zip(before, points, strict=True)])
            for x, y in before:
                painter.drawEllipse(QPointF(x, y), PREDICTION_HALF, PREDICTION_HALF)
        painter.setPen(self.style.marker_pen)
        for brush, idx in self._groups:
            painter.setBrush(brush)
            painter.drawRects(square_rects(points[idx], PREDICTION_HALF))
        self.label.paint(painter, QPointF(corners[0, 0], corners[1, 1] + self.label_shift))
        painter.restore()


# Box handles: which box coordinates (x index, y index into x1, y1, x2, y2; None = unchanged) each moves.
HANDLES = ((0, 1), (2, 1), (2, 3), (0, 3), (None, 1), (2, None), (None, 3), (0, None))


class ItemGraphic(OverlayGraphic):
    """One stored item: solid box, "category · origin" label in its top-left corner, solid skeleton
    between present landmarks, and each landmark by visibility with its number beside it: visible a
    filled disc, occluded a hollow ring, not present a small grey disc (a not-present landmark stored at
    0, 0, DeepFashion2's "unlabelled", is not drawn). Selected: a thicker box with eight handles
    (corners and edge middles); dragging one resizes the box live and, on release, calls
    ``on_box(annotation_id, box)``. A press on the outline or label calls ``on_click(annotation_id)``."""

    def __init__(self, item: ItemRecord, category: Category, color: QColor, pixel: float,
                 on_click: Callable[[int], None] | None = None,
                 on_box: Callable[[int, np.ndarray], None] | None = None) -> None:
        super().__init__(pixel)
        self.item, self.category, self.color = item, category, color
        self.annotation_id = item.id
        self._on_click, self._on_box = on_click, on_box
        self.box = np.array(item.box, np.float64)
        self.points = np.array(item.landmarks[:, :2], np.float64)
        self.v = item.landmarks[:, 2].astype(int)
        self.label = Label(f"{category.name} · {item.origin}", color)
        self.selected = False
        self.selected_landmarks: set[int] = set()
        self._drag: tuple[int | None, int | None] | None = None
        self._pen = cosmetic_pen(color, 2.0)
        self._selected_pen = cosmetic_pen(color, 4.0)
        # opaque: a translucent wide antialiased stroke costs the raster engine ~5× more per line
        self._line_pen = cosmetic_pen(color, 1.6)
        self._styles = {
            2: (QBrush(color), QPen(Qt.GlobalColor.white, 1.2), LANDMARK_RADIUS),
            1: (QBrush(QColor(255, 255, 255, 90)), QPen(color, 2.0), LANDMARK_RADIUS),
            0: (QBrush(QColor(150, 150, 150, 200)), QPen(QColor(60, 60, 60), 1.0, Qt.PenStyle.DotLine),
                LANDMARK_RADIUS * 0.6),
        }
        self._index_shadow = QPen(QColor(0, 0, 0, 200))
        self._index_pen = QPen(Qt.GlobalColor.white)
        self._ring_pen = QPen(QColor(255, 235, 59), 2.0)
        self.setZValue(6)
        # stored items do not change when a slider re-decodes the detections over them: repainting them
        # is then a pixmap blit (the cache is redrawn on zoom, or when the item itself changes)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        self.setToolTip(f"{category.name} ({item.origin}): {int((self.v > 0).sum())} of {len(self.v)} landmarks")

    # -- state -----------------------------------------------------------------------------------

    def shows(self, item: ItemRecord) -> bool:
        """True when this graphic, as it is now (a drag in progress included), draws ``item`` exactly."""
        return (item.category_id == self.item.category_id and item.origin == self.item.origin
                and np.array_equal(item.box, self.box) and np.array_equal(item.landmarks[:, :2], self.points)
                and np.array_equal(item.landmarks[:, 2].astype(int), self.v))

    def shown(self) -> np.ndarray:
        """(L,) bool: the landmarks drawn (not the unlabelled ones stored at 0, 0)."""
        return ~((self.v == 0) & (self.points[:, 0] == 0) & (self.points[:, 1] == 0))

    def set_selected(self, on: bool) -> None:
        if on != self.selected:
            self.prepareGeometryChange()  # the handles widen the hit area
            self.selected = on
            self.update()

    def move_landmark(self, idx: int, pos: QPointF) -> None:
        """Follow a landmark handle being dragged (the skeleton and number move with it)."""
        self.prepareGeometryChange()
        self.points[idx] = (pos.x(), pos.y())
        self.update()

    def mark_landmarks(self, selected: set[int]) -> None:
        """Ring the ``selected`` landmark indices (the others not)."""
        if selected != self.selected_landmarks:
            self.selected_landmarks = selected
            self.update()

    def handle_points(self) -> np.ndarray:
        """(8, 2) the handle centres in scene pixels, in ``HANDLES`` order."""
        x1, y1, x2, y2 = self.box
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [mx, y1], [x2, my], [mx, y2], [x1, my]])

    def handle_at(self, pos: QPointF) -> int | None:
        """The handle under ``pos`` (item coordinates) when selected, else None."""
        if not self.selected:
            return None
        d = np.abs(self.handle_points() - (pos.x(), pos.y())).max(axis=1)
        best = int(np.argmin(d))
        return best if d[best] <= (HANDLE_HALF + 2.0) * self.pixel else None

    # -- geometry --------------------------------------------------------------------------------

    def _extent(self) -> np.ndarray:
        pts = self.points[self.shown()]
        lo = np.minimum(self.box[:2], pts.min(axis=0)) if len(pts) else self.box[:2]
        hi = np.maximum(self.box[2:], pts.max(axis=0)) if len(pts) else self.box[2:]
        return np.concatenate([lo, hi])

    def boundingRect(self) -> QRectF:
        # the landmark numbers sit up to ~22 px right of / above their landmark
        rect = self._padded(self._extent(), 24.0)
        return rect.united(self.label.scene_rect(QPointF(self.box[0], self.box[1]), self.pixel))

    def contains(self, pos: QPointF) -> bool:
        if self.label.scene_rect(QPointF(self.box[0], self.box[1]), self.pixel).contains(pos):
            return True
        if self.handle_at(pos) is not None:
            return True
        return near_segments(np.array([pos.x(), pos.y()]), *box_segments(self.box), HIT_PX * self.pixel)

    # -- mouse: select, resize by a handle -------------------------------------------------------

    def mousePressEvent(self, event) -> None:
        handle = self.handle_at(event.pos())
        if handle is not None:
            self._drag = HANDLES[handle]
            self._start_box = self.box.copy()
        elif self._on_click is not None:
            self._on_click(self.annotation_id)
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._drag is None:
            return
        ix, iy = self._drag
        self.prepareGeometryChange()
        at = self.mapFromScene(clamped_to_scene(self, self.mapToScene(event.pos())))  # the box stays on the image
        if ix is not None:
            self.box[ix] = at.x()
        if iy is not None:
            self.box[iy] = at.y()
        self.update()

    def mouseReleaseEvent(self, event) -> None:
        if self._drag is None:
            return
        self._drag = None
        # a handle dragged past the opposite side flips the box: store it the right way round
        box = np.array([min(self.box[0], self.box[2]), min(self.box[1], self.box[3]),
                        max(self.box[0], self.box[2]), max(self.box[1], self.box[3])])
        if self._on_box is not None and not np.array_equal(box, self._start_box):
            self._on_box(self.annotation_id, box)

    # -- painting --------------------------------------------------------------------------------

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = painter.worldTransform()
        corners = to_device(t, self.box.reshape(2, 2))
        points = to_device(t, self.points)
        shown = self.shown()
        painter.save()
        painter.resetTransform()  # device pixels: fixed-size markers at any zoom
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)  # axis-aligned: sharp and cheaper
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(self._selected_pen if self.selected else self._pen)
        painter.drawRect(QRectF(QPointF(*corners[0]), QPointF(*corners[1])))
        if self.selected:
            painter.setPen(QPen(Qt.GlobalColor.black, 1.0))
            painter.setBrush(QBrush(Qt.GlobalColor.white))
            painter.drawRects(square_rects(to_device(t, self.handle_points()), HANDLE_HALF))
        self.label.paint(painter, QPointF(*corners[0]))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        edges = present_edges(self.category.skeleton, (self.v > 0) & shown)
        if len(edges):
            painter.setPen(self._line_pen)
            painter.drawLines(segment_lines(points, edges))
        for v, (brush, pen, r) in self._styles.items():
            idx = np.flatnonzero((self.v == v) & shown)
            painter.setBrush(brush)
            painter.setPen(pen)
            for x, y in points[idx].tolist():
                painter.drawEllipse(QPointF(x, y), r, r)
        if self.selected_landmarks:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(self._ring_pen)
            for x, y in points[sorted(self.selected_landmarks)].tolist():
                painter.drawEllipse(QPointF(x, y), LANDMARK_RADIUS + 3, LANDMARK_RADIUS + 3)
        painter.setFont(index_font())
        for idx, (x, y) in zip(np.flatnonzero(shown).tolist(), points[shown].tolist(), strict=True):
            at = QPointF(x + LANDMARK_RADIUS, y - LANDMARK_RADIUS - 10)
            text = index_text(idx + 1)
            painter.setPen(self._index_shadow)  # a dark copy one pixel off keeps the number readable on any photo
            painter.drawStaticText(at + QPointF(1, 1), text)
            painter.setPen(self._index_pen)
            painter.drawStaticText(at, text)
        painter.restore()


def clamped_to_scene(item: QGraphicsItem, point: QPointF) -> QPointF:
    """``point`` (scene pixels) moved into the item's scene rectangle, the image: nothing is dragged off it."""
    scene = item.scene()
    if scene is None:
        return point
    rect = scene.sceneRect()
    return QPointF(min(max(point.x(), rect.left()), rect.right()), min(max(point.y(), rect.top()), rect.bottom()))


class LandmarkHandle(QGraphicsItem):
    """The hit area of one stored landmark: hovered (tooltip, the target of the visibility keys),
    selected (Ctrl+click, rubber band) and dragged (with every other selected landmark) on its own.
    It paints nothing: its ``ItemGraphic`` paints the landmark and follows it while dragged."""

    def __init__(self, graphic: ItemGraphic, idx: int, tooltip: str, on_moved: MovesCallback | None,
                 on_pressed: PressCallback | None = None, on_hover: HoverCallback | None = None,
                 on_snap: SnapCallback | None = None) -> None:
        super().__init__()
        self.graphic, self.idx = graphic, idx
        self.annotation_id = graphic.annotation_id
        self._on_moved, self._on_pressed, self._on_hover = on_moved, on_pressed, on_hover
        self._on_snap = on_snap
        self._starts: dict[LandmarkHandle, QPointF] = {}
        flags = QGraphicsItem.GraphicsItemFlag
        # no itemChange override: Qt would call into Python for each of the ~15 changes a new item goes
        # through; the drag below and the canvas (on selectionChanged) update the graphic instead
        self.setFlags(flags.ItemIgnoresTransformations | flags.ItemIsSelectable | flags.ItemHasNoContents)
        x, y = graphic.points[idx]
        self.setPos(float(x), float(y))
        if on_moved is not None:
            self.setFlag(flags.ItemIsMovable)
            self.setCursor(Qt.CursorShape.SizeAllCursor)
        self.setAcceptHoverEvents(True)
        self.setToolTip(tooltip)
        self.setZValue(7)

    @property
    def v(self) -> int:
        return int(self.graphic.v[self.idx])

    def boundingRect(self) -> QRectF:
        r = LANDMARK_RADIUS + 2.0  # screen px (the item ignores the zoom)
        return QRectF(-r, -r, 2 * r, 2 * r)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addEllipse(self.boundingRect())
        return path

    def paint(self, painter, option, widget=None) -> None:
        pass  # ItemHasNoContents: never called; the item graphic paints the landmark

    def hoverEnterEvent(self, event) -> None:
        if self._on_hover is not None:
            self._on_hover(self.annotation_id, self.idx)

    def hoverLeaveEvent(self, event) -> None:
        if self._on_hover is not None:
            self._on_hover(None, None)

    def mousePressEvent(self, event) -> None:
        super().mousePressEvent(event)  # selection: a plain press selects this one, Ctrl+press toggles
        scene = self.scene()
        group = [i for i in scene.selectedItems() if isinstance(i, LandmarkHandle)] if scene else []
        self._starts = {h: h.pos() for h in [*group, self] if h.flags() & QGraphicsItem.GraphicsItemFlag.ItemIsMovable}
        if self._on_pressed is not None:
            self._on_pressed(self.annotation_id, self.idx)

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)  # moves every selected movable item
        for handle in self._starts:
            inside = clamped_to_scene(handle, handle.pos())  # landmarks stay on the image
            if inside != handle.pos():
                handle.setPos(inside)
        if self._on_snap is not None and self in self._starts:
            self._on_snap(self, bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
        for handle in self._starts:
            handle.graphic.move_landmark(handle.idx, handle.pos())  # skeleton and number follow

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        if self._on_snap is not None and self in self._starts:
            self._on_snap(self, None)  # the drag ends: its snapping display goes
        moves = [(h.annotation_id, h.idx, (h.pos().x(), h.pos().y())) for h, start in self._starts.items()
                 if h.pos() != start]
        self._starts = {}
        if moves and self._on_moved is not None:
            self._on_moved(moves)
