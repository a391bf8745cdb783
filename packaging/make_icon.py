"""Render the application icon's PNG from its SVG (run after editing the SVG; both are committed):

    python packaging/make_icon.py [--size 256]

writes ``resources/icons/deepmark-<size>.png`` with Qt's SVG renderer (no display needed). The PNG is
what the window and the desktop entry use where an SVG cannot be read (no Qt SVG plugin, some docks).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"


def render(svg: Path, out: Path, size: int) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    if not image.save(str(out)):
        raise SystemExit(f"{out}: cannot write the PNG")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python packaging/make_icon.py")
    parser.add_argument("--size", type=int, default=256, help="PNG width and height in pixels")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # painting on a QImage needs one
    out = ICONS / f"deepmark-{args.size}.png"
    render(ICONS / "deepmark.svg", out, args.size)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
