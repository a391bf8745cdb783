"""Tuning the post-processing on a project's own labelled images (the app's tuning view, Qt-free).

A ``TuningSession`` holds the project's labelled images (their ground truth as ``Item`` lists), their
raw heads (the network is run once per image; heads already computed can be handed in) and one
DeepFashion2 evaluator. On it:

* ``run`` sweeps each parameter on its own (α, σ_c, σ_k, γ, score threshold, NMS IoU), the others held
  at the current values, plus a 2-D (σ_c, σ_k) grid like the paper's Figure 10, all through
  ``deepmark.core.evaluation.tune.grid_search`` where it applies; the best measured parameter set is reported;
* ``evaluate`` / ``compare_presets`` give mAP_pt, mAP_box, AP50 and AP75 of one or two parameter sets.

Long calls take ``progress(done, total, stage)`` and a ``cancel`` flag (``threading.Event``-like: its
``is_set()`` is polled between grid points and images); a cancelled call raises ``Cancelled``.

An image is *labelled* when a reviewer accepted it (its items, possibly none, are the truth), or, when
it is neither rejected nor skipped, when it has items and none of them is an unreviewed prediction
(origin 'predicted'): imported ground truth, corrected or manual items.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from deepmark.core.centernet.decode import decode_detections, validate_heads
from deepmark.core.domain.structures import Item, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.errors import Cancelled, DeepMarkError
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator, EvaluationResult
from deepmark.core.evaluation.tune import METRICS, TUNABLE, TuneError, TuneResult, grid_search
from deepmark.core.imaging.read import read_image
from deepmark.core.studio.heads_cache import ModelHeadsCache, at_cache_precision, content_key

if TYPE_CHECKING:
    from deepmark.core.store import Project

#: Every parameter the session sweeps → the switch it needs on (None: always in effect).
SWEEPABLE: dict[str, str | None] = {**TUNABLE, "score_threshold": None, "nms_iou": "nms"}


def _steps(low: float, high: float, step: float) -> tuple[float, ...]:
    return tuple(float(v) for v in np.round(np.arange(low, high + step / 2, step), 3))


#: Default 1-D grids: the unit parameters every 0.05, σ over 0..1.5 (the paper's optima are 0.45 and 0.9).
DEFAULT_SWEEPS: dict[str, tuple[float, ...]] = {
    "alpha": _steps(0.0, 1.0, 0.05),
    "sigma_center": _steps(0.0, 1.5, 0.1),
    "sigma_keypoint": _steps(0.0, 1.5, 0.1),
    "gamma": _steps(0.0, 1.0, 0.05),
    "score_threshold": _steps(0.0, 0.5, 0.05),
    "nms_iou": _steps(0.3, 0.9, 0.05),
}
DEFAULT_GRID: tuple[tuple[float, ...], tuple[float, ...]] = (_steps(0.0, 1.5, 0.15), _steps(0.0, 1.5, 0.15))
#: (label, EvaluationResult field) of the numbers a comparison shows.
METRIC_ROWS = (("mAP_pt", "map_pt"), ("AP50_pt", "ap50_pt"), ("AP75_pt", "ap75_pt"),
               ("mAP_box", "map_box"), ("AP50_box", "ap50_box"), ("AP75_box", "ap75_box"))
REVIEW_EXCLUDED = ("rejected", "skipped")

Progress = Callable[[int, int, str], object]
HeadsFn = Callable[[int, np.ndarray], RawHeads]
"""(image id, (H, W, 3) uint8 RGB image) → the image's raw heads."""


class _Flag:
    """A never-set cancel flag, for calls made without one."""

    @staticmethod
    def is_set() -> bool:
        return False


@dataclass(frozen=True, eq=False)
class LabelledImage:
    """A labelled project image: ``path`` the absolute image file, ``items`` its ground truth."""

    image_id: int
    path: Path
    items: list[Item]
    key: str = ""  # content key in the disk heads cache (``deepmark.core.studio.batch.image_key``)


