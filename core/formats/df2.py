"""DeepFashion2 files: per-image annotation JSON, prediction files, and official results JSON.

Annotations are a folder of ``annos/NNNNNN.json`` files (image id = the number in the name), each with
``item1`` .. ``itemN`` holding ``category_id``, ``bounding_box`` [x1, y1, x2, y2] and ``landmarks`` as a
flat [x, y, v] × L list (L the category's landmark count). Predictions are read either from the official
results format (a JSON list of ``image_id``, ``category_id``, ``score``, ``bbox`` [x, y, w, h] and/or
``keypoints`` 294 × 3) or from a folder of per-image files like the annotations whose items also carry a
``score`` and whose landmarks are [x, y, score] × L. A malformed file or entry is reported as a
``FileError`` and skipped; the rest is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepmark.core.domain.structures import VISIBILITIES, Detection, Item
from deepmark.core.domain.taxonomy import Category, Taxonomy, load_taxonomy
from deepmark.core.errors import EvaluationError, TaxonomyError
from deepmark.core.formats.coco import ResultDetection, checked_box, checked_landmarks, detections_to_coco
from deepmark.core.util.atomic import write_atomically

_ITEM_KEY = re.compile(r"item(\d+)")


@dataclass(frozen=True)
class FileError:
    """A file (or an entry in it) that could not be read: ``path`` the file, ``message`` why; ``entry`` the
    index of the entry at fault in a file of many (a COCO annotation), else None. ``str()`` is the report
    line: ``"<path>: <message>"``, or the message alone when it names the file already (``from_error``)."""

    path: Path
    message: str
    entry: int | None = field(default=None, kw_only=True)
    names_path: bool = field(default=False, kw_only=True, repr=False)

    def __str__(self) -> str:
        return self.message if self.names_path else f"{self.path}: {self.message}"

    @classmethod
    def from_error(cls, error: Exception, path: str | Path) -> FileError:
        """The report of ``error`` met while reading ``path``: an error that carries its file (a
        DeepMarkError's ``path``, named by its message) is reported for that file, any other for ``path``."""
        own = getattr(error, "path", None)
        if own is not None:
            return cls(Path(own), str(error), names_path=True)
        return cls(Path(path), str(error))


class _Malformed(Exception):
    """Raised inside the parsers; becomes a FileError for the file or entry at fault."""


# ---------------------------------------------------------------------------------------------
# Small parsers


def _number(value, what: str) -> float:
    """A finite JSON number (bools and strings are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed(f"{what} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise _Malformed(f"{what} is not finite")
    return float(value)


def _integer(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed(f"{what} must be an integer, got {value!r}")
    return value


def _numbers(value, what: str, length: int | None = None) -> np.ndarray:
    """(n,) float64 from a JSON list of finite numbers, optionally of a given length."""
    if not isinstance(value, list):
        raise _Malformed(f"{what} must be a list of numbers, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise _Malformed(f"{what} has {len(value)} numbers, expected {length}")
    if not all(type(v) in (int, float) for v in value):
        bad = next(v for v in value if type(v) not in (int, float))
        raise _Malformed(f"{what} holds a non-numeric value {bad!r}")
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise _Malformed(f"{what} holds NaN or infinite values")
    return arr


def _category(taxonomy: Taxonomy, value, what: str) -> Category:
    try:
        return taxonomy.category(_integer(value, f"{what} category_id"))
    except TaxonomyError as exc:
        raise _Malformed(f"{what}: {exc}") from None


def _checked(fn, *args):
    """Run an ``evaluate`` checker, turning its EvaluationError into _Malformed."""
    try:
        return fn(*args)
    except EvaluationError as exc:
        raise _Malformed(str(exc)) from None


def _flat_landmarks(value, category: Category, what: str) -> np.ndarray:
    """(L, 3) float64 from a flat [x, y, third] × L list, L the category's landmark count."""
    flat = _numbers(value, f"{what} landmarks")
    if flat.size != 3 * category.num_landmarks:
        raise _Malformed(
            f"{what} has {flat.size} landmark numbers, expected 3 × {category.num_landmarks} for category "
            f"{category.id} ({category.name})"
        )
    return flat.reshape(category.num_landmarks, 3)


def _items(raw) -> Iterator[tuple[str, dict]]:
    """The ``itemN`` entries of a per-image file, by N."""
    if not isinstance(raw, dict):
        raise _Malformed(f"expected a JSON object with item1..itemN, got {type(raw).__name__}")
    keys = [(int(m.group(1)), k) for k in raw if (m := _ITEM_KEY.fullmatch(k))]
    for _, key in sorted(keys):
        if not isinstance(raw[key], dict):
            raise _Malformed(f"{key} must be an object, got {type(raw[key]).__name__}")
        yield key, raw[key]


def _parse_item(raw: dict, key: str, taxonomy: Taxonomy) -> Item:
    cat = _category(taxonomy, raw.get("category_id"), key)
    box = _checked(checked_box, _numbers(raw.get("bounding_box"), f"{key} bounding_box", 4), key)
    landmarks = _flat_landmarks(raw.get("landmarks"), cat, key)
    if not np.isin(landmarks[:, 2], VISIBILITIES).all():
        raise _Malformed(f"{key} landmark visibility must be 0, 1 or 2")
    return Item(category_id=cat.id, box=box, landmarks=landmarks)


def _parse_predicted_item(raw: dict, key: str, taxonomy: Taxonomy) -> Detection:
    cat = _category(taxonomy, raw.get("category_id"), key)
    box = _checked(checked_box, _numbers(raw.get("bounding_box"), f"{key} bounding_box", 4), key)
    landmarks = _flat_landmarks(raw.get("landmarks"), cat, key)
    score = _number(raw.get("score"), f"{key} score")
    return Detection(cat.id, score, score, box, landmarks, np.zeros(cat.num_landmarks, dtype=bool))


# ---------------------------------------------------------------------------------------------
# Per-image folders


def _annos_dir(folder: Path) -> Path:
    """``folder`` itself or its ``annos`` sub-folder; EvaluationError when neither is a folder."""
    if (folder / "annos").is_dir():
        return folder / "annos"
    if folder.is_dir():
        return folder
    raise EvaluationError(f"{folder}: not a folder", path=folder)


def _read_json(path: Path):
    """The parsed JSON of ``path``; _Malformed (the reason, for that file's report) when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _Malformed(f"cannot read file ({exc})") from None
    except RecursionError:
        # e.g. 200,000 nested lists: Python's parser gives up at its recursion limit; no label nests so deep
        raise _Malformed("not usable JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python accepts
        raise _Malformed(f"not valid JSON ({exc})") from None


def _read_folder(folder: str | Path, parse, taxonomy: Taxonomy) -> tuple[dict[int, list], list[FileError]]:
    """Image id → parsed items of every ``NNNNNN.json`` in the folder, ascending ids; errors per file."""
    directory = _annos_dir(Path(folder))
    out: dict[int, list] = {}
    errors: list[FileError] = []
    for path in sorted(directory.glob("*.json")):
        if not path.stem.isdigit():
            errors.append(FileError(path, "file name is not an image number like 000001.json"))
            continue
        image_id = int(path.stem)
        if image_id in out:
            errors.append(FileError(path, f"a second file for image {image_id}"))
            continue
        try:
            out[image_id] = [parse(raw, key, taxonomy) for key, raw in _items(_read_json(path))]
        except _Malformed as exc:
            errors.append(FileError(path, str(exc)))
    return dict(sorted(out.items())), errors


def read_df2_annotations(
    folder: str | Path, taxonomy: Taxonomy | None = None
) -> tuple[dict[int, list[Item]], list[FileError]]:
    """Ground truth from a DeepFashion2 ``annos`` folder (or the dataset folder holding ``annos/``).

    Returns image id → items in ``itemN`` order, and one FileError per file skipped (bad JSON, unknown
    category, wrong landmark count, negative box size, non-numeric values, visibility outside 0..2).
    Boxes are xyxy pixels; landmarks (L, 3) hold x, y, v. Raises EvaluationError when there is no folder.
    """
    return _read_folder(folder, _parse_item, taxonomy or load_taxonomy())


# ---------------------------------------------------------------------------------------------
# Predictions


def _box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(4,) xyxy extent of (L, 3) landmarks, over those with a positive third value when there are any."""
    points = landmarks[landmarks[:, 2] > 0] if (landmarks[:, 2] > 0).any() else landmarks
    return np.array([*points[:, :2].min(axis=0), *points[:, :2].max(axis=0)])


def _parse_result_entry(raw, taxonomy: Taxonomy) -> tuple[int, Detection]:
    """One official-format result → (image id, Detection)."""
    if not isinstance(raw, dict):
        raise _Malformed(f"expected an object, got {type(raw).__name__}")
    image_id = _integer(raw.get("image_id"), "image_id")
    cat = _category(taxonomy, raw.get("category_id"), "entry")
    score = _number(raw.get("score"), "score")
    if "bbox" not in raw and "keypoints" not in raw:
        raise _Malformed("has neither bbox nor keypoints")
    landmarks = keypoints = None
    if "keypoints" in raw:
        keypoints = _numbers(raw["keypoints"], "keypoints", 3 * taxonomy.num_landmarks).reshape(-1, 3)
        landmarks = keypoints[cat.offset : cat.offset + cat.num_landmarks].copy()
    if "bbox" in raw:
        x, y, w, h = _numbers(raw["bbox"], "bbox", 4)
        box = _checked(checked_box, [x, y, x + w, y + h], "bbox")
    else:
        box = _box_from_landmarks(landmarks)
    if landmarks is None:
        # a box-only result: no landmark was predicted, so place them at the box centre with score 0
        landmarks = np.zeros((cat.num_landmarks, 3))
        landmarks[:, :2] = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    landmarks = _checked(checked_landmarks, landmarks, cat, "keypoints")
    refined = np.zeros(cat.num_landmarks, dtype=bool)
    if keypoints is None:
        return image_id, Detection(cat.id, score, score, box, landmarks, refined)
    # the whole 294 × 3 vector is kept: the evaluator gives pycocotools exactly what the file says
    return image_id, ResultDetection(cat.id, score, score, box, landmarks, refined, keypoints)


def _read_results_list(path: Path, taxonomy: Taxonomy) -> tuple[dict[int, list[Detection]], list[FileError]]:
    try:
        raw = _read_json(path)
    except _Malformed as exc:
        return {}, [FileError(path, str(exc))]
    if not isinstance(raw, list):
        return {}, [FileError(path, f"expected a JSON list of results, got {type(raw).__name__}")]
    out: dict[int, list[Detection]] = {}
    errors: list[FileError] = []
    for index, entry in enumerate(raw):
        try:
            image_id, det = _parse_result_entry(entry, taxonomy)
        except _Malformed as exc:
            errors.append(FileError(path, f"entry {index}: {exc}"))
            continue
        out.setdefault(image_id, []).append(det)
    return dict(sorted(out.items())), errors


def read_predictions(
    path: str | Path, taxonomy: Taxonomy | None = None
) -> tuple[dict[int, list[Detection]], list[FileError]]:
    """Predictions from an official results JSON list, or from a folder of per-image DF2-style files.

    Results list: each entry's landmarks are its category's slice of ``keypoints`` with the v column as
    landmark score (official files set it to 1); without ``bbox`` the box is the extent of those
    landmarks; without ``keypoints`` the landmarks sit at the box centre with score 0. An entry with
    ``keypoints`` is a ``ResultDetection`` that keeps all 294 × 3 of them (the other categories' slots
    are evaluated as the file gives them). Folder: items as in the annotations plus ``score``, landmarks
    [x, y, score] × L. ``box_score`` = ``score`` and ``refined`` is all False. A bad entry or file is
    reported as a FileError and skipped. Raises EvaluationError when ``path`` does not exist.
    """
    taxonomy = taxonomy or load_taxonomy()
    source = Path(path)
    if source.is_dir():
        return _read_folder(source, _parse_predicted_item, taxonomy)
    if not source.exists():
        raise EvaluationError(f"{source}: no such file or folder", path=source)
    return _read_results_list(source, taxonomy)


def write_results_json(
    path: str | Path, detections: Mapping[int, Sequence[Detection]], taxonomy: Taxonomy | None = None
) -> None:
    """Write detections in the official results format, atomically (a temporary file, then a rename).

    One entry per detection: ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score`` and
    ``keypoints`` 294 × 3 with the landmark scores as v (the evaluator ignores v, and this way the file
    reads back unchanged). Raises EvaluationError / TaxonomyError on bad detections, before writing.
    """
    entries = detections_to_coco(detections, taxonomy, landmark_scores=True)
    write_atomically(path, lambda handle: json.dump(entries, handle))


def annotation_document(items: Sequence[Item], taxonomy: Taxonomy | None = None, source: str = "user",
                        pair_id: int = 0) -> dict:
    """The per-image DeepFashion2 annotation dict for ``items`` (``item1``..``itemN``).

    Attributes the items do not carry are written as DeepFashion2's neutral values: style 0 (not
    pairable), scale 2, occlusion 1, zoom_in 1, viewpoint 2, no segmentation.
    """
    taxonomy = taxonomy or load_taxonomy()
    doc: dict = {"source": source, "pair_id": pair_id}
    for k, item in enumerate(items, start=1):
        category = taxonomy.category(item.category_id)
        landmarks = checked_landmarks(item.landmarks, category, f"item{k}")
        doc[f"item{k}"] = {
            "category_id": category.id,
            "category_name": category.name,
            "bounding_box": checked_box(item.box, f"item{k}").tolist(),
            "landmarks": landmarks.ravel().tolist(),
            "style": 0, "scale": 2, "occlusion": 1, "zoom_in": 1, "viewpoint": 2, "segmentation": [],
        }
    return doc


def write_df2_annotation(path: str | Path, items: Sequence[Item], taxonomy: Taxonomy | None = None,
                         source: str = "user", pair_id: int = 0) -> Path:
    """Write one image's DeepFashion2 annotation JSON atomically; returns the path."""
    doc = annotation_document(items, taxonomy, source, pair_id)
    return write_atomically(path, lambda handle: json.dump(doc, handle))


def prediction_document(detections: Sequence[Detection], taxonomy: Taxonomy | None = None,
                        image_file: str | None = None) -> dict:
    """A per-image prediction dict in the annotation schema (``read_predictions`` reads it back): items
    with ``score``, ``box_score`` and landmarks [x, y, score] × L, plus ``refined`` flags (0/1)."""
    taxonomy = taxonomy or load_taxonomy()
    doc: dict = {"source": "user", "pair_id": 0}
    if image_file is not None:
        doc["image_file"] = image_file
    for k, det in enumerate(detections, start=1):
        category = taxonomy.category(det.category_id)
        doc[f"item{k}"] = {
            "category_id": category.id,
            "category_name": category.name,
            "bounding_box": checked_box(det.box, f"item{k}").tolist(),
            "landmarks": np.asarray(det.landmarks, np.float64).ravel().tolist(),
            "refined": np.asarray(det.refined, np.int64).tolist(),
            "score": float(det.score),
            "box_score": float(det.box_score),
        }
    return doc


def write_df2_predictions(path: str | Path, detections: Sequence[Detection], taxonomy: Taxonomy | None = None,
                          image_file: str | None = None) -> Path:
    """Write one image's predictions as DF2-style JSON, atomically; returns the path."""
    doc = prediction_document(detections, taxonomy, image_file)
    return write_atomically(path, lambda handle: json.dump(doc, handle))


def read_coco_keypoints(
    path: str | Path, taxonomy: Taxonomy | None = None
) -> tuple[dict[int, list[Item]], dict[int, str], list[FileError]]:
    """The 294-keypoint COCO json of the official DeepFashion2 conversion (``deepfashion2_to_coco.py``).

    Returns items per image id (box from ``bbox`` [x, y, w, h], landmarks = the category's slice of
    ``keypoints``), each image's ``file_name``, and the annotations that could not be used (reported
    with their index, the rest read). Raises EvaluationError when the file itself is unreadable.
    """
    taxonomy = taxonomy or load_taxonomy()
    source = Path(path)
    if not source.exists():
        raise EvaluationError(f"{source}: no such file", path=source)
    try:
        data = _read_json(source)
    except _Malformed as exc:
        raise EvaluationError(f"{source}: {exc}", path=source) from None
    try:
        images = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        annotations = data["annotations"]
    except (KeyError, TypeError, ValueError) as exc:
        raise EvaluationError(f"{source}: not a COCO keypoints file ({exc!r})", path=source) from None
    items: dict[int, list[Item]] = {image_id: [] for image_id in images}
    errors: list[FileError] = []
    for index, ann in enumerate(annotations):
        where = f"annotation {index}"
        try:
            image_id = int(ann["image_id"])
            if image_id not in images:
                raise _Malformed(f"{where}: image id {image_id} is not in 'images'")
            category = _category(taxonomy, ann.get("category_id"), where)
            x, y, w, h = _numbers(ann.get("bbox"), f"{where} bbox", 4)
            box = _checked(checked_box, np.array([x, y, x + w, y + h]), where)
            keypoints = _numbers(ann.get("keypoints"), f"{where} keypoints", 3 * taxonomy.num_landmarks)
            landmarks = keypoints.reshape(-1, 3)[category.global_indices]
            items[image_id].append(Item(category.id, box, _checked(checked_landmarks, landmarks, category, where)))
        except (_Malformed, TaxonomyError, EvaluationError, KeyError, TypeError, ValueError) as exc:
            errors.append(FileError(source, f"{where}: {exc}", entry=index))
    return items, images, errors
