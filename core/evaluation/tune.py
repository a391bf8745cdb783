"""Grid search of the DeepMark++ post-processing parameters on cached raw heads (paper §4.1).

One parameter (a 1-D sweep) or two (a 2-D grid, like the paper's Figure 10), each over
0, 0.05, …, 1 by default, evaluated with the DeepFashion2 protocol on a labelled set. The network is
never re-run: every grid point re-decodes the cached heads, and each decoding stage is computed once per
value of the parameters it depends on (center candidates per σ_c, landmark peaks per σ_k, peak matching
per (σ_c, σ_k); α and γ only re-score and re-blend). Identical detection sets are evaluated once.

A grid point decodes all images in one batch (``grid_decode``) and is scored by ``fast_eval``, an exact
numpy re-implementation of pycocotools' AP: the table holds the same numbers, bit for bit, as decoding
each image and running pycocotools would. The best point's full result comes from pycocotools itself.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import multiprocessing as mp
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from deepmark.core.centernet import decode as dec
from deepmark.core.domain.structures import Detection, Item, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.errors import Cancelled, DeepMarkError
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator, EvaluationResult
from deepmark.core.evaluation.grid_decode import GridDecoder
from deepmark.core.formats.coco import ResultArrays
from deepmark.core.util.atomic import write_text_atomically

#: Tunable parameter → the technique switch it needs.
TUNABLE = {
    "alpha": "center_rescoring",
    "sigma_center": "heatmap_rescoring",
    "sigma_keypoint": "heatmap_rescoring",
    "gamma": "location_refinement",
}
METRICS = ("map_pt", "map_box")
DEFAULT_VALUES = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))


class TuneError(DeepMarkError):
    """A grid search was asked for something it cannot do."""


@dataclass(frozen=True, eq=False)
class TuneResult:
    """The whole metric table of a grid search.

    ``parameters`` 1 or 2 names; ``values[i]`` the grid of parameter i; ``map_pt`` and ``map_box``
    arrays of shape (n1,) or (n1, n2); ``best`` the full parameter set with the best ``metric``.
    """

    parameters: tuple[str, ...]
    values: tuple[np.ndarray, ...]
    map_pt: np.ndarray
    map_box: np.ndarray
    metric: str
    best: PostprocessParams
    best_result: EvaluationResult
    num_images: int

    def table(self, metric: str | None = None) -> np.ndarray:
        return getattr(self, metric or self.metric)

    def rows(self) -> list[dict[str, float]]:
        """One dict per grid point: the parameter values, map_pt and map_box."""
        out = []
        for index in np.ndindex(self.map_pt.shape):
            row = {name: float(self.values[i][index[i]]) for i, name in enumerate(self.parameters)}
            row["map_pt"] = float(self.map_pt[index])
            row["map_box"] = float(self.map_box[index])
            out.append(row)
        return out

    def best_values(self) -> dict[str, float]:
        return {name: float(getattr(self.best, name)) for name in self.parameters}

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*self.parameters, "map_pt", "map_box"])
        writer.writeheader()
        writer.writerows(self.rows())
        return buffer.getvalue()

    def to_json(self) -> str:
        best = {k: v for k, v in self.best.__dict__.items()}
        return json.dumps(
            {
                "parameters": list(self.parameters),
                "values": [v.tolist() for v in self.values],
                "metric": self.metric,
                "num_images": self.num_images,
                "best_values": self.best_values(),
                "best_params": best,
                "best_metrics": self.best_result.to_dict(),
                "table": self.rows(),
            },
            indent=1,
        )

    def save(self, path: str | Path) -> Path:
        """Write the table as ``.csv`` or everything as ``.json`` (by the suffix)."""
        path = Path(path)
        return write_text_atomically(path, self.to_csv() if path.suffix.lower() == ".csv" else self.to_json())


class _StageCache:
    """Per-image decoding stages memoised on the parameters each depends on."""

    def __init__(self, heads: RawHeads, layout, floor_params: PostprocessParams) -> None:
        self.heads = heads
        self.layout = layout
        self.floor_params = floor_params
        self._peaks: dict = {}
        self._cands: dict = {}
        self._marks: dict = {}

    def peaks(self, p: PostprocessParams):
        key = p.sigma_keypoint if p.heatmap_rescoring else None
        if key not in self._peaks:
            self._peaks[key] = dec.landmark_peaks(self.heads, p)
        return self._peaks[key]

    def candidates(self, p: PostprocessParams):
        key = p.sigma_center if p.heatmap_rescoring else None
        if key not in self._cands:
            # The lowest floor any grid point can need, so one candidate set serves every α.
            all_groups = np.ones((int(self.layout.groups.max()) + 1, 1))  # landmark scores bounded by 1
            floors = dec.candidate_floors(self.floor_params, self.layout, all_groups)
            cand = dec.center_candidates(self.heads, p, floors)
            self._cands[key] = (cand, *dec.coarse_landmarks(self.heads, cand, self.layout))
        return self._cands[key]

    def marks(self, p: PostprocessParams):
        """Pruned candidates and their matched landmarks for this (σ_c, σ_k, technique 4) setting."""
        key = (p.sigma_center if p.heatmap_rescoring else None,
               p.sigma_keypoint if p.heatmap_rescoring else None, p.keypoint_rescoring)
        if key not in self._marks:
            cand, coarse, groups = self.candidates(p)
            peaks = self.peaks(p)
            # The bound at the grid's lowest α holds for every larger α too (it is linear in α and
            # equals the box score, below the threshold, at α = 1).
            floor_params = replace(self.floor_params, sigma_center=p.sigma_center, sigma_keypoint=p.sigma_keypoint)
            kept = dec.prune_unreachable(cand, self.layout, peaks, floor_params, return_index=True)
            cand = cand.take(kept)
            self._marks[key] = (cand, dec.match_landmarks(coarse[kept], groups[kept], cand.box, peaks, p))
        return self._marks[key]

    def detections(self, p: PostprocessParams) -> list[Detection]:
        cand, marks = self.marks(p)
        return dec.finalize_detections(self.heads, cand, marks, p, self.layout)


def _fingerprint(detections: ResultArrays, with_landmarks: bool) -> str:
    """A digest of what the metric reads: images, categories, scores and boxes, with landmarks the x, y."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.array([len(detections)]).tobytes())
    for values in (detections.image_id, detections.category_id, detections.score, detections.box):
        digest.update(np.ascontiguousarray(values).tobytes())
    if with_landmarks:
        digest.update(np.ascontiguousarray(detections.landmarks[:, :2]).tobytes())
    return digest.hexdigest()