@dataclass(frozen=True)
class TuningSpec:
    """What ``TuningSession.run`` evaluates: ``sweeps`` parameter → 1-D grid values (keys from
    ``SWEEPABLE``); ``grid`` the (σ_c values, σ_k values) of the 2-D grid, or None for none; ``metric``
    'map_pt' or 'map_box' decides what "best" means."""

    sweeps: Mapping[str, Sequence[float]] = field(default_factory=lambda: dict(DEFAULT_SWEEPS))
    grid: tuple[Sequence[float], Sequence[float]] | None = DEFAULT_GRID
    metric: str = "map_pt"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sweeps) - set(SWEEPABLE))
        if unknown:
            raise TuneError(f"cannot sweep {unknown}; choose from {list(SWEEPABLE)}")
        if self.metric not in METRICS:
            raise TuneError(f"unknown metric {self.metric!r}; choose from {list(METRICS)}")
        if any(len(v) == 0 for v in self.sweeps.values()) or (self.grid is not None and
                                                             any(len(v) == 0 for v in self.grid)):
            raise TuneError("every grid needs at least one value")

    def points(self) -> int:
        """Grid points evaluated (1-D sweeps + 2-D grid), the unit of ``run``'s progress."""
        grid = len(self.grid[0]) * len(self.grid[1]) if self.grid is not None else 0
        return sum(len(v) for v in self.sweeps.values()) + grid


@dataclass(frozen=True, eq=False)
class TuningReport:
    """What ``TuningSession.run`` found.

    ``sweeps`` parameter → its 1-D ``TuneResult`` (``values[0]`` (n,), ``map_pt`` / ``map_box`` (n,));
    ``grid`` the (σ_c, σ_k) ``TuneResult`` (tables (n_c, n_k)) or None; ``best`` the best *measured*
    parameter set by ``metric`` among the sweeps' and grid's bests, the current parameters and the
    combination of every sweep's best value; ``base`` / ``base_result`` the current parameters and their
    metrics.
    """

    base: PostprocessParams
    base_result: EvaluationResult
    sweeps: dict[str, TuneResult]
    grid: TuneResult | None
    best: PostprocessParams
    best_result: EvaluationResult
    metric: str
    num_images: int

    def gain(self) -> float:
        """How much ``best`` improves ``metric`` over the current parameters (nan-safe: 0 when unknown)."""
        a, b = getattr(self.best_result, self.metric), getattr(self.base_result, self.metric)
        return 0.0 if math.isnan(a) or math.isnan(b) else a - b


@dataclass(frozen=True, eq=False)
class Comparison:
    """Two parameter sets evaluated on the same images; ``rows()`` lists (label, a, b) per metric."""

    a: PostprocessParams
    b: PostprocessParams
    result_a: EvaluationResult
    result_b: EvaluationResult

    def rows(self) -> list[tuple[str, float, float]]:
        rows = [(label, getattr(self.result_a, name), getattr(self.result_b, name)) for label, name in METRIC_ROWS]
        rows.append(("detections", float(self.result_a.num_detections), float(self.result_b.num_detections)))
        return rows


def _is_labelled(status: str, origins: list[str]) -> bool:
    if status == "accepted":
        return True
    return status not in REVIEW_EXCLUDED and bool(origins) and "predicted" not in origins


def labelled_images(project: Project, limit: int | None = None, chunk: int = 500) -> list[LabelledImage]:
    """The project's labelled images (see the module docstring) in id order, at most ``limit``."""
    from deepmark.core.store.annotations import item_records
    from deepmark.core.store.models import Image

    out: list[LabelledImage] = []
    after = 0
    while limit is None or len(out) < limit:
        def page(session, after=after):
            rows = session.execute(select(Image.id, Image.path, Image.status, Image.content_hash, Image.size_bytes)
                                   .where(Image.id > after).order_by(Image.id).limit(chunk)).all()
            return rows, item_records(session, [r[0] for r in rows]) if rows else {}
        rows, items = project.read(page)
        if not rows:
            break
        for image_id, path, status, content_hash, size_bytes in rows:
            records = items[image_id]
            if _is_labelled(status, [r.origin for r in records]):
                out.append(LabelledImage(image_id, project.absolute_path(path), [r.to_item() for r in records],
                                         content_key(content_hash, path, size_bytes)))
                if limit is not None and len(out) >= limit:
                    break
        after = rows[-1][0]
    return out


