"""Benchmark of the next-image key (a script, not a test): D → the next image repainted on the canvas.

    .venv/bin/python bench/next_image.py [--images 24] [--markdown]

The real ``MainWindow`` offscreen with the bundled default model, a project of 512 × 512 images (the demo
images scaled up, each made distinct so that no cache knows it), a fresh disk heads cache. Per press of D,
the time from the key to the end of the canvas's first paint (the new image shown), and, apart, to the end
of the first paint that draws its detections. Settings:

- *never seen, nothing ahead*: computing ahead switched off, every image new to every cache: the network
  runs in the background after the image is shown;
- *computed ahead*: the app as it runs — while the user looks at an image (here: until its detections and
  the next two images' heads are there), the next ones are computed in the background;
- *while a batch job runs*: Model → Run on all images working at the same time (computing ahead off).
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
os.environ["DEEPMARK_CACHE_DIR"] = tempfile.mkdtemp(prefix="deepmark-bench-cache-")  # nothing cached before

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from deepmark.app.canvas import Canvas  # noqa: E402
from deepmark.app.jobs import jobs_of  # noqa: E402
from deepmark.app.window import MainWindow  # noqa: E402
from deepmark.core.store import Project  # noqa: E402
from deepmark.core.studio.display import demo_folder  # noqa: E402

SIZE = 512


class PaintClock:
    """The end of every canvas paint, and whether it drew detections: ``paints`` [(perf_counter s, drew
    detections)]. Wraps ``Canvas.paintEvent`` (the time is taken after the paint itself, not when the event
    loop returns, which may have run more work after it)."""

    def __init__(self) -> None:
        self.paints: list[tuple[float, bool]] = []
        self._real = Canvas.paintEvent
        clock = self

        def paint_event(canvas, event) -> None:
            clock._real(canvas, event)
            clock.paints.append((time.perf_counter(), bool(canvas.detection_graphics())))

        Canvas.paintEvent = paint_event

    def close(self) -> None:
        Canvas.paintEvent = self._real


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` distinct 512² images from the demo's (mirrored, rotated and tinted versions)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((demo_folder() / "image").glob("*.jpg"))
    out = []
    for k in range(count):
        image = Image.open(sources[k % len(sources)]).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        if (k // len(sources)) % 2:
            image = ImageOps.mirror(image)
        tint = np.asarray(image, np.float32) * (0.85 + 0.05 * (k % 4))
        path = folder / f"{k:03d}.png"
        Image.fromarray(np.clip(tint, 0, 255).astype(np.uint8)).save(path)
        out.append(path)
    return out


def press_next(app: QApplication, window: MainWindow, clock: PaintClock) -> tuple[float, float]:
    """D, then (ms to the end of the first paint of the new image, ms to the end of the first paint that
    shows its detections)."""
    modal = QApplication.activeModalWidget()
    if modal is not None:
        sys.exit(f"a dialog is open: {getattr(modal, 'text', lambda: modal)()}")
    before, row = len(clock.paints), window.current_row()
    start = time.perf_counter()
    QTest.keyClick(window, Qt.Key.Key_D)
    if window.current_row() == row:
        sys.exit(f"D did not move from row {row} (of {window.image_model.rowCount()})")
    while len(clock.paints) == before:
        app.processEvents()
        if time.perf_counter() - start > 30:
            sys.exit(f"no repaint within 30 s of D at row {row}")
    shown = clock.paints[before][0]
    while not any(drew for _, drew in clock.paints[before:]):
        app.processEvents()
        time.sleep(0.001)
        if time.perf_counter() - start > 60:
            sys.exit(f"no detections drawn within 60 s of D at row {row}")
    detected = next(when for when, drew in clock.paints[before:] if drew)
    return (shown - start) * 1000, (detected - start) * 1000


def run(window: MainWindow, app: QApplication, clock: PaintClock, presses: int, ahead: bool,
        batch: bool) -> tuple[list, list]:
    session = window.session
    real_prefetch = session.prefetch
    if not ahead:
        session.prefetch = lambda records: None
    if batch:
        jobs_of(window).start(window.session.project.images.ids())
    shown, detected = [], []
    window.setFocus()
    for _ in range(presses):
        a, b = press_next(app, window, clock)
        shown.append(a)
        detected.append(b)
        if ahead:  # the user looks at the image while the next ones are computed (handed over after the paint)
            while session._pending or window.canvas._after_paint:
                app.processEvents()
                time.sleep(0.005)
    if batch:
        jobs_of(window).stop()
    session.prefetch = real_prefetch
    return shown, detected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="deepmark-bench-"))
    images = make_images(tmp / "images", args.images)
    project = Project.create(tmp / "p.deepmark", root=tmp)
    clock = PaintClock()  # before the window: PySide binds a widget's Python overrides when it is made
    window = MainWindow()
    window.resize(1400, 860)
    window.show()
    if not window.set_model_path(None):
        sys.exit(f"the default model could not be loaded: {window.statusBar().currentMessage()}")
    window.set_project(project)
    window.open_paths(images)
    while window.adding.task is not None:
        app.processEvents()
        time.sleep(0.01)
    third = (args.images - 1) // 3
    settings = [("never seen, nothing ahead", False, False), ("computed ahead", True, False),
                ("while a batch job runs", False, True)]
    rows = []
    for name, ahead, batch in settings:
        shown, detected = run(window, app, clock, third, ahead, batch)
        rows.append((name, shown, detected))
    print(f"# next image (D) at {SIZE}², {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{third} presses per setting")
    print("| setting | image shown median ms | p95 ms | detections on screen median ms | p95 ms |")
    print("|---|---|---|---|---|")
    for name, shown, detected in rows:
        print(f"| {name} | {statistics.median(shown):.1f} | {np.percentile(shown, 95):.1f} | "
              f"{statistics.median(detected):.1f} | {np.percentile(detected, 95):.1f} |")
    window.close()
    project.close()


if __name__ == "__main__":
    main()