def _grid_params(base: PostprocessParams, names: Sequence[str], values: Sequence[float]) -> PostprocessParams:
    changes = {name: float(v) for name, v in zip(names, values, strict=True)}
    changes.update({TUNABLE[name]: True for name in names})
    return replace(base, **changes)


@dataclass(eq=False)
class _GridState:
    """Everything a process needs to evaluate grid points, with its memo of evaluated detection sets."""

    caches: dict[int, _StageCache]
    evaluator: DeepFashion2Evaluator
    names: tuple[str, ...]
    grids: tuple[np.ndarray, ...]
    base: PostprocessParams
    decoder: GridDecoder

    def __post_init__(self) -> None:
        self.memo_pt: dict[str, float] = {}
        self.memo_box: dict[str, float] = {}

    def params_at(self, index: tuple[int, ...]) -> PostprocessParams:
        return _grid_params(self.base, self.names, [self.grids[i][j] for i, j in enumerate(index)])

    def detections(self, p: PostprocessParams) -> dict[int, list[Detection]]:
        return {i: cache.detections(p) for i, cache in self.caches.items()}

    def evaluate_row(self, row: list[tuple[int, ...]]) -> list[tuple[tuple[int, ...], float, float]]:
        """(index, mAP_pt, mAP_box) of each grid point of a row; each metric evaluated once per distinct
        detection set (boxes and scores for mAP_box, with the landmarks for mAP_pt)."""
        out = []
        for index in row:
            detections = self.decoder.detections(self.params_at(index))
            key_pt, key_box = _fingerprint(detections, True), _fingerprint(detections, False)
            have_pt, have_box = key_pt in self.memo_pt, key_box in self.memo_box
            if not have_pt and not have_box:
                self.memo_pt[key_pt], self.memo_box[key_box] = self.evaluator.maps(detections)
            elif not have_pt:  # boxes and scores as at an earlier point (a γ sweep): only the landmarks moved
                self.memo_pt[key_pt] = self.evaluator.map_only(detections, landmarks=True)
            elif not have_box:
                self.memo_box[key_box] = self.evaluator.map_only(detections, landmarks=False)
            out.append((index, self.memo_pt[key_pt], self.memo_box[key_box]))
        return out


_worker_state: _GridState | None = None  # set in the parent before forking workers


def _evaluate_row_in_worker(row):
    return _worker_state.evaluate_row(row)


