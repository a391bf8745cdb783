"""File → Export dataset… and File → Import annotations…: dialogs over ``deepmark.core.store.interchange``.

Export: the project's images of the chosen review statuses as DeepFashion2 per-image JSON (train /
validation split by a stable hash with the given seed), optionally the 294-keypoint COCO json of each
split, images copied / linked / left out. Import: a DeepFashion2 folder or a COCO json (+ its images
folder) into the open project, new images getting the chosen status. Both run in the background with a
progress bar and list the files that failed; nothing is raised into the window.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from deepmark.app import file_dialogs
from deepmark.app.background_task import BackgroundTask
from deepmark.core.errors import DeepMarkError
from deepmark.core.store import STATUSES, Project
from deepmark.core.store.exporting import IMAGE_MODES
from deepmark.core.store.interchange import ExportReport, ImportReport, export_dataset, import_coco, import_df2

MAX_LISTED_ERRORS = 500
IMAGE_MODE_LABELS = {"copy": "copy the images", "hardlink": "hard-link the images (copy across disks)",
                     "symlink": "symbolic links to the images", "none": "annotations only"}
DF2, COCO = "df2", "coco"


def _path_row(edit: QLineEdit, browse) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    button = QPushButton("Browse…")
    button.clicked.connect(browse)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row


class _JobDialog(QDialog):
    """What both dialogs share: a start button (subclasses define ``start``), a progress bar, a cancel button
    and the error list."""

    def __init__(self, title: str, start_text: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.job: BackgroundTask | None = None
        self.form = QFormLayout()
        self.progress = QProgressBar()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.errors = QPlainTextEdit()
        self.errors.setReadOnly(True)
        self.errors.setPlaceholderText("files that could not be used are listed here")
        self.buttons = QDialogButtonBox()
        self.start_button = self.buttons.addButton(start_text, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Cancel", QDialogButtonBox.ButtonRole.RejectRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.start_button.clicked.connect(lambda: self.start())  # each dialog's own job
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.close_button.clicked.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.errors, 1)
        layout.addWidget(self.buttons)
        self.resize(640, 480)

    def busy(self) -> bool:
        return self.job is not None and self.job.isRunning()

    def _run(self, work, on_success) -> None:
        self.errors.clear()
        self.summary.setText("working…")
        self.progress.setRange(0, 0)
        job = BackgroundTask(work, self)
        job.progressed.connect(self._progressed)
        job.succeeded.connect(on_success)
        job.failed.connect(self._failed)
        job.cancelled.connect(lambda: self.summary.setText("cancelled"))
        job.finished.connect(self._finished)
        self.job = job
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        job.start()

    def cancel(self) -> None:
        if self.busy():
            self.job.cancel()
            self.summary.setText("cancelling…")

    def _progressed(self, done: int, total: int, _stage: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _show_report(self, report) -> None:
        """Keep ``report`` (an export or import report) and show its summary and errors."""
        self.report = report
        self.summary.setText(report.summary())
        self._list_errors(report.errors)

    def _failed(self, message: str) -> None:
        self.summary.setText(f"failed: {message}")

    def _finished(self) -> None:
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.job = None

    def _list_errors(self, errors) -> None:
        lines = [str(e) for e in errors[:MAX_LISTED_ERRORS]]
        if len(errors) > MAX_LISTED_ERRORS:
            lines.append(f"… and {len(errors) - MAX_LISTED_ERRORS} more")
        self.errors.setPlainText("\n".join(lines))

    def closeEvent(self, event) -> None:
        if self.job is not None:  # the job holds the project: let it stop before the dialog goes
            self.job.stop()
        super().closeEvent(event)


class ExportDialog(_JobDialog):
    """Export ``project`` for retraining; ``exported(ExportReport)`` when done."""

    exported = Signal(object)

    def __init__(self, project: Project, parent=None, destination: str | Path = "") -> None:
        super().__init__("Export dataset", "Export", parent)
        self.project = project
        self.report: ExportReport | None = None
        self.destination = QLineEdit(str(destination))
        self.destination.setPlaceholderText("an empty (or new) folder")
        self.form.addRow("Destination", _path_row(self.destination, self._browse))
        self.statuses: dict[str, QCheckBox] = {}
        status_row = QWidget()
        status_layout = QHBoxLayout(status_row)
        status_layout.setContentsMargins(0, 0, 0, 0)
        for status in STATUSES:
            box = QCheckBox(status)
            box.setChecked(status == "accepted")
            box.toggled.connect(self._count)
            self.statuses[status] = box
            status_layout.addWidget(box)
        self.form.addRow("Images with status", status_row)
        self.count_label = QLabel("")
        self.form.addRow("", self.count_label)
        self.coco = QCheckBox("also write each split as one 294-keypoint COCO json")
        self.coco.setChecked(True)
        self.form.addRow("Format", QLabel("DeepFashion2 per-image JSON (annos/) per split"))
        self.form.addRow("", self.coco)
        self.images = QComboBox()
        for mode in IMAGE_MODES:
            self.images.addItem(IMAGE_MODE_LABELS[mode], mode)
        self.form.addRow("Image files", self.images)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 1.0)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.1)
        self.form.addRow("Validation share", self.val_fraction)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.form.addRow("Split seed", self.seed)
        self.overwrite = QCheckBox("replace the folder's contents if it is not empty")
        self.form.addRow("", self.overwrite)
        self._count()

    def chosen_statuses(self) -> tuple[str, ...]:
        return tuple(s for s, box in self.statuses.items() if box.isChecked())

    def select_statuses(self, statuses: tuple[str, ...]) -> None:
        for status, box in self.statuses.items():
            box.setChecked(status in statuses)

    def _count(self) -> None:
        statuses = self.chosen_statuses()
        try:
            n = self.project.images.count(statuses) if statuses else 0
        except DeepMarkError as exc:
            self.count_label.setText(f"cannot count the images: {exc}")
            return
        self.count_label.setText(f"{n} images will be exported")

    def _browse(self) -> None:
        folder = file_dialogs.folder(self, "Export into folder", self.destination.text())
        if folder:
            self.destination.setText(folder)

    def start(self) -> None:
        if self.busy():
            return
        target, statuses = self.destination.text().strip(), self.chosen_statuses()
        if not target:
            self.summary.setText("choose a destination folder")
            return
        if not statuses:
            self.summary.setText("choose at least one status")
            return
        options = dict(statuses=statuses, val_fraction=self.val_fraction.value(), seed=self.seed.value(),
                       images=self.images.currentData(), coco=self.coco.isChecked(),
                       overwrite=self.overwrite.isChecked())
        project = self.project

        def work(progress, _cancel):
            return export_dataset(project, target, progress=lambda d, t: progress(d, t, "exporting"), **options)
        self._run(work, self._done)

    def _done(self, report: ExportReport) -> None:
        self._show_report(report)
        self.exported.emit(report)


class ImportDialog(_JobDialog):
    """Import annotations into ``project``; ``imported(ImportReport)`` when done."""

    imported = Signal(object)

    def __init__(self, project: Project, parent=None) -> None:
        super().__init__("Import annotations", "Import", parent)
        self.project = project
        self.report: ImportReport | None = None
        self.kind = QComboBox()
        self.kind.addItem("DeepFashion2 folder (annos/ + image/, or split folders)", DF2)
        self.kind.addItem("COCO json with 294 keypoints", COCO)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.form.addRow("Format", self.kind)
        self.source = QLineEdit()
        self.form.addRow("Annotations", _path_row(self.source, self._browse_source))
        self.images_dir = QLineEdit()
        self.images_dir.setPlaceholderText("default: image/ beside the json, else the json's folder")
        self.images_row = _path_row(self.images_dir, self._browse_images)
        self.form.addRow("Images folder", self.images_row)
        self.status = QComboBox()
        self.status.addItems(list(STATUSES))
        self.status.setToolTip("Review status of the new images (images already in the project keep theirs)")
        self.form.addRow("New images' status", self.status)
        self._kind_changed()

    def set_source(self, kind: str, source: str | Path, images_dir: str | Path | None = None,
                   status: str = "new") -> None:
        """Fill the form (what the user would type)."""
        self.kind.setCurrentIndex(self.kind.findData(kind))
        self.source.setText(str(source))
        self.images_dir.setText("" if images_dir is None else str(images_dir))
        self.status.setCurrentText(status)

    def _kind_changed(self) -> None:
        coco = self.kind.currentData() == COCO
        self.images_row.setEnabled(coco)
        self.source.setPlaceholderText("the .json file" if coco else "the DeepFashion2 folder")

    def _browse_source(self) -> None:
        if self.kind.currentData() == COCO:
            path = file_dialogs.open_file(self, "COCO json", "COCO json (*.json);;All (*)")
        else:
            path = file_dialogs.folder(self, "DeepFashion2 folder")
        if path:
            self.source.setText(path)

    def _browse_images(self) -> None:
        folder = file_dialogs.folder(self, "Images folder")
        if folder:
            self.images_dir.setText(folder)

    def start(self) -> None:
        if self.busy():
            return
        source = self.source.text().strip()
        if not source:
            self.summary.setText("choose what to import")
            return
        project, status, kind = self.project, self.status.currentText(), self.kind.currentData()
        images_dir = self.images_dir.text().strip() or None

        def work(progress, _cancel):
            def report(done: int, total: int) -> None:
                progress(done, total, "importing")
            if kind == COCO:
                return import_coco(project, source, images_dir, status=status, progress=report)
            return import_df2(project, source, status=status, progress=report)
        self._run(work, self._done)

    def _done(self, report: ImportReport) -> None:
        self._show_report(report)
        self.imported.emit(report)


def _refresh_after_import(window, report: ImportReport) -> None:
    """Show the imported images in the window's list, keeping the current image selected."""
    if window.session.project is None:
        return
    window.inputs_added(None)  # the errors are listed in the dialog
    window.show_info(f"import: {report.summary()}")


def show_export_dialog(window) -> ExportDialog | None:
    """File → Export dataset… (window-modal, without a nested event loop)."""
    if window.session.project is None:
        window.show_error("open a project to export", dialog=True)
        return None
    dialog = ExportDialog(window.session.project, window)
    dialog.exported.connect(lambda report: window.show_info(f"export: {report.summary()}"))
    dialog.open()
    window.export_dialog = dialog
    return dialog


def show_import_dialog(window) -> ImportDialog | None:
    """File → Import annotations…; the image list shows the new images when it is done."""
    if window.session.project is None:
        window.show_error("open or create a project to import into", dialog=True)
        return None
    dialog = ImportDialog(window.session.project, window)
    dialog.imported.connect(lambda report: _refresh_after_import(window, report))
    dialog.open()
    window.import_dialog = dialog
    return dialog
