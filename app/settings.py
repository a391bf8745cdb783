"""What the app remembers between sessions (QSettings, organisation "DeepMark", application
"DeepMark Studio"): window geometry and dock layout, the last post-processing parameters, the heatmap
opacity and the last model file. Saved when the main window closes, restored when the app starts.

An INI file in the user's configuration folder on every platform (not the Windows registry), so the
file can be read, copied or deleted by hand, and tests can redirect it with ``QSettings.setPath``.
Anything unreadable in it (an older program's keys, hand edits) is ignored, never an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow

ORGANIZATION = "DeepMark"
APPLICATION = "DeepMark Studio"
# the post-processing parameters belong to the project (deepmark.core.store.presets.project_params), not here
GEOMETRY, STATE, OPACITY, MODEL = ("window/geometry", "window/state", "heatmap/opacity", "model/path")


def studio_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def save_window(window: MainWindow) -> None:
    """Remember the window's layout, parameters, heatmap opacity and model (called when it closes), unless
    the window was started without settings (``remember_settings`` False: checks, screenshots)."""
    if not window.remember_settings:
        return
    settings = studio_settings()
    settings.setValue(GEOMETRY, window.saveGeometry())
    settings.setValue(STATE, window.saveState())
    settings.setValue(OPACITY, window.heatmap_panel.opacity.value())
    if window.session.model is not None:
        settings.setValue(MODEL, str(window.session.model.path))
    settings.sync()


def restore_window(window: MainWindow) -> None:
    """Restore the layout and heatmap opacity saved by ``save_window`` (nothing when there is none)."""
    settings = studio_settings()
    geometry, state = settings.value(GEOMETRY), settings.value(STATE)
    if isinstance(geometry, QByteArray) and not geometry.isEmpty():
        window.restoreGeometry(geometry)
    if isinstance(state, QByteArray) and not state.isEmpty():
        window.restoreState(state)
    opacity = _int(settings.value(OPACITY))
    if opacity is not None and 0 <= opacity <= 100:
        window.heatmap_panel.opacity.setValue(opacity)


def saved_model_path() -> Path | None:
    """The model file of the last session, when it still exists."""
    text = studio_settings().value(MODEL)
    if isinstance(text, str) and text and Path(text).is_file():
        return Path(text)
    return None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
