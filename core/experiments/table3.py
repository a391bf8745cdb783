"""DeepMark++ Table 3 on our own data: each row adds one technique to the row above it.

Rows (the paper's layout): Baseline (plain decode), + post-processing (the four techniques of §3.2), + NMS,
+ flip (the heads of the image and its mirror averaged), + multi-scale (flip at the input-size multipliers
0.85, 0.95, 1.1), + refinement (the landmark refinement network, §4.2.2, on the multi-scale detections).

Parameters are tuned once, on the plain heads of the tuning images (the paper's §4.1 procedure:
``tune_all_techniques``), and every row is measured on the other images with those parameters — the paper,
too, reports one parameter set per model. Time per image is the whole pipeline of the row: the network run(s)
at that test-time augmentation, the decode and, for the last row, the refinement; the heads check is part
of the network step. On each image the three network settings run in a rotating order so that no setting
pays for coming first.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import Detection, Item, LandmarkRefiner, PostprocessParams, RawHeads
from deepmark.core.domain.taxonomy import Grouping, Taxonomy
from deepmark.core.errors import DeepMarkError
from deepmark.core.evaluation.ablation import tune_all_techniques
from deepmark.core.evaluation.evaluate import DeepFashion2Evaluator, EvaluationResult
from deepmark.core.imaging.read import read_image
from deepmark.core.inference.detector import PAPER_SCALES, Detector, TestTimeAugmentation

PLAIN = TestTimeAugmentation()
FLIP = TestTimeAugmentation(flip=True)
FLIP_MULTISCALE = TestTimeAugmentation(flip=True, scales=PAPER_SCALES)


@dataclass(frozen=True)
class Table3Row:
    """One row: its name, its metrics on the test images, and its median time per image (ms) split in the
    steps it pays (``network``, ``decode``, ``refine``; the total is the median of the per-image sums)."""

    name: str
    result: EvaluationResult
    ms_per_image: float
    steps_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Table3:
    """The tuned parameters, the rows, and what was measured on (image counts, the TTA scales)."""

    params: PostprocessParams
    rows: list[Table3Row]
    tune_images: int
    test_images: int
    skipped: list[str]


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _timed(call: Callable[..., object], *args: object) -> tuple[object, float]:
    """``call(*args)`` and its wall time in ms."""
    start = time.perf_counter()
    value = call(*args)
    return value, (time.perf_counter() - start) * 1e3


def paper_table3(
    detector: Detector,
    images: Mapping[int, Path],
    ground_truth: Mapping[int, Sequence[Item]],
    tune_ids: Sequence[int],
    test_ids: Sequence[int],
    taxonomy: Taxonomy,
    grouping: Grouping,
    refiner: LandmarkRefiner | None = None,
    values: Sequence[float] | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Table3:
    """Tune on ``tune_ids`` and measure every Table 3 row on ``test_ids`` (ids of ``images`` and
    ``ground_truth``). An image that cannot be read, or on which the model's output is unusable, is left out
    of every row and named in ``skipped``; DeepMarkError when no tuning or no test image is left.
    Without a ``refiner`` the last row is not measured."""
    say = progress or (lambda message: None)
    skipped: list[str] = []

    def picture(image_id: int) -> np.ndarray | None:
        try:
            return read_image(images[image_id])
        except DeepMarkError as exc:
            skipped.append(str(exc))
            return None

    tune_heads: dict[int, RawHeads] = {}
    for image_id in tune_ids:
        image = picture(image_id)
        if image is None:
            continue
        try:
            tune_heads[image_id] = detector.heads(image)
        except DeepMarkError as exc:
            skipped.append(f"{images[image_id]}: {exc}")
    if not tune_heads:
        raise DeepMarkError("Table 3: no tuning image could be run through the model")
    say(f"tuning on {len(tune_heads)} images")
    tuned = tune_all_techniques(tune_heads, ground_truth, taxonomy, grouping, values=values, workers=workers,
                                progress=say)
    del tune_heads

    settings = {"plain": PLAIN, "flip": FLIP, "multi-scale": FLIP_MULTISCALE}
    decodes = {
        "Baseline": ("plain", PostprocessParams()),
        "+ post-processing": ("plain", replace(tuned, nms=False)),
        "+ NMS": ("plain", tuned),
        "+ flip": ("flip", tuned),
        "+ multi-scale": ("multi-scale", tuned),
    }
    names = [*decodes, *(["+ refinement"] if refiner is not None else [])]
    detections: dict[str, dict[int, list[Detection]]] = {name: {} for name in names}
    steps: dict[str, dict[str, list[float]]] = {name: {"network": [], "decode": [], "refine": []} for name in names}
    totals: dict[str, list[float]] = {name: [] for name in names}
    order = list(settings)
    measured = 0
    for k, image_id in enumerate(test_ids):
        image = picture(image_id)
        if image is None:
            continue
        heads: dict[str, RawHeads] = {}
        network_ms: dict[str, float] = {}
        try:
            for setting in order[k % 3:] + order[: k % 3]:
                heads[setting], network_ms[setting] = _timed(detector.heads, image, settings[setting])
        except DeepMarkError as exc:
            skipped.append(f"{images[image_id]}: {exc}")
            continue
        for name, (setting, params) in decodes.items():
            found, decode_ms = _timed(decode_detections, heads[setting], params, taxonomy,
                                       grouping)
            detections[name][image_id] = found
            steps[name]["network"].append(network_ms[setting])
            steps[name]["decode"].append(decode_ms)
            totals[name].append(network_ms[setting] + decode_ms)
        if refiner is not None:
            before = detections["+ multi-scale"][image_id]
            refined, refine_ms = _timed(refiner.refine, image, before)
            detections["+ refinement"][image_id] = refined
            steps["+ refinement"]["network"].append(network_ms["multi-scale"])
            steps["+ refinement"]["decode"].append(steps["+ multi-scale"]["decode"][-1])
            steps["+ refinement"]["refine"].append(refine_ms)
            totals["+ refinement"].append(totals["+ multi-scale"][-1] + refine_ms)
        measured += 1
        if measured % 25 == 0:
            say(f"measured {measured} of {len(test_ids)} test images")
    if not measured:
        raise DeepMarkError("Table 3: no test image could be run through the model")
    evaluator = DeepFashion2Evaluator({i: ground_truth[i] for i in detections["Baseline"]}, taxonomy)
    rows = [
        Table3Row(name, evaluator.evaluate(detections[name]), _median(totals[name]),
                  {step: _median(ms) for step, ms in steps[name].items() if ms})
        for name in names
    ]
    return Table3(tuned, rows, len(tune_ids), measured, skipped)


def format_table3(table: Table3) -> str:
    """A Markdown table in the paper's layout: mAP_pt, mAP_box, then ms per image with its steps."""
    lines = ["| | mAP_pt | mAP_box | ms/image | network + decode + refine ms |", "|---|---|---|---|---|"]
    for row in table.rows:
        parts = " + ".join(f"{row.steps_ms.get(step, 0.0):.1f}" for step in ("network", "decode", "refine")
                           if step in row.steps_ms)
        lines.append(f"| {row.name} | {row.result.map_pt:.3f} | {row.result.map_box:.3f} | "
                     f"{row.ms_per_image:.1f} | {parts} |")
    return "\n".join(lines)
