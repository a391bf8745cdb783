"""Reading import sources into plain values, one entry or one ``FileError`` per file (or per image).

* DeepFashion2 per-image JSON (``annos/*.json`` beside ``image/``, or a dataset folder with ``train/``,
  ``validation/``... sub-folders; this project's own export has that layout), with the item attributes
  (style, occlusion, scale, zoom_in, viewpoint, segmentation), each item's other keys (its ``extra``) and
  the image's ``source`` and ``pair_id``;
* the 294-keypoint COCO json of the official conversion (``read_coco_keypoints``), with each
  annotation's ``style``, ``segmentation`` and ``pair_id`` when present, and the DF2 fields and extra keys
  (``df2_extra``) this project's COCO export adds;
* ``deepmark predict`` output (``<image stem>.json`` with ``image_file``) or an official results list.

The parsers are ``deepmark.core.formats.df2``'s; this module adds what the store keeps beyond ``Item``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import Detection, Item
from deepmark.core.domain.taxonomy import Taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.df2 import (
    FileError,
    _items,
    _Malformed,
    _parse_item,
    _parse_predicted_item,
    _read_json,
    read_coco_keypoints,
    read_predictions,
)
from deepmark.core.imaging.read import IMAGE_SUFFIXES
from deepmark.core.store.errors import StoreError
from deepmark.core.store.records import ATTRIBUTE_NAMES, DF2_ITEM_FIELDS, ItemData


@dataclass
class SourceImage:
    """One image's annotations from a source file; ``where`` names the file (and entry) for messages."""

    where: Path
    image_path: Path
    items: list[ItemData]
    source: str | None = None
    pair_id: int | None = None
    entry: str | None = None  # the image within a file of many (a COCO json), for messages

    @property
    def label(self) -> str:
        """``where``, and the image within it when the file holds many: the start of every message."""
        return f"{self.where}: {self.entry}" if self.entry else str(self.where)


@dataclass
class PredictedImage:
    """One image's detections: found by ``image_file`` (a name), else by the number ``image_number``."""

    where: Path
    image_file: str | None
    image_number: int | None
    detections: list[Detection] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# DeepFashion2 folders


def df2_splits(folder: str | Path) -> list[tuple[Path, Path]]:
    """(annos folder, image folder) pairs of a DF2 folder: ``folder/annos``, an ``annos`` folder itself,
    or every sub-folder holding ``annos/`` (train, validation, ...). StoreError when there is none."""
    root = Path(folder)
    if not root.is_dir():
        raise StoreError(f"{root}: not a folder", path=root)
    if (root / "annos").is_dir():
        return [(root / "annos", root / "image")]
    splits = [(sub / "annos", sub / "image") for sub in sorted(root.iterdir()) if (sub / "annos").is_dir()]
    if splits:
        return splits
    if any(root.glob("*.json")):
        return [(root, root.parent / "image")]
    raise StoreError(f"{root}: no annos/ folder (expected annos/*.json beside image/, or train/ and "
                     "validation/ folders holding them)", path=root)


def find_image(image_dir: Path, stem: str) -> Path | None:
    """The image file named ``stem`` with a known suffix in ``image_dir``."""
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        candidate = image_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _attribute(raw: dict, name: str, key: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed(f"{key} {name} must be an integer, got {value!r}")
    return value


def _segmentation(raw: dict, key: str) -> list[list[float]] | None:
    value = raw.get("segmentation")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(p, list) for p in value):
        raise _Malformed(f"{key} segmentation must be a list of [x, y, ...] polygons")
    for poly in value:
        if len(poly) % 2 or not all(type(v) in (int, float) and np.isfinite(v) for v in poly):
            raise _Malformed(f"{key} segmentation polygons must be even-length lists of finite numbers")
    return [list(poly) for poly in value]  # numbers kept as written (ints stay ints on export)


def _extra_keys(entry: dict) -> dict | None:
    """The item's keys that are not DeepFashion2 fields, with their values as read (None: it has none)."""
    return {name: value for name, value in entry.items() if name not in DF2_ITEM_FIELDS} or None


def parse_df2_document(raw, taxonomy: Taxonomy) -> tuple[list[ItemData], str | None, int | None]:
    """Items (with attributes and extra keys) and the image's ``source`` and ``pair_id`` of a per-image DF2
    document."""
    items = []
    for key, entry in _items(raw):
        item = _parse_item(entry, key, taxonomy)
        attributes = {name: _attribute(entry, name, key) for name in ATTRIBUTE_NAMES}
        items.append(ItemData.from_item(item, segmentation=_segmentation(entry, key), extra=_extra_keys(entry),
                                        **attributes))
    source = raw.get("source")
    if source is not None and not isinstance(source, str):
        raise _Malformed(f"source must be a string, got {source!r}")
    pair_id = raw.get("pair_id")
    if pair_id is not None and (isinstance(pair_id, bool) or not isinstance(pair_id, int)):
        raise _Malformed(f"pair_id must be an integer, got {pair_id!r}")
    return items, source, pair_id


