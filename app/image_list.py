"""The project's images as a Qt list model that knows its length: the ids of the images the filter lets
through are read at once (one indexed query: the scroll bar covers every row from the start, End goes to
the true last row), and the rows themselves are read a page (``PAGE`` rows) at a time when the view first
shows them, a few pages kept; each row's thumbnail is made in the background when the view first paints
it, so a project of 100,000 images opens at once and scrolling never waits on a decode."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtWidgets import QAbstractItemView, QListView, QVBoxLayout, QWidget

from deepmark.app.qt_convert import status_color
from deepmark.app.thumbnails import ICON_PX, ThumbnailLoader, placeholder_icon
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import ImageRecord, Project
from deepmark.core.store.images import ImageFilter
from deepmark.core.studio.thumbnails import ThumbnailCache
from deepmark.core.util.lru import LruDict

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

PAGE = 256
PAGES_KEPT = 64  # pages of records in memory (16,384 rows)
Index = QModelIndex | QPersistentModelIndex


class ImageListModel(QAbstractListModel):
    """Rows are ``ImageRecord``s in id order (those the filter lets through), or sorted by doubt score
    (``set_doubt``); ``record(row)``, ``row_of(image_id)``, ``refresh(image_id)``. ``loader`` makes the
    thumbnails (DecorationRole)."""

    def __init__(self, project: Project | None = None, parent=None, thumbnails: ThumbnailCache | None = None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._filter = ImageFilter()
        self._ids: list[int] = []  # ascending (file order): a row is found by bisection
        # doubt scores under the current key (image id → score) and, when sorted by them, each id's row
        self._doubt_key: str | None = None
        self._scores: dict[int, float] = {}
        self._by_doubt = False
        self._rows: dict[int, int] | None = None
        self._pages: LruDict[int, list[ImageRecord]] = LruDict(PAGES_KEPT)
        self._path_rows: dict[str, int] = {}  # rows of the pages read, for the thumbnails' answers
        self.loader = ThumbnailLoader(thumbnails, parent=self)
        self.loader.ready.connect(self._thumbnails_ready)
        self.set_project(project)

    def set_project(self, project: Project | None) -> None:
        """Show ``project``'s images (their ids are read now; DeepMarkError when the store cannot be read)."""
        if project is not self._project:
            self.loader.clear()  # another project's paths may name other files
        self.beginResetModel()
        self._project = project
        self._pages.clear()
        self._path_rows = {}
        self._rows = None
        try:
            flt = None if self._filter.is_empty() else self._filter
            self._ids = project.images.ids(filter=flt) if project is not None else []
            self._scores = project.doubts.scores(self._doubt_key) if project is not None and self._doubt_key else {}
            if self._by_doubt and self._doubt_key is not None:
                s = self._scores
                self._ids.sort(key=lambda i: (i not in s, -s.get(i, 0.0), i))  # scored first, highest first
                self._rows = {image_id: row for row, image_id in enumerate(self._ids)}
        finally:
            self.endResetModel()

    def set_doubt(self, doubt_key: str | None, by_doubt: bool | None = None) -> None:
        """Show the doubt scores stored under ``doubt_key`` (None: none are current); ``by_doubt``: sort the rows
        by them, highest first, unscored images last in file order (None: keep the sorting). Re-reads the ids."""
        self._doubt_key = doubt_key
        if by_doubt is not None:
            self._by_doubt = by_doubt
        self.set_project(self._project)

    def keep_sorting(self, by_doubt: bool) -> None:
        """Sort by doubt (or not) from the next re-read on (no project open now)."""
        self._by_doubt = by_doubt

    @property
    def doubt_key(self) -> str | None:
        return self._doubt_key

    @property
    def sorted_by_doubt(self) -> bool:
        return self._by_doubt

    def score(self, image_id: int) -> float | None:
        """The image's doubt score under the current key (None: not computed)."""
        return self._scores.get(image_id)

    def set_score(self, image_id: int, doubt_key: str, score: float) -> None:
        """A score just stored: shown in its row when it is under the current key (the order stays until the
        list is re-sorted, so rows do not jump under the user's eyes)."""
        if doubt_key != self._doubt_key:
            return
        self._scores[image_id] = score
        row = self.row_of(image_id)
        if row is not None:
            self.dataChanged.emit(self.index(row), self.index(row))

    @property
    def filter(self) -> ImageFilter:
        return self._filter

    def set_filter(self, image_filter: ImageFilter) -> None:
        """Show only the images ``image_filter`` lets through."""
        self._filter = image_filter
        self.set_project(self._project)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._ids)

    def _page(self, number: int) -> list[ImageRecord]:
        """Page ``number``'s records in row order (read from the store on first use)."""
        found = self._pages.get(number)
        if found is None:
            ids = self._ids[number * PAGE : (number + 1) * PAGE]
            records = self._project.images.get_many(ids) if self._project is not None else {}
            # an image deleted since the ids were read keeps its row, as a placeholder of its own id
            found = [records.get(i) for i in ids]
            self._pages.put(number, found)
            for k, record in enumerate(found):
                if record is not None:
                    self._path_rows[record.path] = number * PAGE + k
        return found

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self._ids):
            return None
        try:
            record = self.record(index.row())
        except DeepMarkError:
            return None  # the store cannot be read right now: the row stays blank, the window says why
        if record is None:
            return f"image {self._ids[index.row()]} (no longer in the project)" \
                if role == Qt.ItemDataRole.DisplayRole else None
        score = self._scores.get(record.id)
        if role == Qt.ItemDataRole.DisplayRole:
            # the score first: the pane is narrow, and sorted by doubt the column of scores reads down the list
            doubt = f"{score:.2f}  ·  " if score is not None else ""
            return f"{doubt}{record.path.rsplit('/', 1)[-1]}  ·  {record.status}"
        if role == Qt.ItemDataRole.ToolTipRole:
            doubt = f"doubt {score:.2f}" if score is not None else "doubt not computed for this model and parameters"
            tip = f"{record.path}\n{record.width}×{record.height} px, {record.status}\n{doubt}"
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

    def record(self, row: int) -> ImageRecord | None:
        """The image at ``row`` (None: deleted since the list was read)."""
        return self._page(row // PAGE)[row % PAGE]

    def row_of(self, image_id: int) -> int | None:
        if self._rows is not None:
            return self._rows.get(image_id)
        row = bisect.bisect_left(self._ids, image_id)
        return row if row < len(self._ids) and self._ids[row] == image_id else None

    def refresh(self, image_id: int) -> ImageRecord | None:
        """Re-read one image (after a status change or an edit) and repaint its row."""
        row = self.row_of(image_id)
        if row is None or self._project is None:
            return None
        fresh = self._project.images.get(image_id)
        page = self._pages.get(row // PAGE)
        if page is not None:
            page[row % PAGE] = fresh
        index = self.index(row)
        self.dataChanged.emit(index, index)
        return fresh

    def refresh_ids(self, image_ids: list[int]) -> None:
        """Re-read the rows among ``image_ids`` whose pages are in memory (after a batch job), repaint them."""
        found = (self.row_of(i) for i in image_ids)
        rows = sorted(r for r in found if r is not None and self._pages.get(r // PAGE) is not None)
        if not rows or self._project is None:
            return
        fresh = self._project.images.get_many([self._ids[r] for r in rows])
        for r in rows:
            page = self._pages.get(r // PAGE)
            if page is not None and self._ids[r] in fresh:
                page[r % PAGE] = fresh[self._ids[r]]
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
    fit_layout(view, 0)
    window.filter_bar.changed.connect(lambda flt: apply_filter(window, flt))
    pane = QWidget()
    layout = QVBoxLayout(pane)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(window.filter_bar)
    layout.addWidget(view, 1)
    return pane


SINGLE_PASS_ROWS = 30_000  # Qt lays these out in ≈ 0.25 s on 2 cores; 100,000 would block for ≈ 0.8 s


def fit_layout(view: QListView, rows: int) -> None:
    """Lay the list out in one pass (the scroll bar covers every row at once) up to ``SINGLE_PASS_ROWS``
    rows; above that in batches of 4,096 rows (first paint at once, the whole range within ≈ 0.3 s at
    100,000 rows), so that opening a huge project never blocks the window."""
    if rows <= SINGLE_PASS_ROWS:
        view.setLayoutMode(QListView.LayoutMode.SinglePass)
    else:
        view.setLayoutMode(QListView.LayoutMode.Batched)
        view.setBatchSize(4096)


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
    fit_layout(window.image_view, model.rowCount())
    window.filter_bar.set_count(model.rowCount())
