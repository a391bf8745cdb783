"""The main window: image list (left), canvas (centre), post-processing and heatmap panels (right).

The window shows the Qt-free ``Session`` (``deepmark.core.studio.session``: project, model, current image,
items, detections, parameters) and forwards user intent to it; panels and dialogs read the state from
``window.session``. Every error lands in the status bar or a message box; nothing is raised out of a Qt slot.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from deepmark.app.background_task import NetworkRunner
from deepmark.app.canvas import Canvas
from deepmark.app.commands import SetStatus
from deepmark.app.filter_bar import FilterBar
from deepmark.app.heatmap_panel import HeatmapPanel
from deepmark.app.image_list import ImageListModel, build_image_pane, fit_layout
from deepmark.app.jobs import stop_jobs
from deepmark.app.open_task import AddImagesController
from deepmark.app.params_panel import ParamsPanel
from deepmark.app.recent import prune_missing, recent_projects, remember
from deepmark.app.settings import save_window
from deepmark.app.side_view import SideView
from deepmark.app.start_screen import StartScreen
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import DeepMarkError
from deepmark.core.inference.detector import TestTimeAugmentation
from deepmark.core.store import ImageRecord, Project
from deepmark.core.store.engine import PROJECT_SUFFIX
from deepmark.core.store.interchange import ImportReport
from deepmark.core.store.presets import model_default_params
from deepmark.core.studio.cache import heads_dir
from deepmark.core.studio.display import demo_folder, group_labels, heatmap_view
from deepmark.core.studio.review import correction_counts, step_unreviewed
from deepmark.core.studio.session import Session

if TYPE_CHECKING:
    from deepmark.app.demo import DemoFolder
    from deepmark.app.exchange_dialogs import ExportDialog, ImportDialog
    from deepmark.app.help_dialog import ShortcutsDialog
    from deepmark.app.jobs import JobController
    from deepmark.app.model_dialog import ModelInfoDialog
    from deepmark.app.summary_view import SummaryDialog
    from deepmark.app.tuning_view import TuningView

DECODE_DELAY_MS = 5  # slider bursts inside this window cost one decode


class MainWindow(QMainWindow):
    closed = Signal()  # after the window closed its project (the demo's temporary folder is removed then)

    def __init__(self, params: PostprocessParams | None = None, background_network: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("DeepMark Studio")
        # the network never runs on the GUI thread: an image is painted at once, its detections when ready
        # (decoded in a later turn of the event loop even when its heads are cached)
        self.network: NetworkRunner | None = NetworkRunner(self) if background_network else None
        # heads cached on disk too, shared with batch jobs and tuning
        self.session = Session(params or PostprocessParams.all_techniques(), heads_dir=heads_dir(),
                               background=self.network,
                               later=self._after_canvas_paint if background_network else None)
        self.taxonomy = self.session.taxonomy
        self.undo_stack = QUndoStack(self)
        self.adding: AddImagesController | None = None  # adds images in the background (made on first use)
        self.jobs: JobController | None = None  # model runs over many images (made on first use)
        self.remember_settings = True  # False: layout and parameters are neither restored nor saved
        self.demo_folder: DemoFolder | None = None  # the demo's temporary project folder (--demo)
        # dialogs and views made on demand, kept here while open (tests and the window find them)
        self.last_message_box: QMessageBox | None = None
        self.export_dialog: ExportDialog | None = None
        self.import_dialog: ImportDialog | None = None
        self.shortcuts_dialog: ShortcutsDialog | None = None
        self.about_box: QMessageBox | None = None
        self.model_dialog: ModelInfoDialog | None = None
        self.summary_dialog: SummaryDialog | None = None
        self.tuning_view: TuningView | None = None
        self.tuning_dock: QDockWidget | None = None
        self.recent_menu: QMenu | None = None
        self._redraw_items = False  # after a refused edit: every item graphic is drawn anew from the store

        self.canvas = Canvas(self.taxonomy)
        # the heatmap alone beside the image ("side by side" in the heatmap panel), zoom and pan synchronised
        self.side_view = SideView(self.canvas)
        self.side_view.hide()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.canvas)
        self.splitter.addWidget(self.side_view)
        # a plain notice above the image when the model's results there are not meaningful
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("background: #fff4ce; color: #3b2f00; padding: 6px; border: 1px solid #e0c060")
        self.notice.hide()
        work = QWidget()
        work_layout = QVBoxLayout(work)
        work_layout.setContentsMargins(0, 0, 0, 0)
        work_layout.setSpacing(0)
        work_layout.addWidget(self.notice)
        work_layout.addWidget(self.splitter, 1)
        # no project open: the start screen instead of the canvas
        self.start_screen = StartScreen(self)
        self.central = QStackedWidget()
        self.central.addWidget(self.start_screen)
        self.central.addWidget(work)
        self.setCentralWidget(self.central)
        self.image_model = ImageListModel()
        self.image_view = QListView()
        self.image_view.setModel(self.image_model)
        self.image_view.setUniformItemSizes(True)  # lets the view skip measuring 100,000 rows
        self.image_view.selectionModel().currentChanged.connect(lambda cur, _: self._row_selected(cur.row()))
        self.params_panel = ParamsPanel(self.session.params)
        self.session.tta = self.params_panel.tta()
        self.heatmap_panel = HeatmapPanel(self.taxonomy)
        # filter bar above the list, multi-selection, background thumbnails (app.image_list)
        self.filter_bar = FilterBar(self.taxonomy)
        self._dock("Images", build_image_pane(self), Qt.DockWidgetArea.LeftDockWidgetArea)
        side = QWidget()
        layout = QVBoxLayout(side)
        layout.addWidget(self.params_panel)
        layout.addWidget(self.heatmap_panel)
        layout.addStretch(1)
        # the panels scroll rather than set the window's minimum height (small screens, 1366×768 laptops)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(side)
        scroll.setMinimumWidth(side.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4)
        self._dock("Post-processing", scroll, Qt.DockWidgetArea.RightDockWidgetArea)

        self._decode_timer = QTimer(self, singleShot=True, interval=DECODE_DELAY_MS)
        self._decode_timer.timeout.connect(self.redecode)
        # the parameters are kept in the project once a burst of changes has ended
        self._save_params_timer = QTimer(self, singleShot=True, interval=800)
        self._save_params_timer.timeout.connect(self.session.settle_params)
        self.params_panel.changed.connect(self._params_changed)
        self.params_panel.tta_changed.connect(self.set_tta)
        self.params_panel.refine_changed.connect(self.session.set_refinement)
        self.params_panel.before_changed.connect(lambda _: self.draw_detections())
        self.params_panel.error.connect(self.show_error)
        self.params_panel.info.connect(self.show_info)
        # owned by the window (dies with it), unlike a bare singleShot that could fire on a closed window
        self._draw_items_timer = QTimer(self, singleShot=True, interval=0)
        self._draw_items_timer.timeout.connect(self._draw_items)
        self._draw_later = False  # while an edit's handler runs: the canvas is redrawn once it has returned
        self.heatmap_panel.changed.connect(self.update_heatmap)

        self.model_label = QLabel("no model")
        # the model's output on this image is unusable: said here until a decode succeeds
        self.problem_label = QLabel("")
        self.problem_label.setStyleSheet("color: #b00020; font-weight: bold")
        self.problem_label.hide()
        self.statusBar().addPermanentWidget(self.problem_label)
        self.counts_label = QLabel("")
        self.statusBar().addPermanentWidget(self.counts_label)
        self.statusBar().addPermanentWidget(self.model_label)
        self.setAcceptDrops(True)
        for name, slot in (("project", self._project_changed), ("model", self._model_changed),
                           ("image", self._image_changed), ("items", self._items_changed),
                           ("detections", self._detections_changed), ("record", self._record_changed),
                           ("params", self._params_chosen), ("params_offer", self._offer_params),
                           ("busy", self._busy), ("refinement", self._refinement_changed),
                           ("model_problem", self._model_problem), ("error", self.show_error),
                           ("info", self.show_info)):
            self.session.events.connect(name, slot)
        from deepmark.app.edit_controller import Editor
        from deepmark.app.menus import build_menus  # after the widgets it connects to exist

        self.editor = Editor(self)  # canvas gestures and editing keys → undoable store commands
        from deepmark.app.assist_controller import Assists
        from deepmark.app.doubt_view import DoubtController

        self.assists = Assists(self)  # heatmap help while correcting: prompted landmarks, snap, re-fit
        self.doubts = DoubtController(self)  # doubt scores in the list, review order, likely mistakes
        build_menus(self)
        self.resize(1400, 860)
        self.default_layout = self.saveState()  # View → Reset layout returns to it
        self._show_start_screen()

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    # -- messages --------------------------------------------------------------------------------

    def show_error(self, message: str, dialog: bool = False) -> None:
        self.statusBar().showMessage(message, 15000)
        if dialog:
            # open(), not exec(): window-modal without a nested event loop, so nothing waits on the user
            box = QMessageBox(QMessageBox.Icon.Warning, "DeepMark Studio", message, QMessageBox.StandardButton.Ok,
                              self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()
            self.last_message_box = box

    def show_info(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)

    # -- what the session tells ------------------------------------------------------------------

    def _project_changed(self) -> None:
        project = self.session.project
        self.undo_stack.clear()
        self.canvas.set_image(None)
        self.canvas.set_items([], True, self._landmark_pressed)
        self.canvas.set_detections([])
        self.canvas.set_heatmap(None)
        self.side_view.set_heatmap(None)
        self._update_notice()
        self._show_start_screen()
        if project is None:
            return
        if self.demo_folder is None or project is not self.demo_folder.project:  # the demo's goes with it
            remember(project.where)  # File → Open recent, and reopened on the next start
        self.params_panel.set_project(project)
        try:
            self.image_model.set_project(project)
        except DeepMarkError as exc:
            self.show_error(f"cannot list the images: {exc}")
        fit_layout(self.image_view, self.image_model.rowCount())
        self.filter_bar.set_count(self.image_model.rowCount())
        self.setWindowTitle(f"DeepMark Studio — {project.where}")
        self.update_counts()
        if self.image_model.rowCount():
            self.select_row(0)

    def _show_start_screen(self) -> None:
        """The start screen while no project is open, the canvas otherwise."""
        if self.session.project is None:
            prune_missing()
            self.start_screen.refresh(recent_projects())
            self.central.setCurrentWidget(self.start_screen)
        else:
            self.central.setCurrentIndex(1)

    def reset_layout(self) -> None:
        """The docks and panels as on first start (View → Reset layout)."""
        self.restoreState(self.default_layout)
        for dock in self.findChildren(QDockWidget):
            if dock is not self.tuning_dock:
                dock.show()
        self.side_view.hide()
        self.heatmap_panel.side_by_side.setChecked(False)

    def _model_changed(self) -> None:
        model = self.session.model
        self.params_panel.set_defaults(model_default_params(model.detector.info))
        self.model_label.setText(model.describe())
        self.model_label.setToolTip("")
        self.heatmap_panel.set_groups(group_labels(self.taxonomy, model.detector.grouping))
        self._update_notice()

    def _update_notice(self) -> None:
        """Say so while a model trained on synthetic garments only is used on images that are not the demo's."""
        model, project = self.session.model, self.session.project
        demo = demo_folder().resolve()
        show = (model is not None and model.detector.info.synthetic_only and project is not None
                and project.root.resolve() != demo)
        if show:
            self.notice.setText(
                f"The model {model.path.name} learned from synthetic garments only "
                f"({model.detector.info.training_data}): its detections on photographs are not meaningful. "
                "Load a model trained on real images with Model → Choose model file… (Ctrl+M).")
        self.notice.setVisible(show)

    def _image_changed(self) -> None:
        self.canvas.set_image(self.session.rgb)
        self.canvas.set_detections([])
        self.canvas.set_heatmap(None)
        self.side_view.set_heatmap(None)
        if self.session.rgb is not None and self.canvas.fit_mode:  # a new image keeps the user's zoom otherwise
            self.canvas.zoom_fit()

    def _items_changed(self) -> None:
        if self._draw_later:
            self._draw_items_timer.start()
        else:
            self._draw_items()

    def _draw_items(self) -> None:
        if self._redraw_items:
            self._redraw_items = False
            self.canvas.discard_items()
        self.canvas.set_items(self.session.items, True, self._landmark_pressed)

    def _detections_changed(self) -> None:
        self.draw_detections()
        self.update_heatmap()

    def draw_detections(self) -> None:
        """The shown detections; with "show before refinement", each refined landmark joined to where the
        decoder had put it."""
        session = self.session
        refined = session.detections is not session.unrefined and len(session.detections) == len(session.unrefined)
        before = session.unrefined if refined and self.params_panel.before.isChecked() else None
        self.canvas.set_detections(session.detections, before)

    def _refinement_changed(self) -> None:
        self.params_panel.show_refinement(self.session.refine_on, self.session.refinement_state())

    def _busy(self, running: bool) -> None:
        if running:
            self.statusBar().showMessage("running the model on this image…")
        elif self.statusBar().currentMessage() == "running the model on this image…":
            self.statusBar().clearMessage()

    def _model_problem(self, message: str | None) -> None:
        if message is None:
            self.problem_label.hide()
            return
        self.problem_label.setText("⚠ model output unusable — nothing stored")
        self.problem_label.setToolTip(message)
        self.problem_label.show()
        self.show_error(message)

    def _record_changed(self) -> None:
        if self.session.record is not None:
            self.image_model.refresh(self.session.record.id)

    # -- project ---------------------------------------------------------------------------------

    def set_project(self, project: Project) -> None:
        stop_jobs(self)  # a batch job writes into the project being replaced
        self.doubts.stop()
        self._keep_params_now()
        self.session.open_project(project)

    def open_paths(self, paths: list[str | Path]) -> None:
        """Add folders / images to the open project (DeepFashion2 folders with their labels) in the
        background (``inputs_added`` follows); a project file among them (dropped, or named on the
        command line) is opened instead."""
        projects = [p for p in paths if str(p).endswith(PROJECT_SUFFIX)]
        if projects:
            from deepmark.app.menus import open_project_file

            open_project_file(self, str(projects[-1]), False)
            paths = [p for p in paths if p not in projects]
            if not paths:
                return
        if self.session.project is None:
            self.show_error("open or create a project first", dialog=True)
            return
        if self.adding is None:
            self.adding = AddImagesController(self)
        self.adding.start(list(paths))  # in the background: a big folder takes minutes to hash

    def inputs_added(self, report: ImportReport | None) -> None:
        """After adding images (``report`` None when it failed or was cancelled): re-read the list,
        keep the current image, report what happened."""
        if self.session.project is None:
            return
        current = self.session.record.id if self.session.record else None
        self.image_model.set_project(self.session.project)
        row = self.image_model.row_of(current) if current is not None else None
        self.select_row(row if row is not None else 0)
        if current is not None:
            self.reload_items()  # an import of labels may have filled the shown image's items
        self.update_counts()
        if report is None:
            return
        # last, so that loading the image does not overwrite the report in the status bar
        self.show_info(report.summary())
        if report.errors:
            details = "\n".join(str(e) for e in report.errors[:20])
            self.show_error(f"{len(report.errors)} files could not be opened:\n{details}", dialog=True)

    def update_counts(self) -> None:
        project = self.session.project
        if project is None:
            return
        try:
            counts = project.images.counts_by_status()
            corrections = correction_counts(project)
        except DeepMarkError as exc:
            self.show_error(f"cannot count the images: {exc}")
            return
        done = sum(counts[s] for s in ("accepted", "rejected", "skipped"))
        self.counts_label.setText(f"{done} reviewed · {sum(counts.values()) - done} remaining · {corrections}")

    # -- model -----------------------------------------------------------------------------------

    def set_model_path(self, path: str | Path | None) -> bool:
        """Load a model file (None: the bundled default). A missing or broken file is reported and the
        app keeps working with the model it had (or without detections)."""
        loaded = self.session.load_model(path)
        if not loaded and self.session.model is None:
            self.model_label.setText("no model — Model → Choose model file… (Ctrl+M)")
            self.model_label.setToolTip(self.statusBar().currentMessage())
        return loaded

    def set_tta(self, tta: TestTimeAugmentation) -> None:
        """Switch test-time augmentation (one network run for the current image, then cached)."""
        self.session.set_tta(tta)

    def params(self) -> PostprocessParams:
        """The parameters the panel shows (the session gets them on every change and before each decode)."""
        return self.params_panel.params()

    def _params_changed(self, params: PostprocessParams) -> None:
        self.session.params = params  # at once, for jobs and tuning; the decode waits for the burst to end
        self._decode_timer.start()
        self._save_params_timer.start()

    def _params_chosen(self) -> None:
        """The session chose the parameters (the project's own, or the model's): show and decode with them."""
        self.params_panel.set_params(self.session.params)

    def _offer_params(self, recommended: PostprocessParams) -> None:
        """A model whose recommended parameters differ from the project's: ask, without waiting."""
        model = self.session.model
        box = QMessageBox(QMessageBox.Icon.Question, "DeepMark Studio",
                          f"{model.path.name} recommends other post-processing values than this project uses. "
                          "Use the model's values?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                          self)
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.accepted.connect(lambda: self.params_panel.set_params(recommended))
        box.open()
        self.last_message_box = box

    def _keep_params_now(self) -> None:
        """Write pending parameter changes into the project before it closes or changes."""
        if self._save_params_timer.isActive():
            self._save_params_timer.stop()
            self.session.save_params()

    def redecode(self) -> None:
        """Decode the cached heads with the panel's parameters and repaint (never runs the network)."""
        ms = self.session.set_params(self.params_panel.params())
        if ms is not None:
            self.show_info(f"{len(self.session.detections)} detections (decode {ms:.1f} ms)")

    def update_heatmap(self) -> None:
        source, index = self.heatmap_panel.choice()
        self._show_side_view(self.heatmap_panel.side_by_side.isChecked())
        heads = self.session.heads()
        if source == "off" or heads is None:
            self.canvas.set_heatmap(None)
            self.side_view.set_heatmap(None)
            return
        p = self.session.params
        sigma = 0.0
        if self.heatmap_panel.smoothed.isChecked() and p.heatmap_rescoring:
            sigma = p.sigma_center if source == "center" else p.sigma_keypoint
        try:
            view = heatmap_view(heads, source, index, sigma)
        except DeepMarkError as exc:
            self.show_error(str(exc))
            return
        self.canvas.set_heatmap(view, self.heatmap_panel.opacity_value())
        self.side_view.set_heatmap(view)

    def _show_side_view(self, on: bool) -> None:
        if on != self.side_view.isHidden():  # isHidden: what was asked, also while the window is not shown
            return
        self.side_view.setVisible(on)
        if on:  # half and half, whatever the splitter remembered from a hidden view
            half = max(1, self.splitter.width() // 2)
            self.splitter.setSizes([half, half])

    # -- images ----------------------------------------------------------------------------------

    def select_row(self, row: int) -> None:
        if 0 <= row < self.image_model.rowCount():
            self.image_view.setCurrentIndex(self.image_model.index(row))

    def current_row(self) -> int:
        return self.image_view.currentIndex().row()

    def _row_selected(self, row: int) -> None:
        if row < 0:
            return
        record = self.image_model.record(row)
        if record is None:
            self.show_error("this image is no longer in the project")
            return
        self.load_image(record)
        ahead = [self.image_model.record(r) for r in range(row + 1, min(row + 3, self.image_model.rowCount()))]
        self.session.prefetch([r for r in ahead if r is not None])  # the next images' heads, in the background

    def load_image(self, record: ImageRecord) -> None:
        self.session.show_image(record)

    def _after_canvas_paint(self, fn) -> None:
        """The session's ``later``: the new image is painted before its detections are decoded and drawn."""
        self.canvas.after_paint(fn)

    def reload_items(self) -> None:
        self.session.reload_items()

    def refresh_row(self, image_id: int) -> None:
        self.session.refresh_record(self.image_model.refresh(image_id))

    # -- what the undo commands need (app.commands.Host) ------------------------------------------

    def image_version(self, image_id: int) -> int | None:
        record = self.session.record
        return self.session.version if record is not None and record.id == image_id else None

    def edit_saved(self, image_id: int, version: int) -> None:
        self.session.edit_saved(image_id, version)

    def edit_refused(self, image_id: int, message: str) -> None:
        """Say the edit was not saved, and draw the stored state anew (a dragged marker goes back)."""
        self.show_error(message)
        self._redraw_items = True

    def refresh_image(self, image_id: int) -> None:
        """After an edit or its undo: re-read the image's row, its items when shown, and the counts."""
        self.refresh_row(image_id)
        if self.session.record is not None and self.session.record.id == image_id:
            # the items are re-read now (the next key acts on them); the canvas is redrawn once the drag
            # handler that may still be on the stack has returned
            self._draw_later = True
            try:
                self.session.reload_items()
            finally:
                self._draw_later = False
        self.update_counts()

    # -- edits -----------------------------------------------------------------------------------

    def _landmark_pressed(self, annotation_id: int, idx: int) -> None:
        """While a heatmap is shown, pressing a landmark shows its group's heatmap."""
        if self.session.model is None or self.heatmap_panel.choice()[0] == "off":
            return
        item = self.session.item(annotation_id)
        if item is not None:
            slot = self.taxonomy.category(item.category_id).offset + idx
            self.heatmap_panel.select("group", int(self.session.model.detector.grouping.landmark_to_group[slot]))

    def set_status(self, status: str, advance: bool = True, no_garments: bool = False) -> None:
        """Review the current image (one undo step) and go to the next. Accepting an image with no labelled
        garment is refused: its empty label would say "nothing here" to the next training run; accept the
        predictions first, or say so explicitly (``mark_no_garments``)."""
        session = self.session
        if session.project is None or session.record is None:
            return
        if status == "accepted" and not no_garments and not session.items:
            keys = {a.objectName(): a.shortcut().toString() for a in self.actions()}
            self.show_error(f"{session.record.path}: not accepted — it has no labelled garments. Accept the shown "
                            f"predictions first ({keys.get('review.accept_all_predictions', '')}), or mark it "
                            f"'no garments here' ({keys.get('review.no_garments', '')}) if it truly has none")
            return
        self.undo_stack.push(SetStatus(session.project, session.record.id, status, self, no_garments))
        record = session.record
        if record.status != status or record.no_garments != no_garments:  # refused: its error shows, stay here
            return
        self.show_info(f"{record.path}: {'no garments' if no_garments else status}")
        if advance:
            self.step(1)

    def mark_no_garments(self) -> None:
        """Accept the current image as holding no garments (a true negative, exported with an empty label)."""
        self.set_status("accepted", no_garments=True)

    def step(self, delta: int) -> None:
        self.select_row(self.current_row() + delta)

    def step_unreviewed(self, delta: int) -> None:
        """Go to the next (``delta`` > 0) or previous image that still needs review, wrapping around."""
        if self.session.project is None:
            return
        current = self.session.record.id if self.session.record is not None else 0
        try:  # in file order, or following the model's doubt (View → Review order)
            found = step_unreviewed(self.session.project, current, delta > 0, self.doubts.review_key())
        except DeepMarkError as exc:
            self.show_error(str(exc))
            return
        if found is None:
            self.show_info("no other image needs review")
            return
        row = self.image_model.row_of(found.id)
        if row is None:
            self.show_info(f"{found.path} needs review but is not in the list (clear the filter)")
            return
        self.select_row(row)

    # -- drag and drop ---------------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)

    def closeEvent(self, event) -> None:
        save_window(self)  # layout, parameters, opacity and model for the next start (app.settings)
        stop_jobs(self)
        self.doubts.stop()
        if self.adding is not None:
            self.adding.stop()
        self.image_model.shutdown()
        if self.network is not None:
            self.network.shutdown()
        self._keep_params_now()
        self.session.shutdown()
        self.closed.emit()
        super().closeEvent(event)
