"""Menus, shortcuts and the file dialogs behind them (keyboard first: every frequent action has a key)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction

from deepmark.app import file_dialogs
from deepmark.app.help_dialog import build_help_menu
from deepmark.app.jobs import run_on_all, run_on_selected
from deepmark.app.keymap import default_sequences, user_keys
from deepmark.app.model_dialog import show_model_info
from deepmark.app.recent import fill_menu as fill_recent
from deepmark.app.retrain_dialog import install_retrain, show_retrain_dialog
from deepmark.app.settings import studio_settings
from deepmark.app.summary_view import show_summary
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import Project
from deepmark.core.store.engine import PROJECT_SUFFIX

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp)"


def _action(window: MainWindow, menu, text: str, slot, key_id: str | None = None,
            checkable: bool = False, checked: bool = False) -> QAction:
    """A menu entry and window shortcut; ``key_id``: its entry in the keymap (``deepmark.app.keymap``)."""
    action = QAction(text, window)
    if key_id is not None:
        action.setObjectName(key_id)
        action.setShortcuts(default_sequences(key_id))
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
    _action(window, file, "New project…", lambda: new_project(window), "file.new")
    _action(window, file, "Open project…", lambda: open_project(window), "file.open")
    recent = file.addMenu("Open recent")  # deepmark.app.recent: rebuilt, missing files pruned, each time it opens
    recent.aboutToShow.connect(lambda: fill_recent(window, recent))
    window.recent_menu = recent
    _action(window, file, "Add folder…", lambda: add_folder(window), "file.add_folder")
    _action(window, file, "Add images…", lambda: add_images(window), "file.add_images")
    file.addSeparator()
    _action(window, file, "Import annotations (DeepFashion2 / COCO)…", lambda: _exchange(window, "import"),
            "file.import")
    _action(window, file, "Export dataset…", lambda: _exchange(window, "export"), "file.export")
    file.addSeparator()
    _action(window, file, "Quit", window.close, "file.quit")  # StandardKey.Quit is empty on some platforms

    model = bar.addMenu("&Model")
    _action(window, model, "Choose model file…", lambda: choose_model(window), "model.choose")
    _action(window, model, "Run on current image", window.session.run_model, "model.run_current")
    _action(window, model, "Run on selected images", lambda: run_on_selected(window), "model.run_selected")
    _action(window, model, "Run on all images", lambda: run_on_all(window), "model.run_all")
    model.addSeparator()
    _action(window, model, "Refine landmarks (on / off)", window.params_panel.refine.toggle, "model.refine")
    _action(window, model, "Show landmarks before refinement (on / off)", window.params_panel.before.toggle,
            "view.before_refinement")
    _action(window, model, "Choose refinement model file…", lambda: choose_refiner(window), "model.choose_refiner")
    model.addSeparator()
    _action(window, model, "Retrain on accepted images…", lambda: show_retrain_dialog(window), "model.retrain")
    install_retrain(window)  # offers to resume an interrupted training job when a project opens
    model.addSeparator()
    _action(window, model, "Model information…", lambda: show_model_info(window), "model.info")

    edit = bar.addMenu("&Edit")
    undo = window.undo_stack.createUndoAction(window, "Undo")
    redo = window.undo_stack.createRedoAction(window, "Redo")
    for action, key_id in ((undo, "edit.undo"), (redo, "edit.redo")):
        action.setObjectName(key_id)
        action.setShortcuts(default_sequences(key_id))
        edit.addAction(action)
        window.addAction(action)
    edit.addSeparator()
    window.editor.add_menu_actions(edit)
    window.assists.add_menu_actions(edit)

    view = bar.addMenu("&View")
    _action(window, view, "Fit to window", window.canvas.zoom_fit, "view.fit")
    _action(window, view, "Actual size (1:1)", window.canvas.zoom_actual, "view.actual")
    _action(window, view, "Zoom in", lambda: window.canvas.zoom_by(1.25), "view.zoom_in")
    _action(window, view, "Zoom out", lambda: window.canvas.zoom_by(0.8), "view.zoom_out")
    view.addSeparator()
    _action(window, view, "Show labels", lambda on: _toggle(window, "show_items", on), "view.labels", True, True)
    _action(window, view, "Show detections", lambda on: _toggle(window, "show_detections", on), "view.detections",
            True, True)
    _action(window, view, "All classes at a location", lambda on: _all_classes(window, on), "view.all_classes",
            True, False)
    _action(window, view, "Heatmap on/off", lambda: _toggle_heatmap(window), "view.heatmap")
    _action(window, view, "Heatmap side by side", lambda: _toggle_side_by_side(window), "view.side_by_side")
    view.addSeparator()
    _action(window, view, "Tuning…", lambda: _tuning(window), "view.tuning")
    _action(window, view, "Reset layout", window.reset_layout, "view.reset_layout")

    review = bar.addMenu("&Review")
    _action(window, review, "Accept image", lambda: window.set_status("accepted"), "review.accept")
    _action(window, review, "Reject image", lambda: window.set_status("rejected"), "review.reject")
    _action(window, review, "Skip image", lambda: window.set_status("skipped"), "review.skip")
    _action(window, review, "No garments here (accept as empty)", window.mark_no_garments, "review.no_garments")
    _action(window, review, "Accept all shown predictions", window.editor.accept_all_detections,
            "review.accept_all_predictions")
    review.addSeparator()
    _action(window, review, "Next image", lambda: window.step(1), "image.next")
    _action(window, review, "Previous image", lambda: window.step(-1), "image.previous")
    _action(window, review, "Next unreviewed image", lambda: window.step_unreviewed(1), "image.next_unreviewed")
    _action(window, review, "Previous unreviewed image", lambda: window.step_unreviewed(-1),
            "image.previous_unreviewed")
    review.addSeparator()
    _action(window, review, "Summary by category…", lambda: show_summary(window), "review.summary")
    from deepmark.app.doubt_view import add_doubt_actions  # review where the model doubts

    add_doubt_actions(window, view, review, _action)

    # last: the shortcut list is built from window.actions() when it opens, so later actions appear too
    build_help_menu(window, bar.addMenu("&Help"), _action)
    apply_user_keys(window)


def apply_user_keys(window: MainWindow) -> None:
    """Give the actions the keys the user set in the settings file ([keys]; ``deepmark.app.keymap``)."""
    found, problems = user_keys(studio_settings())
    for action in window.actions():
        if action.objectName() in found:
            action.setShortcuts(found[action.objectName()])
    if problems:
        window.show_error(f"{studio_settings().fileName()}: " + "; ".join(problems), dialog=True)


def _toggle(window: MainWindow, flag: str, on: bool) -> None:
    setattr(window.canvas, flag, on)
    window.reload_items()
    window.draw_detections()


def _all_classes(window: MainWindow, on: bool) -> None:
    window.canvas.set_all_classes(on)
    window.draw_detections()


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
    path = file_dialogs.save_file(window, "New project", f"DeepMark project (*{PROJECT_SUFFIX})")
    if path:
        open_project_file(window, path if path.endswith(PROJECT_SUFFIX) else path + PROJECT_SUFFIX, create=True)


def open_project(window: MainWindow) -> None:
    path = file_dialogs.open_file(window, "Open project", f"DeepMark project (*{PROJECT_SUFFIX});;All (*)")
    if path:
        open_project_file(window, path, create=False)


def open_project_file(window: MainWindow, path: str, create: bool) -> None:
    try:
        project = Project.create(path) if create else Project.open(path)
    except DeepMarkError as exc:
        window.show_error(str(exc), dialog=True)  # the project open before stays open
        return
    window.set_project(project)
    read_only = f" — read-only ({project.read_only}): browse it; edits are refused" if project.read_only else ""
    window.show_info(f"{'created' if create else 'opened'} {project.where}{read_only}")


def add_folder(window: MainWindow, default_project: bool = False) -> None:
    """Add a folder of images (a DeepFashion2 folder with its labels) to the open project; with
    ``default_project`` (the start screen) into the user's default project, opened first."""
    folder = file_dialogs.folder(window, "Add a folder of images (or a DeepFashion2 folder)")
    if not folder:
        return
    if default_project and window.session.project is None:
        try:
            window.set_project(Project.open(None, create=True))
        except DeepMarkError as exc:
            window.show_error(str(exc), dialog=True)
            return
    window.open_paths([folder])


def add_images(window: MainWindow) -> None:
    paths = file_dialogs.open_files(window, "Add images", IMAGE_FILTER)
    if paths:
        window.open_paths(paths)


def choose_refiner(window: MainWindow) -> None:
    path = file_dialogs.open_file(window, "Choose a landmark refinement model", "Refinement models (*.onnx);;All (*)")
    if path and not window.session.load_refiner(path):
        window.show_error(window.statusBar().currentMessage(), dialog=True)


def choose_model(window: MainWindow) -> None:
    path = file_dialogs.open_file(window, "Choose a model file", "DeepMark models (*.onnx *.pt);;All (*)")
    if path and not window.set_model_path(path):
        window.show_error(window.statusBar().currentMessage(), dialog=True)
