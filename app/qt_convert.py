"""numpy / core values → Qt values (images, transforms, colours). No logic beyond the conversion."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QImage, QPixmap, QTransform

from deepmark.core.domain.structures import Affine

# One distinct colour per DeepFashion2 category (ids 1..13), readable on photos and on the heatmap.
CATEGORY_COLORS = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
                   "#bfef45", "#fabed4", "#469990", "#dcbeff", "#aaffc3")
STATUS_COLORS = {"new": "#9e9e9e", "predicted": "#2196f3", "in_review": "#ff9800", "accepted": "#4caf50",
                 "rejected": "#f44336", "skipped": "#795548"}


def category_color(category_id: int) -> QColor:
    return QColor(CATEGORY_COLORS[(int(category_id) - 1) % len(CATEGORY_COLORS)])


def status_color(status: str) -> QColor:
    return QColor(STATUS_COLORS.get(status, "#9e9e9e"))


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """(H, W, 3) uint8 RGB → QImage (a deep copy, so the numpy buffer may be freed)."""
    rgb = np.ascontiguousarray(rgb, np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    """(H, W, 4) uint8 RGBA (straight alpha) → QImage (deep copy)."""
    rgba = np.ascontiguousarray(rgba, np.uint8)
    h, w = rgba.shape[:2]
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def rgb_to_pixmap(rgb: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(rgb_to_qimage(rgb))


def rgba_to_pixmap(rgba: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(rgba_to_qimage(rgba))


def affine_to_qtransform(affine: Affine) -> QTransform:
    """A core ``Affine`` (x' = M @ [x, y, 1]) as a QTransform (Qt multiplies row vectors: m12 is dy/dx)."""
    m = affine.matrix
    return QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2])


def map_pixels_transform(map_to_image: Affine) -> QTransform:
    """Transform for a QImage of map pixels. Map pixel (j, i) stands for map coordinates [j, j+1) × [i, i+1)
    (decoded positions are the integer pixel plus a sub-pixel offset in [0, 1)), exactly the square the
    QImage pixel covers, so no half-pixel shift is needed."""
    return affine_to_qtransform(map_to_image)
