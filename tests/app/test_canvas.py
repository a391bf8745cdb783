"""The canvas's drawing: one graphics item per detection, landmark styles by visibility with their numbers,
markers that keep their size on screen, hover tooltips."""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QTransform
from PySide6.QtWidgets import QApplication, QGraphicsScene

from deepmark.app.overlay_items import LANDMARK_RADIUS, DetectionGraphic, ItemGraphic
from deepmark.app.qt_convert import category_color
from deepmark.core.store import ItemRecord


def _hover(view, scene_pos: QPointF) -> None:
    viewport = view.viewport()
    pos = QPointF(view.mapFromScene(scene_pos))
    QApplication.sendEvent(viewport, QMouseEvent(QEvent.Type.MouseMove, pos, viewport.mapToGlobal(pos),
                                                 Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                                                 Qt.KeyboardModifier.NoModifier))


def test_the_detection_layer_is_one_item_per_detection(window):
    canvas = window.canvas
    detections = window.session.detections
    landmarks = sum(len(d.landmarks) for d in detections)
    assert len(detections) > 10 and landmarks > 10 * len(detections)
    with_detections = len(canvas.scene().items())
    canvas.set_detections([])
    without = len(canvas.scene().items())
    assert with_detections - without == len(detections)  # O(detections), not O(landmarks)
    canvas.set_detections(detections[:3])
    assert len(canvas.scene().items()) - without == 3
    assert [g.index for g in canvas.detection_graphics()] == [0, 1, 2]


def test_a_slider_move_rebuilds_the_detection_graphics(window, qtbot):
    before = [d.score for d in window.session.detections]
    spin = window.params_panel.numbers["score_threshold"].spin
    spin.setDecimals(6)  # the random model's scores tie below the best one (float16-rounded heads)
    spin.setValue(float(np.max(before)))
    qtbot.waitUntil(lambda: len(window.session.detections) < len(before), timeout=2000)
    graphics = window.canvas.detection_graphics()
    assert [g.detection for g in graphics] == window.session.detections
    assert all(g.scene() is window.canvas.scene() for g in graphics)


def _stored_item(taxonomy, category_id: int, v: list[int]) -> ItemRecord:
    """A stored item with landmarks on a horizontal line 40 px apart, visibilities ``v`` then 2."""
    n = taxonomy.category(category_id).num_landmarks
    xs = 30.0 + 40.0 * np.arange(n)
    vis = np.full(n, 2.0)
    vis[:len(v)] = v
    landmarks = np.column_stack([xs, np.full(n, 60.0), vis])
    return ItemRecord(id=1, image_id=1, item_index=0, origin="manual", category_id=category_id,
                      box=np.array([10.0, 20.0, xs[-1] + 20, 110.0]), landmarks=landmarks,
                      corrected=np.zeros(n, bool))


def _render(graphic, scale: float, size: tuple[int, int]) -> QImage:
    """Render a scene holding only ``graphic`` on black at ``scale`` device pixels per scene pixel."""
    scene = QGraphicsScene()
    scene.addItem(graphic)
    graphic.set_pixel(1.0 / scale)
    w, h = size
    image = QImage(int(w * scale), int(h * scale), QImage.Format.Format_RGB32)
    image.fill(QColor(0, 0, 0))
    painter = QPainter(image)
    scene.render(painter, QRectF(0, 0, w * scale, h * scale), QRectF(0, 0, w, h))
    painter.end()
    scene.removeItem(graphic)
    return image


def _rgb(image: QImage, x: float, y: float) -> tuple[int, int, int]:
    c = image.pixelColor(int(round(x)), int(round(y)))
    return c.red(), c.green(), c.blue()


def test_landmarks_are_drawn_by_visibility_with_their_number(qapp, taxonomy):
    item = _stored_item(taxonomy, 9, [2, 1, 0])  # skirt: 8 landmarks
    color = category_color(9)
    graphic = ItemGraphic(item, taxonomy.category(9), color, 1.0)
    image = _render(graphic, 1.0, (400, 130))
    # sampled 2 px above the centres: off the skeleton line that joins them
    visible, occluded, absent = (_rgb(image, x, 58) for x in (30, 70, 110))
    # visible: a disc filled with the category colour
    assert np.allclose(visible, (color.red(), color.green(), color.blue()), atol=40)
    # occluded: a ring, its inside a faint white over the (black) photo
    assert all(20 <= c <= 120 for c in occluded) and max(occluded) - min(occluded) < 20
    ring = _rgb(image, 70, 60 - LANDMARK_RADIUS)
    assert np.allclose(ring, (color.red(), color.green(), color.blue()), atol=80)
    # not present: a small grey disc
    assert all(110 <= c <= 170 for c in absent) and max(absent) - min(absent) < 15
    # the numbers: white text up and to the right of each landmark, nothing there without a landmark
    def white_pixels(x0: float) -> int:
        patch = [image.pixelColor(x, y) for x in range(int(x0 + 3), int(x0 + 15)) for y in range(40, 56)]
        return sum(c.red() > 200 and c.green() > 200 and c.blue() > 200 for c in patch)
    assert all(white_pixels(30 + 40 * i) >= 3 for i in range(8))
    assert white_pixels(30 + 40 * 8) == 0


