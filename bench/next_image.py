"""Benchmark of the next-image key (a script, not a test): D → the next image repainted on the canvas.

    .venv/bin/python bench/next_image.py [--images 24] [--markdown]

The real ``MainWindow`` offscreen with the bundled default model, a project of 512 × 512 images (the demo
images scaled up, each made distinct so that no cache knows it), a fresh disk heads cache. Per press of D,
the time from the key to the end of the canvas viewport's next paint (the new image shown), and, apart,
until its detections are on screen. Settings:

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
from PySide6.QtCore import QEvent, QObject, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from deepmark.app.jobs import jobs_of  # noqa: E402
from deepmark.app.window import MainWindow  # noqa: E402
from deepmark.core.store import Project  # noqa: E402
from deepmark.core.studio.display import demo_folder  # noqa: E402

SIZE = 512


class PaintClock(QObject):
    """Event filter on the canvas viewport: the time each paint event ends (the filter sees it start; the
    caller reads the time once the event loop has delivered it)."""

    def __init__(self) -> None:
        super().__init__()
        self.painted = 0

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.painted += 1
        return False


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
    """D, then (ms to the new image painted, ms to its detections on screen)."""
    before = clock.painted
    start = time.perf_counter()
    QTest.keyClick(window, Qt.Key.Key_D)
    while clock.painted == before:
        app.processEvents()
    shown = time.perf_counter()
    while not window.session.detections and time.perf_counter() - start < 60:
        app.processEvents()
        time.sleep(0.001)
    return (shown - start) * 1000, (time.perf_counter() - start) * 1000


def run(window: MainWindow, app: QApplication, presses: int, ahead: bool, batch: bool) -> tuple[list, list]:
    clock = PaintClock()
    window.canvas.viewport().installEventFilter(clock)
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
        if ahead:  # the user looks at the image while the next ones are computed
            while session._pending:
                app.processEvents()
                time.sleep(0.005)
    if batch:
        jobs_of(window).stop()
    session.prefetch = real_prefetch
    window.canvas.viewport().removeEventFilter(clock)
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
        shown, detected = run(window, app, third, ahead, batch)
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
