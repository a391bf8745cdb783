"""Heatmap overlays: the colour bar, one class or the max over classes, and the side-by-side view."""

from dataclasses import replace

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from deepmark.core.studio.display import colorize, heat_lut, heatmap_view


def _rgba(pixmap) -> np.ndarray:
    image = pixmap.toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    return np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())[
        :, : 4 * image.width()].reshape(image.height(), image.width(), 4).copy()


def _same(shown: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to the rounding of Qt's premultiplied pixmaps: a colour stored as round(c·a/255) comes back
    within 255 / (2a) + 1 levels (wide where alpha is low, exact where it is 255)."""
    assert shown.shape == expected.shape
    alpha = expected[..., 3].astype(int)
    np.testing.assert_array_equal(shown[..., 3], alpha)
    tolerance = np.where(alpha > 0, 255.0 / (2 * np.maximum(alpha, 1)) + 1, 255)
    assert (np.abs(shown[..., :3].astype(int) - expected[..., :3]) <= tolerance[..., None]).all()


def opaque(rgba: np.ndarray) -> np.ndarray:
    """Alone beside the image the heatmap is drawn without the overlay's transparency."""
    out = rgba.copy()
    out[..., 3] = 255
    return out


def _expected(window, source, index) -> np.ndarray:
    heads = window.session.model.cached(window.session.record.id)
    p = window.params()
    sigma = (p.sigma_center if source == "center" else p.sigma_keypoint) if p.heatmap_rescoring else 0.0
    return colorize(heatmap_view(heads, source, index, sigma).values)


def test_colour_bar_shows_the_overlay_scale(window):
    bar = window.heatmap_panel.colorbar
    assert bar.isVisible() and bar.height() > 0
    assert bar.ticks == (0.0, 0.25, 0.5, 0.75, 1.0)
    np.testing.assert_array_equal(bar.lut, heat_lut())
    shot = bar.grab().toImage()
    rect = bar.bar_rect()
    y = rect.center().y()
    low, high = shot.pixelColor(rect.left() + 1, y), shot.pixelColor(rect.right() - 1, y)
    # the top of the scale is the table's opaque yellow; its bottom is transparent (the checkerboard shows)
    assert (high.red(), high.green()) == (255, 240) or (high.red() > 240 and high.green() > 220)
    assert abs(low.red() - low.green()) < 10 and abs(low.green() - low.blue()) < 40


def _two_blobs(window) -> None:
    """Give the current image center heatmaps with one peak in class 5 (index 4) at map (10, 8) and one
    in class 8 (index 7) at map (20, 24): the random model's maps are almost flat."""
    heads = window.session.model.cached(window.session.record.id)
    h, w = heads.map_size
    yy, xx = np.mgrid[0:h, 0:w]
    hm = np.full_like(heads.hm, 0.02)
    hm[4] = np.maximum(hm[4], 0.9 * np.exp(-((xx - 10) ** 2 + (yy - 8) ** 2) / 4.0))
    hm[7] = np.maximum(hm[7], 0.7 * np.exp(-((xx - 20) ** 2 + (yy - 24) ** 2) / 4.0))
    model = window.session.model
    model.cache.put(window.session.record.id, replace(heads, hm=hm.astype(np.float32)), model.tta.key())


def test_one_class_or_the_max_over_classes(window):
    panel = window.heatmap_panel
    labels = [panel.combo.itemText(i) for i in range(panel.combo.count())]
    assert "center: max over classes" in labels
    assert sum(label.startswith("center: ") for label in labels) == 1 + 13  # max + every category
    _two_blobs(window)

    panel.select("center")
    shown_max = _rgba(window.canvas._heat.pixmap())
    _same(shown_max, _expected(window, "center", None))
    assert shown_max[8, 10, 3] > 200 and shown_max[24, 20, 3] > 150  # both peaks
    panel.select("center", 4)
    assert panel.choice() == ("center", 4)
    shown_class = _rgba(window.canvas._heat.pixmap())
    _same(shown_class, _expected(window, "center", 4))
    assert shown_class[8, 10, 3] > 200 and shown_class[24, 20, 3] < 20  # only class 5's

    panel.smoothed.setChecked(False)  # before rescoring: the raw heatmap
    raw = colorize(heatmap_view(window.session.model.cached(window.session.record.id), "center", 4, 0.0).values)
    _same(_rgba(window.canvas._heat.pixmap()), raw)
    assert not np.array_equal(raw, colorize(_expected_values(window, "center", 4)))


def _expected_values(window, source, index) -> np.ndarray:
    p = window.params()
    return heatmap_view(window.session.model.cached(window.session.record.id), source, index, p.sigma_center).values


def test_side_by_side_shows_the_heatmap_beside_the_image_in_step(window, qtbot):
    panel, side = window.heatmap_panel, window.side_view
    assert not side.isVisible()
    panel.select("group", 2)
    panel.side_by_side.setChecked(True)
    assert side.isVisible() and window.canvas.isVisible()
    assert side.width() > 100 and window.canvas.width() > 100  # both halves of the splitter have room
    heads = window.session.model.cached(window.session.record.id)
    pixmap = side.heat_pixmap()
    assert pixmap is not None and (pixmap.height(), pixmap.width()) == heads.map_size
    _same(_rgba(pixmap), opaque(_expected(window, "group", 2)))

    # zoom and pan on the canvas: the side view follows
    window.canvas.zoom_by(2.0)
    window.canvas.centerOn(40.0, 50.0)
    QApplication.processEvents()
    qtbot.waitUntil(lambda: side.transform().m11() == window.canvas.transform().m11(), timeout=1000)
    here = window.canvas.mapToScene(window.canvas.viewport().rect().center())
    there = side.mapToScene(side.viewport().rect().center())
    assert abs(here.x() - there.x()) < 2 and abs(here.y() - there.y()) < 2
    # zooming the side view zooms the image too
    side.zoom_by(1.5)
    assert window.canvas.transform().m11() == side.transform().m11()
    assert not window.canvas.fit_mode

    # the next image: the side view shows its heatmap
    window.step(1)
    _same(_rgba(side.heat_pixmap()), opaque(_expected(window, "group", 2)))
    panel.select("off")
    assert side.heat_pixmap() is None and side.isVisible()
    panel.side_by_side.setChecked(False)
    assert not side.isVisible()
