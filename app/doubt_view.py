"""Review where the model doubts: the review order that follows the doubt score (View → Review order), the
image list's doubt sort and per-row score, and the likely label mistakes of imported labels (a non-modal
view, and M / Shift+M to jump through them).

The scores come from the Qt-free core (``deepmark.core.studio.uncertainty``: stored per image under the key of
the model, TTA and parameters; ``deepmark.core.studio.mistakes``: imported items against the model's stored
predictions); the likely mistakes are computed by a ``BackgroundTask``, never on the GUI thread.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QVBoxLayout,
)

from deepmark.app.background_task import BackgroundTask
from deepmark.app.text_table import TextTableModel, text_table_view
from deepmark.core.errors import DeepMarkError
from deepmark.core.store.doubts import DoubtRecord
from deepmark.core.studio.mistakes import MistakeRow, describe_row, likely_mistakes, model_run_ids
from deepmark.core.studio.uncertainty import review_order, set_review_order

if TYPE_CHECKING:
    from PySide6.QtGui import QAction

    from deepmark.app.window import MainWindow

KEY_SETTLE_MS = 400  # after the parameters rest this long, the list shows the scores of the new key
COLUMNS = ("score", "image", "item", "category", "OKS", "why")


class DoubtController(QObject):
    """The window's doubt features (``window.doubts``): keeps the image list's scores on the current key,
    the review order setting of the project, and the likely-mistakes list (``mistakes``, None until computed)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.order_action: QAction | None = None  # View → Review order: follow the model's doubt (menus)
        self.mistakes: list[MistakeRow] | None = None
        self.position = -1  # the likely mistake last jumped to
        self.task: BackgroundTask | None = None
        self.dialog: MistakesDialog | None = None
        self._then: list = []  # what to do once the running computation is done (a jump)
        self._key_timer = QTimer(self, singleShot=True, interval=KEY_SETTLE_MS)
        self._key_timer.timeout.connect(self.sync_key)
        events = window.session.events
        events.connect("project", self._project_opened)
        events.connect("model", self.sync_key)
        events.connect("doubt", self._doubt_stored)
        events.connect("detections", self._key_timer.start)  # parameters or TTA may have changed
        window.filter_bar.sort_changed.connect(self.set_sorted)

    # -- scores in the image list ---------------------------------------------------------------

    def current_key(self) -> str | None:
        return self.window.session.doubt_key()

    def sync_key(self) -> None:
        """Show the scores of the current model, TTA and parameters (a re-read only when the key changed)."""
        if self.window.session.project is None:
            return  # closed (the window closing, or between projects): nothing to list
        key = self.current_key()
        if key != self.window.image_model.doubt_key:
            self._reset_list(key, None)

    def set_sorted(self, by_doubt: bool) -> None:
        """Sort the image list by doubt (highest first, unscored last) or in file order."""
        if self.window.session.project is None:
            self.window.image_model.keep_sorting(by_doubt)  # for the next project, as the filter is kept
            return
        self._reset_list(self.current_key(), by_doubt)

    def _reset_list(self, key: str | None, by_doubt: bool | None) -> None:
        """Re-read the list under ``key``, the current image staying current (without loading it again)."""
        window = self.window
        current = window.session.record.id if window.session.record is not None else None
        try:
            window.image_model.set_doubt(key, by_doubt)
        except DeepMarkError as exc:
            window.show_error(f"cannot list the images: {exc}")
            return
        row = window.image_model.row_of(current) if current is not None else None
        if row is not None:
            selection = window.image_view.selectionModel()
            selection.blockSignals(True)  # the same image: nothing to load
            try:
                window.image_view.setCurrentIndex(window.image_model.index(row))
            finally:
                selection.blockSignals(False)
            window.image_view.scrollTo(window.image_model.index(row))

    def _doubt_stored(self, image_id: int, record: DoubtRecord) -> None:
        if record.doubt_key != self.window.image_model.doubt_key:
            self.sync_key()
        else:
            self.window.image_model.set_score(image_id, record.doubt_key, record.score)

    def reload(self) -> None:
        """Re-read every score (after a batch job stored many), keeping the current sorting."""
        if self.window.session.project is not None:
            self._reset_list(self.current_key(), None)

    # -- review order ---------------------------------------------------------------------------

    def _project_opened(self) -> None:
        self.mistakes, self.position = None, -1
        if self.task is not None:
            self.task.stop()
        if self.dialog is not None:
            self.dialog.set_rows(None, "")
        project = self.window.session.project
        if self.order_action is not None:
            self.order_action.blockSignals(True)  # the project's own setting, not a change to store
            try:
                follow = False
                if project is not None:
                    try:
                        follow = review_order(project) == "uncertainty"
                    except DeepMarkError:
                        follow = False
                self.order_action.setChecked(follow)
            finally:
                self.order_action.blockSignals(False)
        self.sync_key()

    def follows_doubt(self) -> bool:
        return self.order_action is not None and self.order_action.isChecked()

    def set_follow(self, on: bool) -> None:
        """View → Review order: U / Shift+U follow the doubt (on) or the file order; kept in the project."""
        project = self.window.session.project
        if project is None:
            return
        try:
            if project.read_only is None:
                set_review_order(project, "uncertainty" if on else "file")
        except DeepMarkError as exc:
            self.window.show_error(f"review order not kept in the project: {exc}")
        if on and self.current_key() is None:
            self.window.show_info("review order: the model's doubt — load a model to score the images")
        else:
            self.window.show_info("review order: " + ("the model's doubt, highest first (unscored images last)"
                                                      if on else "file order"))

    def review_key(self) -> str | None:
        """The doubt key U / Shift+U follow (None: file order)."""
        return self.current_key() if self.follows_doubt() else None

    # -- likely label mistakes ------------------------------------------------------------------

    def compute_mistakes(self) -> bool:
        """Score every imported item against the current model's stored predictions, in the background;
        False when it cannot start (said in the status bar)."""
        window, session = self.window, self.window.session
        if self.task is not None and self.task.isRunning():
            return True
        if session.project is None or session.model is None:
            window.show_error("open a project and choose a model first")
            return False
        project, taxonomy = session.project, session.taxonomy
        try:
            runs = model_run_ids(project, session.model.model_key)
        except DeepMarkError as exc:
            window.show_error(f"likely mistakes: {exc}")
            return False
        if not runs:
            window.show_error(f"likely mistakes: {session.model.path.name} has predicted no image of this project "
                              "yet (Model → Run on all images)")
            return False

        def work(progress, cancel):
            return likely_mistakes(project, runs, taxonomy, lambda done, total: progress(done, total, ""), cancel)

        task = BackgroundTask(work, self)
        task.progressed.connect(self._progressed)
        task.succeeded.connect(lambda rows: self._computed(project, rows))
        task.failed.connect(self._failed)
        task.cancelled.connect(lambda: self._finish())
        self.task = task
        if self.dialog is not None:
            self.dialog.status.setText("scoring the imported labels against the model's predictions…")
        window.show_info("scoring the imported labels against the model's predictions…")
        task.start()
        return True

    def _progressed(self, done: int, total: int, _stage: str) -> None:
        if self.dialog is not None:
            self.dialog.status.setText(f"scoring… {done:,}/{total:,} images")

    def _finish(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.wait()
            task.deleteLater()

    def _computed(self, project, rows: list[MistakeRow]) -> None:
        self._finish()
        if project is not self.window.session.project:
            return  # computed for a project closed since
        self.mistakes, self.position = rows, -1
        likely = sum(1 for r in rows if r.reasons)
        text = (f"{len(rows):,} imported items scored, {likely:,} with a reason to look"
                if rows else "no imported item with predictions of this model to compare")
        if self.dialog is not None:
            self.dialog.set_rows(rows, text)
        self.window.show_info(f"likely mistakes: {text}")
        then, self._then = self._then, []
        for fn in then:
            fn()

    def _failed(self, message: str) -> None:
        self._finish()
        self._then = []
        self.window.show_error(f"likely mistakes not computed: {message}", dialog=True)

    def step_mistake(self, delta: int) -> None:
        """Open the next (``delta`` > 0) or previous likely mistake, in score order (computed first if needed)."""
        if self.mistakes is None:
            self._then.append(lambda: self.step_mistake(delta))
            if not self.compute_mistakes():
                self._then = []
            return
        if not self.mistakes:
            self.window.show_info("no imported item to check against this model's predictions")
            return
        self.position = (self.position + delta) % len(self.mistakes) if self.position >= 0 else \
            (0 if delta > 0 else len(self.mistakes) - 1)
        self.open_row(self.position)

    def open_row(self, position: int) -> None:
        """Open likely mistake ``position`` of ``mistakes``: its image, with its item selected."""
        row = self.mistakes[position]
        self.position = position
        window = self.window
        list_row = window.image_model.row_of(row.image_id)
        if list_row is None:
            window.show_info(f"{row.path} is not in the list (clear the filter)")
            return
        if window.session.record is None or window.session.record.id != row.image_id:
            window.select_row(list_row)
        window.canvas.select_item(row.annotation_id)
        if self.dialog is not None:
            self.dialog.show_position(position)
        window.show_info(f"likely mistake {position + 1}/{len(self.mistakes)} ({row.score:.2f}): {row.path} item "
                         f"{row.item_index + 1} — {describe_row(row)}")

    def show_dialog(self) -> MistakesDialog:
        """Open (or raise) the likely-mistakes view; computed when it has not been yet."""
        if self.dialog is None:
            self.dialog = MistakesDialog(self)
        self.dialog.set_rows(self.mistakes, "" if self.mistakes is not None else "not computed yet")
        self.dialog.show()
        self.dialog.raise_()
        if self.mistakes is None:
            self.compute_mistakes()
        return self.dialog

    def stop(self) -> None:
        """Before the project closes: no pending re-read of the list, no computation running."""
        self._key_timer.stop()
        if self.task is not None:
            self.task.stop()
            self._finish()


class MistakesModel(TextTableModel[MistakeRow]):
    """Rows: the likely mistakes in score order."""

    def __init__(self, taxonomy, parent=None) -> None:
        super().__init__(COLUMNS, parent)
        self.taxonomy = taxonomy

    def role_data(self, row: int, column: int, role: int):
        return describe_row(self.rows[row]) if role == Qt.ItemDataRole.ToolTipRole else None

    def cell(self, row: int, column: int) -> str:
        r = self.rows[row]
        if column == 0:
            return f"{r.score:.2f}"
        if column == 1:
            return r.path.rsplit("/", 1)[-1]
        if column == 2:
            return str(r.item_index + 1)
        if column == 3:
            return self.taxonomy.category(r.category_id).name
        if column == 4:
            return "–" if math.isnan(r.oks) else f"{r.oks:.2f}"
        return "; ".join(r.reasons) if r.reasons else "—"


class MistakesDialog(QDialog):
    """Review → Likely label mistakes: imported items by score; a click opens the image with the item selected."""

    def __init__(self, controller: DoubtController) -> None:
        super().__init__(controller.window)
        self.controller = controller
        self.setWindowTitle("Likely label mistakes (imported labels vs the model)")
        self.model = MistakesModel(controller.window.taxonomy, self)
        self.table = text_table_view(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.clicked.connect(lambda index: controller.open_row(index.row()))
        self.table.activated.connect(lambda index: controller.open_row(index.row()))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        recompute = buttons.addButton("Recompute", QDialogButtonBox.ButtonRole.ActionRole)
        recompute.clicked.connect(controller.compute_mistakes)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(760, 420)

    def set_rows(self, rows: list[MistakeRow] | None, text: str) -> None:
        self.model.set_rows(rows or [])
        self.status.setText(text)

    def show_position(self, position: int) -> None:
        if 0 <= position < self.model.rowCount():
            self.table.selectRow(position)
            self.table.scrollTo(self.model.index(position, 0))


def add_doubt_actions(window: MainWindow, view_menu, review_menu, action) -> None:
    """The doubt entries of the View and Review menus (``action``: ``menus._action``)."""
    doubts = window.doubts
    view_menu.addSeparator()
    doubts.order_action = action(window, view_menu, "Review order: follow the model's doubt (else file order)",
                                 doubts.set_follow, "view.review_by_doubt", True, False)
    review_menu.addSeparator()
    action(window, review_menu, "Likely label mistakes…", doubts.show_dialog, "review.mistakes")
    action(window, review_menu, "Next likely mistake", lambda: doubts.step_mistake(1), "review.next_mistake")
    action(window, review_menu, "Previous likely mistake", lambda: doubts.step_mistake(-1),
           "review.previous_mistake")
    doubts._project_opened()  # the open project's review order
