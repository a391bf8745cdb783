"""Export for retraining: DeepFashion2 per-image JSON, images copied or linked, the 294-keypoint COCO json,
a train / validation split by image.

Layout of ``out_dir``::

    train/annos/NNNNNN.json   train/image/NNNNNN.jpg   train_coco.json
    validation/annos/...      validation/image/...     validation_coco.json
    export.json               (what was exported: statuses, split, and each file's project image)

The per-image JSON is the dataset's schema: ``source``, ``pair_id``, ``item1..N`` with ``category_id``,
``category_name``, ``bounding_box`` [x1, y1, x2, y2], ``landmarks`` [x, y, v] × the category's count
(unlabelled points as 0, 0, 0), ``segmentation``, ``style``, ``scale``, ``occlusion``, ``zoom_in``,
``viewpoint`` (DeepFashion2's neutral values where unknown), then the item's extra keys as they were imported
(keys that are not DeepFashion2 fields). Files keep their numeric names when all
exported images have distinct numeric names, else they are numbered by project image id.

Everything is read in one snapshot and written into a temporary folder beside ``out_dir`` (``.NAME.partial-PID``)
that is renamed into place at the end, so a crash or an error never leaves a half-written export. What a
killed export left there (its process gone) is cleaned up by the next export to the same folder. The split is a hash of
(seed, image content hash): an image keeps its split when the project grows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from deepmark.core.domain.taxonomy import Taxonomy, load_taxonomy
from deepmark.core.formats.coco import ground_truth_dataset
from deepmark.core.formats.df2 import FileError, annotation_document
from deepmark.core.store.annotations import item_records
from deepmark.core.store.errors import InvalidValueError, StoreError
from deepmark.core.store.images import check_status, image_record
from deepmark.core.store.models import Image, utc_now
from deepmark.core.store.records import ATTRIBUTE_NAMES, ImageRecord, ItemRecord
from deepmark.core.util.atomic import copy_atomically, write_text_atomically

IMAGE_MODES = ("copy", "hardlink", "symlink", "none")
SPLITS = ("train", "validation")
CHUNK = 500


@dataclass
class ExportReport:
    """Images and items written per split; images skipped in ``errors`` (their file is missing, or they have
    no items without being marked as holding no garments)."""

    out_dir: Path
    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    items: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    errors: list[FileError] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{split}: {self.images[split]} images, {self.items[split]} items" for split in SPLITS]
        if self.errors:
            parts.append(f"{len(self.errors)} images skipped")
        return f"{self.out_dir}: " + "; ".join(parts)


def split_of(key: str, seed: int, val_fraction: float) -> str:
    """'validation' for a share ``val_fraction`` of keys (a stable hash of seed and key), else 'train'."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") / 2.0**64 < val_fraction else "train"


def _nums(values) -> list[int | float]:
    """JSON numbers as the dataset writes them: integral values as integers."""
    return [int(v) if v.is_integer() else v for v in map(float, values)]


def df2_document(items: list[ItemRecord], image: ImageRecord, taxonomy: Taxonomy) -> dict:
    """The per-image DeepFashion2 dict (``annotation_document`` plus the known attributes, segmentation and
    each item's extra keys after its DF2 fields); landmarks not labelled (v = 0) are written as 0, 0, 0 as in
    the dataset."""
    doc = annotation_document([r.to_item() for r in items], taxonomy, image.source or "user", image.pair_id or 0)
    for k, record in enumerate(items, start=1):
        entry = doc[f"item{k}"]
        entry["bounding_box"] = _nums(record.box.tolist())
        landmarks = record.landmarks.copy()
        landmarks[landmarks[:, 2] == 0] = 0.0
        entry["landmarks"] = _nums(landmarks.ravel().tolist())
        entry.update({name: getattr(record, name) for name in ATTRIBUTE_NAMES if getattr(record, name) is not None})
        if record.segmentation is not None:
            entry["segmentation"] = record.segmentation
        entry.update(record.extra or {})  # never a DF2 field's name: the store refuses those as extra keys
    return doc


_KEYPOINTS = '"@@keypoints@@"'


def _keypoints_text(values) -> str:
    """The 294 × 3 ``keypoints`` (a list or array) as JSON, zeros written as 0 (most of it: the other
    categories' slots)."""
    arr = np.asarray(values, np.float64)
    nonzero = np.flatnonzero(arr)
    if nonzero.size == 0:
        return "[" + ",".join(["0"] * len(values)) + "]"
    first, last = int(nonzero[0]), int(nonzero[-1])
    middle = json.dumps(_nums(arr[first : last + 1].tolist()))[1:-1]
    return "[" + "0," * first + middle + ",0" * (len(values) - last - 1) + "]"


