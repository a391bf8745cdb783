"""Heatmap overlay controls: which heatmap (off, center max over classes, one class, one group), raw or
after heatmap rescoring (σ from the post-processing panel), opacity, a colour bar of the 0..1 scale, and
whether the heatmap is also shown alone in a view beside the image (``deepmark.app.side_view``)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QSizePolicy, QSlider, QWidget

from deepmark.app.qt_convert import rgba_to_qimage
from deepmark.core.domain.taxonomy import Taxonomy
from deepmark.core.studio.display import heat_lut

COLORBAR_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _key(source: str, index: int | None) -> str:
    """Combo data as plain strings ('off', 'center', 'center:3', 'group:7'): Qt compares them reliably."""
    return source if index is None else f"{source}:{index}"


class ColorBar(QWidget):
    """The overlay's colour scale: ``deepmark.core.studio.display.heat_lut`` from 0 (left) to 1 (right) with tick
    labels,
    drawn over a checkerboard so that the table's transparency at low values is visible too."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.ticks = COLORBAR_TICKS
        self.lut = heat_lut()
        self._gradient = rgba_to_qimage(self.lut[None, :, :])  # 256 × 1, stretched when painted
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("heatmap value → colour (transparent at 0, opaque yellow at 1)")

    def sizeHint(self) -> QSize:
        return QSize(200, 18 + self.fontMetrics().height() + 4)

    def minimumSizeHint(self) -> QSize:
        return QSize(80, self.sizeHint().height())

    def bar_rect(self) -> QRect:
        """Where the gradient is drawn (tick labels need half their width free at both ends)."""
        margin = self.fontMetrics().horizontalAdvance("0.00") // 2 + 1
        return QRect(margin, 2, max(1, self.width() - 2 * margin), 14)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        bar = self.bar_rect()
        cell = 5
        for y in range(bar.top(), bar.bottom() + 1, cell):
            for x in range(bar.left(), bar.right() + 1, cell):
                dark = ((x - bar.left()) // cell + (y - bar.top()) // cell) % 2
                painter.fillRect(QRect(x, y, cell, cell).intersected(bar), QColor(90, 90, 90) if dark
                                 else QColor(160, 160, 160))
        painter.drawImage(bar, self._gradient)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawRect(bar.adjusted(0, 0, -1, -1))
        metrics = self.fontMetrics()
        for tick in self.ticks:
            x = bar.left() + round(tick * (bar.width() - 1))
            painter.drawLine(x, bar.bottom() + 1, x, bar.bottom() + 3)
            text = f"{tick:g}"
            half = metrics.horizontalAdvance(text) // 2
            painter.drawText(x - half, bar.bottom() + 4 + metrics.ascent(), text)
        painter.end()


class HeatmapPanel(QWidget):
    """``choice()`` → (source, index) with source 'off' | 'center' | 'group'; ``changed`` on any edit."""

    changed = Signal()

    def __init__(self, taxonomy: Taxonomy, parent=None) -> None:
        super().__init__(parent)
        self.taxonomy = taxonomy
        self.combo = QComboBox()
        self.smoothed = QCheckBox("after heatmap rescoring (σ)")
        self.smoothed.setChecked(True)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.colorbar = ColorBar()
        self.side_by_side = QCheckBox("side by side: heatmap alone beside the image")
        form = QFormLayout(self)
        form.addRow("heatmap", self.combo)
        form.addRow(self.smoothed)
        form.addRow("opacity", self.opacity)
        form.addRow("scale", self.colorbar)
        form.addRow(self.side_by_side)
        self.set_groups([])
        self.combo.currentIndexChanged.connect(lambda _: self.changed.emit())
        self.smoothed.toggled.connect(lambda _: self.changed.emit())
        self.side_by_side.toggled.connect(lambda _: self.changed.emit())
        self.opacity.valueChanged.connect(lambda _: self.changed.emit())

    def set_groups(self, labels: list[str]) -> None:
        """Fill the list for a model: center heatmaps, then its group heatmaps (``labels`` one per group)."""
        current = self.choice()
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem("off", "off")
        self.combo.addItem("center: max over classes", "center")
        for k, category in enumerate(self.taxonomy.categories):
            self.combo.addItem(f"center: {category.name}", _key("center", k))
        for g, label in enumerate(labels):
            self.combo.addItem(f"group {label}", _key("group", g))
        found = self.combo.findData(_key(*current))
        self.combo.setCurrentIndex(max(found, 0))
        self.combo.blockSignals(False)

    def choice(self) -> tuple[str, int | None]:
        data = self.combo.currentData() if self.combo.count() else None
        if not data:
            return "off", None
        source, _, index = str(data).partition(":")
        return source, (int(index) if index else None)

    def select(self, source: str, index: int | None = None) -> None:
        found = self.combo.findData(_key(source, index))
        if found >= 0:
            self.combo.setCurrentIndex(found)

    def opacity_value(self) -> float:
        return self.opacity.value() / 100.0
