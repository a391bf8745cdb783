"""Model → Model information…: what the loaded model file says about itself
(``deepmark.core.formats.model_file.ModelInfo``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from deepmark.core.formats.model_file import RECOMMENDED_PARAMS_KEY
from deepmark.core.inference.detector import Detector

if TYPE_CHECKING:
    from deepmark.app.window import MainWindow


PARAM_NAMES = (("alpha", "α"), ("sigma_center", "σ_c"), ("sigma_keypoint", "σ_k"), ("gamma", "γ"),
               ("score_threshold", "score ≥"), ("nms_iou", "NMS IoU"))


def _training_rows(training: dict) -> list[tuple[str, str]]:
    """The training summary in words: how long, how good, on what, and the recommended post-processing."""
    rows = []
    done = [f"{training['epochs']} epochs" if "epochs" in training else "",
            f"{training['steps']:,} steps" if "steps" in training else ""]
    best = training.get("best_val_map_pt")
    if any(done) or best is not None:
        text = ", ".join(d for d in done if d)
        if isinstance(best, (int, float)):
            text += f"; best validation mAP_pt {best:.3f}"
        rows.append(("Training", text.strip("; ")))
    data = (training.get("config") or {}).get("data") or {}
    if data.get("train"):
        rows.append(("Training set", str(data["train"])))
    params = training.get(RECOMMENDED_PARAMS_KEY)
    if isinstance(params, dict):
        on = [name.replace("_", " ") for name in ("center_rescoring", "heatmap_rescoring", "location_refinement",
                                                  "keypoint_rescoring", "nms") if params.get(name)]
        values = " · ".join(f"{label} {params[key]:g}" for key, label in PARAM_NAMES
                            if isinstance(params.get(key), (int, float)))
        rows.append(("Recommended", f"{values}\n{', '.join(on) or 'no technique'}"))
    return rows


def model_facts(detector: Detector) -> list[tuple[str, str]]:
    """(label, text) rows describing the model, most useful first: file, what it learned from, format,
    architecture, input size, precision, grouping, categories, training in words, normalisation, outputs."""
    info, path = detector.info, detector.path
    try:
        size = f"{path.stat().st_size / 1e6:.1f} MB"
    except OSError:
        size = "?"
    kind = "training checkpoint (PyTorch)" if path.suffix == ".pt" else "ONNX (onnxruntime)"
    learned = info.training_data or "not stated in the file"
    if info.synthetic_only:
        learned += " — its results on photographs are not meaningful"
    rows = [
        ("File", str(path)),
        ("Learned from", learned),
        ("Format", f"{kind}, {size}"),
        ("Architecture", info.arch),
        ("Input size", f"{info.input_size[0]} × {info.input_size[1]} px (width × height)"),
        ("Precision", info.precision),
        ("Grouping", f"{info.grouping_name}: {detector.grouping.num_groups} landmark heatmaps for "
                     f"{len(info.landmark_to_group)} landmarks"),
        ("Categories", f"{len(info.category_ids)}: " + ", ".join(
            f"{cid} {name}" for cid, name in zip(info.category_ids, info.category_names, strict=True))),
        *_training_rows(info.training or {}),
        ("Normalisation", f"{info.color_order}, mean {tuple(round(v, 3) for v in info.mean)}, "
                          f"std {tuple(round(v, 3) for v in info.std)} (on 0..1 pixel values)"),
        ("Outputs", f"{', '.join(info.output_names)} (stride {info.output_stride})"),
    ]
    return rows


class ModelInfoDialog(QDialog):
    """A card: the model's name and what it learned from on top, the facts below, scrolling on a small
    screen (at most 90 % of it high)."""

    def __init__(self, detector: Detector, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model information — {detector.path.name}")
        title = QLabel(f"<b style='font-size:14pt'>{detector.path.name}</b><br>"
                       f"{detector.info.arch}, {detector.info.input_size[0]}×{detector.info.input_size[1]}, "
                       f"{detector.info.precision}")
        form_widget = QWidget()
        form = QFormLayout(form_widget)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.labels: dict[str, QLabel] = {}
        for name, text in model_facts(detector):
            label = QLabel(text)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            if name == "Learned from" and detector.info.synthetic_only:
                label.setStyleSheet("color: #8a5a00; font-weight: bold")
            form.addRow(f"{name}:", label)
            self.labels[name] = label
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(form_widget)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)
        screen = (parent.screen() if parent is not None else None) or QApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else None
        width, height = 620, 560
        if available is not None:
            width, height = min(width, int(available.width() * 0.9)), min(height, int(available.height() * 0.9))
            self.setMaximumHeight(int(available.height() * 0.9))
        self.resize(width, height)


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
