"""Render the "Assisted correction" pictures of docs/app.md offscreen, driving the app as a user does:

    .venv/bin/python docs/assist_screenshots.py docs

- ``app-assist-box.png``: left, a garment's box drawn with the category template (no model); right, the same
  box with the default model's heatmaps (filled discs: on a peak, visible; rings: template, occluded);
- ``app-assist-snap.png``: a landmark being Shift-dragged, its group heatmap shown faintly;
- ``app-assist-refit.png``: left, a drawn garment; right, after one landmark was dragged onto its place
  with re-fit on (the template re-fitted to it and to the landmarks on peaks).

The demo images without their labels (a fresh project), so only the garment being worked on is drawn.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt  # noqa: E402
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

IMAGE = 2  # demo image row
SIZE = (1200, 800)
PANEL = 440  # px: each half of a side-by-side picture fits this square (the PNGs stay under 300 kB)


def _send(view, kind, scene_pos: QPointF, buttons, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    viewport = view.viewport()
    pos = QPointF(view.mapFromScene(scene_pos))
    QApplication.sendEvent(viewport, QMouseEvent(kind, pos, viewport.mapToGlobal(pos), Qt.MouseButton.LeftButton,
                                                 buttons, modifiers))


def _settle(app) -> None:
    for _ in range(5):
        app.processEvents()


def _window(app, project, model: bool):
    from deepmark.app.window import MainWindow
    from deepmark.core.inference.detector import default_model_path

    window = MainWindow(background_network=False)
    window.remember_settings = False
    window.resize(*SIZE)
    window.show()
    if model:
        window.set_model_path(default_model_path())
    window.set_project(project)
    window.select_row(IMAGE)
    window.canvas.show_detections = False
    window.session.events.emit("detections")
    _settle(app)
    return window


def _zoom(window, box: np.ndarray, app) -> None:
    pad = 0.25 * float(max(box[2] - box[0], box[3] - box[1]))
    window.canvas.fitInView(QRectF(box[0] - pad, box[1] - pad, box[2] - box[0] + 2 * pad, box[3] - box[1] + 2 * pad),
                            Qt.AspectRatioMode.KeepAspectRatio)
    window.canvas.fit_mode = False
    window.canvas._zoom_changed()
    _settle(app)


def _add(window, box, category_id: int, app) -> int:
    aid = window.editor.add_item(np.asarray(box, np.float64), category_id)
    _settle(app)
    window.canvas.clear_selection()
    _settle(app)
    return aid


def _grab(window) -> QImage:
    window.canvas.legend.hide()
    return window.canvas.grab().toImage()


def _side_by_side(left: QImage, right: QImage, captions: tuple[str, str], out: Path) -> None:
    width = PANEL
    left = left.scaled(PANEL, PANEL, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    right = right.scaled(PANEL, PANEL, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    bar = 26
    canvas = QImage(2 * width + 6, max(left.height(), right.height()) + bar, QImage.Format.Format_RGB32)
    canvas.fill(QColor(45, 45, 48))
    painter = QPainter(canvas)
    painter.drawImage(0, bar, left)
    painter.drawImage(width + 6, bar, right)
    painter.setPen(QColor(255, 255, 255))
    for x, text in ((8, captions[0]), (width + 14, captions[1])):
        painter.drawText(x, 18, text)
    painter.end()
    canvas.save(str(out))


def main(folder: str) -> int:
    from deepmark.core.formats.df2 import read_df2_annotations
    from deepmark.core.store import Project
    from deepmark.core.studio.display import demo_folder, open_inputs

    out = Path(folder)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    work = Path(tempfile.mkdtemp(prefix="deepmark-assist-shots-"))
    try:
        shutil.copytree(demo_folder() / "image", work / "images")
        labels, _ = read_df2_annotations(demo_folder() / "annos")
        with Project.create(work / "shots.deepmark", root=work) as project:
            open_inputs(project, [work / "images"])
            # 1. a drawn box: template alone, then the heatmaps
            plain = _window(app, project, model=False)
            image_id = int(Path(plain.session.record.path).stem)
            label = max(labels[image_id], key=lambda i: np.prod(i.box[2:] - i.box[:2]))
            _add(plain, label.box, label.category_id, app)
            _zoom(plain, label.box, app)
            left = _grab(plain)
            plain.undo_stack.undo()
            plain.close()
            window = _window(app, project, model=True)
            aid = _add(window, label.box, label.category_id, app)
            _zoom(window, label.box, app)
            right = _grab(window)
            _side_by_side(left, right, ("no model: the category template",
                                        "with the model: filled = on a peak, rings = template"),
                          out / "app-assist-box.png")

            # 2. a Shift-drag over the faint group heatmap
            item = window.session.item(aid)
            idx = int(np.flatnonzero(item.landmarks[:, 2] == 2)[0])
            start = QPointF(*item.landmarks[idx, :2])
            end = start + QPointF(6.0, 5.0)
            shift = Qt.KeyboardModifier.ShiftModifier
            _send(window.canvas, QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton, shift)
            _send(window.canvas, QEvent.Type.MouseMove, end, Qt.MouseButton.LeftButton, shift)
            _settle(app)
            window.canvas.grab().toImage().scaled(PANEL + 100, PANEL + 100, Qt.AspectRatioMode.KeepAspectRatio,
                                                  Qt.TransformationMode.SmoothTransformation).save(
                str(out / "app-assist-snap.png"))
            _send(window.canvas, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton, shift)
            _settle(app)
            window.undo_stack.undo()
            window.canvas.clear_selection()
            _settle(app)

            # 3. a fix and its re-fit
            before = _grab(window)
            item = window.session.item(aid)
            free = np.flatnonzero((item.landmarks[:, 2] == 1) & (label.landmarks[:, 2] > 0))
            error = np.hypot(*(item.landmarks[free, :2] - label.landmarks[free, :2]).T)
            idx = int(free[np.argmax(error)])
            window.editor.move_landmarks([(aid, idx, tuple(label.landmarks[idx, :2]))])
            _settle(app)
            window.canvas.clear_selection()
            _settle(app)
            after = _grab(window)
            _side_by_side(before, after, ("drawn: rings are the template",
                                          f"landmark {idx + 1} dragged into place: the rings re-fitted"),
                          out / "app-assist-refit.png")
            print(window.statusBar().currentMessage())
            window.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("app-assist-box.png", "app-assist-snap.png", "app-assist-refit.png"):
        print(f"wrote {out / name} ({(out / name).stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs"))
