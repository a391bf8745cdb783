"""Help: the keyboard shortcuts (F1) and About.

The shortcut list is built from ``window.actions()`` each time it opens, grouped by the menu that holds
each action, so an action any part of the app registers on the window (with ``window.addAction``) is
listed without touching this file. The mouse gestures, which no action describes, follow.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMenu,
    QMessageBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

OTHER = "Other"
MOUSE = "Mouse"
MOUSE_GESTURES = (
    ("Zoom around the cursor", "wheel (on the image or the side-by-side heatmap)"),
    ("Pan", "drag an empty part of the image (or of the side-by-side heatmap)"),
    ("Move a landmark", "drag it (stored at once; Ctrl+Z undoes)"),
    ("Snap a landmark to its heatmap peak", "Shift+drag it (its group heatmap shows faintly while dragging)"),
    ("Select several landmarks", "Ctrl+click each, or Shift+drag a rubber band; then drag one to move all"),
    ("Resize a box", "select its item, then drag a corner or an edge handle"),
    ("Select a prediction", "click its box or its label"),
    ("Show a landmark's group heatmap", "press the landmark while a heatmap is shown"),
    ("Landmark name, visibility, score", "hover it"),
    ("Add images or folders", "drop them on the window"),
)


def _plain(text: str) -> str:
    """Menu text without its mnemonic ampersands ('&&' is a literal '&')."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


def _menu_actions(window: MainWindow) -> list[tuple[str, QAction]]:
    """(title path of the menu, action) for every menu entry, in menu bar order ('File › Recent')."""
    found: list[tuple[str, QAction]] = []

    def walk(menu: QMenu, title: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), f"{title} › {_plain(action.menu().title())}")
            elif not action.isSeparator():
                found.append((title, action))

    for top in window.menuBar().actions():
        if top.menu() is not None:
            walk(top.menu(), _plain(top.menu().title()))
    return found


def _keys(action: QAction) -> str:
    """The action's shortcuts as shown on this platform, each once."""
    texts = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
    return ", ".join(dict.fromkeys(texts))


def shortcut_rows(window: MainWindow) -> list[tuple[str, str, str]]:
    """(group, action, keys) for every action on the window that has a shortcut, grouped by menu in menu
    bar order (actions in no menu last, under 'Other'); then menu entries whose key a widget handles
    itself, named after a tab in their text ('Delete item\tDel'); then the mouse gestures ('Mouse')."""
    in_menus = _menu_actions(window)
    menu_of = {id(action): title for title, action in in_menus}
    order = list(dict.fromkeys(title for title, _ in in_menus))
    rows: list[tuple[str, str, str]] = []
    listed: set[int] = set()
    for action in window.actions():
        keys = _keys(action)
        if keys:
            rows.append((menu_of.get(id(action), OTHER), _plain(action.text()).split("\t")[0], keys))
            listed.add(id(action))
    for title, action in in_menus:
        text, tab, key = _plain(action.text()).partition("\t")
        if id(action) not in listed and tab and key:
            rows.append((title, text, key))
    rank = {group: k for k, group in enumerate(order)}
    rows.sort(key=lambda row: rank.get(row[0], len(rank)))  # stable: keeps each menu's own order
    return rows + [(MOUSE, what, how) for what, how in MOUSE_GESTURES]


class ShortcutsDialog(QDialog):
    """Every shortcut and mouse gesture, one tree branch per menu."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        self.rows = shortcut_rows(window)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["action", "keys / gesture"])
        self.tree.setRootIsDecorated(False)
        groups: dict[str, QTreeWidgetItem] = {}
        for group, text, keys in self.rows:
            parent = groups.get(group)
            if parent is None:
                parent = groups[group] = QTreeWidgetItem(self.tree, [group])
                font = parent.font(0)
                font.setBold(True)
                parent.setFont(0, font)
                parent.setFirstColumnSpanned(True)
            QTreeWidgetItem(parent, [text, keys])
        self.tree.expandAll()
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)
        self.resize(560, 640)

    def keys_for(self, action_text: str) -> str | None:
        """The keys listed for an action (its menu text), or None when it is not listed."""
        return next((keys for _, text, keys in self.rows if text == action_text), None)


def show_shortcuts(window: MainWindow) -> ShortcutsDialog:
    """Open the shortcut list (rebuilt now, so actions added since the last time are in it)."""
    dialog = ShortcutsDialog(window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    window.shortcuts_dialog = dialog
    return dialog


def about_text(window: MainWindow) -> str:
    try:
        version = metadata.version("deepmark-studio")
    except metadata.PackageNotFoundError:  # a frozen build carries no package metadata
        version = "frozen build"
    model = window.session.model.describe() if window.session.model is not None else "no model loaded"
    project = window.session.project.where if window.session.project is not None else "no project open"
    return (f"<h3>DeepMark Studio {version}</h3>"
            "<p>Review and correct a CenterNet clothing detector's boxes and landmarks (DeepFashion2, "
            "DeepMark++ post-processing), tune its post-processing with the heatmaps in view, and export "
            "labels for retraining.</p>"
            f"<p>Model: {model}<br>Project: {project}</p>"
            f"<p>Python {platform.python_version()}, PySide6 {pyside_version}</p>")


def show_about(window: MainWindow) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Information, "About DeepMark Studio", about_text(window),
                      QMessageBox.StandardButton.Ok, window)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if not window.windowIcon().isNull():
        box.setIconPixmap(window.windowIcon().pixmap(64, 64))
    box.open()  # window-modal, no nested event loop
    window.about_box = box
    return box


def build_help_menu(window: MainWindow, menu: QMenu, add_action: Callable[..., QAction]) -> None:
    """Fill the Help menu; ``add_action`` is the menus module's helper (menu entry + window shortcut)."""
    add_action(window, menu, "Keyboard shortcuts", lambda: show_shortcuts(window), "help.shortcuts")
    add_action(window, menu, "About DeepMark Studio", lambda: show_about(window))
