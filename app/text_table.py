"""A read-only table of text cells for the app's report views (review summary, likely mistakes): fixed
column titles, rows replaced as a whole, each cell's text from ``cell(row, column)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QHeaderView, QTableView

Index = QModelIndex | QPersistentModelIndex
Row = TypeVar("Row")


class TextTableModel(QAbstractTableModel, Generic[Row]):
    """Rows of ``Row`` under ``columns`` titles; subclasses say what each cell shows (``cell``) and add roles
    (``role_data``: tool tips, fonts, alignment)."""

    def __init__(self, columns: Sequence[str], parent=None) -> None:
        super().__init__(parent)
        self.columns = tuple(columns)
        self.rows: list[Row] = []

    def set_rows(self, rows: Sequence[Row]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell(index.row(), index.column())
        return self.role_data(index.row(), index.column(), role)

    def cell(self, row: int, column: int) -> str:
        """The text shown at (row, column)."""
        raise NotImplementedError

    def role_data(self, row: int, column: int, role: int):
        """What the view asks for other than the text (None: nothing)."""
        return None


def text_table_view(model: TextTableModel) -> QTableView:
    """A view of ``model`` as the report views show one: no row numbers, columns sized to their text, the
    last one taking the rest of the width."""
    view = QTableView()
    view.setModel(model)
    view.verticalHeader().hide()
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    view.horizontalHeader().setStretchLastSection(True)
    return view
