"""Heatmap overlay controls: which heatmap (off, center max over classes, one class, one group), raw or
after heatmap rescoring (σ from the post-processing panel), and opacity."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QSlider, QWidget

from core.taxonomy import Taxonomy


def _key(source: str, index: int | None) -> str:
    """Combo data as plain strings ('off', 'center', 'center:3', 'group:7'): Qt compares them reliably."""
    return source if index is None else f"{source}:{index}"


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
        form = QFormLayout(self)
        form.addRow("heatmap", self.combo)
        form.addRow(self.smoothed)
        form.addRow("opacity", self.opacity)
        self.set_groups([])
        self.combo.currentIndexChanged.connect(lambda _: self.changed.emit())
        self.smoothed.toggled.connect(lambda _: self.changed.emit())
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
