"""Running the detector over many images of a project (a selection or all of them), Qt-free.

``run_batch`` walks image ids: reads each image, gets its raw heads (from the disk heads cache when
this model and test-time augmentation saw the same image content before, else from the network, then
saved there), decodes them with the given post-processing parameters and stores the detections under
one model run, and scores each image's doubt (``deepmark.core.studio.uncertainty``: stored under the key of
the model, TTA and parameters; an image predicted before is only scored). A file that cannot be read or
processed is reported by name (``BatchReport.errors``) and the rest goes on. ``progress`` is called after
every image with done / total / rate / time left; setting ``cancel`` (a ``threading.Event``) stops after the
current image, keeping what was stored.

Heads go through the studio's one heads cache rule (``deepmark.core.studio.heads_cache``): the disk cache
shared with the live view and tuning, and the same float16 precision whichever path computed them first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.df2 import FileError
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import Detector, TestTimeAugmentation
from deepmark.core.store import ImageRecord, Project
from deepmark.core.studio.heads_cache import HeadsDiskCache, at_cache_precision, image_key, model_key
from deepmark.core.studio.uncertainty import doubt_key, image_doubt, mirror_key, store_doubt

CHUNK = 256  # image records read per query


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch job stands: ``done`` of ``total`` images (failed ones included), ``errors`` so far,
    ``elapsed_s`` seconds since the start, ``image_id`` the image just finished."""

    done: int
    total: int
    errors: int
    elapsed_s: float
    image_id: int | None = None

    @property
    def rate(self) -> float:
        """Images per second so far (0 before the first one)."""
        return self.done / self.elapsed_s if self.done and self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None before it is known)."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None


@dataclass
class BatchReport:
    """What a batch job did. ``stored``: images whose detections were stored now; ``from_cache``: images
    whose heads came from the disk cache (no network run); ``already``: images that already had
    predictions of the run (left as they were); ``scored``: images whose doubt was scored now;
    ``processed_ids``: every image finished without error."""

    total: int = 0
    run_id: int | None = None
    stored: int = 0
    predictions: int = 0
    network_runs: int = 0
    from_cache: int = 0
    already: int = 0
    scored: int = 0  # images whose doubt score was computed now
    cancelled: bool = False
    elapsed_s: float = 0.0
    errors: list[FileError] = field(default_factory=list)
    cache_warning: str | None = None
    processed_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        done = len(self.processed_ids) + len(self.errors)
        parts = [f"{done}/{self.total} images", f"{self.predictions} detections stored for {self.stored} images",
                 f"{self.network_runs} network runs", f"{self.from_cache} from the heads cache"]
        if self.already:
            parts.append(f"{self.already} already had predictions")
        if self.errors:
            parts.append(f"{len(self.errors)} failed")
        if self.cache_warning:
            parts.append(self.cache_warning)
        rate = done / self.elapsed_s if self.elapsed_s > 0 else 0.0
        parts.append(f"{self.elapsed_s:.1f} s ({rate:.1f} img/s)")
        return ("cancelled: " if self.cancelled else "") + ", ".join(parts)


def new_model_run(project: Project, detector: Detector, params: PostprocessParams, name: str | None = None) -> int:
    """Record a detector run of ``detector`` with ``params`` in ``project``; its id."""
    run = project.model_runs.add(name or f"studio: {detector.path.name}", model_path=detector.path,
                                 model_meta=json.loads(detector.info.to_json()), params=asdict(params))
    return run.id


