"""Recently opened projects (File → Open recent), kept in the user's settings under ``recent_projects``:
newest first, at most ``MAX_RECENT``; projects whose file is gone are pruned (and the user told)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMenu

    from deepmark.app.window import MainWindow

ORGANIZATION = "DeepMark"
APPLICATION = "DeepMark Studio"
KEY = "recent_projects"
MAX_RECENT = 10


def settings() -> QSettings:
    """The app's settings (an INI file in the user's config folder on every system, so tests can move it
    with ``QSettings.setPath(IniFormat, UserScope, folder)``)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def recent_projects() -> list[str]:
    """The remembered project files, newest first."""
    value = settings().value(KEY, [])
    if isinstance(value, str):  # an INI list of one entry reads back as a plain string
        value = [value] if value else []
    return [str(v) for v in (value or []) if v]


def _store(paths: list[str]) -> None:
    s = settings()
    s.setValue(KEY, paths[:MAX_RECENT])
    s.sync()


def remember(where: str) -> list[str]:
    """Put a project file first (server URLs are not kept: their password is not in ``where``; nor the
    demo's temporary project, which is deleted when the window closes)."""
    if "://" in where or where in ("", ":memory:"):
        return recent_projects()
    if Path(where).parent.name.startswith("deepmark-demo-"):  # the demo's throw-away project
        return recent_projects()
    path = str(Path(where).resolve())
    paths = [path] + [p for p in recent_projects() if p != path]
    _store(paths)
    return paths[:MAX_RECENT]


def forget(path: str) -> None:
    _store([p for p in recent_projects() if p != path])


def clear() -> None:
    _store([])


def prune_missing() -> list[str]:
    """Drop the projects whose file no longer exists; the dropped ones."""
    paths = recent_projects()
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        _store([p for p in paths if p not in missing])
    return missing


def fill_menu(window: MainWindow, menu: QMenu) -> None:
    """Rebuild the Open recent submenu (called each time it is about to show)."""
    from deepmark.app.menus import open_project_file

    menu.clear()
    missing = prune_missing()
    if missing:
        names = ", ".join(Path(p).name for p in missing)
        window.show_info(f"removed {len(missing)} missing project(s) from the recent list: {names}")
    paths = recent_projects()
    for k, path in enumerate(paths, start=1):
        action = QAction(f"&{k % 10} {Path(path).name}  —  {Path(path).parent}", menu)
        action.setToolTip(path)
        action.triggered.connect(lambda *_, p=path: open_recent(window, p, open_project_file))
        menu.addAction(action)
    if not paths:
        menu.addAction("(no recent projects)").setEnabled(False)
    menu.addSeparator()
    menu.addAction("Clear list", clear).setEnabled(bool(paths))


def open_recent(window: MainWindow, path: str, opener) -> None:
    if not Path(path).is_file():
        forget(path)
        window.show_error(f"{path}: the project file no longer exists (removed from the recent list)", dialog=True)
        return
    opener(window, path, False)
