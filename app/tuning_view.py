"""The tuning view (View → Tuning, Ctrl+T), for analysts: the post-processing parameters measured on the
project's labelled images (``deepmark.core.studio.tuning``), run in the background.

Plots (pyqtgraph): mAP_pt and mAP_box against each parameter, the others held at the panel's values (a
marker at each curve's best, a line at the current value), and a heatmap of the metric over (σ_c, σ_k)
like the paper's Figure 10, with a colour bar and axes in σ units. "Apply best" loads the best measured
parameters into the post-processing panel; the compare table shows two presets' metrics side by side.
The network runs once per labelled image and test-time augmentation setting; later runs reuse the heads.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")  # the app's binding, whatever else is installed

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QObject, QRectF, Qt  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QComboBox,
    QDockWidget,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from deepmark.app.background_task import BackgroundTask  # noqa: E402
from deepmark.core.domain.structures import PostprocessParams, RawHeads  # noqa: E402
from deepmark.core.studio.heads_cache import ModelHeadsCache  # noqa: E402
from deepmark.core.studio.tuning import (  # noqa: E402
    DEFAULT_SWEEPS,
    METRIC_ROWS,
    Comparison,
    TuningReport,
    TuningSession,
    TuningSpec,
    labelled_images,
)

LABELS = {"alpha": "α", "sigma_center": "σ_c", "sigma_keypoint": "σ_k", "gamma": "γ",
          "score_threshold": "score threshold", "nms_iou": "NMS IoU"}
METRIC_LABELS = {"map_pt": "mAP_pt", "map_box": "mAP_box"}
CURVE_PENS = {"map_pt": pg.mkPen("#1f77b4", width=2), "map_box": pg.mkPen("#ff7f0e", width=2)}
CURRENT, DEFAULTS, BEST = "current", "model defaults", "best of last run"
DEFAULT_IMAGE_LIMIT = 200  # heads of a 256² model are ~3 MB each: bounded memory on big projects


class SweepPlot(pg.PlotWidget):
    """mAP_pt and mAP_box against one parameter: a curve each, a marker at each best, the current value."""

    def __init__(self, parameter: str, parent=None) -> None:
        super().__init__(parent)
        self.parameter = parameter
        self.setBackground("w")
        self.setTitle(LABELS[parameter], color="k")
        self.setLabel("bottom", LABELS[parameter])
        self.setLabel("left", "mAP")
        self.showGrid(x=True, y=True, alpha=0.3)
        for side in ("left", "bottom"):
            self.getAxis(side).enableAutoSIPrefix(False)  # mAP and parameters read as they are, not ×0.001
        self.addLegend(offset=(-5, -5))  # bottom right: the curves sit high
        self.curves = {m: self.plot([], [], pen=CURVE_PENS[m], name=METRIC_LABELS[m]) for m in CURVE_PENS}
        self.best_markers = {m: pg.ScatterPlotItem(size=11, symbol="star", brush=CURVE_PENS[m].color(), pen="k")
                             for m in CURVE_PENS}
        for marker in self.best_markers.values():
            self.addItem(marker)
        self.current_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine))
        self.addItem(self.current_line)

    def show_result(self, values: np.ndarray, tables: dict[str, np.ndarray], current: float) -> None:
        for metric, table in tables.items():
            self.curves[metric].setData(values, np.nan_to_num(table, nan=0.0))
            finite = np.where(np.isnan(table), -math.inf, table)
            best = int(np.argmax(finite))
            self.best_markers[metric].setData([values[best]], [np.nan_to_num(table[best])])
        self.current_line.setValue(current)

    def curve_data(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.curves[metric].getData()
        return (np.zeros(0), np.zeros(0)) if x is None else (x, y)


class SigmaHeatmap(pg.PlotWidget):
    """The metric over the (σ_c, σ_k) grid: σ_c along x, σ_k along y, each cell centred on its σ values."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground("w")
        self.setTitle("mAP over (σ_c, σ_k)", color="k")
        self.setLabel("bottom", "σ_c (center heatmaps)")
        self.setLabel("left", "σ_k (group heatmaps)")
        for side in ("left", "bottom"):
            self.getAxis(side).enableAutoSIPrefix(False)
        self.image = pg.ImageItem(axisOrder="row-major")  # rows are σ_k, columns σ_c
        self.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get("viridis"), interactive=False,
                                        label="mAP")
        self.colorbar.setImageItem(self.image, insert_in=self.getPlotItem())
        self.best_marker = pg.ScatterPlotItem(size=14, symbol="x", brush="r", pen=pg.mkPen("r", width=2))
        self.current_marker = pg.ScatterPlotItem(size=10, symbol="o", brush=None, pen=pg.mkPen("w", width=2))
        self.addItem(self.best_marker)
        self.addItem(self.current_marker)
        self.table = np.zeros((0, 0))

    def show_result(self, sigma_c: np.ndarray, sigma_k: np.ndarray, table: np.ndarray, metric: str,
                    current: tuple[float, float]) -> None:
        """``table`` (len(sigma_c), len(sigma_k)) of ``metric``."""
        self.table = table
        image = np.nan_to_num(table.T, nan=0.0)  # (σ_k rows, σ_c columns)
        self.image.setImage(image, autoLevels=False)
        low, high = float(image.min()), float(image.max())
        self.colorbar.setLevels((low, high if high > low else low + 1e-6))
        self.image.setRect(_cells(sigma_c, sigma_k))
        self.setTitle(f"{METRIC_LABELS[metric]} over (σ_c, σ_k)", color="k")
        best = np.unravel_index(int(np.argmax(np.where(np.isnan(table), -math.inf, table))), table.shape)
        self.best_marker.setData([sigma_c[best[0]]], [sigma_k[best[1]]])
        self.current_marker.setData([current[0]], [current[1]])
        self.autoRange()


