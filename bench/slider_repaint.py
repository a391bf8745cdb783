"""Benchmark of the app's slider → repainted canvas latency (a script, not a test).

    .venv/bin/python bench/slider_repaint.py [--moves 60] [--markdown]

Builds the real ``MainWindow`` offscreen (``QT_QPA_PLATFORM=offscreen``: Qt paints into its raster
backing store exactly as on screen, only the final blit to a display is skipped) on the demo project,
with the bundled default model, and a 512 × 512 image (a demo image scaled up, added to the project).
Then it moves the α slider of the post-processing panel the way a user's drag does
(``QSlider.setValue`` → ``ParamsPanel.changed`` → the window's 5 ms coalescing timer →
``MainWindow.redecode`` → ``Canvas.set_detections``) and, per move, times from ``setValue`` until the
canvas viewport has finished its next paint. Reported per setting: median and p95 of that latency and
its parts: decode (``LiveModel.decode``), rebuilding the detection layer (``Canvas.set_detections``
without the decode) and painting the viewport.

Settings:
- *ordinary*: the shipped model at its own 256² network input (the 512² image letterboxed to it), all
  four techniques and NMS, score threshold 0.1;
- *ordinary, 512² heads*: the same with the network run at 512² (128 × 128 heads, 4× the decode work);
- *20 garments*: 512² heads, score threshold 0 and at most 20 detections (always 20, ~550 landmarks),
  plus 20 stored items (the 20 detections accepted) drawn under them: 40 garments on screen.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QEvent, QObject  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from deepmark.app.window import MainWindow  # noqa: E402
from deepmark.core.domain.structures import PostprocessParams  # noqa: E402
from deepmark.core.store.bulk import item_from_detection  # noqa: E402
from deepmark.core.studio.display import demo_folder, open_demo_project  # noqa: E402

SIZE = 512


class PaintClock(QObject):
    """Event filter on the viewport: the time each paint event starts (the end is taken by the caller
    once the event loop returns, which is right after the paint)."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.starts.append(time.perf_counter())
        return False


class Probe:
    """Wraps ``LiveModel.decode`` and ``Canvas.set_detections`` on the instances to time them."""

    def __init__(self, window: MainWindow) -> None:
        self.decode_ms = 0.0
        self.layer_ms = 0.0
        self.layer_done: float | None = None
        decode, set_detections = window.session.model.decode, window.canvas.set_detections

        def timed_decode(heads, params):
            start = time.perf_counter()
            out = decode(heads, params)
            self.decode_ms = (time.perf_counter() - start) * 1000
            return out

        def timed_layer(detections):
            start = time.perf_counter()
            set_detections(detections)
            self.layer_done = time.perf_counter()
            self.layer_ms = (self.layer_done - start) * 1000

        window.session.model.decode = timed_decode
        window.canvas.set_detections = timed_layer


def move_once(app: QApplication, window: MainWindow, probe: Probe, clock: PaintClock, steps: int) -> dict[str, float]:
    """One slider move; returns total / decode / layer / paint milliseconds."""
    probe.layer_done = None
    clock.starts.clear()
    slider = window.params_panel.numbers["alpha"].slider
    start = time.perf_counter()
    slider.setValue(steps)
    deadline = start + 5.0
    while probe.layer_done is None and time.perf_counter() < deadline:
        app.processEvents()
    # the scene schedules the viewport update: process events until a paint has run after the rebuild
    while not [t for t in clock.starts if t >= probe.layer_done] and time.perf_counter() < deadline:
        app.processEvents()
    end = time.perf_counter()
    paint_start = min(t for t in clock.starts if t >= probe.layer_done)
    return {"total": (end - start) * 1000, "decode": probe.decode_ms, "layer": probe.layer_ms,
            "paint": (end - paint_start) * 1000}


