"""``deepmark-studio [--demo] [--project P] [--model M] [--smoke] [paths...]``: start the desktop app.

Errors the app expects (a bad file, a locked or newer project) are shown in the window by the code
that meets them. Anything else that escapes a Qt slot reaches ``sys.excepthook``, installed here: it is
logged (with its traceback, to stderr and the log file) and shown in a message box, and the app goes on.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from logging.handlers import RotatingFileHandler
from pathlib import Path

from deepmark.app.platform_check import platform_problem
from deepmark.core.errors import DeepMarkError

log = logging.getLogger("deepmark.studio")
APP_DIR_NAME = "deepmark-studio"
EXIT_NO_WINDOW = 2  # the window cannot open (Qt's platform plugin would not load)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deepmark-studio", description="Review and correct DeepMark detections.")
    parser.add_argument("--demo", action="store_true", help="open the bundled demo images in a temporary project")
    parser.add_argument("--project", help="project file (created when absent) or PostgreSQL URL")
    parser.add_argument("--model", help="model file (.onnx or .pt checkpoint); default: the last one used, "
                                        "else the bundled model")
    parser.add_argument("--smoke", action="store_true",
                        help="check the installation and exit: open the demo offscreen, load the model, decode the "
                             "first image, print one line (exit status 0 when all worked)")
    parser.add_argument("paths", nargs="*", help="image files or folders (DeepFashion2 folders with labels) to add")
    return parser.parse_args(argv)


def icon_paths() -> list[Path]:
    """The application icon files that exist (PNG first: it needs no image plugin)."""
    from deepmark.core.util.resources import resource_path

    return [p for p in (resource_path("icons", "deepmark-256.png"), resource_path("icons", "deepmark.svg"))
            if p.is_file()]


def app_icon():
    from PySide6.QtGui import QIcon

    icon = QIcon()
    for path in icon_paths():
        icon.addFile(str(path))
    return icon


def open_project(args: argparse.Namespace):
    """The project the arguments name (``--project``, created when absent), else the last project used when
    it is still there, else (paths to add given) the user's default project; None: nothing to open, the
    window shows its start screen. ``--demo`` is opened by the window itself."""
    from deepmark.app.recent import recent_projects
    from deepmark.core.store import Project

    if args.project:
        return Project.open(args.project, create=True)
    for where in recent_projects():
        if "://" in where or Path(where).is_file():
            return Project.open(where)
    if args.paths:
        return Project.open(None, create=True)  # the default project in the user data folder
    return None


def build_window(args: argparse.Namespace, use_settings: bool = True):
    """The main window for the arguments (errors are shown in the window, never raised). With
    ``use_settings`` the last session's layout, post-processing parameters, heatmap opacity and model
    file are restored (``--model`` wins over the remembered model)."""
    from deepmark.app.demo import open_demo
    from deepmark.app.settings import restore_window, saved_model_path
    from deepmark.app.window import MainWindow

    window = MainWindow()
    window.remember_settings = use_settings  # nor saved on close (deepmark.app.settings.save_window)
    window.setWindowIcon(app_icon())
    if use_settings:
        restore_window(window)
    # before the first image, so it is detected at once
    window.set_model_path(args.model or (saved_model_path() if use_settings else None))
    if args.demo:
        open_demo(window)
    else:
        try:
            project = open_project(args)
        except DeepMarkError as exc:
            window.show_error(f"cannot open the project: {exc}", dialog=True)
            return window
        if project is not None:
            window.set_project(project)
    if args.paths:
        window.open_paths(args.paths)
    return window


# -- unexpected errors ------------------------------------------------------------------------------


def log_file() -> Path | None:
    """Where the app's log goes (None when the user log folder cannot be created)."""
    import platformdirs

    folder = Path(platformdirs.user_log_dir(APP_DIR_NAME, appauthor=False))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / "studio.log"


