"""Model → Model information…: what the loaded model file says about itself
(``deepmark.core.formats.model_file.ModelInfo``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from deepmark.core.inference.detector import Detector

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow


def model_facts(detector: Detector) -> list[tuple[str, str]]:
    """(label, text) rows describing the model: file, format, architecture, input size, grouping,
    precision, categories, normalisation, outputs, training summary."""
    info, path = detector.info, detector.path
    try:
        size = f"{path.stat().st_size / 1e6:.1f} MB"
    except OSError:
        size = "?"
    kind = "training checkpoint (PyTorch)" if path.suffix == ".pt" else "ONNX (onnxruntime)"
    rows = [
        ("File", str(path)),
        ("Format", f"{kind}, {size}"),
        ("Architecture", info.arch),
        ("Input size", f"{info.input_size[0]} × {info.input_size[1]} px (width × height)"),
        ("Grouping", f"{info.grouping_name}: {detector.grouping.num_groups} landmark heatmaps for "
                     f"{len(info.landmark_to_group)} landmarks"),
        ("Precision", info.precision),
        ("Categories", f"{len(info.category_ids)}: " + ", ".join(
            f"{cid} {name}" for cid, name in zip(info.category_ids, info.category_names, strict=True))),
        ("Normalisation", f"{info.color_order}, mean {tuple(round(v, 4) for v in info.mean)}, "
                          f"std {tuple(round(v, 4) for v in info.std)} (on 0..1 pixel values)"),
        ("Outputs", f"{', '.join(info.output_names)} (stride {info.output_stride})"),
    ]
    if info.training:
        rows.append(("Training", json.dumps(info.training, indent=1, default=str)[:2000]))
    return rows


class ModelInfoDialog(QDialog):
    def __init__(self, detector: Detector, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model information — {detector.path.name}")
        form = QFormLayout()
        self.labels: dict[str, QLabel] = {}
        for name, text in model_facts(detector):
            label = QLabel(text)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"{name}:", label)
            self.labels[name] = label
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(640, 420)


def show_model_info(window: MainWindow) -> ModelInfoDialog | None:
    """Open the dialog for the loaded model (non-blocking); None, with a message, when none is loaded."""
    if window.session.model is None:
        window.show_error("no model loaded — Model → Choose model file… (Ctrl+M)", dialog=True)
        return None
    dialog = ModelInfoDialog(window.session.model.detector, window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    window.model_dialog = dialog
    return dialog
