"""The project's images as a lazy Qt list model: pages of the store are fetched as the view scrolls,
so a project of 100,000 images opens at once."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.qt_convert import status_color
from core.store import ImageRecord, Project

PAGE = 256
Index = QModelIndex | QPersistentModelIndex


class ImageListModel(QAbstractListModel):
    """Rows are ``ImageRecord``s in id order; ``record(row)``, ``row_of(image_id)``, ``refresh(image_id)``."""

    def __init__(self, project: Project | None = None, parent=None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._records: list[ImageRecord] = []
        self._rows: dict[int, int] = {}
        self._done = True
        self.set_project(project)

    def set_project(self, project: Project | None) -> None:
        self.beginResetModel()
        self._project = project
        self._records, self._rows = [], {}
        self._done = project is None
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._records)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._done

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if self._project is None or self._done:
            return
        after = self._records[-1].id if self._records else 0
        page = self._project.images.page(after_id=after, limit=PAGE)
        self._done = len(page) < PAGE
        if not page:
            return
        first = len(self._records)
        self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
        for k, record in enumerate(page):
            self._rows[record.id] = first + k
        self._records.extend(page)
        self.endInsertRows()

    def fetch_all(self) -> None:
        """Load every page (for small projects and tests; the view fetches lazily by itself)."""
        while self.canFetchMore():
            self.fetchMore()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._records):
            return None
        record = self._records[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{record.path.rsplit('/', 1)[-1]}  ·  {record.status}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{record.path}\n{record.width}×{record.height} px, {record.status}"
        if role == Qt.ItemDataRole.DecorationRole:
            return status_color(record.status)
        if role == Qt.ItemDataRole.UserRole:
            return record.id
        return None

    def record(self, row: int) -> ImageRecord:
        return self._records[row]

    def row_of(self, image_id: int) -> int | None:
        return self._rows.get(image_id)

    def refresh(self, image_id: int) -> ImageRecord | None:
        """Re-read one image (after a status change or an edit) and repaint its row."""
        row = self._rows.get(image_id)
        if row is None or self._project is None:
            return None
        self._records[row] = self._project.images.get(image_id)
        index = self.index(row)
        self.dataChanged.emit(index, index)
        return self._records[row]
