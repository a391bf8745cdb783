"""Grid search of the DeepMark++ post-processing parameters on cached raw heads (paper §4.1).

One parameter (a 1-D sweep) or two (a 2-D grid, like the paper's Figure 10), each over
0, 0.05, …, 1 by default, evaluated with the DeepFashion2 protocol on a labelled set. The network is
never re-run: every grid point re-decodes the cached heads, and each decoding stage is computed once per
value of the parameters it depends on (center candidates per σ_c, landmark peaks per σ_k, peak matching
per (σ_c, σ_k); α and γ only re-score and re-blend). Identical detection sets are evaluated once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core import decode as dec
from core.errors import DeepMarkError
from core.evaluate import DeepFashion2Evaluator, EvaluationResult
from core.structures import Detection, Item, PostprocessParams, RawHeads
from core.taxonomy import Grouping, Taxonomy

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
        text = self.to_csv() if path.suffix.lower() == ".csv" else self.to_json()
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path


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
        key = (p.sigma_center if p.heatmap_rescoring else None,
               p.sigma_keypoint if p.heatmap_rescoring else None, p.keypoint_rescoring)
        if key not in self._marks:
            cand, coarse, groups = self.candidates(p)
            self._marks[key] = dec.match_landmarks(coarse, groups, cand.box, self.peaks(p), p)
        return self._marks[key]

    def detections(self, p: PostprocessParams) -> list[Detection]:
        cand = self.candidates(p)[0]
        return dec.finalize_detections(self.heads, cand, self.marks(p), p, self.layout)


def _fingerprint(detections: Mapping[int, list[Detection]], with_landmarks: bool) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for image_id in sorted(detections):
        for d in detections[image_id]:
            digest.update(np.array([image_id, d.category_id, d.score, *d.box]).tobytes())
            if with_landmarks:
                digest.update(np.ascontiguousarray(d.landmarks[:, :2]).tobytes())
    return digest.hexdigest()


def _grid_params(base: PostprocessParams, names: Sequence[str], values: Sequence[float]) -> PostprocessParams:
    changes = {name: float(v) for name, v in zip(names, values, strict=False)}
    changes.update({TUNABLE[name]: True for name in names})
    return replace(base, **changes)


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
) -> TuneResult:
    """Evaluate every grid point of one or two ``parameters`` (names from ``TUNABLE``).

    ``heads`` and ``ground_truth`` are keyed by image id (only images in both are used); ``base`` holds
    the fixed parameters (the tuned parameters' techniques are switched on). ``progress(done, total)``
    is called after each grid point; returning False cancels (TuneError). Raises TuneError for unknown
    parameters or metric, or no labelled image with heads.
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
    # α = min over the grid gives the lowest candidate floor every grid point can need.
    alphas = grids[names.index("alpha")] if "alpha" in names else [base.alpha]
    floor_params = _grid_params(base, names, [0.0] * len(names)) if "alpha" in names else base
    floor_params = replace(floor_params, alpha=float(min(alphas)))
    caches = {i: _StageCache(heads[i], layout, floor_params) for i in image_ids}

    shape = tuple(len(g) for g in grids)
    map_pt = np.full(shape, np.nan)
    map_box = np.full(shape, np.nan)
    results: dict[tuple, EvaluationResult] = {}
    memo_pt: dict[str, float] = {}
    memo_box: dict[str, float] = {}
    total = int(np.prod(shape))
    for done, index in enumerate(np.ndindex(shape), start=1):
        p = _grid_params(base, names, [grids[i][j] for i, j in enumerate(index)])
        detections = {i: caches[i].detections(p) for i in image_ids}
        key_pt, key_box = _fingerprint(detections, True), _fingerprint(detections, False)
        if key_pt not in memo_pt or key_box not in memo_box:
            result = evaluator.evaluate(detections)
            memo_pt[key_pt], memo_box[key_box] = result.map_pt, result.map_box
            results[index] = result
        map_pt[index], map_box[index] = memo_pt[key_pt], memo_box[key_box]
        if progress is not None and progress(done, total) is False:
            raise TuneError(f"cancelled after {done} of {total} grid points")

    table = map_pt if metric == "map_pt" else map_box
    scored = np.where(np.isnan(table), -math.inf, table)
    best_index = np.unravel_index(int(np.argmax(scored)), shape)
    best = _grid_params(base, names, [grids[i][j] for i, j in enumerate(best_index)])
    best_result = results.get(best_index) or evaluator.evaluate({i: caches[i].detections(best) for i in image_ids})
    return TuneResult(names, grids, map_pt, map_box, metric, best, best_result, len(image_ids))
