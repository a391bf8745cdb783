"""The project's images as a lazy Qt list model: pages of the store are fetched as the view scrolls
(keyset pages of ``PAGE`` rows, filtered by the database through ``ImageFilter``), and each row's
thumbnail is made in the background when the view first paints the row, so a project of 100,000 images
opens at once and scrolling never waits on a decode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtWidgets import QAbstractItemView, QListView, QVBoxLayout, QWidget

from deepmark.app.qt_convert import status_color
from deepmark.app.thumbnails import ICON_PX, ThumbnailLoader, placeholder_icon
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import ImageRecord, Project
from deepmark.core.store.images import ImageFilter
from deepmark.core.studio.thumbnails import ThumbnailCache

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

PAGE = 256
Index = QModelIndex | QPersistentModelIndex


class ImageListModel(QAbstractListModel):
    """Rows are ``ImageRecord``s in id order (those the filter lets through); ``record(row)``,
    ``row_of(image_id)``, ``refresh(image_id)``. ``loader`` makes the thumbnails (DecorationRole)."""

    def __init__(self, project: Project | None = None, parent=None, thumbnails: ThumbnailCache | None = None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._filter = ImageFilter()
        self._records: list[ImageRecord] = []
        self._rows: dict[int, int] = {}
        self._path_rows: dict[str, int] = {}
        self._done = True
        self.loader = ThumbnailLoader(thumbnails, parent=self)
        self.loader.ready.connect(self._thumbnails_ready)
        self.set_project(project)

    def set_project(self, project: Project | None) -> None:
        if project is not self._project:
            self.loader.clear()  # another project's paths may name other files
        self.beginResetModel()
        self._project = project
        self._records, self._rows, self._path_rows = [], {}, {}
        self._done = project is None
        self.endResetModel()

    @property
    def filter(self) -> ImageFilter:
        return self._filter

    def set_filter(self, image_filter: ImageFilter) -> None:
        """Show only the images ``image_filter`` lets through (the first page is fetched now)."""
        self._filter = image_filter
        self.set_project(self._project)
        self.fetchMore()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._records)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._done

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if self._project is None or self._done:
            return
        after = self._records[-1].id if self._records else 0
        flt = None if self._filter.is_empty() else self._filter
        page = self._project.images.page(after_id=after, limit=PAGE, filter=flt)
        self._done = len(page) < PAGE
        if not page:
            return
        first = len(self._records)
        self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
        for k, record in enumerate(page):
            self._rows[record.id] = first + k
            self._path_rows[record.path] = first + k
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
            tip = f"{record.path}\n{record.width}×{record.height} px, {record.status}"
            problem = self.loader.error(record.path)
            return tip + (f"\ncannot be shown: {problem}" if problem else "")
        if role == Qt.ItemDataRole.DecorationRole:
            if self._project is None:
                return None
            icon = self.loader.icon(record.path, self._project.absolute_path(record.path))
            return icon if icon is not None else placeholder_icon()
        if role == Qt.ItemDataRole.BackgroundRole:
            color = status_color(record.status)
            color.setAlpha(40)
            return color
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

    def refresh_ids(self, image_ids: list[int]) -> None:
        """Re-read the loaded rows among ``image_ids`` (after a batch job) and repaint them at once."""
        rows = sorted(self._rows[i] for i in image_ids if i in self._rows)
        if not rows or self._project is None:
            return
        fresh = self._project.images.get_many([self._records[r].id for r in rows])
        for r in rows:
            self._records[r] = fresh.get(self._records[r].id, self._records[r])
        self.dataChanged.emit(self.index(rows[0]), self.index(rows[-1]))

    def shutdown(self) -> None:
        """Stop the thumbnail workers (window closing)."""
        self.loader.shutdown()

    def _thumbnails_ready(self, keys: list[str]) -> None:
        rows = [self._path_rows[k] for k in keys if k in self._path_rows]
        if rows:
            roles = [Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole]
            self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)), roles)


def selected_image_ids(window: MainWindow) -> list[int]:
    """Ids of the images selected in the list, in list order."""
    rows = sorted(i.row() for i in window.image_view.selectionModel().selectedRows())
    return [window.image_model.record(r).id for r in rows if r < window.image_model.rowCount()]


def build_image_pane(window: MainWindow) -> QWidget:
    """The left dock: the window's filter bar above its image list (multi-selection, thumbnails)."""
    view: QListView = window.image_view
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    view.setIconSize(QSize(ICON_PX, ICON_PX))
    view.setLayoutMode(QListView.LayoutMode.Batched)  # rows laid out in batches: no stall on a big page
    view.setBatchSize(PAGE)
    window.filter_bar.changed.connect(lambda flt: apply_filter(window, flt))
    pane = QWidget()
    layout = QVBoxLayout(pane)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(window.filter_bar)
    layout.addWidget(view, 1)
    return pane


def apply_filter(window: MainWindow, image_filter: ImageFilter) -> None:
    """Show the images the filter lets through; the current image stays selected when it is among them."""
    model = window.image_model
    if window.session.project is None:
        model._filter = image_filter
        return
    current = window.session.record.id if window.session.record is not None else None
    try:
        model.set_filter(image_filter)
    except DeepMarkError as exc:
        window.show_error(f"filter failed: {exc}")
        return
    row = model.row_of(current) if current is not None else None
    if row is not None:
        window.image_view.setCurrentIndex(model.index(row))
    elif model.rowCount():
        window.select_row(0)
    if model.canFetchMore():  # counting all matches can take a few 100 ms on 100,000 images: off the GUI thread
        window.filter_bar.count_in_background(window.session.project, image_filter)
    else:
        window.filter_bar.set_count(model.rowCount())
