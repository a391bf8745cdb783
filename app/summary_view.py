"""The review summary: one row per category (items, corrected landmarks, mean displacement of the
corrected landmarks from their predicted or imported position, in pixels), a total row, and the images
per review status. A non-modal dialog that re-reads the store whenever an edit or its undo lands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout

from deepmark.app.text_table import TextTableModel, text_table_view
from deepmark.core.errors import DeepMarkError
from deepmark.core.studio.review import CategoryRow, ReviewSummary, review_summary

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

COLUMNS = ("category", "items", "corrected landmarks", "mean displacement (px)", "outside the image")


class SummaryModel(TextTableModel[CategoryRow]):
    """Rows: the 13 categories, then the total (in bold)."""

    def __init__(self, parent=None) -> None:
        super().__init__(COLUMNS, parent)

    def set_summary(self, summary: ReviewSummary | None) -> None:
        self.set_rows([] if summary is None else [*summary.rows, summary.total])

    def role_data(self, row: int, column: int, role: int):
        if role == Qt.ItemDataRole.TextAlignmentRole and column > 0:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and self.rows[row].category_id == 0:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole and column == 3:
            return "mean distance of the corrected landmarks from where the model or the import put them"
        if role == Qt.ItemDataRole.ToolTipRole and column == 4:
            return "items whose box or a labelled landmark lies outside their image (listed above the table)"
        return None

    def cell(self, row: int, column: int) -> str:
        r = self.rows[row]
        if column == 0:
            return r.name if r.category_id == 0 else f"{r.category_id:>2} {r.name}"
        if column == 1:
            return str(r.items)
        if column == 2:
            return str(r.corrected_landmarks)
        if column == 4:
            return str(r.outside) if r.outside else ""
        return "–" if r.mean_displacement is None else f"{r.mean_displacement:.1f}"


class SummaryDialog(QDialog):
    """Review → Summary by category. ``refresh()`` re-reads the store (errors shown in the dialog)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Review summary by category")
        self.model = SummaryModel(self)
        self.table = text_table_view(self.model)
        self.statuses = QLabel()
        self.statuses.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        refresh = buttons.addButton("Refresh", QDialogButtonBox.ButtonRole.ActionRole)
        refresh.clicked.connect(self.refresh)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.statuses)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(560, 470)
        # every edit, undo and redo passes through the undo stack: follow it while shown
        window.undo_stack.indexChanged.connect(lambda _: self.isVisible() and self.refresh())

    def refresh(self) -> None:
        project = self.window_.session.project
        if project is None:
            self.model.set_summary(None)
            self.statuses.setText("no project open")
            return
        try:
            summary = review_summary(project, self.window_.taxonomy)
        except DeepMarkError as exc:
            self.statuses.setText(f"cannot read the summary: {exc}")
            return
        self.model.set_summary(summary)
        counts = summary.images_by_status
        text = (f"{sum(counts.values())} images: "
                + ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items()))
        if summary.outside:
            listed = "; ".join(f"{o.path} item {o.item_index + 1} ({o.what})" for o in summary.outside[:10])
            more = f"; … {len(summary.outside) - 10} more" if len(summary.outside) > 10 else ""
            text += f"\n⚠ {len(summary.outside)} items lie partly outside their image: {listed}{more}"
        self.statuses.setText(text)

    def showEvent(self, event) -> None:
        self.refresh()
        super().showEvent(event)


def show_summary(window: MainWindow) -> SummaryDialog:
    """Open (or raise) the window's summary dialog, refreshed."""
    dialog = getattr(window, "summary_dialog", None)
    if dialog is None:
        dialog = window.summary_dialog = SummaryDialog(window)
    if dialog.isVisible():
        dialog.refresh()
    dialog.show()
    dialog.raise_()
    return dialog