def read_df2_file(path: Path, image_dir: Path, taxonomy: Taxonomy) -> SourceImage:
    """One annotation file with its image; StoreError naming the file when it is unusable."""
    try:
        raw = _read_json(path)
        items, source, pair_id = parse_df2_document(raw, taxonomy)
    except _Malformed as exc:
        raise StoreError(f"{path}: {exc}", path=path) from None
    image = find_image(image_dir, path.stem)
    if image is None:
        raise StoreError(f"{path}: image file {image_dir / path.stem}.jpg (or .png, ...) not found", path=path)
    return SourceImage(path, image, items, source, pair_id)


def unannotated_images(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image file, the annotation file it lacks) for each image of a DF2 folder's ``image/`` folders without
    its ``annos/<stem>.json``, in split and name order."""
    out = []
    for annos, image_dir in df2_splits(folder):
        if not image_dir.is_dir():
            continue
        stems = {p.stem for p in annos.glob("*.json")}
        out += [(p, annos / f"{p.stem}.json") for p in sorted(image_dir.iterdir())
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and p.stem not in stems]
    return out


def df2_files(folder: str | Path) -> list[tuple[Path, Path]]:
    """(annotation file, image folder) of every ``*.json`` of a DF2 folder, in split and name order."""
    return [(path, image_dir) for annos, image_dir in df2_splits(folder) for path in sorted(annos.glob("*.json"))]


# ---------------------------------------------------------------------------------------------
# COCO


COCO_DEFAULTS = {"style": 0, "scale": 2, "occlusion": 1, "zoom_in": 1, "viewpoint": 2}
"""What a DF2 export writes for an attribute a COCO annotation did not give (stored as unknown)."""


def read_coco_source(path: str | Path, images_dir: str | Path | None, taxonomy: Taxonomy
                     ) -> tuple[list[SourceImage], list[FileError], list[str]]:
    """Images of a 294-keypoint COCO json, with the DF2 fields this project's COCO export adds (``scale``,
    ``occlusion``, ``zoom_in``, ``viewpoint``, xyxy ``bounding_box`` and the item's extra keys ``df2_extra``
    per annotation; ``source`` and ``pair_id`` per image) when present. An image with any bad annotation is
    reported and skipped whole (never half-imported); so are duplicate image ids or file names and missing image
    files. The notes say which DF2 attributes were absent and what a DF2 export will write for them."""
    source = Path(path)
    try:
        items, names, errors = read_coco_keypoints(source, taxonomy)
        raw = _read_json(source)
    except DeepMarkError as exc:  # names the file
        raise StoreError(str(exc), path=source) from None
    except _Malformed as exc:
        raise StoreError(f"{source}: cannot read the COCO file ({exc})", path=source) from None
    folder = Path(images_dir) if images_dir else (source.parent / "image" if (source.parent / "image").is_dir()
                                                  else source.parent)
    annotations = raw["annotations"]
    bad_images: dict[int, list[str]] = {}
    for error in errors:
        index = error.entry if error.entry is not None else -1
        ann = annotations[index] if 0 <= index < len(annotations) else None
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        bad_images.setdefault(image_id if isinstance(image_id, int) else -1, []).append(error.message)
    out, problems = [], []
    if -1 in bad_images:
        problems += [FileError(source, m) for m in bad_images.pop(-1)]
    extras: dict[int, list[dict]] = {}
    bad_indices = {e.entry for e in errors if e.entry is not None}
    for index, ann in enumerate(annotations):
        if index not in bad_indices:
            extras.setdefault(int(ann["image_id"]), []).append(ann)
    seen_ids, seen_names = set(), set()
    for image in raw["images"]:
        image_id, name = int(image["id"]), str(image["file_name"])
        where = f"image {image_id} ({name})"
        if image_id in seen_ids or name in seen_names:
            problems.append(FileError(source, f"{where}: duplicate image id or file name; skipped"))
            continue
        seen_ids.add(image_id)
        seen_names.add(name)
        if image_id in bad_images:
            problems.append(FileError(source, f"{where} skipped: " + "; ".join(bad_images[image_id])))
            continue
        try:
            data = [_coco_item(item, ann, where) for item, ann in zip(items[image_id], extras.get(image_id, []),
                                                                        strict=True)]
            image_source, pair_id = _coco_image_fields(image, extras.get(image_id, []), where)
        except _Malformed as exc:
            problems.append(FileError(source, f"{where} skipped: {exc}"))
            continue
        if not (folder / name).is_file():
            problems.append(FileError(source, f"{where}: image file {folder / name} not found"))
            continue
        out.append(SourceImage(source, folder / name, data, image_source, pair_id, entry=where))
    return out, problems, _coco_notes(source, out)


def _coco_item(item, ann: dict, where: str) -> ItemData:
    """The item with the annotation's DF2 fields and extra keys (``df2_extra``); its xyxy ``bounding_box``
    (exact, where ``bbox`` x + w may round) is taken when it agrees with ``bbox``."""
    attributes = {name: _attribute(ann, name, where) for name in ATTRIBUTE_NAMES}
    extra = ann.get("df2_extra")
    if extra is not None and not isinstance(extra, dict):
        raise _Malformed(f"annotation {ann.get('id')!r} df2_extra must be an object of the item's extra keys, "
                         f"got {type(extra).__name__}")
    xyxy = ann.get("bounding_box")
    if isinstance(xyxy, list) and len(xyxy) == 4 and all(type(v) in (int, float) for v in xyxy):
        exact = np.asarray(xyxy, np.float64)
        if np.allclose(exact, item.box, rtol=0.0, atol=1e-6):
            item = Item(item.category_id, exact, item.landmarks)
    return ItemData.from_item(item, segmentation=_segmentation(ann, where), extra=extra or None, **attributes)


def _coco_image_fields(image: dict, anns: list[dict], where: str) -> tuple[str | None, int | None]:
    """The image's ``source`` and ``pair_id``: the image entry's (this project's export), else the one
    ``pair_id`` its annotations share (the official converter's)."""
    source = image.get("source")
    if source is not None and not isinstance(source, str):
        raise _Malformed(f"source must be a string, got {source!r}")
    if "pair_id" in image:
        return source, _attribute(image, "pair_id", where)
    pair_ids = {ann.get("pair_id") for ann in anns} - {None}
    return source, pair_ids.pop() if len(pair_ids) == 1 else None


def _coco_notes(path: Path, images: list[SourceImage]) -> list[str]:
    """One line per DF2 field the file lacked somewhere: how many items (images) and what export writes."""
    notes = []
    items = [item for image in images for item in image.items]
    for name in ATTRIBUTE_NAMES:
        missing = sum(getattr(item, name) is None for item in items)
        if missing:
            notes.append(f"{path}: {missing} of {len(items)} annotations have no {name}; stored as unknown, "
                         f"a DeepFashion2 export writes {name} {COCO_DEFAULTS[name]}")
    missing = sum(image.source is None for image in images)
    if missing:
        notes.append(f"{path}: {missing} of {len(images)} images have no source; stored as unknown, "
                     "a DeepFashion2 export writes source 'user'")
    return notes


# ---------------------------------------------------------------------------------------------
# Predictions


def _prediction_files(source: Path) -> list[Path]:
    """The files a predictions source consists of: the file itself, or a folder's ``*.json`` by name, in its
    sub-folders too (``deepmark predict`` mirrors them when image names collide)."""
    return [source] if source.is_file() else sorted(source.rglob("*.json"))


def prediction_source_key(path: str | Path) -> str:
    """SHA-256 hex identifying a predictions source by what it holds: each file's content and, in a folder,
    its name (which names the image). Where the source lies does not count, so a copied or moved folder is
    the same source; a file added, removed or changed makes another one."""
    source = Path(path)
    digest = hashlib.sha256(b"deepmark predictions source 1\0")
    for file in _prediction_files(source):
        try:
            content = hashlib.sha256(file.read_bytes()).hexdigest()
        except OSError as exc:
            raise StoreError(f"{file}: cannot read ({exc.strerror or exc})", path=file) from None
        name = "" if file == source else file.relative_to(source).as_posix()
        digest.update(f"{name}\0{content}\0".encode())
    return digest.hexdigest()


def read_prediction_source(path: str | Path, taxonomy: Taxonomy) -> tuple[list[PredictedImage], list[FileError]]:
    """``deepmark predict`` output folder (``<stem>.json`` with ``image_file``, ``score``, ``box_score``,
    landmarks [x, y, score] × L and ``refined`` flags), or an official results list (by image number)."""
    source = Path(path)
    if not source.exists():
        raise StoreError(f"{source}: no such file or folder", path=source)
    if source.is_file():
        try:
            detections, errors = read_predictions(source, taxonomy)
        except DeepMarkError as exc:  # names the file
            raise StoreError(str(exc), path=source) from None
        return [PredictedImage(source, None, image_id, dets) for image_id, dets in detections.items()], errors
    out, errors = [], []
    for file in _prediction_files(source):
        try:
            out.append(_read_prediction_file(file, taxonomy))
        except _Malformed as exc:
            errors.append(FileError(file, str(exc)))
    return out, errors


def _read_prediction_file(path: Path, taxonomy: Taxonomy) -> PredictedImage:
    raw = _read_json(path)
    detections = []
    for key, entry in _items(raw):
        det = _parse_predicted_item(entry, key, taxonomy)
        box_score = entry.get("box_score", det.score)
        refined = entry.get("refined")
        if isinstance(box_score, bool) or not isinstance(box_score, int | float):
            raise _Malformed(f"{key} box_score must be a number, got {box_score!r}")
        flags = np.zeros(len(det.landmarks), bool)
        if refined is not None:
            if not isinstance(refined, list) or len(refined) != len(det.landmarks):
                raise _Malformed(f"{key} refined must list one 0/1 flag per landmark")
            flags = np.asarray(refined, bool)
        detections.append(Detection(det.category_id, det.score, float(box_score), det.box, det.landmarks, flags))
    image_file = raw.get("image_file")
    if image_file is not None and not isinstance(image_file, str):
        raise _Malformed(f"image_file must be a file name, got {image_file!r}")
    number = int(path.stem) if path.stem.isdigit() else None
    return PredictedImage(path, image_file, number, detections)
