"""Import into and export out of a project: DeepFashion2 per-image JSON, the 294-keypoint COCO json,
``deepmark predict`` output, plain image folders; export for retraining (``export_dataset``).

Importing never overwrites a human correction. An image already in the project keeps its items: when
the incoming items are the same nothing happens (a re-import is idempotent), when they differ they are
stored as predictions of an 'import' model run beside the truth, and the annotator decides. Predictions
always go beside the annotations; an image without any item gets its confident predictions as items of
origin 'predicted' to correct from.

Bad input is reported in ``ImportReport.errors``, one line per file (or item), and the rest is imported:

* the file (its image) is skipped: malformed or too deeply nested JSON, unknown category ids, landmark
  counts that do not fit the category, boxes outside the image (by more than ``BOX_TOLERANCE_PX``), boxes
  of zero width or height, a labelled landmark (v > 0) farther outside the image than
  ``LANDMARK_MARGIN`` of its width / height, the same image twice, a missing image file (an annotation
  without an image), an image file that is truncated or corrupt (``check_complete``: end marker, else a
  full decode), and in a DF2 folder an image without an annotation file (nothing to import it with);
* only the item is skipped: an exact duplicate (same category, box, landmarks, attributes, segmentation,
  extra keys) of an earlier item of the same file; the file's other items are imported;
* imported, with a line in ``ImportReport.notes``: DF2 attributes a COCO file lacks (stored as unknown; the
  note names the value a DF2 export writes).

An item's keys that are not DeepFashion2 fields (a team's own ``"annotator"``, ``"quality"``...) are kept
with it as read (``extra``) and written back by both exports; a value JSON cannot hold exactly (NaN,
infinity) skips the file, named.

Files are written in batches, each batch one transaction holding whole images only: a killed import leaves
whole images, and running it again finishes the job. A predictions source is one model run keyed by its
content: importing it again (after a kill, or twice) adds only what the run lacks, and the run is marked
completed only once all is in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from deepmark.core.domain.structures import Detection
from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.formats.df2 import FileError
from deepmark.core.imaging.read import collect_images
from deepmark.core.store import Project
from deepmark.core.store.annotations import item_records
from deepmark.core.store.bulk import checked_item, insert_items, insert_predictions, item_from_detection
from deepmark.core.store.errors import InvalidValueError, StoreError
from deepmark.core.store.exporting import ExportReport, export_dataset
from deepmark.core.store.images import FileFacts, check_status, file_facts
from deepmark.core.store.models import Image, Prediction, utc_now
from deepmark.core.store.predictions import complete_run, file_sha256, new_run, run_of_source
from deepmark.core.store.records import ItemData
from deepmark.core.store.sources import (
    PredictedImage,
    SourceImage,
    df2_files,
    prediction_source_key,
    read_coco_source,
    read_df2_file,
    read_prediction_source,
    unannotated_images,
)

BATCH_SIZE = 200
BOX_TOLERANCE_PX = 1.0
LANDMARK_MARGIN = 0.1
"""How far outside the image a labelled landmark may lie, as a share of the image's width (x) or height (y):
points of a garment cut by the frame may be placed a little beyond it, but not across a tenth of the image."""
Progress = Callable[[int, int], object]

__all__ = ["ExportReport", "ImportReport", "export_dataset", "import_coco", "import_df2", "import_images",
           "import_predictions"]


@dataclass
class ImportReport:
    """What an import did. ``set_beside``: images whose differing incoming items were kept as predictions
    beside the existing truth; ``filled``: images already in the project, without items, that got them."""

    images_added: int = 0
    items_added: int = 0
    unchanged: int = 0
    set_beside: int = 0
    filled: int = 0
    predictions_added: int = 0
    model_run_id: int | None = None
    errors: list[FileError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # imported, but something was not kept or was assumed

    def add(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            setattr(self, key, getattr(self, key) + value)

    def summary(self) -> str:
        parts = [f"{self.images_added} images added", f"{self.items_added} items"]
        if self.predictions_added:
            parts.append(f"{self.predictions_added} predictions (model run {self.model_run_id})")
        if self.filled:
            parts.append(f"{self.filled} existing images filled")
        if self.unchanged:
            parts.append(f"{self.unchanged} unchanged")
        if self.set_beside:
            parts.append(f"{self.set_beside} differing images kept as predictions beside the human truth "
                         f"(model run {self.model_run_id})")
        if self.errors:
            parts.append(f"{len(self.errors)} files or entries failed")
        if self.notes:
            parts.append(f"{len(self.notes)} notes")
        return ", ".join(parts)


def _batches(entries: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(entries), size):
        yield entries[start : start + size]


def _check_inside(items: list[ItemData], facts: FileFacts, where: Path, label: str) -> None:
    """StoreError (for file ``where``, message starting ``label``) naming the first item whose box lies
    outside the image or has no area, or whose labelled landmarks lie far outside (``LANDMARK_MARGIN``)."""
    t = BOX_TOLERANCE_PX
    for k, item in enumerate(items, start=1):
        x1, y1, x2, y2 = item.box
        box = [float(v) for v in item.box]
        if x1 < -t or y1 < -t or x2 > facts.width + t or y2 > facts.height + t:
            raise StoreError(f"{label}: item{k} bounding_box {box} lies outside the {facts.width}×{facts.height} "
                             "image", path=where)
        if x2 <= x1 or y2 <= y1:
            raise StoreError(f"{label}: item{k} bounding_box {box} has zero area", path=where)
        landmarks = np.asarray(item.landmarks, np.float64)
        size = np.array([facts.width, facts.height], np.float64)
        beyond = np.maximum(-landmarks[:, :2], landmarks[:, :2] - size)  # (L, 2) px outside, ≤ 0 inside
        far = (landmarks[:, 2] > 0) & (beyond > LANDMARK_MARGIN * size).any(axis=1)
        if far.any():
            first = int(np.flatnonzero(far)[0])
            raise StoreError(f"{label}: item{k} landmark {first + 1} at {landmarks[first, :2].tolist()} lies far "
                             f"outside the {facts.width}×{facts.height} image ({int(far.sum())} such landmarks)",
                             path=where)


def _without_duplicates(items: list[ItemData], label: str, where: Path) -> tuple[list[ItemData], list[FileError]]:
    """``items`` less exact repeats of an earlier item, and one report line per repeat dropped."""
    kept: list[tuple[int, ItemData]] = []
    dropped = []
    for k, item in enumerate(items, start=1):
        twin = next((j for j, other in kept if other.same_content(item)), None)
        if twin is None:
            kept.append((k, item))
        else:
            dropped.append(FileError(where, f"{label}: item{k} is an exact duplicate of item{twin}; skipped "
                                            "(the other items are imported)", names_path=True))
    return [item for _, item in kept], dropped


def _image_row(stored: str, facts: FileFacts, status: str, source: str | None, pair_id: int | None,
               no_garments: bool = False) -> dict:
    now = utc_now()
    return {"path": stored, "content_hash": facts.content_hash, "size_bytes": facts.size_bytes,
            "width": facts.width, "height": facts.height, "source": source, "pair_id": pair_id, "status": status,
            "created_at": now, "updated_at": now, "version": 1, "no_garments": no_garments}


def _insert_images(session: Session, rows: list[dict]) -> list[int]:
    if not rows:
        return []
    return [int(i) for i in session.scalars(insert(Image).returning(Image.id, sort_by_parameter_order=True), rows)]


def _as_detection(item: ItemData) -> tuple[Detection, dict[str, Any]]:
    """An imported item as a prediction (score 1, landmark score v / 2) plus what accepting it restores
    (its exact visibility, attributes, segmentation and extra keys)."""
    landmarks = np.array(item.landmarks, np.float64)
    visibility = landmarks[:, 2].astype(int).tolist()
    landmarks[:, 2] /= 2.0
    det = Detection(item.category_id, 1.0, 1.0, np.array(item.box, np.float64), landmarks,
                    np.zeros(len(landmarks), bool))
    kept = {**item.attributes, "segmentation": item.segmentation, "visibility": visibility}
    return det, kept | ({"extra": item.extra} if item.extra else {})


# ---------------------------------------------------------------------------------------------
# Annotations (DF2, COCO)


@dataclass
class _Prepared:
    source: SourceImage
    stored: str
    facts: FileFacts
    items: list[ItemData]


def _prepare(project: Project, source: SourceImage, taxonomy: Taxonomy, seen: set[str]
             ) -> tuple[_Prepared, list[FileError]]:
    """The checked image and items to write, and the report lines of duplicate items left out;
    StoreError naming the file (and item) when the image must be skipped."""
    where, label = source.where, source.label
    stored = project.relative_path(source.image_path)
    if stored in seen:
        raise StoreError(f"{label}: image {stored} appears twice in this import (duplicate file name)", path=where)
    facts = file_facts(source.image_path)  # a StoreError about the image file names it
    try:
        items = [checked_item(d, taxonomy, f"{label} item{k}") for k, d in enumerate(source.items, start=1)]
    except InvalidValueError as exc:  # names ``label``; the file is the source's
        raise InvalidValueError(str(exc), path=where) from None
    _check_inside(items, facts, where, label)
    items, dropped = _without_duplicates(items, label, where)
    seen.add(stored)
    return _Prepared(source, stored, facts, items), dropped


def _write_annotated(session: Session, batch: list[_Prepared], status: str, run: dict) -> dict[str, int]:
    """One batch in one transaction: new images with their items; existing ones compared (see module)."""
    counts = {"images_added": 0, "items_added": 0, "unchanged": 0, "set_beside": 0, "filled": 0}
    existing = dict(session.execute(select(Image.path, Image.id).where(Image.path.in_([p.stored for p in batch]))
                                    ).all())
    new = [p for p in batch if p.stored not in existing]
    # an annotation file with no item, imported as accepted, is someone's "no garments here"
    ids = _insert_images(session, [_image_row(p.stored, p.facts, status, p.source.source, p.source.pair_id,
                                              no_garments=status == "accepted" and not p.items) for p in new])
    rows = [(image_id, k, item, "imported", None) for image_id, p in zip(ids, new, strict=True)
            for k, item in enumerate(p.items)]
    insert_items(session, rows)
    counts["images_added"], counts["items_added"] = len(new), len(rows)
    old = [p for p in batch if p.stored in existing]
    current = item_records(session, [existing[p.stored] for p in old]) if old else {}
    for p in old:
        image_id = existing[p.stored]
        have = current[image_id]
        if not have:
            insert_items(session, [(image_id, k, item, "imported", None) for k, item in enumerate(p.items)])
            counts["filled"] += 1
            counts["items_added"] += len(p.items)
        elif len(have) == len(p.items) and all(b.agrees_with(a) for a, b in zip(have, p.items, strict=True)):
            counts["unchanged"] += 1
        else:
            if run.get("pending") is None:
                run["pending"] = new_run(session, run["name"], kind="import")
            pairs = [_as_detection(item) for item in p.items]
            insert_predictions(session, run["pending"], image_id, [d for d, _ in pairs], [a for _, a in pairs])
            counts["set_beside"] += 1
    return counts


def _import_annotated(project: Project, entries: Sequence, load: Callable[[Any], SourceImage], where_of,
                      status: str, run_name: str, batch_size: int, progress: Progress | None,
                      taxonomy: Taxonomy, report: ImportReport) -> ImportReport:
    check_status(status)
    seen: set[str] = set()
    run: dict[str, Any] = {"name": run_name, "id": None}
    for done, batch in enumerate(_batches(entries, batch_size), start=1):
        prepared = []
        for entry in batch:
            try:
                source = load(entry)
                image, dropped = _prepare(project, source, taxonomy, seen)
            except StoreError as exc:
                report.errors.append(FileError.from_error(exc, where_of(entry)))
                continue
            prepared.append(image)
            report.errors += dropped

        def work(session: Session, prepared: list[_Prepared] = prepared) -> dict[str, int]:
            run["pending"] = run["id"]
            return _write_annotated(session, prepared, status, run)
        report.add(project.write(work))
        run["id"] = run.get("pending")
        if progress:
            progress(min(done * batch_size, len(entries)), len(entries))
    report.model_run_id = run["id"]
    return report


def import_df2(project: Project, folder: str | Path, *, status: str = "new", batch_size: int = BATCH_SIZE,
               progress: Progress | None = None, taxonomy: Taxonomy | None = None) -> ImportReport:
    """Import a DeepFashion2 folder (``annos/`` + ``image/``, or ``train/``, ``validation/``... holding
    them, e.g. this project's own export). New images get review ``status``."""
    taxonomy = taxonomy or load_taxonomy()
    files = df2_files(folder)
    report = ImportReport(errors=[FileError(image, f"no annotation file {annotation}; image not imported")
                                  for image, annotation in unannotated_images(folder)])
    return _import_annotated(project, files, lambda e: read_df2_file(e[0], e[1], taxonomy), lambda e: e[0],
                             status, f"import {folder}", batch_size, progress, taxonomy, report)


def import_coco(project: Project, json_path: str | Path, images_dir: str | Path | None = None, *,
                status: str = "new", batch_size: int = BATCH_SIZE, progress: Progress | None = None,
                taxonomy: Taxonomy | None = None) -> ImportReport:
    """Import a 294-keypoint COCO json; image files are ``images_dir/file_name`` (default: ``image/``
    beside the json, else the json's folder)."""
    taxonomy = taxonomy or load_taxonomy()
    sources, errors, notes = read_coco_source(json_path, images_dir, taxonomy)
    report = ImportReport(errors=list(errors), notes=notes)
    return _import_annotated(project, sources, lambda s: s, lambda s: s.where, status, f"import {json_path}",
                             batch_size, progress, taxonomy, report)


# ---------------------------------------------------------------------------------------------
# Predictions and plain images


def _resolve(project: Project, entry: PredictedImage, images_dir: Path | None, by_path: dict[str, int],
             by_name: dict[str, list[int]], by_number: dict[int, list[int]]) -> tuple[int | None, Path | None]:
    """(image id, None) for an image in the project, or (None, file) for one to add; StoreError otherwise."""
    name = entry.image_file
    if name is not None and images_dir is not None:
        file = images_dir / name
        stored = project.relative_path(file)
        if stored in by_path:
            return by_path[stored], None
        if file.is_file():
            return None, file
        raise StoreError(f"{entry.where}: image file {file} not found", path=entry.where)
    found = by_name.get(name, []) if name is not None else by_number.get(entry.image_number, [])
    label = repr(name) if name is not None else f"number {entry.image_number}"
    if len(found) == 1:
        return found[0], None
    if not found:
        raise StoreError(f"{entry.where}: no image {label} in the project (import the images first, or pass "
                         "the folder holding them to add them)", path=entry.where)
    raise StoreError(f"{entry.where}: {len(found)} project images match {label}; pass the image folder to choose",
                     path=entry.where)


def _image_index(project: Project) -> tuple[dict[str, int], dict[str, list[int]], dict[int, list[int]]]:
    rows = project.read(lambda s: s.execute(select(Image.id, Image.path)).all())
    by_path, by_name, by_number = {}, {}, {}
    for image_id, path in rows:
        by_path[path] = image_id
        name = path.rsplit("/", 1)[-1]
        by_name.setdefault(name, []).append(image_id)
        stem = name.rsplit(".", 1)[0]
        if stem.isdigit():
            by_number.setdefault(int(stem), []).append(image_id)
    return by_path, by_name, by_number


def _write_predictions(session: Session, batch: list, run_id: int, seed: bool, seed_threshold: float,
                       visible_threshold: float) -> dict[str, int]:
    """One batch in one transaction. An image that holds predictions of ``run_id`` already got them (and
    its seeded items) from an earlier, interrupted import of the same source: it is left as it is."""
    counts = {"images_added": 0, "items_added": 0, "predictions_added": 0, "unchanged": 0}
    known = [image_id for _, image_id, *_ in batch if image_id is not None]
    done = set(session.scalars(select(Prediction.image_id).distinct()
                               .where(Prediction.model_run_id == run_id, Prediction.image_id.in_(known))))
    added = [(file, stored, facts) for _, _, file, stored, facts in batch if file is not None]
    new_ids = dict(zip([a[1] for a in added],
                       _insert_images(session, [_image_row(s, f, "new", None, None) for _, s, f in added]),
                       strict=True))
    counts["images_added"] = len(new_ids)
    ids = [image_id if image_id is not None else new_ids[stored] for _, image_id, _, stored, _ in batch]
    current = item_records(session, [i for i in ids if i not in done])
    for (entry, *_), image_id in zip(batch, ids, strict=True):
        if image_id in done:
            counts["unchanged"] += 1
            continue
        pred_ids = insert_predictions(session, run_id, image_id, entry.detections)
        counts["predictions_added"] += len(pred_ids)
        if seed and not current[image_id]:
            confident = [(d, p) for d, p in zip(entry.detections, pred_ids, strict=True) if d.score >= seed_threshold]
            rows = [(image_id, k, item_from_detection(det, visible_threshold), "predicted", pid)
                    for k, (det, pid) in enumerate(confident)]
            insert_items(session, rows)
            counts["items_added"] += len(rows)
        session.execute(update(Image).where(Image.id == image_id, Image.status == "new").values(status="predicted"),
                        execution_options={"synchronize_session": False})
    return counts


def _source_run(project: Project, key: str, name: str, options: dict) -> int:
    """The run of the predictions source ``key``: the one an earlier import of it made, else a new one,
    not completed (its own transaction, so every batch after it names it)."""
    def work(session: Session) -> int:
        found = run_of_source(session, key)
        return found[0] if found is not None else new_run(session, name, source_key=key, completed=False,
                                                          **options)
    try:
        return project.write(work)
    except IntegrityError:  # another import of the same source made it in the meantime: that one
        return project.write(work)


def import_predictions(project: Project, path: str | Path, *, run_name: str | None = None,
                       model_path: str | Path | None = None, params: dict | None = None,
                       model_meta: dict | None = None, images_dir: str | Path | None = None,
                       seed_annotations: bool = True, seed_threshold: float = 0.3, visible_threshold: float = 0.0,
                       batch_size: int = BATCH_SIZE, progress: Progress | None = None,
                       taxonomy: Taxonomy | None = None) -> ImportReport:
    """Import ``deepmark predict`` output (or an official results list) as one model run.

    Each file's image is found by its ``image_file`` name (or number): ``images_dir/image_file`` when
    ``images_dir`` is given (added to the project when new), else the one project image of that name.
    Images without items get the predictions with score ≥ ``seed_threshold`` as items (origin
    'predicted'; landmarks with score > ``visible_threshold`` visible, the others occluded); new images
    become 'predicted'. ``model_path`` is hashed; ``params`` are the post-processing parameters used.

    The run is keyed by the source's content (``prediction_source_key``): importing the same source again
    — twice, or after an import was killed at any moment — continues that run (its name, model and
    parameters are the first import's), adding only the images it lacks (``unchanged`` counts the others),
    so each prediction is stored once. The run is marked completed in a last transaction, after every batch.
    """
    taxonomy = taxonomy or load_taxonomy()
    entries, errors = read_prediction_source(path, taxonomy)
    report = ImportReport(errors=list(errors))
    if not entries:
        return report
    folder = Path(images_dir) if images_dir is not None else None
    by_path, by_name, by_number = _image_index(project)
    options = {"model_path": None if model_path is None else str(model_path),
               "model_hash": None if model_path is None else file_sha256(model_path),
               "model_meta": model_meta, "params": params}
    run_id = _source_run(project, prediction_source_key(path), run_name or Path(path).name, options)
    report.model_run_id = run_id
    seen: set[str] = set()
    for done, batch in enumerate(_batches(entries, batch_size), start=1):
        resolved = []
        for entry in batch:
            try:
                image_id, file = _resolve(project, entry, folder, by_path, by_name, by_number)
                stored = project.relative_path(file) if file is not None else None
                if stored in seen or (image_id is not None and image_id in seen):
                    raise StoreError(f"{entry.where}: a second prediction file for the same image",
                                     path=entry.where)
                seen.add(stored if stored is not None else image_id)
                resolved.append((entry, image_id, file, stored, file_facts(file) if file is not None else None))
            except StoreError as exc:
                report.errors.append(FileError.from_error(exc, entry.where))

        def work(session: Session, resolved: list = resolved) -> dict[str, int]:
            return _write_predictions(session, resolved, run_id, seed_annotations, seed_threshold, visible_threshold)
        report.add(project.write(work))
        by_path.update(_image_index(project)[0] if any(r[2] is not None for r in resolved) else {})
        if progress:
            progress(min(done * batch_size, len(entries)), len(entries))
    project.write(lambda s: complete_run(s, run_id))
    return report


def import_images(project: Project, inputs: Sequence[str | Path], *, status: str = "new",
                  batch_size: int = BATCH_SIZE, progress: Progress | None = None) -> ImportReport:
    """Add image files (or every image of the folders given) without annotations; known paths are skipped."""
    check_status(status)
    files = collect_images(inputs)
    report = ImportReport()
    for done, batch in enumerate(_batches(files, batch_size), start=1):
        rows = []
        for file in batch:
            try:
                rows.append(_image_row(project.relative_path(file), file_facts(file), status, None, None))
            except StoreError as exc:
                report.errors.append(FileError.from_error(exc, file))

        def work(session: Session, rows: list[dict] = rows) -> dict[str, int]:
            known = set(session.scalars(select(Image.path).where(Image.path.in_([r["path"] for r in rows]))))
            fresh = list({r["path"]: r for r in rows if r["path"] not in known}.values())
            _insert_images(session, fresh)
            return {"images_added": len(fresh), "unchanged": len(rows) - len(fresh)}
        report.add(project.write(work))
        if progress:
            progress(min(done * batch_size, len(files)), len(files))
    return report