def test_an_unlabelled_landmark_at_the_origin_is_not_drawn(qapp, taxonomy):
    item = _stored_item(taxonomy, 9, [0])
    item.landmarks[0] = 0.0  # DeepFashion2's "not labelled"
    graphic = ItemGraphic(item, taxonomy.category(9), category_color(9), 1.0)
    assert not graphic.shown()[0] and graphic.shown()[1:].all()


@pytest.mark.parametrize("kind", ["item", "detection"])
def test_markers_keep_their_size_on_screen_at_any_zoom(qapp, taxonomy, kind):
    item = _stored_item(taxonomy, 9, [])
    color = category_color(9)

    def make():
        if kind == "item":
            return ItemGraphic(item, taxonomy.category(9), color, 1.0)
        from deepmark.core.domain.structures import Detection

        landmarks = item.landmarks.copy()
        landmarks[:, 2] = 1.0
        det = Detection(9, 0.9, 0.9, item.box, landmarks, np.zeros(len(landmarks), bool))
        return DetectionGraphic(det, 0, taxonomy.category(9), color, 1.0)

    def marker_area(scale: float) -> int:
        image = _render(make(), scale, (400, 130))
        cx, cy = 70 * scale, 60 * scale  # the second landmark
        patch = [image.pixelColor(int(cx + dx), int(cy + dy)) for dx in range(-10, 11) for dy in range(-10, 11)]
        return sum(abs(c.red() - color.red()) + abs(c.green() - color.green()) + abs(c.blue() - color.blue()) < 60
                   for c in patch)

    small, large = marker_area(1.0), marker_area(3.0)
    assert small > 10
    assert abs(large - small) <= 0.3 * small  # a scaled marker would cover 9× the pixels


def test_zoom_keeps_the_graphics_hit_areas_in_screen_pixels(window):
    canvas = window.canvas
    canvas.zoom_fit()
    graphics = [*canvas.item_graphics.values(), *canvas.detection_graphics()]
    assert all(g.pixel == pytest.approx(1 / canvas.zoom_level()) for g in graphics)
    canvas.zoom_by(2.0)
    assert all(g.pixel == pytest.approx(1 / canvas.zoom_level()) for g in graphics)
    canvas.zoom_actual()
    assert all(g.pixel == pytest.approx(1.0) for g in graphics)
    # a transform set from outside (the side view leads the zoom this way) is caught before painting
    canvas.setTransform(QTransform.fromScale(3.0, 3.0))
    canvas.viewport().repaint()
    assert all(g.pixel == pytest.approx(1 / 3) for g in graphics)


def test_hovering_a_predicted_landmark_shows_its_name_and_score(window, taxonomy):
    from deepmark.core.domain.structures import Detection

    canvas = window.canvas
    canvas.zoom_fit()
    # a detection with its landmarks well apart (the random test model stacks them on each other)
    n = taxonomy.category(13).num_landmarks
    rng = np.random.default_rng(1)
    landmarks = np.column_stack([20 + 14 * np.arange(n), 160 + 30 * np.sin(np.arange(n)), rng.uniform(0, 1, n)])
    det = Detection(13, 0.7, 0.6, np.array([10.0, 120.0, 300.0, 200.0]), landmarks, np.zeros(n, bool))
    canvas.set_detections([det])
    (graphic,) = canvas.detection_graphics()
    free = [i for i, (x, y) in enumerate(landmarks[:, :2]) if canvas.hit(canvas.mapFromScene(QPointF(x, y))) is graphic]
    assert len(free) >= 3
    category = taxonomy.category(13)
    for idx in free[:3]:
        _hover(canvas, QPointF(*landmarks[idx, :2]))
        assert graphic.toolTip() == (f"{category.name} #{idx + 1} {category.landmark_names[idx]}: "
                                     f"score {landmarks[idx, 2]:.2f}")
    # on the outline away from the landmarks: the detection's own tooltip
    at = QPointF(300.0, 125.0)
    assert canvas.hit(canvas.mapFromScene(at)) is graphic and graphic.landmark_at(at) is None
    _hover(canvas, at)
    assert graphic.toolTip() == f"prediction: {category.name}, score 0.70 (box 0.60)"


def test_hovering_a_stored_landmark_names_it(window, taxonomy):
    canvas = window.canvas
    handle = next(h for h in canvas.landmark_items if canvas.hit(canvas.mapFromScene(h.pos())) is h)
    item = next(i for i in window.session.items if i.id == handle.annotation_id)
    category = taxonomy.category(item.category_id)
    _hover(canvas, handle.pos())
    assert canvas.hovered == (handle.annotation_id, handle.idx)
    assert handle.toolTip() == f"{category.name} #{handle.idx + 1} {category.landmark_names[handle.idx]} (visible)"


