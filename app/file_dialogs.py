"""The app's file dialogs: each starts in the folder the user last chose a file or folder in (or the home
folder), and remembers the new one in the settings file (``[dialogs] last_folder``)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from deepmark.app.settings import studio_settings

LAST_FOLDER = "dialogs/last_folder"


def start_folder() -> str:
    """The last folder used, when it still exists; else the home folder."""
    value = studio_settings().value(LAST_FOLDER)
    if isinstance(value, str) and value and Path(value).is_dir():
        return value
    return str(Path.home())


def remember_folder(chosen: str) -> None:
    """Remember the folder of a chosen file (or the chosen folder itself)."""
    if not chosen:
        return
    path = Path(chosen)
    folder = path if path.is_dir() else path.parent
    settings = studio_settings()
    settings.setValue(LAST_FOLDER, str(folder))
    settings.sync()


def open_file(parent: QWidget, title: str, file_filter: str) -> str:
    path, _ = QFileDialog.getOpenFileName(parent, title, start_folder(), file_filter)
    remember_folder(path)
    return path


def open_files(parent: QWidget, title: str, file_filter: str) -> list[str]:
    paths, _ = QFileDialog.getOpenFileNames(parent, title, start_folder(), file_filter)
    if paths:
        remember_folder(paths[0])
    return list(paths)


def save_file(parent: QWidget, title: str, file_filter: str) -> str:
    path, _ = QFileDialog.getSaveFileName(parent, title, start_folder(), file_filter)
    remember_folder(path)
    return path


def folder(parent: QWidget, title: str, start: str = "") -> str:
    chosen = QFileDialog.getExistingDirectory(parent, title, start or start_folder())
    remember_folder(chosen)
    return chosen