def _cells(x: np.ndarray, y: np.ndarray) -> QRectF:
    """The rectangle, in σ units, covered by a grid whose cells are centred on ``x`` × ``y`` (even steps)."""
    dx = float(np.diff(x).mean()) if len(x) > 1 else 0.1
    dy = float(np.diff(y).mean()) if len(y) > 1 else 0.1
    return QRectF(float(x[0]) - dx / 2, float(y[0]) - dy / 2, dx * len(x), dy * len(y))


class TuningView(QWidget):
    """The tuning view of ``window`` (a ``MainWindow``: its project, live model and post-processing panel).
    ``spec`` sets the grids (tests use tiny ones)."""

    def __init__(self, window, spec: TuningSpec | None = None, parent=None) -> None:
        super().__init__(parent)
        self.window_ = window
        self.spec = spec or TuningSpec()
        self.report: TuningReport | None = None
        self.comparison: Comparison | None = None
        self.job: BackgroundTask | None = None
        self._session: TuningSession | None = None
        self._heads: dict[int, RawHeads] = {}  # image id → heads computed by earlier runs (same key)
        self._heads_key: tuple | None = None  # (project, model file, TTA) the kept heads belong to

        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Measure every parameter on the labelled images (in the background)")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.metric = QComboBox()
        for key, label in METRIC_LABELS.items():
            self.metric.addItem(f"best by {label}", key)
        self.limit = QSpinBox()
        self.limit.setRange(1, 100000)
        self.limit.setValue(DEFAULT_IMAGE_LIMIT)
        self.limit.setPrefix("up to ")
        self.limit.setSuffix(" images")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel("Run measures mAP on the project's labelled images (accepted or with imported labels).")
        self.status.setWordWrap(True)
        self.apply_button = QPushButton("Apply best")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply_best)
        top = QHBoxLayout()
        for widget in (self.run_button, self.cancel_button, self.metric, self.limit):
            top.addWidget(widget)
        top.addWidget(self.progress, 1)
        top.addWidget(self.apply_button)

        self.plots = {name: SweepPlot(name) for name in DEFAULT_SWEEPS}
        sweeps = QWidget()
        grid = QGridLayout(sweeps)
        for k, plot in enumerate(self.plots.values()):
            grid.addWidget(plot, k // 3, k % 3)
        self.heatmap = SigmaHeatmap()

        self.compare_a, self.compare_b = QComboBox(), QComboBox()
        self.compare_button = QPushButton("Compare")
        self.compare_button.clicked.connect(self.compare)
        self.table = QTableWidget(len(METRIC_ROWS) + 1, 3)
        self.table.setHorizontalHeaderLabels(["A", "B", "B − A"])
        self.table.setVerticalHeaderLabels([label for label, _ in METRIC_ROWS] + ["detections"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        compare = QWidget()
        compare_layout = QVBoxLayout(compare)
        choose = QHBoxLayout()
        choose.addWidget(QLabel("A"))
        choose.addWidget(self.compare_a, 1)
        choose.addWidget(QLabel("B"))
        choose.addWidget(self.compare_b, 1)
        choose.addWidget(self.compare_button)
        compare_layout.addLayout(choose)
        compare_layout.addWidget(self.table)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.heatmap)
        bottom.addWidget(compare)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(sweeps)
        body.addWidget(bottom)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(body, 1)

        panel = window.params_panel
        panel.presets.presets_changed.connect(self.refresh_choices)
        self.refresh_choices()
        self._closer = _StopOnClose(self)
        window.installEventFilter(self._closer)  # a running job must end before the project closes

    # -- running ---------------------------------------------------------------------------------

    def busy(self) -> bool:
        return self.job is not None and self.job.isRunning()

    def _session_for_run(self) -> tuple[TuningSession, dict, object, ModelHeadsCache | None] | None:
        """A session over the labelled images as they are now (re-read each time: reviews go on), the heads
        already computed (by the live model, or kept from earlier runs with the same project, model and
        TTA), the function computing the others and the disk heads cache (heads of batch jobs; fresh ones
        are added to it); None (reported) when something is missing."""
        w = self.window_
        if w.session.project is None or w.session.model is None:
            self._say("open a project and load a model to tune", error=True)
            return None
        model = w.session.model
        tta = model.tta
        key = (w.session.project.where, str(model.path), tta.key())
        if key != self._heads_key:
            self._heads, self._heads_key = {}, key
        try:
            images = labelled_images(w.session.project, self.limit.value())
        except Exception as exc:  # a store error must not escape the slot
            self._say(f"cannot read the labelled images: {exc}", error=True)
            return None
        if not images:
            self._say("no labelled image in the project: accept reviewed images or import labels first", error=True)
            return None
        self._session = TuningSession(images, model.detector.taxonomy, model.detector.grouping)
        known = {}
        for image in images:
            heads = model.cached(image.image_id)  # the app's own heads: no network run for those
            if heads is None:
                heads = self._heads.get(image.image_id)
            if heads is not None:
                known[image.image_id] = heads
        detector = model.detector
        disk = model.disk_view()  # the disk heads cache, captured here in the GUI thread

        def heads_fn(_image_id, rgb):
            return detector.heads(rgb, tta)
        return self._session, known, heads_fn, disk

    def run(self) -> None:
        """Start the sweeps in the background (a no-op while a job runs)."""
        if self.busy():
            return
        prepared = self._session_for_run()
        if prepared is None:
            return
        session, known, heads_fn, disk = prepared
        base = self.window_.params()
        spec = TuningSpec(self.spec.sweeps, self.spec.grid, self.metric.currentData())

        def work(progress, cancel):
            session.load_heads(heads_fn, known, progress, cancel, cache=disk)
            return session.run(base, spec, progress, cancel)
        self._start(work, self._ran, f"tuning on {len(session.images)} labelled images…")

    def compare(self) -> None:
        """Evaluate the two chosen parameter sets in the background."""
        if self.busy():
            return
        a, b = self.choice(self.compare_a), self.choice(self.compare_b)
        if a is None or b is None:
            self._say("choose two parameter sets to compare", error=True)
            return
        prepared = self._session_for_run()
        if prepared is None:
            return
        session, known, heads_fn, disk = prepared

        def work(progress, cancel):
            session.load_heads(heads_fn, known, progress, cancel, cache=disk)
            progress(0, 2, "evaluating")
            session.evaluate(a)
            progress(1, 2, "evaluating")
            return session.compare_presets(a, b)
        self._start(work, self._compared, "comparing…")

    def _start(self, work, on_success, message: str) -> None:
        job = BackgroundTask(work, self)
        job.progressed.connect(self._progressed)
        job.succeeded.connect(on_success)
        job.failed.connect(lambda text: self._say(f"tuning failed: {text}", error=True))
        job.cancelled.connect(lambda: self._say("cancelled"))
        job.finished.connect(self._finished)
        self.job = job
        self._set_running(True)
        self.progress.setRange(0, 0)  # busy until the first report
        self._say(message)
        job.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self._say("cancelling…")

    def stop(self) -> None:
        """Cancel a running job and wait for it (the window is closing)."""
        if self.job is not None:
            self.job.stop()

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.compare_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.limit.setEnabled(not running)

    def _progressed(self, done: int, total: int, stage: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{stage} %v / %m" if stage else "%v / %m")

    def _finished(self) -> None:
        if self._session is not None:  # keep what the job computed, even when cancelled half-way
            self._heads.update(self._session.heads)
        self._set_running(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.job = None

    def _say(self, message: str, error: bool = False) -> None:
        self.status.setText(message)
        if error:
            self.window_.show_error(message)

    # -- results ---------------------------------------------------------------------------------

    def _done(self) -> None:
        self.progress.setValue(self.progress.maximum())
        self.progress.setFormat("done")

    def _ran(self, report: TuningReport) -> None:
        self._done()
        metric = METRIC_LABELS[report.metric]
        if math.isnan(getattr(report.base_result, report.metric)):
            # pycocotools' "no ground truth to match": nothing to plot, and "nan" would say nothing
            what = "labelled landmarks" if report.metric == "map_pt" else "labelled garments"
            self._say(f"nothing to measure {metric} on: the {report.num_images} labelled images have no {what}"
                      + (" (choose mAP_box, or label landmarks)" if report.metric == "map_pt" else ""), error=True)
            return
        self.report = report
        self.show_report(report)
        skipped = self._session.errors if self._session is not None else []
        best = " · ".join(f"{LABELS[n]} {getattr(report.best, n):g}" for n in LABELS)
        text = (f"{report.num_images} images: {metric} {getattr(report.best_result, report.metric):.3f} at best "
                f"({best}), {getattr(report.base_result, report.metric):.3f} now")
        if skipped:
            text += f"; {len(skipped)} images left out ({skipped[0]})"
        self._say(text)
        self.apply_button.setEnabled(True)
        self.refresh_choices()

    def show_report(self, report: TuningReport) -> None:
        """Draw the curves and the heatmap of ``report``."""
        for name, plot in self.plots.items():
            result = report.sweeps.get(name)
            plot.setVisible(result is not None)
            if result is not None:
                plot.show_result(result.values[0], {"map_pt": result.map_pt, "map_box": result.map_box},
                                 float(getattr(report.base, name)))
        self.heatmap.setVisible(report.grid is not None)
        if report.grid is not None:
            grid = report.grid
            self.heatmap.show_result(grid.values[0], grid.values[1], grid.table(), report.metric,
                                     (report.base.sigma_center, report.base.sigma_keypoint))

    def apply_best(self) -> None:
        """Load the best measured parameters into the post-processing panel (the canvas re-decodes)."""
        if self.report is None:
            return
        self.window_.params_panel.set_params(self.report.best)
        self.window_.show_info("best tuned parameters applied")

    def _compared(self, comparison: Comparison) -> None:
        self._done()
        self.comparison = comparison
        for row, (_label, a, b) in enumerate(comparison.rows()):
            for column, value in enumerate((a, b, b - a)):
                text = "n/a" if math.isnan(value) else (f"{value:.0f}" if row == len(METRIC_ROWS) else f"{value:.3f}")
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        self._say(f"compared {self.compare_a.currentText()!r} (A) with {self.compare_b.currentText()!r} (B)")

    # -- choices ---------------------------------------------------------------------------------

    def refresh_choices(self) -> None:
        """The compare combos: the current parameters, the model's defaults, the last run's best, presets."""
        names = [CURRENT, DEFAULTS] + ([BEST] if self.report is not None else [])
        names += self.window_.params_panel.presets.names()
        for combo, fallback in ((self.compare_a, CURRENT), (self.compare_b, DEFAULTS)):
            keep = combo.currentText() or fallback
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.setCurrentIndex(max(0, combo.findText(keep)))
            combo.blockSignals(False)

    def choice(self, combo: QComboBox) -> PostprocessParams | None:
        """The parameters a compare combo names."""
        panel = self.window_.params_panel
        name = combo.currentText()
        if name == CURRENT:
            return panel.params()
        if name == DEFAULTS:
            return panel.defaults()
        if name == BEST:
            return self.report.best if self.report is not None else None
        return panel.presets.presets().get(name)


class _StopOnClose(QObject):
    """Stops the view's job when the main window closes (before the window closes its project)."""

    def __init__(self, view: TuningView) -> None:
        super().__init__(view)
        self.view = view

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Close:
            self.view.stop()
        return False


def show_tuning(window, spec: TuningSpec | None = None) -> TuningView:
    """Show the window's tuning view (created, in a floating dock, on first use) and return it."""
    view = getattr(window, "tuning_view", None)
    if view is None:
        view = TuningView(window, spec)
        dock = QDockWidget("Tuning", window)
        dock.setObjectName("Tuning")
        dock.setWidget(view)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        dock.setFloating(True)  # plots need room the review layout does not have
        dock.resize(1150, 780)
        window.tuning_view, window.tuning_dock = view, dock
    window.tuning_dock.show()
    window.tuning_dock.raise_()
    view.refresh_choices()
    return view

