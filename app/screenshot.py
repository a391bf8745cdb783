"""Render the main window offscreen on the demo images and save a PNG (for the README):

    python -m deepmark.app.screenshot docs/screenshot.png [--model M] [--image N] [--heatmap center|group:K|off]
                             [--threshold T] [--size WxH] [--refine]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _wait_for_detections(app, window, timeout_s: float = 60.0) -> None:
    """Let the image paint and its detections arrive: the network runs in the background and the decode
    follows the paint, so the picture shows what a user sees once the model has answered."""
    deadline = time.monotonic() + timeout_s
    session = window.session
    while time.monotonic() < deadline and (session._pending or window.canvas._after_paint
                                           or not (session.detections or session.model_problem)):
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()


def _wait_for_refinement(app, window, timeout_s: float = 60.0) -> None:
    """Let the refinement network answer in the background (the panel then says "refined by …")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not window.session.refinement_state().startswith("refined"):
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()


def _wait_for_thumbnails(app, window, timeout_s: float = 20.0) -> None:
    """Let the list paint (which requests its rows' thumbnails) and the workers finish them."""
    deadline = time.monotonic() + timeout_s
    for _ in range(3):
        app.processEvents()
    while time.monotonic() < deadline and not window.image_model.loader.idle():
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepmark.app.screenshot")
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--model", help="model file (default: the bundled model)")
    parser.add_argument("--image", type=int, default=0, help="row of the demo image to show (0-based)")
    parser.add_argument("--heatmap", default="center", help="'off', 'center' or 'group:K'")
    parser.add_argument("--size", default="1400x860", help="window size WxH")
    parser.add_argument("--threshold", type=float, default=0.25, help="score threshold shown (a readable picture)")
    parser.add_argument("--refine", action="store_true",
                        help="landmark refinement on, with the decoder's landmarks shown beside the refined ones")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display needed

    from PySide6.QtWidgets import QApplication

    from deepmark.app.main import build_window, collect_garbage_in_gui_thread, parse_args

    app = QApplication.instance() or QApplication([sys.argv[0]])
    collect_garbage_in_gui_thread()
    # the defaults, not the last session's settings: the same picture on every machine (nor saved on close)
    window = build_window(parse_args(["--demo"] + (["--model", args.model] if args.model else [])), use_settings=False)
    width, height = (int(v) for v in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    from dataclasses import replace

    window.params_panel.set_params(replace(window.params(), score_threshold=args.threshold))
    window.select_row(args.image)
    _wait_for_detections(app, window)
    window.redecode()
    if args.refine:
        window.params_panel.before.setChecked(True)
        window.params_panel.refine.setChecked(True)
        _wait_for_refinement(app, window)
    if args.heatmap != "off":
        source, _, index = args.heatmap.partition(":")
        window.heatmap_panel.select(source, int(index) if index else None)
    app.processEvents()
    window.canvas.zoom_fit()
    _wait_for_thumbnails(app, window)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(args.out)):
        print(f"{args.out}: cannot write the PNG", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({window.statusBar().currentMessage() or 'ok'})")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
