"""The preset row of the post-processing panel: a combo of the project's saved presets (choosing one
applies it), "Save as…" and "Delete". Presets live in the project store, shared by everyone on it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QInputDialog, QPushButton, QSizePolicy, QWidget

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import Project

PLACEHOLDER = "— preset —"


class PresetsBar(QWidget):
    """``applied(PostprocessParams)`` when the user picks a preset; ``error(str)`` / ``info(str)`` report
    what happened (the window shows them); ``presets_changed`` after a save or delete."""

    applied = Signal(object)
    error = Signal(str)
    info = Signal(str)
    presets_changed = Signal()

    def __init__(self, current: Callable[[], PostprocessParams], parent=None) -> None:
        super().__init__(parent)
        self._current = current
        self.project: Project | None = None
        self._presets: dict[str, PostprocessParams] = {}
        self.combo = QComboBox()
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.setToolTip("Saved post-processing presets of this project (choosing one applies it)")
        self.combo.activated.connect(self._chosen)  # user choices only, not programmatic index changes
        self.save_button = QPushButton("Save as…")
        self.save_button.clicked.connect(self.ask_name)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(lambda: self.delete())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.save_button)
        layout.addWidget(self.delete_button)
        self.last_dialog: QInputDialog | None = None
        self.refresh()

    # -- state -----------------------------------------------------------------------------------

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.refresh()
        self.presets_changed.emit()  # another project, other presets (the tuning view lists them too)

    def names(self) -> list[str]:
        return list(self._presets)

    def presets(self) -> dict[str, PostprocessParams]:
        """name → parameters of every saved preset (as last read from the project)."""
        return dict(self._presets)

    def selected(self) -> str | None:
        return self.combo.currentText() if self.combo.currentIndex() > 0 else None

    def refresh(self, select: str | None = None) -> None:
        """Re-read the presets from the project; keep (or set) the selection when it still exists."""
        keep = select or self.selected()
        self._presets = {}
        if self.project is not None:
            try:
                # a preset saved by an older version with an unusable value is skipped, not fatal
                for record in self.project.presets.list():
                    try:
                        self._presets[record.name] = PostprocessParams.from_mapping(
                            record.params, source=f"preset {record.name!r}")
                    except DeepMarkError:
                        continue
            except DeepMarkError as exc:
                self.error.emit(f"presets not readable: {exc}")
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem(PLACEHOLDER)
        self.combo.addItems(list(self._presets))
        self.combo.setCurrentIndex(self.combo.findText(keep) if keep in self._presets else 0)
        self.combo.blockSignals(False)
        has_project = self.project is not None
        self.combo.setEnabled(has_project)
        self.save_button.setEnabled(has_project)
        self.delete_button.setEnabled(has_project and self.selected() is not None)

    def sync(self, params: PostprocessParams) -> None:
        """Show the placeholder once the parameters no longer equal the selected preset's (edited since)."""
        name = self.selected()
        if name is not None and self._presets.get(name) != params:
            self.combo.setCurrentIndex(0)
            self.delete_button.setEnabled(False)

    # -- actions ---------------------------------------------------------------------------------

    def apply(self, name: str) -> bool:
        """Select preset ``name`` and emit its parameters; False (reported) when it is not there."""
        if name not in self._presets:
            self.refresh()
        if name not in self._presets:
            self.error.emit(f"preset {name!r} is not in the project")
            return False
        self.combo.setCurrentIndex(self.combo.findText(name))
        self.delete_button.setEnabled(True)
        self.applied.emit(self._presets[name])
        self.info.emit(f"preset {name!r} applied")
        return True

    def save_as(self, name: str) -> bool:
        """Save the current parameters as ``name`` (replacing a preset of that name)."""
        name = name.strip()
        if self.project is None:
            self.error.emit("open a project to save presets in")
            return False
        try:
            self.project.presets.save(name, self._current())
        except DeepMarkError as exc:
            self.error.emit(f"preset not saved: {exc}")
            return False
        self.refresh(select=name)
        self.delete_button.setEnabled(True)
        self.presets_changed.emit()
        self.info.emit(f"preset {name!r} saved")
        return True

    def delete(self, name: str | None = None) -> bool:
        """Delete preset ``name`` (default: the selected one)."""
        name = name or self.selected()
        if self.project is None or name is None:
            return False
        try:
            self.project.presets.delete(name)
        except DeepMarkError as exc:
            self.error.emit(f"preset not deleted: {exc}")
            return False
        self.refresh()
        self.presets_changed.emit()
        self.info.emit(f"preset {name!r} deleted")
        return True

    def ask_name(self) -> None:
        """Ask for a name without blocking (``open``, not ``exec``), then save."""
        if self.project is None:
            self.error.emit("open a project to save presets in")
            return
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Save preset")
        dialog.setLabelText("Preset name:")
        dialog.setTextValue(self.selected() or "")
        dialog.textValueSelected.connect(self.save_as)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self.last_dialog = dialog

    def _chosen(self, index: int) -> None:
        if index > 0:
            self.apply(self.combo.itemText(index))
        else:
            self.delete_button.setEnabled(False)
