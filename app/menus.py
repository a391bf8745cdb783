"""Menus, shortcuts and the file dialogs behind them (keyboard first: every frequent action has a key)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from deepmark.app.help_dialog import build_help_menu
from deepmark.app.jobs import run_on_all, run_on_selected
from deepmark.app.model_dialog import show_model_info
from deepmark.app.recent import fill_menu as fill_recent
from deepmark.app.summary_view import show_summary
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import Project
from deepmark.core.store.engine import PROJECT_SUFFIX

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp)"


def _action(window: MainWindow, menu, text: str, slot, shortcut: str | QKeySequence.StandardKey | None = None,
            checkable: bool = False, checked: bool = False) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if checkable:
        action.setCheckable(True)
        action.setChecked(checked)
        action.toggled.connect(slot)
    else:
        action.triggered.connect(lambda *_: slot())
    menu.addAction(action)
    window.addAction(action)  # shortcuts work whichever dock has the focus
    return action


def build_menus(window: MainWindow) -> None:
    bar = window.menuBar()
    file = bar.addMenu("&File")
    _action(window, file, "New project…", lambda: new_project(window), QKeySequence.StandardKey.New)
    _action(window, file, "Open project…", lambda: open_project(window), QKeySequence.StandardKey.Open)
    recent = file.addMenu("Open recent")  # deepmark.app.recent: rebuilt, missing files pruned, each time it opens
    recent.aboutToShow.connect(lambda: fill_recent(window, recent))
    window.recent_menu = recent
    _action(window, file, "Add folder…", lambda: add_folder(window), "Ctrl+Shift+O")
    _action(window, file, "Add images…", lambda: add_images(window), "Ctrl+I")
    file.addSeparator()
    _action(window, file, "Import annotations (DeepFashion2 / COCO)…", lambda: _exchange(window, "import"),
            "Ctrl+Shift+I")
    _action(window, file, "Export dataset…", lambda: _exchange(window, "export"), "Ctrl+E")
    file.addSeparator()
    _action(window, file, "Quit", window.close, "Ctrl+Q")  # StandardKey.Quit is empty on some platforms

    model = bar.addMenu("&Model")
    _action(window, model, "Choose model file…", lambda: choose_model(window), "Ctrl+M")
    _action(window, model, "Run on current image", window.session.run_model, "Ctrl+R")
    _action(window, model, "Run on selected images", lambda: run_on_selected(window), "Ctrl+Shift+R")
    _action(window, model, "Run on all images", lambda: run_on_all(window), "Ctrl+Alt+R")
    model.addSeparator()
    _action(window, model, "Model information…", lambda: show_model_info(window), "Ctrl+Shift+M")

    edit = bar.addMenu("&Edit")
    undo = window.undo_stack.createUndoAction(window, "Undo")
    undo.setShortcut(QKeySequence.StandardKey.Undo)
    redo = window.undo_stack.createRedoAction(window, "Redo")
    redo.setShortcuts([QKeySequence.StandardKey.Redo, QKeySequence("Ctrl+Y")])
    for action in (undo, redo):
        edit.addAction(action)
        window.addAction(action)
    edit.addSeparator()
    window.editor.add_menu_actions(edit)

    view = bar.addMenu("&View")
    _action(window, view, "Fit to window", window.canvas.zoom_fit, "F")
    _action(window, view, "Actual size (1:1)", window.canvas.zoom_actual, "1")
    _action(window, view, "Zoom in", lambda: window.canvas.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn)
    _action(window, view, "Zoom out", lambda: window.canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut)
    view.addSeparator()
    _action(window, view, "Show labels", lambda on: _toggle(window, "show_items", on), "L", True, True)
    _action(window, view, "Show detections", lambda on: _toggle(window, "show_detections", on), "D", True, True)
    _action(window, view, "Heatmap on/off", lambda: _toggle_heatmap(window), "H")
    _action(window, view, "Heatmap side by side", lambda: _toggle_side_by_side(window), "Shift+H")
    view.addSeparator()
    _action(window, view, "Tuning…", lambda: _tuning(window), "Ctrl+T")

    review = bar.addMenu("&Review")
    _action(window, review, "Accept", lambda: window.set_status("accepted"), "A")
    _action(window, review, "Reject", lambda: window.set_status("rejected"), "R")
    _action(window, review, "Skip", lambda: window.set_status("skipped"), "S")
    _action(window, review, "Next image", lambda: window.step(1), "N")
    _action(window, review, "Previous image", lambda: window.step(-1), "P")
    _action(window, review, "Next unreviewed image", lambda: window.step_unreviewed(1), "Shift+N")
    _action(window, review, "Previous unreviewed image", lambda: window.step_unreviewed(-1), "Shift+P")
    review.addSeparator()
    _action(window, review, "Summary by category…", lambda: show_summary(window), "F9")

    # last: the shortcut list is built from window.actions() when it opens, so later actions appear too
    build_help_menu(window, bar.addMenu("&Help"), _action)


def _toggle(window: MainWindow, flag: str, on: bool) -> None:
    setattr(window.canvas, flag, on)
    window.reload_items()
    window.canvas.set_detections(window.session.detections)


def _toggle_heatmap(window: MainWindow) -> None:
    panel = window.heatmap_panel
    panel.select("off") if panel.choice()[0] != "off" else panel.select("center")


def _toggle_side_by_side(window: MainWindow) -> None:
    panel = window.heatmap_panel
    if not panel.side_by_side.isChecked() and panel.choice()[0] == "off":
        panel.select("center")  # an empty view beside the image would look broken
    panel.side_by_side.toggle()


def _tuning(window: MainWindow) -> None:
    from deepmark.app.tuning_view import show_tuning  # pyqtgraph loads on first use, not at start-up

    show_tuning(window)


def _exchange(window: MainWindow, which: str) -> None:
    from deepmark.app.exchange_dialogs import show_export_dialog, show_import_dialog

    show_export_dialog(window) if which == "export" else show_import_dialog(window)


def new_project(window: MainWindow) -> None:
    path, _ = QFileDialog.getSaveFileName(window, "New project", "", f"DeepMark project (*{PROJECT_SUFFIX})")
    if path:
        open_project_file(window, path if path.endswith(PROJECT_SUFFIX) else path + PROJECT_SUFFIX, create=True)


def open_project(window: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Open project", "", f"DeepMark project (*{PROJECT_SUFFIX});;All (*)")
    if path:
        open_project_file(window, path, create=False)


def open_project_file(window: MainWindow, path: str, create: bool) -> None:
    try:
        project = Project.create(path) if create else Project.open(path)
    except DeepMarkError as exc:
        window.show_error(str(exc), dialog=True)
        return
    window.set_project(project)


def add_folder(window: MainWindow) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Add a folder of images (or a DeepFashion2 folder)")
    if folder:
        window.open_paths([folder])


def add_images(window: MainWindow) -> None:
    paths, _ = QFileDialog.getOpenFileNames(window, "Add images", "", IMAGE_FILTER)
    if paths:
        window.open_paths(paths)


def choose_model(window: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Choose a model file", "",
                                          "DeepMark models (*.onnx *.pt);;All (*)")
    if path and not window.set_model_path(path):
        window.show_error(window.statusBar().currentMessage(), dialog=True)