def _rows(shape: tuple[int, ...]) -> list[list[tuple[int, ...]]]:
    """Grid points grouped by the first parameter's value (rows share the σ_c-dependent stages)."""
    indices = list(np.ndindex(shape))
    per_row = int(np.prod(shape[1:])) if len(shape) > 1 else len(indices)
    return [indices[k : k + per_row] for k in range(0, len(indices), per_row)]


def _run_rows(state: _GridState, rows, workers: int):
    """Yield each row's results, in a pool of forked workers when asked and available."""
    global _worker_state
    if workers <= 1 or len(rows) == 1 or "fork" not in mp.get_all_start_methods():
        for row in rows:
            yield state.evaluate_row(row)
        return
    _worker_state = state
    try:
        with mp.get_context("fork").Pool(min(workers, len(rows))) as pool:
            yield from pool.imap_unordered(_evaluate_row_in_worker, rows)
    finally:
        _worker_state = None


def grid_search(
    heads: Mapping[int, RawHeads],
    ground_truth: Mapping[int, list[Item]],
    parameters: Sequence[str],
    taxonomy: Taxonomy,
    grouping: Grouping,
    base: PostprocessParams | None = None,
    values: Sequence[Sequence[float]] | None = None,
    metric: str = "map_pt",
    progress: Callable[[int, int], bool | None] | None = None,
    workers: int = 1,
) -> TuneResult:
    """Evaluate every grid point of one or two ``parameters`` (names from ``TUNABLE``).

    ``heads`` and ``ground_truth`` are keyed by image id (only images in both are used); ``base`` holds
    the fixed parameters (the tuned parameters' techniques are switched on). ``progress(done, total)``
    is called as grid points finish; returning False cancels (Cancelled). ``workers`` > 1 evaluates
    rows of the grid in that many forked processes (where the platform can fork). Raises TuneError
    for unknown parameters or metric, or no labelled image with heads.
    """
    names = tuple(parameters)
    if not 1 <= len(names) <= 2 or len(set(names)) != len(names):
        raise TuneError(f"tune one or two distinct parameters, got {list(names)}")
    unknown = [n for n in names if n not in TUNABLE]
    if unknown:
        raise TuneError(f"unknown parameter(s) {unknown}; choose from {sorted(TUNABLE)}")
    if metric not in METRICS:
        raise TuneError(f"unknown metric {metric!r}; choose from {list(METRICS)}")
    grids = tuple(np.asarray(v, np.float64) for v in (values or [DEFAULT_VALUES] * len(names)))
    if len(grids) != len(names) or any(g.ndim != 1 or len(g) == 0 for g in grids):
        raise TuneError("give one non-empty list of values per parameter")
    image_ids = sorted(set(heads) & set(ground_truth))
    if not image_ids:
        raise TuneError("no image has both raw heads and ground truth")
    base = base or PostprocessParams()
    layout = dec.decode_layout(taxonomy, grouping)
    for image_id in image_ids:
        dec.validate_heads(heads[image_id], taxonomy, grouping)
    evaluator = DeepFashion2Evaluator({i: ground_truth[i] for i in image_ids}, taxonomy)
    # The grid's lowest α gives the lowest candidate floor any grid point can need.
    floor_params = _grid_params(base, names, [0.0] * len(names)) if "alpha" in names else base
    floor_params = replace(floor_params, alpha=float(min(grids[names.index("alpha")])) if "alpha" in names
                           else base.alpha)
    caches = {i: _StageCache(heads[i], layout, floor_params) for i in image_ids}
    decoder = GridDecoder([caches[i] for i in image_ids], image_ids, layout, floor_params)
    state = _GridState(caches, evaluator, names, grids, base, decoder)

    shape = tuple(len(g) for g in grids)
    map_pt = np.full(shape, np.nan)
    map_box = np.full(shape, np.nan)
    total, done = int(np.prod(shape)), 0
    for row_results in _run_rows(state, _rows(shape), workers):
        for index, pt, box in row_results:
            map_pt[index], map_box[index] = pt, box
        done += len(row_results)
        if progress is not None and progress(done, total) is False:
            raise Cancelled(f"cancelled after {done} of {total} grid points")

    table = map_pt if metric == "map_pt" else map_box
    best_index = np.unravel_index(int(np.argmax(np.where(np.isnan(table), -math.inf, table))), shape)
    best = state.params_at(best_index)
    best_result = evaluator.evaluate(state.detections(best))
    return TuneResult(names, grids, map_pt, map_box, metric, best, best_result, len(image_ids))