def make_inputs(folder: Path) -> list[Path]:
    """The demo images scaled to 512 × 512 (their own content: real garments for the model)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for source in sorted((demo_folder() / "image").glob("*.jpg"))[:2]:
        target = folder / f"{source.stem}-{SIZE}.png"
        Image.open(source).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC).save(target)
        out.append(target)
    return out


def run_setting(app: QApplication, window: MainWindow, image_path: Path, params: PostprocessParams,
                network_size: int | None, stored: int, moves: int) -> tuple[dict[str, list[float]], int, int]:
    project = window.session.project
    row = next(r for r in range(window.image_model.rowCount())
               if window.image_model.record(r).path.endswith(image_path.name))
    record = window.image_model.record(row)
    window.params_panel.set_params(params)
    if network_size is not None:
        from deepmark.core.imaging.read import read_image

        model = window.session.model
        heads = model.detector.heads(read_image(image_path), model.tta, (network_size,) * 2)
        model.cache.put(record.id, heads, model.tta.key())
    window.select_row(row)
    app.processEvents()
    window.load_image(window.image_model.record(row))  # re-load with the parameters above
    if stored:
        for item in project.annotations.for_image(record.id):
            project.annotations.delete_item(item.id)
        for det in window.session.detections[:stored]:
            project.annotations.add_item(record.id, item_from_detection(det), origin="predicted")
        window.reload_items()
    window.canvas.zoom_fit()
    app.processEvents()
    probe = Probe(window)
    clock = PaintClock()
    window.canvas.viewport().installEventFilter(clock)
    times: dict[str, list[float]] = {"total": [], "decode": [], "layer": [], "paint": []}
    # α from 0.50 to 0.95 and back: every move changes the scores (and, at threshold 0.1, which survive)
    values = [500 + 10 * min(i % 90, 90 - i % 90) for i in range(moves + 5)]  # consecutive values differ
    for i, value in enumerate(values):
        sample = move_once(app, window, probe, clock, value)
        if i >= 5:  # the first moves warm caches (fonts, pens)
            for key, ms in sample.items():
                times[key].append(ms)
    window.canvas.viewport().removeEventFilter(clock)
    # on screen: the detections' landmarks and the stored items' (all of them are drawn)
    landmarks = sum(len(d.landmarks) for d in window.session.detections) + len(window.canvas.landmark_items)
    del window.session.model.decode, window.canvas.set_detections  # the class methods again
    return times, len(window.session.detections), landmarks


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=60)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="deepmark-bench-"))
    project, _ = open_demo_project(tmp / "project")
    window = MainWindow(PostprocessParams.all_techniques())
    window.resize(1400, 860)
    window.show()
    if not window.set_model_path(None):
        sys.exit(f"the default model could not be loaded: {window.statusBar().currentMessage()}")
    window.set_project(project)
    inputs = make_inputs(tmp / "inputs")
    window.open_paths(inputs)
    while window.adding.task is not None:  # images are added in the background
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()

    settings = [
        ("ordinary (256² network input)", PostprocessParams.all_techniques(), None, 0),
        ("ordinary, 512² heads", PostprocessParams.all_techniques(), SIZE, 0),
        ("20 garments (+ 20 stored), 512² heads",
         PostprocessParams.all_techniques(score_threshold=0.0, candidate_floor=0.0, max_detections=20), SIZE, 20),
    ]
    rows = []
    for k, (name, params, network_size, stored) in enumerate(settings):
        times, count, landmarks = run_setting(app, window, inputs[k % len(inputs)], params, network_size, stored,
                                              args.moves)
        rows.append((name, count, landmarks, times))

    print(f"# slider → repaint, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.moves} moves, canvas {window.canvas.viewport().width()}×{window.canvas.viewport().height()}")
    if args.markdown:
        print("| setting | detections | landmarks on screen | total median ms | total p95 ms | decode ms | layer ms "
              "| paint ms |")
        print("|---|---|---|---|---|---|---|---|")
    for name, count, landmarks, times in rows:
        med = {k: statistics.median(v) for k, v in times.items()}
        if args.markdown:
            print(f"| {name} | {count} | {landmarks} | {med['total']:.1f} | {p95(times['total']):.1f} | "
                  f"{med['decode']:.1f} | {med['layer']:.1f} | {med['paint']:.1f} |")
        else:
            print(f"{name:42s} {count:3d} det {landmarks:4d} lm  total median {med['total']:6.1f} ms "
                  f"p95 {p95(times['total']):6.1f}  decode {med['decode']:5.1f}  layer {med['layer']:5.1f}  "
                  f"paint {med['paint']:5.1f}")
    window.close()
    project.close()


if __name__ == "__main__":
    main()