def run_batch(project: Project, detector: Detector, image_ids: Sequence[int], params: PostprocessParams, *,
              run_id: int | None = None, tta: TestTimeAugmentation | None = None,
              heads_cache: HeadsDiskCache | None = None, model: str | None = None,
              progress: Callable[[BatchProgress], object] | None = None,
              cancel: threading.Event | None = None) -> BatchReport:
    """Detect on ``image_ids`` of ``project`` and store the detections under model run ``run_id`` (a new
    run recording the model and ``params`` when None). ``heads_cache``: where raw heads are looked up and
    saved (None: not cached); ``model``: the model's cache key (default: ``model_key(detector.path)``).
    Per-image problems land in ``errors``; see the module docstring."""
    started = time.perf_counter()
    tta = tta or TestTimeAugmentation()
    report = BatchReport(total=len(image_ids))
    report.run_id = run_id if run_id is not None else new_model_run(project, detector, params)
    if heads_cache is not None and model is None:
        model = model_key(detector.path)
    tta_key, grouping = tta.key(), detector.info.grouping_name
    # every image's doubt is scored under the key of this model, TTA and parameters (the review order's)
    doubts = DoubtKeep(doubt_key(model or model_key(detector.path), tta_key, params), report.run_id)
    done = 0
    for start in range(0, len(image_ids), CHUNK):
        chunk = list(image_ids[start : start + CHUNK])
        records = project.images.get_many(chunk)
        for image_id in chunk:
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                break
            record = records.get(image_id)
            where = project.absolute_path(record.path) if record is not None else Path(f"image {image_id}")
            try:
                if record is None:
                    raise DeepMarkError("no longer in the project")
                _one(project, detector, record, where, params, report, tta, heads_cache, model, tta_key, grouping,
                     doubts)
                report.processed_ids.append(image_id)
            except DeepMarkError as exc:
                report.errors.append(FileError.from_error(exc, where))
            done += 1
            if progress is not None:
                progress(BatchProgress(done, len(image_ids), len(report.errors), time.perf_counter() - started,
                                       image_id))
        if report.cancelled:
            break
    report.elapsed_s = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class DoubtKeep:
    """Where a batch job keeps each image's doubt score: the key (``uncertainty.doubt_key``) and the run."""

    key: str
    run_id: int | None


def _one(project: Project, detector: Detector, record: ImageRecord, where: Path, params: PostprocessParams,
         report: BatchReport, tta: TestTimeAugmentation, cache: HeadsDiskCache | None, model: str | None,
         tta_key: str, grouping: str, doubts: DoubtKeep) -> None:
    predicted = bool(project.predictions.for_image(record.id, report.run_id))
    scored = project.doubts.get(record.id, doubts.key) is not None
    if predicted and scored:
        report.already += 1
        return
    key = image_key(record)
    heads = cache.load(key, model, tta_key) if cache is not None else None
    mirror = cache.load(key, model, mirror_key(tta_key)) if cache is not None and tta.flip else None
    if heads is not None and (mirror is not None or not tta.flip):
        report.from_cache += 1
    else:
        pixels = read_image(where)
        heads, mirror = detector.heads_and_mirror(pixels, tta) if tta.flip else (detector.heads(pixels, tta), None)
        heads = at_cache_precision(heads)
        mirror = at_cache_precision(mirror) if mirror is not None else None
        report.network_runs += 1
        if cache is not None:
            try:
                cache.save(key, model, tta_key, heads, image_id=record.id, grouping=grouping)
                if mirror is not None:
                    cache.save(key, model, mirror_key(tta_key), mirror, image_id=record.id, grouping=grouping)
            except OSError as exc:  # slower later (the network runs again), not wrong: noted once
                report.cache_warning = report.cache_warning or f"{cache.folder}: raw heads not cached ({exc})"
    if not scored:
        store_doubt(project, record.id, doubts.key,
                    image_doubt(heads, mirror, params, detector.taxonomy, detector.grouping), doubts.run_id)
        report.scored += 1
    if predicted:
        report.already += 1
        return
    detections = decode_detections(heads, params, detector.taxonomy, detector.grouping)
    if not project.predictions.add(record.id, report.run_id, detections) and detections:
        report.already += 1  # stored meanwhile by the live view under the same run
        return
    report.stored += 1
    report.predictions += len(detections)
