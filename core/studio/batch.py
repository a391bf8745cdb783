"""Running the detector over many images of a project (a selection or all of them), Qt-free.

``run_batch`` walks image ids: reads each image, gets its raw heads (from the disk heads cache when
this model and test-time augmentation saw the same image content before, else from the network, then
saved there), decodes them with the given post-processing parameters and stores the detections under
one model run. A file that cannot be read or processed is reported by name (``BatchReport.errors``)
and the rest goes on. ``progress`` is called after every image with done / total / rate / time left;
setting ``cancel`` (a ``threading.Event``) stops after the current image, keeping what was stored.

The heads cache (``HeadsDiskCache``) holds one ``deepmark.core.formats.heads_file`` file per (image content, model file
content, TTA): keyed by content hashes rather than project image ids, so it is shared by every project
holding the same photo and never confused by two projects' image 1. Changing post-processing later
only re-decodes from it and never re-runs the network.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import PostprocessParams, RawHeads
from deepmark.core.errors import DeepMarkError, HeadsFileError
from deepmark.core.formats.df2 import FileError
from deepmark.core.formats.heads_file import load_heads, save_heads
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import Detector, TestTimeAugmentation
from deepmark.core.store import ImageRecord, Project
from deepmark.core.store.predictions import file_sha256
from deepmark.core.studio.cache import HEADS_CACHE_BYTES, CacheBudget, budget_from_env, heads_dir

CHUNK = 256  # image records read per query


def model_key(path: str | Path) -> str:
    """A short name of a model file's content (first 16 hex digits of its SHA-256), for cache keys."""
    return file_sha256(path)[:16]


def image_key(record: ImageRecord) -> str:
    """A short name of an image's content: its stored SHA-256, or (never hashed) a hash of its path and size."""
    return content_key(record.content_hash, record.path, record.size_bytes)


def content_key(content_hash: str | None, path: str, size_bytes: int | None) -> str:
    """``image_key`` from an image row's columns (stored path, not the absolute one)."""
    if content_hash:
        return content_hash[:32]
    return "p" + hashlib.sha1(f"{path}|{size_bytes}".encode()).hexdigest()[:31]


class HeadsDiskCache:
    """Raw heads on disk under ``folder`` (default ``deepmark.core.studio.cache.heads_dir()``):
    ``<model key>/<tta key>/<image key[:2]>/<image key>.npz`` in the ``deepmark.core.formats.heads_file`` format
    (float16)."""

    def __init__(self, folder: str | Path | None = None, max_bytes: int | None = None) -> None:
        self.folder = Path(folder) if folder is not None else heads_dir()
        if max_bytes is None:
            max_bytes = budget_from_env("DEEPMARK_HEADS_CACHE_MB", HEADS_CACHE_BYTES)
        self.budget = CacheBudget(self.folder, max_bytes, "*.npz")  # oldest heads go first

    def file(self, image: str, model: str, tta: str) -> Path:
        return self.folder / model / tta / image[:2] / f"{image}.npz"

    def load(self, image: str, model: str, tta: str) -> RawHeads | None:
        """The cached heads, or None (absent; a damaged file is removed so it is made again)."""
        path = self.file(image, model, tta)
        if not path.is_file():
            return None
        try:
            return load_heads(path).heads
        except HeadsFileError:
            path.unlink(missing_ok=True)
            return None

    def save(self, image: str, model: str, tta: str, heads: RawHeads, image_id: int = -1,
             grouping: str = "semantic62") -> RawHeads:
        """Write the heads (atomically) and return them as a later ``load`` gives them back (float16-rounded):
        decode those, so that what is stored now equals what re-decoding from the cache gives. OSError when
        the cache folder cannot be written."""
        path = self.file(image, model, tta)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_heads(path, heads, image_id=image_id, grouping=grouping)
        self.budget.added(path)
        return float16_rounded(heads)


@dataclass(frozen=True)
class ModelHeadsCache:
    """The disk heads cache as one model and TTA setting see it (safe to use from a worker thread: one
    file per image, written atomically)."""

    disk: HeadsDiskCache
    model: str
    tta: str

    def load(self, image: str) -> RawHeads | None:
        return self.disk.load(image, self.model, self.tta)

    def save(self, image: str, heads: RawHeads) -> RawHeads:
        """Store ``heads``; returns them float16-rounded, as a later ``load`` gives them (OSError: not stored)."""
        return self.disk.save(image, self.model, self.tta, heads)


def float16_rounded(heads: RawHeads) -> RawHeads:
    """``heads`` with every array rounded through float16, as the heads file format stores them."""
    arrays = {k: v.astype(np.float16).astype(np.float32) for k, v in heads.arrays().items()}
    return RawHeads(**arrays, image_to_map=heads.image_to_map, image_size=heads.image_size)


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
    predictions of the run (left as they were); ``processed_ids``: every image finished without error."""

    total: int = 0
    run_id: int | None = None
    stored: int = 0
    predictions: int = 0
    network_runs: int = 0
    from_cache: int = 0
    already: int = 0
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
                _one(project, detector, record, where, params, report, tta, heads_cache, model, tta_key, grouping)
                report.processed_ids.append(image_id)
            except DeepMarkError as exc:
                message = str(exc)
                prefix = f"{where}: "
                report.errors.append(FileError(where, message[len(prefix):] if message.startswith(prefix)
                                               else message))
            done += 1
            if progress is not None:
                progress(BatchProgress(done, len(image_ids), len(report.errors), time.perf_counter() - started,
                                       image_id))
        if report.cancelled:
            break
    report.elapsed_s = time.perf_counter() - started
    return report


def _one(project: Project, detector: Detector, record: ImageRecord, where: Path, params: PostprocessParams,
         report: BatchReport, tta: TestTimeAugmentation, cache: HeadsDiskCache | None, model: str | None,
         tta_key: str, grouping: str) -> None:
    if project.predictions.for_image(record.id, report.run_id):
        report.already += 1
        return
    key = image_key(record)
    heads = cache.load(key, model, tta_key) if cache is not None else None
    if heads is not None:
        report.from_cache += 1
    else:
        heads = detector.heads(read_image(where), tta)
        report.network_runs += 1
        if cache is not None:
            try:
                heads = cache.save(key, model, tta_key, heads, image_id=record.id, grouping=grouping)
            except OSError as exc:  # slower later (the network runs again), not wrong: noted once
                report.cache_warning = report.cache_warning or f"{cache.folder}: raw heads not cached ({exc})"
    detections = decode_detections(heads, params, detector.taxonomy, detector.grouping)
    project.predictions.add(record.id, report.run_id, detections)
    report.stored += 1
    report.predictions += len(detections)
