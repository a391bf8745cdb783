"""The demo: the bundled demo images with their labels in a project of their own, in a temporary folder that
goes when the window closes or the app exits (whichever comes first), never touching a user's projects."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication

from deepmark.core.errors import DeepMarkError
from deepmark.core.studio.display import open_demo_project

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow


class DemoFolder:
    """The demo's temporary project folder (the second ``remove`` does nothing). The demo project is closed
    before its file goes."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="deepmark-demo-"))
        self.project = None

    def remove(self, window: MainWindow | None = None) -> None:
        if self.project is not None:
            if window is not None and window.session.project is self.project:
                window.session.shutdown()
            self.project.close()  # idempotent: the window may have closed it already
            self.project = None
        shutil.rmtree(self.path, ignore_errors=True)


def open_demo(window: MainWindow) -> bool:
    """Open the demo project in ``window`` (made on first use, then reopened as it was left)."""
    if window.demo_folder is None:
        demo = window.demo_folder = DemoFolder()
        app = QApplication.instance()
        at_exit = app.aboutToQuit.connect(lambda: demo.remove(window)) if app is not None else None

        def on_closed() -> None:
            demo.remove(window)
            if at_exit is not None:
                QObject.disconnect(at_exit)  # nothing left to do at exit; and the window can be freed

        window.closed.connect(on_closed)
    demo = window.demo_folder
    try:
        project = open_demo_project(demo.path)[0]
    except DeepMarkError as exc:
        window.show_error(f"cannot open the demo: {exc}", dialog=True)
        return False
    demo.project = project
    window.set_project(project)
    return True