def test_an_edit_rebuilds_only_the_item_it_changed(window, demo_project, qtbot):
    canvas = window.canvas
    first, second = window.session.items[0], window.session.items[1]
    kept, changed = canvas.item_graphics[second.id], canvas.item_graphics[first.id]
    kept_handles = [h for h in canvas.landmark_items if h.annotation_id == second.id]
    kept_handles[0].setSelected(True)
    window.editor.set_box(first.id, first.box + [2.0, 2.0, -2.0, -2.0])
    qtbot.waitUntil(lambda: canvas.item_graphics[first.id] is not changed, timeout=1000)
    assert canvas.item_graphics[second.id] is kept  # untouched: its painted cache stays valid
    assert [h for h in canvas.landmark_items if h.annotation_id == second.id] == kept_handles
    assert kept_handles[0].isSelected()
    np.testing.assert_allclose(canvas.item_graphics[first.id].box, first.box + [2.0, 2.0, -2.0, -2.0])
    assert changed.scene() is None and list(canvas.item_graphics) == [i.id for i in window.session.items]


def _stacked_detections(window):
    """Three classes at one place (one garment seen three ways) and a fourth garment elsewhere."""
    from deepmark.core.domain.structures import Detection

    taxonomy = window.taxonomy

    def det(category_id, score, box):
        n = taxonomy.category(category_id).num_landmarks
        points = np.column_stack([np.full(n, box[0] + 5.0), np.full(n, box[1] + 5.0), np.full(n, 0.5)])
        return Detection(category_id, score, score, np.array(box, float), points, np.zeros(n, bool))

    return [det(1, 0.6, [50, 50, 150, 200]), det(5, 0.8, [52, 50, 150, 202]), det(10, 0.4, [50, 52, 151, 200]),
            det(7, 0.7, [52, 205, 150, 300])]


def test_one_location_shows_its_best_class_and_labels_do_not_stack(window, qtbot):
    canvas = window.canvas
    detections = _stacked_detections(window)
    canvas.set_detections(detections)
    shown = {g.index for g in canvas.detection_graphics()}
    assert shown == {1, 3}  # the vest (0.8) at the first place, the shorts elsewhere
    rects = [g.label_rect() for g in canvas.detection_graphics()]
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])
    best = max(canvas.detection_graphics(), key=lambda g: g.detection.score)
    assert best.zValue() == max(g.zValue() for g in canvas.detection_graphics())  # best on top
    action = next(a for a in window.actions() if a.text() == "All classes at a location")
    window.session.detections = detections
    action.trigger()  # on demand: every class
    assert {g.index for g in canvas.detection_graphics()} == {0, 1, 2, 3}
    rects = [g.label_rect() for g in canvas.detection_graphics()]
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])
    assert canvas.legend.isVisible() and "your labels" in canvas.legend.text() and "model" in canvas.legend.text()


def test_clicking_a_predictions_label_selects_the_prediction(window, qtbot):
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    canvas = window.canvas
    item = window.session.items[0]
    # a prediction exactly where the stored item is: its label lies over the item's outline
    from deepmark.core.domain.structures import Detection

    n = len(item.landmarks)
    det = Detection(item.category_id, 0.9, 0.9, item.box.copy(),
                    np.column_stack([item.landmarks[:, :2], np.full(n, 0.9)]), np.zeros(n, bool))
    canvas.set_detections([det])
    graphic = canvas.detection_graphics()[0]
    at = graphic.label_rect().center()
    pos = QPointF(canvas.mapFromScene(at))
    for kind, buttons in ((QEvent.Type.MouseButtonPress, Qt.MouseButton.LeftButton),
                          (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton)):
        QApplication.sendEvent(canvas.viewport(), QMouseEvent(kind, pos, canvas.viewport().mapToGlobal(pos),
                                                              Qt.MouseButton.LeftButton, buttons,
                                                              Qt.KeyboardModifier.NoModifier))
    assert canvas.selected_detection == 0 and canvas.selected_id is None


def test_after_paint_runs_after_the_next_paint_or_within_its_limit(qtbot, taxonomy):
    """Work handed to ``after_paint`` runs once the canvas has painted; on a canvas that never paints (hidden)
    it still runs, within ``AFTER_PAINT_LIMIT_MS``."""
    import time

    from deepmark.app.canvas import AFTER_PAINT_LIMIT_MS, Canvas

    shown = Canvas(taxonomy)
    qtbot.addWidget(shown)
    shown.resize(300, 200)
    shown.show()
    qtbot.waitExposed(shown)
    order = []
    shown.after_paint(lambda: order.append("work"))
    assert order == []  # not at once: after the paint it asked for (tests/app/test_background.py: the order)
    qtbot.waitUntil(lambda: order == ["work"], timeout=2000)

    hidden = Canvas(taxonomy)
    qtbot.addWidget(hidden)
    ran = []
    start = time.perf_counter()
    hidden.after_paint(lambda: ran.append(time.perf_counter() - start))
    qtbot.waitUntil(lambda: bool(ran), timeout=2000)
    assert ran[0] * 1000 < AFTER_PAINT_LIMIT_MS + 500