def coco_text(dataset: dict) -> str:
    """``json.dumps(dataset)`` of a COCO keypoints dataset, fast: each annotation's 882 keypoint numbers
    are formatted from their non-zero span instead of one by one."""
    keypoints = []
    for ann in dataset["annotations"]:
        keypoints.append(_keypoints_text(ann["keypoints"]))
        ann["keypoints"] = _KEYPOINTS[1:-1]
    parts = json.dumps(dataset).split(_KEYPOINTS)
    out = [parts[0]]
    for text, rest in zip(keypoints, parts[1:], strict=True):
        out += [text, rest]
    return "".join(out)


def _coco(split_items: dict[int, list[ItemRecord]], names: dict[int, str], images: dict[int, ImageRecord],
          taxonomy: Taxonomy) -> dict:
    """The official 294-keypoint COCO dataset (as ``ground_truth_to_coco``) with real file names, sizes and
    each annotation's style, pair_id and segmentation as the official converter writes them, plus every other
    DF2 field the project holds, so DF2 → COCO → DF2 loses nothing: per annotation the known ``scale``,
    ``occlusion``, ``zoom_in``, ``viewpoint``, the exact xyxy ``bounding_box`` (``bbox`` x + w may round) and
    the item's extra keys as one object ``df2_extra`` (so they cannot clash with COCO's own keys); per image
    its ``source`` and ``pair_id``. Pycocotools and the official tools ignore keys they do not use."""
    # ground_truth_to_coco's own builder, keeping each annotation's keypoints as an (882,) array for coco_text
    dataset = ground_truth_dataset({n: [r.to_item() for r in rs] for n, rs in split_items.items()}, taxonomy)
    for entry in dataset["images"]:
        image = images[entry["id"]]
        entry.update(file_name=names[entry["id"]], width=image.width, height=image.height)
        entry.update({k: v for k, v in (("source", image.source), ("pair_id", image.pair_id)) if v is not None})
    records = [r for n in sorted(split_items) for r in split_items[n]]
    for ann, record in zip(dataset["annotations"], records, strict=True):
        image = images[ann["image_id"]]
        ann.update(style=record.style or 0, pair_id=image.pair_id or 0, segmentation=record.segmentation or [])
        ann.update({name: getattr(record, name) for name in ATTRIBUTE_NAMES
                    if name != "style" and getattr(record, name) is not None})  # style: written above
        ann["bounding_box"] = _nums(record.box.tolist())
        if record.extra:
            ann["df2_extra"] = record.extra
    return dataset


def _place_image(source: Path, target: Path, mode: str) -> None:
    """Copy or link ``source`` as ``target`` (links are made whole or not at all; copies atomically)."""
    if mode == "copy":
        copy_atomically(source, target)
    elif mode == "symlink":
        os.symlink(source.resolve(), target)
    else:
        try:
            os.link(source, target)
        except OSError:
            copy_atomically(source, target)  # another file system: copy instead


def _export_names(images: list[ImageRecord]) -> dict[int, tuple[int, str]]:
    """image id → (number, file name): the original numeric names when distinct, else the image id."""
    stems = [Path(i.path).stem for i in images]
    keep = all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)
    out = {}
    for image, stem in zip(images, stems, strict=True):
        number = int(stem) if keep else image.id
        out[image.id] = (number, f"{number:06d}{Path(image.path).suffix.lower() or '.jpg'}")
    return out