class TuningSession:
    """Labelled images with their raw heads, evaluated under any post-processing parameters.

    ``images``: the labelled images; ``taxonomy`` and ``grouping`` those of the model whose heads are
    loaded. Heads come from ``load_heads`` (or ``set_heads``); only images with heads are evaluated.
    """

    def __init__(self, images: Sequence[LabelledImage], taxonomy: Taxonomy, grouping: Grouping) -> None:
        self.images = list(images)
        self.taxonomy = taxonomy
        self.grouping = grouping
        self.heads: dict[int, RawHeads] = {}
        self.errors: list[str] = []
        self._evaluator: DeepFashion2Evaluator | None = None
        self._memo: dict[PostprocessParams, EvaluationResult] = {}

    @staticmethod
    def from_project(project: Project, taxonomy: Taxonomy, grouping: Grouping,
                     limit: int | None = None) -> TuningSession:
        return TuningSession(labelled_images(project, limit), taxonomy, grouping)

    @property
    def ground_truth(self) -> dict[int, list[Item]]:
        """image id → items, for the images with heads."""
        return {i.image_id: i.items for i in self.images if i.image_id in self.heads}

    @property
    def num_ready(self) -> int:
        return sum(1 for i in self.images if i.image_id in self.heads)

    def set_heads(self, image_id: int, heads: RawHeads) -> None:
        validate_heads(heads, self.taxonomy, self.grouping)
        self.heads[image_id] = heads
        self._evaluator = None
        self._memo.clear()

    def load_heads(self, heads_fn: HeadsFn, known: Mapping[int, RawHeads] | None = None,
                   progress: Progress | None = None, cancel=None,
                   read: Callable[[Path], np.ndarray] = read_image, cache: ModelHeadsCache | None = None) -> int:
        """Give every image heads: from ``known`` when there, else from the disk heads ``cache``, else
        ``heads_fn`` on the image read from disk (one network run each; then saved to ``cache``). An image
        that cannot be read or run is left out and noted in ``errors``. Returns the number of network runs."""
        cancel = cancel or _Flag()
        known = known or {}
        missing = [i for i in self.images if i.image_id not in self.heads]
        runs = 0
        for done, image in enumerate(missing, start=1):
            if cancel.is_set():
                raise Cancelled(f"cancelled after {done - 1} of {len(missing)} images")
            try:
                heads = known.get(image.image_id)
                if heads is None and cache is not None and image.key:
                    heads = cache.load(image.key)
                if heads is None:
                    heads = at_cache_precision(heads_fn(image.image_id, read(image.path)))
                    runs += 1
                    if cache is not None and image.key:
                        _save(cache, image.key, heads)
                self.set_heads(image.image_id, heads)
            except DeepMarkError as exc:
                self.errors.append(f"{image.path}: {exc}")
            if progress is not None:
                progress(done, len(missing), "running the model")
        return runs

    def _ready(self) -> DeepFashion2Evaluator:
        if not self.heads:
            raise TuneError("no labelled image with heads to tune on (accept some images or import labels)")
        if self._evaluator is None:
            self._evaluator = DeepFashion2Evaluator(self.ground_truth, self.taxonomy)
        return self._evaluator

    def evaluate(self, params: PostprocessParams) -> EvaluationResult:
        """DeepFashion2 metrics of ``params`` on every image with heads (memoised per parameter set)."""
        evaluator = self._ready()
        if params not in self._memo:
            detections = {i: decode_detections(h, params, self.taxonomy, self.grouping)
                          for i, h in self.heads.items()}
            self._memo[params] = evaluator.evaluate(detections)
        return self._memo[params]

    def compare_presets(self, a: PostprocessParams, b: PostprocessParams) -> Comparison:
        """The two parameter sets' metrics on the same images."""
        return Comparison(a, b, self.evaluate(a), self.evaluate(b))

    def sweep(self, parameter: str, base: PostprocessParams, values: Sequence[float] | None = None,
              metric: str = "map_pt", progress: Callable[[int, int], object] | None = None,
              cancel=None) -> TuneResult:
        """One parameter over ``values`` (default ``DEFAULT_SWEEPS``), the others held at ``base``; the
        parameter's technique switch is turned on. (n,) tables in the returned ``TuneResult``."""
        if parameter not in SWEEPABLE:
            raise TuneError(f"cannot sweep {parameter!r}; choose from {list(SWEEPABLE)}")
        grid = tuple(values if values is not None else DEFAULT_SWEEPS[parameter])
        cancel = cancel or _Flag()
        if parameter in TUNABLE:  # the staged, memoised search
            return grid_search(self.heads, self.ground_truth, [parameter], self.taxonomy, self.grouping, base,
                               [grid], metric, _checked(progress, cancel))
        # score threshold and NMS IoU act after the landmark stages: decode and evaluate each value
        switch = SWEEPABLE[parameter]
        base = replace(base, **({switch: True} if switch else {}))
        results = []
        for done, value in enumerate(grid, start=1):
            if cancel.is_set():
                raise Cancelled(f"cancelled after {done - 1} of {len(grid)} grid points")
            results.append(self.evaluate(replace(base, **{parameter: float(value)})))
            if progress is not None:
                progress(done, len(grid))
        map_pt = np.array([r.map_pt for r in results])
        map_box = np.array([r.map_box for r in results])
        table = map_pt if metric == "map_pt" else map_box
        best = int(np.argmax(np.where(np.isnan(table), -math.inf, table)))
        return TuneResult((parameter,), (np.asarray(grid, np.float64),), map_pt, map_box, metric,
                          replace(base, **{parameter: float(grid[best])}), results[best], len(self.heads))

    def sigma_grid(self, base: PostprocessParams, values: tuple[Sequence[float], Sequence[float]] = DEFAULT_GRID,
                   metric: str = "map_pt", progress: Callable[[int, int], object] | None = None,
                   cancel=None) -> TuneResult:
        """The 2-D (σ_c, σ_k) grid (paper Figure 10): tables (len(values[0]), len(values[1]))."""
        cancel = cancel or _Flag()
        return grid_search(self.heads, self.ground_truth, ["sigma_center", "sigma_keypoint"], self.taxonomy,
                           self.grouping, base, [tuple(values[0]), tuple(values[1])], metric,
                           _checked(progress, cancel))

    def run(self, base: PostprocessParams, spec: TuningSpec | None = None, progress: Progress | None = None,
            cancel=None) -> TuningReport:
        """Every sweep of ``spec`` and its (σ_c, σ_k) grid around ``base``; see ``TuningReport``."""
        spec = spec or TuningSpec()
        cancel = cancel or _Flag()
        base_result = self.evaluate(base)
        total, offset = spec.points(), 0

        def stage(name: str):
            def report(done: int, _total: int) -> None:
                if progress is not None:
                    progress(offset + done, total, name)
            return report

        sweeps: dict[str, TuneResult] = {}
        for name, values in spec.sweeps.items():
            sweeps[name] = self.sweep(name, base, values, spec.metric, stage(name), cancel)
            offset += len(values)
        grid = None
        if spec.grid is not None:
            grid = self.sigma_grid(base, spec.grid, spec.metric, stage("σ_c × σ_k"), cancel)
        candidates = [base, *(r.best for r in sweeps.values())] + ([grid.best] if grid is not None else [])
        combined = base
        for name, result in sweeps.items():  # every sweep's best value at once (coordinate-wise)
            switch = SWEEPABLE[name]
            combined = replace(combined, **{name: getattr(result.best, name), **({switch: True} if switch else {})})
        if grid is not None and "sigma_center" not in sweeps and "sigma_keypoint" not in sweeps:
            combined = replace(combined, heatmap_rescoring=True, sigma_center=grid.best.sigma_center,
                               sigma_keypoint=grid.best.sigma_keypoint)
        candidates.append(combined)
        if cancel.is_set():
            raise Cancelled("cancelled")

        def score(p: PostprocessParams) -> float:
            value = getattr(self.evaluate(p), spec.metric)
            return -math.inf if math.isnan(value) else value
        best = max(candidates, key=score)  # the first of equals: the current parameters win ties
        return TuningReport(base, base_result, sweeps, grid, best, self.evaluate(best), spec.metric, len(self.heads))


def _save(cache: ModelHeadsCache, key: str, heads: RawHeads) -> None:
    """Store fresh heads in the disk cache; a cache that cannot be written only costs speed."""
    try:
        cache.save(key, heads)
    except OSError:
        pass


def _checked(progress: Callable[[int, int], object] | None, cancel) -> Callable[[int, int], bool]:
    """A ``grid_search`` progress callback that also polls ``cancel`` (returning False stops the search with
    Cancelled)."""
    def report(done: int, total: int) -> bool:
        if progress is not None:
            progress(done, total)
        return not cancel.is_set()
    return report


def run_tuning(session: TuningSession, base: PostprocessParams, spec: TuningSpec | None = None,
               heads_fn: HeadsFn | None = None, known: Mapping[int, RawHeads] | None = None,
               progress: Progress | None = None, cancel: threading.Event | None = None) -> TuningReport:
    """Load the missing heads (when ``heads_fn`` is given), then ``session.run``."""
    if heads_fn is not None:
        session.load_heads(heads_fn, known, progress, cancel)
    return session.run(base, spec, progress, cancel)
