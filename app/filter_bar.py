"""The bar above the image list: review status, category, lowest detection score, "has corrections" and
a file-name search, turned into a ``deepmark.core.store.images.ImageFilter`` (the database does the filtering)."""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from deepmark.core.domain.taxonomy import Taxonomy
from deepmark.core.store import NEEDS_REVIEW, STATUSES
from deepmark.core.store.images import ImageFilter

SEARCH_DELAY_MS = 250  # typing a name queries once, after a pause


class FilterBar(QWidget):
    """``changed(ImageFilter)`` whenever a control changes (the search after a short pause)."""

    changed = Signal(object)
    sort_changed = Signal(bool)  # True: most doubt first; False: file order

    def __init__(self, taxonomy: Taxonomy, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QComboBox()
        # kept in Python: a tuple stored as item data would come back as a list
        self._statuses: list[tuple[str, ...] | None] = [None, NEEDS_REVIEW] + [(s,) for s in STATUSES]
        self.status.addItems(["All statuses", "Needs review"] + [s.replace("_", " ").capitalize() for s in STATUSES])
        self.category = QComboBox()
        self.category.addItem("All categories", None)
        for category in taxonomy.categories:
            self.category.addItem(category.name, category.id)
        self.score = QDoubleSpinBox()
        self.score.setRange(0.0, 1.0)
        self.score.setSingleStep(0.05)
        self.score.setDecimals(2)
        self.score.setSpecialValueText("any")  # 0: no score condition (nothing scores below 0)
        self.score.setToolTip("Images whose lowest detection score (latest model run) is below this value")
        self.corrections = QCheckBox("Has corrections")
        self.corrections.setToolTip("Images where a person moved, added or deleted something")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search file name…")
        self.search.setClearButtonEnabled(True)
        self.count = QLabel("")
        self.sort = QComboBox()
        self.sort.addItems(["File order", "Most doubt first"])
        self.sort.setToolTip("Sort the list by the model's doubt about each image (current model and parameters; "
                             "images not scored yet come last, in file order)")
        for combo in (self.status, self.category):  # narrow: the list dock must not widen the window
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)

        layout = QGridLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search, 0, 0, 1, 2)
        layout.addWidget(self.status, 1, 0)
        layout.addWidget(self.category, 1, 1)
        layout.addWidget(QLabel("Score below"), 2, 0)
        layout.addWidget(self.score, 2, 1)
        layout.addWidget(self.corrections, 3, 0)
        layout.addWidget(self.count, 3, 1)
        layout.addWidget(QLabel("Sort"), 4, 0)
        layout.addWidget(self.sort, 4, 1)
        self.sort.currentIndexChanged.connect(lambda i: self.sort_changed.emit(i == 1))

        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._emit)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        self.status.currentIndexChanged.connect(self._emit)
        self.category.currentIndexChanged.connect(self._emit)
        self.score.valueChanged.connect(self._emit)
        self.corrections.toggled.connect(self._emit)

    def image_filter(self) -> ImageFilter:
        text = self.search.text().strip()
        score = self.score.value()
        return ImageFilter(statuses=self._statuses[self.status.currentIndex()], category_id=self.category.currentData(),
                           min_score_below=score if score > 0 else None,
                           has_corrections=self.corrections.isChecked(), name_contains=text or None)

    def set_count(self, count: int) -> None:
        self.count.setText(f"{count:,} images")

    def _emit(self, *_) -> None:
        self._search_timer.stop()
        self.changed.emit(self.image_filter())
