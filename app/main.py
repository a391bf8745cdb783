"""``deepmark-studio [--demo] [--project P] [--model M] [paths...]``: start the desktop app."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.errors import DeepMarkError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deepmark-studio", description="Review and correct DeepMark detections.")
    parser.add_argument("--demo", action="store_true", help="open the bundled demo images in a temporary project")
    parser.add_argument("--project", help="project file (created when absent) or PostgreSQL URL")
    parser.add_argument("--model", help="model file (.onnx or .pt checkpoint); default: the bundled model")
    parser.add_argument("paths", nargs="*", help="image files or folders (DeepFashion2 folders with labels) to add")
    return parser.parse_args(argv)


def open_project(args: argparse.Namespace):
    """The project the arguments name: the demo's, ``--project``, or the user's default project."""
    from core.store import Project
    from core.studio import open_demo_project

    if args.demo:
        return open_demo_project()[0]
    return Project.open(args.project, create=True)  # None: the default project in the user data folder


def build_window(args: argparse.Namespace):
    """The main window for the arguments (errors are shown in the window, never raised)."""
    from app.window import MainWindow

    window = MainWindow()
    window.set_model_path(args.model)  # before the first image, so it is detected at once
    try:
        window.set_project(open_project(args))
    except DeepMarkError as exc:
        window.show_error(f"cannot open the project: {exc}", dialog=True)
        return window
    if args.paths:
        window.open_paths(args.paths)
    return window


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("DeepMark Studio")
    app.setOrganizationName("DeepMark")
    window = build_window(args)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
