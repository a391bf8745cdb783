"""The post-processing panel: saved presets, a slider and a spin box per DeepMark++ parameter, a switch per
technique, the test-time augmentation switches, the landmark refinement switches and "Reset to model defaults".

Emits ``changed`` with a fresh ``PostprocessParams`` (the window coalesces bursts of slider moves) and
``tta_changed`` with a ``TestTimeAugmentation`` (the window re-runs the network once per image and
setting; the heads of every setting stay cached), ``refine_changed`` / ``before_changed`` with a bool (landmark
refinement on or off; the landmarks before refinement drawn too, or not)."""

from __future__ import annotations

from dataclasses import asdict, replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from deepmark.app.presets_bar import PresetsBar
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.inference.detector import PAPER_SCALES, TestTimeAugmentation
from deepmark.core.store import Project

SLIDER_STEPS = 1000
# field → (label, minimum, maximum, spin-box step); σ ranges cover the paper's searches with margin.
NUMBERS = {
    "alpha": ("α (center rescoring)", 0.0, 1.0, 0.01),
    "sigma_center": ("σ_c (center heatmap)", 0.0, 3.0, 0.05),
    "sigma_keypoint": ("σ_k (group heatmaps)", 0.0, 3.0, 0.05),
    "gamma": ("γ (location refinement)", 0.0, 1.0, 0.01),
    "score_threshold": ("score threshold", 0.0, 1.0, 0.01),
    "nms_iou": ("NMS IoU", 0.0, 1.0, 0.01),
}
SWITCHES = {
    "center_rescoring": "center rescoring",
    "heatmap_rescoring": "heatmap rescoring",
    "location_refinement": "location refinement",
    "keypoint_rescoring": "keypoint rescoring",
    "nms": "box NMS",
}


class NumberRow(QWidget):
    """A slider mirrored by a spin box; ``valueChanged(float)`` once per user change."""

    valueChanged = Signal(float)

    def __init__(self, low: float, high: float, step: float, parent=None) -> None:
        super().__init__(parent)
        self.low, self.high = low, high
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(low, high)
        self.spin.setSingleStep(step)
        self.spin.setDecimals(3)
        self.spin.setKeyboardTracking(False)  # typing "0.35" is one change, not three
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def value(self) -> float:
        return float(self.spin.value())

    def set_value(self, value: float) -> None:
        """Set without emitting (used when loading parameters)."""
        for widget in (self.slider, self.spin):
            widget.blockSignals(True)
        self.spin.setValue(value)
        self.slider.setValue(self._to_steps(value))
        for widget in (self.slider, self.spin):
            widget.blockSignals(False)

    def _to_steps(self, value: float) -> int:
        return round((value - self.low) / (self.high - self.low) * SLIDER_STEPS)

    def _from_slider(self, steps: int) -> None:
        value = self.low + (self.high - self.low) * steps / SLIDER_STEPS
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.valueChanged.emit(self.value())

    def _from_spin(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_steps(value))
        self.slider.blockSignals(False)
        self.valueChanged.emit(self.value())


