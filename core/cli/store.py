"""``deepmark`` subcommands of the annotation store (registered by ``deepmark.core.cli.main.build_parser``)::

    deepmark project init [PROJECT] [--root DIR]     create a project (SQLite file or PostgreSQL URL)
    deepmark project info [--project P]              where it is, schema revision, root
    deepmark import SOURCE [--format F] [--images DIR] [--status S]
                                                     DF2 folder, COCO json, predict output, image folder
    deepmark export OUT [--status accepted] [--val-fraction 0.1] [--images copy|hardlink|symlink|none]
    deepmark status [--json]                         counts by status and category, corrections

The project is ``--project`` (a ``.deepmark`` file or a ``postgresql://`` URL), else ``$DEEPMARK_PROJECT``,
else the default file in the user data folder. Exit status: 0 success, 1 some input files failed,
2 nothing usable / bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2
FORMATS = ("auto", "df2", "coco", "predictions", "images")


def _target(args) -> str | None:
    return getattr(args, "project", None) or os.environ.get("DEEPMARK_PROJECT") or None


def _open(args):
    from deepmark.core.store import Project

    return Project.open(_target(args), root=getattr(args, "root", None))


def _progress(quiet: bool, unit: str):
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(unit=unit, dynamic_ncols=True, file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
    return update, bar.close


def _report(errors) -> None:
    for error in errors:
        print(f"error: {error}", file=sys.stderr)


def cmd_project_init(args) -> int:
    from deepmark.core.store import Project

    with Project.create(args.target or _target(args), root=args.root) as project:
        print(f"created project {project.where} (schema {project.schema_revision()}, image root {project.root})")
    return EXIT_OK


def cmd_project_info(args) -> int:
    with _open(args) as project:
        print(f"project   {project.where}\nback end  {project.dialect}\nschema    {project.schema_revision()}\n"
              f"root      {project.root}\nimages    {project.images.count()}")
    return EXIT_OK


def detect_format(source: Path) -> str:
    """'df2', 'coco', 'predictions' or 'images' for an import source (see ``deepmark import --help``)."""
    from deepmark.core.imaging.read import IMAGE_SUFFIXES

    if source.is_file():
        if source.suffix.lower() in IMAGE_SUFFIXES:
            return "images"
        try:
            head = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return "coco"  # let the COCO reader report what is wrong
        return "predictions" if isinstance(head, list) else "coco"
    if (source / "annos").is_dir() or any((sub / "annos").is_dir() for sub in source.iterdir() if sub.is_dir()):
        return "df2"
    first = next(iter(sorted(source.glob("*.json"))), None)
    if first is not None:
        try:
            doc = json.loads(first.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            doc = {}
        if isinstance(doc, dict) and ("image_file" in doc or any(
                isinstance(v, dict) and "score" in v for v in doc.values())):
            return "predictions"
        return "df2"
    return "images"


def cmd_import(args) -> int:
    from deepmark.core.cli.params import read_params_file
    from deepmark.core.errors import DeepMarkError
    from deepmark.core.store import interchange

    source = Path(args.source)
    if not source.exists():
        raise DeepMarkError(f"{source}: no such file or folder", path=source)
    fmt = detect_format(source) if args.format == "auto" else args.format
    params = asdict(read_params_file(args.params)) if fmt == "predictions" and args.params else None
    with _open(args) as project:  # first: a project refused at open leaves no progress bar behind
        progress, close = _progress(args.quiet, "files")
        try:
            if fmt == "df2":
                report = interchange.import_df2(project, source, status=args.status, progress=progress)
            elif fmt == "coco":
                report = interchange.import_coco(project, source, args.images, status=args.status, progress=progress)
            elif fmt == "predictions":
                report = interchange.import_predictions(
                    project, source, run_name=args.run_name, model_path=args.model, params=params,
                    images_dir=args.images, seed_annotations=not args.no_seed, seed_threshold=args.seed_threshold,
                    progress=progress)
            else:
                report = interchange.import_images(project, [source], status=args.status, progress=progress)
        finally:
            close()
    _report(report.errors)
    for note in report.notes:  # imported, but a default was assumed (a COCO file without DF2 attributes): not an error
        print(f"note: {note}", file=sys.stderr)
    print(f"{fmt} import into {project.where}: {report.summary()}")
    if report.errors and not (report.images_added or report.items_added or report.predictions_added
                              or report.unchanged or report.set_beside or report.filled):
        return EXIT_FAILED
    return EXIT_PARTIAL if report.errors else EXIT_OK


def cmd_export(args) -> int:
    from deepmark.core.store.interchange import export_dataset
    from deepmark.core.util.atomic import writing_to

    statuses = tuple(args.status or ("accepted",))
    with _open(args) as project:  # first: a project refused at open leaves no progress bar behind
        by_status = project.images.counts_by_status()
        if not any(by_status.get(status, 0) for status in statuses):
            held = ", ".join(f"{count} {status}" for status, count in sorted(by_status.items()) if count) or "none"
            print(f"error: nothing to export: no image of {project.where} has status {' or '.join(statuses)} "
                  f"(it holds: {held}); choose statuses with --status (e.g. --status new), or accept images "
                  f"in the app first. Nothing was written.", file=sys.stderr)
            return EXIT_PARTIAL
        kept = "; the previous export is kept" if Path(args.out).exists() else ""
        progress, close = _progress(args.quiet, "images")
        try:
            with writing_to(args.out, kept + "; nothing partial is left"):
                report = export_dataset(project, args.out, statuses=statuses,
                                        val_fraction=args.val_fraction, seed=args.seed, images=args.images,
                                        coco=not args.no_coco, overwrite=args.overwrite, progress=progress)
        finally:
            close()
    _report(report.errors)
    print(report.summary())
    return EXIT_PARTIAL if report.errors or not sum(report.images.values()) else EXIT_OK


def cmd_status(args) -> int:
    from deepmark.core.store import project_status

    with _open(args) as project:
        status = project_status(project)
        print(json.dumps(status.to_dict(), indent=1) if args.json else f"{project.where}\n{status.table()}")
    return EXIT_OK


def _add_project_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="project file (.deepmark) or postgresql:// URL "
                                          "(default: $DEEPMARK_PROJECT, else the user data folder's project)")
    parser.add_argument("--root", help="folder the project's image paths are relative to (overrides the stored one)")


def add_store_commands(sub) -> None:
    """Register ``project``, ``import``, ``export`` and ``status`` on the ``deepmark`` subparsers."""
    from deepmark.core.store.models import STATUSES

    p = sub.add_parser("project", help="create or describe an annotation project")
    psub = p.add_subparsers(dest="project_command", required=True)
    q = psub.add_parser("init", help="create a project: a SQLite file (default) or an empty PostgreSQL database")
    q.add_argument("target", nargs="?", help="project file or postgresql:// URL (default: --project, "
                                             "$DEEPMARK_PROJECT, else the user data folder)")
    q.add_argument("--project", help=argparse.SUPPRESS)
    q.add_argument("--root", help="folder image paths are relative to (default: the project file's folder)")
    q.set_defaults(func=cmd_project_init)
    q = psub.add_parser("info", help="where the project is, its schema revision and image root")
    _add_project_option(q)
    q.set_defaults(func=cmd_project_info)

    p = sub.add_parser("import", help="import DF2 annotations, COCO keypoints, predictions or images")
    p.add_argument("source", help="DF2 folder (annos/ + image/, or train/ validation/), COCO json, "
                                  "deepmark predict output folder or results json, or an image folder")
    p.add_argument("--format", choices=FORMATS, default="auto", help="source format (default: detected)")
    p.add_argument("--images", help="image folder (COCO: of file_name; predictions: of image_file, added if new)")
    p.add_argument("--status", choices=STATUSES, default="new", help="review status of new images")
    p.add_argument("--run-name", help="predictions: name of the model run (default: the source's name)")
    p.add_argument("--model", help="predictions: the model file used (hashed into the run)")
    p.add_argument("--params", help="predictions: JSON file of the post-processing parameters used")
    p.add_argument("--no-seed", action="store_true", help="predictions: do not turn them into items to correct")
    p.add_argument("--seed-threshold", type=float, default=0.3, help="predictions: lowest score made an item")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_project_option(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="export reviewed images for retraining (DF2 JSON + COCO, train/val split)")
    p.add_argument("out", help="folder to write (must be absent or empty unless --overwrite)")
    p.add_argument("--status", action="append", choices=STATUSES, help="statuses to export (default: accepted)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of images in validation/")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--images", choices=("copy", "hardlink", "symlink", "none"), default="copy")
    p.add_argument("--no-coco", action="store_true", help="skip the 294-keypoint COCO json files")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    p.add_argument("--quiet", action="store_true")
    _add_project_option(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("status", help="images by status, items by category, corrected landmarks, edits")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_project_option(p)
    p.set_defaults(func=cmd_status)
