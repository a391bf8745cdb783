"""Batch prediction: images or folders → per-image DeepFashion2-style JSON (and optionally raw heads).

An unreadable image, or one on which the model's output is unusable (NaN/Inf heads: ``ModelOutputError``),
is reported (file and reason), nothing is written for it, and the rest go on; the summary lists what failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.df2 import FileError, write_df2_predictions
from deepmark.core.formats.heads_file import save_heads
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import Detector, ModelOutputError, TestTimeAugmentation


@dataclass
class PredictionSummary:
    written: list[Path] = field(default_factory=list)
    detections: int = 0
    failed: list[FileError] = field(default_factory=list)


def _image_id(path: Path) -> int:
    return int(path.stem) if path.stem.isdigit() else -1


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
) -> PredictionSummary:
    """Predict every image; ``out_dir/<stem>.json`` (and ``out_dir/heads/<stem>.npz``) per image.
    ``input_size`` (W, H) overrides the model's own input size (multiples of 32)."""
    params = params or PostprocessParams()
    tta = tta or TestTimeAugmentation()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if save_raw_heads:
        (out / "heads").mkdir(exist_ok=True)
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
            for path, heads in zip(chunk, results, strict=True):
                if isinstance(heads, ModelOutputError):
                    summary.failed.append(FileError.from_error(heads, path))
                    continue
                detections = decode_detections(heads, params, detector.taxonomy, detector.grouping)
                summary.written.append(write_df2_predictions(out / f"{path.stem}.json", detections,
                                                             detector.taxonomy, image_file=path.name))
                summary.detections += len(detections)
                if save_raw_heads:
                    save_heads(out / "heads" / f"{path.stem}.npz", heads, _image_id(path), detector.grouping.name)
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    return summary