class ParamsPanel(QWidget):
    """Edits a ``PostprocessParams``; ``params()`` reads it, ``set_params`` loads one without emitting.
    ``error`` / ``info`` carry messages for the window's status bar."""

    changed = Signal(object)
    tta_changed = Signal(object)
    refine_changed = Signal(bool)
    before_changed = Signal(bool)
    error = Signal(str)
    info = Signal(str)

    def __init__(self, params: PostprocessParams, parent=None) -> None:
        super().__init__(parent)
        self._params = params
        self._defaults = params
        self.numbers: dict[str, NumberRow] = {}
        self.switches: dict[str, QCheckBox] = {}
        self.presets = PresetsBar(self.params)
        self.presets.applied.connect(self.set_params)
        self.presets.error.connect(self.error)
        self.presets.info.connect(self.info)
        form = QFormLayout()
        self.labels: dict[str, QLabel] = {}  # the number rows' labels (marked when off the model's values)
        for name, label in SWITCHES.items():
            box = QCheckBox(label)
            box.toggled.connect(lambda on, name=name: self._update(name, bool(on)))
            self.switches[name] = box
            form.addRow(box)
        for name, (label, low, high, step) in NUMBERS.items():
            row = NumberRow(low, high, step)
            row.valueChanged.connect(lambda value, name=name: self._update(name, value))
            self.numbers[name] = row
            self.labels[name] = QLabel(label)
            form.addRow(self.labels[name], row)
        self.reset_button = QPushButton("Reset to model defaults")
        self.reset_button.setToolTip("The parameters the model recommends (the paper's values when it names none)")
        self.reset_button.clicked.connect(self.reset)
        # test-time augmentation changes the heads themselves: one network run per image and setting
        self.flip = QCheckBox("flip test")
        self.flip.setToolTip("Average the heads of the image and its mirror (one more network run, then cached)")
        self.multiscale = QCheckBox("multi-scale " + " / ".join(f"{s:g}" for s in PAPER_SCALES))
        self.multiscale.setToolTip("Average the heatmaps of three input scales (network re-run, then cached)")
        tta = QGroupBox("Test-time augmentation")
        tta_layout = QHBoxLayout(tta)
        for box in (self.flip, self.multiscale):
            box.toggled.connect(lambda _: self.tta_changed.emit(self.tta()))
            tta_layout.addWidget(box)
        # the refinement network runs per garment: only when switched on, never on a slider move
        self.refine = QCheckBox("refine landmarks (network)")
        self.refine.setToolTip("DeepMark++ §4.2.2: a second network moves each detected garment's landmarks "
                               "(a run per garment after each image's decode and once the sliders rest; cached)")
        self.refine.toggled.connect(self.refine_changed)
        self.before = QCheckBox("show before refinement")
        self.before.setToolTip("Draw where the decoder put each landmark (rings), joined to its refined position")
        self.before.toggled.connect(self.before_changed)
        self.refine_state = QLabel("off")
        self.refine_state.setWordWrap(True)
        refinement = QGroupBox("Landmark refinement")
        refinement_layout = QVBoxLayout(refinement)
        for widget in (self.refine, self.before, self.refine_state):  # one per line: the dock stays narrow
            refinement_layout.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addWidget(self.presets)
        layout.addLayout(form)
        # how the values stand against the model's recommendation (the marked fields differ)
        self.differs = QLabel("")
        self.differs.setWordWrap(True)
        layout.addWidget(self.differs)
        layout.addWidget(self.reset_button)
        layout.addWidget(tta)
        layout.addWidget(refinement)
        layout.addStretch(1)
        self._show(params)

    def params(self) -> PostprocessParams:
        return self._params

    def tta(self) -> TestTimeAugmentation:
        """The test-time augmentation the switches ask for."""
        return TestTimeAugmentation(flip=self.flip.isChecked(),
                                    scales=PAPER_SCALES if self.multiscale.isChecked() else (1.0,))

    def show_refinement(self, on: bool, state: str) -> None:
        """Show the session's refinement state (``on`` may differ from the switch when loading failed)."""
        self.refine.blockSignals(True)
        self.refine.setChecked(on)
        self.refine.blockSignals(False)
        self.refine_state.setText(state)

    def set_project(self, project: Project | None) -> None:
        """The project whose presets the combo lists."""
        self.presets.set_project(project)

    def set_defaults(self, params: PostprocessParams) -> None:
        """What "Reset to model defaults" applies (the window passes the loaded model's)."""
        self._defaults = params
        self._mark_differences()

    def differing(self) -> list[str]:
        """The fields whose value is not the model's recommended one."""
        now, model = asdict(self._params), asdict(self._defaults)
        return [name for name in (*SWITCHES, *NUMBERS) if abs(float(now[name]) - float(model[name])) > 1e-9]

    def _mark_differences(self) -> None:
        """Mark (•, bold) the fields that differ from the model's recommendation, and say how many."""
        off = set(self.differing())
        model = asdict(self._defaults)
        for name, widget in [*self.labels.items(), *self.switches.items()]:
            text = NUMBERS[name][0] if name in NUMBERS else SWITCHES[name]
            widget.setText(f"• {text}" if name in off else text)
            font = widget.font()
            font.setBold(name in off)
            widget.setFont(font)
            widget.setToolTip(f"the model recommends {model[name]:g}" if name in off else "")
        counted = "1 value differs" if len(off) == 1 else f"{len(off)} values differ"
        self.differs.setText(f"• {counted} from the model's recommendation" if off
                             else "the model's recommended values")

    def defaults(self) -> PostprocessParams:
        return self._defaults

    def set_params(self, params: PostprocessParams) -> None:
        """Show ``params`` and emit ``changed`` (a preset, the tuning view's best, a reset, a script): what the
        panel shows is always what the window decodes with."""
        self._show(params)
        self.changed.emit(self._params)

    def _show(self, params: PostprocessParams) -> None:
        self._params = params
        values = asdict(params)
        for name, row in self.numbers.items():
            row.set_value(float(values[name]))
        for name, box in self.switches.items():
            box.blockSignals(True)
            box.setChecked(bool(values[name]))
            box.blockSignals(False)
        self._enable()
        self._mark_differences()
        self.presets.sync(params)

    def reset(self) -> None:
        self.set_params(self._defaults)
        self.info.emit("post-processing reset to the model's defaults")

    def _update(self, name: str, value) -> None:
        self._params = replace(self._params, **{name: value})
        self._enable()
        self._mark_differences()
        self.presets.sync(self._params)
        self.changed.emit(self._params)

    def _enable(self) -> None:
        """Grey out the numbers of switched-off techniques (they have no effect then)."""
        p = self._params
        owners = {"alpha": p.center_rescoring, "sigma_center": p.heatmap_rescoring,
                  "sigma_keypoint": p.heatmap_rescoring, "gamma": p.location_refinement, "nms_iou": p.nms}
        for name, on in owners.items():
            self.numbers[name].setEnabled(on)
