"""What the window shows when no project is open: the ways to start (the demo, a folder of images, a
project) and the recent projects, each one click away."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow


class StartScreen(QWidget):
    """Buttons (``demo``, ``add_folder``, ``open_project``, ``new_project``) and ``recent`` (a list whose
    item's data is the project's path or URL; double-click or Enter opens it)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        from deepmark.app import menus
        from deepmark.app.demo import open_demo
        from deepmark.app.recent import open_recent

        title = QLabel("<h1>DeepMark Studio</h1><p>Review and correct clothing detections, then export them "
                       "for training. Start with:</p>")
        title.setWordWrap(True)
        self.demo = QPushButton("Open the demo (8 labelled images, the bundled model)")
        self.add_folder = QPushButton("Add a folder of images… (into your default project)")
        self.open_project = QPushButton("Open a project…")
        self.new_project = QPushButton("New project…")
        self.demo.clicked.connect(lambda: open_demo(window))
        self.add_folder.clicked.connect(lambda: menus.add_folder(window, default_project=True))
        self.open_project.clicked.connect(lambda: menus.open_project(window))
        self.new_project.clicked.connect(lambda: menus.new_project(window))
        self.recent = QListWidget()
        self.recent.itemActivated.connect(
            lambda item: open_recent(window, item.data(Qt.ItemDataRole.UserRole), menus.open_project_file))
        self.recent_title = QLabel("<b>Recent projects</b>")
        box = QWidget()
        box.setMaximumWidth(560)
        layout = QVBoxLayout(box)
        layout.addWidget(title)
        for button in (self.demo, self.add_folder, self.open_project, self.new_project):
            layout.addWidget(button)
        layout.addSpacing(12)
        layout.addWidget(self.recent_title)
        layout.addWidget(self.recent)
        # never what sets the window's minimum size (the canvas page beside it in the stack decides)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)

    def refresh(self, recent: list[str]) -> None:
        """List ``recent`` projects (missing files already pruned), newest first."""
        self.recent.clear()
        for where in recent:
            item = QListWidgetItem(f"{Path(where).name}    {where}" if "://" not in where else where)
            item.setData(Qt.ItemDataRole.UserRole, where)
            self.recent.addItem(item)
        self.recent.setVisible(bool(recent))
        self.recent_title.setVisible(bool(recent))