def _pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs (and may be an export writing its staging folder now)."""
    if pid == os.getpid():
        return False  # ours: left by an earlier export of this process, which has ended
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or no way to tell: leave its folder alone
    return True


def _stale(out: Path, kind: str) -> list[Path]:
    """``out``'s ``.partial-PID`` / ``.old-PID`` folders whose process is gone (killed during an export)."""
    found = []
    for path in out.parent.glob(f".{glob_escape(out.name)}.{kind}-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            found.append(path)
    return sorted(found)


def _clean_stale(out: Path) -> None:
    """What an export killed before its end left beside ``out``: a staging folder is deleted; a previous
    export set aside during the final swap is put back when ``out`` is missing, else deleted."""
    for old in _stale(out, "old"):
        if not out.exists():
            os.replace(old, out)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for partial in _stale(out, "partial"):
        shutil.rmtree(partial, ignore_errors=True)


def _prepare_target(out: Path, overwrite: bool) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise StoreError(f"{out}: exists and is not empty (choose another folder or allow overwriting)", path=out)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    for split in SPLITS:
        (staging / split / "annos").mkdir(parents=True)
    return staging


def _swap_in(staging: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def export_dataset(project, out_dir: str | Path, *, statuses: tuple[str, ...] = ("accepted",),
                   val_fraction: float = 0.1, seed: int = 0, images: str = "copy", coco: bool = True,
                   overwrite: bool = False, progress: Callable[[int, int], object] | None = None,
                   taxonomy: Taxonomy | None = None) -> ExportReport:
    """Export the images whose status is one of ``statuses`` (see the module docstring).

    ``images``: 'copy', 'hardlink' (falls back to a copy across file systems), 'symlink' or 'none'.
    ``progress(done, total)`` is called before each image and once at the end (``total``: images with
    those statuses); an exception it raises aborts the export and leaves nothing behind.
    An image whose file is missing, or that has no items and is not marked as holding no garments (an
    empty label would teach the model "nothing here"), is reported and left out. StoreError when
    ``out_dir`` exists and is not empty and ``overwrite`` is False.
    """
    taxonomy = taxonomy or load_taxonomy()
    if images not in IMAGE_MODES:
        raise InvalidValueError(f"images must be one of {IMAGE_MODES}, got {images!r}")
    if not 0.0 <= val_fraction <= 1.0:
        raise InvalidValueError(f"val_fraction must be in [0, 1], got {val_fraction!r}")
    statuses = tuple(check_status(s) for s in statuses)
    out = Path(out_dir).expanduser().resolve()
    staging = _prepare_target(out, overwrite)
    try:
        report = project.read(lambda s: _write_all(s, project, staging, statuses, val_fraction, seed, images, coco,
                                                   progress, taxonomy))
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.out_dir = out
    return report


def _write_all(session: Session, project, staging: Path, statuses, val_fraction: float, seed: int, mode: str,
               coco: bool, progress, taxonomy: Taxonomy) -> ExportReport:
    report = ExportReport(staging)
    rows = session.scalars(select(Image).where(Image.status.in_(statuses)).order_by(Image.id)).all()
    records = [image_record(r) for r in rows]
    names = _export_names(records)
    per_split: dict[str, dict[int, list[ItemRecord]]] = {s: {} for s in SPLITS}
    by_number: dict[int, ImageRecord] = {}
    manifest: dict[str, list] = {s: [] for s in SPLITS}
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        items = item_records(session, [r.id for r in chunk])
        for done, image in enumerate(chunk, start=start):
            if progress:  # per image: a dialog's bar moves while a chunk is copied
                progress(done, len(records))
            number, name = names[image.id]
            split = split_of(image.content_hash or image.path, seed, val_fraction)
            source = project.absolute_path(image.path)
            if not items[image.id] and not image.no_garments:
                # an empty label says "no garments here": written only when someone said so
                report.errors.append(FileError(source, f"image {image.id} ({image.status}) has no labelled garments "
                                               "and is not marked 'no garments'; left out of the export (label its "
                                               "garments, or mark it: Review → No garments here)"))
                continue
            if mode != "none" and not source.is_file():
                report.errors.append(FileError(source, f"image {image.id}: file missing; left out of the export"))
                continue
            folder = staging / split
            if mode != "none":
                (folder / "image").mkdir(exist_ok=True)
                _place_image(source, folder / "image" / name, mode)
            doc = df2_document(items[image.id], image, taxonomy)
            write_text_atomically(folder / "annos" / f"{number:06d}.json", json.dumps(doc))
            per_split[split][number] = items[image.id]
            by_number[number] = image
            manifest[split].append({"file": name, "image_id": image.id, "path": image.path,
                                    "content_hash": image.content_hash, "status": image.status})
            report.images[split] += 1
            report.items[split] += len(items[image.id])
    if progress:
        progress(len(records), len(records))
    if coco:
        for split in SPLITS:
            file_names = {n: names[by_number[n].id][1] for n in per_split[split]}
            dataset = _coco(per_split[split], file_names, by_number, taxonomy)
            write_text_atomically(staging / f"{split}_coco.json", coco_text(dataset))
    write_text_atomically(staging / "export.json", json.dumps({
        "created_at": utc_now().isoformat(), "project": project.where, "statuses": list(statuses),
        "val_fraction": val_fraction, "seed": seed, "images": mode, "splits": manifest}, indent=1))
    return report
