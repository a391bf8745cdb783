"""Batch prediction: images or folders → per-image DeepFashion2-style JSON (and optionally raw heads).

An unreadable image, or one on which the model's output is unusable (NaN/Inf heads: ``ModelOutputError``),
is reported (file and reason), nothing is written for it, and the rest go on; the summary lists what failed.
One output never overwrites another (``output_names``): ``x.jpg`` → ``x.json`` while every stem is
distinct; when two inputs share a stem (``a/x.jpg``, ``a/x.png``, ``b/x.jpg``) every output mirrors its
image's path below the inputs' common folder, suffix kept (``a/x.jpg.json``, ``a/x.png.json``,
``b/x.jpg.json``), and ``image_file`` holds that relative path (import with ``--images`` that folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import Detection, PostprocessParams
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.df2 import FileError, write_df2_predictions
from deepmark.core.formats.heads_file import save_heads
from deepmark.core.formats.model_file import RECOMMENDED_PARAMS_KEY
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import Detector, ModelOutputError, TestTimeAugmentation


@dataclass
class PredictionSummary:
    written: list[Path] = field(default_factory=list)
    detections: int = 0
    failed: list[FileError] = field(default_factory=list)


def _image_id(path: Path) -> int:
    return int(path.stem) if path.stem.isdigit() else -1


def distinct_images(images: Sequence[Path]) -> list[Path]:
    """``images`` without repeats of one file (the same path named twice, or through a folder and directly)."""
    seen: set[Path] = set()
    kept = []
    for path in images:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            kept.append(path)
    return kept


def output_names(images: Sequence[Path]) -> list[str]:
    """Each image's output name (``out/<name>.json``, ``out/heads/<name>.npz``) and ``image_file``: its stem
    while all stems are distinct, else its path below the images' common folder with the suffix kept (POSIX
    separators). ``images`` must be distinct files (``distinct_images``)."""
    stems = [path.stem for path in images]
    if len(set(stems)) == len(stems):
        return stems
    resolved = [path.resolve() for path in images]
    common = Path(os.path.commonpath([str(path.parent) for path in resolved]))
    return [path.relative_to(common).as_posix() for path in resolved]


def predict_images(
    images: Sequence[Path],
    out_dir: str | Path,
    detector: Detector,
    params: PostprocessParams | None = None,
    tta: TestTimeAugmentation | None = None,
    save_raw_heads: bool = False,
    batch_size: int = 4,
    input_size: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    refine: Callable[[np.ndarray, list[Detection]], list[Detection]] | None = None,
) -> PredictionSummary:
    """Predict every image; ``out_dir/<name>.json`` (and ``out_dir/heads/<name>.npz``) per image, ``name``
    from ``output_names`` (the stem unless stems collide).
    ``input_size`` (W, H) overrides the model's own input size (multiples of its ``input_multiple``: 32, 128 for an
    hourglass). ``refine`` (image, detections) → detections runs after decoding (e.g.
    ``deepmark.core.refinement.runner.Refiner.refine``): the written predictions are its output; the saved heads
    stay the detector's."""
    params = params or PostprocessParams()
    tta = tta or TestTimeAugmentation()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if save_raw_heads:
        (out / "heads").mkdir(exist_ok=True)
    images = distinct_images(images)
    names = dict(zip(images, output_names(images), strict=True))
    mirrored = list(names.values()) != [path.stem for path in images]
    summary = PredictionSummary()
    for start in range(0, len(images), batch_size):
        chunk, pictures = [], []
        for path in images[start : start + batch_size]:
            try:
                pictures.append(read_image(path))
                chunk.append(path)
            except DeepMarkError as exc:
                summary.failed.append(FileError.from_error(exc, path))
        if chunk:
            try:
                results = detector.heads_each(pictures, tta, input_size)
            except ModelOutputError as exc:  # the runtime refused the whole batch: each of its images failed
                results = [exc] * len(chunk)
            for path, picture, heads in zip(chunk, pictures, results, strict=True):
                if isinstance(heads, ModelOutputError):
                    summary.failed.append(FileError.from_error(heads, path))
                    continue
                detections = decode_detections(heads, params, detector.taxonomy, detector.grouping)
                if refine is not None:
                    try:
                        detections = refine(picture, detections)
                    except ModelOutputError as exc:  # nothing written for it: never a half-refined file
                        summary.failed.append(FileError.from_error(exc, path))
                        continue
                name = names[path]
                target = out / f"{name}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                summary.written.append(write_df2_predictions(target, detections, detector.taxonomy,
                                                             image_file=name if mirrored else path.name))
                summary.detections += len(detections)
                if save_raw_heads:
                    heads_file = out / "heads" / f"{name}.npz"
                    heads_file.parent.mkdir(parents=True, exist_ok=True)
                    save_heads(heads_file, heads, _image_id(path), detector.grouping.name, detector.path.name,
                               (detector.info.training or {}).get(RECOMMENDED_PARAMS_KEY))
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    return summary