def setup_logging() -> Path | None:
    """Log to stderr and to a rotating file; the file's path (None when it cannot be written)."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    path = log_file()
    if path is not None:
        try:
            handlers.append(RotatingFileHandler(path, maxBytes=1_000_000, backupCount=2, encoding="utf-8"))
        except OSError:
            path = None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers)
    # a schema upgrade is routine: Alembic's step-by-step notes (each revision's docstring) are not for users
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return path


def install_excepthook(window_of: Callable[[], object], log_path: Path | None = None) -> Callable:
    """Route uncaught exceptions (in practice: raised in a Qt slot) to the log and a message box over the
    window ``window_of()`` returns; the app keeps running. Ctrl+C still stops it. Returns the hook."""
    previous = sys.excepthook
    busy = False

    def hook(exc_type, exc, tb) -> None:
        nonlocal busy
        if issubclass(exc_type, KeyboardInterrupt) or busy:  # an error while reporting one: the plain way
            previous(exc_type, exc, tb)
            return
        busy = True
        try:
            log.error("unexpected error", exc_info=(exc_type, exc, tb))
            show_unexpected_error(window_of(), exc_type, exc, tb, log_path)
        except Exception:  # noqa: BLE001 - the hook must never raise; fall back to the terminal
            previous(exc_type, exc, tb)
        finally:
            busy = False

    sys.excepthook = hook
    return hook


def show_unexpected_error(window, exc_type, exc, tb, log_path: Path | None = None) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QMessageBox

    if QApplication.instance() is None:
        raise RuntimeError("no QApplication to show the error in")
    where = f"The details are in {log_path}." if log_path else "The details were written to the terminal."
    text = (f"Something went wrong: {exc_type.__name__}: {exc}\n\nThe app keeps running; what you stored so far "
            f"is safe. {where}")
    box = QMessageBox(QMessageBox.Icon.Critical, "DeepMark Studio — unexpected error", text,
                      QMessageBox.StandardButton.Ok, window)
    box.setDetailedText("".join(traceback.format_exception(exc_type, exc, tb)))
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()  # window-modal without a nested event loop: the slot that failed has already returned
    if window is not None:
        window.last_message_box = box
        if hasattr(window, "statusBar"):
            window.statusBar().showMessage(f"unexpected error: {exc_type.__name__}: {exc}", 15000)


# -- entry points -----------------------------------------------------------------------------------


def smoke(args: argparse.Namespace) -> int:
    """``--smoke``: the demo offscreen with the model; one line on stdout, exit status 0 when it all worked.
    Leaves the user's settings alone, and no file behind (the demo folder goes when the window closes)."""
    started = time.perf_counter()
    window = build_window(argparse.Namespace(demo=True, project=None, model=args.model, paths=[], smoke=True),
                          use_settings=False)
    try:
        from PySide6.QtWidgets import QApplication

        deadline = time.perf_counter() + 120  # the first image's network run, in the background
        while (window.session.model is not None and window.session.heads() is None
               and window.session.model_problem is None and time.perf_counter() < deadline):
            QApplication.processEvents()
            time.sleep(0.01)
        problems = []
        if window.session.model is None:
            problems.append(f"no model ({window.model_label.toolTip() or window.model_label.text()})")
        if window.session.rgb is None:
            problems.append("the first demo image was not shown")
        rows = window.image_model.rowCount()
        if rows == 0:
            problems.append("the demo project is empty")
        if problems:
            print("smoke FAILED: " + "; ".join(problems), file=sys.stderr)
            return 1
        session = window.session
        print(f"smoke ok: {rows} demo images, model {session.model.describe()}, {len(session.detections)} detections "
              f"on {session.record.path} in {time.perf_counter() - started:.1f} s")
        return 0
    finally:
        window.close()


_GC_TIMER = []  # keeps the collector (and its timer) alive for the application's lifetime


def collect_garbage_in_gui_thread() -> None:
    """Run Python's cyclic garbage collector only in the GUI thread, on a timer.

    Left automatic, it runs in whichever thread happens to allocate past a threshold. When that is a
    worker (a batch job, the tuning sweeps, thumbnails) and the garbage holds Qt objects, their C++
    destructors run in the worker and can deadlock with the GUI thread deleting widgets (seen: a
    worker's collection freeing a menu while the GUI thread deleted its actions). pyqtgraph's
    GarbageCollector disables the automatic collector and collects from a QTimer instead."""
    if _GC_TIMER:
        return
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")  # the app's binding, whatever else is installed
    from pyqtgraph.util.garbage_collector import GarbageCollector

    _GC_TIMER.append(GarbageCollector(interval=1.0))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.smoke:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # a check, not a session: no display needed
    problem = platform_problem()
    if problem is not None:  # Qt would abort with a page of diagnostics: one line instead
        print(problem, file=sys.stderr)
        return EXIT_NO_WINDOW
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("DeepMark Studio")
    app.setOrganizationName("DeepMark")
    app.setWindowIcon(app_icon())
    app.setDesktopFileName("deepmark-studio")  # Wayland / the taskbar match the window to the .desktop entry
    collect_garbage_in_gui_thread()
    if args.smoke:
        return smoke(args)
    log_path = setup_logging()
    window = build_window(args)
    install_excepthook(lambda: window, log_path)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
